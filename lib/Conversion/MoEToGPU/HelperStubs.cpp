//===- HelperStubs.cpp - GPU helpers with bodies for bufferization --------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/GpuHelpers.h"
#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUHELPERSTUBS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
bool isGpuHelper(func::FuncOp fn) {
  return fn->hasAttr(moe::kGpuExpertsAttr) || fn->hasAttr(moe::kGpuLayerAttr) ||
         fn->hasAttr(moe::kGpuDenseAttr);
}

struct MoEGpuHelperStubsPass
    : mlir::moe::impl::MoEGpuHelperStubsBase<MoEGpuHelperStubsPass> {
  using Base::Base;
  void runOnOperation() override {
    for (auto fn : getOperation().getOps<func::FuncOp>()) {
      if (!isGpuHelper(fn))
        continue;
      if (strip) {
        if (fn.isExternal())
          continue;
        // Only the stub this pass made, bufferized, is dropped: allocations
        // and their return.
        Block &body = fn.getBody().front();
        bool stub =
            fn.getBody().hasOneBlock() &&
            llvm::all_of(body.without_terminator(),
                         llvm::IsaPred<memref::AllocOp>) &&
            llvm::all_of(body.getTerminator()->getOperands(), [](Value v) {
              return v.getDefiningOp<memref::AllocOp>();
            });
        if (!stub) {
          fn.emitError("GPU helper has a body that is not a bufferized stub");
          return signalPassFailure();
        }
        fn.eraseBody();
        continue;
      }
      // (A helper whose results are not all tensors of static shape stays a
      // declaration: the analysis then assumes they may alias its
      // arguments, which is slower but still right.)
      if (!fn.isExternal() || !llvm::all_of(fn.getResultTypes(), [](Type type) {
            auto tensor = dyn_cast<RankedTensorType>(type);
            return tensor && tensor.hasStaticShape();
          }))
        continue;
      OpBuilder b = OpBuilder::atBlockBegin(fn.addEntryBlock());
      SmallVector<Value> results;
      for (Type type : fn.getResultTypes())
        results.push_back(bufferization::AllocTensorOp::create(
            b, fn.getLoc(), cast<RankedTensorType>(type), ValueRange()));
      func::ReturnOp::create(b, fn.getLoc(), results);
    }
  }
};
} // namespace
