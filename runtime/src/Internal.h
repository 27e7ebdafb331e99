//===- Internal.h - Shared pieces of the runtime's implementation -*- C++ -*-===//
//
// Part of moe-compiler's runtime.
//
//===----------------------------------------------------------------------===//

#ifndef MOERT_SRC_INTERNAL_H
#define MOERT_SRC_INTERNAL_H

#include "moert/moert.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace moert {

/// Records a printf-style message as this thread's last error and returns
/// `status`.
moert_status fail(moert_status status, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/// Whether all work queued on the model's stream has finished (for waits
/// with a deadline); an error names the failing call.
moert_status cudaStreamDone(bool &done);

/// Ends the process after an error that has been printed: with partitioned
/// ranks, every rank (MPI_Abort, or _Exit for the threads of one process,
/// whose peers still run and must not see static destructors); else exit.
[[noreturn]] void exitAfterError(int status);

/// Copies `bytes` between host and device memory in the order of the
/// model's stream (a copy to pageable host memory returns once it landed).
moert_status cudaCopyOnStream(void *dst, const void *src, size_t bytes);

/// fn(r0, r1) over the rows [0, rows) of a matrix of `elements` elements,
/// in ranges of whole `align`-row blocks on up to 16 threads; on the
/// calling thread alone below `minElements` elements or `align` rows a
/// thread.
void forRowRanges(int64_t rows, int64_t elements, int64_t minElements,
                  int64_t align,
                  const std::function<void(int64_t, int64_t)> &fn);
/// Copies the [rows, cols] matrix `src` (elements of `elt` bytes) transposed
/// into `dst` ([cols, rows]).
void transpose(const char *src, char *dst, int64_t rows, int64_t cols,
               size_t elt);

} // namespace moert

#endif // MOERT_SRC_INTERNAL_H
