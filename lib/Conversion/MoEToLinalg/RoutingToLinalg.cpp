//===- RoutingToLinalg.cpp - moe.router/dispatch/combine to linalg ---------===//
//
// Part of moe-compiler.
//
// Data-parallel parts (logits, scores, gathers) become linalg ops on whole
// tensors; the inherently sequential parts (top-k selection per token, the
// per-expert slot cursors of the dispatch, capacity accounting) become scf
// loops over scalars. Every top-k tie is broken towards the lower index, so
// that the result is deterministic and matches the reference.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Utils/TensorBuilders.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;

namespace {


Value extract(OpBuilder &b, Location loc, Value t, ValueRange idx) {
  return tensor::ExtractOp::create(b, loc, t, idx);
}
Value insert(OpBuilder &b, Location loc, Value v, Value t, ValueRange idx) {
  return tensor::InsertOp::create(b, loc, v, t, idx);
}
Value toIndex(OpBuilder &b, Location loc, Value i32) {
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), i32);
}
Value toI32(OpBuilder &b, Location loc, Value idx) {
  return arith::IndexCastOp::create(b, loc, b.getI32Type(), idx);
}
Value cmpF(OpBuilder &b, Location loc, arith::CmpFPredicate p, Value x,
           Value y) {
  return arith::CmpFOp::create(b, loc, p, x, y);
}
Value cmpI(OpBuilder &b, Location loc, arith::CmpIPredicate p, Value x,
           Value y) {
  return arith::CmpIOp::create(b, loc, p, x, y);
}
Value select(OpBuilder &b, Location loc, Value c, Value x, Value y) {
  return arith::SelectOp::create(b, loc, c, x, y);
}
Value andI(OpBuilder &b, Location loc, Value x, Value y) {
  return arith::AndIOp::create(b, loc, x, y);
}
Value orI(OpBuilder &b, Location loc, Value x, Value y) {
  return arith::OrIOp::create(b, loc, x, y);
}

/// `v` with the type of `like` (a tensor.cast only where they differ, e.g. a
/// dynamic size that the op's type has static).
Value castTo(OpBuilder &b, Location loc, Value v, Value like) {
  if (v.getType() == like.getType())
    return v;
  return tensor::CastOp::create(b, loc, like.getType(), v);
}

/// A `for i in [0, n)` loop carrying `iters`; `body` returns the next values.
ValueRange forLoop(OpBuilder &b, Location loc, Value n, ValueRange iters,
                   function_ref<SmallVector<Value>(OpBuilder &, Location,
                                                   Value, ValueRange)>
                       body) {
  auto loop = scf::ForOp::create(
      b, loc, constIndex(b, loc, 0), n, constIndex(b, loc, 1), iters,
      [&](OpBuilder &lb, Location l, Value i, ValueRange it) {
        scf::YieldOp::create(lb, l, body(lb, l, i, it));
      });
  return loop.getResults();
}

/// Reduces rows of [R, C] operands into [R] f32: `inputs` are indexed by
/// `maps` over (row, col); `combine(acc, inputs...)` folds one column in.
Value reduceRows(OpBuilder &b, Location loc, ValueRange inputs,
                 ArrayRef<AffineMap> maps, float init,
                 function_ref<Value(OpBuilder &, Location, Value, ValueRange)>
                     combine) {
  MLIRContext *ctx = b.getContext();
  Value acc =
      filledTensor(b, loc, {tensor::getMixedSize(b, loc, inputs[0], 0)},
                   b.getF32Type(), init);
  SmallVector<AffineMap> indexing(maps);
  indexing.push_back(AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx));
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{acc.getType()}, inputs, ValueRange{acc}, indexing,
      {utils::IteratorType::parallel, utils::IteratorType::reduction},
      [&](OpBuilder &nb, Location l, ValueRange args) {
        linalg::YieldOp::create(
            nb, l, combine(nb, l, args.back(), args.drop_back()));
      });
  return generic.getResult(0);
}

