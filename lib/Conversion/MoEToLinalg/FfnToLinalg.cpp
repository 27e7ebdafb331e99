//===- FfnToLinalg.cpp - moe.experts / moe.mlp to linalg -------------------===//
//
// Part of moe-compiler.
//
// Both ops share one FFN body: f32-accumulating matmuls for the up (and gate)
// projections, one generic for the activation (and gate product) that rounds
// the hidden activations to the token type, and a down-projection matmul
// rounded back. moe.experts wraps it in a loop over experts whose row ranges
// come from the dispatch offsets; the weight slices are views, never copies.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Utils/TensorBuilders.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// `y = down(act(x up) [* (x gate)])` on x [n, d] with weights up/gate [d, f]
/// and down [f, d]; the result has x's element type. When `dest` (a zero
/// [n, d] tensor of x's type) is given, the result is written into it, so
/// that bufferization stores each expert's rows in place.
Value buildFfn(OpBuilder &b, Location loc, Value x, Value up, Value gate,
               Value down, Activation act, Value dest = Value()) {
  auto xType = cast<RankedTensorType>(x.getType());
  Type elt = xType.getElementType();
  Value h = matmulF32(b, loc, x, up);
  Value g = gate ? matmulF32(b, loc, x, gate) : Value();
  SmallVector<OpFoldResult> hiddenSizes = tensor::getMixedSizes(b, loc, h);
  AffineMap id = b.getMultiDimIdentityMap(2);
  SmallVector<Value> ins{h};
  SmallVector<AffineMap> maps{id};
  if (g) {
    ins.push_back(g);
    maps.push_back(id);
  }
  // Gated: act(x W_gate) * (x W_up); plain: act(x W_up).
  Value a = elementwise(b, loc, ins, maps,
                        emptyTensor(b, loc, hiddenSizes, elt),
                        [&](OpBuilder &nb, Location l, ValueRange v) {
                          Value r = g ? arith::MulFOp::create(
                                            nb, l,
                                            applyActivation(nb, l, act, v[1]),
                                            v[0])
                                            .getResult()
                                      : applyActivation(nb, l, act, v[0]);
                          return fromF32(nb, l, r, elt);
                        });
  if (elt.isF32() && dest)
    return linalg::MatmulOp::create(b, loc, TypeRange{dest.getType()},
                                    ValueRange{a, down}, ValueRange{dest})
        .getResult(0);
  Value y = matmulF32(b, loc, a, down);
  if (elt.isF32())
    return y;
  SmallVector<OpFoldResult> outSizes = tensor::getMixedSizes(b, loc, y);
  if (!dest)
    dest = emptyTensor(b, loc, outSizes, elt);
  return elementwise(b, loc, {y}, {id}, dest,
                     [&](OpBuilder &nb, Location l, ValueRange v) {
                       return fromF32(nb, l, v[0], elt);
                     });
}

struct MlpToLinalg : OpRewritePattern<MlpOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MlpOp op,
                                PatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, buildFfn(rewriter, op.getLoc(), op.getInput(),
                                    op.getWUp(), op.getWGate(), op.getWDown(),
                                    op.getActivation()));
    return success();
  }
};

/// Rank-reducing slice `w[e]` of stacked expert weights [E, a, b] -> [a, b].
Value expertSlice(OpBuilder &b, Location loc, Value w, Value e) {
  auto type = cast<RankedTensorType>(w.getType());
  SmallVector<OpFoldResult> offsets{e, b.getIndexAttr(0), b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes{b.getIndexAttr(1),
                                  tensor::getMixedSize(b, loc, w, 1),
                                  tensor::getMixedSize(b, loc, w, 2)};
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  auto sliceType = RankedTensorType::get(
      {type.getDimSize(1), type.getDimSize(2)}, type.getElementType());
  return tensor::ExtractSliceOp::create(b, loc, sliceType, w, offsets, sizes,
                                        strides);
}

struct ExpertsToLinalg : OpRewritePattern<ExpertsOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ExpertsOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    auto upType = cast<RankedTensorType>(op.getWUp().getType());
    if (upType.isDynamicDim(0))
      return rewriter.notifyMatchFailure(op, "needs a static expert count");
    Value x = op.getInput();
    auto xType = cast<RankedTensorType>(x.getType());
    SmallVector<OpFoldResult> outSizes = tensor::getMixedSizes(b, loc, x);
    // Rows past offsets[E] (dropped slots) stay zero.
    Value init =
        filledTensor(b, loc, outSizes, xType.getElementType(), 0.0);
    Value zero = constIndex(b, loc, 0);
    Value one = constIndex(b, loc, 1);
    Value numExperts = constIndex(b, loc, upType.getDimSize(0));
    OpFoldResult hidden = tensor::getMixedSize(b, loc, x, 1);
    Activation act = op.getActivation();
    Value offsets = op.getOffsets();
    Value up = op.getWUp(), gate = op.getWGate(), down = op.getWDown();

    auto loop = scf::ForOp::create(
        b, loc, zero, numExperts, one, ValueRange{init},
        [&](OpBuilder &lb, Location l, Value e, ValueRange iter) {
          Value ePlus1 = arith::AddIOp::create(lb, l, e, one);
          auto rowAt = [&](Value i) -> Value {
            Value v = tensor::ExtractOp::create(lb, l, offsets, i);
            return arith::IndexCastOp::create(lb, l, lb.getIndexType(), v);
          };
          Value begin = rowAt(e), end = rowAt(ePlus1);
          Value rows = arith::SubIOp::create(lb, l, end, begin);
          SmallVector<OpFoldResult> offs{begin, lb.getIndexAttr(0)};
          SmallVector<OpFoldResult> sizes{rows, hidden};
          SmallVector<OpFoldResult> strides(2, lb.getIndexAttr(1));
          Value xe = tensor::ExtractSliceOp::create(lb, l, x, offs, sizes,
                                                    strides);
          Value dest = tensor::ExtractSliceOp::create(lb, l, iter[0], offs,
                                                      sizes, strides);
          // One statement each: the IR order must not depend on the C++
          // compiler's order of evaluating arguments.
          Value upE = expertSlice(lb, l, up, e);
          Value gateE = gate ? expertSlice(lb, l, gate, e) : Value();
          Value downE = expertSlice(lb, l, down, e);
          Value ye = buildFfn(lb, l, xe, upE, gateE, downE, act, dest);
          Value next = tensor::InsertSliceOp::create(lb, l, ye, iter[0], offs,
                                                     sizes, strides);
          scf::YieldOp::create(lb, l, next);
        });
    rewriter.replaceOp(op, loop.getResult(0));
    return success();
  }
};

} // namespace

void mlir::moe::populateFfnToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<MlpToLinalg, ExpertsToLinalg>(patterns.getContext());
}
