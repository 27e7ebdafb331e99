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

#include "HFImportInternal.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Utils/TensorBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
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

using namespace mlir::moe::hf;

namespace {

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
      error =
          (file + ":" + m.slice(1, colon) + ":" + m.slice(colon + 1, comma) +
           ": malformed JSON: " + m.substr(close + 3))
              .str();
      return std::nullopt;
    }
  }
  error = (file + ": malformed JSON: " + m).str();
  return std::nullopt;
}

} // namespace

std::string hf::fmt(double d) {
  std::string s;
  llvm::raw_string_ostream(s) << d;
  return s;
}

StringRef hf::kindName(const json::Value &v) {
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

namespace {

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
     {"SwitchTransformersForConditionalGeneration", "SwitchTransformersModel",
      "SwitchTransformersEncoderModel"}},
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
  /// config.json's `quantization_config`: absent, or block-scaled FP8.
  LogicalResult readQuantization(Config &cfg);
  /// "fp8:BO:BI" where `w` is stored block-scaled FP8 (the checkpoint lists
  /// its `_scale_inv`, for a stack expert 0's), else empty.
  std::string quantOf(const WeightRef &w) const;
  /// The F32 scales of FP8 tensor `name` ([out, in] `shape`): listed, and
  /// one a block where their header was read.
  LogicalResult checkScales(StringRef name, ArrayRef<int64_t> shape,
                            const Twine &what);
  LogicalResult checkStored(StringRef name, ArrayRef<int64_t> shape,
                            const WeightRef &w, const LayerSpec &l,
                            StringRef role);
  LogicalResult checkIndex(const ModelSpec &m);
  LogicalResult checkDense(const ModelSpec &m);
  LogicalResult checkSizes(const ModelSpec &m);
  LogicalResult checkTensor(const LayerSpec &l, const WeightRef &w,
                            StringRef role);
  OwningOpRef<ModuleOp> emit(const ModelSpec &m, Type dtype,
                             StringRef dtypeName);
  /// A T5-style encoder-decoder (Switch Transformers).
  OwningOpRef<ModuleOp> emitEncoderDecoder(const ModelSpec &m, Type dtype,
                                           StringRef dtypeName);
  LogicalResult checkEncoderDecoder(const ModelSpec &m);
  /// A dense (non-expert) weight: in the index when there is one, with the
  /// shape and dtype config.json implies where a header was read.
  LogicalResult checkDenseWeight(const WeightRef &w, StringRef role);
  /// The argument type and attributes of weight `w` (`dtype`, or its stored
  /// type when it may be f32).
  std::pair<Type, DictionaryAttr> weightArg(OpBuilder &b, const WeightRef &w,
                                            Type dtype);
  /// The module's `moe.hf` summary, then the verifier; null on failure.
  OwningOpRef<ModuleOp> finish(OwningOpRef<ModuleOp> module,
                               const ModelSpec &m, StringRef dtypeName);

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
  /// The FP8 weights' scale blocks [over out, over in], where config.json
  /// says the checkpoint is so quantized.
  std::optional<std::pair<int64_t, int64_t>> fp8Block;
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

/// "[a, b, ...]".
static std::string shapeText(ArrayRef<int64_t> v) {
  std::string out = "[";
  llvm::raw_string_ostream os(out);
  llvm::interleaveComma(v, os);
  return out + "]";
}

/// What a stored FP8 tensor that the import did not take as one lacks.
static StringRef fp8Hint(StringRef storedDtype, bool fp8) {
  if (fp8 || !storedDtype.starts_with("F8_"))
    return "";
  return " (FP8 weights need an fp8 'quantization_config' with "
         "'weight_block_size' and a '_scale_inv' tensor each)";
}

LogicalResult Importer::readQuantization(Config &cfg) {
  const json::Value *v = cfg.get("quantization_config");
  if (!v)
    return success();
  const json::Object *q = v->getAsObject();
  if (!q)
    return cfg.fail("'quantization_config' must be an object, got " +
                    Config::describe(*v));
  Config c(*q, cfg.file, cfg.error);
  c.setArch((cfg.arch.empty() ? "" : cfg.arch + ": ") +
            "'quantization_config'");
  FailureOr<std::string> method = c.string("quant_method");
  if (failed(method))
    return failure();
  if (*method != "fp8")
    return c.fail("quant_method '" + *method +
                  "' is not supported (supported: fp8, block-scaled E4M3 "
                  "weights, which the executable dequantizes as it loads)");
  FailureOr<std::string> fmt = c.string("fmt", StringRef("e4m3"));
  if (failed(fmt))
    return failure();
  if (*fmt != "e4m3")
    return c.fail("fp8 format '" + *fmt +
                  "' is not supported (supported: e4m3)");
  FailureOr<SmallVector<int64_t>> block = c.intList("weight_block_size");
  if (failed(block))
    return failure();
  if (block->empty())
    return c.fail("fp8 without 'weight_block_size' (one scale a tensor) is not "
                  "supported; block-scaled checkpoints give [rows, columns]");
  if (block->size() != 2 || (*block)[0] < 1 || (*block)[1] < 1 ||
      (*block)[0] > kMaxDim || (*block)[1] > kMaxDim)
    return c.fail("'weight_block_size' must be two positive sizes [rows, "
                  "columns], got " +
                  shapeText(*block));
  fp8Block = {(*block)[0], (*block)[1]};
  return success();
}

std::string Importer::quantOf(const WeightRef &w) const {
  if (!fp8Block || !index || w.f32 || w.layout == Layout::QkvTranspose ||
      (w.layout == Layout::AsStored && w.shape.size() != 2))
    return "";
  std::string name = w.name;
  if (w.layout == Layout::StackTranspose)
    name.replace(name.find('*'), 1, "0");
  if (!index->count(name + "_scale_inv"))
    return "";
  return "fp8:" + std::to_string(fp8Block->first) + ":" +
         std::to_string(fp8Block->second);
}

LogicalResult Importer::checkScales(StringRef name, ArrayRef<int64_t> shape,
                                    const Twine &what) {
  std::string scaleName = (name + "_scale_inv").str();
  if (!index->count(scaleName))
    return fail(listName + ": " + arch + ": no entry for tensor '" + scaleName +
                "', the scales of FP8 tensor '" + name + "' (" + what + ")");
  SmallVector<int64_t> scaleShape = {
      (shape[0] + fp8Block->first - 1) / fp8Block->first,
      (shape[1] + fp8Block->second - 1) / fp8Block->second};
  auto it = stored.find(scaleName);
  if (it != stored.end() &&
      (it->second.dtype != "F32" ||
       ArrayRef<int64_t>(it->second.shape) != ArrayRef<int64_t>(scaleShape)))
    return fail(it->second.file + ": " + arch + ": tensor '" + scaleName +
                "' (the scales of " + what + ") is " + it->second.dtype + " " +
                shapeText(it->second.shape) + "; 'weight_block_size' " +
                shapeText({fp8Block->first, fp8Block->second}) + " over " +
                shapeText(shape) + " implies F32 " + shapeText(scaleShape));
  return success();
}

LogicalResult Importer::checkStored(StringRef name, ArrayRef<int64_t> shape,
                                    const WeightRef &w, const LayerSpec &l,
                                    StringRef role) {
  bool fp8 = !quantOf(w).empty();
  StringRef dtype = fp8     ? StringRef("F8_E4M3")
                    : w.f32 ? StringRef("F32")
                            : StringRef(dtypeTag);
  if (fp8 &&
      failed(checkScales(name, shape, role + " of layer " + Twine(l.index))))
    return failure();
  auto it = stored.find(name);
  if (it == stored.end())
    return success(); // its shard's header was not read
  const Stored &s = it->second;
  if (ArrayRef<int64_t>(s.shape) != shape)
    return fail(s.file + ": " + arch + ": tensor '" + name + "' (" + role +
                " of layer " + Twine(l.index) + ") has shape " +
                shapeText(s.shape) + ", config.json implies " +
                shapeText(shape));
  // Kept in f32 by the official checkpoints, in the model dtype by a model
  // that transformers cast as a whole; the argument takes the stored type.
  bool anyFloat = w.f32 && (s.dtype == "BF16" || s.dtype == "F16");
  if (s.dtype != dtype && !anyFloat)
    return fail(s.file + ": " + arch + ": tensor '" + name + "' (" + role +
                " of layer " + Twine(l.index) + ") is " + s.dtype +
                ", config.json implies " + dtype + fp8Hint(s.dtype, fp8));
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
    return fail(listName + ": " + arch + ": no entry for tensor '" + name +
                "' (" + role + " of layer " + Twine(l.index) + ")");
  };
  // The stored shape: HF Linear weights are [out, in].
  SmallVector<int64_t> shape = w.storedShape();
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
          l.sharedDown, l.sharedCoef, l.mlpUp, l.mlpDown, l.mlpCoef,
          l.mlpCoefBias})
      if (failed(check(l, w)))
        return failure();
  return success();
}

