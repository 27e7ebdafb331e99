//===- Reference.cpp - Straightforward C++ reference of a MoE layer --------===//
//
// Part of moe-compiler's test suite.
//
//===----------------------------------------------------------------------===//

#include "Reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

using namespace moe_ref;

float moe_ref::roundTo(DType t, float v) {
  if (t == DType::F32)
    return v;
  if (std::isnan(v))
    return v;
  if (t == DType::BF16) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    bits += 0x7FFF + ((bits >> 16) & 1);
    bits &= 0xFFFF0000u;
    float r;
    std::memcpy(&r, &bits, 4);
    return r;
  }
  // IEEE half: round through a correctly rounded conversion by hand.
  float a = std::fabs(v);
  if (a >= 65520.0f)
    return std::copysign(std::numeric_limits<float>::infinity(), v);
  if (a < 6.103515625e-05f) { // subnormal half: multiples of 2^-24
    float q = std::nearbyint(a * 16777216.0f) / 16777216.0f;
    return std::copysign(q, v);
  }
  int e;
  std::frexp(a, &e);                       // a = m * 2^e, m in [0.5, 1)
  float ulp = std::ldexp(1.0f, e - 11);    // 10 fraction bits
  float q = std::nearbyint(a / ulp) * ulp; // ties to even (default mode)
  return std::copysign(q, v);
}

namespace {
const float kNegInf = -std::numeric_limits<float>::infinity();
const float kPosInf = std::numeric_limits<float>::infinity();

float sigmoid(float x) { return 1.0f / (std::exp(-x) + 1.0f); }

float activate(Act a, float x) {
  switch (a) {
  case Act::Relu:
    return std::max(x, 0.0f);
  case Act::Gelu: {
    float e = std::erf(x * float(M_SQRT1_2));
    return (x * 0.5f) * (1.0f + e);
  }
  case Act::GeluTanh: {
    float x3 = x * (x * x);
    float inner = x + x3 * 0.044715f;
    float t = std::tanh(inner * 0.7978845608028654f);
    return (x * 0.5f) * (1.0f + t);
  }
  case Act::Silu:
    return x * sigmoid(x);
  }
  return x;
}

/// `(s, i)` before `(ps, pi)`: higher score first, lower index on ties.
bool before(float s, int64_t i, float ps, int64_t pi) {
  return s > ps || (s == ps && i < pi);
}

/// The first candidate after (prevS, prevI) in selection order.
template <typename ScoreAt, typename Allowed>
std::pair<float, int64_t> nextBest(int64_t n, float prevS, int64_t prevI,
                                   ScoreAt scoreAt, Allowed allowed) {
  float best = kNegInf;
  int64_t bi = -1;
  for (int64_t i = 0; i < n; ++i) {
    float s = scoreAt(i);
    bool after = before(prevS, prevI, s, i);
    bool better = bi < 0 || s > best;
    if (after && better && !std::isnan(s) && allowed(i)) {
      best = s;
      bi = i;
    }
  }
  return {best, bi};
}

/// out[n] = sum_i x[i] * w[i * cols + n], f32 in index order.
std::vector<float> rowTimes(const float *x, const float *w, int64_t rows,
                            int64_t cols) {
  std::vector<float> out(cols, 0.0f);
  for (int64_t n = 0; n < cols; ++n) {
    float acc = 0.0f;
    for (int64_t i = 0; i < rows; ++i)
      acc = acc + x[i] * w[i * cols + n];
    out[n] = acc;
  }
  return out;
}

/// One token row through an FFN (moe.mlp / one expert of moe.experts).
std::vector<float> ffnRow(const LayerConfig &c, const float *x, const float *up,
                          const float *gate, const float *down, int64_t f) {
  int64_t d = c.hidden;
  std::vector<float> h = rowTimes(x, up, d, f);
  std::vector<float> g;
  if (gate)
    g = rowTimes(x, gate, d, f);
  std::vector<float> a(f);
  for (int64_t n = 0; n < f; ++n)
    a[n] = roundTo(c.dtype, gate ? activate(c.act, g[n]) * h[n]
                                 : activate(c.act, h[n]));
  std::vector<float> y = rowTimes(a.data(), down, f, d);
  for (float &v : y)
    v = roundTo(c.dtype, v);
  return y;
}

const float *get(const Tensors &t, const std::string &name) {
  auto it = t.find(name);
  return it == t.end() ? nullptr : it->second.data();
}
} // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>>
moe_ref::layerTensors(const LayerConfig &c) {
  int64_t d = c.hidden, f = c.ffn, e = c.experts;
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  out.push_back({"x", {c.tokens, d}});
  out.push_back({"router", {d, e}});
  if (c.bias)
    out.push_back({"router_bias", {e}});
  out.push_back({"w_up", {e, d, f}});
  if (c.gated)
    out.push_back({"w_gate", {e, d, f}});
  out.push_back({"w_down", {e, f, d}});
  if (c.sharedFfn) {
    out.push_back({"shared_up", {d, c.sharedFfn}});
    if (c.sharedGated)
      out.push_back({"shared_gate", {d, c.sharedFfn}});
    out.push_back({"shared_down", {c.sharedFfn, d}});
    if (c.sharedCoef)
      out.push_back({"shared_coef", {d, 1}});
  }
  if (c.mlpFfn) {
    out.push_back({"mlp_up", {d, c.mlpFfn}});
    out.push_back({"mlp_down", {c.mlpFfn, d}});
    if (c.mlpCoef)
      out.push_back({"mlp_coef", {d, 2}});
  }
  return out;
}

