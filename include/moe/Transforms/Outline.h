//===- Outline.h - Operations into functions of their own -------*- C++ -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_OUTLINE_H
#define MOE_TRANSFORMS_OUTLINE_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {

/// Moves `ops`, consecutive operations of one block in their order, into a
/// new private function `name` and calls it where they were. The values
/// they use from above become the function's arguments (in the order of
/// their first use; constants are cloned in instead), and their results
/// used after them its results. Inserts nothing into a symbol table: the
/// caller picks a free name and records the function.
FailureOr<func::FuncOp> outlineOps(RewriterBase &rewriter,
                                   ArrayRef<Operation *> ops, StringRef name);

} // namespace mlir::moe

#endif // MOE_TRANSFORMS_OUTLINE_H
