// The read bandwidth of the 1-token MoE layer's access pattern, against
// plain streaming, on one GPU (a benchmark, run on the GPU machine):
//   nvcc -O3 -arch=sm_90a -o /tmp/stream_floor test/bench/stream_floor.cu
//   /tmp/stream_floor
// A persistent kernel reads a list of chunks (byte offsets into one pool
// of weights, 16-byte loads, 8 in flight a thread) and XORs them; chunks
// are taken in order from a counter. Cases: one contiguous range; the
// experts hit at one token (k experts of E, each gate+up+down matrices of
// one shape, chunks of a given size in item order); L2 scrubbed (a 2x L2
// write) before each timed run. Prints GB/s per case (median of 20) and
// the ratio to the contiguous read of the same bytes.
#include <cuda_runtime.h>
#include "read_chunk.cuh"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

__device__ unsigned queue;

__global__ void __launch_bounds__(256) readChunks(const int4 *pool,
                                                  const long long *chunks,
                                                  int n, int chunkVecs,
                                                  unsigned *sink) {
  __shared__ int item;
  unsigned acc = 0;
  for (;;) {
    if (threadIdx.x == 0)
      item = atomicAdd(&queue, 1u);
    __syncthreads();
    int c = item;
    __syncthreads();
    if (c >= n)
      break;
    acc ^= readChunk(pool + chunks[c] / 16, chunkVecs);
  }
  if (acc == 0x12345678u)
    *sink = acc;
}

__global__ void resetQueue() { queue = 0; }

int main() {
  ReadBuffers buf;
  int sms = buf.sms, l2 = buf.l2;
  size_t poolBytes = buf.poolBytes;
  int4 *pool = buf.pool;
  char *scrub = buf.scrub;
  unsigned *sink = buf.sink;
  long long *dChunks = buf.chunks;
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::mt19937_64 rng(7);

  // Times reading `chunks` (byte offsets) of `chunkBytes` each.
  auto time = [&](const std::vector<long long> &chunks, long long chunkBytes,
                  int blocksPerSm) {
    CHECK(cudaMemcpy(dChunks, chunks.data(), chunks.size() * 8,
                     cudaMemcpyHostToDevice));
    std::vector<float> ms;
    for (int r = 0; r < 23; ++r) {
      CHECK(cudaMemsetAsync(scrub, r, 2 * size_t(l2)));
      resetQueue<<<1, 1>>>();
      CHECK(cudaEventRecord(a));
      readChunks<<<sms * blocksPerSm, 256>>>(pool, dChunks, int(chunks.size()),
                                             int(chunkBytes / 16), sink);
      CHECK(cudaEventRecord(b));
      CHECK(cudaEventSynchronize(b));
      float t;
      CHECK(cudaEventElapsedTime(&t, a, b));
      if (r >= 3)
        ms.push_back(t);
    }
    CHECK(cudaGetLastError());
    std::sort(ms.begin(), ms.end());
    return double(ms[ms.size() / 2]);
  };
  // Chunks of `chunkBytes` covering [offset, offset + bytes).
  auto range = [](std::vector<long long> &out, long long offset,
                  long long bytes, long long chunkBytes) {
    for (long long o = 0; o < bytes; o += chunkBytes)
      out.push_back(offset + o);
  };
  struct Shape {
    const char *name;
    int experts, k;
    long long d, f;
  };
  // Standard shapes (../shared/DESIGN.md), gated ones read 3 matrices.
  Shape shapes[] = {{"qwen3-30b-a3b", 128, 8, 2048, 768},
                    {"olmoe-1b-7b", 64, 8, 2048, 1024},
                    {"ds-moe-128 (2 matrices)", 128, 1, 2048, 8192},
                    {"mixtral-8x7b", 8, 2, 4096, 14336}};
  std::printf("| access | MB | chunk KB | blocks/SM | us | GB/s | vs contiguous |\n"
              "|---|---|---|---|---|---|---|\n");
  for (const Shape &s : shapes) {
    int mats = std::string(s.name).find("2 matrices") != std::string::npos ? 2 : 3;
    long long matBytes = s.d * s.f * 2;
    long long expertBytes = mats * matBytes;
    if (expertBytes * s.experts > (long long)poolBytes)
      continue;
    std::vector<int> ids(s.experts);
    for (int i = 0; i < s.experts; ++i)
      ids[i] = i;
    std::shuffle(ids.begin(), ids.end(), rng);
    std::sort(ids.begin(), ids.begin() + s.k);
    long long total = expertBytes * s.k;
    for (long long chunkKB : {96LL, 384LL}) {
      long long cb = chunkKB * 1024;
      for (int bps : {2, 4}) {
        std::vector<long long> contiguous, experts;
        range(contiguous, 0, total, cb);
        for (int m = 0; m < mats; ++m)
          for (int i = 0; i < s.k; ++i)
            range(experts, (long long)ids[i] * expertBytes + m * matBytes,
                  matBytes, cb);
        double tc = time(contiguous, cb, bps), te = time(experts, cb, bps);
        std::printf("| contiguous (%s bytes) | %.1f | %lld | %d | %.1f | %.0f | 1 |\n",
                    s.name, total / 1e6, chunkKB, bps, tc * 1e3,
                    total / tc / 1e6);
        std::printf("| %s: %d of %d experts | %.1f | %lld | %d | %.1f | %.0f | %.3f |\n",
                    s.name, s.k, s.experts, total / 1e6, chunkKB, bps, te * 1e3,
                    total / te / 1e6, te / tc);
      }
    }
  }
  // A long contiguous read: the streaming rate without ramp and tail.
  std::vector<long long> big;
  range(big, 0, 2LL << 30, 1 << 20);
  double tb = time(big, 1 << 20, 2);
  std::printf("| contiguous | %.1f | 1024 | 2 | %.1f | %.0f | - |\n",
              (2LL << 30) / 1e6, tb * 1e3, (2LL << 30) / tb / 1e6);
  // Empty: the launch and event overhead alone.
  std::vector<long long> none{0};
  double t0 = time(none, 16, 2);
  std::printf("| one 16-byte chunk (launch + events) | 0 | 0 | 2 | %.1f | - | - |\n",
              t0 * 1e3);
  return 0;
}