/// Row-wise softmax of x [R, C] f32, with the max subtracted for stability.
Value softmaxRows(OpBuilder &b, Location loc, Value x) {
  MLIRContext *ctx = b.getContext();
  AffineMap id = b.getMultiDimIdentityMap(2);
  AffineMap row = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
  Value mx = reduceRows(
      b, loc, {x}, {id}, -std::numeric_limits<float>::infinity(),
      [](OpBuilder &nb, Location l, Value acc, ValueRange v) -> Value {
        return arith::MaximumFOp::create(nb, l, acc, v[0]);
      });
  Value sum = reduceRows(
      b, loc, {x, mx}, {id, row}, 0.0f,
      [](OpBuilder &nb, Location l, Value acc, ValueRange v) -> Value {
        Value e = math::ExpOp::create(nb, l,
                                      arith::SubFOp::create(nb, l, v[0], v[1]));
        return arith::AddFOp::create(nb, l, acc, e);
      });
  return elementwise(
      b, loc, {x, mx, sum}, {id, row, row},
      emptyTensor(b, loc, tensor::getMixedSizes(b, loc, x), b.getF32Type()),
      [](OpBuilder &nb, Location l, ValueRange v) -> Value {
        Value e = math::ExpOp::create(nb, l,
                                      arith::SubFOp::create(nb, l, v[0], v[1]));
        return arith::DivFOp::create(nb, l, e, v[2]);
      });
}

/// Divides each row of x [R, C] f32 by its sum.
Value normalizeRows(OpBuilder &b, Location loc, Value x) {
  MLIRContext *ctx = b.getContext();
  AffineMap id = b.getMultiDimIdentityMap(2);
  AffineMap row = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
  Value sum = reduceRows(
      b, loc, {x}, {id}, 0.0f,
      [](OpBuilder &nb, Location l, Value acc, ValueRange v) -> Value {
        return arith::AddFOp::create(nb, l, acc, v[0]);
      });
  return elementwise(
      b, loc, {x, sum}, {id, row},
      emptyTensor(b, loc, tensor::getMixedSizes(b, loc, x), b.getF32Type()),
      [](OpBuilder &nb, Location l, ValueRange v) -> Value {
        return arith::DivFOp::create(nb, l, v[0], v[1]);
      });
}

/// `(s, i)` comes before `(ps, pi)` in the selection order: higher score
/// first, lower index on ties.
Value before(OpBuilder &b, Location loc, Value s, Value i, Value ps,
             Value pi) {
  Value higher = cmpF(b, loc, arith::CmpFPredicate::OGT, s, ps);
  Value equal = cmpF(b, loc, arith::CmpFPredicate::OEQ, s, ps);
  Value lower = cmpI(b, loc, arith::CmpIPredicate::slt, i, pi);
  return orI(b, loc, higher, andI(b, loc, equal, lower));
}

/// Scans `n` candidates for the first one in selection order that comes
/// after `(prevS, prevI)` and passes `allowed`; returns (score, index), with
/// index -1 when there is none. `scoreAt(i)` reads candidate i's score.
std::pair<Value, Value>
nextBest(OpBuilder &b, Location loc, Value n, Value prevS, Value prevI,
         function_ref<Value(OpBuilder &, Location, Value)> scoreAt,
         function_ref<Value(OpBuilder &, Location, Value)> allowed) {
  Value negInf =
      constF32(b, loc, -std::numeric_limits<float>::infinity());
  Value none = constIndex(b, loc, -1);
  ValueRange best = forLoop(
      b, loc, n, {negInf, none},
      [&](OpBuilder &lb, Location l, Value i,
          ValueRange it) -> SmallVector<Value> {
        Value s = scoreAt(lb, l, i);
        Value after = before(lb, l, prevS, prevI, s, i);
        Value first = cmpI(lb, l, arith::CmpIPredicate::slt, it[1],
                           constIndex(lb, l, 0));
        // Candidates come in index order, so a tie never beats the best.
        Value better =
            orI(lb, l, first, cmpF(lb, l, arith::CmpFPredicate::OGT, s, it[0]));
        Value take = andI(lb, l, after, better);
        // A NaN score is never taken: every comparison with it is false.
        take = andI(lb, l, take,
                    cmpF(lb, l, arith::CmpFPredicate::ORD, s, s));
        if (allowed)
          take = andI(lb, l, take, allowed(lb, l, i));
        return {select(lb, l, take, s, it[0]), select(lb, l, take, i, it[1])};
      });
  return {best[0], best[1]};
}

