/*===- moert.h - moe-compiler runtime, C ABI ---------------------*- C -*-===*\
|*                                                                            *|
|* Part of moe-compiler. The thin runtime that compiled models link with:     *|
|* status codes with messages, buffers, timers, safetensors files, and the    *|
|* main() of a model executable. No MLIR or LLVM headers; plain C ABI.        *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOERT_MOERT_H
#define MOERT_MOERT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*===-- Status ------------------------------------------------------------===*/

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

/* The message of the last failure on this thread ("" if none). */
const char *moert_last_error(void);
const char *moert_status_string(moert_status status);

/*===-- Element types -----------------------------------------------------===*/

typedef enum moert_dtype {
  MOERT_F32,
  MOERT_F16,
  MOERT_BF16,
  MOERT_F64,
  MOERT_I64,
  MOERT_I32,
  MOERT_I16,
  MOERT_I8,
  MOERT_U8,
  MOERT_BOOL,
  MOERT_F8_E4M3, /* OCP FP8 E4M3 (no infinities; S.1111.111 is NaN) */
  MOERT_F8_E5M2  /* OCP FP8 E5M2 (IEEE-like) */
} moert_dtype;

size_t moert_dtype_size(moert_dtype dtype);
/* The safetensors spelling: "F32", "BF16", ... */
const char *moert_dtype_name(moert_dtype dtype);
moert_status moert_dtype_from_name(const char *name, moert_dtype *out);

float moert_bf16_to_f32(uint16_t v);
uint16_t moert_f32_to_bf16(float v); /* round to nearest even, NaN kept */
float moert_f16_to_f32(uint16_t v);
uint16_t moert_f32_to_f16(float v); /* round to nearest even */
float moert_f8e4m3_to_f32(uint8_t v); /* exact */
float moert_f8e5m2_to_f32(uint8_t v); /* exact */
/* Converts n elements among F32, F16 and BF16, or from F8_E4M3 and
   F8_E5M2 to those three (rounded to nearest even). */
moert_status moert_convert(const void *src, moert_dtype src_dtype, void *dst,
                           moert_dtype dst_dtype, size_t n);

/*===-- Memory and time ---------------------------------------------------===*/

/* 64-byte aligned; a failure names the bytes asked for. */
moert_status moert_alloc(size_t bytes, void **out);
void moert_free(void *ptr);
uint64_t moert_now_ns(void); /* monotonic */

/*===-- Safetensors -------------------------------------------------------===*/

#define MOERT_MAX_RANK 8

typedef struct moert_st_file moert_st_file;

typedef struct moert_st_tensor {
  const char *name;
  moert_dtype dtype;
  int32_t rank; /* at most MOERT_MAX_RANK */
  int64_t shape[MOERT_MAX_RANK];
  const void *data;
  size_t nbytes;
} moert_st_tensor;

/* Maps the file and validates its whole header (JSON syntax, dtypes, shapes,
 * offsets inside the data section, no overlaps, no overflow, unique names)
 * before returning. */
moert_status moert_st_open(const char *path, moert_st_file **out);
/* The same on a caller-owned buffer, which must outlive the handle. */
moert_status moert_st_open_memory(const void *data, size_t size,
                                  const char *name_for_messages,
                                  moert_st_file **out);
void moert_st_close(moert_st_file *file);
size_t moert_st_count(const moert_st_file *file);
moert_status moert_st_info(const moert_st_file *file, size_t index,
                           moert_st_tensor *out);
moert_status moert_st_find(const moert_st_file *file, const char *name,
                           moert_st_tensor *out);
/* Finds `name` and checks its dtype and shape against what a model needs. */
moert_status moert_st_expect(const moert_st_file *file, const char *name,
                             moert_dtype dtype, int32_t rank,
                             const int64_t *shape, moert_st_tensor *out);
/* The value of a "__metadata__" entry, or NULL. */
const char *moert_st_metadata(const moert_st_file *file, const char *key);

/* Writes a safetensors file through a temporary file in the same directory
 * and a rename, so that `path` never holds a partial file. */
moert_status moert_st_write(const char *path, size_t n,
                            const moert_st_tensor *tensors);

/*===-- CUDA --------------------------------------------------------------===*/
/* The driver (libcuda.so.1) is loaded at run time. Without a driver or a GPU
 * these return MOERT_ERR_DEVICE with a message saying which. Compiled GPU
 * code calls the runtime through MLIR's mgpu* host ABI, also defined here. */