LogicalResult Importer::checkDenseWeight(const WeightRef &w, StringRef role) {
  if (index && !index->count(w.name))
    return fail(listName + ": " + arch + ": no entry for tensor '" + w.name +
                "' (" + role + ")");
  SmallVector<int64_t> shape = w.storedShape();
  bool fp8 = !quantOf(w).empty();
  if (fp8 && failed(checkScales(w.name, shape, role)))
    return failure();
  auto it = stored.find(w.name);
  if (it == stored.end())
    return success();
  StringRef dtype = fp8 ? StringRef("F8_E4M3") : StringRef(dtypeTag);
  if (ArrayRef<int64_t>(it->second.shape) != ArrayRef<int64_t>(shape) ||
      it->second.dtype != dtype)
    return fail(it->second.file + ": " + arch + ": tensor '" + w.name + "' (" +
                role + ") is not the " + dtype +
                " tensor of the shape config.json implies" +
                fp8Hint(it->second.dtype, fp8));
  return success();
}

/// The dense weights of a whole model: in the index (when there is one),
/// with the shape and dtype config.json implies (where a header was read).
LogicalResult Importer::checkDense(const ModelSpec &m) {
  const DenseSpec &d = *m.dense;
  if (failed(checkDenseWeight(d.embed, "token embedding")) ||
      failed(checkDenseWeight(d.finalNorm, "final norm")) ||
      failed(checkDenseWeight(d.lmHead, "LM head")))
    return failure();
  for (auto [w, role] : {std::pair{&d.posEmbed, "position embedding"},
                         {&d.finalNormBias, "final norm bias"}})
    if (*w && failed(checkDenseWeight(**w, role)))
      return failure();
  for (const DenseSpec::Block &blk : d.blocks) {
    for (auto [w, role] :
         {std::pair{&blk.inputNorm, "input norm"}, {&blk.q, "query projection"},
          {&blk.o, "output projection"}, {&blk.postNorm, "post-attention norm"}})
      if (failed(checkDenseWeight(*w, role)))
        return failure();
    for (auto [w, role] :
         {std::pair{&blk.inputNormBias, "input norm bias"},
          {&blk.postNormBias, "post-attention norm bias"}})
      if (*w && failed(checkDenseWeight(**w, role)))
        return failure();
    if (!d.mla)
      for (auto [w, role] : {std::pair{&blk.k, "key projection"},
                             {&blk.v, "value projection"}})
        if (failed(checkDenseWeight(*w, role)))
          return failure();
    for (auto [w, role] :
         {std::pair{&blk.qA, "query compression"},
          {&blk.qANorm, "query compression norm"},
          {&blk.kvA, "key/value compression"},
          {&blk.kvANorm, "key/value compression norm"},
          {&blk.kvB, "key/value expansion"}})
      if (*w && failed(checkDenseWeight(**w, role)))
        return failure();
    for (auto [w, role] : {std::pair{&blk.qBias, "query bias"},
                           {&blk.kBias, "key bias"}, {&blk.vBias, "value bias"},
                           {&blk.qNorm, "query norm"}, {&blk.kNorm, "key norm"}})
      if (*w && failed(checkDenseWeight(**w, role)))
        return failure();
  }
  return success();
}

LogicalResult Importer::checkIndex(const ModelSpec &m) {
  for (const LayerSpec &l : m.layers) {
    if (l.denseMlp) {
      for (auto [w, role] : {std::pair{&l.sharedGate, "dense MLP gate_proj"},
                             {&l.sharedUp, "dense MLP up_proj"},
                             {&l.sharedDown, "dense MLP down_proj"}})
        if (*w && failed(checkTensor(l, **w, role)))
          return failure();
      continue;
    }
    // Experts beyond the configured count mean the config and the weights
    // describe different models.
    int64_t maxSeen = -1;
    for (const auto &entry : *index) {
      StringRef key = entry.getKey();
      if (!key.consume_front(l.expertPrefix))
        continue;
      StringRef digits =
          key.take_while([](char c) { return llvm::isDigit(c); });
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
    } optional[] = {{l.routerBias, "router bias"},
                    {l.gate, "expert gate"},
                    {l.sharedGate, "shared expert gate_proj"},
                    {l.sharedUp, "shared expert up_proj"},
                    {l.sharedDown, "shared expert down_proj"},
                    {l.sharedCoef, "shared expert gate"},
                    {l.mlpUp, "residual MLP up"},
                    {l.mlpDown, "residual MLP down"},
                    {l.mlpCoef, "residual coefficient"},
                    {l.mlpCoefBias, "residual coefficient bias"}};
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

/// h + r in f32, rounded to the element type once (the residual adds of a
/// block; bf16 arithmetic would become a libcall).
static Value residualAdd(OpBuilder &b, Location loc, Value h, Value r) {
  auto type = cast<RankedTensorType>(h.getType());
  Type dtype = type.getElementType();
  Value init = tensor::EmptyOp::create(b, loc, type.getShape(), dtype);
  AffineMap id = b.getMultiDimIdentityMap(type.getRank());
  return elementwise(b, loc, {h, r}, {id, id}, init,
                     [&](OpBuilder &nb, Location l, ValueRange a) {
                       Value sum = arith::AddFOp::create(
                           nb, l, toF32(nb, l, a[0]), toF32(nb, l, a[1]));
                       return fromF32(nb, l, sum, dtype);
                     });
}

/// x [M, K] times w [K, N], accumulated in f32 and rounded to `dtype` (the
/// form the GPU backend runs as its projection kernel).
static Value roundedMatmul(OpBuilder &b, Location loc, Value x, Value w,
                           Type dtype) {
  int64_t rows = cast<RankedTensorType>(x.getType()).getDimSize(0),
          cols = cast<RankedTensorType>(w.getType()).getDimSize(1);
  Value acc = linalg::FillOp::create(
                  b, loc,
                  ValueRange{arith::ConstantOp::create(b, loc,
                                                       b.getF32FloatAttr(0))},
                  ValueRange{tensor::EmptyOp::create(
                      b, loc, ArrayRef<int64_t>{rows, cols}, b.getF32Type())})
                  .getResult(0);
  acc = linalg::MatmulOp::create(b, loc, TypeRange{acc.getType()},
                                 ValueRange{x, w}, ValueRange{acc})
            .getResult(0);
  if (dtype.isF32())
    return acc;
  return elementwise(
      b, loc, {acc}, {b.getMultiDimIdentityMap(2)},
      tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{rows, cols}, dtype),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        return fromF32(nb, l, a[0], dtype);
      });
}

