//===- DecomposeLayer.cpp - moe.layer into MoE primitives ------------------===//
//
// Part of moe-compiler.
//
// moe.layer is the form importers produce and the planner reasons about; the
// backends lower the primitives. The decomposition routes the shared-expert
// and PR-MoE branches into moe.combine's fused residual, and folds the PR-MoE
// mixing coefficient of the MoE branch into the routing weights, so that the
// [T, d] output is written once.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Utils/TensorBuilders.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEDECOMPOSELAYER
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {
/// [rows, cols] sizes where `rows` may be dynamic.
SmallVector<OpFoldResult> sizes2d(OpBuilder &b, OpFoldResult rows,
                                  int64_t cols) {
  return {rows, b.getIndexAttr(cols)};
}

/// sigmoid(a - b) = 1 / (1 + exp(b - a)), in f32; with a 2-way softmax
/// [a, b], this is the weight of a.
Value sigmoidOfDifference(OpBuilder &b, Location loc, Value a, Value bb) {
  return sigmoidF32(b, loc, arith::SubFOp::create(b, loc, a, bb));
}

struct DecomposeLayerPattern : OpRewritePattern<LayerOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LayerOp op,
                                PatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, decomposeLayer(rewriter, op));
    return success();
  }
};

struct MoEDecomposeLayerPass
    : mlir::moe::impl::MoEDecomposeLayerBase<MoEDecomposeLayerPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDecomposeLayerPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};
} // namespace