moert_status moert_cuda_init(void);
/* The GPU this thread drives from now on (its first use opens it): one
 * process may drive several GPUs, one thread each. A thread that selects
 * none drives MOERT_DEVICE, else its local rank under mpirun, else GPU 0. */
void moert_cuda_select(int32_t ordinal);
/* How many GPUs the driver sees. */
moert_status moert_cuda_device_count(int32_t *count);
moert_status moert_cuda_device_name(char *buffer, size_t size);
/* Device memory; a failure names the bytes asked and the bytes free. */
moert_status moert_cuda_alloc(size_t bytes, void **out);
moert_status moert_cuda_free(void *ptr);
/* Copies between any host and device addresses (unified addressing). */
moert_status moert_cuda_copy(void *dst, const void *src, size_t bytes);
moert_status moert_cuda_synchronize(void);
/* Compiled code runs on one stream: `stream` (a CUstream, 0 for the legacy
 * default stream) from now on, or one the runtime creates on first use.
 * Work may be captured into a CUDA graph on that stream once the model has
 * run once (its scratch memory is then cached and no call synchronizes). */
moert_status moert_cuda_set_stream(void *stream);
moert_status moert_cuda_stream(void **out);
/* Whether compiled code waits for its stream at the end of each GPU helper
 * (the default, 1). A caller that synchronizes itself before it reads the
 * results turns it off: host buffers are pageable memory, so a copy to the
 * host completes before it returns and a copy from the host stages its
 * source, and only the waits between helpers are saved (the generator does,
 * once per step). */
moert_status moert_cuda_set_helper_sync(int enabled);

/* Whether this thread's GPU launches kernels with programmatic stream
 * serialization (Hopper's programmatic dependent launch; the default, 1,
 * unless the environment sets MOERT_PDL=0): a kernel may be scheduled while
 * the one before it finishes, and waits for it in its first instruction
 * (griddepcontrol.wait, which the compiler puts in every kernel). 0
 * launches them one after the other. */
moert_status moert_cuda_set_programmatic_launch(int enabled);
/* CUDA graphs of compiled code (a generator's decoding step): capture what
 * compiled code queues on its stream between begin and end (nothing runs;
 * the model must have run once, so that its scratch memory and tensor maps
 * exist), then launch the graph on that stream as often as wanted. A graph
 * replays the same work on the same buffers: the host inputs it copies are
 * read when it runs, so they must be page-locked (moert_cuda_host_alloc)
 * and left alone until the stream is synchronized. Without the driver's
 * graph API these return MOERT_ERR_UNSUPPORTED. */
typedef struct moert_cuda_graph moert_cuda_graph;
moert_status moert_cuda_capture_begin(void);
moert_status moert_cuda_capture_end(moert_cuda_graph **out);
moert_status moert_cuda_graph_launch(moert_cuda_graph *graph);
void moert_cuda_graph_destroy(moert_cuda_graph *graph);
/* Page-locked host memory (cuMemHostAlloc). */
moert_status moert_cuda_host_alloc(size_t bytes, void **out);
moert_status moert_cuda_host_free(void *ptr);
/* Returns the device scratch cached for compiled code to the driver. */
moert_status moert_cuda_trim(void);
/* Kernel timing: while enabled, every launch through the mgpu* ABI is timed
 * with CUDA events on its stream (each launch then waits for the previous).
 * Enabling resets the totals. */
moert_status moert_cuda_profile(int enable);
moert_status moert_cuda_profile_read(double *kernel_ms, uint64_t *launches);
/* The device address of a TMA tensor map (CUtensorMap) of the bf16 tensor
 * [d2, d1, d0] at device address `base` (d0 contiguous; `base` and d0 * 2
 * multiples of 16), read in boxes of [1, box1, box0] elements with the
 * 128-byte swizzle, elements past the tensor as zeros. Made on first use and
 * kept per GPU, like compiled code's scratch: the first use must come
 * before the stream is captured into a CUDA graph. Compiled code calls it;
 * an error prints its message and ends the program, as in the mgpu* ABI. */
uint64_t moert_cuda_tensor_map_bf16(uint64_t base, int64_t d0, int64_t d1,
                                    int64_t d2, int64_t box0, int64_t box1);

/*===-- Communication between ranks ---------------------------------------===*/
/* A partitioned model runs as one process per rank of its device grid (row
 * major, last axis fastest), started by `mpirun`. Open MPI (libmpi.so.40) is
 * loaded at run time, so unpartitioned models never need it. A group is the
 * set of ranks that differ only in the grid axes of `axes_mask` (bit a for
 * axis a); its members are ordered by their coordinates on those axes. */

