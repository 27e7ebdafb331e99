//===- Outline.cpp - Operations into functions of their own ---------------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Outline.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/RegionUtils.h"

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
} // namespace

FailureOr<func::FuncOp> mlir::moe::outlineOps(RewriterBase &rewriter,
                                              ArrayRef<Operation *> ops,
                                              StringRef name) {
  assert(!ops.empty() && "nothing to outline");
  Operation *first = ops.front();
  Block *block = first->getBlock();
  Location loc = first->getLoc();
  llvm::SmallPtrSet<Operation *, 16> inside(ops.begin(), ops.end());
  auto isInside = [&](Operation *user) {
    Operation *ancestor = block->findAncestorOpInBlock(*user);
    return ancestor && inside.contains(ancestor);
  };
  SmallVector<Value> escaping;
  for (Operation *op : ops)
    for (Value result : op->getResults())
      if (!llvm::all_of(result.getUsers(), isInside))
        escaping.push_back(result);

  // The operations alone in an scf.execute_region, whose body becomes the
  // function.
  rewriter.setInsertionPoint(first);
  auto wrapper = scf::ExecuteRegionOp::create(rewriter, loc,
                                              ValueRange(escaping).getTypes());
  for (auto [value, result] : llvm::zip(escaping, wrapper.getResults()))
    rewriter.replaceUsesWithIf(value, result, [&](OpOperand &use) {
      return !isInside(use.getOwner());
    });
  Block *body = rewriter.createBlock(&wrapper.getRegion());
  for (Operation *op : ops)
    rewriter.moveOpBefore(op, body, body->end());
  rewriter.setInsertionPointToEnd(body);
  scf::YieldOp::create(rewriter, loc, escaping);
  sinkConstants(rewriter, wrapper.getRegion());

  FailureOr<func::FuncOp> outlined =
      outlineSingleBlockRegion(rewriter, loc, wrapper.getRegion(), name);
  if (failed(outlined))
    return failure();
  outlined->setPrivate();
  // The wrapper holds the call alone now: inline it.
  Block *inner = &wrapper.getRegion().front();
  Operation *yield = inner->getTerminator();
  rewriter.inlineBlockBefore(inner, wrapper);
  rewriter.replaceOp(wrapper, yield->getOperands());
  rewriter.eraseOp(yield);
  return outlined;
}