struct RouterToLinalg : OpRewritePattern<RouterOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouterOp op,
                                PatternRewriter &rewriter) const override {
    OpBuilder &b = rewriter;
    Location loc = op.getLoc();
    MLIRContext *ctx = b.getContext();
    Type f32 = b.getF32Type(), i32 = b.getI32Type();
    int64_t numExperts = op.getNumExperts();
    int64_t k = op.getTopKAttr().getInt();
    bool softmax = op.getScoreFunc() == ScoreFunc::softmax;
    bool afterTopk = op.getScoreAfterTopk();
    AffineMap id = b.getMultiDimIdentityMap(2);
    AffineMap col = AffineMap::get(2, 0, {getAffineDimExpr(1, ctx)}, ctx);
    Value x = op.getInput();
    OpFoldResult tokens = tensor::getMixedSize(b, loc, x, 0);
    Value tokenCount = getValueOrCreateConstantIndexOp(b, loc, tokens);
    SmallVector<OpFoldResult> routeSizes{tokens, b.getIndexAttr(k)};
    SmallVector<OpFoldResult> expertSizes{tokens,
                                          b.getIndexAttr(numExperts)};

    // Logits [T, E] and scores in f32.
    Value logits =
        op.getWeight()
            ? matmulF32(b, loc, x, op.getWeight())
            : elementwise(b, loc, {x}, {id}, emptyTensor(b, loc, expertSizes, f32),
                          [](OpBuilder &nb, Location l, ValueRange v) {
                            return toF32(nb, l, v[0]);
                          });
    Value scores = logits;
    if (!softmax)
      scores = elementwise(b, loc, {logits}, {id},
                           emptyTensor(b, loc, expertSizes, f32),
                           [](OpBuilder &nb, Location l, ValueRange v) {
                             return sigmoidF32(nb, l, v[0]);
                           });
    else if (!afterTopk)
      scores = softmaxRows(b, loc, logits);
    // The selection adds the bias; the weights do not.
    Value selection = scores;
    if (Value bias = op.getBias())
      selection = elementwise(b, loc, {scores, bias}, {id, col},
                              emptyTensor(b, loc, expertSizes, f32),
                              [](OpBuilder &nb, Location l, ValueRange v) {
                                return arith::AddFOp::create(
                                           nb, l, v[0], toF32(nb, l, v[1]))
                                    .getResult();
                              });

    // Group scores [T, G]: the best (or best two) selection scores per group.
    Value groupScores;
    int64_t perGroup = 0, topkGroup = 0, numGroups = 0;
    if (op.getNGroupAttr()) {
      numGroups = op.getNGroupAttr().getInt();
      topkGroup = op.getTopkGroupAttr().getInt();
      perGroup = numExperts / numGroups;
      bool top2 = op.getGroupScore() == GroupScore::top2_sum;
      groupScores = elementwise(
          b, loc, {}, {},
          emptyTensor(b, loc, {tokens, b.getIndexAttr(numGroups)}, f32),
          [&](OpBuilder &nb, Location l, ValueRange) -> Value {
            Value t = linalg::IndexOp::create(nb, l, 0);
            Value g = linalg::IndexOp::create(nb, l, 1);
            Value base = arith::MulIOp::create(nb, l, g,
                                               constIndex(nb, l, perGroup));
            Value negInf = constF32(nb, l, -std::numeric_limits<float>::infinity());
            ValueRange best = forLoop(
                nb, l, constIndex(nb, l, perGroup), {negInf, negInf},
                [&](OpBuilder &lb, Location ll, Value i,
                    ValueRange it) -> SmallVector<Value> {
                  Value e = arith::AddIOp::create(lb, ll, base, i);
                  Value s = extract(lb, ll, selection, {t, e});
                  Value gt1 = cmpF(lb, ll, arith::CmpFPredicate::OGT, s, it[0]);
                  Value gt2 = cmpF(lb, ll, arith::CmpFPredicate::OGT, s, it[1]);
                  Value b1 = select(lb, ll, gt1, s, it[0]);
                  Value second = select(lb, ll, gt2, s, it[1]);
                  Value b2 = select(lb, ll, gt1, it[0], second);
                  return {b1, b2};
                });
            return top2 ? arith::AddFOp::create(nb, l, best[0], best[1])
                              .getResult()
                        : best[0];
          });
    }

    // Per token: the top-k experts in selection order.
    Value idsInit = emptyTensor(b, loc, routeSizes, i32);
    Value wtsInit = emptyTensor(b, loc, routeSizes, f32);
    Value weightSource = softmax && afterTopk ? logits : scores;
    ValueRange routed = forLoop(
        b, loc, tokenCount, {idsInit, wtsInit},
        [&](OpBuilder &tb, Location l, Value t,
            ValueRange it) -> SmallVector<Value> {
          Value posInf = constF32(tb, l, std::numeric_limits<float>::infinity());
          Value none = constIndex(tb, l, -1);
          // Group limit: the topk_group-th best group is the threshold.
          Value thrS, thrI;
          if (groupScores) {
            ValueRange thr = forLoop(
                tb, l, constIndex(tb, l, topkGroup), {posInf, none},
                [&](OpBuilder &gb, Location gl, Value,
                    ValueRange prev) -> SmallVector<Value> {
                  auto [s, i] = nextBest(
                      gb, gl, constIndex(gb, gl, numGroups), prev[0], prev[1],
                      [&](OpBuilder &sb, Location sl, Value g) {
                        return extract(sb, sl, groupScores, {t, g});
                      },
                      nullptr);
                  return {s, i};
                });
            thrS = thr[0];
            thrI = thr[1];
          }
          auto allowed = [&](OpBuilder &ab, Location al, Value e) -> Value {
            Value g = arith::DivUIOp::create(ab, al, e,
                                             constIndex(ab, al, perGroup));
            Value s = extract(ab, al, groupScores, {t, g});
            Value above = cmpF(ab, al, arith::CmpFPredicate::OGT, s, thrS);
            Value equal = cmpF(ab, al, arith::CmpFPredicate::OEQ, s, thrS);
            Value notAfter = cmpI(ab, al, arith::CmpIPredicate::sle, g, thrI);
            return orI(ab, al, above, andI(ab, al, equal, notAfter));
          };
          ValueRange picked = forLoop(
              tb, l, constIndex(tb, l, k), {it[0], it[1], posInf, none},
              [&](OpBuilder &jb, Location jl, Value j,
                  ValueRange st) -> SmallVector<Value> {
                auto [s, e] = nextBest(
                    jb, jl, constIndex(jb, jl, numExperts), st[2], st[3],
                    [&](OpBuilder &sb, Location sl, Value i) {
                      return extract(sb, sl, selection, {t, i});
                    },
                    groupScores ? function_ref<Value(OpBuilder &, Location,
                                                     Value)>(allowed)
                                : nullptr);
                Value valid = cmpI(jb, jl, arith::CmpIPredicate::sge, e,
                                   constIndex(jb, jl, 0));
                Value safe = select(jb, jl, valid, e, constIndex(jb, jl, 0));
                Value w = select(jb, jl, valid,
                                 extract(jb, jl, weightSource, {t, safe}),
                                 constF32(jb, jl, 0.0f));
                Value ids = insert(jb, jl, toI32(jb, jl, e), st[0], {t, j});
                Value wts = insert(jb, jl, w, st[1], {t, j});
                return {ids, wts, s, e};
              });
          return {picked[0], picked[1]};
        });
    Value ids = routed[0], wts = routed[1];

    if (softmax && afterTopk)
      wts = softmaxRows(b, loc, wts);
    if (op.getRenormalize())
      wts = normalizeRows(b, loc, wts);
    if (double scaling = op.getScaling().convertToDouble(); scaling != 1.0)
      wts = elementwise(b, loc, {wts}, {id},
                        emptyTensor(b, loc, routeSizes, f32),
                        [&](OpBuilder &nb, Location l, ValueRange v) {
                          return arith::MulFOp::create(
                                     nb, l, v[0], constF32(nb, l, scaling))
                              .getResult();
                        });
    if (op.getCapacityFactor())
      std::tie(ids, wts) = applyCapacity(b, loc, op, tokenCount, ids, wts);
    rewriter.replaceOp(op, {ids, wts});
    return success();
  }

  /// Drops the assignments past each expert's capacity
  /// `max(min_capacity, ceil(capacity_factor * T * k / E))`, computed as
  /// routingCapacity does for a static T (the GPU layer's plan and the
  /// canonicalization call it).
  static std::pair<Value, Value> applyCapacity(OpBuilder &b, Location loc,
                                               RouterOp op, Value tokens,
                                               Value ids, Value wts) {
    int64_t k = op.getTopKAttr().getInt();
    int64_t numExperts = op.getNumExperts();
    Type f64 = b.getF64Type(), i64 = b.getI64Type();
    Value tF = arith::SIToFPOp::create(
        b, loc, f64, arith::IndexCastOp::create(b, loc, i64, tokens));
    double factor =
        op.getCapacityFactor()->convertToDouble() * double(k) / double(numExperts);
    Value cap = math::CeilOp::create(
        b, loc,
        arith::MulFOp::create(
            b, loc, tF,
            arith::ConstantOp::create(b, loc, b.getF64FloatAttr(factor))));
    Value capI = arith::FPToSIOp::create(b, loc, i64, cap);
    capI = arith::MaxSIOp::create(
        b, loc, capI,
        arith::ConstantIntOp::create(b, loc, op.getMinCapacityAttr().getInt(),
                                     64));
    Value capacity = arith::TruncIOp::create(b, loc, b.getI32Type(), capI);
    Value kIdx = constIndex(b, loc, k);
    Value minus1 = constI32(b, loc, -1);
    Value zeroF = constF32(b, loc, 0.0f);
    Value zeroI = constI32(b, loc, 0);
    Value oneI = constI32(b, loc, 1);

    if (op.getDropPolicy() == DropPolicy::position) {
      // Every token's first choice (in token order) before any second choice.
      Value counts =
          filledTensor(b, loc, {b.getIndexAttr(numExperts)}, b.getI32Type(), 0);
      ValueRange r = forLoop(
          b, loc, kIdx, {ids, wts, counts},
          [&](OpBuilder &jb, Location jl, Value j,
              ValueRange jt) -> SmallVector<Value> {
            ValueRange inner = forLoop(
                jb, jl, tokens, jt,
                [&](OpBuilder &tb, Location l, Value t,
                    ValueRange it) -> SmallVector<Value> {
                  Value e = extract(tb, l, it[0], {t, j});
                  Value valid = cmpI(tb, l, arith::CmpIPredicate::sge, e, zeroI);
                  Value ei = toIndex(tb, l, select(tb, l, valid, e, zeroI));
                  Value c = extract(tb, l, it[2], {ei});
                  Value keep = cmpI(tb, l, arith::CmpIPredicate::slt, c, capacity);
                  Value drop = andI(tb, l, valid,
                                    arith::XOrIOp::create(
                                        tb, l, keep,
                                        arith::ConstantIntOp::create(tb, l, 1, 1)));
                  Value grow = andI(tb, l, valid, keep);
                  Value newC = select(tb, l, grow,
                                      arith::AddIOp::create(tb, l, c, oneI), c);
                  return {insert(tb, l, select(tb, l, drop, minus1, e), it[0],
                                 {t, j}),
                          insert(tb, l,
                                 select(tb, l, drop, zeroF,
                                        extract(tb, l, it[1], {t, j})),
                                 it[1], {t, j}),
                          insert(tb, l, newC, it[2], {ei})};
                });
            return {inner[0], inner[1], inner[2]};
          });
      return {r[0], r[1]};
    }

    // Score policy: keep an assignment when fewer than `capacity` assignments
    // to the same expert have a higher weight (ties: earlier assignment).
    // Quadratic in T*k; capacity drops are a training-time feature kept for
    // fidelity, inference is normally dropless.
    Value total = arith::MulIOp::create(b, loc, tokens, kIdx);
    ValueRange r = forLoop(
        b, loc, total, {ids, wts},
        [&](OpBuilder &ab, Location l, Value a,
            ValueRange it) -> SmallVector<Value> {
          Value t = arith::DivUIOp::create(ab, l, a, kIdx);
          Value j = arith::RemUIOp::create(ab, l, a, kIdx);
          Value e = extract(ab, l, ids, {t, j});
          Value w = extract(ab, l, wts, {t, j});
          ValueRange rank = forLoop(
              ab, l, total, {zeroI},
              [&](OpBuilder &rb, Location rl, Value a2,
                  ValueRange rt) -> SmallVector<Value> {
                Value t2 = arith::DivUIOp::create(rb, rl, a2, kIdx);
                Value j2 = arith::RemUIOp::create(rb, rl, a2, kIdx);
                Value same = cmpI(rb, rl, arith::CmpIPredicate::eq,
                                  extract(rb, rl, ids, {t2, j2}), e);
                Value ahead = before(rb, rl, extract(rb, rl, wts, {t2, j2}),
                                     a2, w, a);
                Value inc = andI(rb, rl, same, ahead);
                return {select(rb, rl, inc,
                               arith::AddIOp::create(rb, rl, rt[0], oneI),
                               rt[0])};
              });
          Value valid = cmpI(ab, l, arith::CmpIPredicate::sge, e, zeroI);
          Value drop = andI(ab, l, valid,
                            cmpI(ab, l, arith::CmpIPredicate::sge, rank[0],
                                 capacity));
          return {insert(ab, l, select(ab, l, drop, minus1, e), it[0], {t, j}),
                  insert(ab, l, select(ab, l, drop, zeroF, w), it[1], {t, j})};
        });
    return {r[0], r[1]};
  }
};