void moe_ref::referenceRouter(const LayerConfig &c, const Tensors &t,
                              std::vector<int32_t> &ids,
                              std::vector<float> &weights) {
  int64_t T = c.tokens, d = c.hidden, E = c.experts, k = c.topK;
  const float *x = get(t, "x"), *wr = get(t, "router"),
              *bias = get(t, "router_bias");
  bool softmax = !c.sigmoid;
  ids.assign(T * k, -1);
  weights.assign(T * k, 0.0f);
  for (int64_t tok = 0; tok < T; ++tok) {
    std::vector<float> logits = rowTimes(x + tok * d, wr, d, E);
    std::vector<float> scores = logits;
    if (!softmax) {
      for (float &s : scores)
        s = sigmoid(s);
    } else if (!c.scoreAfterTopk) {
      float m = kNegInf;
      for (float l : logits)
        m = std::isnan(l) || std::isnan(m) ? NAN : std::max(m, l);
      float sum = 0.0f;
      for (float l : logits)
        sum = sum + std::exp(l - m);
      for (int64_t e = 0; e < E; ++e)
        scores[e] = std::exp(logits[e] - m) / sum;
    }
    std::vector<float> sel = scores;
    if (bias)
      for (int64_t e = 0; e < E; ++e)
        sel[e] = scores[e] + bias[e];

    int64_t per = c.nGroup ? E / c.nGroup : 0;
    std::vector<float> groupScore;
    float thrS = kPosInf;
    int64_t thrI = -1;
    if (c.nGroup) {
      for (int64_t g = 0; g < c.nGroup; ++g) {
        float b1 = kNegInf, b2 = kNegInf;
        for (int64_t i = 0; i < per; ++i) {
          float s = sel[g * per + i];
          bool gt1 = s > b1, gt2 = s > b2;
          float n1 = gt1 ? s : b1;
          float n2 = gt1 ? b1 : (gt2 ? s : b2);
          b1 = n1;
          b2 = n2;
        }
        groupScore.push_back(c.groupTop2Sum ? b1 + b2 : b1);
      }
      for (int64_t r = 0; r < c.topkGroup; ++r)
        std::tie(thrS, thrI) = nextBest(
            c.nGroup, thrS, thrI, [&](int64_t g) { return groupScore[g]; },
            [](int64_t) { return true; });
    }
    auto allowed = [&](int64_t e) {
      if (!c.nGroup)
        return true;
      int64_t g = e / per;
      float s = groupScore[g];
      return s > thrS || (s == thrS && g <= thrI);
    };
    const std::vector<float> &source =
        softmax && c.scoreAfterTopk ? logits : scores;
    float prevS = kPosInf;
    int64_t prevI = -1;
    for (int64_t j = 0; j < k; ++j) {
      auto [s, e] = nextBest(
          E, prevS, prevI, [&](int64_t i) { return sel[i]; }, allowed);
      ids[tok * k + j] = int32_t(e);
      weights[tok * k + j] = e >= 0 ? source[e] : 0.0f;
      prevS = s;
      prevI = e;
    }
    float *w = &weights[tok * k];
    if (softmax && c.scoreAfterTopk) {
      float m = kNegInf;
      for (int64_t j = 0; j < k; ++j)
        m = std::max(m, w[j]);
      float sum = 0.0f;
      for (int64_t j = 0; j < k; ++j)
        sum = sum + std::exp(w[j] - m);
      for (int64_t j = 0; j < k; ++j)
        w[j] = std::exp(w[j] - m) / sum;
    }
    if (c.renormalize) {
      float sum = 0.0f;
      for (int64_t j = 0; j < k; ++j)
        sum = sum + w[j];
      for (int64_t j = 0; j < k; ++j)
        w[j] = w[j] / sum;
    }
    if (c.scaling != 1.0)
      for (int64_t j = 0; j < k; ++j)
        w[j] = w[j] * float(c.scaling);
  }

  if (!c.capacityFactor)
    return;
  double factor = *c.capacityFactor * double(k) / double(E);
  int64_t cap = int64_t(std::ceil(double(T) * factor));
  cap = std::max(cap, c.minCapacity);
  if (!c.dropByScore) {
    std::vector<int64_t> counts(E, 0);
    for (int64_t j = 0; j < k; ++j)
      for (int64_t tok = 0; tok < T; ++tok) {
        int32_t e = ids[tok * k + j];
        if (e < 0)
          continue;
        if (counts[e] < cap) {
          ++counts[e];
        } else {
          ids[tok * k + j] = -1;
          weights[tok * k + j] = 0.0f;
        }
      }
    return;
  }
  std::vector<int32_t> origIds = ids;
  std::vector<float> origW = weights;
  for (int64_t a = 0; a < T * k; ++a) {
    if (origIds[a] < 0)
      continue;
    int64_t rank = 0;
    for (int64_t a2 = 0; a2 < T * k; ++a2)
      if (origIds[a2] == origIds[a] && before(origW[a2], a2, origW[a], a))
        ++rank;
    if (rank >= cap) {
      ids[a] = -1;
      weights[a] = 0.0f;
    }
  }
}

