/*===- moert.h - The moe runtime C API ----------------------------*- C -*-===*\
|*                                                                            *|
|* Part of moe-compiler.                                                      *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* The C ABI that compiled models and tools call: status codes with          *|
|* thread-local messages, dtypes and float conversions, aligned buffers, a   *|
|* monotonic timer, and a safetensors reader (which validates the whole       *|
|* header before handing out any tensor) and writer. Plain C99 so that       *|
|* generated code and C programs can use it; no MLIR or LLVM dependency.     *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOERT_MOERT_H
#define MOERT_MOERT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*===-- Status and errors ---------------------------------------------------===*/

/* Every fallible call returns one of these; on failure it also sets the
 * calling thread's message (moert_last_error). */
typedef enum moert_status {
  MOERT_OK = 0,
  MOERT_ERR_IO,
  MOERT_ERR_FORMAT,
  MOERT_ERR_NOT_FOUND,
  MOERT_ERR_INVALID_ARGUMENT,
  MOERT_ERR_OUT_OF_MEMORY,
  MOERT_ERR_UNSUPPORTED,
  MOERT_ERR_DEVICE
} moert_status;

/* The message of the calling thread's last failure ("" before any). Success
 * does not clear it. Valid until the next failing call on this thread. */
const char *moert_last_error(void);

/* A short fixed description of a status ("format error", ...). */
const char *moert_status_string(moert_status status);

/*===-- Data types ----------------------------------------------------------===*/

typedef enum moert_dtype {
  MOERT_F32 = 0,
  MOERT_F16,
  MOERT_BF16,
  MOERT_F64,
  MOERT_I64,
  MOERT_I32,
  MOERT_I16,
  MOERT_I8,
  MOERT_U8,
  MOERT_BOOL
} moert_dtype;

/* Bytes per element; 0 for a value outside the enum. */
size_t moert_dtype_size(moert_dtype dtype);

/* The safetensors spelling ("F32", "BF16", ...); "?" outside the enum. */
const char *moert_dtype_name(moert_dtype dtype);

/* Parses a safetensors spelling (case-sensitive). */
moert_status moert_dtype_from_name(const char *name, moert_dtype *out);

/*===-- Float conversions ---------------------------------------------------===*/

/* Narrowing rounds to nearest, ties to even; overflow gives infinity; NaN stays
 * NaN with its sign (and as much payload as fits); f16 subnormals are exact. */
float moert_bf16_to_f32(uint16_t bits);
uint16_t moert_f32_to_bf16(float value);
float moert_f16_to_f32(uint16_t bits);
uint16_t moert_f32_to_f16(float value);

/* Converts n elements between F32, F16 and BF16 (any pair, same dtype copies).
 * src and dst must not overlap unless they are the same dtype. */
moert_status moert_convert(const void *src, moert_dtype src_dtype, void *dst,
                           moert_dtype dst_dtype, size_t n);

/*===-- Buffers and time ----------------------------------------------------===*/

/* A 64-byte aligned buffer of at least `bytes` bytes (a valid unique pointer
 * even for 0); release with moert_free. */
moert_status moert_alloc(size_t bytes, void **out);
void moert_free(void *ptr);

/* Nanoseconds from an arbitrary fixed point; monotonic. */
uint64_t moert_now_ns(void);

/*===-- Safetensors ---------------------------------------------------------===*/

#define MOERT_MAX_RANK 8

/* One tensor. When read from a file, `name` and `data` point into the file's
 * storage and stay valid until moert_st_close. */
typedef struct moert_st_tensor {
  const char *name;
  moert_dtype dtype;
  int32_t rank;
  int64_t shape[MOERT_MAX_RANK];
  const void *data;
  size_t nbytes;
} moert_st_tensor;

typedef struct moert_st_file moert_st_file;

/* Maps `path` read-only (reading it into memory where mmap fails, or when the
 * environment variable MOERT_NO_MMAP is set) and validates the whole header:
 * sizes, strict JSON, entry fields and types, dtypes, shapes against byte
 * ranges, bounds, overlaps and duplicated names. Tensors keep header order. */
moert_status moert_st_open(const char *path, moert_st_file **out);

/* The same on a caller-owned buffer, which is not copied and must outlive the
 * handle. `name_for_messages` (may be NULL) names it in errors. */
moert_status moert_st_open_memory(const void *data, size_t size,
                                  const char *name_for_messages,
                                  moert_st_file **out);

void moert_st_close(moert_st_file *file);

size_t moert_st_count(const moert_st_file *file);

moert_status moert_st_info(const moert_st_file *file, size_t index,
                           moert_st_tensor *out);

/* MOERT_ERR_NOT_FOUND (with a message naming the tensor) when absent. */
moert_status moert_st_find(const moert_st_file *file, const char *name,
                           moert_st_tensor *out);

/* Finds `name` and checks that it has exactly this dtype and shape. */
moert_status moert_st_expect(const moert_st_file *file, const char *name,
                             moert_dtype dtype, int32_t rank,
                             const int64_t *shape, moert_st_tensor *out);

/* A "__metadata__" value, or NULL when the file or the key has none. */
const char *moert_st_metadata(const moert_st_file *file, const char *key);

/* Writes tensors (in this order, header padded with spaces to a multiple of 8)
 * to a temporary file beside `path` and renames it into place, so a failure
 * never leaves a partial file at `path`. Each tensor's nbytes must match its
 * dtype and shape. */
moert_status moert_st_write(const char *path, size_t n,
                            const moert_st_tensor *tensors);

/* moert_st_write with a "__metadata__" map of n_metadata string pairs. */
moert_status moert_st_write_with_metadata(const char *path, size_t n,
                                          const moert_st_tensor *tensors,
                                          size_t n_metadata,
                                          const char *const *keys,
                                          const char *const *values);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOERT_MOERT_H */
