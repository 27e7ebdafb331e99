//===- expert-gemv-main.cpp - Check and time the expert GEMV kernel --------===//
//
// Part of moe-compiler's GPU tests. For one expert's weights [d, f] (bf16)
// and R token rows: checks the MLIR-compiled kernel against a CPU reference
// on fresh random inputs, then times it against the copy-bandwidth floor for
// several split counts. Exits 77 (skipped) without a GPU.
//
//   gpu-expert-gemv-test [--quick]
//
//===----------------------------------------------------------------------===//

#include "GpuTestUtils.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

// The lowered @gemv_host: each memref<?x?xT> is (allocated, aligned, offset,
// size0, size1, stride0, stride1).
#define MEMREF2(T) T *, T *, int64_t, int64_t, int64_t, int64_t, int64_t
extern "C" void gemv_host(MEMREF2(uint16_t), MEMREF2(uint16_t), MEMREF2(float),
                          int64_t rows, int64_t splits, int64_t threads,
                          int64_t iterations);

namespace {

struct Case {
  const char *name;
  int64_t d, f;
};
} // namespace

using gpu_test::ok;

int main(int argc, char **argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  double bandwidth = 0;
  if (int rc = gpu_test::start(bandwidth))
    return rc;

  std::vector<Case> cases = {{"mixtral up", 4096, 14336},
                             {"deepseek-v3 up", 7168, 2048},
                             {"ds-moe-128 up", 2048, 8192},
                             {"qwen3 up", 2048, 768}};
  if (quick)
    cases.resize(1);
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  int failures = 0;
  std::printf("%-16s %4s %6s %10s %10s %8s\n", "weights", "rows", "splits",
              "us", "TB/s", "% floor");
  for (const Case &c : cases) {
    for (int64_t rows : {int64_t(1), int64_t(3), int64_t(4), int64_t(8)}) {
      size_t wn = size_t(c.d * c.f), xn = size_t(rows * c.d),
             hn = size_t(rows * c.f);
      std::vector<uint16_t> w(wn), x(xn);
      for (auto &v : w)
        v = moert_f32_to_bf16(dist(rng) * 0.05f);
      for (auto &v : x)
        v = moert_f32_to_bf16(dist(rng));
      void *dw, *dx, *dh;
      if (!ok(moert_cuda_alloc(wn * 2, &dw)) ||
          !ok(moert_cuda_alloc(xn * 2, &dx)) ||
          !ok(moert_cuda_alloc(hn * 4, &dh)))
        return 1;
      ok(moert_cuda_copy(dw, w.data(), wn * 2));
      ok(moert_cuda_copy(dx, x.data(), xn * 2));
      auto run = [&](int64_t splits, int64_t iterations) {
        gemv_host((uint16_t *)dx, (uint16_t *)dx, 0, rows, c.d, c.d, 1,
                  (uint16_t *)dw, (uint16_t *)dw, 0, c.d, c.f, c.f, 1,
                  (float *)dh, (float *)dh, 0, rows, c.f, c.f, 1, rows, splits,
                  256, iterations);
      };
      // Correctness: h zeroed (poison elsewhere would show), one launch.
      std::vector<float> h(hn, 0.0f), ref(hn, 0.0f);
      ok(moert_cuda_copy(dh, h.data(), hn * 4));
      run(32, 1);
      ok(moert_cuda_synchronize());
      ok(moert_cuda_copy(h.data(), dh, hn * 4));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < c.d; ++i) {
          float xv = moert_bf16_to_f32(x[r * c.d + i]);
          for (int64_t j = 0; j < c.f; ++j)
            ref[r * c.f + j] += xv * moert_bf16_to_f32(w[i * c.f + j]);
        }
      double num = 0, den = 0;
      for (size_t i = 0; i < hn; ++i) {
        num += (h[i] - ref[i]) * double(h[i] - ref[i]);
        den += double(ref[i]) * ref[i];
      }
      double rel = std::sqrt(num / den);
      if (!(rel < 1e-5)) {
        std::printf("%s rows=%lld: relative error %.3g\n", c.name,
                    (long long)rows, rel);
        ++failures;
      }
      double bytes = double(wn * 2 + xn * 2 + hn * 4);
      for (int64_t splits : {int64_t(16), int64_t(32), int64_t(64), int64_t(128)}) {
        if (quick && splits != 32)
          continue;
        run(splits, 3);
        ok(moert_cuda_synchronize());
        // Kernel time from CUDA events: the host loop around the launches
        // creates and synchronizes a stream per launch, which would swamp
        // the small cases.
        int64_t iters = 100;
        ok(moert_cuda_profile(1));
        run(splits, iters);
        double ms = 0.0;
        uint64_t launches = 0;
        moert_cuda_profile_read(&ms, &launches);
        ok(moert_cuda_profile(0));
        double us = ms * 1e3 / double(launches ? launches : 1);
        double tbs = bytes / (us * 1e-6) * 1e-12;
        std::printf("%-16s %4lld %6lld %10.2f %10.2f %7.0f%%\n", c.name,
                    (long long)rows, (long long)splits, us, tbs,
                    100.0 * tbs * 1e12 / bandwidth);
      }
      moert_cuda_free(dw);
      moert_cuda_free(dx);
      moert_cuda_free(dh);
    }
  }
  std::printf("%d failed\n", failures);
  return failures ? 1 : 0;
}