std::vector<float> moe_ref::referenceLayer(const LayerConfig &c,
                                           const Tensors &t) {
  int64_t T = c.tokens, d = c.hidden, f = c.ffn, k = c.topK;
  std::vector<int32_t> ids;
  std::vector<float> weights;
  referenceRouter(c, t, ids, weights);
  const float *x = get(t, "x");

  std::vector<float> out(T * d);
  for (int64_t tok = 0; tok < T; ++tok) {
    const float *xr = x + tok * d;
    std::vector<float> residual;
    std::vector<float> w(weights.begin() + tok * k,
                         weights.begin() + (tok + 1) * k);
    if (c.mlpFfn) {
      std::vector<float> m = ffnRow(c, xr, get(t, "mlp_up"), nullptr,
                                    get(t, "mlp_down"), c.mlpFfn);
      if (c.mlpCoef) {
        std::vector<float> l = rowTimes(xr, get(t, "mlp_coef"), d, 2);
        float c0 = sigmoid(l[0] - l[1]), c1 = sigmoid(l[1] - l[0]);
        for (float &wj : w)
          wj = wj * c0;
        for (float &v : m)
          v = roundTo(c.dtype, v * c1);
      }
      residual = m;
    }
    if (c.sharedFfn) {
      std::vector<float> s =
          ffnRow(c, xr, get(t, "shared_up"),
                 c.sharedGated ? get(t, "shared_gate") : nullptr,
                 get(t, "shared_down"), c.sharedFfn);
      if (c.sharedCoef) {
        float g = rowTimes(xr, get(t, "shared_coef"), d, 1)[0];
        float sg = sigmoid(g);
        for (float &v : s)
          v = roundTo(c.dtype, v * sg);
      }
      if (residual.empty()) {
        residual = s;
      } else {
        for (int64_t i = 0; i < d; ++i)
          residual[i] = roundTo(c.dtype, residual[i] + s[i]);
      }
    }
    std::vector<float> acc(d, 0.0f);
    if (!residual.empty())
      acc = residual;
    for (int64_t j = 0; j < k; ++j) {
      int32_t e = ids[tok * k + j];
      if (e < 0)
        continue;
      size_t wOff = size_t(e) * d * f, dOff = size_t(e) * f * d;
      std::vector<float> y =
          ffnRow(c, xr, get(t, "w_up") + wOff,
                 c.gated ? get(t, "w_gate") + wOff : nullptr,
                 get(t, "w_down") + dOff, f);
      for (int64_t i = 0; i < d; ++i)
        acc[i] = acc[i] + w[j] * y[i];
    }
    for (int64_t i = 0; i < d; ++i)
      out[tok * d + i] = roundTo(c.dtype, acc[i]);
  }
  return out;
}