std::pair<Type, DictionaryAttr>
Importer::weightArg(OpBuilder &b, const WeightRef &w, Type dtype) {
  Type elt = dtype;
  if (w.f32) {
    auto it = stored.find(w.name);
    // (Both arms StringRef: a std::string arm would make a temporary.)
    StringRef tag =
        it == stored.end() ? StringRef("F32") : StringRef(it->second.dtype);
    elt = tag == "BF16"  ? b.getBF16Type()
          : tag == "F16" ? b.getF16Type()
                         : b.getF32Type();
  }
  SmallVector<NamedAttribute> attrs = {
      b.getNamedAttr("moe.weight", b.getStringAttr(w.name))};
  if (w.layout == Layout::Transpose)
    attrs.push_back(b.getNamedAttr("moe.transpose", b.getUnitAttr()));
  if (w.layout == Layout::StackTranspose)
    attrs.push_back(b.getNamedAttr("moe.stack", b.getStringAttr("transpose")));
  if (w.layout == Layout::QkvTranspose)
    attrs.push_back(b.getNamedAttr(
        "moe.layout",
        b.getStringAttr("qkv-transpose:" + std::to_string(w.heads) + ":" +
                        std::to_string(w.part))));
  std::string quant = quantOf(w);
  if (!quant.empty())
    attrs.push_back(b.getNamedAttr("moe.quant", b.getStringAttr(quant)));
  return {RankedTensorType::get(w.shape, elt), b.getDictionaryAttr(attrs)};
}

