//===- TensorBuilders.h - Builders shared by moe rewrites -------*- C++ -*-===//
//
// Part of moe-compiler. Small builders for the linalg/tensor/arith IR that
// the decomposition and the lowerings emit, so that each idiom (f32
// accumulation, elementwise generics, rounding) is spelled once.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_TENSORBUILDERS_H
#define MOE_DIALECT_MOE_UTILS_TENSORBUILDERS_H

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/Builders.h"

namespace mlir::moe {

/// `tensor.empty` with the given (possibly dynamic) sizes.
Value emptyTensor(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                  Type elementType);

/// `tensor.empty` + `linalg.fill` with `value` (a float or integer constant
/// of `elementType`).
Value filledTensor(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                   Type elementType, double value);

/// A parallel linalg.generic over `init`'s shape. `maps` index the inputs;
/// `body` computes the output element from the input elements (and may use
/// linalg.index to read the iteration position).
Value elementwise(OpBuilder &b, Location loc, ValueRange inputs,
                  ArrayRef<AffineMap> maps, Value init,
                  function_ref<Value(OpBuilder &, Location, ValueRange)> body);

/// `lhs [M, K] x rhs [K, N]` accumulated in f32 (inputs of any float type).
Value matmulF32(OpBuilder &b, Location loc, Value lhs, Value rhs);

/// Scalar conversions between a float type and f32.
Value toF32(OpBuilder &b, Location loc, Value v);
Value fromF32(OpBuilder &b, Location loc, Value v, Type to);

/// `1 / (1 + exp(-x))` in f32.
Value sigmoidF32(OpBuilder &b, Location loc, Value x);

/// The activation `act` of a scalar f32.
Value applyActivation(OpBuilder &b, Location loc, Activation act, Value x);

/// Rotary embedding of a vector of 2 * half elements: the index (index
/// type) of the stored element that is element `i` of the vector the
/// rotation applies to. With `interleaved` (DeepSeek's pairs (2j, 2j + 1),
/// de-interleaved first as transformers does) 2 (i % half) + (i >= half),
/// else `i` itself.
Value ropeSourceIndex(OpBuilder &b, Location loc, Value i, int64_t half,
                      bool interleaved);

/// Scalar constants.
Value constF32(OpBuilder &b, Location loc, float v);
Value constIndex(OpBuilder &b, Location loc, int64_t v);
Value constI32(OpBuilder &b, Location loc, int32_t v);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_UTILS_TENSORBUILDERS_H
