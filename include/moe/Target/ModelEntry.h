//===- ModelEntry.h - The executable-facing side of a compiled model -*- C++ -*-===//
//
// Part of moe-compiler.
//
// A compiled model exposes three symbols to the runtime (runtime/include/
// moert/moert.h, moert_model_main):
//   const char moe_model_signature[];   one line per buffer:
//                                       "<input|weight|output> <name> <DTYPE> <d0>x<d1>..."
//   void moe_model_run(void **buffers); buffers in signature order
//   int main(int, char **);             calls moert_model_main
//
// Entry arguments name themselves with the argument attributes
// `moe.input = "x"` or `moe.weight = "w_up"`, results with `moe.output`;
// unannotated arguments are inputs `arg<i>`, unannotated results `result<i>`.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TARGET_MODELENTRY_H
#define MOE_TARGET_MODELENTRY_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <optional>
#include <string>
#include <vector>

namespace mlir::moe {

struct ModelBuffer {
  enum class Kind { Input, Weight, Output };
  Kind kind;
  std::string name;
  std::string dtype; // safetensors spelling: F32, F16, BF16, I32
  std::vector<int64_t> shape;
  /// A weight the compiled code reads on the GPU: the runtime uploads it once
  /// and passes the device pointer ("device-weight" in the signature).
  bool device = false;
  /// How the weight is stored relative to the argument (`moe.transpose`:
  /// "transpose"; `moe.stack = "transpose"`: "stack-transpose"); empty when
  /// stored as it is used. A trailing field of the signature line.
  std::string layout;
  /// A weight stored quantized (`moe.quant`): "fp8:BO:BI", block-scaled
  /// E4M3 with `<name>_scale_inv` beside it, which the runtime dequantizes
  /// to `dtype` as it loads. A trailing field "quant=fp8:BO:BI".
  std::string quant;
  /// A weight of a partitioned model: the grid axes each dimension is split
  /// over (empty: whole); the runtime loads this rank's slice. A trailing
  /// field "split=A|-|B.C" of the signature line.
  std::vector<std::vector<int16_t>> split;
};

struct ModelSignature {
  std::string entry;
  std::vector<ModelBuffer> buffers; // arguments first, then results
  /// The device grid of a partitioned model (moe-partition's @moe_grid);
  /// empty for one rank. A first line "grid DxExT" of the signature.
  std::vector<int64_t> grid;
  /// An encoder-decoder generator's first decoder token (the entry's
  /// `moe.decoder_start` attribute): a line "decoder-start N".
  std::optional<int64_t> decoderStart;
  /// Whether a call of the entry only queues work on the GPU's stream
  /// (set by addExecutableEntry from the lowered code): a line
  /// "capturable-step", and a generator may replay its steps as a CUDA
  /// graph.
  bool capturable = false;

  /// The text stored in `moe_model_signature`.
  std::string serialize() const;
};

/// Finds the entry function (`entryName`, or the only public func.func),
/// checks that it can be compiled into an executable (static shapes,
/// supported element types, unique names) and returns its signature. Emits
/// a diagnostic naming the argument and returns failure otherwise. Marks the
/// entry's arguments read-only for bufferization (they may be memory-mapped
/// weight files).
FailureOr<ModelSignature> prepareModelEntry(ModuleOp module,
                                            StringRef entryName,
                                            bool cudaTarget = false);

/// After lowering to the LLVM dialect: adds `moe_model_signature`,
/// `moe_model_run` and `main` (calling `moert_model_main`); marks the
/// signature capturable where a call of the entry only queues GPU work
/// (with `report`, a remark says whether, or what host work stops it).
/// With `cpuFallback` (the signature of CPU code merged in by
/// mergeCpuFallback) also `moe_model_cpu_signature` and
/// `moe_model_cpu_run`, and main calls `moert_model_main_fallback`, which
/// runs the CPU code where no usable GPU is found.
LogicalResult addExecutableEntry(ModuleOp module,
                                 const ModelSignature &signature,
                                 bool report = false,
                                 const ModelSignature *cpuFallback = nullptr);

/// Moves the definitions of `cpu` (the same model lowered to the LLVM
/// dialect by the CPU pipeline) into `module` (its GPU form) under names
/// prefixed "moe_cpu.", so that one executable holds both; declarations
/// both share (runtime functions, malloc) are kept once and must agree.
/// Renames `cpuSignature.entry` with the rest. Leaves `cpu` empty.
LogicalResult mergeCpuFallback(ModuleOp module, ModuleOp cpu,
                               ModelSignature &cpuSignature);

} // namespace mlir::moe

#endif // MOE_TARGET_MODELENTRY_H
