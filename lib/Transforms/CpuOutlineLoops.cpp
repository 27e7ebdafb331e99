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
  for (Value v : above) {
    Operation *def = v.getDefiningOp();
    if (!def || !def->hasTrait<OpTrait::ConstantLike>())
      continue;
    Operation *clone = rewriter.clone(*def);
    replaceAllUsesInRegionWith(v, clone->getResult(0), region);
  }
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

/// A hash that structurally equal functions share: the signature and each
/// operation's name, attributes, properties and types in walk order (no
/// locations, no value identities).
llvm::hash_code structuralHash(func::FuncOp fn) {
  llvm::hash_code hash = hash_value(fn.getFunctionType());
  fn.getBody().walk([&](Operation *op) {
    hash = llvm::hash_combine(
        hash, OperationEquivalence::computeHash(
                  op, OperationEquivalence::ignoreHashValue,
                  OperationEquivalence::ignoreHashValue,
                  OperationEquivalence::IgnoreLocations));
  });
  return hash;
}

/// Keeps one of each set of structurally equal functions in `outlined` (the
/// first), calls it where the others were called and erases them: the
/// nests of a model's identical layers compile once. Returns how many
/// functions were erased.
int64_t mergeEqualFunctions(ModuleOp module, ArrayRef<func::FuncOp> outlined) {
  DenseMap<llvm::hash_code, SmallVector<func::FuncOp>> buckets;
  DenseMap<StringAttr, FlatSymbolRefAttr> replacement;
  for (func::FuncOp fn : outlined) {
    SmallVector<func::FuncOp> &kept = buckets[structuralHash(fn)];
    auto same = llvm::find_if(kept, [&](func::FuncOp other) {
      return other.getFunctionType() == fn.getFunctionType() &&
             OperationEquivalence::isRegionEquivalentTo(
                 &other.getBody(), &fn.getBody(),
                 OperationEquivalence::IgnoreLocations);
    });
    if (same == kept.end())
      kept.push_back(fn);
    else
      replacement[fn.getSymNameAttr()] =
          FlatSymbolRefAttr::get(same->getSymNameAttr());
  }
  if (replacement.empty())
    return 0;
  module.walk([&](func::CallOp call) {
    auto it = replacement.find(call.getCalleeAttr().getAttr());
    if (it != replacement.end())
      call.setCalleeAttr(it->second);
  });
  for (func::FuncOp fn : outlined)
    if (replacement.contains(fn.getSymNameAttr()))
      fn.erase();
  return replacement.size();
}

struct CpuOutlineLoopsPass
    : mlir::moe::impl::CpuOutlineLoopsBase<CpuOutlineLoopsPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    IRRewriter rewriter(&getContext());
    auto funcs = llvm::to_vector(module.getOps<func::FuncOp>());
    SmallVector<func::FuncOp> outlinedFuncs;
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
        outlinedFuncs.push_back(*outlined);
        // The wrapper holds the call alone now: inline it.
        Block *inner = &wrapper.getRegion().front();
        Operation *yield = inner->getTerminator();
        rewriter.inlineBlockBefore(inner, wrapper);
        rewriter.replaceOp(wrapper, yield->getOperands());
        rewriter.eraseOp(yield);
      }
    }
    numOutlined += outlinedFuncs.size();
    if (merge)
      numMerged += mergeEqualFunctions(module, outlinedFuncs);
  }
};
} // namespace
