// What one token's MoE layer could take at best on one GPU: a bare read of
// the experts' bytes in one kernel, in several forms, and the same read
// behind an emulated routing step (a benchmark, run on the GPU machine):
//   nvcc -O3 -arch=sm_90a -o /tmp/decode_floor test/bench/decode_floor.cu
//   /tmp/decode_floor
// Every form is one persistent kernel that resets its own counters (the
// last block out), so it is timed both as a plain launch between two events
// and as a one-node CUDA graph replayed between two events, as
// gpu_moe_baselines.py times the compiled layers. L2 scrubbed (a 2x L2
// memset) before each timed run; median of 20.
// Forms:
//   queue   chunks of C KB taken from a global counter (the decode kernel's
//           items), 256 threads, 8 16-byte loads in flight a thread;
//   static  block b reads chunks b, b + G, ... (no counter);
//   bulk    one block an SM, a ring of S stages of C KB filled by
//           cp.async.bulk (TMA) from thread 0, read back from shared memory;
//   routed  the queue form behind a routing step: every block reads its
//           share of an E x d bf16 router, sums it, counts itself done; the
//           last one runs a k-round warp arg-max over E values and releases
//           a flag that every block acquires before its first chunk
//           (steps: router and counter, arg-max rounds, flag seen by all);
//   routed by clusters of 8: no grid-wide counter: every cluster of 8
//           blocks reads the whole router (a block an eighth of its rows),
//           sums the blocks' partials through distributed shared memory and
//           selects the k experts by rank counting (steps: router rows,
//           the cluster's exchange, the selection; each the last block's).
// The chunks are the k experts' matrices (random k of E) at their places in
// a pool of all E experts, in the decode kernel's item order (matrix by
// matrix, expert by expert).
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include "read_chunk.cuh"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

// [0] queue, [32] blocks gone, [64] router blocks done, [96] routed flag.
__device__ unsigned counters[128];
// Timestamps (ns, %globaltimer) of the last launch: [0] first block in,
// [1] the routing block starts its top-k, [2] routed, [3] last block to see
// the flag, [4] last block out.
__device__ unsigned long long stamps[8];
__device__ __forceinline__ unsigned long long now() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ void stamp(int i) { stamps[i] = now(); }
__device__ __forceinline__ void stampMin(int i) { atomicMin(&stamps[i], now()); }
__device__ __forceinline__ void stampMax(int i) { atomicMax(&stamps[i], now()); }

enum Form { kQueue = 0, kStatic = 1, kBulk = 2, kRouted = 3, kCluster8 = 4 };

struct Args {
  const int4 *pool;
  const long long *chunks; // byte offsets
  int n, chunkVecs, form;
  const int4 *router;  // routed: E x d bf16
  int routerVecs;      // routed: 16-byte vectors of the router
  int experts, k;      // routed: the arg-max rounds
  int stages;          // bulk
  unsigned *sink;
};

