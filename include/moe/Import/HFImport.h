//===- HFImport.h - Hugging Face config.json to moe IR ------------*- C++
//-*-===//
//
// Part of moe-compiler. Reads a Hugging Face checkpoint's config.json (and,
// when present, model.safetensors.index.json) and builds model IR in which
// the weights stay external, referenced by tensor name.
//
// Naming convention for weights (function arguments of @model):
//  - `moe.weight = "<HF tensor name>"`: the tensor as stored.
//  - `moe.weight = "<name>", moe.transpose`: an HF Linear weight stored
//    [out, in]; the argument is its transpose [in, out].
//  - `moe.weight = "model.layers.3.mlp.experts.*.up_proj.weight",
//    moe.stack = "transpose"`: the argument stacks per-expert tensors; `*`
//    stands for the expert index 0 .. E-1, each tensor [out, in] is
//    transposed and the results are stacked along a new leading dim:
//    [E, in, out].
//  - `moe.quant = "fp8:BO:BI"` beside either: each stored tensor is F8_E4M3
//    with `<tensor name>_scale_inv` (F32, one scale a BO x BI block of
//    [out, in]), from a block-scaled FP8 checkpoint's quantization_config;
//    the argument keeps the model's float type and the runtime dequantizes.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IMPORT_HFIMPORT_H
#define MOE_IMPORT_HFIMPORT_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/LogicalResult.h"

#include <optional>
#include <string>
#include <vector>

namespace mlir {
class MLIRContext;
namespace moe {

struct HFImportOptions {
  /// Rows of the hidden-states input `x` [tokens, hidden] (tokens per step
  /// of a whole model).
  int64_t tokens = 1;
  /// The whole model (token ids -> logits: embedding, attention with a KV
  /// cache, norms, MoE layers, LM head) instead of its MoE layers alone;
  /// Mixtral only for now.
  bool whole = false;
  /// Rows of each layer's KV cache in a whole model.
  int64_t maxSeq = 256;
  /// Sequences a whole model's step runs together: `tokens` rows and one
  /// KV cache of `maxSeq` rows each (ids [batch * tokens], pos [batch]).
  int64_t batch = 1;
  /// Shown in messages and locations, e.g. "ckpt/config.json".
  std::string configName = "config.json";
  std::string indexName = "model.safetensors.index.json";
};

/// The JSON header of one safetensors file: tensor names, dtypes, shapes.
struct HFSafetensorsHeader {
  std::string file; // for messages
  std::string json;
};

/// Builds the model module from config.json text and, when given, the
/// safetensors index text and the headers of the checkpoint's safetensors
/// files (each tensor's stored shape and dtype is then checked; without an
/// index the headers list the tensors). On failure returns null and sets
/// `error` to a message that names the file, the key or tensor, and the
/// architecture. Never aborts on bad input.
OwningOpRef<ModuleOp> importHFConfig(
    llvm::StringRef configText, std::optional<llvm::StringRef> indexText,
    llvm::ArrayRef<HFSafetensorsHeader> headers, MLIRContext *context,
    const HFImportOptions &options, std::string &error);

/// Reads the headers of the safetensors files in `dir` that the index names
/// (or of `model.safetensors` without an index); files that are absent are
/// skipped. Fails with `error` set on a truncated or implausible header.
llvm::LogicalResult readSafetensorsHeaders(
    llvm::StringRef dir, const std::optional<std::string> &indexText,
    std::vector<HFSafetensorsHeader> &headers, std::string &error);

/// importHFConfig on the config.json text read from `configPath`, with the
/// index and the safetensors headers found beside it.
OwningOpRef<ModuleOp> importHFFiles(llvm::StringRef configText,
                                    llvm::StringRef configPath,
                                    MLIRContext *context,
                                    HFImportOptions options,
                                    std::string &error);

/// Registers the `--import-hf` translation (input: a checkpoint directory
/// or its config.json) and its `--import-hf-tokens=N` option.
void registerHFImportTranslation();

} // namespace moe
} // namespace mlir

#endif // MOE_IMPORT_HFIMPORT_H
