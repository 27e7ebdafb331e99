//===- GpuTestUtils.h - Shared pieces of the GPU test programs ---*- C++ -*-===//
//
// Part of moe-compiler's GPU tests.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TEST_GPU_GPUTESTUTILS_H
#define MOE_TEST_GPU_GPUTESTUTILS_H

#include "moert/moert.h"

#include <cstdio>

namespace gpu_test {

/// Prints the runtime's message when `s` is a failure.
inline bool ok(moert_status s) {
  if (s != MOERT_OK)
    std::fprintf(stderr, "error: %s\n", moert_last_error());
  return s == MOERT_OK;
}

/// Device copy bandwidth in bytes/s (bytes read + written) over ten 2 GiB
/// device-to-device copies, or 0 on failure: the floor of the memory-bound
/// kernels, measured in the same run.
inline double measureCopyBandwidth() {
  size_t bytes = size_t(1) << 31;
  void *a = nullptr, *b = nullptr;
  if (!ok(moert_cuda_alloc(bytes, &a)) || !ok(moert_cuda_alloc(bytes, &b)))
    return 0.0;
  ok(moert_cuda_copy(b, a, bytes)); // warm-up
  ok(moert_cuda_synchronize());
  uint64_t t0 = moert_now_ns();
  for (int i = 0; i < 10; ++i)
    ok(moert_cuda_copy(b, a, bytes));
  ok(moert_cuda_synchronize());
  double seconds = double(moert_now_ns() - t0) * 1e-9;
  moert_cuda_free(a);
  moert_cuda_free(b);
  return 10.0 * 2.0 * double(bytes) / seconds;
}

/// The start of every timing test: initializes CUDA and measures the copy
/// floor into `bandwidth`. Returns 0 to go on, else the exit code: 77 (no
/// GPU: skipped) or 1.
inline int start(double &bandwidth) {
  if (moert_cuda_init() != MOERT_OK) {
    std::printf("SKIPPED: %s\n", moert_last_error());
    return 77;
  }
  bandwidth = measureCopyBandwidth();
  if (bandwidth <= 0)
    return 1;
  std::printf("copy bandwidth %.2f TB/s\n", bandwidth * 1e-12);
  return 0;
}

} // namespace gpu_test

#endif // MOE_TEST_GPU_GPUTESTUTILS_H