__device__ __forceinline__ unsigned ldAcquire(const unsigned *p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void stRelease(unsigned *p, unsigned v) {
  asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// Chunks taken from the queue counter until none is left.
__device__ unsigned readQueue(const Args &a) {
  __shared__ int item;
  unsigned acc = 0;
  for (;;) {
    if (threadIdx.x == 0)
      item = atomicAdd(&counters[0], 1u);
    __syncthreads();
    int c = item;
    __syncthreads();
    if (c >= a.n)
      return acc;
    acc ^= readChunk(a.pool + a.chunks[c] / 16, a.chunkVecs);
  }
}

// The routing step of the routed form: the router's rows by block, sums
// into `logits` (one per expert, atomics), the last block selects k experts.
__device__ void route(const Args &a, float *logits) {
  __shared__ unsigned last;
  float sum = 0.f;
  int per = (a.routerVecs + gridDim.x - 1) / gridDim.x;
  int begin = blockIdx.x * per, end = min(a.routerVecs, begin + per);
  for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
    int4 v = __ldcs(a.router + i);
    sum += __int_as_float(v.x & 0x7fff0000) + __int_as_float(v.y << 16);
  }
  for (int o = 16; o; o >>= 1)
    sum += __shfl_xor_sync(~0u, sum, o);
  if (threadIdx.x % 32 == 0)
    atomicAdd(&logits[(begin / 128 + threadIdx.x / 32) % a.experts], sum);
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    last = atomicAdd(&counters[64], 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (last && threadIdx.x < 32) {
    __threadfence();
    stamp(1);
    // The experts' logits in registers (up to 8 a lane), then k rounds of a
    // warp arg-max by shuffles, the winner dropped each round.
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      int e = threadIdx.x + 32 * j;
      v[j] = e < a.experts ? __ldcg(&logits[e]) : -1e30f;
    }
    unsigned picked = 0;
    for (int r = 0; r < a.k; ++r) {
      float m = -1e30f;
      int id = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j)
        if (v[j] > m) {
          m = v[j];
          id = threadIdx.x + 32 * j;
        }
      for (int o = 16; o; o >>= 1) {
        float m2 = __shfl_xor_sync(~0u, m, o);
        int id2 = __shfl_xor_sync(~0u, id, o);
        if (m2 > m || (m2 == m && id2 < id)) {
          m = m2;
          id = id2;
        }
      }
#pragma unroll
      for (int j = 0; j < 8; ++j)
        if (threadIdx.x + 32 * j == id)
          v[j] = -1e30f;
      picked += id;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      int e = threadIdx.x + 32 * j;
      if (e < a.experts)
        logits[e] = 0.f;
    }
    __syncwarp();
    if (threadIdx.x == 0) {
      stamp(2);
      stRelease(&counters[96], 1u + (picked & 0));
    }
  }
  if (threadIdx.x == 0) {
    while (ldAcquire(&counters[96]) == 0)
      ;
    stampMax(3);
  }
  __syncthreads();
}

__device__ float routerLogits[1024];

__global__ void __launch_bounds__(256) stream(Args a) {
  unsigned acc = 0;
  if (threadIdx.x == 0)
    stampMin(0);
  if (a.form == kRouted)
    route(a, routerLogits);
  if (a.form == kStatic) {
    for (int c = blockIdx.x; c < a.n; c += gridDim.x)
      acc ^= readChunk(a.pool + a.chunks[c] / 16, a.chunkVecs);
  } else if (a.form == kBulk) {
    extern __shared__ __align__(128) int4 ring[];
    __shared__ __align__(8) unsigned long long full[16];
    int bytes = a.chunkVecs * 16;
    unsigned ringBase = unsigned(__cvta_generic_to_shared(ring));
    if (threadIdx.x == 0) {
      for (int s = 0; s < a.stages; ++s) {
        unsigned bar = unsigned(__cvta_generic_to_shared(&full[s]));
        asm volatile("mbarrier.init.shared.b64 [%0], 1;" ::"r"(bar));
      }
      asm volatile("fence.mbarrier_init.release.cluster;");
    }
    __syncthreads();
    // This block's chunks: b, b + G, ...
    auto issue = [&](int c, int s) {
      unsigned bar = unsigned(__cvta_generic_to_shared(&full[s]));
      asm volatile("mbarrier.arrive.expect_tx.shared.b64 _, [%0], %1;" ::"r"(bar),
                   "r"(bytes));
      asm volatile(
          "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes "
          "[%0], [%1], %2, [%3];" ::"r"(ringBase + s * bytes),
          "l"(reinterpret_cast<const char *>(a.pool) + a.chunks[c]), "r"(bytes),
          "r"(bar)
          : "memory");
    };
    int mine = (a.n - int(blockIdx.x) + int(gridDim.x) - 1) / int(gridDim.x);
    if (threadIdx.x == 0)
      for (int i = 0; i < min(mine, a.stages); ++i)
        issue(blockIdx.x + i * gridDim.x, i);
    for (int i = 0; i < mine; ++i) {
      int s = i % a.stages;
      unsigned phase = (i / a.stages) & 1;
      unsigned bar = unsigned(__cvta_generic_to_shared(&full[s]));
      asm volatile(
          "{\n .reg .pred p;\n W: mbarrier.try_wait.parity.shared.b64 p, [%0], %1;\n"
          " @!p bra W;\n}" ::"r"(bar),
          "r"(phase)
          : "memory");
      const int4 *p = ring + s * a.chunkVecs;
      for (int j = threadIdx.x; j < a.chunkVecs; j += blockDim.x) {
        int4 v = p[j];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
      }
      __syncthreads();
      if (threadIdx.x == 0 && i + a.stages < mine)
        issue(blockIdx.x + (i + a.stages) * gridDim.x, s);
    }
  } else {
    acc ^= readQueue(a);
  }
  if (acc == 0x12345678u)
    *a.sink = acc;
  // The last block out resets the counters for the next launch.
  __syncthreads();
  if (threadIdx.x == 0) {
    stampMax(4);
    __threadfence();
    if (atomicAdd(&counters[32], 1u) == gridDim.x - 1) {
      counters[0] = 0;
      counters[64] = 0;
      counters[96] = 0;
      __threadfence();
      counters[32] = 0;
    }
  }
}

