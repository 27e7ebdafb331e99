//===- CpuOutlineLoops.cpp - Loop nests into functions of their own -------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/RegionUtils.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CPUOUTLINELOOPS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
/// Clones into `region`'s entry block the constants defined above it that
/// it uses, so that the outlined function sees them as constants.
void sinkConstants(RewriterBase &rewriter, Region &region) {
  SetVector<Value> above;
  getUsedValuesDefinedAbove(region, above);
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPointToStart(&region.front());
  IRMapping clones;
  for (Value v : above) {
    Operation *def = v.getDefiningOp();
    if (def && def->hasTrait<OpTrait::ConstantLike>())
      clones.map(v, rewriter.clone(*def)->getResult(0));
  }
  // One walk of the region (replacing each constant's uses in the region
  // would visit all of its uses in the function, every nest's: quadratic).
  region.walk([&](Operation *op) {
    for (OpOperand &operand : op->getOpOperands())
      if (Value clone = clones.lookupOrNull(operand.get()))
        operand.set(clone);
  });
}

/// Whether every value `op` uses from above can be a function argument
/// under the bare-pointer calling convention of the CPU code: memrefs of
/// static shape, strides and offset (a subview at a dynamic offset stays
/// where it is).
bool takesBareArguments(Operation *op) {
  SetVector<Value> above;
  getUsedValuesDefinedAbove(op->getRegions(), above);
  for (Value v : llvm::concat<Value>(above, op->getOperands())) {
    if (!isa<BaseMemRefType>(v.getType()))
      continue;
    auto type = dyn_cast<MemRefType>(v.getType());
    if (!type || !type.hasStaticShape())
      return false;
    SmallVector<int64_t> strides;
    int64_t offset;
    if (failed(type.getStridesAndOffset(strides, offset)) ||
        ShapedType::isDynamic(offset) ||
        llvm::any_of(strides, ShapedType::isDynamic))
      return false;
  }
  return true;
}

struct CpuOutlineLoopsPass
    : mlir::moe::impl::CpuOutlineLoopsBase<CpuOutlineLoopsPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    IRRewriter rewriter(&getContext());
    auto funcs = llvm::to_vector(module.getOps<func::FuncOp>());
    int64_t outlinedFuncs = 0;
    for (func::FuncOp fn : funcs) {
      if (fn.isExternal())
        continue;
      SmallVector<Operation *> nests;
      for (Block &block : fn.getBody())
        for (Operation &op : block)
          if (isa<scf::ForOp, scf::ParallelOp, scf::WhileOp, scf::IfOp>(op) &&
              takesBareArguments(&op))
            nests.push_back(&op);
      if (int64_t(nests.size()) < minNests)
        continue;
      int64_t count = 0;
      for (Operation *op : nests) {
        // The nest alone in an scf.execute_region, whose body becomes the
        // function.
        Location loc = op->getLoc();
        rewriter.setInsertionPoint(op);
        auto wrapper =
            scf::ExecuteRegionOp::create(rewriter, loc, op->getResultTypes());
        Block *body = rewriter.createBlock(&wrapper.getRegion());
        op->replaceAllUsesWith(wrapper.getResults());
        op->moveBefore(body, body->end());
        rewriter.setInsertionPointToEnd(body);
        scf::YieldOp::create(rewriter, loc, op->getResults());
        sinkConstants(rewriter, wrapper.getRegion());

        std::string name;
        do
          name = (fn.getSymName() + ".nest" + Twine(count++)).str();
        while (symbols.lookup(name));
        FailureOr<func::FuncOp> outlined =
            outlineSingleBlockRegion(rewriter, loc, wrapper.getRegion(), name);
        if (failed(outlined)) {
          op->emitError("cannot outline this loop nest into a function");
          return signalPassFailure();
        }
        // (Internal: IPSCCP may still carry constant arguments in.)
        outlined->setPrivate();
        (*outlined)->setAttr(
            "llvm.linkage",
            LLVM::LinkageAttr::get(&getContext(), LLVM::Linkage::Internal));
        (*outlined)->setAttr(
            "passthrough",
            rewriter.getArrayAttr({rewriter.getStringAttr("noinline")}));
        symbols.insert(*outlined);
        ++outlinedFuncs;
        // The wrapper holds the call alone now: inline it.
        Block *inner = &wrapper.getRegion().front();
        Operation *yield = inner->getTerminator();
        rewriter.inlineBlockBefore(inner, wrapper);
        rewriter.replaceOp(wrapper, yield->getOperands());
        rewriter.eraseOp(yield);
      }
    }
    numOutlined += outlinedFuncs;
  }
};
} // namespace
