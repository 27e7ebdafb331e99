//===- TensorBuilders.cpp - Builders shared by moe rewrites ----------------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/TensorBuilders.h"

#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

Value mlir::moe::emptyTensor(OpBuilder &b, Location loc,
                             ArrayRef<OpFoldResult> sizes, Type elementType) {
  return tensor::EmptyOp::create(b, loc, sizes, elementType);
}

Value mlir::moe::filledTensor(OpBuilder &b, Location loc,
                              ArrayRef<OpFoldResult> sizes, Type elementType,
                              double value) {
  Value init = emptyTensor(b, loc, sizes, elementType);
  TypedAttr attr;
  if (auto ft = dyn_cast<FloatType>(elementType))
    attr = b.getFloatAttr(ft, value);
  else
    attr = b.getIntegerAttr(elementType, static_cast<int64_t>(value));
  Value c = arith::ConstantOp::create(b, loc, attr);
  return linalg::FillOp::create(b, loc, c, init).getResult(0);
}

Value mlir::moe::elementwise(
    OpBuilder &b, Location loc, ValueRange inputs, ArrayRef<AffineMap> maps,
    Value init, function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
  auto initType = cast<RankedTensorType>(init.getType());
  SmallVector<AffineMap> indexing(maps);
  indexing.push_back(b.getMultiDimIdentityMap(initType.getRank()));
  SmallVector<utils::IteratorType> iterators(initType.getRank(),
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{initType}, inputs, ValueRange{init}, indexing,
      iterators, [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value out = body(nb, nloc, args.drop_back());
        linalg::YieldOp::create(nb, nloc, out);
      });
  return generic.getResult(0);
}

Value mlir::moe::matmulF32(OpBuilder &b, Location loc, Value lhs, Value rhs) {
  SmallVector<OpFoldResult> sizes{tensor::getMixedSize(b, loc, lhs, 0),
                                  tensor::getMixedSize(b, loc, rhs, 1)};
  Value acc = filledTensor(b, loc, sizes, b.getF32Type(), 0.0);
  return linalg::MatmulOp::create(b, loc, TypeRange{acc.getType()},
                                  ValueRange{lhs, rhs}, ValueRange{acc})
      .getResult(0);
}

Value mlir::moe::toF32(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isF32())
    return v;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
}

Value mlir::moe::fromF32(OpBuilder &b, Location loc, Value v, Type to) {
  if (to.isF32())
    return v;
  return arith::TruncFOp::create(b, loc, to, v);
}

Value mlir::moe::constF32(OpBuilder &b, Location loc, float v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}

Value mlir::moe::constIndex(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

Value mlir::moe::ropeSourceIndex(OpBuilder &b, Location loc, Value i,
                                 int64_t half, bool interleaved) {
  if (!interleaved)
    return i;
  Value halfC = constIndex(b, loc, half);
  Value lowHalf =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, i, halfC);
  Value twoJ = arith::MulIOp::create(
      b, loc, arith::RemUIOp::create(b, loc, i, halfC), constIndex(b, loc, 2));
  return arith::SelectOp::create(
      b, loc, lowHalf, twoJ,
      arith::AddIOp::create(b, loc, twoJ, constIndex(b, loc, 1)));
}

Value mlir::moe::constI32(OpBuilder &b, Location loc, int32_t v) {
  return arith::ConstantIntOp::create(b, loc, v, 32);
}

Value mlir::moe::sigmoidF32(OpBuilder &b, Location loc, Value x) {
  Value one = constF32(b, loc, 1.0f);
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
  return arith::DivFOp::create(b, loc, one,
                               arith::AddFOp::create(b, loc, one, e));
}

Value mlir::moe::applyActivation(OpBuilder &b, Location loc, Activation act,
                                 Value x) {
  switch (act) {
  case Activation::relu:
    return arith::MaximumFOp::create(b, loc, x, constF32(b, loc, 0.0f));
  case Activation::gelu: {
    // 0.5 x (1 + erf(x / sqrt(2)))
    Value scaled =
        arith::MulFOp::create(b, loc, x, constF32(b, loc, float(M_SQRT1_2)));
    Value erf = math::ErfOp::create(b, loc, scaled);
    Value onePlus = arith::AddFOp::create(b, loc, constF32(b, loc, 1.0f), erf);
    Value half = arith::MulFOp::create(b, loc, x, constF32(b, loc, 0.5f));
    return arith::MulFOp::create(b, loc, half, onePlus);
  }
  case Activation::gelu_tanh: {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    Value x3 = arith::MulFOp::create(
        b, loc, x, arith::MulFOp::create(b, loc, x, x));
    Value inner = arith::AddFOp::create(
        b, loc, x, arith::MulFOp::create(b, loc, x3, constF32(b, loc, 0.044715f)));
    Value t = math::TanhOp::create(
        b, loc,
        arith::MulFOp::create(b, loc, inner,
                              constF32(b, loc, 0.7978845608028654f)));
    Value onePlus = arith::AddFOp::create(b, loc, constF32(b, loc, 1.0f), t);
    Value half = arith::MulFOp::create(b, loc, x, constF32(b, loc, 0.5f));
    return arith::MulFOp::create(b, loc, half, onePlus);
  }
  case Activation::silu:
    return arith::MulFOp::create(b, loc, x, sigmoidF32(b, loc, x));
  }
  llvm_unreachable("unknown activation");
}
