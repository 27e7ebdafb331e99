//===- DenseToLinalg.cpp - Embedding and normalisations to linalg ----------===//
//
// Part of moe-compiler.
//
// The dense transformer parts around the MoE layers, with the numerics of
// Hugging Face transformers: statistics in f32, one rounding to the element
// type (RMSNorm rounds the normalised value before the weight, as Llama's
// and Mixtral's modules do).
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Utils/TensorBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::moe;

namespace {
/// Sum over the last dimension of `f(x)` for x [T, d], in f32: [T].
Value rowSum(OpBuilder &b, Location loc, ValueRange inputs,
             ArrayRef<AffineMap> maps,
             function_ref<Value(OpBuilder &, Location, ValueRange)> term) {
  Value x = inputs.front();
  Value acc = filledTensor(b, loc, {tensor::getMixedSize(b, loc, x, 0)},
                           b.getF32Type(), 0.0);
  MLIRContext *ctx = b.getContext();
  AffineExpr t, d;
  bindDims(ctx, t, d);
  SmallVector<AffineMap> indexing(maps);
  indexing.push_back(AffineMap::get(2, 0, {t}, ctx));
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{acc.getType()}, inputs, ValueRange{acc}, indexing,
      {utils::IteratorType::parallel, utils::IteratorType::reduction},
      [&](OpBuilder &nb, Location l, ValueRange args) {
        Value v = term(nb, l, args.drop_back());
        linalg::YieldOp::create(nb, l,
                                ValueRange{arith::AddFOp::create(
                                    nb, l, args.back(), v)});
      });
  return generic.getResult(0);
}

struct Maps {
  AffineMap id, row, col;
  explicit Maps(MLIRContext *ctx) {
    AffineExpr t, d;
    bindDims(ctx, t, d);
    id = AffineMap::get(2, 0, {t, d}, ctx);
    row = AffineMap::get(2, 0, {t}, ctx);
    col = AffineMap::get(2, 0, {d}, ctx);
  }
};

struct RmsNormToLinalg : OpRewritePattern<RmsNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RmsNormOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Maps m(b.getContext());
    Value x = op.getInput();
    Type elt = cast<RankedTensorType>(x.getType()).getElementType();
    Value sumSq = rowSum(b, loc, {x}, {m.id},
                         [](OpBuilder &nb, Location l, ValueRange a) {
                           Value v = toF32(nb, l, a[0]);
                           return arith::MulFOp::create(nb, l, v, v)
                               .getResult();
                         });
    double d = double(cast<RankedTensorType>(x.getType()).getDimSize(1));
    float invD = float(1.0 / d), eps = float(op.getEpsilon().convertToDouble());
    Value init = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, x), elt);
    Value y = elementwise(
        b, loc, {x, sumSq, op.getWeight()}, {m.id, m.row, m.col}, init,
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value var = arith::MulFOp::create(nb, l, a[1], constF32(nb, l, invD));
          Value inv = math::RsqrtOp::create(
              nb, l, arith::AddFOp::create(nb, l, var, constF32(nb, l, eps)));
          Value n = arith::MulFOp::create(nb, l, toF32(nb, l, a[0]), inv);
          // Rounded to the element type before the weight, as in HF.
          Value rounded = toF32(nb, l, fromF32(nb, l, n, elt));
          Value v = arith::MulFOp::create(nb, l, toF32(nb, l, a[2]), rounded);
          return fromF32(nb, l, v, elt);
        });
    b.replaceOp(op, y);
    return success();
  }
};

struct LayerNormToLinalg : OpRewritePattern<LayerNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LayerNormOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Maps m(b.getContext());
    Value x = op.getInput();
    Type elt = cast<RankedTensorType>(x.getType()).getElementType();
    double d = double(cast<RankedTensorType>(x.getType()).getDimSize(1));
    float invD = float(1.0 / d), eps = float(op.getEpsilon().convertToDouble());
    Value sum = rowSum(b, loc, {x}, {m.id},
                       [](OpBuilder &nb, Location l, ValueRange a) {
                         return toF32(nb, l, a[0]);
                       });
    // Two passes (mean, then squared deviations): no cancellation.
    Value sumSq = rowSum(
        b, loc, {x, sum}, {m.id, m.row},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value mean = arith::MulFOp::create(nb, l, a[1], constF32(nb, l, invD));
          Value dev = arith::SubFOp::create(nb, l, toF32(nb, l, a[0]), mean);
          return arith::MulFOp::create(nb, l, dev, dev).getResult();
        });
    SmallVector<Value> inputs{x, sum, sumSq, op.getWeight()};
    SmallVector<AffineMap> maps{m.id, m.row, m.row, m.col};
    if (Value bias = op.getBias()) {
      inputs.push_back(bias);
      maps.push_back(m.col);
    }
    Value init = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, x), elt);
    Value y = elementwise(
        b, loc, inputs, maps, init,
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value invDc = constF32(nb, l, invD);
          Value mean = arith::MulFOp::create(nb, l, a[1], invDc);
          Value var = arith::MulFOp::create(nb, l, a[2], invDc);
          Value inv = math::RsqrtOp::create(
              nb, l, arith::AddFOp::create(nb, l, var, constF32(nb, l, eps)));
          Value n = arith::MulFOp::create(
              nb, l, arith::SubFOp::create(nb, l, toF32(nb, l, a[0]), mean),
              inv);
          Value v = arith::MulFOp::create(nb, l, n, toF32(nb, l, a[3]));
          if (a.size() > 4)
            v = arith::AddFOp::create(nb, l, v, toF32(nb, l, a[4]));
          return fromF32(nb, l, v, elt);
        });
    b.replaceOp(op, y);
    return success();
  }
};

struct EmbeddingToLinalg : OpRewritePattern<EmbeddingOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(EmbeddingOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Maps m(b.getContext());
    Value table = op.getTable();
    auto tableType = cast<RankedTensorType>(table.getType());
    Type elt = tableType.getElementType();
    SmallVector<OpFoldResult> sizes{tensor::getMixedSize(b, loc, op.getIds(), 0),
                                    tensor::getMixedSize(b, loc, table, 1)};
    Value init = emptyTensor(b, loc, sizes, elt);
    Value vocab = arith::IndexCastOp::create(
        b, loc, b.getI32Type(), tensor::DimOp::create(b, loc, table, 0));
    auto generic = linalg::GenericOp::create(
        b, loc, TypeRange{init.getType()}, ValueRange{op.getIds()},
        ValueRange{init}, ArrayRef<AffineMap>{m.row, m.id},
        ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                      utils::IteratorType::parallel},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value id = a[0];
          Value zero = constI32(nb, l, 0);
          Value inRange = arith::AndIOp::create(
              nb, l,
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::sge, id, zero),
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::slt, id,
                                    vocab));
          // Clamped for the load; the value is dropped when out of range.
          Value safe = arith::SelectOp::create(nb, l, inRange, id, zero);
          Value row = arith::IndexCastOp::create(nb, l, nb.getIndexType(), safe);
          Value col = linalg::IndexOp::create(nb, l, 1);
          Value v = tensor::ExtractOp::create(nb, l, table, ValueRange{row, col});
          Value none = arith::ConstantOp::create(nb, l, nb.getZeroAttr(elt));
          linalg::YieldOp::create(
              nb, l, ValueRange{arith::SelectOp::create(nb, l, inRange, v, none)});
        });
    b.replaceOp(op, generic.getResult(0));
    return success();
  }
};
} // namespace

void mlir::moe::populateDenseToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<RmsNormToLinalg, LayerNormToLinalg, EmbeddingToLinalg>(
      patterns.getContext());
}
