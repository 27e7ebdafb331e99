//===- MoEToLinalg.cpp - The convert-moe-to-linalg pass --------------------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOLINALG
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {
struct ConvertMoEToLinalgPass
    : mlir::moe::impl::ConvertMoEToLinalgBase<ConvertMoEToLinalgPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    RewritePatternSet patterns(ctx);
    populateFfnToLinalgPatterns(patterns);
    populateRoutingToLinalgPatterns(patterns);
    populateDenseToLinalgPatterns(patterns);
    ConversionTarget target(*ctx);
    target.addIllegalDialect<MoEDialect>();
    // The composite is lowered through -moe-decompose-layer first; say so
    // rather than failing with a generic legalization error.
    WalkResult composite = getOperation()->walk([&](LayerOp op) {
      op.emitOpError() << "must be decomposed before the lowering (run "
                          "-moe-decompose-layer first)";
      return WalkResult::interrupt();
    });
    if (composite.wasInterrupted())
      return signalPassFailure();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
