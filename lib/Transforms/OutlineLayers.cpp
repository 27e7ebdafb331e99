//===- OutlineLayers.cpp - A model's layers into functions of their own ---===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "moe/Transforms/Outline.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::moe {
#define GEN_PASS_DEF_OUTLINELAYERS
#define GEN_PASS_DEF_DROPEQUIVALENTPRIVATERESULTS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
/// The layer a location names: its name up to the first component that is
/// a number ("model.layers.3.self_attn" -> "model.layers.3"); empty where
/// it names none.
StringRef layerOf(Location loc) {
  if (auto fused = dyn_cast<FusedLoc>(loc)) {
    for (Location part : fused.getLocations())
      if (StringRef layer = layerOf(part); !layer.empty())
        return layer;
    return {};
  }
  auto named = dyn_cast<NameLoc>(loc);
  if (!named)
    return {};
  StringRef name = named.getName().getValue();
  size_t end = 0;
  while (end < name.size()) {
    size_t dot = name.find('.', end);
    StringRef part = name.slice(end, dot);
    if (!part.empty() && llvm::all_of(part, llvm::isDigit))
      return name.take_front(dot == StringRef::npos ? name.size() : dot);
    if (dot == StringRef::npos)
      break;
    end = dot + 1;
  }
  return {};
}

