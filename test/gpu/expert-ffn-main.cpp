//===- expert-ffn-main.cpp - A whole expert FFN on the GPU vs the reference ===//
//
// Part of moe-compiler's GPU tests. SwiGLU experts, random routing, fresh
// random inputs, a poisoned output; the reference is moe.experts' semantics
// (f32 accumulation, hidden activations rounded to bf16, output rounded).
// Also reports the kernels' time against the copy floor of the weights hit.
// Exits 77 without a GPU.
//
//===----------------------------------------------------------------------===//

#include "GpuTestUtils.h"

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
extern "C" void ffn_host(MEMREF2(uint16_t), MEMREF1(int32_t), MEMREF3(uint16_t),
                         MEMREF3(uint16_t), MEMREF3(uint16_t), MEMREF2(float),
                         MEMREF2(float), MEMREF2(uint16_t), MEMREF2(float),
                         MEMREF2(uint16_t), int64_t splits);

using gpu_test::ok;

namespace {
struct Shape {
  const char *name;
  int64_t experts, k, d, f, tokens;
};
float bf(uint16_t v) { return moert_bf16_to_f32(v); }
float silu(float x) { return x / (1.0f + std::exp(-x)); }
void *upload(const void *data, size_t bytes) {
  void *p = nullptr;
  if (!ok(moert_cuda_alloc(bytes, &p)))
    std::exit(1);
  if (data)
    ok(moert_cuda_copy(p, data, bytes));
  return p;
}
} // namespace

