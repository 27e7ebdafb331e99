//===- HFImport.cpp - Hugging Face config.json to moe IR ------------------===//
//
// Part of moe-compiler.
//
// Each supported architecture maps its config keys to a list of MoE layers
// (routing attributes and external weights named as in the checkpoint); one
// emitter turns that list into `func.func @model` with chained `moe.layer`
// ops. Everything in the input is untrusted: every key is type- and
// range-checked and every failure is a message, never an assertion.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/HFImport.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <set>

using namespace mlir;
using namespace mlir::moe;
namespace json = llvm::json;

namespace {

/// llvm::json recurses once per nested array/object; deeper input than this
/// is refused before parsing so that it cannot overflow the stack.
constexpr unsigned kMaxJsonDepth = 200;
/// Bounds that keep every size product and loop far from overflow; real
/// models are orders of magnitude below them.
constexpr int64_t kMaxDim = int64_t(1) << 24;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxExperts = 65536;
constexpr int64_t kMaxTokens = int64_t(1) << 20;

std::string checkJsonDepth(StringRef text) {
  unsigned depth = 0;
  for (size_t i = 0, e = text.size(); i < e; ++i) {
    char c = text[i];
    if (c == '"') {
      for (++i; i < e && text[i] != '"'; ++i)
        if (text[i] == '\\')
          ++i;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        return "JSON nests arrays/objects more than " +
               std::to_string(kMaxJsonDepth) + " deep";
    } else if ((c == ']' || c == '}') && depth) {
      --depth;
    }
  }
  return "";
}

/// Parses JSON text; on failure sets `error` to "FILE:LINE:COL: malformed
/// JSON: ..." (llvm::json reports "[L:C, byte=B]: message").
std::optional<json::Value> parseJson(StringRef text, StringRef file,
                                     std::string &error) {
  std::string deep = checkJsonDepth(text);
  if (!deep.empty()) {
    error = (file + ": malformed JSON: " + deep).str();
    return std::nullopt;
  }
  llvm::Expected<json::Value> v = json::parse(text);
  if (v)
    return std::move(*v);
  std::string msg = llvm::toString(v.takeError());
  StringRef m(msg);
  if (m.starts_with("[")) {
    size_t colon = m.find(':'), comma = m.find(','), close = m.find("]: ");
    if (colon != StringRef::npos && comma != StringRef::npos &&
        close != StringRef::npos && colon < comma && comma < close) {
      error = (file + ":" + m.slice(1, colon) + ":" +
               m.slice(colon + 1, comma) + ": malformed JSON: " +
               m.substr(close + 3))
                  .str();
      return std::nullopt;
    }
  }
  error = (file + ": malformed JSON: " + m).str();
  return std::nullopt;
}

std::string fmt(double d) {
  std::string s;
  llvm::raw_string_ostream(s) << d;
  return s;
}

StringRef kindName(const json::Value &v) {
  switch (v.kind()) {
  case json::Value::Null:
    return "null";
  case json::Value::Boolean:
    return "a boolean";
  case json::Value::Number:
    return "a number";
  case json::Value::String:
    return "a string";
  case json::Value::Array:
    return "an array";
  case json::Value::Object:
    return "an object";
  }
  return "a value";
}

/// Typed, checked access to config.json keys. A key that is absent or null
/// takes its default; without a default it is a "missing required key".
class Config {
public:
  Config(const json::Object &obj, std::string file, std::string &error)
      : obj(obj), file(std::move(file)), error(error) {}

  void setArch(StringRef a) { arch = a.str(); }

  LogicalResult fail(const Twine &msg) {
    if (error.empty())
      error = (file + ": " + (arch.empty() ? "" : arch + ": ") + msg).str();
    return failure();
  }

  const json::Value *get(StringRef key) const {
    const json::Value *v = obj.get(key);
    return v && v->kind() != json::Value::Null ? v : nullptr;
  }
  bool has(StringRef key) const { return get(key); }

  FailureOr<int64_t> integer(StringRef key,
                             std::optional<int64_t> dflt = std::nullopt) {
    const json::Value *v = get(key);
    if (!v) {
      if (dflt)
        return *dflt;
      return fail("missing required key '" + key + "'");
    }
    std::optional<int64_t> i = v->getAsInteger();
    if (!i)
      return fail("'" + key + "' must be an integer, got " + describe(*v));
    return *i;
  }

  /// An integer in [lo, hi].
  FailureOr<int64_t> ranged(StringRef key, int64_t lo, int64_t hi,
                            std::optional<int64_t> dflt = std::nullopt) {
    FailureOr<int64_t> i = integer(key, dflt);
    if (failed(i))
      return failure();
    if (*i < lo || *i > hi)
      return fail("'" + key + "' must be in [" + Twine(lo) + ", " + Twine(hi) +
                  "], got " + Twine(*i));
    return *i;
  }
  FailureOr<int64_t> size(StringRef key,
                          std::optional<int64_t> dflt = std::nullopt) {
    return ranged(key, 1, kMaxDim, dflt);
  }

  FailureOr<bool> boolean(StringRef key, bool dflt) {
    const json::Value *v = get(key);
    if (!v)
      return dflt;
    if (std::optional<bool> b = v->getAsBoolean())
      return *b;
    return fail("'" + key + "' must be a boolean, got " + describe(*v));
  }

