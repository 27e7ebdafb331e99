//===- Passes.td - moe conversion passes -------------------*- tablegen -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToLinalg : Pass<"convert-moe-to-linalg"> {
  let summary = "Lower moe primitives to linalg, tensor, scf, arith and math";
  let description = [{
    The target-independent lowering used by the CPU backend (and by the CUDA
    backend for the parts it does not fuse). Expects `moe.layer` to be
    decomposed first.

    - `moe.experts` / `moe.mlp`: a loop over experts; per expert, slices of
      its rows and weights, f32-accumulating `linalg.matmul`s and a
      `linalg.generic` for the activation (and gate product).
    - `moe.router`: f32 logits (`linalg.matmul`), scores as generics with
      row reductions, then a per-token loop that applies group limits and
      selects the top-k; capacity drops in a second loop.
    - `moe.dispatch`: per-expert counts, offsets and slot assignment in
      scalar loops, then a gather `linalg.generic` for the rows.
    - `moe.combine`: one `linalg.generic` over [T, d] that gathers the k
      expert rows of each token (the dense mapping table).
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

#endif // MOE_CONVERSION_PASSES_TD