std::string moe_ref::layerMlir(const LayerConfig &c) {
  const char *elt = c.dtype == DType::F32   ? "f32"
                    : c.dtype == DType::F16 ? "f16"
                                            : "bf16";
  auto ty = [&](const std::vector<int64_t> &shape, const char *e) {
    std::ostringstream os;
    os << "tensor<";
    for (int64_t s : shape)
      os << s << "x";
    os << e << ">";
    return os.str();
  };
  std::ostringstream args, operands;
  bool first = true;
  for (auto &[name, shape] : layerTensors(c)) {
    const char *e = name == "router_bias" ? "f32" : elt;
    std::string type = ty(shape, e);
    if (!first)
      args << ",\n    ";
    first = false;
    args << "%" << name << ": " << type << " {moe."
         << (name == "x" ? "input" : "weight") << " = \"" << name << "\"}";
    if (name == "x")
      continue;
    std::string keyword = name == "router"   ? "router"
                          : name == "w_up"   ? "up"
                          : name == "w_gate" ? "gate"
                          : name == "w_down" ? "down"
                                             : name;
    operands << " " << keyword << "(%" << name << " : " << type << ")";
  }
  const char *act = c.act == Act::Relu       ? "relu"
                    : c.act == Act::Gelu     ? "gelu"
                    : c.act == Act::GeluTanh ? "gelu_tanh"
                                             : "silu";
  std::ostringstream attrs;
  attrs << "activation = #moe.activation<" << act << ">, top_k = " << c.topK
        << " : i64";
  if (c.sigmoid)
    attrs << ", score_func = #moe.score_func<sigmoid>";
  if (c.scoreAfterTopk)
    attrs << ", score_after_topk";
  if (c.renormalize)
    attrs << ", renormalize";
  if (c.scaling != 1.0)
    attrs << ", scaling = " << c.scaling;
  if (c.capacityFactor) {
    attrs << ", capacity_factor = " << *c.capacityFactor;
    if (c.capacityFactor == std::floor(*c.capacityFactor))
      attrs << ".0";
    attrs << ", min_capacity = " << c.minCapacity << " : i64";
    if (c.dropByScore)
      attrs << ", drop_policy = #moe.drop_policy<score>";
  }
  if (c.nGroup)
    attrs << ", n_group = " << c.nGroup << " : i64, topk_group = "
          << c.topkGroup << " : i64, group_score = #moe.group_score<"
          << (c.groupTop2Sum ? "top2_sum" : "max") << ">";
  std::string xt = ty({c.tokens, c.hidden}, elt);
  std::ostringstream os;
  os << "func.func @layer(\n    " << args.str() << ")\n    -> (" << xt
     << " {moe.output = \"y\"}) {\n"
     << "  %y = moe.layer %x : " << xt << operands.str() << " {"
     << attrs.str() << "} -> " << xt << "\n"
     << "  return %y : " << xt << "\n}\n";
  return os.str();
}
