//===- HFImportInternal.h - Shared pieces of the HF importer ----*- C++ -*-===//
//
// Part of moe-compiler. Checked access to config.json keys and the layer
// description that each architecture's mapping (HFArchitectures.cpp) fills
// and the emitter (HFImport.cpp) turns into IR. Not installed.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_IMPORT_HFIMPORTINTERNAL_H
#define MOE_LIB_IMPORT_HFIMPORTINTERNAL_H

#include "moe/Dialect/MoE/IR/MoE.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/JSON.h"

#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace mlir::moe::hf {
namespace json = llvm::json;

/// llvm::json recurses once per nested array/object; deeper input than this
/// is refused before parsing so that it cannot overflow the stack.
constexpr unsigned kMaxJsonDepth = 200;
/// Bounds that keep every size product and loop far from overflow; real
/// models are orders of magnitude below them.
constexpr int64_t kMaxDim = int64_t(1) << 24;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxExperts = 65536;
constexpr int64_t kMaxTokens = int64_t(1) << 20;

/// Describes a JSON value's kind for messages ("a string", "an array").
StringRef kindName(const json::Value &v);
/// Formats a double for messages.
std::string fmt(double d);

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
/// QkvTranspose: part `part` (0 q, 1 k, 2 v) of Megatron's fused
/// query_key_value [heads * 3 * hd, in] (per head: q, k, v rows), used as
/// [in, heads * hd]; split out when the weights load.
enum class Layout { AsStored, Transpose, StackTranspose, QkvTranspose };

struct WeightRef {
  std::string name; // a pattern with one '*' for StackTranspose
  SmallVector<int64_t> shape;
  Layout layout = Layout::AsStored;
  int64_t numExperts = 0; // StackTranspose only
  bool f32 = false;       // stored in f32 whatever the model dtype
  int64_t heads = 0, part = 0; // QkvTranspose only
  /// The shape in the checkpoint.
  SmallVector<int64_t> storedShape() const {
    SmallVector<int64_t> s(shape);
    if (layout == Layout::Transpose)
      std::swap(s[0], s[1]);
    if (layout == Layout::QkvTranspose)
      s = {3 * shape[1], shape[0]};
    return s;
  }
};

/// HF Linear weight [out, in], used as [in, out].
inline WeightRef linear(std::string name, int64_t out, int64_t in) {
  return {std::move(name), {in, out}, Layout::Transpose};
}
/// Per-expert HF Linear weights [out, in] stacked as [E, in, out].
inline WeightRef stacked(std::string pattern, int64_t experts, int64_t out,
                         int64_t in) {
  return {
      std::move(pattern), {experts, in, out}, Layout::StackTranspose, experts};
}

struct LayerSpec {
  int64_t index = 0;        // HF layer number
  std::string scope;        // e.g. "model.layers.3.mlp", for locations
  std::string expertPrefix; // names of this layer's experts start with it
  int64_t numExperts = 0;
  WeightRef router;
  std::optional<WeightRef> routerBias;
  WeightRef up;
  std::optional<WeightRef> gate;
  WeightRef down;
  std::optional<WeightRef> sharedUp, sharedGate, sharedDown, sharedCoef;
  std::optional<WeightRef> mlpUp, mlpDown, mlpCoef, mlpCoefBias;
  Activation activation = Activation::silu;
  int64_t topK = 1;
  ScoreFunc scoreFunc = ScoreFunc::softmax;
  bool renormalize = false;
  double scaling = 1.0;
  std::optional<double> capacityFactor;
  int64_t minCapacity = 0;
  std::optional<int64_t> nGroup, topkGroup;
  GroupScore groupScore = GroupScore::max;
  /// A dense MLP block instead of MoE (whole models only): `sharedUp`,
  /// `sharedGate`, `sharedDown` hold its weights; no router or experts.
  bool denseMlp = false;
};

/// The dense parts of a whole decoder (Llama-style attention).
struct DenseSpec {
  int64_t vocab = 0, heads = 0, kvHeads = 0, headDim = 0;
  double ropeTheta = 10000.0, epsilon = 1e-6;
  /// Scaled RoPE (YaRN, linear): the inverse frequency of each rotated pair
  /// and the factor on cos and sin; empty and 1 for plain RoPE.
  std::vector<float> ropeInvFreq;
  double ropeAttentionFactor = 1.0;
  WeightRef embed, finalNorm, lmHead;
  /// Multi-head latent attention (DeepSeek) instead of q/k/v projections:
  /// per-head widths, and the blocks' q_a/q_b/kv_a/kv_b weights.
  struct Mla {
    int64_t nope = 0, rope = 0, v = 0;
    bool interleaved = true;
    double softmaxScale = 1.0;
  };
  std::optional<Mla> mla;
  /// GPT-style (DeepSpeed-MoE GPT): LayerNorm with biases instead of
  /// RMSNorm, learned absolute position embeddings added to the token
  /// embedding (no rotary embedding: `ropeInvFreq` all zero).
  bool layerNorm = false;
  std::optional<WeightRef> posEmbed, finalNormBias;
  struct Block {
    WeightRef inputNorm, q, k, v, o, postNorm;
    std::optional<WeightRef> qBias, kBias, vBias, qNorm, kNorm;
    std::optional<WeightRef> inputNormBias, postNormBias;
    /// MLA: `q` is q_b (or q_proj without query compression).
    std::optional<WeightRef> qA, qANorm, kvA, kvANorm, kvB;
  };
  std::vector<Block> blocks; // one per MoE layer, in order
};

