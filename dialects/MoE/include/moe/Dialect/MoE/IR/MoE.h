//===- MoE.h - MoE dialect ---------------------------------------*- C++ -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOE_H
#define MOE_DIALECT_MOE_IR_MOE_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h.inc"
#include "moe/Dialect/MoE/IR/MoEEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoEAttrs.h.inc"

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.h.inc"

namespace mlir::moe {
/// Each expert's capacity in a step of `tokens` tokens (moe.router's and
/// moe.layer's `capacity_factor` and `min_capacity`): max(min_capacity,
/// ceil(tokens * (capacity_factor * top_k / experts))), in double (a huge
/// factor does not overflow) and in the order the CPU lowering computes it
/// in the IR, for any token count.
double routingCapacity(double capacityFactor, int64_t tokens, int64_t topK,
                       int64_t experts, int64_t minCapacity);
} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_IR_MOE_H