  FailureOr<double> number(StringRef key, double dflt) {
    const json::Value *v = get(key);
    if (!v)
      return dflt;
    std::optional<double> d = v->getAsNumber();
    if (!d)
      return fail("'" + key + "' must be a number, got " + describe(*v));
    if (!std::isfinite(*d))
      return fail("'" + key + "' must be finite");
    return *d;
  }

  FailureOr<std::string> string(StringRef key,
                                std::optional<StringRef> dflt = std::nullopt) {
    const json::Value *v = get(key);
    if (!v) {
      if (dflt)
        return dflt->str();
      return fail("missing required key '" + key + "'");
    }
    if (std::optional<StringRef> s = v->getAsString())
      return s->str();
    return fail("'" + key + "' must be a string, got " + describe(*v));
  }

  /// A list of integers; absent or null gives an empty list.
  FailureOr<SmallVector<int64_t>> intList(StringRef key) {
    SmallVector<int64_t> out;
    const json::Value *v = get(key);
    if (!v)
      return out;
    const json::Array *a = v->getAsArray();
    if (!a)
      return fail("'" + key + "' must be a list of integers, got " +
                  describe(*v));
    for (const json::Value &e : *a) {
      std::optional<int64_t> i = e.getAsInteger();
      if (!i)
        return fail("'" + key + "' must be a list of integers; it holds " +
                    describe(e));
      out.push_back(*i);
    }
    return out;
  }

  static std::string describe(const json::Value &v) {
    std::string s = kindName(v).str();
    if (std::optional<StringRef> str = v.getAsString())
      s += " \"" + str->take_front(64).str() + "\"";
    return s;
  }

