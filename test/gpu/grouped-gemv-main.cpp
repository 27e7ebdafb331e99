//===- grouped-gemv-main.cpp - Check and time the grouped expert kernel ----===//
//
// Part of moe-compiler's GPU tests. For the standard MoE shapes (the up
// projection of every expert a step hits, bf16) at 1, 16 and 128 tokens with
// random routing: checks the MLIR-compiled grouped kernel against the CPU on
// fresh random inputs and times it with CUDA events against the copy floor
// (the bytes of the experts hit, read once). Exits 77 without a GPU.
//
//   gpu-grouped-gemv-test [--quick]
//
//===----------------------------------------------------------------------===//

#include "GpuTestUtils.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#define MEMREF1(T) T *, T *, int64_t, int64_t, int64_t
#define MEMREF2(T) T *, T *, int64_t, int64_t, int64_t, int64_t, int64_t
#define MEMREF3(T)                                                             \
  T *, T *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t
extern "C" void grouped_host(MEMREF2(uint16_t), MEMREF1(int32_t),
                             MEMREF3(uint16_t), MEMREF2(float), int64_t splits,
                             int64_t threads);

namespace {
struct Shape {
  const char *name;
  int64_t experts, k, d, f;
};
} // namespace

using gpu_test::ok;

int main(int argc, char **argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  double bandwidth = 0;
  if (int rc = gpu_test::start(bandwidth))
    return rc;

  std::vector<Shape> shapes = {{"ds-moe-128", 128, 1, 2048, 8192},
                               {"mixtral-8x7b", 8, 2, 4096, 14336},
                               {"qwen3-30b-a3b", 128, 8, 2048, 768},
                               {"deepseek-v3", 256, 8, 7168, 2048},
                               {"olmoe-1b-7b", 64, 8, 2048, 1024}};
  std::vector<int64_t> tokenCounts = {1, 16, 128};
  if (quick) {
    shapes = {{"olmoe-1b-7b", 64, 8, 2048, 1024}};
    tokenCounts = {16};
  }
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  int failures = 0;
  std::printf("%-14s %6s %6s %6s %10s %10s %8s\n", "shape", "tokens", "hit",
              "splits", "us", "TB/s", "% floor");
  for (const Shape &s : shapes) {
    // Weights: a random block repeated with an odd period (filling several
    // GB from the RNG would take longer than the benchmark).
    size_t wn = size_t(s.experts * s.d * s.f);
    std::vector<uint16_t> block((size_t(1) << 22) + 7);
    for (auto &v : block)
      v = moert_f32_to_bf16(dist(rng) * 0.05f);
    std::vector<uint16_t> w(wn);
    for (size_t i = 0; i < wn; ++i)
      w[i] = block[i % block.size()];
    void *dw = nullptr;
    if (!ok(moert_cuda_alloc(wn * 2, &dw)))
      return 1;
    ok(moert_cuda_copy(dw, w.data(), wn * 2));
    for (int64_t T : tokenCounts) {
      // Random routing: k distinct experts per token, then expert-major rows.
      std::vector<std::vector<int64_t>> rowsOf(s.experts);
      std::uniform_int_distribution<int64_t> pick(0, s.experts - 1);
      for (int64_t t = 0; t < T; ++t) {
        std::set<int64_t> chosen;
        while (int64_t(chosen.size()) < s.k)
          chosen.insert(pick(rng));
        for (int64_t e : chosen)
          rowsOf[e].push_back(t);
      }
      int64_t N = T * s.k;
      std::vector<uint16_t> x(size_t(T * s.d)), xp(size_t(N * s.d));
      for (auto &v : x)
        v = moert_f32_to_bf16(dist(rng));
      std::vector<int32_t> offsets(s.experts + 1, 0);
      int64_t row = 0, hit = 0;
      for (int64_t e = 0; e < s.experts; ++e) {
        offsets[e] = int32_t(row);
        hit += !rowsOf[e].empty();
        for (int64_t t : rowsOf[e])
          std::memcpy(&xp[size_t(row++ * s.d)], &x[size_t(t * s.d)], s.d * 2);
      }
      offsets[s.experts] = int32_t(row);
      void *dx = nullptr, *doff = nullptr, *dh = nullptr;
      if (!ok(moert_cuda_alloc(xp.size() * 2, &dx)) ||
          !ok(moert_cuda_alloc(offsets.size() * 4, &doff)) ||
          !ok(moert_cuda_alloc(size_t(N * s.f) * 4, &dh)))
        return 1;
      ok(moert_cuda_copy(dx, xp.data(), xp.size() * 2));
      ok(moert_cuda_copy(doff, offsets.data(), offsets.size() * 4));
      auto launch = [&](int64_t splits) {
        grouped_host((uint16_t *)dx, (uint16_t *)dx, 0, N, s.d, s.d, 1,
                     (int32_t *)doff, (int32_t *)doff, 0, s.experts + 1, 1,
                     (uint16_t *)dw, (uint16_t *)dw, 0, s.experts, s.d, s.f,
                     s.d * s.f, s.f, 1, (float *)dh, (float *)dh, 0, N, s.f,
                     s.f, 1, splits, 256);
      };
      // Correctness on a zeroed output.
      std::vector<float> h(size_t(N * s.f), 0.0f);
      ok(moert_cuda_copy(dh, h.data(), h.size() * 4));
      launch(16);
      ok(moert_cuda_synchronize());
      ok(moert_cuda_copy(h.data(), dh, h.size() * 4));
      double num = 0, den = 0;
      for (int64_t e = 0; e < s.experts; ++e)
        for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r) {
          std::vector<float> ref(size_t(s.f), 0.0f);
          for (int64_t i = 0; i < s.d; ++i) {
            float xv = moert_bf16_to_f32(xp[size_t(r * s.d + i)]);
            const uint16_t *wr = &w[size_t((e * s.d + i) * s.f)];
            for (int64_t j = 0; j < s.f; ++j)
              ref[j] += xv * moert_bf16_to_f32(wr[j]);
          }
          for (int64_t j = 0; j < s.f; ++j) {
            double diff = h[size_t(r * s.f + j)] - ref[j];
            num += diff * diff;
            den += double(ref[j]) * ref[j];
          }
        }
      double rel = std::sqrt(num / den);
      if (!(rel < 1e-5)) {
        std::printf("%s T=%lld: relative error %.3g\n", s.name, (long long)T,
                    rel);
        ++failures;
      }
      double bytes = double(hit) * s.d * s.f * 2 + double(N) * s.d * 2 +
                     double(N) * s.f * 4;
      double best = 1e30;
      int64_t bestSplits = 0;
      for (int64_t splits : {int64_t(4), int64_t(8), int64_t(16), int64_t(32),
                             int64_t(64)}) {
        launch(splits);
        ok(moert_cuda_synchronize());
        ok(moert_cuda_profile(1));
        for (int i = 0; i < 20; ++i)
          launch(splits);
        double ms = 0;
        uint64_t n = 0;
        moert_cuda_profile_read(&ms, &n);
        ok(moert_cuda_profile(0));
        double us = ms * 1e3 / double(n ? n : 1);
        if (us < best) {
          best = us;
          bestSplits = splits;
        }
      }
      double tbs = bytes / (best * 1e-6) * 1e-12;
      std::printf("%-14s %6lld %6lld %6lld %10.2f %10.2f %7.0f%%\n", s.name,
                  (long long)T, (long long)hit, (long long)bestSplits, best, tbs,
                  100.0 * tbs * 1e12 / bandwidth);
      moert_cuda_free(dx);
      moert_cuda_free(doff);
      moert_cuda_free(dh);
    }
    moert_cuda_free(dw);
  }
  std::printf("%d failed\n", failures);
  return failures ? 1 : 0;
}