Value mlir::moe::decomposeLayer(OpBuilder &b, LayerOp op,
                                const DecomposeLayerHooks &hooks) {
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(op);
  Location loc = op.getLoc();
  Value x = op.getInput();
  auto xType = cast<RankedTensorType>(x.getType());
  Type elt = xType.getElementType();
  int64_t tokens = xType.getDimSize(0), hidden = xType.getDimSize(1);
  int64_t k = op.getTopKAttr().getInt();
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  MLIRContext *ctx = b.getContext();

  // Routing.
  auto routeType = [&](Type e) {
    return RankedTensorType::get({tokens, k}, e);
  };
  auto router = RouterOp::create(
      b, loc, routeType(i32), routeType(f32), x, op.getRouterWeight(),
      op.getRouterBias(), op.getTopKAttr(), op.getScoreFuncAttr(),
      op.getScoreAfterTopkAttr(), op.getRenormalizeAttr(), op.getScalingAttr(),
      op.getCapacityFactorAttr(), op.getMinCapacityAttr(),
      op.getDropPolicyAttr(), op.getNGroupAttr(), op.getTopkGroupAttr(),
      op.getGroupScoreAttr());

  Value expertIds = router.getExpertIds();
  // The experts dispatch sorts rows for: the router's E, or the local ones
  // with expert_offset.
  int64_t localExperts =
      op.getExpertOffset() ? op.getNumLocalExperts() : op.getNumExperts();
  if (Value offset = op.getExpertOffset()) {
    // Only the experts [offset, offset + localExperts) are here: their ids
    // become local, the others -1 (dispatched nowhere, combined as zero).
    auto idsType = cast<RankedTensorType>(expertIds.getType());
    Type idType = idsType.getElementType();
    Value init = emptyTensor(b, loc, sizes2d(b, tensor::getMixedSize(b, loc, x, 0), k),
                             idType);
    AffineMap id2 = b.getMultiDimIdentityMap(2);
    expertIds = elementwise(
        b, loc, {expertIds}, {id2}, init,
        [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
          Value first = arith::IndexCastOp::create(nb, l, idType, offset);
          Value local = arith::SubIOp::create(nb, l, a[0], first);
          Value zero = arith::ConstantOp::create(nb, l, nb.getIntegerAttr(idType, 0));
          Value count = arith::ConstantOp::create(
              nb, l, nb.getIntegerAttr(idType, localExperts));
          Value inRange = arith::AndIOp::create(
              nb, l,
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::sge, local, zero),
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::slt, local, count));
          Value none = arith::ConstantOp::create(nb, l, nb.getIntegerAttr(idType, -1));
          return arith::SelectOp::create(nb, l, inRange, local, none);
        });
  }
  if (hooks.routes)
    expertIds = hooks.routes(b, loc, expertIds);

  // Dispatch and the routed experts.
  int64_t slots = ShapedType::isDynamic(tokens) ? ShapedType::kDynamic
                                                : tokens * k;
  auto permutedType = RankedTensorType::get({slots, hidden}, elt);
  auto dispatch = DispatchOp::create(
      b, loc, permutedType, RankedTensorType::get({localExperts + 1}, i32),
      routeType(i32), x, expertIds, b.getI64IntegerAttr(localExperts));
  Value expertOut =
      hooks.experts
          ? hooks.experts(b, loc, dispatch.getPermuted(), dispatch.getOffsets(),
                          op)
          : ExpertsOp::create(b, loc, permutedType, dispatch.getPermuted(),
                              dispatch.getOffsets(), op.getWUp(), op.getWGate(),
                              op.getWDown(), op.getActivationAttr())
                .getResult();

  Value weights = router.getWeights();
  Value residual;
  OpFoldResult rows = tensor::getMixedSize(b, loc, x, 0);
  AffineExpr d0, d1;
  bindDims(ctx, d0, d1);
  AffineMap identity = AffineMap::get(2, 0, {d0, d1}, ctx);
  AffineMap col0 = AffineMap::get(2, 0, {d0, getAffineConstantExpr(0, ctx)},
                                  ctx);
  AffineMap col1 = AffineMap::get(2, 0, {d0, getAffineConstantExpr(1, ctx)},
                                  ctx);

  // PR-MoE residual MLP, mixed as c0 * moe + c1 * mlp with c = softmax(x Wc).
  if (op.getMlpUp()) {
    Value mlp = MlpOp::create(b, loc, xType, x, op.getMlpUp(), Value(),
                              op.getMlpDown(), op.getActivationAttr());
    if (Value coef = op.getMlpCoef()) {
      Value logits = matmulF32(b, loc, x, coef);
      if (Value bias = op.getMlpCoefBias())
        logits = elementwise(
            b, loc, {logits, bias},
            {identity, AffineMap::get(2, 0, {d1}, ctx)},
            emptyTensor(b, loc, sizes2d(b, rows, 2), f32),
            [](OpBuilder &nb, Location l, ValueRange a) {
              return arith::AddFOp::create(nb, l, a[0], toF32(nb, l, a[1]))
                  .getResult();
            });
      // c0 scales the routing weights: the MoE branch is linear in them.
      weights = elementwise(
          b, loc, {weights, logits, logits}, {identity, col0, col1},
          emptyTensor(b, loc, sizes2d(b, rows, k), f32),
          [](OpBuilder &nb, Location l, ValueRange a) {
            return arith::MulFOp::create(nb, l, a[0],
                                         sigmoidOfDifference(nb, l, a[1], a[2]))
                .getResult();
          });
      mlp = elementwise(
          b, loc, {mlp, logits, logits}, {identity, col0, col1},
          emptyTensor(b, loc, sizes2d(b, rows, hidden), elt),
          [elt](OpBuilder &nb, Location l, ValueRange a) {
            Value c1 = sigmoidOfDifference(nb, l, a[2], a[1]);
            Value v = arith::MulFOp::create(nb, l, toF32(nb, l, a[0]), c1);
            return fromF32(nb, l, v, elt);
          });
    }
    residual = mlp;
  }

  // Shared experts, optionally scaled by sigmoid(x Ws) (Qwen2-MoE).
  if (op.getSharedUp()) {
    Value shared =
        MlpOp::create(b, loc, xType, x, op.getSharedUp(), op.getSharedGate(),
                      op.getSharedDown(), op.getActivationAttr());
    if (Value coef = op.getSharedCoef()) {
      Value gate = matmulF32(b, loc, x, coef);
      shared = elementwise(
          b, loc, {shared, gate}, {identity, col0},
          emptyTensor(b, loc, sizes2d(b, rows, hidden), elt),
          [elt](OpBuilder &nb, Location l, ValueRange a) {
            Value s = sigmoidF32(nb, l, a[1]);
            Value v = arith::MulFOp::create(nb, l, toF32(nb, l, a[0]), s);
            return fromF32(nb, l, v, elt);
          });
    }
    if (residual) {
      residual = elementwise(
          b, loc, {residual, shared}, {identity, identity},
          emptyTensor(b, loc, sizes2d(b, rows, hidden), elt),
          [elt](OpBuilder &nb, Location l, ValueRange a) {
            Value lhs = toF32(nb, l, a[0]);
            Value rhs = toF32(nb, l, a[1]);
            Value v = arith::AddFOp::create(nb, l, lhs, rhs);
            return fromF32(nb, l, v, elt);
          });
    } else {
      residual = shared;
    }
  }

  return CombineOp::create(b, loc, xType, expertOut, dispatch.getMapping(),
                           weights, residual)
      .getResult();
}

void mlir::moe::populateDecomposeLayerPatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeLayerPattern>(patterns.getContext());
}