namespace cg = cooperative_groups;

// The routed form without a grid-wide counter: every cluster of 8 blocks
// reduces the whole router itself (block r its rows [r d / 8, (r + 1) d /
// 8), partial sums exchanged through distributed shared memory), selects
// the k experts by rank counting (thread e counts the experts ahead of
// it), and streams. Needs d = 2048 and E in {64, 128}.
constexpr int kCluster = 8;
__global__ void __cluster_dims__(kCluster, 1, 1) __launch_bounds__(256)
    streamCluster(Args a, const __nv_bfloat16 *x) {
  __shared__ float part[256 / 8][128 + 1];
  __shared__ float partial[128];
  __shared__ float logit[128];
  __shared__ int chosen[8];
  cg::cluster_group cluster = cg::this_cluster();
  if (threadIdx.x == 0)
    stampMin(0);
  const int d = 2048, E = a.experts, groups = E / 8,
            lanes = 256 / groups, rows = d / kCluster;
  int r = int(cluster.block_rank());
  int g = threadIdx.x % groups, lane = threadIdx.x / groups;
  const int4 *w = a.router; // [d, E] bf16, 16 bytes = 8 experts
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int4 v[16];
  int per = rows / lanes; // 16 (E = 128) or 8 (E = 64)
#pragma unroll
  for (int i = 0; i < 16; ++i)
    if (i < per)
      v[i] = __ldcg(w + (r * rows + lane + i * lanes) * groups + g);
#pragma unroll
  for (int i = 0; i < 16; ++i)
    if (i < per) {
      float xv = __bfloat162float(x[r * rows + lane + i * lanes]);
      const __nv_bfloat16 *h = reinterpret_cast<const __nv_bfloat16 *>(&v[i]);
#pragma unroll
      for (int j = 0; j < 8; ++j)
        acc[j] += xv * __bfloat162float(h[j]);
    }
#pragma unroll
  for (int j = 0; j < 8; ++j)
    part[lane][g * 8 + j] = acc[j];
  __syncthreads();
  if (threadIdx.x < E) {
    float sum = 0.f;
    for (int l = 0; l < lanes; ++l)
      sum += part[l][threadIdx.x];
    partial[threadIdx.x] = sum;
  }
  if (threadIdx.x == 0)
    stampMax(1);
  cluster.sync();
  if (threadIdx.x < E) {
    float sum = 0.f;
#pragma unroll
    for (int q = 0; q < kCluster; ++q)
      sum += cluster.map_shared_rank(partial, q)[threadIdx.x];
    logit[threadIdx.x] = sum;
  }
  __syncthreads();
  if (threadIdx.x == 0)
    stampMax(2);
  if (threadIdx.x < E) {
    float me = logit[threadIdx.x];
    int rank = 0;
    for (int e = 0; e < E; ++e) {
      float o = logit[e];
      rank += (o > me) | ((o == me) & (e < int(threadIdx.x)));
    }
    if (rank < a.k)
      chosen[rank] = threadIdx.x;
  }
  __syncthreads();
  if (threadIdx.x == 0)
    stampMax(3);
  unsigned accx = (unsigned(chosen[0]) & 0x80000000u) ^ readQueue(a);
  if (accx == 0x12345678u)
    *a.sink = accx;
  // No block leaves while another of its cluster may read its partials.
  cluster.sync();
  if (threadIdx.x == 0) {
    stampMax(4);
    __threadfence();
    if (atomicAdd(&counters[32], 1u) == gridDim.x - 1) {
      counters[0] = 0;
      __threadfence();
      counters[32] = 0;
    }
  }
}