/// The parts of a T5-style encoder-decoder (Switch Transformers) around
/// its FFN blocks: `ModelSpec::layers` holds the encoder's blocks, then the
/// decoder's (MoE or dense), and `blocks` their attention weights.
struct EncDecSpec {
  int64_t vocab = 0, heads = 0, headDim = 0, encoderLayers = 0,
          buckets = 0, maxDistance = 0, decoderStart = 0;
  double epsilon = 1e-6;
  /// Tied embeddings: the decoder output is scaled by d_model^-0.5
  /// before the LM head.
  bool tied = true;
  WeightRef embed, encoderBias, decoderBias, encoderFinalNorm,
      decoderFinalNorm, lmHead;
  /// T5 attention's projections: q, k, v [d, inner] and o [inner, d].
  struct Attention {
    WeightRef q, k, v, o;
  };
  struct Block {
    WeightRef selfNorm, ffNorm;
    Attention self;
    /// Decoder blocks: the cross-attention and its norm.
    std::optional<WeightRef> crossNorm;
    std::optional<Attention> cross;
  };
  std::vector<Block> blocks;
};

struct ModelSpec {
  std::optional<DenseSpec> dense;
  std::optional<EncDecSpec> encdec;
  std::string architecture, modelType;
  int64_t hidden = 0, numLayers = 0;
  std::vector<LayerSpec> layers;
  SmallVector<int64_t> denseLayers;
  /// The dense MLPs of `denseLayers` where the architecture knows them
  /// (LayerSpec::denseMlp); whole-model import puts them among `layers`.
  std::vector<LayerSpec> denseMlps;
  SmallVector<std::string> skipped, notes;
};

// Each architecture's mapping: reads its keys from `cfg` (failing with a
// message that names the key) and fills `m`.
LogicalResult importMixtral(Config &cfg, ModelSpec &m);
/// Llama-style attention, norms, embedding and LM head around the MoE layers
/// of `m` (the whole model); `prefix` is e.g. "model.".
/// Where a model normalises q and k: not, per head (Qwen3), or over the
/// whole projection (OLMoE).
enum class QkNorm { None, PerHead, Whole };
/// The rotary embedding of a config: `rope_theta` and `rope_scaling`
/// (transformers 4), or `rope_parameters` (transformers 5, which holds
/// both). `rotary` is the number of rotated dimensions per head.
struct RopeConfig {
  double theta = 10000.0;
  std::vector<float> invFreq; // empty: 1/theta^(2j/rotary)
  double attentionFactor = 1.0;
  /// YaRN's mscale over all dimensions (DeepSeek scales the softmax by its
  /// square); 1 otherwise.
  double softmaxMscale = 1.0;
};
LogicalResult readRope(Config &cfg, double defaultTheta, int64_t rotary,
                       RopeConfig &out);
LogicalResult importLlamaDense(Config &cfg, ModelSpec &m,
                               bool qkvBias = false,
                               QkNorm qkNorm = QkNorm::None);
LogicalResult importQwenMoE(Config &cfg, ModelSpec &m, bool shared);
LogicalResult importOlmoe(Config &cfg, ModelSpec &m);
LogicalResult importDeepSeek(Config &cfg, ModelSpec &m, bool v3);
/// DeepSeek's multi-head latent attention, norms, embedding and LM head
/// around the layers of `m` (the whole model).
LogicalResult importDeepSeekDense(Config &cfg, ModelSpec &m, bool v3);
/// The GPT parts of a DeepSpeed-MoE GPT (PR-MoE, MoS) whole model: learned
/// position embeddings, LayerNorms, Megatron's fused QKV, the tied LM head.
LogicalResult importDeepSpeedGptDense(Config &cfg, ModelSpec &m);
/// Switch Transformers: the MoE layers of encoder and decoder; `whole`
/// adds the dense FFN blocks and the encoder-decoder parts (`m.encdec`).
LogicalResult importSwitch(Config &cfg, ModelSpec &m, bool whole);
/// `index`, when known, says whether PR-MoE's coefficient has its bias
/// (without one, DeepSpeed's default: it has).
LogicalResult importDeepSpeedGpt(Config &cfg, ModelSpec &m,
                                 const llvm::StringSet<> *index);

} // namespace mlir::moe::hf

#endif // MOE_LIB_IMPORT_HFIMPORTINTERNAL_H