OwningOpRef<ModuleOp> Importer::emit(const ModelSpec &m, Type dtype,
                                     StringRef dtypeName) {
  OpBuilder b(ctx);
  Location fileLoc = FileLineColLoc::get(ctx, opts.configName, 1, 1);
  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);

  // Arguments: x (a whole model: token ids, the position and the KV
  // caches), then each layer's weights in operand order.
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  // A whole model's step: `batch` sequences of `tokens` rows each.
  int64_t rows = opts.tokens * opts.batch;
  auto tokensType = RankedTensorType::get({rows, m.hidden}, dtype);
  auto input = [&](Type t, StringRef name) {
    argTypes.push_back(t);
    argAttrs.push_back(b.getDictionaryAttr(
        b.getNamedAttr("moe.input", b.getStringAttr(name))));
  };
  const DenseSpec *dense = m.dense ? &*m.dense : nullptr;
  RankedTensorType cacheType, valueCacheType;
  std::optional<unsigned> logitRowsSlot;
  if (dense) {
    int64_t cacheRows = opts.maxSeq * opts.batch;
    cacheType = RankedTensorType::get(
        {cacheRows, dense->kvHeads, dense->headDim}, dtype);
    // MLA caches every head's key [nope | rope] and value [v].
    valueCacheType =
        dense->mla ? RankedTensorType::get(
                         {cacheRows, dense->kvHeads, dense->mla->v}, dtype)
                   : cacheType;
    input(RankedTensorType::get({rows}, b.getI32Type()), "ids");
    input(RankedTensorType::get({opts.batch}, b.getI32Type()), "pos");
    for (const LayerSpec &l : m.layers) {
      input(cacheType, "past_key." + std::to_string(l.index));
      input(valueCacheType, "past_value." + std::to_string(l.index));
    }
    // Steps of several rows per sequence compute the logits of one row per
    // sequence (the generator samples from the last prompt row only):
    // `logit_rows` [B] holds each one's row within the step.
    if (opts.tokens > 1) {
      logitRowsSlot = argTypes.size();
      input(RankedTensorType::get({opts.batch}, b.getI32Type()), "logit_rows");
    }
  } else {
    input(tokensType, "x");
  }
  auto addWeight = [&](const WeightRef &w) -> unsigned {
    auto [type, attrs] = weightArg(b, w, dtype);
    argTypes.push_back(type);
    argAttrs.push_back(attrs);
    return argTypes.size() - 1;
  };
  struct Slots {
    unsigned router, up, down;
    std::optional<unsigned> bias, gate, sUp, sGate, sDown, sCoef, mUp, mDown,
        mCoef, mCoefBias;
  };
  SmallVector<Slots> slots;
  auto opt = [&](const std::optional<WeightRef> &w) -> std::optional<unsigned> {
    if (!w)
      return std::nullopt;
    return addWeight(*w);
  };
  struct DenseSlots {
    unsigned inputNorm, q, k, v, o, postNorm;
    std::optional<unsigned> qBias, kBias, vBias, qNorm, kNorm;
    std::optional<unsigned> qA, qANorm, kvA, kvANorm, kvB; // MLA
    std::optional<unsigned> inputNormBias, postNormBias; // GPT
  };
  SmallVector<DenseSlots> denseSlots;
  unsigned embedSlot = 0, finalNormSlot = 0, lmHeadSlot = 0;
  std::optional<unsigned> posEmbedSlot, finalNormBiasSlot;
  if (dense) {
    embedSlot = addWeight(dense->embed);
    posEmbedSlot = opt(dense->posEmbed);
  }
  for (auto [i, l] : llvm::enumerate(m.layers)) {
    if (dense) {
      const DenseSpec::Block &blk = dense->blocks[i];
      DenseSlots ds;
      ds.inputNorm = addWeight(blk.inputNorm);
      ds.inputNormBias = opt(blk.inputNormBias);
      if (dense->mla) {
        ds.qA = opt(blk.qA);
        ds.qANorm = opt(blk.qANorm);
        ds.q = addWeight(blk.q);
        ds.kvA = opt(blk.kvA);
        ds.kvANorm = opt(blk.kvANorm);
        ds.kvB = opt(blk.kvB);
        ds.k = ds.v = 0; // unused
      } else {
        ds.q = addWeight(blk.q);
        ds.k = addWeight(blk.k);
        ds.v = addWeight(blk.v);
      }
      ds.o = addWeight(blk.o);
      ds.postNorm = addWeight(blk.postNorm);
      ds.postNormBias = opt(blk.postNormBias);
      ds.qBias = opt(blk.qBias);
      ds.kBias = opt(blk.kBias);
      ds.vBias = opt(blk.vBias);
      ds.qNorm = opt(blk.qNorm);
      ds.kNorm = opt(blk.kNorm);
      denseSlots.push_back(ds);
    }
    Slots s;
    if (l.denseMlp) {
      s.router = s.up = s.down = 0; // unused
      s.sUp = addWeight(*l.sharedUp);
      s.sGate = opt(l.sharedGate); // none: a plain (GPT) MLP
      s.sDown = addWeight(*l.sharedDown);
      slots.push_back(s);
      continue;
    }
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
    s.mCoefBias = opt(l.mlpCoefBias);
    slots.push_back(s);
  }

  if (dense) {
    finalNormSlot = addWeight(dense->finalNorm);
    finalNormBiasSlot = opt(dense->finalNormBias);
    lmHeadSlot = addWeight(dense->lmHead);
  }

  b.setInsertionPointToEnd(module->getBody());
  SmallVector<Type> resultTypes{tokensType};
  SmallVector<std::string> resultNames{"y"};
  int64_t logitRows = opts.tokens > 1 ? opts.batch : rows;
  auto logitsType =
      dense ? RankedTensorType::get({logitRows, dense->vocab}, dtype)
            : RankedTensorType();
  if (dense) {
    resultTypes = {logitsType};
    resultNames = {"logits"};
    for (const LayerSpec &l : m.layers) {
      resultTypes.append({cacheType, valueCacheType});
      resultNames.push_back("key." + std::to_string(l.index));
      resultNames.push_back("value." + std::to_string(l.index));
    }
  }
  auto fnType = b.getFunctionType(argTypes, resultTypes);
  auto fn = func::FuncOp::create(b, fileLoc, "model", fnType);
  fn.setAllArgAttrs(argAttrs);
  for (auto [i, name] : llvm::enumerate(resultNames))
    fn.setResultAttr(i, "moe.output", b.getStringAttr(name));
  Block *body = fn.addEntryBlock();
  b.setInsertionPointToEnd(body);
  auto arg = [&](std::optional<unsigned> i) -> Value {
    return i ? body->getArgument(*i) : Value();
  };
  Value x = body->getArgument(0);
  SmallVector<Value> caches;
  if (dense) {
    Location eloc = NameLoc::get(b.getStringAttr("model.embed_tokens"), fileLoc);
    x = EmbeddingOp::create(b, eloc, tokensType, body->getArgument(0),
                            body->getArgument(embedSlot));
    if (posEmbedSlot) {
      // Learned positions: row b*T + t is at position pos[b] + t.
      Type i32 = b.getI32Type();
      int64_t B = opts.batch, T = opts.tokens;
      Value ids = elementwise(
          b, eloc, {body->getArgument(1)},
          {AffineMap::get(2, 0, b.getAffineDimExpr(0), ctx)},
          tensor::EmptyOp::create(b, eloc, ArrayRef<int64_t>{B, T}, i32),
          [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
            Value t = arith::IndexCastOp::create(
                nb, l, i32, linalg::IndexOp::create(nb, l, 1));
            return arith::AddIOp::create(nb, l, a[0], t);
          });
      ids = tensor::CollapseShapeOp::create(
          b, eloc, RankedTensorType::get({B * T}, i32), ids,
          ArrayRef<ReassociationIndices>{{0, 1}});
      Value positions = EmbeddingOp::create(b, eloc, tokensType, ids,
                                            body->getArgument(*posEmbedSlot));
      x = residualAdd(b, eloc, x, positions);
    }
  }
  FloatAttr eps = dense ? b.getF64FloatAttr(dense->epsilon) : FloatAttr();
  // The norms of a block: RMSNorm, or LayerNorm with its bias (GPT).
  auto norm = [&](Location l, RankedTensorType type, Value v, unsigned w,
                  std::optional<unsigned> bias) -> Value {
    if (dense->layerNorm)
      return LayerNormOp::create(b, l, type, v, body->getArgument(w),
                                 arg(bias), eps);
    return RmsNormOp::create(b, l, type, v, body->getArgument(w), eps);
  };
  for (auto [i, l, s] : llvm::enumerate(m.layers, slots)) {
    Location loc = NameLoc::get(b.getStringAttr(l.scope), fileLoc);
    Value residual = x;
    if (dense) {
      // x + attention(norm(x)), then the MoE layer on norm(x) added below.
      const DenseSlots &d = denseSlots[i];
      std::string p = "model.layers." + std::to_string(l.index);
      Location aloc = NameLoc::get(b.getStringAttr(p + ".self_attn"), fileLoc);
      Value a = norm(aloc, tokensType, x, d.inputNorm, d.inputNormBias);
      Value attended;
      DenseF32ArrayAttr ropeFreqs =
          dense->ropeInvFreq.empty()
              ? DenseF32ArrayAttr()
              : b.getDenseF32ArrayAttr(dense->ropeInvFreq);
      FloatAttr ropeFactor = b.getF64FloatAttr(dense->ropeAttentionFactor);
      if (const auto &mla = dense->mla) {
        auto attn = MlaAttentionOp::create(
            b, aloc, TypeRange{tokensType, cacheType, valueCacheType}, a,
            arg(d.qA), arg(d.qANorm), body->getArgument(d.q),
            body->getArgument(*d.kvA), body->getArgument(*d.kvANorm),
            body->getArgument(*d.kvB), body->getArgument(d.o),
            body->getArgument(2 + 2 * i), body->getArgument(3 + 2 * i),
            body->getArgument(1), b.getI64IntegerAttr(dense->heads),
            b.getI64IntegerAttr(mla->nope), b.getI64IntegerAttr(mla->rope),
            b.getI64IntegerAttr(mla->v), b.getF64FloatAttr(dense->ropeTheta),
            eps, b.getF64FloatAttr(mla->softmaxScale),
            mla->interleaved ? b.getUnitAttr() : UnitAttr(), ropeFreqs,
            ropeFactor);
        caches.append({attn.getKeyCache(), attn.getValueCache()});
        attended = attn.getResult();
      } else {
        auto attn = AttentionOp::create(
            b, aloc, TypeRange{tokensType, cacheType, cacheType}, a,
            body->getArgument(d.q), body->getArgument(d.k),
            body->getArgument(d.v), body->getArgument(d.o), arg(d.qBias),
            arg(d.kBias), arg(d.vBias), arg(d.qNorm), arg(d.kNorm),
            body->getArgument(2 + 2 * i), body->getArgument(3 + 2 * i),
            body->getArgument(1), /*position_bias=*/Value(),
            /*key_length=*/Value(), b.getI64IntegerAttr(dense->heads),
            b.getI64IntegerAttr(dense->kvHeads),
            b.getF64FloatAttr(dense->ropeTheta), eps, ropeFreqs, ropeFactor,
            /*scale=*/FloatAttr(), /*bidirectional=*/UnitAttr(),
            /*relative_max_distance=*/IntegerAttr());
        caches.append({attn.getKeyCache(), attn.getValueCache()});
        attended = attn.getResult();
      }
      x = residualAdd(b, aloc, x, attended);
      residual = x;
      x = norm(loc, tokensType, x, d.postNorm, d.postNormBias);
    }
    if (l.denseMlp) {
      // A dense block: down(act(x W_gate) * (x W_up)), or down(act(x W_up))
      // without a gate (GPT).
      x = MlpOp::create(b, loc, tokensType, x, arg(s.sUp), arg(s.sGate),
                        arg(s.sDown), ActivationAttr::get(ctx, l.activation));
      if (dense)
        x = residualAdd(b, loc, residual, x);
      continue;
    }
    FloatAttr cf =
        l.capacityFactor ? b.getF64FloatAttr(*l.capacityFactor) : FloatAttr();
    IntegerAttr nGroup =
        l.nGroup ? b.getI64IntegerAttr(*l.nGroup) : IntegerAttr();
    IntegerAttr topkGroup =
        l.topkGroup ? b.getI64IntegerAttr(*l.topkGroup) : IntegerAttr();
    x = LayerOp::create(
        b, loc, tokensType, x, arg(s.router), arg(s.bias), arg(s.up),
        arg(s.gate), arg(s.down), arg(s.sUp), arg(s.sGate), arg(s.sDown),
        arg(s.sCoef), arg(s.mUp), arg(s.mDown), arg(s.mCoef),
        arg(s.mCoefBias), /*expert_offset=*/Value(), l.activation,
        uint64_t(l.topK), l.scoreFunc, /*score_after_topk=*/false,
        l.renormalize, llvm::APFloat(l.scaling), cf, uint64_t(l.minCapacity),
        DropPolicy::position, nGroup, topkGroup, l.groupScore);
    if (dense)
      x = residualAdd(b, loc, residual, x);
  }
  if (dense) {
    Location hloc = NameLoc::get(b.getStringAttr("lm_head"), fileLoc);
    auto headType = RankedTensorType::get({logitRows, m.hidden}, dtype);
    if (logitRowsSlot)
      x = EmbeddingOp::create(b, hloc, headType,
                              body->getArgument(*logitRowsSlot), x);
    x = norm(hloc, headType, x, finalNormSlot, finalNormBiasSlot);
    // logits = norm(h) W^T, accumulated in f32 and rounded.
    Value logits =
        roundedMatmul(b, hloc, x, body->getArgument(lmHeadSlot), dtype);
    SmallVector<Value> results{logits};
    results.append(caches);
    func::ReturnOp::create(b, fileLoc, results);
  } else {
    func::ReturnOp::create(b, fileLoc, x);
  }

  return finish(std::move(module), m, dtypeName);
}

