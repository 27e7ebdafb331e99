//===- Passes.h - MoE dialect passes -----------------------------*- C++ -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_H
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

#include <functional>

namespace mlir {
class RewritePatternSet;
namespace moe {
class LayerOp;

#define GEN_PASS_DECL
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

/// Rewrites `op` into the MoE primitives (router, dispatch, experts, mlp,
/// combine) and linalg; returns the value that replaces its result.
/// Where a caller of decomposeLayer steps in (the expert-parallel
/// partitioner): `routes` may rewrite the router's expert ids (e.g. drop the
/// padding rows of a token slice), `experts` replaces the routed experts'
/// `moe.experts` on the dispatched rows (e.g. exchanges them with the ranks
/// owning the experts around a local `moe.experts`).
struct DecomposeLayerHooks {
  std::function<Value(OpBuilder &, Location, Value expertIds)> routes;
  std::function<Value(OpBuilder &, Location, Value permuted, Value offsets,
                      LayerOp op)>
      experts;
};

Value decomposeLayer(OpBuilder &builder, LayerOp op,
                     const DecomposeLayerHooks &hooks = {});

/// Adds the pattern that decomposes `moe.layer`.
void populateDecomposeLayerPatterns(RewritePatternSet &patterns);

#define GEN_PASS_REGISTRATION
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_H
