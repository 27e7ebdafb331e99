// How fast TMA streams expert weights in the access pattern of the compiled
// wgmma kernels, against other patterns of the same bytes, with no
// arithmetic (a benchmark, run on the GPU machine):
//   nvcc -O3 -arch=sm_90a -o /tmp/tma_stream test/bench/tma_stream.cu -lcuda
//   /tmp/tma_stream [K N E]        (default 7168 4096 100: DeepSeek-V3's
//                                   up and gate weights of 100 experts)
// A persistent kernel (B blocks an SM, one producer thread, one consumer
// warp) takes work items round-robin: an item is one expert's 256-column
// block over all of K, read in K steps of 64 rows through a ring of S
// stages (mbarriers full/empty, as the wgmma kernels' producer does).
// Patterns:
//   kn    the weights as [E, K, N] (the compiler's layout): a stage is 4
//         boxes of 64 K rows x 64 columns (128 bytes, the 128-byte
//         swizzle) side by side: 512 bytes of each of 64 rows N * 2 apart;
//   nk    the same bytes as [E, N, K] (a Hugging Face Linear's layout, the
//         one vLLM's fused MoE reads): 4 boxes of 64 N rows x 64 K (128
//         bytes of each of 256 rows, K * 2 apart);
//   bulk  each stage one contiguous 32 KiB piece (cp.async.bulk): the
//         best case for the same number of bytes in flight;
//   packed the same stage images stored one after the other (the weights
//         packed at load into the order the kernel reads them): one TMA
//         box of 64 columns x 256 rows a stage, 32 KiB contiguous, the
//         same 128-byte swizzle in shared memory as kn's four boxes;
//   kn-t  kn with the items in the other order (item i: expert i % E,
//         column block i / E), so that the blocks streaming at once read
//         one column block of many experts instead of all column blocks of
//         a few (the same rows): whether kn's rate is its boxes' shape or
//         where the blocks read at once.
// The L2 is scrubbed before each timed launch; median of 15 launches,
// bytes read / time between two events.
#include <cuda.h>
#include "read_chunk.cuh"
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

enum Pattern { kKN = 0, kNK = 1, kBulk = 2, kKNT = 3, kPacked = 4 };
constexpr int kBoxBytes = 64 * 128;
constexpr int kBoxes = 4;
constexpr int kStageBytes = kBoxes * kBoxBytes;

struct Params {
  int pattern, stages, kSteps, colBlocks, items, experts;
  long long n, k;
  const char *base; // bulk
};

__device__ __forceinline__ unsigned smem(const void *p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void wait(unsigned bar, unsigned parity) {
  asm volatile("{\n.reg .pred p;\nW: mbarrier.try_wait.parity.shared::cta.b64 "
               "p, [%0], %1;\n@!p bra W;\n}" ::"r"(bar),
               "r"(parity)
               : "memory");
}

__global__ void __launch_bounds__(64) stream(const __grid_constant__ CUtensorMap map,
                                             Params p, unsigned *sink) {
  extern __shared__ __align__(1024) unsigned char dyn[];
  unsigned char *ring = reinterpret_cast<unsigned char *>(
      (reinterpret_cast<uintptr_t>(dyn) + 1023) & ~uintptr_t(1023));
  __shared__ __align__(8) unsigned long long bars[2 * 8];
  unsigned full = smem(&bars[0]), empty = smem(&bars[8]);
  if (threadIdx.x == 0) {
    for (int s = 0; s < p.stages; ++s) {
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(full + 8 * s));
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(empty + 8 * s));
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  unsigned acc = 0;
  long long step = 0;
  for (int item = blockIdx.x; item < p.items; item += gridDim.x) {
    int e = item / p.colBlocks, cb = item % p.colBlocks;
    if (p.pattern == kKNT)
      e = item % p.experts, cb = item / p.experts;
    for (int kt = 0; kt < p.kSteps; ++kt, ++step) {
      int s = int(step % p.stages);
      unsigned phase = unsigned(step / p.stages) & 1;
      if (warp == 0 && lane == 0) {
        if (step >= p.stages)
          wait(empty + 8 * s, phase ^ 1);
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(
                         full + 8 * s),
                     "r"(kStageBytes)
                     : "memory");
        unsigned dst = smem(ring + size_t(s) * kStageBytes);
        if (p.pattern == kBulk) {
          const char *src = p.base +
                            ((long long)item * p.kSteps + kt) * kStageBytes;
          asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes "
                       "[%0], [%1], %2, [%3];" ::"r"(dst),
                       "l"(src), "r"(kStageBytes), "r"(full + 8 * s)
                       : "memory");
        } else if (p.pattern == kPacked) {
          int row = int((item * p.kSteps + kt) * 256);
          asm volatile(
              "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::"
              "complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(dst),
              "l"(&map), "r"(0), "r"(row), "r"(full + 8 * s)
              : "memory");
        } else {
          for (int b = 0; b < kBoxes; ++b) {
            int c0, c1;
            if (p.pattern != kNK) { // inner: columns; outer: e * K + k
              c0 = cb * 256 + b * 64;
              c1 = int(e * p.k + kt * 64);
            } else { // inner: k; outer: e * N + n
              c0 = kt * 64;
              c1 = int(e * p.n + cb * 256 + b * 64);
            }
            asm volatile(
                "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::"
                "complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
                    dst + b * kBoxBytes),
                "l"(&map), "r"(c0), "r"(c1), "r"(full + 8 * s)
                : "memory");
          }
        }
      } else if (warp == 1) {
        wait(full + 8 * s, phase);
        acc ^= reinterpret_cast<const unsigned *>(ring + size_t(s) * kStageBytes)[lane];
        __syncwarp();
        if (lane == 0)
          asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(empty + 8 * s)
                       : "memory");
      }
    }
  }
  if (acc == 0x12345678u)
    *sink = acc;
}