OwningOpRef<ModuleOp> Importer::finish(OwningOpRef<ModuleOp> module,
                                       const ModelSpec &m,
                                       StringRef dtypeName) {
  OpBuilder b(ctx);
  auto strings = [&](ArrayRef<std::string> list) {
    SmallVector<Attribute> attrs;
    for (const std::string &s : list)
      attrs.push_back(b.getStringAttr(s));
    return b.getArrayAttr(attrs);
  };
  SmallVector<std::string> moeLayers, denseBlocks;
  SmallVector<int64_t> denseLayers(m.denseLayers);
  for (const LayerSpec &l : m.layers) {
    // (An encoder-decoder numbers each stack's blocks from 0: its dense
    // blocks are named.)
    if (l.denseMlp && m.encdec)
      denseBlocks.push_back(l.scope);
    else if (l.denseMlp)
      denseLayers.push_back(l.index);
    else
      moeLayers.push_back(l.scope);
  }
  SmallVector<NamedAttribute> info = {
      b.getNamedAttr("architecture", b.getStringAttr(m.architecture)),
      b.getNamedAttr("model_type", b.getStringAttr(m.modelType)),
      b.getNamedAttr("num_hidden_layers", b.getI64IntegerAttr(m.numLayers)),
      b.getNamedAttr("dtype", b.getStringAttr(dtypeName)),
      b.getNamedAttr("moe_layers", strings(moeLayers)),
      b.getNamedAttr("dense_layers", b.getDenseI64ArrayAttr(denseLayers)),
      b.getNamedAttr("skipped", strings(m.skipped)),
      b.getNamedAttr("weights_checked", b.getBoolAttr(index.has_value())),
      b.getNamedAttr("shapes_checked", b.getBoolAttr(!stored.empty()))};
  if (!denseBlocks.empty())
    info.push_back(b.getNamedAttr("dense_blocks", strings(denseBlocks)));
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

LogicalResult Importer::checkEncoderDecoder(const ModelSpec &m) {
  const EncDecSpec &ed = *m.encdec;
  for (auto [w, role] :
       {std::pair{&ed.embed, "shared token embedding"},
        {&ed.lmHead, "LM head"},
        {&ed.encoderBias, "encoder relative attention bias"},
        {&ed.decoderBias, "decoder relative attention bias"},
        {&ed.encoderFinalNorm, "encoder final layer norm"},
        {&ed.decoderFinalNorm, "decoder final layer norm"}})
    if (failed(checkDenseWeight(*w, role)))
      return failure();
  auto attention = [&](const EncDecSpec::Attention &a, StringRef kind) {
    for (auto [w, role] : {std::pair{&a.q, "query"}, {&a.k, "key"},
                           {&a.v, "value"}, {&a.o, "output"}})
      if (failed(checkDenseWeight(*w, (kind + " " + role).str())))
        return failure();
    return success();
  };
  for (const EncDecSpec::Block &blk : ed.blocks) {
    if (failed(checkDenseWeight(blk.selfNorm, "self-attention layer norm")) ||
        failed(attention(blk.self, "self-attention")) ||
        failed(checkDenseWeight(blk.ffNorm, "feed-forward layer norm")))
      return failure();
    if (blk.cross &&
        (failed(checkDenseWeight(*blk.crossNorm,
                                 "cross-attention layer norm")) ||
         failed(attention(*blk.cross, "cross-attention"))))
      return failure();
  }
  return success();
}

/// One step of the decoder, which runs the encoder first when its position
/// is 0 (the decoder start token): inputs `ids` [T] and `pos` [1] (the
/// decoder's), `encoder_ids` [S] and `encoder_length` [1] (the prompt,
/// padded), the self-attention caches `past_key.i`/`past_value.i` and the
/// encoder's keys and values for each decoder block's cross-attention,
/// `past_cross_key.i`/`past_cross_value.i` [S, H, d_kv]; results the
/// logits and the four caches. The generator threads the caches from step
/// to step, so the encoder runs once per generation.
OwningOpRef<ModuleOp> Importer::emitEncoderDecoder(const ModelSpec &m,
                                                   Type dtype,
                                                   StringRef dtypeName) {
  const EncDecSpec &ed = *m.encdec;
  OpBuilder b(ctx);
  Location fileLoc = FileLineColLoc::get(ctx, opts.configName, 1, 1);
  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);
  int64_t T = opts.tokens, S = opts.maxSeq, H = ed.heads, hd = ed.headDim,
          d = m.hidden, E = ed.encoderLayers;
  int64_t D = int64_t(m.layers.size()) - E;
  Type i32 = b.getI32Type();
  auto cacheType = RankedTensorType::get({S, H, hd}, dtype);
  auto rowsType = [&](int64_t n) {
    return RankedTensorType::get({n, d}, dtype);
  };

  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  auto input = [&](Type t, StringRef name) -> unsigned {
    argTypes.push_back(t);
    argAttrs.push_back(b.getDictionaryAttr(
        b.getNamedAttr("moe.input", b.getStringAttr(name))));
    return argTypes.size() - 1;
  };
  auto weight = [&](const WeightRef &w) -> unsigned {
    auto [type, attrs] = weightArg(b, w, dtype);
    argTypes.push_back(type);
    argAttrs.push_back(attrs);
    return argTypes.size() - 1;
  };
  unsigned idsArg = input(RankedTensorType::get({T}, i32), "ids");
  unsigned posArg = input(RankedTensorType::get({1}, i32), "pos");
  unsigned encIdsArg = input(RankedTensorType::get({S}, i32), "encoder_ids");
  unsigned encLenArg =
      input(RankedTensorType::get({1}, i32), "encoder_length");
  SmallVector<unsigned> selfCache, crossCache;
  for (int64_t j = 0; j < D; ++j) {
    selfCache.push_back(input(cacheType, "past_key." + std::to_string(j)));
    input(cacheType, "past_value." + std::to_string(j));
  }
  for (int64_t j = 0; j < D; ++j) {
    crossCache.push_back(
        input(cacheType, "past_cross_key." + std::to_string(j)));
    input(cacheType, "past_cross_value." + std::to_string(j));
  }
  std::optional<unsigned> logitRowsArg;
  if (T > 1)
    logitRowsArg = input(RankedTensorType::get({1}, i32), "logit_rows");

  struct BlockArgs {
    unsigned selfNorm, q, k, v, o, ffNorm;
    unsigned crossNorm = 0, cq = 0, ck = 0, cv = 0, co = 0;
    unsigned up = 0, down = 0, router = 0;
  };
  unsigned embedArg = weight(ed.embed);
  unsigned encBiasArg = weight(ed.encoderBias);
  unsigned decBiasArg = weight(ed.decoderBias);
  SmallVector<BlockArgs> blocks;
  for (auto [i, l] : llvm::enumerate(m.layers)) {
    const EncDecSpec::Block &blk = ed.blocks[i];
    BlockArgs a;
    a.selfNorm = weight(blk.selfNorm);
    a.q = weight(blk.self.q);
    a.k = weight(blk.self.k);
    a.v = weight(blk.self.v);
    a.o = weight(blk.self.o);
    if (blk.cross) {
      a.crossNorm = weight(*blk.crossNorm);
      a.cq = weight(blk.cross->q);
      a.ck = weight(blk.cross->k);
      a.cv = weight(blk.cross->v);
      a.co = weight(blk.cross->o);
    }
    a.ffNorm = weight(blk.ffNorm);
    if (l.denseMlp) {
      a.up = weight(*l.sharedUp);
      a.down = weight(*l.sharedDown);
    } else {
      a.router = weight(l.router);
      a.up = weight(l.up);
      a.down = weight(l.down);
    }
    blocks.push_back(a);
  }
  unsigned encFinalArg = weight(ed.encoderFinalNorm);
  unsigned decFinalArg = weight(ed.decoderFinalNorm);
  unsigned lmHeadArg = weight(ed.lmHead);

  int64_t logitRows = T > 1 ? 1 : T;
  SmallVector<Type> resultTypes{
      RankedTensorType::get({logitRows, ed.vocab}, dtype)};
  SmallVector<std::string> resultNames{"logits"};
  for (StringRef kind : {"", "cross_"})
    for (int64_t j = 0; j < D; ++j) {
      resultTypes.append({cacheType, cacheType});
      resultNames.push_back((kind + "key." + Twine(j)).str());
      resultNames.push_back((kind + "value." + Twine(j)).str());
    }
  b.setInsertionPointToEnd(module->getBody());
  auto fn = func::FuncOp::create(b, fileLoc, "model",
                                 b.getFunctionType(argTypes, resultTypes));
  fn.setAllArgAttrs(argAttrs);
  for (auto [i, name] : llvm::enumerate(resultNames))
    fn.setResultAttr(i, "moe.output", b.getStringAttr(name));
  fn->setAttr("moe.decoder_start", b.getI64IntegerAttr(ed.decoderStart));
  Block *body = fn.addEntryBlock();
  b.setInsertionPointToEnd(body);
  auto arg = [&](unsigned i) -> Value { return body->getArgument(i); };
  FloatAttr eps = b.getF64FloatAttr(ed.epsilon);
  FloatAttr one = b.getF64FloatAttr(1.0);
  DenseF32ArrayAttr noRope =
      b.getDenseF32ArrayAttr(SmallVector<float>(hd / 2, 0.0f));
  IntegerAttr maxDistance = b.getI64IntegerAttr(ed.maxDistance);
  auto scope = [&](const Twine &name) {
    return NameLoc::get(b.getStringAttr(name), fileLoc);
  };
  // The FFN block of layer `i` on normed rows `h`: dense or MoE.
  auto ffn = [&](size_t i, Value h) -> Value {
    const LayerSpec &l = m.layers[i];
    const BlockArgs &a = blocks[i];
    Location loc = scope(l.scope);
    if (l.denseMlp)
      return MlpOp::create(b, loc, h.getType(), h, arg(a.up), Value(),
                           arg(a.down), ActivationAttr::get(ctx, l.activation));
    return LayerOp::create(
        b, loc, h.getType(), h, arg(a.router), Value(), arg(a.up), Value(),
        arg(a.down), Value(), Value(), Value(), Value(), Value(), Value(),
        Value(), Value(), /*expert_offset=*/Value(), l.activation,
        uint64_t(l.topK), l.scoreFunc, /*score_after_topk=*/false,
        l.renormalize, llvm::APFloat(l.scaling),
        b.getF64FloatAttr(*l.capacityFactor), uint64_t(l.minCapacity),
        DropPolicy::position, IntegerAttr(), IntegerAttr(), l.groupScore);
  };
  // Self-attention of block `i` over `h`: a T5 attention (no RoPE, unscaled,
  // the stack's relative-position bias).
  auto selfAttention = [&](size_t i, Value h, Value keys, Value values,
                           Value pos, Value length, bool encoder) {
    const BlockArgs &a = blocks[i];
    std::string p = encoder ? "encoder.block." + std::to_string(i)
                            : "decoder.block." + std::to_string(i - E);
    return AttentionOp::create(
        b, scope(p + ".layer.0.SelfAttention"),
        TypeRange{h.getType(), keys.getType(), values.getType()}, h,
        arg(a.q), arg(a.k), arg(a.v), arg(a.o), Value(), Value(), Value(),
        Value(), Value(), keys, values, pos,
        arg(encoder ? encBiasArg : decBiasArg), length,
        b.getI64IntegerAttr(H), b.getI64IntegerAttr(H), b.getF64FloatAttr(1e4),
        b.getF64FloatAttr(1e-6), noRope, one, one,
        encoder ? b.getUnitAttr() : UnitAttr(), maxDistance);
  };
  auto norm = [&](Location loc, Value x, unsigned w) -> Value {
    return RmsNormOp::create(b, loc, x.getType(), x, arg(w), eps);
  };

  // The encoder, at the decoder's first position only.
  Location encLoc = scope("encoder");
  Value first = arith::CmpIOp::create(
      b, encLoc, arith::CmpIPredicate::eq,
      tensor::ExtractOp::create(
          b, encLoc, arg(posArg),
          ValueRange{arith::ConstantIndexOp::create(b, encLoc, 0)}),
      arith::ConstantIntOp::create(b, encLoc, i32, 0));
  SmallVector<Type> crossTypes(2 * D, cacheType);
  auto encode = scf::IfOp::create(b, encLoc, crossTypes, first,
                                  /*withElseRegion=*/true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&encode.getThenRegion().front());
    auto zeroType = RankedTensorType::get({1}, i32);
    Value zeroPos = arith::ConstantOp::create(
        b, encLoc, zeroType,
        DenseElementsAttr::get(zeroType, ArrayRef<int32_t>{0}));
    Value x = EmbeddingOp::create(b, scope("encoder.embed_tokens"),
                                  rowsType(S), arg(encIdsArg), arg(embedArg));
    for (int64_t i = 0; i < E; ++i) {
      Location loc = scope("encoder.block." + Twine(i));
      Value h = norm(loc, x, blocks[i].selfNorm);
      // The encoder keeps no cache: its keys and values go to scratch.
      Value scratchK = tensor::EmptyOp::create(b, loc, cacheType.getShape(),
                                               dtype);
      Value scratchV = tensor::EmptyOp::create(b, loc, cacheType.getShape(),
                                               dtype);
      auto attn = selfAttention(size_t(i), h, scratchK, scratchV, zeroPos,
                                arg(encLenArg), /*encoder=*/true);
      x = residualAdd(b, loc, x, attn.getResult());
      x = residualAdd(b, loc, x, ffn(size_t(i), norm(loc, x, blocks[i].ffNorm)));
    }
    x = norm(scope("encoder.final_layer_norm"), x, encFinalArg);
    // Every decoder block's cross-attention keys and values.
    SmallVector<Value> cross(2 * D);
    for (int64_t j = 0; j < D; ++j) {
      const BlockArgs &a = blocks[size_t(E + j)];
      Location loc =
          scope("decoder.block." + Twine(j) + ".layer.1.EncDecAttention");
      for (auto [slot, w] : {std::pair{0, a.ck}, {1, a.cv}}) {
        Value kv = roundedMatmul(b, loc, x, arg(w), dtype);
        cross[size_t(j * 2 + slot)] = tensor::ExpandShapeOp::create(
            b, loc, cacheType, kv,
            ArrayRef<ReassociationIndices>{{0}, {1, 2}});
      }
    }
    // Both branches yield new, contiguous tensors: the deallocation after
    // bufferization then needs no run-time ownership, and the results no
    // strided layout (the step's inputs are read-only, so the caches are
    // copied to the outputs in either case). Later steps pass the caches
    // on.
    auto fresh = [&](Value v) {
      return linalg::CopyOp::create(
                 b, encLoc, v,
                 Value(tensor::EmptyOp::create(b, encLoc, cacheType.getShape(),
                                               dtype)))
          .getResult(0);
    };
    for (Value &v : cross)
      v = fresh(v);
    scf::YieldOp::create(b, encLoc, cross);
    b.setInsertionPointToStart(&encode.getElseRegion().front());
    SmallVector<Value> past;
    for (int64_t j = 0; j < D; ++j)
      for (unsigned slot : {0u, 1u})
        past.push_back(fresh(arg(crossCache[size_t(j)] + slot)));
    scf::YieldOp::create(b, encLoc, past);
  }

  // The decoder step.
  Value x = EmbeddingOp::create(b, scope("decoder.embed_tokens"), rowsType(T),
                                arg(idsArg), arg(embedArg));
  SmallVector<Value> selfOut;
  for (int64_t j = 0; j < D; ++j) {
    size_t i = size_t(E + j);
    Location loc = scope("decoder.block." + Twine(j));
    Value h = norm(loc, x, blocks[i].selfNorm);
    auto attn = selfAttention(i, h, arg(selfCache[size_t(j)]),
                              arg(selfCache[size_t(j)] + 1), arg(posArg),
                              Value(), /*encoder=*/false);
    selfOut.append({attn.getKeyCache(), attn.getValueCache()});
    x = residualAdd(b, loc, x, attn.getResult());
    h = norm(loc, x, blocks[i].crossNorm);
    Value c = CrossAttentionOp::create(
        b, scope("decoder.block." + Twine(j) + ".layer.1.EncDecAttention"),
        h.getType(), h, arg(blocks[i].cq), arg(blocks[i].co),
        encode.getResult(unsigned(2 * j)), encode.getResult(unsigned(2 * j + 1)),
        arg(encLenArg), b.getI64IntegerAttr(H), one);
    x = residualAdd(b, loc, x, c);
    x = residualAdd(b, loc, x, ffn(i, norm(loc, x, blocks[i].ffNorm)));
  }
  Location hloc = scope("lm_head");
  if (logitRowsArg)
    x = EmbeddingOp::create(b, hloc, rowsType(1), arg(*logitRowsArg), x);
  x = norm(scope("decoder.final_layer_norm"), x, decFinalArg);
  if (ed.tied) {
    // transformers rescales the tied head's input by d_model^-0.5 (in f32,
    // rounded).
    float factor = float(1.0 / std::sqrt(double(d)));
    auto type = cast<RankedTensorType>(x.getType());
    x = elementwise(
        b, hloc, {x}, {b.getMultiDimIdentityMap(2)},
        tensor::EmptyOp::create(b, hloc, type.getShape(), dtype),
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value f = arith::ConstantOp::create(nb, l, nb.getF32FloatAttr(factor));
          return fromF32(nb, l,
                         arith::MulFOp::create(nb, l, toF32(nb, l, a[0]), f),
                         dtype);
        });
  }
  SmallVector<Value> results{
      roundedMatmul(b, hloc, x, arg(lmHeadArg), dtype)};
  results.append(selfOut);
  results.append(encode.getResults().begin(), encode.getResults().end());
  func::ReturnOp::create(b, fileLoc, results);
  return finish(std::move(module), m, dtypeName);
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
      (void)fail(
          opts.configName + ": unsupported model_type '" + modelType + "'" +
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
    (void)fail("--import-hf-tokens must be in [1, " + Twine(kMaxTokens) +
               "], got " + Twine(opts.tokens));
    return nullptr;
  }
  if (opts.batch < 1 || opts.batch * opts.tokens > kMaxTokens) {
    (void)fail("--import-hf-batch must be at least 1, with batch x tokens "
               "at most " + Twine(kMaxTokens) + ", got " + Twine(opts.batch));
    return nullptr;
  }
  if (opts.batch > 1 && !opts.whole) {
    (void)fail("--import-hf-batch applies to whole models "
               "(--import-hf-whole); a layer takes --import-hf-tokens rows");
    return nullptr;
  }
  dtypeTag = dtype.isBF16() ? "BF16" : dtype.isF16() ? "F16" : "F32";
  if (failed(readQuantization(cfg)))
    return nullptr;
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
  if (fp8Block && !index) {
    (void)fail(opts.configName +
               ": an fp8 'quantization_config' needs the "
               "checkpoint's tensor list (model.safetensors.index.json or a "
               "safetensors header) to tell which weights are FP8");
    return nullptr;
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
    r = importSwitch(cfg, m, opts.whole);
  else if (modelType == "deepspeed_moe_gpt")
    r = importDeepSpeedGpt(cfg, m, index ? &*index : nullptr);
  if (failed(r))
    return nullptr;
  if (m.layers.empty()) {
    (void)cfg.fail("the configuration has no MoE layers");
    return nullptr;
  }
  if (opts.whole &&
      (opts.maxSeq < opts.tokens || opts.maxSeq > kMaxTokens)) {
    (void)fail("--import-hf-max-seq must be in [tokens (" +
               Twine(opts.tokens) + "), " + Twine(kMaxTokens) + "], got " +
               Twine(opts.maxSeq));
    return nullptr;
  }
  if (opts.whole && m.encdec) {
    if (opts.batch > 1) {
      (void)fail("--import-hf-batch " + Twine(opts.batch) + ": batched "
                 "steps of encoder-decoder models (" + modelType +
                 ") are not supported yet");
      return nullptr;
    }
    // The tied embedding: transformers saves one of its names ('shared',
    // or a stack's embed_tokens).
    EncDecSpec &ed = *m.encdec;
    if (index && !index->count(ed.embed.name))
      for (StringRef alt :
           {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"})
        if (index->count(alt)) {
          if (ed.tied)
            ed.lmHead.name = alt.str();
          ed.embed.name = alt.str();
          break;
        }
    if (failed(checkSizes(m)) || failed(checkEncoderDecoder(m)) ||
        (index && failed(checkIndex(m))))
      return nullptr;
    return emitEncoderDecoder(m, dtype, *dtypeName);
  }
  if (opts.whole) {
    bool deepseek = modelType == "deepseek_v2" || modelType == "deepseek_v3";
    bool gpt = modelType == "deepspeed_moe_gpt";
    bool known = modelType == "mixtral" || modelType == "qwen2_moe" ||
                 modelType == "qwen3_moe" || modelType == "olmoe" ||
                 deepseek || gpt;
    if (!known) {
      (void)cfg.fail("whole-model import supports 'mixtral', 'qwen2_moe', "
                     "'qwen3_moe', 'olmoe', 'deepseek_v2', 'deepseek_v3', "
                     "'deepspeed_moe_gpt' and 'switch_transformers' so far; "
                     "import the MoE layers of '" +
                     modelType + "' without --import-hf-whole");
      return nullptr;
    }
    // The dense MLP layers take their places among the MoE layers.
    if (m.denseMlps.size() != m.denseLayers.size()) {
      (void)cfg.fail("the dense MLP layers of '" + modelType +
                     "' are not supported in whole-model import yet");
      return nullptr;
    }
    for (LayerSpec &l : m.denseMlps)
      m.layers.push_back(std::move(l));
    m.denseMlps.clear();
    m.denseLayers.clear();
    llvm::stable_sort(m.layers, [](const LayerSpec &a, const LayerSpec &b) {
      return a.index < b.index;
    });
    if (int64_t(m.layers.size()) != m.numLayers) {
      (void)cfg.fail("expected " + Twine(m.numLayers) +
                     " decoder layers, the configuration gives " +
                     Twine(m.layers.size()));
      return nullptr;
    }
    QkNorm qkNorm = modelType == "qwen3_moe" ? QkNorm::PerHead
                    : modelType == "olmoe"   ? QkNorm::Whole
                                             : QkNorm::None;
    LogicalResult denseOk =
        deepseek ? importDeepSeekDense(cfg, m, modelType == "deepseek_v3")
        : gpt    ? importDeepSpeedGptDense(cfg, m)
                 : importLlamaDense(cfg, m, modelType == "qwen2_moe", qkNorm);
    if (failed(denseOk) || failed(checkDense(m)))
      return nullptr;
    if (m.dense && m.dense->posEmbed &&
        opts.maxSeq > m.dense->posEmbed->shape[0]) {
      (void)fail("--import-hf-max-seq " + Twine(opts.maxSeq) +
                 " exceeds the model's learned positions "
                 "(max_position_embeddings = " +
                 Twine(m.dense->posEmbed->shape[0]) + ")");
      return nullptr;
    }
  }
  if (failed(checkSizes(m)) || (index && failed(checkIndex(m))))
    return nullptr;
  return emit(m, dtype, *dtypeName);
}

} // namespace

OwningOpRef<ModuleOp> mlir::moe::importHFConfig(
    StringRef configText, std::optional<StringRef> indexText,
    ArrayRef<HFSafetensorsHeader> headers, MLIRContext *context,
    const HFImportOptions &options, std::string &error) {
  error.clear();
  context->loadDialect<MoEDialect, func::FuncDialect, scf::SCFDialect>();
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
    return fail("the file is shorter than its safetensors header (" + Twine(n) +
                " bytes)");
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

OwningOpRef<ModuleOp> mlir::moe::importHFFiles(StringRef configText,
                                               StringRef configPath,
                                               MLIRContext *context,
                                               HFImportOptions options,
                                               std::string &error) {
  options.configName = configPath.str();
  // The index beside config.json, when there is one.
  std::optional<std::string> indexText;
  bool onDisk = configPath != "<stdin>" && !configPath.empty();
  if (onDisk) {
    SmallString<256> indexPath = llvm::sys::path::parent_path(configPath);
    llvm::sys::path::append(indexPath, "model.safetensors.index.json");
    options.indexName = indexPath.str().str();
    if (llvm::sys::fs::is_regular_file(indexPath)) {
      auto indexBuf = llvm::MemoryBuffer::getFile(indexPath);
      if (!indexBuf) {
        error = ("cannot read " + indexPath + ": " +
                 indexBuf.getError().message())
                    .str();
        return nullptr;
      }
      indexText = (*indexBuf)->getBuffer().str();
    }
  }
  std::vector<HFSafetensorsHeader> headers;
  if (onDisk &&
      failed(readSafetensorsHeaders(llvm::sys::path::parent_path(configPath),
                                    indexText, headers, error)))
    return nullptr;
  return importHFConfig(configText,
                        indexText ? std::optional<StringRef>(*indexText)
                                  : std::nullopt,
                        headers, context, options, error);
}

void mlir::moe::registerHFImportTranslation() {
  static llvm::cl::opt<int64_t> tokens(
      "import-hf-tokens",
      llvm::cl::desc("--import-hf: rows of the hidden-states input x"),
      llvm::cl::init(1));
  static llvm::cl::opt<bool> whole(
      "import-hf-whole",
      llvm::cl::desc("--import-hf: the whole model (token ids to logits, "
                     "with attention and KV caches), not only its MoE layers"),
      llvm::cl::init(false));
  static llvm::cl::opt<int64_t> maxSeq(
      "import-hf-max-seq",
      llvm::cl::desc("--import-hf-whole: rows of each layer's KV cache"),
      llvm::cl::init(256));
  static llvm::cl::opt<int64_t> batch(
      "import-hf-batch",
      llvm::cl::desc("--import-hf-whole: sequences per step, each with its "
                     "own position and KV cache"),
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
        options.whole = whole;
        options.maxSeq = maxSeq;
        options.batch = batch;
        std::string error;
        OwningOpRef<ModuleOp> module =
            importHFFiles(buf->getBuffer(), buf->getBufferIdentifier(),
                          context, options, error);
        if (!module) {
          emitError(UnknownLoc::get(context)) << error;
          return nullptr;
        }
        return OwningOpRef<Operation *>(module.release());
      },
      [](DialectRegistry &registry) {
        registry.insert<MoEDialect, func::FuncDialect, scf::SCFDialect>();
      });
}
