// What the bare-read benchmarks (stream_floor.cu, decode_floor.cu) share:
// the error check, their buffers, and the chunk read.
#pragma once
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>

#define CHECK(x)                                                              \
  do {                                                                        \
    cudaError_t e = (x);                                                      \
    if (e != cudaSuccess) {                                                   \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x,         \
                   cudaGetErrorString(e));                                    \
      std::exit(1);                                                           \
    }                                                                         \
  } while (0)

/// A 12 GiB pool of weights (bytes 1), a buffer that scrubs the L2 (twice
/// its size), a sink for the XORs and room for 2^20 chunk offsets.
struct ReadBuffers {
  int sms = 0, l2 = 0;
  size_t poolBytes = size_t(12) << 30;
  int4 *pool = nullptr;
  char *scrub = nullptr;
  unsigned *sink = nullptr;
  long long *chunks = nullptr;
  ReadBuffers() {
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    CHECK(cudaMalloc(&pool, poolBytes));
    CHECK(cudaMemset(pool, 1, poolBytes));
    CHECK(cudaMalloc(&scrub, 2 * size_t(l2)));
    CHECK(cudaMalloc(&sink, 4));
    CHECK(cudaMalloc(&chunks, sizeof(long long) << 20));
  }
};

/// `vecs` 16-byte vectors from `p` by the block's threads, 8 loads in
/// flight a thread (streaming loads), folded by XOR so that they are not
/// dropped.
__device__ __forceinline__ unsigned readChunk(const int4 *p, int vecs) {
  unsigned acc = 0;
  for (int i = threadIdx.x; i < vecs; i += 8 * blockDim.x) {
    int4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      int j = i + u * blockDim.x;
      v[u] = j < vecs ? __ldcs(p + j) : make_int4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 8; ++u)
      acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  return acc;
}
