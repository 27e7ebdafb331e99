//===- HFArchitectures.cpp - config.json keys of each MoE architecture ----===//
//
// Part of moe-compiler.
//
// One function per architecture family maps its config.json keys to MoE
// layers: which layers are sparse, routing attributes, and the checkpoint
// names and shapes of the weights. The routing follows each family's
// modeling code in transformers (or DeepSeek's and Megatron-DeepSpeed's own
// code where that is the reference); where moe.layer cannot express an option
// exactly the mapping refuses it or records a note.
//
//===----------------------------------------------------------------------===//

#include "HFImportInternal.h"

#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <set>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::hf;

namespace {

/// Maps hidden_act / dense_act_fn to the moe activation.
FailureOr<Activation> activationFor(Config &cfg, StringRef key,
                                    StringRef dflt) {
  FailureOr<std::string> act = cfg.string(key, dflt);
  if (failed(act))
    return failure();
  StringRef a = *act;
  if (a == "silu" || a == "swish")
    return Activation::silu;
  if (a == "gelu")
    return Activation::gelu;
  if (a == "gelu_new" || a == "gelu_pytorch_tanh" || a == "gelu_fast")
    return Activation::gelu_tanh;
  if (a == "relu")
    return Activation::relu;
  return cfg.fail("unsupported '" + key + "' value '" + a +
                  "' (supported: silu, gelu, gelu_new, gelu_pytorch_tanh, "
                  "relu)");
}

LogicalResult checkTopK(Config &cfg, StringRef key, int64_t k,
                        int64_t experts) {
  if (k > experts)
    return cfg.fail("'" + key + "' (" + Twine(k) +
                    ") exceeds the number of experts (" + Twine(experts) + ")");
  return success();
}

/// The transformer parts this importer does not emit yet.
void addDenseSkips(ModelSpec &m, StringRef layers, StringRef embed,
                   StringRef head) {
  m.skipped.push_back(embed.str());
  m.skipped.push_back(
      ("attention and norms of every layer (" + layers + ")").str());
  if (!head.empty())
    m.skipped.push_back(head.str());
}

std::string denseNote(ArrayRef<int64_t> dense) {
  std::string s = "dense MLP layers [";
  llvm::raw_string_ostream os(s);
  llvm::interleaveComma(dense, os);
  os << "]";
  return s;
}

//===----------------------------------------------------------------------===//
// Gated-FFN decoder families: Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek
//===----------------------------------------------------------------------===//

/// A dense MLP block of layer `i` whose weights are named `<prefix><name>`
/// ([out, in] Linears): `up`, `down` and, unless empty, `gate`; width `f`.
LayerSpec denseMlpBlock(int64_t i, const std::string &prefix, StringRef gate,
                        StringRef up, StringRef down, int64_t d, int64_t f,
                        Activation act) {
  LayerSpec l;
  l.index = i;
  l.scope = prefix.substr(0, prefix.size() - 1);
  l.denseMlp = true;
  if (!gate.empty())
    l.sharedGate = linear(prefix + gate.str(), f, d);
  l.sharedUp = linear(prefix + up.str(), f, d);
  l.sharedDown = linear(prefix + down.str(), d, f);
  l.activation = act;
  return l;
}

/// A Llama-style gated MLP block `model.layers.<i>.mlp.{gate,up,down}_proj`
/// of width `f` (the dense layers of Qwen-MoE and DeepSeek models).
LayerSpec denseMlp(int64_t i, int64_t d, int64_t f, Activation act) {
  return denseMlpBlock(i, "model.layers." + std::to_string(i) + ".mlp.",
                       "gate_proj.weight", "up_proj.weight", "down_proj.weight",
                       d, f, act);
}

/// Experts named `<prefix><j>.<proj>.weight`; gate/up [f, d], down [d, f].
void gatedExperts(LayerSpec &l, StringRef prefix, StringRef gateProj,
                  StringRef upProj, StringRef downProj, int64_t e, int64_t d,
                  int64_t f) {
  l.expertPrefix = prefix.str();
  l.numExperts = e;
  l.gate = stacked((prefix + "*." + gateProj + ".weight").str(), e, f, d);
  l.up = stacked((prefix + "*." + upProj + ".weight").str(), e, f, d);
  l.down = stacked((prefix + "*." + downProj + ".weight").str(), e, d, f);
}

} // namespace

LogicalResult hf::importMixtral(Config &cfg, ModelSpec &m) {
  FailureOr<int64_t> d = cfg.size("hidden_size"),
                     f = cfg.size("intermediate_size"),
                     layers = cfg.ranged("num_hidden_layers", 1, kMaxLayers),
                     e = cfg.ranged("num_local_experts", 1, kMaxExperts),
                     k = cfg.ranged("num_experts_per_tok", 1, kMaxExperts);
  if (failed(d) || failed(f) || failed(layers) || failed(e) || failed(k) ||
      failed(checkTopK(cfg, "num_experts_per_tok", *k, *e)))
    return failure();
  FailureOr<Activation> act = activationFor(cfg, "hidden_act", "silu");
  if (failed(act))
    return failure();
  m.hidden = *d;
  m.numLayers = *layers;
  for (int64_t i = 0; i < *layers; ++i) {
    LayerSpec l;
    l.index = i;
    std::string p = "model.layers." + std::to_string(i) + ".block_sparse_moe.";
    l.scope = p.substr(0, p.size() - 1);
    l.router = linear(p + "gate.weight", *e, *d);
    gatedExperts(l, p + "experts.", "w1", "w3", "w2", *e, *d, *f);
    l.activation = *act;
    l.topK = *k;
    l.renormalize = true; // softmax over all experts, then top-k renormalised
    m.layers.push_back(std::move(l));
  }
  addDenseSkips(m, "model.layers.*.self_attn, *_layernorm",
                "model.embed_tokens", "model.norm, lm_head");
  return success();
}

