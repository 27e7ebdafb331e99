//===- Pipelines.h - moe compilation pipelines -------------------*- C++ -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

namespace mlir {
class OpPassManager;
namespace moe {

/// moe ops (composite or primitives) -> linalg/tensor/scf on tensors.
void buildMoEToLinalgPipeline(OpPassManager &pm);

/// The whole CPU pipeline: moe -> linalg -> bufferized loops -> LLVM dialect.
/// Public functions take and fill bare pointers to their (static-shaped)
/// buffers; results become trailing out-parameters.
void buildCpuPipeline(OpPassManager &pm);

/// Registers `-moe-cpu-pipeline` and `-moe-to-linalg-pipeline` for moe-opt.
void registerPipelines();

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H