/// Whether `ops` can become a function: every value that would cross its
/// boundary (a value they use from before them, or one of their results
/// used after them) is statically shaped, or no shaped value at all (the
/// CPU code passes buffers as bare pointers, and a layout a function
/// argument could not keep would be copied at every call), and no buffer
/// is handed out (one on the function's stack would not outlive it; a
/// whole model before bufferization hands out tensors only).
bool canOutline(ArrayRef<Operation *> ops) {
  llvm::SmallPtrSet<Operation *, 16> inside(ops.begin(), ops.end());
  Block *block = ops.front()->getBlock();
  auto isInside = [&](Operation *op) {
    Operation *ancestor = block->findAncestorOpInBlock(*op);
    return ancestor && inside.contains(ancestor);
  };
  auto crossesStatically = [](Value v) {
    auto shaped = dyn_cast<ShapedType>(v.getType());
    return !shaped || shaped.hasStaticShape();
  };
  for (Operation *op : ops) {
    WalkResult walk = op->walk([&](Operation *nested) {
      for (Value operand : nested->getOperands()) {
        Operation *def = operand.getDefiningOp();
        if (!def)
          def = operand.getParentBlock()->getParentOp();
        if (!isInside(def) && !crossesStatically(operand))
          return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return false;
    for (Value result : op->getResults())
      if (!llvm::all_of(result.getUsers(), isInside) &&
          (!crossesStatically(result) ||
           isa<BaseMemRefType>(result.getType())))
        return false;
  }
  return true;
}

struct OutlineLayersPass
    : mlir::moe::impl::OutlineLayersBase<OutlineLayersPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    IRRewriter rewriter(&getContext());
    for (func::FuncOp fn : llvm::to_vector(module.getOps<func::FuncOp>())) {
      if (fn.isExternal() || !fn.getBody().hasOneBlock())
        continue;
      // Runs of consecutive top-level operations of one layer. A constant
      // without a layer does not end a run (it moves before the run's first
      // operation; the function clones the constants it uses).
      struct Run {
        StringRef layer;
        SmallVector<Operation *> ops, constants;
      };
      SmallVector<Run> runs;
      bool open = false;
      for (Operation &op : fn.front().without_terminator()) {
        StringRef layer = layerOf(op.getLoc());
        if (layer.empty()) {
          if (open && op.hasTrait<OpTrait::ConstantLike>())
            runs.back().constants.push_back(&op);
          else
            open = false;
          continue;
        }
        if (!open || runs.back().layer != layer)
          runs.push_back({layer, {}, {}});
        runs.back().ops.push_back(&op);
        open = true;
      }
      if (int64_t(runs.size()) < minLayers)
        continue;
      for (Run &run : runs) {
        if (!canOutline(run.ops))
          continue;
        for (Operation *constant : run.constants)
          if (constant->isBeforeInBlock(run.ops.back()))
            constant->moveBefore(run.ops.front());
        std::string name = run.layer.str();
        for (int i = 1; symbols.lookup(name); ++i)
          name = (run.layer + "." + Twine(i)).str();
        FailureOr<func::FuncOp> outlined =
            moe::outlineOps(rewriter, run.ops, name);
        if (failed(outlined)) {
          run.ops.front()->emitError("cannot outline layer '")
              << run.layer << "' into a function";
          return signalPassFailure();
        }
        // Internal: no symbol of the object, which may hold other models.
        (*outlined)->setAttr(
            "llvm.linkage",
            LLVM::LinkageAttr::get(&getContext(), LLVM::Linkage::Internal));
        symbols.insert(*outlined);
        ++numOutlined;
      }
    }
  }
};

/// The function's one return, or null.
func::ReturnOp uniqueReturn(func::FuncOp fn) {
  func::ReturnOp found;
  for (Block &block : fn.getBody())
    if (auto ret = dyn_cast<func::ReturnOp>(block.getTerminator())) {
      if (found)
        return {};
      found = ret;
    }
  return found;
}

struct DropEquivalentPrivateResultsPass
    : mlir::moe::impl::DropEquivalentPrivateResultsBase<
          DropEquivalentPrivateResultsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    DenseMap<StringAttr, SmallVector<func::CallOp>> calls;
    module.walk([&](func::CallOp call) {
      calls[call.getCalleeAttr().getAttr()].push_back(call);
    });
    IRRewriter rewriter(&getContext());
    for (func::FuncOp fn : module.getOps<func::FuncOp>()) {
      if (!fn.isPrivate() || fn.isExternal())
        continue;
      func::ReturnOp ret = uniqueReturn(fn);
      if (!ret)
        continue;
      // Result i is argument argOf[i] (through casts), or -1.
      SmallVector<int64_t> argOf;
      BitVector dropped(ret.getNumOperands());
      SmallVector<Value> kept;
      for (auto [i, value] : llvm::enumerate(ret.getOperands())) {
        Value source = value;
        while (auto cast = source.getDefiningOp<memref::CastOp>())
          source = cast.getSource();
        auto arg = dyn_cast<BlockArgument>(source);
        if (arg && isa<BaseMemRefType>(arg.getType()) &&
            arg.getOwner() == &fn.front()) {
          argOf.push_back(arg.getArgNumber());
          dropped.set(i);
        } else {
          argOf.push_back(-1);
          kept.push_back(value);
        }
      }
      if (dropped.none())
        continue;
      numDropped += dropped.count();
      if (failed(fn.eraseResults(dropped)))
        return signalPassFailure();
      rewriter.modifyOpInPlace(ret,
                               [&] { ret.getOperandsMutable().assign(kept); });
      for (func::CallOp call : calls.lookup(fn.getSymNameAttr())) {
        rewriter.setInsertionPoint(call);
        auto replacement = func::CallOp::create(rewriter, call.getLoc(), fn,
                                                call.getOperands());
        replacement->setDiscardableAttrs(call->getDiscardableAttrDictionary());
        SmallVector<Value> results;
        unsigned next = 0;
        for (auto [i, result] : llvm::enumerate(call.getResults())) {
          if (argOf[i] < 0) {
            results.push_back(replacement.getResult(next++));
            continue;
          }
          Value operand = call.getOperand(argOf[i]);
          if (operand.getType() != result.getType())
            operand = memref::CastOp::create(rewriter, call.getLoc(),
                                             result.getType(), operand);
          results.push_back(operand);
        }
        rewriter.replaceOp(call, results);
      }
    }
  }
};
} // namespace