/// `v` as a short decimal (%g).
static std::string decimal(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

LogicalResult hf::readRope(Config &cfg, double defaultTheta, int64_t rotary,
                       RopeConfig &out) {
  // transformers 5 keeps the base and the scaling in `rope_parameters`;
  // transformers 4 has `rope_theta` and `rope_scaling`.
  const json::Object *params = nullptr;
  StringRef where;
  for (StringRef key : {"rope_parameters", "rope_scaling"}) {
    const json::Value *v = cfg.get(key);
    if (!v)
      continue;
    params = v->getAsObject();
    if (!params)
      return cfg.fail("'" + key + "' must be an object, got " +
                      Config::describe(*v));
    where = key;
    break;
  }
  FailureOr<double> theta = cfg.number("rope_theta", defaultTheta);
  FailureOr<double> partial = cfg.number("partial_rotary_factor", 1.0);
  if (failed(theta) || failed(partial))
    return failure();
  static const json::Object none;
  Config p(params ? *params : none, cfg.file, cfg.error);
  p.setArch((cfg.arch.empty() ? "" : cfg.arch + ": ") + "'" + where.str() +
            "'");
  // transformers 5 keeps partial_rotary_factor in rope_parameters too.
  partial = p.number("partial_rotary_factor", *partial);
  if (failed(partial))
    return failure();
  if (*partial != 1.0)
    return cfg.fail("'partial_rotary_factor' " + decimal(*partial) +
                    " is not supported (only whole heads rotate)");
  if (params) {
    theta = p.number("rope_theta", *theta);
    if (failed(theta))
      return failure();
  }
  if (!(*theta > 0))
    return cfg.fail("'rope_theta' must be positive");
  out.theta = *theta;
  if (!params)
    return success();
  FailureOr<std::string> type = p.string("type", StringRef("default"));
  if (failed(type))
    return failure();
  FailureOr<std::string> ropeType = p.string("rope_type", StringRef(*type));
  if (failed(ropeType))
    return failure();
  if (*ropeType == "default")
    return success();
  if (*ropeType != "yarn" && *ropeType != "linear")
    return p.fail("RoPE type '" + *ropeType +
                  "' is not supported (supported: default, linear, yarn)");
  FailureOr<double> maxPos = cfg.number("max_position_embeddings", 0.0);
  FailureOr<double> original =
      p.number("original_max_position_embeddings", *maxPos);
  if (failed(maxPos) || failed(original))
    return failure();
  // transformers 5: without `factor`, the ratio of the context lengths
  // (transformers 4.5x took that ratio whenever the original length was
  // given; the two agree where max_position_embeddings was raised by the
  // factor, as in DeepSeek-V3's configs).
  if (!p.has("factor") && !(*original > 0 && *maxPos > 0))
    return p.fail("RoPE type '" + *ropeType + "' needs 'factor' (or "
                  "'original_max_position_embeddings' and "
                  "'max_position_embeddings')");
  double ratio = *original > 0 ? *maxPos / *original : 0.0;
  FailureOr<double> factor = p.number("factor", ratio);
  if (failed(factor))
    return failure();
  if (!(*factor > 0))
    return p.fail("'factor' must be positive, got " + decimal(*factor));
  // The default inverse frequencies, in f32 as transformers computes them.
  int64_t half = rotary / 2;
  float base = float(*theta), f = float(*factor);
  std::vector<float> posFreqs(static_cast<size_t>(half));
  for (int64_t j = 0; j < half; ++j)
    posFreqs[size_t(j)] = std::pow(base, float(2 * j) / float(rotary));
  out.invFreq.resize(size_t(half));
  auto mscaleOf = [](double scale, double mscale) {
    return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
  };
  FailureOr<double> mscaleAll = p.number("mscale_all_dim", 0.0);
  if (failed(mscaleAll))
    return failure();
  // DeepSeek scales its softmax by the square of this (yarn_apply_mscale).
  if (*mscaleAll != 0.0)
    out.softmaxMscale = mscaleOf(*factor, *mscaleAll);
  if (*ropeType == "linear") {
    for (int64_t j = 0; j < half; ++j)
      out.invFreq[size_t(j)] = (1.0f / posFreqs[size_t(j)]) / f;
    return success();
  }
  // YaRN: frequencies blend from extrapolated (fast rotations) to
  // interpolated (slow) over a ramp between the correction dimensions.
  FailureOr<double> mscale = p.number("mscale", 0.0),
                    betaFast = p.number("beta_fast", 32.0),
                    betaSlow = p.number("beta_slow", 1.0);
  FailureOr<bool> truncate = p.boolean("truncate", true);
  if (failed(mscale) || failed(betaFast) || failed(betaSlow) ||
      failed(truncate))
    return failure();
  if (!(*original > 0))
    return p.fail("YaRN needs 'original_max_position_embeddings' (or "
                  "'max_position_embeddings') > 0");
  // As transformers (`or 32`, `or 1`): zero means the default.
  if (*betaFast == 0.0)
    *betaFast = 32.0;
  if (*betaSlow == 0.0)
    *betaSlow = 1.0;
  if (!(*betaFast > 0) || !(*betaSlow > 0))
    return p.fail("'beta_fast' and 'beta_slow' must be positive");
  if (p.has("attention_factor")) {
    FailureOr<double> af = p.number("attention_factor", 1.0);
    if (failed(af))
      return failure();
    out.attentionFactor = *af;
  } else if (*mscale != 0.0 && *mscaleAll != 0.0) {
    out.attentionFactor =
        mscaleOf(*factor, *mscale) / mscaleOf(*factor, *mscaleAll);
  } else {
    out.attentionFactor = mscaleOf(*factor, 1.0);
  }
  auto correction = [&](double rotations) {
    return (double(rotary) *
            std::log(*original / (rotations * 2.0 * 3.14159265358979323846))) /
           (2.0 * std::log(*theta));
  };
  double low = correction(*betaFast), high = correction(*betaSlow);
  if (*truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, double(rotary - 1));
  if (low == high)
    high += 0.001; // as transformers, against a zero-width ramp
  for (int64_t j = 0; j < half; ++j) {
    float ramp = (float(j) - float(low)) / (float(high) - float(low));
    ramp = std::min(std::max(ramp, 0.0f), 1.0f);
    float extrapolation = 1.0f - ramp;
    float invExtra = 1.0f / posFreqs[size_t(j)];
    float invInter = 1.0f / (f * posFreqs[size_t(j)]);
    out.invFreq[size_t(j)] =
        invInter * (1.0f - extrapolation) + invExtra * extrapolation;
  }
  return success();
}

/// What Llama-style decoders share around their attention: the embedding,
/// the final norm, the LM head (tied to the embedding or not), each block's
/// two norms, and the RoPE base and norm epsilon.
static DenseSpec decoderDense(const ModelSpec &m, int64_t vocab, int64_t heads,
                              int64_t kvHeads, int64_t headDim,
                              const RopeConfig &rope, double eps, bool tied) {
  DenseSpec d;
  d.vocab = vocab;
  d.heads = heads;
  d.kvHeads = kvHeads;
  d.headDim = headDim;
  d.ropeTheta = rope.theta;
  d.ropeInvFreq = rope.invFreq;
  d.ropeAttentionFactor = rope.attentionFactor;
  d.epsilon = eps;
  d.embed = {"model.embed_tokens.weight", {vocab, m.hidden}};
  d.finalNorm = {"model.norm.weight", {m.hidden}};
  d.lmHead = linear(tied ? "model.embed_tokens.weight" : "lm_head.weight",
                    vocab, m.hidden);
  for (const LayerSpec &l : m.layers) {
    std::string p = "model.layers." + std::to_string(l.index) + ".";
    DenseSpec::Block b;
    b.inputNorm = {p + "input_layernorm.weight", {m.hidden}};
    b.postNorm = {p + "post_attention_layernorm.weight", {m.hidden}};
    d.blocks.push_back(std::move(b));
  }
  return d;
}

LogicalResult hf::importLlamaDense(Config &cfg, ModelSpec &m, bool qkvBias,
                                   QkNorm qkNorm) {
  FailureOr<int64_t> vocab = cfg.size("vocab_size"),
                     heads = cfg.ranged("num_attention_heads", 1, kMaxExperts);
  if (failed(vocab) || failed(heads))
    return failure();
  FailureOr<int64_t> kv =
      cfg.ranged("num_key_value_heads", 1, kMaxExperts, *heads);
  if (failed(kv))
    return failure();
  if (*heads % *kv != 0)
    return cfg.fail("'num_attention_heads' (" + std::to_string(*heads) +
                    ") must be a multiple of 'num_key_value_heads' (" +
                    std::to_string(*kv) + ")");
  if (m.hidden % *heads != 0 && !cfg.has("head_dim"))
    return cfg.fail("'hidden_size' is not a multiple of "
                    "'num_attention_heads' and there is no 'head_dim'");
  FailureOr<int64_t> hd = cfg.size("head_dim", m.hidden / *heads);
  FailureOr<double> eps = cfg.number("rms_norm_eps", 1e-5);
  FailureOr<bool> tied = cfg.boolean("tie_word_embeddings", false);
  if (failed(hd) || failed(eps) || failed(tied))
    return failure();
  if (*hd % 2 != 0)
    return cfg.fail("the head size " + std::to_string(*hd) +
                    " must be even for the rotary embedding");
  if (!(*eps > 0))
    return cfg.fail("'rms_norm_eps' must be positive");
  if (cfg.has("clip_qkv"))
    return cfg.fail("'clip_qkv' is not supported in whole-model import yet");
  RopeConfig rope;
  if (failed(readRope(cfg, 1e6, *hd, rope)))
    return failure();
  // A sliding window limits attention only where it is used (Qwen's
  // use_sliding_window; Mixtral whenever it is set).
  FailureOr<bool> useWindow =
      cfg.boolean("use_sliding_window", m.modelType == "mixtral");
  if (failed(useWindow))
    return failure();
  if (*useWindow && cfg.has("sliding_window"))
    return cfg.fail("'sliding_window' attention is not supported in "
                    "whole-model import yet");
  DenseSpec d =
      decoderDense(m, *vocab, *heads, *kv, *hd, rope, *eps, *tied);
  for (auto [l, b] : llvm::zip(m.layers, d.blocks)) {
    std::string p = "model.layers." + std::to_string(l.index) + ".";
    b.q = linear(p + "self_attn.q_proj.weight", *heads * *hd, m.hidden);
    b.k = linear(p + "self_attn.k_proj.weight", *kv * *hd, m.hidden);
    b.v = linear(p + "self_attn.v_proj.weight", *kv * *hd, m.hidden);
    b.o = linear(p + "self_attn.o_proj.weight", m.hidden, *heads * *hd);
    if (qkvBias) {
      b.qBias = WeightRef{p + "self_attn.q_proj.bias", {*heads * *hd}};
      b.kBias = WeightRef{p + "self_attn.k_proj.bias", {*kv * *hd}};
      b.vBias = WeightRef{p + "self_attn.v_proj.bias", {*kv * *hd}};
    }
    if (qkNorm != QkNorm::None) {
      bool whole = qkNorm == QkNorm::Whole;
      b.qNorm = WeightRef{p + "self_attn.q_norm.weight",
                          {whole ? *heads * *hd : *hd}};
      b.kNorm = WeightRef{p + "self_attn.k_norm.weight",
                          {whole ? *kv * *hd : *hd}};
    }
  }
  m.dense = std::move(d);
  m.skipped.clear();
  return success();
}

/// Qwen2-MoE (with a sigmoid-gated shared expert) and Qwen3-MoE.
LogicalResult hf::importQwenMoE(Config &cfg, ModelSpec &m, bool shared) {
  FailureOr<int64_t> d = cfg.size("hidden_size"),
                     f = cfg.size("moe_intermediate_size"),
                     layers = cfg.ranged("num_hidden_layers", 1, kMaxLayers),
                     e = cfg.ranged("num_experts", 1, kMaxExperts),
                     k = cfg.ranged("num_experts_per_tok", 1, kMaxExperts),
                     step = cfg.ranged("decoder_sparse_step", 1, kMaxLayers, 1);
  if (failed(d) || failed(f) || failed(layers) || failed(e) || failed(k) ||
      failed(step) || failed(checkTopK(cfg, "num_experts_per_tok", *k, *e)))
    return failure();
  FailureOr<bool> norm = cfg.boolean("norm_topk_prob", false);
  FailureOr<SmallVector<int64_t>> mlpOnly = cfg.intList("mlp_only_layers");
  FailureOr<Activation> act = activationFor(cfg, "hidden_act", "silu");
  if (failed(norm) || failed(mlpOnly) || failed(act))
    return failure();
  int64_t sharedF = 0;
  if (shared) {
    FailureOr<int64_t> s = cfg.size("shared_expert_intermediate_size");
    if (failed(s))
      return failure();
    sharedF = *s;
  }
  m.hidden = *d;
  m.numLayers = *layers;
  std::set<int64_t> dense(mlpOnly->begin(), mlpOnly->end());
  for (int64_t i = 0; i < *layers; ++i) {
    // transformers: sparse when not in mlp_only_layers and
    // (i + 1) % decoder_sparse_step == 0.
    if (dense.count(i) || (i + 1) % *step != 0) {
      m.denseLayers.push_back(i);
      // Qwen2MoeMLP / Qwen3MoeMLP of width intermediate_size.
      FailureOr<int64_t> width = cfg.size("intermediate_size");
      if (failed(width))
        return failure();
      m.denseMlps.push_back(denseMlp(i, *d, *width, *act));
      continue;
    }
    LayerSpec l;
    l.index = i;
    std::string p = "model.layers." + std::to_string(i) + ".mlp.";
    l.scope = p.substr(0, p.size() - 1);
    l.router = linear(p + "gate.weight", *e, *d);
    gatedExperts(l, p + "experts.", "gate_proj", "up_proj", "down_proj", *e, *d,
                 *f);
    if (shared) {
      std::string s = p + "shared_expert.";
      l.sharedGate = linear(s + "gate_proj.weight", sharedF, *d);
      l.sharedUp = linear(s + "up_proj.weight", sharedF, *d);
      l.sharedDown = linear(s + "down_proj.weight", *d, sharedF);
      // shared_expert_gate: Linear(d, 1) stored [1, d]; used as [d, 1].
      l.sharedCoef = linear(p + "shared_expert_gate.weight", 1, *d);
    }
    l.activation = *act;
    l.topK = *k;
    l.renormalize = *norm;
    m.layers.push_back(std::move(l));
  }
  addDenseSkips(m, "model.layers.*.self_attn, *_layernorm",
                "model.embed_tokens", "model.norm, lm_head");
  if (!m.denseLayers.empty())
    m.skipped.push_back(denseNote(m.denseLayers));
  return success();
}

LogicalResult hf::importOlmoe(Config &cfg, ModelSpec &m) {
  FailureOr<int64_t> d = cfg.size("hidden_size"),
                     f = cfg.size("intermediate_size"),
                     layers = cfg.ranged("num_hidden_layers", 1, kMaxLayers),
                     e = cfg.ranged("num_experts", 1, kMaxExperts),
                     k = cfg.ranged("num_experts_per_tok", 1, kMaxExperts);
  if (failed(d) || failed(f) || failed(layers) || failed(e) || failed(k) ||
      failed(checkTopK(cfg, "num_experts_per_tok", *k, *e)))
    return failure();
  FailureOr<bool> norm = cfg.boolean("norm_topk_prob", false);
  FailureOr<Activation> act = activationFor(cfg, "hidden_act", "silu");
  if (failed(norm) || failed(act))
    return failure();
  m.hidden = *d;
  m.numLayers = *layers;
  for (int64_t i = 0; i < *layers; ++i) {
    LayerSpec l;
    l.index = i;
    std::string p = "model.layers." + std::to_string(i) + ".mlp.";
    l.scope = p.substr(0, p.size() - 1);
    l.router = linear(p + "gate.weight", *e, *d);
    gatedExperts(l, p + "experts.", "gate_proj", "up_proj", "down_proj", *e, *d,
                 *f);
    l.activation = *act;
    l.topK = *k;
    l.renormalize = *norm;
    m.layers.push_back(std::move(l));
  }
  addDenseSkips(m, "model.layers.*.self_attn (with q_norm/k_norm), *_layernorm",
                "model.embed_tokens", "model.norm, lm_head");
  return success();
}

/// DeepSeek-V2 (softmax, greedy or group-limited greedy) and DeepSeek-V3
/// (sigmoid, e_score_correction_bias, noaux_tc with top-2-sum group scores).
LogicalResult hf::importDeepSeek(Config &cfg, ModelSpec &m, bool v3) {
  FailureOr<int64_t> d = cfg.size("hidden_size"),
                     f = cfg.size("moe_intermediate_size"),
                     layers = cfg.ranged("num_hidden_layers", 1, kMaxLayers),
                     e = cfg.ranged("n_routed_experts", 1, kMaxExperts),
                     k = cfg.ranged("num_experts_per_tok", 1, kMaxExperts),
                     shared = cfg.ranged("n_shared_experts", 0, 1024, 0),
                     firstDense =
                         cfg.ranged("first_k_dense_replace", 0, kMaxLayers, 0),
                     freq = cfg.ranged("moe_layer_freq", 1, kMaxLayers, 1);
  if (failed(d) || failed(f) || failed(layers) || failed(e) || failed(k) ||
      failed(shared) || failed(firstDense) || failed(freq) ||
      failed(checkTopK(cfg, "num_experts_per_tok", *k, *e)))
    return failure();
  FailureOr<std::string> method =
      cfg.string("topk_method", v3 ? "noaux_tc" : "greedy");
  FailureOr<std::string> scoring =
      cfg.string("scoring_func", v3 ? "sigmoid" : "softmax");
  FailureOr<bool> norm = cfg.boolean("norm_topk_prob", false);
  FailureOr<double> rsf = cfg.number("routed_scaling_factor", 1.0);
  FailureOr<Activation> act = activationFor(cfg, "hidden_act", "silu");
  if (failed(method) || failed(scoring) || failed(norm) || failed(rsf) ||
      failed(act))
    return failure();
  if (!(*rsf > 0))
    return cfg.fail("'routed_scaling_factor' must be positive, got " +
                    fmt(*rsf));
  // The routing each DeepSeek version implements in its modeling code.
  StringRef expectedScoring = v3 ? "sigmoid" : "softmax";
  if (*scoring != expectedScoring)
    return cfg.fail("unsupported 'scoring_func' value '" + *scoring +
                    "' (supported: " + expectedScoring + ")");
  bool grouped;
  if (!v3 && *method == "greedy")
    grouped = false;
  else if ((!v3 && *method == "group_limited_greedy") ||
           (v3 && *method == "noaux_tc"))
    grouped = true;
  else
    return cfg.fail("unsupported 'topk_method' value '" + *method +
                    "' (supported: " +
                    (v3 ? "noaux_tc" : "greedy, group_limited_greedy") + ")");
  std::optional<int64_t> nGroup, topkGroup;
  if (grouped) {
    FailureOr<int64_t> ng = cfg.ranged("n_group", 1, kMaxExperts, 1),
                       tg = cfg.ranged("topk_group", 1, kMaxExperts, 1);
    if (failed(ng) || failed(tg))
      return failure();
    if (*e % *ng != 0)
      return cfg.fail("'n_group' (" + Twine(*ng) +
                      ") must divide 'n_routed_experts' (" + Twine(*e) + ")");
    if (*tg > *ng)
      return cfg.fail("'topk_group' (" + Twine(*tg) + ") exceeds 'n_group' (" +
                      Twine(*ng) + ")");
    if (*k > *tg * (*e / *ng))
      return cfg.fail("'num_experts_per_tok' (" + Twine(*k) +
                      ") exceeds the experts of the 'topk_group' selected "
                      "groups (" +
                      Twine(*tg * (*e / *ng)) + ")");
    if (v3 && *e / *ng < 2)
      return cfg.fail("noaux_tc scores a group by its best two experts; "
                      "'n_group' (" +
                      Twine(*ng) + ") leaves fewer than 2 per group");
    // One group, or every group kept: group-limited routing is plain top-k.
    if (*ng > 1 && *tg < *ng) {
      nGroup = *ng;
      topkGroup = *tg;
    }
  }
  m.hidden = *d;
  m.numLayers = *layers;
  for (int64_t i = 0; i < *layers; ++i) {
    // modeling_deepseek: MoE where i >= first_k_dense_replace and
    // i % moe_layer_freq == 0.
    if (i < *firstDense || i % *freq != 0) {
      m.denseLayers.push_back(i);
      FailureOr<int64_t> width = cfg.size("intermediate_size");
      if (failed(width))
        return failure();
      m.denseMlps.push_back(denseMlp(i, *d, *width, *act));
      continue;
    }
    LayerSpec l;
    l.index = i;
    std::string p = "model.layers." + std::to_string(i) + ".mlp.";
    l.scope = p.substr(0, p.size() - 1);
    l.router = linear(p + "gate.weight", *e, *d);
    if (v3) {
      l.routerBias =
          WeightRef{p + "gate.e_score_correction_bias", {*e}, Layout::AsStored};
      l.routerBias->f32 = true; // kept in f32 by the checkpoints
    }
    gatedExperts(l, p + "experts.", "gate_proj", "up_proj", "down_proj", *e, *d,
                 *f);
    if (*shared > 0) {
      // The shared experts are one MLP of width n_shared * moe_intermediate.
      int64_t sf = *shared * *f;
      if (sf > kMaxDim)
        return cfg.fail("'n_shared_experts' x 'moe_intermediate_size' (" +
                        Twine(sf) + ") exceeds the importer's limit " +
                        Twine(kMaxDim));
      std::string s = p + "shared_experts.";
      l.sharedGate = linear(s + "gate_proj.weight", sf, *d);
      l.sharedUp = linear(s + "up_proj.weight", sf, *d);
      l.sharedDown = linear(s + "down_proj.weight", *d, sf);
    }
    l.activation = *act;
    l.topK = *k;
    l.nGroup = nGroup;
    l.topkGroup = topkGroup;
    if (v3) {
      l.scoreFunc = ScoreFunc::sigmoid;
      l.groupScore = GroupScore::top2_sum;
      l.renormalize = *norm;
      l.scaling = *rsf;
    } else {
      // DeepSeek-V2 renormalises (top_k > 1 and norm_topk_prob) or scales by
      // routed_scaling_factor, never both.
      l.renormalize = *k > 1 && *norm;
      l.scaling = l.renormalize ? 1.0 : *rsf;
    }
    m.layers.push_back(std::move(l));
  }
  addDenseSkips(m,
                "model.layers.*.self_attn (multi-head latent attention), "
                "*_layernorm",
                "model.embed_tokens", "model.norm, lm_head");
  if (!m.denseLayers.empty())
    m.skipped.push_back(denseNote(m.denseLayers));
  if (v3 && cfg.has("num_nextn_predict_layers"))
    m.skipped.push_back("multi-token-prediction layers "
                        "(num_nextn_predict_layers)");
  return success();
}

//===----------------------------------------------------------------------===//
// Switch Transformers (encoder-decoder, top-1)
//===----------------------------------------------------------------------===//

LogicalResult hf::importSwitch(Config &cfg, ModelSpec &m, bool whole) {
  FailureOr<int64_t> d = cfg.size("d_model"), f = cfg.size("d_ff"),
                     enc = cfg.ranged("num_layers", 1, kMaxLayers),
                     e = cfg.ranged("num_experts", 1, kMaxExperts),
                     cap = cfg.ranged("expert_capacity", 1, kMaxTokens, 64);
  if (failed(d) || failed(f) || failed(enc) || failed(e) || failed(cap))
    return failure();
  FailureOr<int64_t> dec =
      cfg.ranged("num_decoder_layers", 1, kMaxLayers, *enc);
  if (failed(dec))
    return failure();
  // The sparse step: `*_sparse_step`, else derived as transformers does
  // from `num_sparse_*_layers` (default 3): layers / sparse, or the layer
  // count when there are none.
  auto sparseStep = [&](StringRef stepKey, StringRef countKey,
                        int64_t layers) -> FailureOr<int64_t> {
    if (cfg.has(stepKey))
      return cfg.ranged(stepKey, 0, kMaxLayers);
    FailureOr<int64_t> n = cfg.ranged(countKey, 0, kMaxLayers, 3);
    if (failed(n))
      return failure();
    return *n > 0 ? layers / *n : layers;
  };
  FailureOr<int64_t> encStep =
      sparseStep("encoder_sparse_step", "num_sparse_encoder_layers", *enc);
  FailureOr<int64_t> decStep =
      sparseStep("decoder_sparse_step", "num_sparse_decoder_layers", *dec);
  if (failed(encStep) || failed(decStep))
    return failure();
  FailureOr<bool> bias = cfg.boolean("router_bias", false);
  FailureOr<bool> gated = cfg.boolean("is_gated_act", false);
  FailureOr<Activation> act = activationFor(cfg, "dense_act_fn", "relu");
  if (failed(bias) || failed(gated) || failed(act))
    return failure();
  if (*bias)
    return cfg.fail("unsupported option 'router_bias' = true: the router "
                    "bias is added to the logits, moe.layer's router_bias "
                    "only biases the selection");
  if (*gated)
    return cfg.fail("unsupported option 'is_gated_act' = true");
  m.hidden = *d;
  m.numLayers = *enc + *dec;
  // SwitchTransformersStack: sparse where i % step == 1 or step == 1.
  SmallVector<std::string> denseBlocks;
  auto addStack = [&](StringRef stack, int64_t n, int64_t step, int ffIndex) {
    for (int64_t i = 0; i < n; ++i) {
      bool sparse = step > 0 && (step == 1 || i % step == 1);
      std::string p =
          (stack + ".block." + Twine(i) + ".layer." + Twine(ffIndex) + ".mlp.")
              .str();
      LayerSpec l;
      l.index = i;
      l.scope = p.substr(0, p.size() - 1);
      l.activation = *act;
      if (!sparse) {
        denseBlocks.push_back((stack + ".block." + Twine(i)).str());
        if (!whole)
          continue;
        // T5's DenseActDense: wo(act(wi x)), no gate.
        l.denseMlp = true;
        l.sharedUp = linear(p + "wi.weight", *f, *d);
        l.sharedDown = linear(p + "wo.weight", *d, *f);
        m.layers.push_back(std::move(l));
        continue;
      }
      l.router = linear(p + "router.classifier.weight", *e, *d);
      l.expertPrefix = p + "experts.expert_";
      l.numExperts = *e;
      l.up = stacked(p + "experts.expert_*.wi.weight", *e, *f, *d);
      l.down = stacked(p + "experts.expert_*.wo.weight", *e, *d, *f);
      l.topK = 1;
      // A fixed per-expert capacity: with a vanishing factor the capacity
      // max(min_capacity, ceil(cf * T / E)) is expert_capacity.
      l.capacityFactor = 1e-9;
      l.minCapacity = *cap;
      m.layers.push_back(std::move(l));
    }
  };
  addStack("encoder", *enc, *encStep, 1);
  addStack("decoder", *dec, *decStep, 2);
  if (llvm::none_of(m.layers, [](const LayerSpec &l) { return !l.denseMlp; }))
    return cfg.fail("no sparse layers: 'encoder_sparse_step' and "
                    "'decoder_sparse_step' are both 0");
  m.notes.push_back(
      "a token over expert_capacity is dropped (its FFN output is zero); "
      "transformers 5.0-5.17 never drops one (its count runs over a "
      "singleton dimension), so the two agree while no expert gets more "
      "than expert_capacity tokens of a step");
  if (!whole) {
    m.skipped.push_back("shared.weight (embedding)");
    m.skipped.push_back("encoder/decoder self-attention, cross-attention and "
                        "layer norms");
    m.skipped.push_back("lm_head");
    if (!denseBlocks.empty()) {
      std::string s = "dense FFN blocks [";
      for (auto [i, b] : llvm::enumerate(denseBlocks))
        s += (i ? ", " : "") + b;
      m.skipped.push_back(s + "]");
    }
    m.notes.push_back("encoder and decoder MoE layers are chained in that "
                      "order; the decoder's cross-attention input is not "
                      "modelled");
    return success();
  }

  // The whole encoder-decoder: T5 attention (no RoPE, unscaled scores, a
  // relative-position bias table owned by block 0 of each stack and shared
  // by its other blocks), RMS layer norms, a tied or separate LM head.
  FailureOr<int64_t> vocab = cfg.size("vocab_size"),
                     heads = cfg.size("num_heads"), kv = cfg.size("d_kv"),
                     buckets = cfg.ranged("relative_attention_num_buckets", 4,
                                          kMaxDim, 32),
                     maxDistance = cfg.ranged("relative_attention_max_distance",
                                              1, kMaxTokens, 128),
                     start = cfg.ranged("decoder_start_token_id", 0,
                                        kMaxDim);
  FailureOr<double> eps = cfg.number("layer_norm_epsilon", 1e-6);
  FailureOr<bool> tied = cfg.boolean("tie_word_embeddings", true);
  if (failed(vocab) || failed(heads) || failed(kv) || failed(buckets) ||
      failed(maxDistance) || failed(start) || failed(eps) || failed(tied))
    return failure();
  if (*start >= *vocab)
    return cfg.fail("'decoder_start_token_id' (" + Twine(*start) +
                    ") is outside the vocabulary (" + Twine(*vocab) + ")");
  if (*maxDistance <= *buckets / 4)
    return cfg.fail("'relative_attention_max_distance' (" +
                    Twine(*maxDistance) +
                    ") must exceed the exact buckets (a quarter of "
                    "'relative_attention_num_buckets', " +
                    Twine(*buckets / 4) + ")");
  if (!(*eps > 0))
    return cfg.fail("'layer_norm_epsilon' must be positive");
  EncDecSpec ed;
  ed.vocab = *vocab;
  ed.heads = *heads;
  ed.headDim = *kv;
  ed.encoderLayers = *enc;
  ed.buckets = *buckets;
  ed.maxDistance = *maxDistance;
  ed.decoderStart = *start;
  ed.epsilon = *eps;
  ed.tied = *tied;
  int64_t inner = *heads * *kv;
  auto vec = [](std::string name, int64_t n) {
    return WeightRef{std::move(name), {n}};
  };
  ed.embed = WeightRef{"shared.weight", {*vocab, *d}};
  ed.lmHead = linear(*tied ? "shared.weight" : "lm_head.weight", *vocab, *d);
  ed.encoderFinalNorm = vec("encoder.final_layer_norm.weight", *d);
  ed.decoderFinalNorm = vec("decoder.final_layer_norm.weight", *d);
  std::string biasName =
      ".block.0.layer.0.SelfAttention.relative_attention_bias.weight";
  ed.encoderBias = WeightRef{"encoder" + biasName, {*buckets, *heads}};
  ed.decoderBias = WeightRef{"decoder" + biasName, {*buckets, *heads}};
  for (auto [stack, n] : {std::pair<StringRef, int64_t>{"encoder", *enc},
                          {"decoder", *dec}}) {
    bool decoder = stack == "decoder";
    for (int64_t i = 0; i < n; ++i) {
      std::string p = (stack + ".block." + Twine(i) + ".layer.").str();
      EncDecSpec::Block blk;
      auto attention = [&](const std::string &a) {
        return EncDecSpec::Attention{linear(a + "q.weight", inner, *d),
                                     linear(a + "k.weight", inner, *d),
                                     linear(a + "v.weight", inner, *d),
                                     linear(a + "o.weight", *d, inner)};
      };
      blk.selfNorm = vec(p + "0.layer_norm.weight", *d);
      blk.self = attention(p + "0.SelfAttention.");
      if (decoder) {
        blk.crossNorm = vec(p + "1.layer_norm.weight", *d);
        blk.cross = attention(p + "1.EncDecAttention.");
      }
      blk.ffNorm = vec(p + (decoder ? "2" : "1") + ".layer_norm.weight", *d);
      ed.blocks.push_back(std::move(blk));
    }
  }
  m.encdec = std::move(ed);
  return success();
}

//===----------------------------------------------------------------------===//
// DeepSpeed-MoE GPT (Megatron-DeepSpeed), including PR-MoE
//===----------------------------------------------------------------------===//

/// There is no Hugging Face class for it: config.json carries the
/// Megatron-DeepSpeed arguments (`model_type: "deepspeed_moe_gpt"`,
/// `num_experts` int or per-MoE-layer list, `topk`, `expert_interval`,
/// `mlp_type`, `moe_eval_capacity_factor`, `moe_min_capacity`,
/// `disable_moe_token_dropping`) and tensors use Megatron-DeepSpeed names.
LogicalResult hf::importDeepSpeedGpt(Config &cfg, ModelSpec &m,
                                     const llvm::StringSet<> *index) {
  FailureOr<int64_t> d = cfg.size("hidden_size"),
                     layers = cfg.ranged("num_layers", 1, kMaxLayers),
                     k = cfg.ranged("topk", 1, 2, 1),
                     interval = cfg.ranged("expert_interval", 1, kMaxLayers, 2),
                     minCap = cfg.ranged("moe_min_capacity", 0, kMaxTokens, 4);
  if (failed(d) || failed(layers) || failed(k) || failed(interval) ||
      failed(minCap))
    return failure();
  FailureOr<int64_t> f = cfg.size("ffn_hidden_size", 4 * *d);
  FailureOr<double> cf = cfg.number("moe_eval_capacity_factor", 1.0);
  FailureOr<bool> noDrop = cfg.boolean("disable_moe_token_dropping", false);
  FailureOr<bool> bias = cfg.boolean("add_bias_linear", true);
  FailureOr<std::string> mlpType = cfg.string("mlp_type", "standard");
  FailureOr<Activation> act = activationFor(cfg, "hidden_act", "gelu");
  if (failed(f) || failed(cf) || failed(noDrop) || failed(bias) ||
      failed(mlpType) || failed(act))
    return failure();
  if (*bias)
    return cfg.fail("unsupported option 'add_bias_linear' = true (the "
                    "default): moe.layer has no bias operands; export with "
                    "--disable-bias-linear");
  if (*mlpType != "standard" && *mlpType != "residual")
    return cfg.fail("unsupported 'mlp_type' value '" + *mlpType +
                    "' (supported: standard, residual)");
  if (!*noDrop && !(*cf > 0))
    return cfg.fail("'moe_eval_capacity_factor' must be positive, got " +
                    fmt(*cf));
  // num_experts: one count for every MoE layer, or one per MoE layer (PR-MoE).
  int64_t numMoE = *layers / *interval;
  SmallVector<int64_t> experts;
  if (const json::Value *v = cfg.get("num_experts"); v && v->getAsArray()) {
    FailureOr<SmallVector<int64_t>> list = cfg.intList("num_experts");
    if (failed(list))
      return failure();
    experts = *list;
  } else {
    FailureOr<int64_t> n = cfg.integer("num_experts");
    if (failed(n))
      return failure();
    experts.push_back(*n);
  }
  if (experts.size() != 1 && int64_t(experts.size()) != numMoE)
    return cfg.fail("'num_experts' lists " + Twine(experts.size()) +
                    " counts, but num_layers / expert_interval = " +
                    Twine(numMoE) + " MoE layers");
  for (int64_t n : experts) {
    if (n < 1 || n > kMaxExperts)
      return cfg.fail("'num_experts' must be in [1, " + Twine(kMaxExperts) +
                      "], got " + Twine(n));
    if (failed(checkTopK(cfg, "topk", *k, n)))
      return failure();
  }
  if (numMoE == 0)
    return cfg.fail("no MoE layers: 'num_layers' (" + Twine(*layers) +
                    ") < 'expert_interval' (" + Twine(*interval) + ")");
  m.hidden = *d;
  m.numLayers = *layers;
  for (int64_t i = 0; i < *layers; ++i) {
    // Megatron-DeepSpeed: layer number i + 1 is MoE when divisible by
    // expert_interval.
    if ((i + 1) % *interval != 0) {
      m.denseLayers.push_back(i);
      // Its MLP, for whole-model import: Megatron's ParallelMLP (no gate).
      m.denseMlps.push_back(denseMlpBlock(
          i, "language_model.encoder.layers." + std::to_string(i) + ".mlp.",
          "", "dense_h_to_4h.weight", "dense_4h_to_h.weight", *d, *f, *act));
      continue;
    }
    int64_t e = experts.size() == 1 ? experts[0] : experts[i / *interval];
    LayerSpec l;
    l.index = i;
    std::string p =
        "language_model.encoder.layers." + std::to_string(i) + ".mlp.";
    l.scope = p.substr(0, p.size() - 1);
    l.router = linear(p + "deepspeed_moe.gate.wg.weight", e, *d);
    l.expertPrefix = p + "deepspeed_moe.experts.deepspeed_experts.";
    l.numExperts = e;
    l.up = stacked(l.expertPrefix + "*.dense_h_to_4h.weight", e, *f, *d);
    l.down = stacked(l.expertPrefix + "*.dense_4h_to_h.weight", e, *d, *f);
    if (*mlpType == "residual") {
      l.mlpUp = linear(p + "mlp.dense_h_to_4h.weight", *f, *d);
      l.mlpDown = linear(p + "mlp.dense_4h_to_h.weight", *d, *f);
      l.mlpCoef = linear(p + "coefficient.weight", 2, *d);
      // DeepSpeed's coefficient Linear has a bias unless it was removed.
      std::string coefBias = p + "coefficient.bias";
      if (!index || index->count(coefBias))
        l.mlpCoefBias = WeightRef{coefBias, {2}};
    }
    l.activation = *act;
    l.topK = *k;
    l.renormalize = *k == 2; // top2gating normalises the two gates
    if (!*noDrop) {
      l.capacityFactor = *cf;
      l.minCapacity = *minCap;
    }
    m.layers.push_back(std::move(l));
  }
  addDenseSkips(m,
                "language_model.encoder.layers.*.self_attention, "
                "*_layernorm",
                "language_model.embedding", "final_layernorm (LM head tied)");
  m.skipped.push_back(denseNote(m.denseLayers));
  if (*k == 1)
    m.notes.push_back("DeepSpeed's top-1 gating may pick dropped tokens at "
                      "random (use_rts); moe.layer drops by position");
  return success();
}

/// Megatron-DeepSpeed's GPT around the layers of `m`: word and learned
/// position embeddings, pre-LayerNorm blocks (weights and biases), fused
/// query_key_value without biases (--disable-bias-linear), the final
/// LayerNorm and the LM head tied to the word embeddings.
LogicalResult hf::importDeepSpeedGptDense(Config &cfg, ModelSpec &m) {
  FailureOr<int64_t> vocab = cfg.has("padded_vocab_size")
                                 ? cfg.size("padded_vocab_size")
                                 : cfg.size("vocab_size"),
                     heads = cfg.ranged("num_attention_heads", 1, kMaxExperts),
                     maxPos = cfg.size("max_position_embeddings");
  FailureOr<double> eps = cfg.number("layernorm_epsilon", 1e-5);
  FailureOr<std::string> posType =
      cfg.string("position_embedding_type", "learned_absolute");
  FailureOr<bool> untied =
      cfg.boolean("untie_embeddings_and_output_weights", false);
  if (failed(vocab) || failed(heads) || failed(maxPos) || failed(eps) ||
      failed(posType) || failed(untied))
    return failure();
  if (*posType != "learned_absolute")
    return cfg.fail("unsupported 'position_embedding_type' value '" +
                    *posType + "' in whole-model import (supported: "
                               "learned_absolute)");
  for (StringRef key : {"num_key_value_heads", "num_query_groups"})
    if (cfg.has(key)) {
      FailureOr<int64_t> g = cfg.integer(key);
      if (failed(g))
        return failure();
      if (*g != *heads)
        return cfg.fail("'" + key.str() + "' (" + std::to_string(*g) +
                        ") other than 'num_attention_heads' is not "
                        "supported for deepspeed_moe_gpt");
    }
  if (m.hidden % *heads != 0)
    return cfg.fail("'hidden_size' (" + std::to_string(m.hidden) +
                    ") must be a multiple of 'num_attention_heads' (" +
                    std::to_string(*heads) + ")");
  if (!(*eps > 0))
    return cfg.fail("'layernorm_epsilon' must be positive");
  int64_t hd = m.hidden / *heads, d = m.hidden;
  DenseSpec s;
  s.vocab = *vocab;
  s.heads = s.kvHeads = *heads;
  s.headDim = hd;
  s.epsilon = *eps;
  // No rotary embedding: every pair turns by angle 0 (cos 1, sin 0), which
  // leaves q and k exactly as they are.
  s.ropeInvFreq.assign(size_t(hd / 2), 0.0f);
  s.layerNorm = true;
  const std::string e = "language_model.embedding.";
  s.embed = {e + "word_embeddings.weight", {*vocab, d}};
  s.posEmbed = WeightRef{e + "position_embeddings.weight", {*maxPos, d}};
  const std::string enc = "language_model.encoder.";
  s.finalNorm = {enc + "final_layernorm.weight", {d}};
  s.finalNormBias = WeightRef{enc + "final_layernorm.bias", {d}};
  s.lmHead = *untied ? linear("language_model.output_layer.weight", *vocab, d)
                     : linear(e + "word_embeddings.weight", *vocab, d);
  for (const LayerSpec &l : m.layers) {
    std::string p = enc + "layers." + std::to_string(l.index) + ".";
    DenseSpec::Block b;
    b.inputNorm = {p + "input_layernorm.weight", {d}};
    b.inputNormBias = WeightRef{p + "input_layernorm.bias", {d}};
    b.postNorm = {p + "post_attention_layernorm.weight", {d}};
    b.postNormBias = WeightRef{p + "post_attention_layernorm.bias", {d}};
    // Megatron's fused query_key_value, split per head when it loads.
    for (auto [w, part] : {std::pair{&b.q, 0}, {&b.k, 1}, {&b.v, 2}}) {
      *w = {p + "self_attention.query_key_value.weight", {d, d},
            Layout::QkvTranspose};
      w->heads = *heads;
      w->part = part;
    }
    b.o = linear(p + "self_attention.dense.weight", d, d);
    s.blocks.push_back(std::move(b));
  }
  m.dense = std::move(s);
  m.skipped.clear();
  return success();
}

LogicalResult hf::importDeepSeekDense(Config &cfg, ModelSpec &m, bool v3) {
  FailureOr<int64_t> vocab = cfg.size("vocab_size"),
                     heads = cfg.ranged("num_attention_heads", 1, kMaxExperts),
                     kvLora = cfg.size("kv_lora_rank"),
                     nope = cfg.ranged("qk_nope_head_dim", 0, kMaxDim),
                     rope = cfg.size("qk_rope_head_dim"),
                     vDim = cfg.size("v_head_dim");
  if (failed(vocab) || failed(heads) || failed(kvLora) || failed(nope) ||
      failed(rope) || failed(vDim))
    return failure();
  std::optional<int64_t> qLora;
  if (cfg.has("q_lora_rank")) {
    FailureOr<int64_t> r = cfg.size("q_lora_rank");
    if (failed(r))
      return failure();
    qLora = *r;
  }
  FailureOr<double> eps = cfg.number("rms_norm_eps", 1e-6);
  FailureOr<bool> tied = cfg.boolean("tie_word_embeddings", false),
                  bias = cfg.boolean("attention_bias", false),
                  interleave = cfg.boolean("rope_interleave", true);
  if (failed(eps) || failed(tied) || failed(bias) ||
      failed(interleave))
    return failure();
  if (*rope % 2 != 0)
    return cfg.fail("'qk_rope_head_dim' (" + Twine(*rope) +
                    ") must be even for the rotary embedding");
  if (!(*eps > 0))
    return cfg.fail("'rms_norm_eps' must be positive");
  RopeConfig ropeConfig;
  if (failed(readRope(cfg, 10000.0, *rope, ropeConfig)))
    return failure();
  if (*bias)
    return cfg.fail("'attention_bias' is not supported in whole-model import "
                    "of DeepSeek models yet");
  // Every head keeps its own keys and values: KV = H.
  DenseSpec d = decoderDense(m, *vocab, *heads, *heads, *nope + *rope, ropeConfig,
                             *eps, *tied);
  DenseSpec::Mla mla;
  mla.nope = *nope;
  mla.rope = *rope;
  mla.v = *vDim;
  // DeepSeek-V2's modeling code rotates interleaved pairs (complex
  // multiplication); V3's does when rope_interleave (the default).
  mla.interleaved = v3 ? *interleave : true;
  // YaRN with mscale_all_dim scales the softmax too (yarn_apply_mscale).
  mla.softmaxScale = 1.0 / std::sqrt(double(*nope + *rope)) *
                     ropeConfig.softmaxMscale * ropeConfig.softmaxMscale;
  d.mla = mla;
  int64_t qk = *nope + *rope;
  for (auto [l, b] : llvm::zip(m.layers, d.blocks)) {
    std::string a = "model.layers." + std::to_string(l.index) + ".self_attn.";
    if (qLora) {
      b.qA = linear(a + "q_a_proj.weight", *qLora, m.hidden);
      b.qANorm = WeightRef{a + "q_a_layernorm.weight", {*qLora}};
      b.q = linear(a + "q_b_proj.weight", *heads * qk, *qLora);
    } else {
      b.q = linear(a + "q_proj.weight", *heads * qk, m.hidden);
    }
    b.kvA = linear(a + "kv_a_proj_with_mqa.weight", *kvLora + *rope, m.hidden);
    b.kvANorm = WeightRef{a + "kv_a_layernorm.weight", {*kvLora}};
    b.kvB = linear(a + "kv_b_proj.weight", *heads * (*nope + *vDim), *kvLora);
    b.o = linear(a + "o_proj.weight", m.hidden, *heads * *vDim);
  }
  m.dense = std::move(d);
  m.skipped.clear();
  return success();
}

