//===- CpuMatmulLoopOrder.cpp - (m, k, n) matmul loops for CPUs ------------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CPUMATMULLOOPORDER
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
struct CpuMatmulLoopOrderPass
    : mlir::moe::impl::CpuMatmulLoopOrderBase<CpuMatmulLoopOrderPass> {
  void runOnOperation() override {
    SmallVector<linalg::MatmulOp> matmuls;
    getOperation()->walk([&](linalg::MatmulOp op) { matmuls.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (linalg::MatmulOp op : matmuls) {
      // Transposed or broadcast variants keep their own loop order.
      if (!op.getIndexingMapsArray().empty() &&
          op.getIndexingMapsArray() !=
              op.getDefaultIndexingMaps(&getContext()))
        continue;
      rewriter.setInsertionPoint(op);
      FailureOr<linalg::GenericOp> generic =
          linalg::generalizeNamedOp(rewriter, op);
      if (failed(generic))
        continue;
      // (m, n, k) -> (m, k, n).
      if (failed(linalg::interchangeGenericOp(rewriter, *generic, {0, 2, 1})))
        return signalPassFailure();
    }
  }
};
} // namespace