  const json::Object &obj;
  std::string file, arch;
  std::string &error;
};

/// How the IR tensor is derived from the checkpoint tensor(s).
enum class Layout { AsStored, Transpose, StackTranspose };

struct WeightRef {
  std::string name; // a pattern with one '*' for StackTranspose
  SmallVector<int64_t> shape;
  Layout layout = Layout::AsStored;
  int64_t numExperts = 0; // StackTranspose only
  bool f32 = false;       // stored in f32 whatever the model dtype
};

/// HF Linear weight [out, in], used as [in, out].
WeightRef linear(std::string name, int64_t out, int64_t in) {
  return {std::move(name), {in, out}, Layout::Transpose};
}
/// Per-expert HF Linear weights [out, in] stacked as [E, in, out].
WeightRef stacked(std::string pattern, int64_t experts, int64_t out,
                  int64_t in) {
  return {std::move(pattern), {experts, in, out}, Layout::StackTranspose,
          experts};
}

struct LayerSpec {
  int64_t index = 0;  // HF layer number
  std::string scope;  // e.g. "model.layers.3.mlp", for locations
  std::string expertPrefix; // names of this layer's experts start with it
  int64_t numExperts = 0;
  WeightRef router;
  std::optional<WeightRef> routerBias;
  WeightRef up;
  std::optional<WeightRef> gate;
  WeightRef down;
  std::optional<WeightRef> sharedUp, sharedGate, sharedDown, sharedCoef;
  std::optional<WeightRef> mlpUp, mlpDown, mlpCoef;
  Activation activation = Activation::silu;
  int64_t topK = 1;
  ScoreFunc scoreFunc = ScoreFunc::softmax;
  bool renormalize = false;
  double scaling = 1.0;
  std::optional<double> capacityFactor;
  int64_t minCapacity = 0;
  std::optional<int64_t> nGroup, topkGroup;
  GroupScore groupScore = GroupScore::max;
};

struct ModelSpec {
  std::string architecture, modelType;
  int64_t hidden = 0, numLayers = 0;
  std::vector<LayerSpec> layers;
  SmallVector<int64_t> denseLayers;
  SmallVector<std::string> skipped, notes;
};

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
  m.skipped.push_back(("attention and norms of every layer (" + layers + ")")
                          .str());
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

LogicalResult importMixtral(Config &cfg, ModelSpec &m) {
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

/// Qwen2-MoE (with a sigmoid-gated shared expert) and Qwen3-MoE.
LogicalResult importQwenMoE(Config &cfg, ModelSpec &m, bool shared) {
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
      continue;
    }
    LayerSpec l;
    l.index = i;
    std::string p = "model.layers." + std::to_string(i) + ".mlp.";
    l.scope = p.substr(0, p.size() - 1);
    l.router = linear(p + "gate.weight", *e, *d);
    gatedExperts(l, p + "experts.", "gate_proj", "up_proj", "down_proj", *e,
                 *d, *f);
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

LogicalResult importOlmoe(Config &cfg, ModelSpec &m) {
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
    gatedExperts(l, p + "experts.", "gate_proj", "up_proj", "down_proj", *e,
                 *d, *f);
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
LogicalResult importDeepSeek(Config &cfg, ModelSpec &m, bool v3) {
  FailureOr<int64_t> d = cfg.size("hidden_size"),
                     f = cfg.size("moe_intermediate_size"),
                     layers = cfg.ranged("num_hidden_layers", 1, kMaxLayers),
                     e = cfg.ranged("n_routed_experts", 1, kMaxExperts),
                     k = cfg.ranged("num_experts_per_tok", 1, kMaxExperts),
                     shared = cfg.ranged("n_shared_experts", 0, 1024, 0),
                     firstDense = cfg.ranged("first_k_dense_replace", 0,
                                             kMaxLayers, 0),
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
      continue;
    }
    LayerSpec l;
    l.index = i;
    std::string p = "model.layers." + std::to_string(i) + ".mlp.";
    l.scope = p.substr(0, p.size() - 1);
    l.router = linear(p + "gate.weight", *e, *d);
    if (v3) {
      l.routerBias = WeightRef{p + "gate.e_score_correction_bias", {*e},
                               Layout::AsStored};
      l.routerBias->f32 = true; // kept in f32 by the checkpoints
    }
    gatedExperts(l, p + "experts.", "gate_proj", "up_proj", "down_proj", *e,
                 *d, *f);
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

LogicalResult importSwitch(Config &cfg, ModelSpec &m) {
  FailureOr<int64_t> d = cfg.size("d_model"), f = cfg.size("d_ff"),
                     enc = cfg.ranged("num_layers", 1, kMaxLayers),
                     e = cfg.ranged("num_experts", 1, kMaxExperts),
                     cap = cfg.ranged("expert_capacity", 1, kMaxTokens, 64),
                     encStep = cfg.ranged("encoder_sparse_step", 0, kMaxLayers,
                                          1),
                     decStep = cfg.ranged("decoder_sparse_step", 0, kMaxLayers,
                                          1);
  if (failed(d) || failed(f) || failed(enc) || failed(e) || failed(cap) ||
      failed(encStep) || failed(decStep))
    return failure();
  FailureOr<int64_t> dec = cfg.ranged("num_decoder_layers", 1, kMaxLayers, *enc);
  FailureOr<bool> bias = cfg.boolean("router_bias", false);
  FailureOr<bool> gated = cfg.boolean("is_gated_act", false);
  FailureOr<Activation> act = activationFor(cfg, "dense_act_fn", "relu");
  if (failed(dec) || failed(bias) || failed(gated) || failed(act))
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
      if (!sparse) {
        denseBlocks.push_back((stack + ".block." + Twine(i)).str());
        continue;
      }
      LayerSpec l;
      l.index = i;
      std::string p = (stack + ".block." + Twine(i) + ".layer." +
                       Twine(ffIndex) + ".mlp.")
                          .str();
      l.scope = p.substr(0, p.size() - 1);
      l.router = linear(p + "router.classifier.weight", *e, *d);
      l.expertPrefix = p + "experts.expert_";
      l.numExperts = *e;
      l.up = stacked(p + "experts.expert_*.wi.weight", *e, *f, *d);
      l.down = stacked(p + "experts.expert_*.wo.weight", *e, *d, *f);
      l.activation = *act;
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
  if (m.layers.empty())
    return cfg.fail("no sparse layers: 'encoder_sparse_step' and "
                    "'decoder_sparse_step' are both 0");
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
  m.notes.push_back("transformers passes a token over expert_capacity "
                    "through scaled by its router probability; moe.layer "
                    "drops it (zero)");
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
LogicalResult importDeepSpeedGpt(Config &cfg, ModelSpec &m,
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
      continue;
    }
    int64_t e = experts.size() == 1 ? experts[0] : experts[i / *interval];
    LayerSpec l;
    l.index = i;
    std::string p = "language_model.encoder.layers." + std::to_string(i) +
                    ".mlp.";
    l.scope = p.substr(0, p.size() - 1);
    l.router = linear(p + "deepspeed_moe.gate.wg.weight", e, *d);
    l.expertPrefix = p + "deepspeed_moe.experts.deepspeed_experts.";
    l.numExperts = e;
    l.up = stacked(l.expertPrefix + "*.dense_h_to_4h.weight", e, *f, *d);
    l.down = stacked(l.expertPrefix + "*.dense_4h_to_h.weight", e, *d, *f);
    if (*mlpType == "residual") {
      std::string coefBias = p + "coefficient.bias";
      if (index && index->count(coefBias))
        return cfg.fail("the index holds '" + coefBias +
                        "': moe.layer's mlp_coef has no bias");
      l.mlpUp = linear(p + "mlp.dense_h_to_4h.weight", *f, *d);
      l.mlpDown = linear(p + "mlp.dense_4h_to_h.weight", *d, *f);
      l.mlpCoef = linear(p + "coefficient.weight", 2, *d);
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
  addDenseSkips(m, "language_model.encoder.layers.*.self_attention, "
                   "*_layernorm",
                "language_model.embedding", "final_layernorm (LM head tied)");
  m.skipped.push_back(denseNote(m.denseLayers));
  if (*mlpType == "residual")
    m.notes.push_back("PR-MoE: DeepSpeed's coefficient Linear has a bias; "
                      "the checkpoint must not carry one");
  if (*k == 1)
    m.notes.push_back("DeepSpeed's top-1 gating may pick dropped tokens at "
                      "random (use_rts); moe.layer drops by position");
  return success();
}

//===----------------------------------------------------------------------===//
// Architecture table, index checks and IR emission
//===----------------------------------------------------------------------===//

struct ArchEntry {
  StringRef modelType;
  std::initializer_list<StringRef> architectures;
};
const ArchEntry kArchs[] = {
    {"mixtral", {"MixtralForCausalLM", "MixtralModel"}},
    {"qwen2_moe", {"Qwen2MoeForCausalLM", "Qwen2MoeModel"}},
    {"qwen3_moe", {"Qwen3MoeForCausalLM", "Qwen3MoeModel"}},
    {"olmoe", {"OlmoeForCausalLM", "OlmoeModel"}},
    {"deepseek_v2", {"DeepseekV2ForCausalLM", "DeepseekV2Model"}},
    {"deepseek_v3", {"DeepseekV3ForCausalLM", "DeepseekV3Model"}},
    {"switch_transformers",
     {"SwitchTransformersForConditionalGeneration",
      "SwitchTransformersModel", "SwitchTransformersEncoderModel"}},
    {"deepspeed_moe_gpt", {"DeepSpeedMoEGPT"}},
};

std::string supportedList() {
  std::string s;
  for (const ArchEntry &a : kArchs)
    s += (s.empty() ? "" : ", ") + a.modelType.str();
  return s;
}

class Importer {
public:
  Importer(MLIRContext *ctx, const HFImportOptions &opts, std::string &error)
      : ctx(ctx), opts(opts), error(error) {}

  OwningOpRef<ModuleOp> run(StringRef configText,
                            std::optional<StringRef> indexText,
                            ArrayRef<HFSafetensorsHeader> headers);

private:
  LogicalResult fail(const Twine &msg) {
    if (error.empty())
      error = msg.str();
    return failure();
  }
  LogicalResult readIndex(StringRef text);
  LogicalResult readHeader(const HFSafetensorsHeader &header);
  LogicalResult checkStored(StringRef name, ArrayRef<int64_t> shape,
                            const WeightRef &w, const LayerSpec &l,
                            StringRef role);
  LogicalResult checkIndex(const ModelSpec &m);
  LogicalResult checkSizes(const ModelSpec &m);
  LogicalResult checkTensor(const LayerSpec &l, const WeightRef &w,
                            StringRef role);
  OwningOpRef<ModuleOp> emit(const ModelSpec &m, Type dtype,
                             StringRef dtypeName);

  MLIRContext *ctx;
  const HFImportOptions &opts;
  std::string &error;
  std::optional<llvm::StringSet<>> index;
  /// Dtype and shape of every tensor whose safetensors header was read.
  struct Stored {
    std::string dtype, file;
    SmallVector<int64_t> shape;
  };
  llvm::StringMap<Stored> stored;
  std::string dtypeTag; // BF16, F16 or F32: the model's tensors
  std::string listName; // the file that lists the tensors, for messages
  std::string arch;
};

LogicalResult Importer::readHeader(const HFSafetensorsHeader &header) {
  const std::string &file = header.file;
  std::optional<json::Value> v = parseJson(header.json, file, error);
  if (!v)
    return failure();
  const json::Object *root = v->getAsObject();
  if (!root)
    return fail(file + ": the safetensors header must be an object, got " +
                Config::describe(*v));
  for (const auto &kv : *root) {
    StringRef name = kv.first;
    if (name == "__metadata__")
      continue;
    const json::Object *t = kv.second.getAsObject();
    auto bad = [&](const Twine &why) {
      return fail(file + ": tensor '" + name + "': " + why);
    };
    if (!t)
      return bad("expected an object, got " + Config::describe(kv.second));
    const json::Value *dt = t->get("dtype");
    const json::Array *shape = t->getArray("shape");
    if (!dt || !dt->getAsString())
      return bad("'dtype' must be a string");
    if (!shape)
      return bad("'shape' must be a list of integers");
    Stored s;
    s.dtype = dt->getAsString()->str();
    s.file = file;
    for (const json::Value &d : *shape) {
      std::optional<int64_t> i = d.getAsInteger();
      if (!i || *i < 0)
        return bad("'shape' must be a list of non-negative integers");
      s.shape.push_back(*i);
    }
    stored[name] = std::move(s);
  }
  return success();
}

LogicalResult Importer::checkStored(StringRef name, ArrayRef<int64_t> shape,
                                    const WeightRef &w, const LayerSpec &l,
                                    StringRef role) {
  StringRef dtype = w.f32 ? StringRef("F32") : StringRef(dtypeTag);
  auto it = stored.find(name);
  if (it == stored.end())
    return success(); // its shard's header was not read
  const Stored &s = it->second;
  auto str = [](ArrayRef<int64_t> v) {
    std::string out = "[";
    llvm::raw_string_ostream os(out);
    llvm::interleaveComma(v, os);
    return out + "]";
  };
  if (ArrayRef<int64_t>(s.shape) != shape)
    return fail(s.file + ": " + arch + ": tensor '" + name + "' (" + role +
                " of layer " + Twine(l.index) + ") has shape " + str(s.shape) +
                ", config.json implies " + str(shape));
  // Kept in f32 by the official checkpoints, in the model dtype by a model
  // that transformers cast as a whole; the argument takes the stored type.
  bool anyFloat = w.f32 && (s.dtype == "BF16" || s.dtype == "F16");
  if (s.dtype != dtype && !anyFloat)
    return fail(s.file + ": " + arch + ": tensor '" + name + "' (" + role +
                " of layer " + Twine(l.index) + ") is " + s.dtype +
                ", config.json implies " + dtype);
  return success();
}

LogicalResult Importer::readIndex(StringRef text) {
  const std::string &file = opts.indexName;
  std::optional<json::Value> v = parseJson(text, file, error);
  if (!v)
    return failure();
  const json::Object *root = v->getAsObject();
  if (!root)
    return fail(file + ": the top level must be an object, got " +
                Config::describe(*v));
  const json::Value *wm = root->get("weight_map");
  if (!wm)
    return fail(file + ": missing key 'weight_map'");
  const json::Object *map = wm->getAsObject();
  if (!map)
    return fail(file + ": 'weight_map' must be an object, got " +
                Config::describe(*wm));
  index.emplace();
  for (const auto &kv : *map) {
    if (!kv.second.getAsString())
      return fail(file + ": 'weight_map' entry '" + StringRef(kv.first) +
                  "' must name a file (a string), got " +
                  Config::describe(kv.second));
    index->insert(StringRef(kv.first));
  }
  return success();
}

LogicalResult Importer::checkTensor(const LayerSpec &l, const WeightRef &w,
                                    StringRef role) {
  auto missing = [&](StringRef name) {
    return fail(listName + ": " + arch + ": no entry for tensor '" +
                name + "' (" + role + " of layer " + Twine(l.index) + ")");
  };
  // The stored shape: HF Linear weights are [out, in].
  SmallVector<int64_t> shape(w.shape);
  if (w.layout == Layout::Transpose)
    std::swap(shape[0], shape[1]);
  if (w.layout != Layout::StackTranspose) {
    if (!index->count(w.name))
      return missing(w.name);
    return checkStored(w.name, shape, w, l, role);
  }
  shape = {w.shape[2], w.shape[1]};
  size_t star = w.name.find('*');
  StringRef head = StringRef(w.name).take_front(star),
            tail = StringRef(w.name).drop_front(star + 1);
  for (int64_t j = 0; j < w.numExperts; ++j) {
    std::string name = (head + Twine(j) + tail).str();
    if (!index->count(name))
      return missing(name);
    if (failed(checkStored(name, shape, w, l, role)))
      return failure();
  }
  return success();
}

/// Every dim is at most kMaxDim, but a stacked weight multiplies three of
/// them; refuse what no machine could hold before later passes multiply
/// sizes in 64 bits.
LogicalResult Importer::checkSizes(const ModelSpec &m) {
  constexpr uint64_t kMaxElements = uint64_t(1) << 40;
  auto check = [&](const LayerSpec &l, const std::optional<WeightRef> &w) {
    if (!w)
      return success();
    uint64_t n = 1;
    for (int64_t d : w->shape) {
      if (n > kMaxElements / uint64_t(d))
        return fail(opts.configName + ": " + arch + ": tensor '" + w->name +
                    "' of layer " + Twine(l.index) +
                    " would have more than 2^40 elements; the sizes in "
                    "config.json are implausible");
      n *= uint64_t(d);
    }
    return success();
  };
  for (const LayerSpec &l : m.layers)
    for (const std::optional<WeightRef> &w :
         {std::optional<WeightRef>(l.router), l.routerBias,
          std::optional<WeightRef>(l.up), l.gate,
          std::optional<WeightRef>(l.down), l.sharedUp, l.sharedGate,
          l.sharedDown, l.sharedCoef, l.mlpUp, l.mlpDown, l.mlpCoef})
      if (failed(check(l, w)))
        return failure();
  return success();
}

LogicalResult Importer::checkIndex(const ModelSpec &m) {
  for (const LayerSpec &l : m.layers) {
    // Experts beyond the configured count mean the config and the weights
    // describe different models.
    int64_t maxSeen = -1;
    for (const auto &entry : *index) {
      StringRef key = entry.getKey();
      if (!key.consume_front(l.expertPrefix))
        continue;
      StringRef digits = key.take_while([](char c) { return llvm::isDigit(c); });
      int64_t j;
      if (digits.empty() || !key.drop_front(digits.size()).starts_with(".") ||
          digits.getAsInteger(10, j))
        continue;
      maxSeen = std::max(maxSeen, j);
    }
    if (maxSeen >= l.numExperts)
      return fail(listName + ": " + arch + ": layer " + Twine(l.index) +
                  " has expert " + Twine(maxSeen) + " ('" + l.expertPrefix +
                  Twine(maxSeen) + ".*') but config.json gives " +
                  Twine(l.numExperts) + " experts");
    struct {
      const std::optional<WeightRef> &w;
      StringRef role;
    } optional[] = {{l.routerBias, "router bias"}, {l.gate, "expert gate"},
                    {l.sharedGate, "shared expert gate_proj"},
                    {l.sharedUp, "shared expert up_proj"},
                    {l.sharedDown, "shared expert down_proj"},
                    {l.sharedCoef, "shared expert gate"},
                    {l.mlpUp, "residual MLP up"},
                    {l.mlpDown, "residual MLP down"},
                    {l.mlpCoef, "residual coefficient"}};
    if (failed(checkTensor(l, l.router, "router")) ||
        failed(checkTensor(l, l.up, "expert up")) ||
        failed(checkTensor(l, l.down, "expert down")))
      return failure();
    for (auto &o : optional)
      if (o.w && failed(checkTensor(l, *o.w, o.role)))
        return failure();
  }
  return success();
}

OwningOpRef<ModuleOp> Importer::emit(const ModelSpec &m, Type dtype,
                                     StringRef dtypeName) {
  OpBuilder b(ctx);
  Location fileLoc = FileLineColLoc::get(ctx, opts.configName, 1, 1);
  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);

  // Arguments: x, then each layer's weights in operand order.
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  auto tokensType = RankedTensorType::get({opts.tokens, m.hidden}, dtype);
  argTypes.push_back(tokensType);
  argAttrs.push_back(
      b.getDictionaryAttr(b.getNamedAttr("moe.input", b.getStringAttr("x"))));
  auto addWeight = [&](const WeightRef &w) -> unsigned {
    Type elt = dtype;
    if (w.f32) {
      auto it = stored.find(w.name);
      StringRef tag = it == stored.end() ? "F32" : it->second.dtype;
      elt = tag == "BF16"  ? b.getBF16Type()
            : tag == "F16" ? b.getF16Type()
                           : b.getF32Type();
    }
    argTypes.push_back(RankedTensorType::get(w.shape, elt));
    SmallVector<NamedAttribute> attrs = {
        b.getNamedAttr("moe.weight", b.getStringAttr(w.name))};
    if (w.layout == Layout::Transpose)
      attrs.push_back(b.getNamedAttr("moe.transpose", b.getUnitAttr()));
    if (w.layout == Layout::StackTranspose)
      attrs.push_back(b.getNamedAttr("moe.stack", b.getStringAttr("transpose")));
    argAttrs.push_back(b.getDictionaryAttr(attrs));
    return argTypes.size() - 1;
  };
  struct Slots {
    unsigned router, up, down;
    std::optional<unsigned> bias, gate, sUp, sGate, sDown, sCoef, mUp, mDown,
        mCoef;
  };
  SmallVector<Slots> slots;
  auto opt = [&](const std::optional<WeightRef> &w) -> std::optional<unsigned> {
    if (!w)
      return std::nullopt;
    return addWeight(*w);
  };
  for (const LayerSpec &l : m.layers) {
    Slots s;
    s.router = addWeight(l.router);
    s.bias = opt(l.routerBias);
    s.up = addWeight(l.up);
    s.gate = opt(l.gate);
    s.down = addWeight(l.down);
    s.sUp = opt(l.sharedUp);
    s.sGate = opt(l.sharedGate);
    s.sDown = opt(l.sharedDown);
    s.sCoef = opt(l.sharedCoef);
    s.mUp = opt(l.mlpUp);
    s.mDown = opt(l.mlpDown);
    s.mCoef = opt(l.mlpCoef);
    slots.push_back(s);
  }

  b.setInsertionPointToEnd(module->getBody());
  auto fnType = b.getFunctionType(argTypes, {tokensType});
  auto fn = func::FuncOp::create(b, fileLoc, "model", fnType);
  fn.setAllArgAttrs(argAttrs);
  fn.setResultAttr(0, "moe.output", b.getStringAttr("y"));
  Block *body = fn.addEntryBlock();
  b.setInsertionPointToEnd(body);
  auto arg = [&](std::optional<unsigned> i) -> Value {
    return i ? body->getArgument(*i) : Value();
  };
  Value x = body->getArgument(0);
  for (auto [l, s] : llvm::zip_equal(m.layers, slots)) {
    Location loc = NameLoc::get(b.getStringAttr(l.scope), fileLoc);
    FloatAttr cf = l.capacityFactor ? b.getF64FloatAttr(*l.capacityFactor)
                                    : FloatAttr();
    IntegerAttr nGroup = l.nGroup ? b.getI64IntegerAttr(*l.nGroup)
                                  : IntegerAttr();
    IntegerAttr topkGroup = l.topkGroup ? b.getI64IntegerAttr(*l.topkGroup)
                                        : IntegerAttr();
    x = LayerOp::create(
        b, loc, tokensType, x, arg(s.router), arg(s.bias), arg(s.up),
        arg(s.gate), arg(s.down), arg(s.sUp), arg(s.sGate), arg(s.sDown),
        arg(s.sCoef), arg(s.mUp), arg(s.mDown), arg(s.mCoef), l.activation,
        uint64_t(l.topK), l.scoreFunc, /*score_after_topk=*/false,
        l.renormalize, llvm::APFloat(l.scaling), cf, uint64_t(l.minCapacity),
        DropPolicy::position, nGroup, topkGroup, l.groupScore);
  }
  func::ReturnOp::create(b, fileLoc, x);

  auto strings = [&](ArrayRef<std::string> list) {
    SmallVector<Attribute> attrs;
    for (const std::string &s : list)
      attrs.push_back(b.getStringAttr(s));
    return b.getArrayAttr(attrs);
  };
  SmallVector<std::string> moeLayers;
  for (const LayerSpec &l : m.layers)
    moeLayers.push_back(l.scope);
  SmallVector<NamedAttribute> info = {
      b.getNamedAttr("architecture", b.getStringAttr(m.architecture)),
      b.getNamedAttr("model_type", b.getStringAttr(m.modelType)),
      b.getNamedAttr("num_hidden_layers", b.getI64IntegerAttr(m.numLayers)),
      b.getNamedAttr("dtype", b.getStringAttr(dtypeName)),
      b.getNamedAttr("moe_layers", strings(moeLayers)),
      b.getNamedAttr("dense_layers", b.getDenseI64ArrayAttr(m.denseLayers)),
      b.getNamedAttr("skipped", strings(m.skipped)),
      b.getNamedAttr("weights_checked", b.getBoolAttr(index.has_value())),
      b.getNamedAttr("shapes_checked", b.getBoolAttr(!stored.empty()))};
  if (!m.notes.empty())
    info.push_back(b.getNamedAttr("notes", strings(m.notes)));
  (*module)->setAttr("moe.hf", b.getDictionaryAttr(info));

  // A verifier failure here is an importer bug or a config combination the
  // checks above missed; report it as an error, never crash.
  std::string diag;
  {
    ScopedDiagnosticHandler handler(ctx, [&](Diagnostic &d) {
      if (diag.empty())
        diag = d.str();
      return success();
    });
    if (failed(verify(*module))) {
      (void)fail(opts.configName + ": " + arch +
           ": the imported model does not verify: " + diag);
      return nullptr;
    }
  }
  return module;
}

OwningOpRef<ModuleOp> Importer::run(StringRef configText,
                                    std::optional<StringRef> indexText,
                                    ArrayRef<HFSafetensorsHeader> headers) {
  std::optional<json::Value> v = parseJson(configText, opts.configName, error);
  if (!v)
    return nullptr;
  const json::Object *root = v->getAsObject();
  if (!root) {
    (void)fail(opts.configName + ": the top level must be an object, got " +
         Config::describe(*v));
    return nullptr;
  }
  Config cfg(*root, opts.configName, error);

  // The architecture: model_type, checked against architectures[0].
  std::string archName;
  if (const json::Value *a = cfg.get("architectures")) {
    const json::Array *list = a->getAsArray();
    if (!list || list->empty() || !(*list)[0].getAsString()) {
      (void)fail(opts.configName +
           ": 'architectures' must be a non-empty list of strings, got " +
           Config::describe(*a));
      return nullptr;
    }
    archName = (*list)[0].getAsString()->str();
  }
  const ArchEntry *entry = nullptr;
  std::string modelType;
  if (cfg.has("model_type")) {
    FailureOr<std::string> mt = cfg.string("model_type");
    if (failed(mt))
      return nullptr;
    modelType = *mt;
    for (const ArchEntry &a : kArchs)
      if (a.modelType == modelType)
        entry = &a;
    if (!entry) {
      (void)fail(opts.configName + ": unsupported model_type '" + modelType + "'" +
           (archName.empty() ? "" : " (architecture '" + archName + "')") +
           "; supported: " + supportedList());
      return nullptr;
    }
    if (!archName.empty() &&
        !llvm::is_contained(entry->architectures, StringRef(archName))) {
      (void)fail(opts.configName + ": unsupported architecture '" + archName +
           "' for model_type '" + modelType + "'");
      return nullptr;
    }
  } else if (!archName.empty()) {
    for (const ArchEntry &a : kArchs)
      if (llvm::is_contained(a.architectures, StringRef(archName)))
        entry = &a;
    if (!entry) {
      (void)fail(opts.configName + ": unsupported architecture '" + archName +
           "'; supported model types: " + supportedList());
      return nullptr;
    }
    modelType = entry->modelType.str();
  } else {
    (void)fail(opts.configName +
         ": missing 'model_type' and 'architectures': cannot tell the "
         "architecture");
    return nullptr;
  }
  arch = modelType;
  cfg.setArch(modelType);

  // Element type: torch_dtype (transformers < 5) or dtype.
  StringRef dtypeKey = cfg.has("torch_dtype") ? "torch_dtype" : "dtype";
  FailureOr<std::string> dtypeName = cfg.string(dtypeKey, "float32");
  if (failed(dtypeName))
    return nullptr;
  Type dtype;
  OpBuilder b(ctx);
  if (*dtypeName == "bfloat16")
    dtype = b.getBF16Type();
  else if (*dtypeName == "float16")
    dtype = b.getF16Type();
  else if (*dtypeName == "float32")
    dtype = b.getF32Type();
  else {
    (void)cfg.fail("unsupported '" + dtypeKey + "' value '" + *dtypeName +
             "' (supported: bfloat16, float16, float32)");
    return nullptr;
  }

  if (opts.tokens < 1 || opts.tokens > kMaxTokens) {
    (void)fail("--import-hf-tokens must be in [1, " + Twine(kMaxTokens) + "], got " +
         Twine(opts.tokens));
    return nullptr;
  }
  dtypeTag = dtype.isBF16() ? "BF16" : dtype.isF16() ? "F16" : "F32";
  if (indexText && failed(readIndex(*indexText)))
    return nullptr;
  for (const HFSafetensorsHeader &h : headers)
    if (failed(readHeader(h)))
      return nullptr;
  // A single-file checkpoint without an index: its header lists the tensors.
  listName = opts.indexName;
  if (!index && !headers.empty()) {
    listName = headers.front().file;
    index.emplace();
    for (const auto &kv : stored)
      index->insert(kv.getKey());
  }

  ModelSpec m;
  m.modelType = modelType;
  m.architecture = archName.empty() ? modelType : archName;
  LogicalResult r = failure();
  if (modelType == "mixtral")
    r = importMixtral(cfg, m);
  else if (modelType == "qwen2_moe")
    r = importQwenMoE(cfg, m, /*shared=*/true);
  else if (modelType == "qwen3_moe")
    r = importQwenMoE(cfg, m, /*shared=*/false);
  else if (modelType == "olmoe")
    r = importOlmoe(cfg, m);
  else if (modelType == "deepseek_v2")
    r = importDeepSeek(cfg, m, /*v3=*/false);
  else if (modelType == "deepseek_v3")
    r = importDeepSeek(cfg, m, /*v3=*/true);
  else if (modelType == "switch_transformers")
    r = importSwitch(cfg, m);
  else if (modelType == "deepspeed_moe_gpt")
    r = importDeepSpeedGpt(cfg, m, index ? &*index : nullptr);
  if (failed(r))
    return nullptr;
  if (m.layers.empty()) {
    (void)cfg.fail("the configuration has no MoE layers");
    return nullptr;
  }
  if (failed(checkSizes(m)) || (index && failed(checkIndex(m))))
    return nullptr;
  return emit(m, dtype, *dtypeName);
}

} // namespace

OwningOpRef<ModuleOp>
mlir::moe::importHFConfig(StringRef configText,
                          std::optional<StringRef> indexText,
                          ArrayRef<HFSafetensorsHeader> headers,
                          MLIRContext *context, const HFImportOptions &options,
                          std::string &error) {
  error.clear();
  context->loadDialect<MoEDialect, func::FuncDialect>();
  OwningOpRef<ModuleOp> module =
      Importer(context, options, error).run(configText, indexText, headers);
  if (!module && error.empty())
    error = options.configName + ": import failed";
  return module;
}

/// Reads the JSON header of a safetensors file (8-byte little-endian length,
/// then the header); the tensor data is never read.
static LogicalResult readHeaderOf(StringRef path, HFSafetensorsHeader &out,
                                  std::string &error) {
  constexpr uint64_t kMaxHeader = uint64_t(100) << 20;
  auto fail = [&](const Twine &why) {
    error = (path + ": " + why).str();
    return failure();
  };
  uint64_t fileSize = 0;
  if (llvm::sys::fs::file_size(path, fileSize) || fileSize < 8)
    return fail("too short for a safetensors header (" + Twine(fileSize) +
                " bytes)");
  auto buf = llvm::MemoryBuffer::getFileSlice(path, 8, 0);
  if (!buf || (*buf)->getBufferSize() != 8)
    return fail("cannot read the safetensors header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | uint8_t((*buf)->getBuffer()[i]);
  if (n == 0 || n > kMaxHeader)
    return fail("safetensors header length " + Twine(n) +
                " is out of range (1 .. " + Twine(kMaxHeader) + ")");
  auto header = llvm::MemoryBuffer::getFileSlice(path, n, 8);
  if (n > fileSize - 8 || !header || (*header)->getBufferSize() != n)
    return fail("the file is shorter than its safetensors header (" +
                Twine(n) + " bytes)");
  out.file = path.str();
  out.json = (*header)->getBuffer().str();
  return success();
}

LogicalResult mlir::moe::readSafetensorsHeaders(
    StringRef dir, const std::optional<std::string> &indexText,
    std::vector<HFSafetensorsHeader> &headers, std::string &error) {
  llvm::SmallVector<std::string> files;
  if (indexText) {
    // The shards the index names; a malformed index is reported by the
    // importer itself, so it is only read here when it parses.
    llvm::Expected<json::Value> v = json::parse(*indexText);
    if (!v) {
      llvm::consumeError(v.takeError());
      return success();
    }
    llvm::StringSet<> seen;
    if (const json::Object *root = v->getAsObject())
      if (const json::Object *map = root->getObject("weight_map"))
        for (const auto &kv : *map)
          if (std::optional<StringRef> f = kv.second.getAsString())
            if (seen.insert(*f).second && !f->contains('/'))
              files.push_back(f->str());
  } else {
    files.push_back("model.safetensors");
  }
  for (const std::string &f : files) {
    SmallString<256> path(dir);
    llvm::sys::path::append(path, f);
    if (!llvm::sys::fs::is_regular_file(path))
      continue; // config-only directories are fine
    HFSafetensorsHeader h;
    if (failed(readHeaderOf(path, h, error)))
      return failure();
    headers.push_back(std::move(h));
  }
  return success();
}

void mlir::moe::registerHFImportTranslation() {
  static llvm::cl::opt<int64_t> tokens(
      "import-hf-tokens",
      llvm::cl::desc("--import-hf: rows of the hidden-states input x"),
      llvm::cl::init(1));
  static TranslateToMLIRRegistration reg(
      "import-hf",
      "import a Hugging Face MoE checkpoint directory (config.json and "
      "model.safetensors.index.json) as moe IR",
      [](llvm::SourceMgr &sourceMgr,
         MLIRContext *context) -> OwningOpRef<Operation *> {
        const llvm::MemoryBuffer *buf =
            sourceMgr.getMemoryBuffer(sourceMgr.getMainFileID());
        HFImportOptions options;
        options.tokens = tokens;
        StringRef configPath = buf->getBufferIdentifier();
        options.configName = configPath.str();
        // The index beside config.json, when there is one.
        std::optional<std::string> indexText;
        if (configPath != "<stdin>" && !configPath.empty()) {
          SmallString<256> indexPath = llvm::sys::path::parent_path(configPath);
          llvm::sys::path::append(indexPath, "model.safetensors.index.json");
          options.indexName = indexPath.str().str();
          if (llvm::sys::fs::is_regular_file(indexPath)) {
            auto indexBuf = llvm::MemoryBuffer::getFile(indexPath);
            if (!indexBuf) {
              emitError(UnknownLoc::get(context))
                  << "cannot read " << indexPath << ": "
                  << indexBuf.getError().message();
              return nullptr;
            }
            indexText = (*indexBuf)->getBuffer().str();
          }
        }
        std::string error;
        std::vector<HFSafetensorsHeader> headers;
        if (configPath != "<stdin>" && !configPath.empty() &&
            failed(readSafetensorsHeaders(
                llvm::sys::path::parent_path(configPath), indexText, headers,
                error))) {
          emitError(UnknownLoc::get(context)) << error;
          return nullptr;
        }
        OwningOpRef<ModuleOp> module = importHFConfig(
            buf->getBuffer(),
            indexText ? std::optional<StringRef>(*indexText) : std::nullopt,
            headers, context, options, error);
        if (!module) {
          emitError(UnknownLoc::get(context)) << error;
          return nullptr;
        }
        return OwningOpRef<Operation *>(module.release());
      },
      [](DialectRegistry &registry) {
        registry.insert<MoEDialect, func::FuncDialect>();
      });
}