int main(int argc, char **argv) {
  long long K = argc > 1 ? atoll(argv[1]) : 7168;
  long long N = argc > 2 ? atoll(argv[2]) : 4096;
  long long E = argc > 3 ? atoll(argv[3]) : 100;
  if (K % 64 || N % 256) {
    std::fprintf(stderr, "K must be a multiple of 64 and N of 256\n");
    return 2;
  }
  int sms = 0, l2 = 0;
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  size_t bytes = size_t(E * K * N) * 2;
  char *pool, *scrub;
  unsigned *sink;
  CHECK(cudaMalloc(&pool, bytes));
  CHECK(cudaMemset(pool, 1, bytes));
  CHECK(cudaMalloc(&scrub, 2 * size_t(l2)));
  CHECK(cudaMalloc(&sink, 4));

  auto encode = [&](int pattern) {
    CUtensorMap map;
    cuuint64_t dims[2], strides[1];
    cuuint32_t box[2] = {64, 64}, es[2] = {1, 1};
    if (pattern == kKN) {
      dims[0] = N, dims[1] = E * K, strides[0] = N * 2;
    } else if (pattern == kPacked) { // [stage images * 256 rows, 64]
      dims[0] = 64, dims[1] = E * K * N / 64, strides[0] = 128;
      box[1] = 256;
    } else {
      dims[0] = K, dims[1] = E * N, strides[0] = K * 2;
    }
    CUresult r = cuTensorMapEncodeTiled(
        &map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, pool, dims, strides, box, es,
        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
      std::fprintf(stderr, "cuTensorMapEncodeTiled failed (%d)\n", int(r));
      std::exit(1);
    }
    return map;
  };

  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::printf("# TMA weight streams, %s, %d SMs, L2 %d MiB; K %lld, N %lld, "
              "%lld experts (%.2f GB)\n\n",
              prop.name, sms, l2 >> 20, K, N, E, bytes / 1e9);
  std::printf("| pattern | stages | blocks an SM | KiB in flight an SM | TB/s |\n");
  std::printf("|---|---|---|---|---|\n");
  const char *names[] = {"kn", "nk", "bulk", "kn-t", "packed"};
  for (int pattern : {kKN, kNK, kBulk, kKNT, kPacked}) {
    CUtensorMap map = encode(pattern == kKNT ? kKN : pattern);
    for (int blocks : {1, 2}) {
      for (int stages : {2, 3, 4, 5, 6}) {
        int smemBytes = stages * kStageBytes + 1024;
        if (blocks * (smemBytes + 1024) > 227 * 1024)
          continue;
        Params p;
        p.pattern = pattern;
        p.stages = stages;
        p.kSteps = int(K / 64);
        p.colBlocks = int(N / 256);
        p.items = int(E * p.colBlocks);
        p.experts = int(E);
        p.n = N;
        p.k = K;
        p.base = pool;
        CHECK(cudaFuncSetAttribute(stream,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   smemBytes));
        std::vector<float> ms;
        for (int rep = 0; rep < 17; ++rep) {
          CHECK(cudaMemsetAsync(scrub, rep, 2 * size_t(l2)));
          CHECK(cudaEventRecord(a));
          stream<<<sms * blocks, 64, smemBytes>>>(map, p, sink);
          CHECK(cudaGetLastError());
          CHECK(cudaEventRecord(b));
          CHECK(cudaEventSynchronize(b));
          float t;
          CHECK(cudaEventElapsedTime(&t, a, b));
          if (rep >= 2)
            ms.push_back(t);
        }
        std::sort(ms.begin(), ms.end());
        double t = ms[ms.size() / 2] * 1e-3;
        std::printf("| %s | %d | %d | %d | %.3f |\n", names[pattern], stages,
                    blocks, blocks * stages * kStageBytes / 1024,
                    bytes / t / 1e12);
      }
    }
  }
  return 0;
}
