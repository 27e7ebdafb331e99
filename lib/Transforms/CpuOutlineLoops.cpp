//===- CpuOutlineLoops.cpp - Loop nests into functions of their own -------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "moe/Transforms/Outline.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/RegionUtils.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CPUOUTLINELOOPS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
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
        std::string name;
        do
          name = (fn.getSymName() + ".nest" + Twine(count++)).str();
        while (symbols.lookup(name));
        FailureOr<func::FuncOp> outlined = moe::outlineOps(rewriter, op, name);
        if (failed(outlined)) {
          op->emitError("cannot outline this loop nest into a function");
          return signalPassFailure();
        }
        // (Internal: IPSCCP may still carry constant arguments in.)
        (*outlined)->setAttr(
            "llvm.linkage",
            LLVM::LinkageAttr::get(&getContext(), LLVM::Linkage::Internal));
        (*outlined)->setAttr(
            "passthrough",
            rewriter.getArrayAttr({rewriter.getStringAttr("noinline")}));
        symbols.insert(*outlined);
        ++outlinedFuncs;
      }
    }
    numOutlined += outlinedFuncs;
  }
};
} // namespace