struct DispatchToLinalg : OpRewritePattern<DispatchOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DispatchOp op,
                                PatternRewriter &rewriter) const override {
    OpBuilder &b = rewriter;
    Location loc = op.getLoc();
    Type i32 = b.getI32Type();
    int64_t numExperts = op.getNumExperts();
    Value x = op.getInput(), ids = op.getExpertIds();
    auto xType = cast<RankedTensorType>(x.getType());
    Type elt = xType.getElementType();
    // Static sizes stay static, so that the buffers are statically sized.
    auto idsType = cast<RankedTensorType>(ids.getType());
    Value tokens = getValueOrCreateConstantIndexOp(
        b, loc, tensor::getMixedSize(b, loc, ids, 0));
    Value k = getValueOrCreateConstantIndexOp(
        b, loc, tensor::getMixedSize(b, loc, ids, 1));
    OpFoldResult slots, slotsPlus1;
    if (idsType.hasStaticShape()) {
      int64_t n = idsType.getDimSize(0) * idsType.getDimSize(1);
      slots = b.getIndexAttr(n);
      slotsPlus1 = b.getIndexAttr(n + 1);
    } else {
      Value n = arith::MulIOp::create(b, loc, tokens, k);
      slots = n;
      slotsPlus1 = arith::AddIOp::create(b, loc, n, constIndex(b, loc, 1))
                       .getResult();
    }
    Value slotsValue = getValueOrCreateConstantIndexOp(b, loc, slots);
    Value zeroI = constI32(b, loc, 0), oneI = constI32(b, loc, 1);
    Value numE = constI32(b, loc, static_cast<int32_t>(numExperts));

    // The expert of assignment (t, j) and whether it is in [0, E).
    auto expertOf = [&](OpBuilder &lb, Location l, Value t, Value j) {
      Value e = extract(lb, l, ids, {t, j});
      Value nonNegative = cmpI(lb, l, arith::CmpIPredicate::sge, e, zeroI);
      Value inRange = cmpI(lb, l, arith::CmpIPredicate::slt, e, numE);
      Value valid = andI(lb, l, nonNegative, inRange);
      Value safe = toIndex(lb, l, select(lb, l, valid, e, zeroI));
      return std::make_tuple(valid, safe);
    };
    // for t, for j: body(t, j, iters) -> iters.
    auto forEachAssignment =
        [&](ValueRange init,
            function_ref<SmallVector<Value>(OpBuilder &, Location, Value, Value,
                                            ValueRange)>
                body) {
          return forLoop(b, loc, tokens, init,
                         [&](OpBuilder &tb, Location l, Value t,
                             ValueRange tt) -> SmallVector<Value> {
                           ValueRange r = forLoop(
                               tb, l, k, tt,
                               [&](OpBuilder &jb, Location jl, Value j,
                                   ValueRange jt) -> SmallVector<Value> {
                                 return body(jb, jl, t, j, jt);
                               });
                           return SmallVector<Value>(r);
                         });
        };

    // Counts per expert, then their exclusive prefix sum.
    Value counts0 =
        filledTensor(b, loc, {b.getIndexAttr(numExperts)}, i32, 0);
    Value counts = forEachAssignment(
        {counts0},
        [&](OpBuilder &lb, Location l, Value t, Value j,
            ValueRange it) -> SmallVector<Value> {
          auto [valid, e] = expertOf(lb, l, t, j);
          Value c = extract(lb, l, it[0], {e});
          Value next =
              select(lb, l, valid, arith::AddIOp::create(lb, l, c, oneI), c);
          return {insert(lb, l, next, it[0], {e})};
        })[0];
    // The cursors (next free slot per expert) start at the offsets; they are
    // built beside them rather than sliced from them, which would copy.
    Value offsets0 = insert(
        b, loc, zeroI, emptyTensor(b, loc, {b.getIndexAttr(numExperts + 1)}, i32),
        {constIndex(b, loc, 0)});
    Value cursorInit = emptyTensor(b, loc, {b.getIndexAttr(numExperts)}, i32);
    ValueRange prefix = forLoop(
        b, loc, constIndex(b, loc, numExperts), {offsets0, cursorInit, zeroI},
        [&](OpBuilder &lb, Location l, Value e,
            ValueRange it) -> SmallVector<Value> {
          Value cursor = insert(lb, l, it[2], it[1], {e});
          Value run =
              arith::AddIOp::create(lb, l, it[2], extract(lb, l, counts, {e}));
          Value ePlus1 = arith::AddIOp::create(lb, l, e, constIndex(lb, l, 1));
          return {insert(lb, l, run, it[0], {ePlus1}), cursor, run};
        });
    Value offsets = prefix[0], cursor0 = prefix[1];

    // Slots in token order within each expert. slotToken has one extra entry
    // that absorbs the writes of dropped assignments.
    Value mapping0 = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, ids), i32);
    Value slotToken0 = filledTensor(b, loc, {slotsPlus1}, i32, -1);
    ValueRange assigned = forEachAssignment(
        {cursor0, mapping0, slotToken0},
        [&](OpBuilder &lb, Location l, Value t, Value j,
            ValueRange it) -> SmallVector<Value> {
          auto [valid, e] = expertOf(lb, l, t, j);
          Value s = extract(lb, l, it[0], {e});
          Value cursor = insert(
              lb, l,
              select(lb, l, valid, arith::AddIOp::create(lb, l, s, oneI), s),
              it[0], {e});
          Value mapping = insert(lb, l, select(lb, l, valid, s, constI32(lb, l, -1)),
                                 it[1], {t, j});
          Value at = select(lb, l, valid, toIndex(lb, l, s), slotsValue);
          Value slotToken = insert(lb, l, toI32(lb, l, t), it[2], {at});
          return {cursor, mapping, slotToken};
        });
    Value mapping = assigned[1], slotToken = assigned[2];

    // Gather the rows; empty slots are zero.
    SmallVector<OpFoldResult> permutedSizes{
        slots, tensor::getMixedSize(b, loc, x, 1)};
    Value permuted = elementwise(
        b, loc, {}, {}, emptyTensor(b, loc, permutedSizes, elt),
        [&](OpBuilder &nb, Location l, ValueRange) -> Value {
          Value i = linalg::IndexOp::create(nb, l, 0);
          Value d = linalg::IndexOp::create(nb, l, 1);
          Value tok = extract(nb, l, slotToken, {i});
          Value valid = cmpI(nb, l, arith::CmpIPredicate::sge, tok, zeroI);
          Value row = toIndex(nb, l, select(nb, l, valid, tok, zeroI));
          Value v = extract(nb, l, x, {row, d});
          Value zero = arith::ConstantOp::create(nb, l, nb.getZeroAttr(elt));
          return select(nb, l, valid, v, zero);
        });
    rewriter.replaceOp(op, {castTo(b, loc, permuted, op.getPermuted()),
                            castTo(b, loc, offsets, op.getOffsets()),
                            castTo(b, loc, mapping, op.getMapping())});
    return success();
  }
};