int main() {
  CHECK(cudaFuncSetAttribute(stream, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             200 << 10));
  ReadBuffers buf;
  int sms = buf.sms, l2 = buf.l2;
  int4 *pool = buf.pool;
  char *scrub = buf.scrub;
  unsigned *sink = buf.sink;
  long long *dChunks = buf.chunks;
  int4 *router;
  CHECK(cudaMalloc(&router, 1 << 21));
  CHECK(cudaMemset(router, 0x3c, 1 << 21));
  __nv_bfloat16 *xDev;
  CHECK(cudaMalloc(&xDev, 2048 * 2));
  CHECK(cudaMemset(xDev, 0x3c, 2048 * 2));
  cudaEvent_t ea, eb;
  CHECK(cudaEventCreate(&ea));
  CHECK(cudaEventCreate(&eb));
  cudaStream_t st;
  CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  std::mt19937_64 rng(7);

  std::vector<double> lastParts;
  // Median us of 20 runs of `a` on `grid` blocks: plain launches (graph =
  // false) or replays of a one-node graph.
  auto launch = [&](const Args &a, int grid, int threads, int smem) {
    if (a.form == kCluster8)
      streamCluster<<<grid, threads, 0, st>>>(a, xDev);
    else
      stream<<<grid, threads, smem, st>>>(a);
  };
  auto time = [&](Args a, int grid, int threads, int smem, bool graph) {
    cudaGraphExec_t exec = nullptr;
    if (graph) {
      cudaGraph_t g;
      CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
      launch(a, grid, threads, smem);
      CHECK(cudaStreamEndCapture(st, &g));
      CHECK(cudaGraphInstantiate(&exec, g, 0));
      CHECK(cudaGraphDestroy(g));
    }
    std::vector<float> us;
    std::vector<std::vector<double>> parts(4);
    for (int r = 0; r < 23; ++r) {
      unsigned long long init[8] = {~0ull, 0, 0, 0, 0, 0, 0, 0};
      CHECK(cudaMemcpyToSymbolAsync(stamps, init, sizeof(init), 0,
                                    cudaMemcpyHostToDevice, st));
      CHECK(cudaMemsetAsync(scrub, r, 2 * size_t(l2), st));
      CHECK(cudaEventRecord(ea, st));
      if (graph)
        CHECK(cudaGraphLaunch(exec, st));
      else
        launch(a, grid, threads, smem);
      CHECK(cudaEventRecord(eb, st));
      CHECK(cudaEventSynchronize(eb));
      float t;
      CHECK(cudaEventElapsedTime(&t, ea, eb));
      unsigned long long got[8];
      CHECK(cudaMemcpyFromSymbol(got, stamps, sizeof(got)));
      if (r >= 3) {
        us.push_back(t * 1e3f);
        if (a.form == kRouted || a.form == kCluster8)
          for (int i = 0; i < 3; ++i)
            parts[i].push_back((double(got[i + 1]) - double(got[i])) * 1e-3);
        parts[3].push_back((double(got[4]) - double(got[0])) * 1e-3);
      }
    }
    lastParts.clear();
    for (auto &v : parts) {
      std::sort(v.begin(), v.end());
      lastParts.push_back(v.empty() ? 0.0 : v[v.size() / 2]);
    }
    CHECK(cudaGetLastError());
    if (exec)
      CHECK(cudaGraphExecDestroy(exec));
    std::sort(us.begin(), us.end());
    return double(us[us.size() / 2]);
  };

  struct Shape {
    const char *name;
    int experts, k, mats;
    long long d, f;
  };
  Shape shapes[] = {{"qwen3-30b-a3b", 128, 8, 3, 2048, 768},
                    {"olmoe-1b-7b", 64, 8, 3, 2048, 1024},
                    {"ds-moe-128", 128, 1, 2, 2048, 8192}};
  std::printf("| shape | MB | form | chunk KB | blocks/SM | stages | launch us | "
              "graph us | graph GB/s | kernel span us | step 1 us | step 2 us | "
              "step 3 us |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  Args none{};
  none.pool = pool;
  none.chunks = dChunks;
  none.n = 0;
  none.chunkVecs = 1;
  none.form = kQueue;
  none.sink = sink;
  double t0 = time(none, sms * 2, 256, 0, false),
         g0 = time(none, sms * 2, 256, 0, true);
  std::printf("| empty | 0 | queue | - | 2 | - | %.1f | %.1f | - | %.1f | | | |\n",
              t0, g0, lastParts[3]);
  for (const Shape &s : shapes) {
    long long matBytes = s.d * s.f * 2, expertBytes = s.mats * matBytes;
    std::vector<int> ids(s.experts);
    for (int i = 0; i < s.experts; ++i)
      ids[i] = i;
    std::shuffle(ids.begin(), ids.end(), rng);
    long long total = expertBytes * s.k;
    auto run = [&](int form, long long chunkKB, int bps, int stages,
                   int threads = 256) {
      long long cb = chunkKB * 1024;
      std::vector<long long> chunks;
      for (int m = 0; m < s.mats; ++m)
        for (int i = 0; i < s.k; ++i)
          for (long long o = 0; o < matBytes; o += cb)
            chunks.push_back((long long)ids[i] * expertBytes + m * matBytes + o);
      CHECK(cudaMemcpy(dChunks, chunks.data(), chunks.size() * 8,
                       cudaMemcpyHostToDevice));
      Args a{};
      a.pool = pool;
      a.chunks = dChunks;
      a.n = int(chunks.size());
      a.chunkVecs = int(cb / 16);
      a.form = form;
      a.router = router;
      a.routerVecs = int(s.d * s.experts * 2 / 16);
      a.experts = s.experts;
      a.k = s.k;
      a.stages = stages;
      a.sink = sink;
      int grid = form == kBulk ? sms : sms * bps;
      if (form == kCluster8) {
        // Only as many clusters as fit at once (a cluster's blocks share a
        // GPC): a later cluster would start when an earlier one ends.
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(grid);
        cfg.blockDim = dim3(256);
        cudaLaunchAttribute attr;
        attr.id = cudaLaunchAttributeClusterDimension;
        attr.val.clusterDim.x = kCluster;
        attr.val.clusterDim.y = attr.val.clusterDim.z = 1;
        cfg.attrs = &attr;
        cfg.numAttrs = 1;
        int clusters = 0;
        CHECK(cudaOccupancyMaxActiveClusters(&clusters, streamCluster, &cfg));
        grid = std::min(grid, clusters * kCluster);
      }
      int smem = form == kBulk ? int(stages * cb) : 0;
      double tl = time(a, grid, threads, smem, false),
             tg = time(a, grid, threads, smem, true);
      static const char *names[] = {"queue", "static", "bulk", "routed",
                                    "routed by clusters of 8"};
      std::string label = names[form];
      if (threads != 256)
        label += " (" + std::to_string(threads) + " threads)";
      std::printf("| %s | %.1f | %s | %lld | %s | %s | %.1f | %.1f | %.0f | %.1f |",
                  s.name, total / 1e6, label.c_str(), chunkKB,
                  form == kCluster8 ? (std::to_string(bps) + " (" +
                                       std::to_string(grid) + " blocks)").c_str()
                  : std::to_string(form == kBulk ? 1 : bps).c_str(),
                  form == kBulk ? std::to_string(stages).c_str() : "-", tl, tg,
                  total / tg / 1e3, lastParts[3]);
      if (form == kRouted || form == kCluster8)
        std::printf(" %.2f | %.2f | %.2f |\n", lastParts[0], lastParts[1],
                    lastParts[2]);
      else
        std::printf(" | | |\n");
      std::fflush(stdout);
    };
    for (long long c : {16LL, 32LL, 96LL})
      for (int bps : {2, 4})
        run(kQueue, c, bps, 0);
    for (long long c : {64LL, 128LL})
      for (int threads : {192, 256})
        run(kQueue, c, 2, 0, threads);
    for (long long c : {16LL, 32LL})
      run(kStatic, c, 2, 0);
    run(kBulk, 48, 1, 4);
    for (long long c : {16LL, 32LL})
      for (int bps : {2, 4})
        run(kRouted, c, bps, 0);
    for (long long c : {16LL, 32LL})
      for (int bps : {2, 4})
        run(kCluster8, c, bps, 0);
  }
  return 0;
}
