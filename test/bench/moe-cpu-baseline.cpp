//===- moe-cpu-baseline.cpp - Loop-over-experts C++ baseline for benchmarks ===//
//
// Part of moe-compiler's benchmarks. The straightforward CPU implementation a
// user would write (as Hugging Face's Mixtral block does): route every token,
// then loop over the experts, gather each expert's tokens, run its FFN with
// row-major (i, k, j) loops reading bf16/f16/f32 weights directly, and
// scatter-add the weighted results. Single-threaded, like the compiled code.
//
//   moe-cpu-baseline DIR [moe-testgen layer options] [--repeat N]
//   moe-cpu-baseline --bandwidth
//
// DIR holds the files of `moe-testgen gen`; the layer options must match.
//
//===----------------------------------------------------------------------===//

#include "../tools/moe-testgen/Reference.h"

#include "moert/moert.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace moe_ref;

namespace {

[[noreturn]] void die(const std::string &m) {
  std::fprintf(stderr, "moe-cpu-baseline: error: %s\n", m.c_str());
  std::exit(2);
}

/// Copy bandwidth of this machine in bytes/s (best of several 256 MiB
/// copies), the floor for weight-bound layers.
double bandwidth() {
  size_t n = size_t(256) << 20;
  std::vector<char> a(n, 1), b(n, 2);
  double best = 0.0;
  for (int i = 0; i < 5; ++i) {
    uint64_t t0 = moert_now_ns();
    std::memcpy(b.data(), a.data(), n);
    double s = double(moert_now_ns() - t0) * 1e-9;
    best = std::max(best, 2.0 * double(n) / s); // read + write
    a[i] = b[n - 1 - i];
  }
  return best;
}

struct Weights {
  moert_dtype dtype;
  const void *data;
  float at(size_t i) const {
    switch (dtype) {
    case MOERT_BF16:
      return moert_bf16_to_f32(static_cast<const uint16_t *>(data)[i]);
    case MOERT_F16:
      return moert_f16_to_f32(static_cast<const uint16_t *>(data)[i]);
    default:
      return static_cast<const float *>(data)[i];
    }
  }
};

Weights find(moert_st_file *f, const char *name) {
  moert_st_tensor t;
  if (moert_st_find(f, name, &t) != MOERT_OK)
    die(moert_last_error());
  return {t.dtype, t.data};
}

inline float load(const float *w, size_t i) { return w[i]; }
inline float load(const uint16_t *w, size_t i) { // bf16: the high half of f32
  uint32_t bits = uint32_t(w[i]) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// out[r, :] = x[r, :] (rows x k) * w (k x n), in (r, i, j) order so that the
/// inner loop is unit-stride and vectorizes.
template <typename W>
void matmulT(const std::vector<float> &x, size_t rows, size_t k, const W *w,
             size_t n, std::vector<float> &out) {
  out.assign(rows * n, 0.0f);
  for (size_t r = 0; r < rows; ++r)
    for (size_t i = 0; i < k; ++i) {
      float xv = x[r * k + i];
      float *o = &out[r * n];
      const W *row = w + i * n;
      for (size_t j = 0; j < n; ++j)
        o[j] += xv * load(row, j);
    }
}

void matmul(const std::vector<float> &x, size_t rows, size_t k,
            const Weights &w, size_t wOffset, size_t n,
            std::vector<float> &out) {
  if (w.dtype == MOERT_BF16)
    matmulT(x, rows, k, static_cast<const uint16_t *>(w.data) + wOffset, n,
            out);
  else if (w.dtype == MOERT_F32)
    matmulT(x, rows, k, static_cast<const float *>(w.data) + wOffset, n, out);
  else
    die("the baseline reads bf16 or f32 weights");
}

float act(Act a, float x) {
  switch (a) {
  case Act::Relu:
    return std::max(x, 0.0f);
  case Act::Gelu:
    return 0.5f * x * (1.0f + std::erf(x * float(M_SQRT1_2)));
  case Act::GeluTanh:
    return 0.5f * x *
           (1.0f + std::tanh(0.7978845608f * (x + 0.044715f * x * x * x)));
  case Act::Silu:
    return x / (1.0f + std::exp(-x));
  }
  return x;
}

} // namespace

int main(int argc, char **argv) {
  if (argc == 2 && std::strcmp(argv[1], "--bandwidth") == 0) {
    std::printf("bandwidth: %.3g GB/s\n", bandwidth() * 1e-9);
    return 0;
  }
  if (argc < 2)
    die("usage: moe-cpu-baseline DIR [layer options] [--repeat N]");
  std::string dir = argv[1];
  LayerConfig c;
  long repeat = 10;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc)
        die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--tokens")
      c.tokens = std::stoll(next());
    else if (a == "--hidden")
      c.hidden = std::stoll(next());
    else if (a == "--ffn")
      c.ffn = std::stoll(next());
    else if (a == "--experts")
      c.experts = std::stoll(next());
    else if (a == "--top-k")
      c.topK = std::stoll(next());
    else if (a == "--renormalize")
      c.renormalize = true;
    else if (a == "--plain")
      c.gated = false;
    else if (a == "--activation") {
      std::string v = next();
      c.act = v == "relu" ? Act::Relu : v == "gelu" ? Act::Gelu
              : v == "gelu_tanh" ? Act::GeluTanh : Act::Silu;
    } else if (a == "--dtype")
      next(); // read from the files
    else if (a == "--repeat")
      repeat = std::stol(next());
    else
      die("unsupported option '" + a + "'");
  }
  moert_st_file *wf = nullptr, *xf = nullptr;
  if (moert_st_open((dir + "/weights.safetensors").c_str(), &wf) != MOERT_OK ||
      moert_st_open((dir + "/input.safetensors").c_str(), &xf) != MOERT_OK)
    die(moert_last_error());
  Weights router = find(wf, "router"), up = find(wf, "w_up"),
          down = find(wf, "w_down");
  Weights gate = c.gated ? find(wf, "w_gate") : Weights{MOERT_F32, nullptr};
  Weights xw = find(xf, "x");
  size_t T = c.tokens, d = c.hidden, f = c.ffn, E = c.experts, k = c.topK;

  std::vector<float> y(T * d);
  auto run = [&]() {
    std::vector<float> x(T * d);
    for (size_t i = 0; i < T * d; ++i)
      x[i] = xw.at(i);
    // Routing: softmax over the router logits, top-k, renormalise.
    std::vector<float> logits;
    matmul(x, T, d, router, 0, E, logits);
    std::vector<std::vector<std::pair<size_t, float>>> perExpert(E);
    std::vector<size_t> order(E);
    for (size_t t = 0; t < T; ++t) {
      float *l = &logits[t * E];
      float m = *std::max_element(l, l + E), sum = 0.0f;
      for (size_t e = 0; e < E; ++e)
        sum += (l[e] = std::exp(l[e] - m));
      for (size_t e = 0; e < E; ++e)
        l[e] /= sum;
      for (size_t e = 0; e < E; ++e)
        order[e] = e;
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](size_t a, size_t b) { return l[a] > l[b]; });
      float norm = 0.0f;
      for (size_t j = 0; j < k; ++j)
        norm += l[order[j]];
      for (size_t j = 0; j < k; ++j)
        perExpert[order[j]].push_back(
            {t, c.renormalize ? l[order[j]] / norm : l[order[j]]});
    }
    std::fill(y.begin(), y.end(), 0.0f);
    std::vector<float> xe, h, g, o;
    for (size_t e = 0; e < E; ++e) {
      auto &rows = perExpert[e];
      if (rows.empty())
        continue;
      xe.resize(rows.size() * d);
      for (size_t r = 0; r < rows.size(); ++r)
        std::memcpy(&xe[r * d], &x[rows[r].first * d], d * 4);
      matmul(xe, rows.size(), d, up, e * d * f, f, h);
      if (c.gated) {
        matmul(xe, rows.size(), d, gate, e * d * f, f, g);
        for (size_t i = 0; i < h.size(); ++i)
          h[i] *= act(c.act, g[i]);
      } else {
        for (float &v : h)
          v = act(c.act, v);
      }
      matmul(h, rows.size(), f, down, e * f * d, d, o);
      for (size_t r = 0; r < rows.size(); ++r)
        for (size_t i = 0; i < d; ++i)
          y[rows[r].first * d + i] += rows[r].second * o[r * d + i];
    }
  };
  run(); // warm-up
  std::vector<double> us;
  for (long i = 0; i < repeat; ++i) {
    uint64_t t0 = moert_now_ns();
    run();
    us.push_back(double(moert_now_ns() - t0) / 1000.0);
  }
  std::sort(us.begin(), us.end());
  std::printf("latency: median %.1f us, min %.1f us over %ld runs\n",
              us[us.size() / 2], us.front(), repeat);
  moert_st_close(wf);
  moert_st_close(xf);
  return 0;
}