int main() {
  double bandwidth = 0;
  if (int rc = gpu_test::start(bandwidth))
    return rc;
  std::vector<Shape> shapes = {{"olmoe-1b-7b", 64, 8, 2048, 1024, 1},
                               {"olmoe-1b-7b", 64, 8, 2048, 1024, 16},
                               {"qwen3-30b-a3b", 128, 8, 2048, 768, 16},
                               {"mixtral-8x7b", 8, 2, 4096, 14336, 1}};
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  int failures = 0;
  std::printf("%-14s %6s %5s %10s %8s %10s\n", "shape", "tokens", "hit", "us",
              "% floor", "rel error");
  for (const Shape &s : shapes) {
    size_t wn = size_t(s.experts * s.d * s.f);
    std::vector<uint16_t> block((size_t(1) << 20) + 13);
    auto fill = [&](std::vector<uint16_t> &w, float scale) {
      for (auto &v : block)
        v = moert_f32_to_bf16(dist(rng) * scale);
      w.resize(wn);
      for (size_t i = 0; i < wn; ++i)
        w[i] = block[(i * 7 + 3) % block.size()];
    };
    std::vector<uint16_t> wu, wg, wd;
    fill(wu, 1.0f / std::sqrt(float(s.d)));
    fill(wg, 1.0f / std::sqrt(float(s.d)));
    fill(wd, 1.0f / std::sqrt(float(s.f)));
    // Random routing into expert-major rows.
    std::vector<std::vector<int64_t>> rowsOf(s.experts);
    std::uniform_int_distribution<int64_t> pick(0, s.experts - 1);
    for (int64_t t = 0; t < s.tokens; ++t) {
      std::set<int64_t> chosen;
      while (int64_t(chosen.size()) < s.k)
        chosen.insert(pick(rng));
      for (int64_t e : chosen)
        rowsOf[e].push_back(t);
    }
    int64_t N = s.tokens * s.k, hit = 0;
    std::vector<uint16_t> x(size_t(s.tokens * s.d)), xp(size_t(N * s.d));
    for (auto &v : x)
      v = moert_f32_to_bf16(dist(rng));
    std::vector<int32_t> offsets(s.experts + 1);
    std::vector<int64_t> expertOfRow;
    int64_t row = 0;
    for (int64_t e = 0; e < s.experts; ++e) {
      offsets[e] = int32_t(row);
      hit += !rowsOf[e].empty();
      for (int64_t t : rowsOf[e]) {
        std::memcpy(&xp[size_t(row * s.d)], &x[size_t(t * s.d)], s.d * 2);
        expertOfRow.push_back(e);
        ++row;
      }
    }
    offsets[s.experts] = int32_t(row);

    void *dx = upload(xp.data(), xp.size() * 2);
    void *doff = upload(offsets.data(), offsets.size() * 4);
    void *dwu = upload(wu.data(), wn * 2), *dwg = upload(wg.data(), wn * 2),
         *dwd = upload(wd.data(), wn * 2);
    void *dh = upload(nullptr, size_t(N * s.f) * 4);
    void *dg = upload(nullptr, size_t(N * s.f) * 4);
    void *da = upload(nullptr, size_t(N * s.f) * 2);
    void *dy = upload(nullptr, size_t(N * s.d) * 4);
    std::vector<uint16_t> out(size_t(N * s.d), 0xFFFF); // NaN poison
    void *dout = upload(out.data(), out.size() * 2);
    auto run = [&](int64_t splits) {
      ffn_host((uint16_t *)dx, (uint16_t *)dx, 0, N, s.d, s.d, 1,
               (int32_t *)doff, (int32_t *)doff, 0, s.experts + 1, 1,
               (uint16_t *)dwu, (uint16_t *)dwu, 0, s.experts, s.d, s.f,
               s.d * s.f, s.f, 1, (uint16_t *)dwg, (uint16_t *)dwg, 0,
               s.experts, s.d, s.f, s.d * s.f, s.f, 1, (uint16_t *)dwd,
               (uint16_t *)dwd, 0, s.experts, s.f, s.d, s.f * s.d, s.d, 1,
               (float *)dh, (float *)dh, 0, N, s.f, s.f, 1, (float *)dg,
               (float *)dg, 0, N, s.f, s.f, 1, (uint16_t *)da, (uint16_t *)da,
               0, N, s.f, s.f, 1, (float *)dy, (float *)dy, 0, N, s.d, s.d, 1,
               (uint16_t *)dout, (uint16_t *)dout, 0, N, s.d, s.d, 1, splits);
    };
    run(16);
    ok(moert_cuda_synchronize());
    ok(moert_cuda_copy(out.data(), dout, out.size() * 2));

    // Reference: moe.experts on each row.
    double num = 0, den = 0;
    bool nan = false;
    for (int64_t r = 0; r < N; ++r) {
      int64_t e = expertOfRow[size_t(r)];
      std::vector<float> a(size_t(s.f));
      for (int64_t c = 0; c < s.f; ++c) {
        float h = 0, g = 0;
        for (int64_t i = 0; i < s.d; ++i) {
          float xv = bf(xp[size_t(r * s.d + i)]);
          size_t wi = size_t((e * s.d + i) * s.f + c);
          h += xv * bf(wu[wi]);
          g += xv * bf(wg[wi]);
        }
        a[size_t(c)] = bf(moert_f32_to_bf16(silu(g) * h));
      }
      for (int64_t c = 0; c < s.d; ++c) {
        float y = 0;
        for (int64_t i = 0; i < s.f; ++i)
          y += a[size_t(i)] * bf(wd[size_t((e * s.f + i) * s.d + c)]);
        float want = bf(moert_f32_to_bf16(y));
        float got = bf(out[size_t(r * s.d + c)]);
        nan |= std::isnan(got);
        num += double(got - want) * (got - want);
        den += double(want) * want;
      }
    }
    double rel = std::sqrt(num / den);
    // bf16 outputs; the GPU sums in another order and its exp is approximate.
    bool good = !nan && rel < 1e-2;
    failures += !good;

    ok(moert_cuda_profile(1));
    for (int i = 0; i < 10; ++i)
      run(16);
    double ms = 0;
    uint64_t launches = 0;
    moert_cuda_profile_read(&ms, &launches);
    ok(moert_cuda_profile(0));
    double us = ms * 1e3 / 10.0;
    double bytes = double(hit) * 3 * s.d * s.f * 2;
    std::printf("%-14s %6lld %5lld %10.2f %7.0f%% %10.3g%s\n", s.name,
                (long long)s.tokens, (long long)hit, us,
                100.0 * (bytes / bandwidth * 1e6) / us, rel,
                good ? "" : "  FAIL");
    for (void *p : {dx, doff, dwu, dwg, dwd, dh, dg, da, dy, dout})
      moert_cuda_free(p);
  }
  std::printf("%d failed\n", failures);
  return failures ? 1 : 0;
}