struct CombineToLinalg : OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CombineOp op,
                                PatternRewriter &rewriter) const override {
    OpBuilder &b = rewriter;
    Location loc = op.getLoc();
    Value input = op.getInput(), mapping = op.getMapping(),
          weights = op.getWeights(), residual = op.getResidual();
    auto resultType = cast<RankedTensorType>(op.getType());
    Type elt = resultType.getElementType();
    SmallVector<OpFoldResult> sizes{tensor::getMixedSize(b, loc, mapping, 0),
                                    tensor::getMixedSize(b, loc, input, 1)};
    Value k = tensor::DimOp::create(b, loc, mapping, 1);
    SmallVector<Value> ins;
    SmallVector<AffineMap> maps;
    if (residual) {
      ins.push_back(residual);
      maps.push_back(b.getMultiDimIdentityMap(2));
    }
    Value result = elementwise(
        b, loc, ins, maps, emptyTensor(b, loc, sizes, elt),
        [&](OpBuilder &nb, Location l, ValueRange v) -> Value {
          Value t = linalg::IndexOp::create(nb, l, 0);
          Value d = linalg::IndexOp::create(nb, l, 1);
          Value init = residual ? toF32(nb, l, v[0]) : constF32(nb, l, 0.0f);
          Value zeroI = constI32(nb, l, 0);
          Value acc = forLoop(
              nb, l, k, {init},
              [&](OpBuilder &jb, Location jl, Value j,
                  ValueRange it) -> SmallVector<Value> {
                Value slot = extract(jb, jl, mapping, {t, j});
                Value valid =
                    cmpI(jb, jl, arith::CmpIPredicate::sge, slot, zeroI);
                Value row = toIndex(jb, jl, select(jb, jl, valid, slot, zeroI));
                Value w = toF32(jb, jl, extract(jb, jl, weights, {t, j}));
                Value e = toF32(jb, jl, extract(jb, jl, input, {row, d}));
                Value term = select(jb, jl, valid,
                                    arith::MulFOp::create(jb, jl, w, e),
                                    constF32(jb, jl, 0.0f));
                return {arith::AddFOp::create(jb, jl, it[0], term)};
              })[0];
          return fromF32(nb, l, acc, elt);
        });
    rewriter.replaceOp(op, castTo(b, loc, result, op.getResult()));
    return success();
  }
};

} // namespace

void mlir::moe::populateRoutingToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<RouterToLinalg, DispatchToLinalg, CombineToLinalg>(
      patterns.getContext());
}
