//===- Passes.h - moe parallelism planning ------------------------*- C++ -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PARALLEL_PASSES_H
#define MOE_PARALLEL_PASSES_H

#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Pass/Pass.h"

namespace mlir::moe {

#define GEN_PASS_DECL
#include "moe/Parallel/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "moe/Parallel/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_PARALLEL_PASSES_H