/* Starts MPI and checks that the world matches `grid` (`rank` axes); a grid of
 * one rank needs no MPI. Fails with a message saying how to start the model. */
moert_status moert_comm_init(const int64_t *grid, int32_t rank);
/* One process driving all GPUs of a host: the calling thread is rank `rank`
 * of `size` threads of this process, each driving its own GPU. Call before
 * moert_comm_init on each such thread; the ranks' collectives then go over
 * NCCL (moert_comm_use_nccl), without MPI. Set NCCL's environment (e.g.
 * NCCL_RUNTIME_CONNECT=0) before starting the threads. */
moert_status moert_comm_join_threads(int32_t rank, int32_t size);
/* Moves the collectives of a model compiled for the GPU over NCCL
 * (libnccl.so.2, loaded at run time; MPI broadcasts its unique id). Call
 * after moert_comm_init and moert_cuda_init; a no-op for one rank. */
moert_status moert_comm_use_nccl(void);
int moert_comm_uses_nccl(void);
/* Prints, per kind of collective, the calls, bytes sent per call, time per
 * call and bandwidth of this rank (the executable does it under
 * MOERT_COMM_PROFILE=1). Timed: the exchanges' wire transfer (staging
 * included), the whole all-reduce and all-gather. */
void moert_comm_profile_print(void);
/* This process's rank in the world and the world's size (0 and 1 without
 * MPI). */
int32_t moert_comm_world_rank(void);
int32_t moert_comm_world_size(void);
/* Sums `value` over all ranks (used to agree on errors before any
 * collective, so that one rank's failure never leaves the others waiting). */
int64_t moert_comm_sum_all(int64_t value);
/* Stops every rank with exit status `status` after printing `message`. */
void moert_comm_abort(const char *message, int status);
moert_status moert_comm_finalize(void);

/* Called by compiled code (pointers as integers; a failure aborts all ranks
 * with a message naming the collective). */
int64_t moert_comm_group_rank(int64_t axes_mask);
void moert_comm_all_reduce(int64_t in, int64_t out, int64_t count,
                           int64_t dtype, int64_t axes_mask);
/// Sums `count` f32 values at device address `ptr` in place over the ranks
/// of the group `axes_mask`, on the model stream (ncclAllReduce; through
/// host memory over MPI). Used by fused GPU layers of partitioned models.
void moert_comm_all_reduce_device(int64_t ptr, int64_t count,
                                  int64_t axes_mask);
void moert_comm_all_gather(int64_t in, int64_t out, int64_t bytes,
                           int64_t group_size, int64_t axes_mask);
/* The expert exchanges of moe.dispatch_exchange / moe.combine_exchange:
 * counts first, then the rows that exist (all-to-all-v). */
void moert_comm_dispatch(int64_t in, int64_t offsets, int64_t out,
                         int64_t out_offsets, int64_t counts,
                         int64_t row_bytes, int64_t experts, int64_t capacity,
                         int64_t group_size, int64_t axes_mask);
void moert_comm_combine(int64_t in, int64_t counts, int64_t offsets,
                        int64_t out, int64_t in_rows, int64_t out_rows,
                        int64_t row_bytes, int64_t experts, int64_t group_size,
                        int64_t axes_mask);

/*===-- Model executables -------------------------------------------------===*/

/* The main() of a compiled model. `signature` lists its buffers, one per
 * line: "<input|weight|output> <name> <DTYPE> <d0>x<d1>...|scalar"; `run`
 * takes their addresses in that order. Command line:
 *   --weights W.safetensors --input X.safetensors --output Y.safetensors
 *   [--repeat N] [--warmup N] */
int moert_model_main(int argc, char **argv, const char *signature,
                     void (*run)(void **buffers));

/* The main() of a model compiled for the GPU that also holds its CPU code
 * (moe-compile --target=cuda, --cpu-fallback by default): runs `run` where
 * moert_cuda_init succeeds (the CUDA driver loads, a GPU is there, the
 * modules registered so far load on it), else says why on stderr and runs
 * `cpuRun` with
 * `cpuSignature`. MOERT_DEVICE=cpu runs the CPU code without looking for a
 * GPU; MOERT_DEVICE=gpu fails where there is no usable GPU. */
int moert_model_main_fallback(int argc, char **argv, const char *signature,
                              void (*run)(void **buffers),
                              const char *cpuSignature,
                              void (*cpuRun)(void **buffers));

#ifdef __cplusplus
}
#endif

#endif /* MOERT_MOERT_H */
