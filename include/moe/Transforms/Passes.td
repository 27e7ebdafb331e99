//===- Passes.td - moe code generation transforms ----------*- tablegen -*-===//
//
// Part of moe-compiler. Target-specific transforms on upstream dialects.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def CpuMatmulLoopOrder : Pass<"moe-cpu-matmul-loop-order"> {
  let summary = "Order matmul loops as (m, k, n) for row-major CPU code";
  let description = [{
    Rewrites `linalg.matmul` into a `linalg.generic` whose loops run
    (m, k, n): the innermost loop walks a row of B and a row of C with unit
    stride, which LLVM vectorizes, instead of a column of B. Each C element
    still accumulates over k in increasing order, so results are bitwise those
    of the (m, n, k) order.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

#endif // MOE_TRANSFORMS_PASSES_TD
