//===- Passes.td - MoE dialect passes ----------------------*- tablegen -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoEDecomposeLayer : Pass<"moe-decompose-layer"> {
  let summary = "Rewrite moe.layer into router, dispatch, experts, mlp, combine";
  let description = [{
    Expands every `moe.layer` into the MoE primitives: `moe.router`,
    `moe.dispatch`, `moe.experts` and `moe.combine`, with `moe.mlp` for shared
    experts and the PR-MoE residual MLP, and linalg for their gates. The
    shared-expert and residual-MLP outputs enter `moe.combine` as its fused
    residual, so no extra pass over the [T, d] output is made.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::tensor::TensorDialect"
  ];
}

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
