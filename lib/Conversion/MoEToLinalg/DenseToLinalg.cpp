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
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"

#include <array>
#include <cmath>
#include <limits>

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

/// `t` (f32) rounded to `elt` (a copy only when elt is narrower).
Value roundTo(OpBuilder &b, Location loc, Value t, Type elt) {
  if (elt.isF32())
    return t;
  auto type = cast<RankedTensorType>(t.getType());
  Value init = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, t), elt);
  return elementwise(b, loc, {t}, {b.getMultiDimIdentityMap(type.getRank())},
                     init, [&](OpBuilder &nb, Location l, ValueRange a) {
                       return fromF32(nb, l, a[0], elt);
                     });
}

/// x [T, a] w [a, b] (+ bias [b]), accumulated in f32 and rounded to `elt`.
Value projection(OpBuilder &b, Location loc, Value x, Value w, Type elt,
                 Value bias = Value()) {
  Value acc = matmulF32(b, loc, x, w);
  if (!bias)
    return roundTo(b, loc, acc, elt);
  MLIRContext *ctx = b.getContext();
  AffineExpr t, d;
  bindDims(ctx, t, d);
  Value init = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, acc), elt);
  return elementwise(
      b, loc, {acc, bias},
      {AffineMap::get(2, 0, {t, d}, ctx), AffineMap::get(2, 0, {d}, ctx)}, init,
      [&](OpBuilder &nb, Location l, ValueRange a) {
        return fromF32(nb, l,
                       arith::AddFOp::create(nb, l, a[0], toF32(nb, l, a[1])),
                       elt);
      });
}

/// RMSNorm over the last dimension of [T, n, hd] with weight [hd] (Qwen3's
/// per-head q/k norm), with moe.rms_norm's rounding.
Value headNorm(OpBuilder &b, Location loc, Value t, Value w, double epsilon,
               Type elt) {
  MLIRContext *ctx = b.getContext();
  auto type = cast<RankedTensorType>(t.getType());
  int64_t T = type.getDimSize(0), n = type.getDimSize(1),
          hd = type.getDimSize(2);
  AffineExpr a0, a1, a2;
  bindDims(ctx, a0, a1, a2);
  AffineMap id = AffineMap::get(3, 0, {a0, a1, a2}, ctx);
  AffineMap row = AffineMap::get(3, 0, {a0, a1}, ctx);
  AffineMap col = AffineMap::get(3, 0, {a2}, ctx);
  Value zero = filledTensor(b, loc, {b.getIndexAttr(T), b.getIndexAttr(n)},
                            b.getF32Type(), 0.0);
  auto sumSq = linalg::GenericOp::create(
      b, loc, TypeRange{zero.getType()}, ValueRange{t}, ValueRange{zero},
      ArrayRef<AffineMap>{id, row},
      ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                    utils::IteratorType::parallel,
                                    utils::IteratorType::reduction},
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value v = toF32(nb, l, a[0]);
        linalg::YieldOp::create(
            nb, l,
            ValueRange{arith::AddFOp::create(
                nb, l, a[1], arith::MulFOp::create(nb, l, v, v))});
      });
  float invD = float(1.0 / double(hd)), eps = float(epsilon);
  Value init = emptyTensor(
      b, loc, {b.getIndexAttr(T), b.getIndexAttr(n), b.getIndexAttr(hd)}, elt);
  return elementwise(
      b, loc, {t, sumSq.getResult(0), w}, {id, row, col}, init,
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value var = arith::MulFOp::create(nb, l, a[1], constF32(nb, l, invD));
        Value inv = math::RsqrtOp::create(
            nb, l, arith::AddFOp::create(nb, l, var, constF32(nb, l, eps)));
        Value nrm = arith::MulFOp::create(nb, l, toF32(nb, l, a[0]), inv);
        Value r = toF32(nb, l, fromF32(nb, l, nrm, elt));
        return fromF32(nb, l,
                       arith::MulFOp::create(nb, l, toF32(nb, l, a[2]), r),
                       elt);
      });
}

/// [T, n * w] as [T, n, w] (heads), and back.
Value splitHeads(OpBuilder &b, Location loc, Value t, int64_t n, int64_t w) {
  auto type = cast<RankedTensorType>(t.getType());
  return tensor::ExpandShapeOp::create(
      b, loc,
      RankedTensorType::get({type.getDimSize(0), n, w}, type.getElementType()),
      t, ArrayRef<ReassociationIndices>{{0}, {1, 2}});
}
Value mergeHeads(OpBuilder &b, Location loc, Value t) {
  auto type = cast<RankedTensorType>(t.getType());
  return tensor::CollapseShapeOp::create(
      b, loc,
      RankedTensorType::get({type.getDimSize(0),
                             type.getDimSize(1) * type.getDimSize(2)},
                            type.getElementType()),
      t, ArrayRef<ReassociationIndices>{{0}, {1, 2}});
}

/// RMSNorm of each row of `t` [T, n] with weight [n] (headNorm of one
/// "head" of width n).
Value rowNorm(OpBuilder &b, Location loc, Value t, Value w, double epsilon,
              Type elt) {
  int64_t n = cast<RankedTensorType>(t.getType()).getDimSize(1);
  return mergeHeads(
      b, loc, headNorm(b, loc, splitHeads(b, loc, t, 1, n), w, epsilon, elt));
}

/// f32 value of `v` rounded to `elt` (for products and sums that
/// transformers rounds to the tensor's dtype).
Value rounded(OpBuilder &b, Location loc, Value v, Type elt) {
  return elt.isF32() ? v : toF32(b, loc, fromF32(b, loc, v, elt));
}

/// A generic over `shape` (all parallel but `reduced`), with `inputs` read
/// through `maps`, accumulating into `init` read/written through `outMap`.
Value generic(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
              int64_t reduced, ValueRange inputs, ArrayRef<AffineMap> maps,
              Value init, AffineMap outMap,
              function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
  SmallVector<AffineMap> indexing(maps);
  indexing.push_back(outMap);
  SmallVector<utils::IteratorType> iterators(shape.size(),
                                             utils::IteratorType::parallel);
  if (reduced >= 0)
    iterators[size_t(reduced)] = utils::IteratorType::reduction;
  auto op = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, indexing,
      iterators, [&](OpBuilder &nb, Location l, ValueRange args) {
        linalg::YieldOp::create(nb, l, ValueRange{body(nb, l, args)});
      });
  return op.getResult(0);
}

/// How positions rotate: base `theta`, or explicit inverse frequencies
/// (one per rotated pair) and a cos/sin factor (scaled RoPE: YaRN, linear).
struct RopeSpec {
  double theta = 10000.0;
  std::optional<ArrayRef<float>> invFreq;
  double attentionFactor = 1.0;
};

template <typename OpT> RopeSpec ropeOf(OpT op) {
  return {op.getRopeTheta().convertToDouble(), op.getRopeInvFreq(),
          op.getRopeAttentionFactor().convertToDouble()};
}

/// Rotary embedding of the last `r` dimensions' values of `t` [T, n, r]
/// for the tokens at positions `pos` + t (i32): the `rotate_half` form,
/// `x*cos + rotate_half(x)*sin` with cos and sin rounded to `elt` and every
/// product and sum rounded, as transformers computes it. `interleaved`
/// pairs (2j, 2j+1) instead of (j, j + r/2): the input is de-interleaved
/// first (DeepSeek's layout, as transformers' apply_rotary_pos_emb_interleave).
Value applyRope(OpBuilder &b, Location loc, Value t, Value pos,
                const RopeSpec &rope, bool interleaved, Type elt) {
  auto type = cast<RankedTensorType>(t.getType());
  int64_t T = type.getDimSize(0), n = type.getDimSize(1),
          r = type.getDimSize(2), half = r / 2;
  Type f32 = b.getF32Type();
  Value init = emptyTensor(
      b, loc, {b.getIndexAttr(T), b.getIndexAttr(n), b.getIndexAttr(r)}, elt);
  AffineMap id = b.getMultiDimIdentityMap(3);
  Value freqs;
  if (rope.invFreq) {
    auto freqType = RankedTensorType::get({half}, f32);
    freqs = arith::ConstantOp::create(
        b, loc, freqType, DenseElementsAttr::get(freqType, *rope.invFreq));
  }
  return elementwise(
      b, loc, {t}, {id}, init, [&](OpBuilder &nb, Location l, ValueRange) {
        Value ti = linalg::IndexOp::create(nb, l, 0);
        Value hi = linalg::IndexOp::create(nb, l, 1);
        Value ii = linalg::IndexOp::create(nb, l, 2);
        Value halfC = constIndex(nb, l, half);
        // Element i of the (de-interleaved) vector, read from t.
        auto source = [&](Value i) {
          return ropeSourceIndex(nb, l, i, half, interleaved);
        };
        auto at = [&](Value i) -> Value {
          return toF32(nb, l, tensor::ExtractOp::create(
                                  nb, l, t, ValueRange{ti, hi, source(i)}));
        };
        Value low = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, ii,
                                          halfC);
        Value j = arith::RemUIOp::create(nb, l, ii, halfC);
        Value partner = arith::SelectOp::create(
            nb, l, low, arith::AddIOp::create(nb, l, ii, halfC),
            arith::SubIOp::create(nb, l, ii, halfC));
        Value other = at(partner);
        Value rot = arith::SelectOp::create(
            nb, l, low, arith::NegFOp::create(nb, l, other), other);
        // inv_freq = 1 / theta^(2j / r), in f32 as transformers has it, or
        // the scaled RoPE's own.
        Value invFreq;
        if (freqs) {
          invFreq = tensor::ExtractOp::create(nb, l, freqs, ValueRange{j});
        } else {
          Value jf = arith::UIToFPOp::create(
              nb, l, f32,
              arith::IndexCastUIOp::create(nb, l, nb.getI32Type(), j));
          Value expo = arith::DivFOp::create(
              nb, l, arith::MulFOp::create(nb, l, jf, constF32(nb, l, 2.0f)),
              constF32(nb, l, float(r)));
          invFreq = arith::DivFOp::create(
              nb, l, constF32(nb, l, 1.0f),
              math::PowFOp::create(nb, l, constF32(nb, l, float(rope.theta)),
                                   expo));
        }
        Value p = arith::AddIOp::create(
            nb, l, pos, arith::IndexCastOp::create(nb, l, nb.getI32Type(), ti));
        Value angle = arith::MulFOp::create(
            nb, l, arith::SIToFPOp::create(nb, l, f32, p), invFreq);
        Value cf = math::CosOp::create(nb, l, angle);
        Value sf = math::SinOp::create(nb, l, angle);
        if (rope.attentionFactor != 1.0) {
          Value factor = constF32(nb, l, float(rope.attentionFactor));
          cf = arith::MulFOp::create(nb, l, cf, factor);
          sf = arith::MulFOp::create(nb, l, sf, factor);
        }
        Value c = rounded(nb, l, cf, elt);
        Value sn = rounded(nb, l, sf, elt);
        Value m1 = rounded(nb, l, arith::MulFOp::create(nb, l, at(ii), c), elt);
        Value m2 = rounded(nb, l, arith::MulFOp::create(nb, l, rot, sn), elt);
        return fromF32(nb, l, arith::AddFOp::create(nb, l, m1, m2), elt);
      });
}

/// `rows` [T, n, w] written into `cache` [S, n, w] from row `posIndex`.
Value placeInCache(OpBuilder &b, Location loc, Value rows, Value cache,
                   Value posIndex) {
  auto type = cast<RankedTensorType>(rows.getType());
  SmallVector<OpFoldResult> offsets{posIndex, b.getIndexAttr(0),
                                    b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes{b.getIndexAttr(type.getDimSize(0)),
                                  b.getIndexAttr(type.getDimSize(1)),
                                  b.getIndexAttr(type.getDimSize(2))};
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  return tensor::InsertSliceOp::create(b, loc, rows, cache, offsets, sizes,
                                       strides);
}

/// T5's relative-position bucket of a key `rel` rows after its query
/// (negative: before), as transformers' `_relative_position_bucket`
/// computes it in f32 (the log's boundaries land where its do).
int64_t t5Bucket(int64_t rel, bool bidirectional, int64_t buckets,
                 int64_t maxDistance) {
  int64_t bucket = 0;
  if (bidirectional) {
    buckets /= 2;
    if (rel > 0)
      bucket += buckets;
    rel = rel < 0 ? -rel : rel;
  } else {
    rel = rel < 0 ? -rel : 0;
  }
  int64_t exact = buckets / 2;
  if (rel < exact)
    return bucket + rel;
  float ratio = float(rel) / float(exact);
  float scaled = std::log(ratio) /
                 float(std::log(double(maxDistance) / double(exact))) *
                 float(buckets - exact);
  return bucket + std::min<int64_t>(exact + int64_t(scaled), buckets - 1);
}

/// What masks and biases the scores of `attention` below.
struct ScoreSpec {
  /// Multiplies the rounded scores (rounded again).
  float scaling = 1.0f;
  /// The first query's position (index); query t is at posIndex + t. With
  /// `causal`, key rows past a query's position are masked.
  Value posIndex;
  bool causal = true;
  /// Optional (index): key rows at and after it are masked.
  Value keyLength;
  /// Optional: a [NB, H] relative-position bias table and the [2S-1] i32
  /// constant of buckets by `key row - query position + S - 1`.
  Value biasTable, buckets;
};

/// Attention of the queries `q` [T, H, dq] over the rows `keys` [S, KV, dq]
/// and `values` [S, KV, dv] (query head h reads head h / (H / KV)): scores
/// (q k^T, f32 accumulation) rounded, times `scaling` rounded, plus the
/// position bias rounded; masked rows (`spec`) -inf; softmax in f32,
/// rounded; p v rounded. Returns [T, H * dv].
Value attention(OpBuilder &b, Location loc, Value q, Value keys, Value values,
                const ScoreSpec &spec, Type elt) {
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type();
  auto qType = cast<RankedTensorType>(q.getType());
  auto kType = cast<RankedTensorType>(keys.getType());
  auto vType = cast<RankedTensorType>(values.getType());
  int64_t T = qType.getDimSize(0), H = qType.getDimSize(1),
          dq = qType.getDimSize(2), S = kType.getDimSize(0),
          group = H / kType.getDimSize(1), dv = vType.getDimSize(2);
  AffineExpr d0, d1, d2, d3;
  bindDims(ctx, d0, d1, d2, d3);
  auto map4 = [&](ArrayRef<AffineExpr> e) {
    return AffineMap::get(4, 0, e, ctx);
  };
  auto map3 = [&](ArrayRef<AffineExpr> e) {
    return AffineMap::get(3, 0, e, ctx);
  };
  Value zeroScores = filledTensor(
      b, loc, {b.getIndexAttr(H), b.getIndexAttr(T), b.getIndexAttr(S)}, f32,
      0.0);
  // (h, t, j, d)
  Value dots = generic(
      b, loc, {H, T, S, dq}, 3, {q, keys},
      {map4({d1, d0, d3}), map4({d2, d0.floorDiv(group), d3})}, zeroScores,
      map4({d0, d1, d2}), [&](OpBuilder &nb, Location l, ValueRange a) {
        Value prod = arith::MulFOp::create(nb, l, toF32(nb, l, a[0]),
                                           toF32(nb, l, a[1]));
        return arith::AddFOp::create(nb, l, a[2], prod).getResult();
      });
  AffineMap id3 = b.getMultiDimIdentityMap(3);
  // Masked scores are -inf; (h, t, j).
  Value scores = elementwise(
      b, loc, {dots}, {id3},
      emptyTensor(b, loc,
                  {b.getIndexAttr(H), b.getIndexAttr(T), b.getIndexAttr(S)},
                  f32),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value s = rounded(nb, l, a[0], elt);
        if (spec.scaling != 1.0f)
          s = rounded(
              nb, l,
              arith::MulFOp::create(nb, l, s, constF32(nb, l, spec.scaling)),
              elt);
        Value hi = linalg::IndexOp::create(nb, l, 0);
        Value ti = linalg::IndexOp::create(nb, l, 1);
        Value ji = linalg::IndexOp::create(nb, l, 2);
        Value at = spec.posIndex
                       ? arith::AddIOp::create(nb, l, spec.posIndex, ti)
                       : ti;
        if (spec.biasTable) {
          // bias[bucket(j - at), h], the bucket read at j - at + S - 1.
          Value rel = arith::AddIOp::create(
              nb, l, arith::SubIOp::create(nb, l, ji, at),
              constIndex(nb, l, S - 1));
          Value bucket = arith::IndexCastOp::create(
              nb, l, nb.getIndexType(),
              tensor::ExtractOp::create(nb, l, spec.buckets, ValueRange{rel}));
          Value bias = tensor::ExtractOp::create(nb, l, spec.biasTable,
                                                 ValueRange{bucket, hi});
          s = rounded(nb, l,
                      arith::AddFOp::create(nb, l, s, toF32(nb, l, bias)),
                      elt);
        }
        Value visible;
        auto both = [&](Value c) {
          visible = visible ? arith::AndIOp::create(nb, l, visible, c) : c;
        };
        if (spec.causal)
          both(arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ule, ji,
                                     at));
        if (spec.keyLength)
          both(arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, ji,
                                     spec.keyLength));
        if (!visible)
          return s;
        Value ninf = constF32(nb, l, -std::numeric_limits<float>::infinity());
        return arith::SelectOp::create(nb, l, visible, s, ninf).getResult();
      });
  Value maxInit = filledTensor(b, loc, {b.getIndexAttr(H), b.getIndexAttr(T)},
                               f32, -std::numeric_limits<double>::infinity());
  Value rowMax = generic(
      b, loc, {H, T, S}, 2, {scores}, {id3}, maxInit, map3({d0, d1}),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        return arith::MaximumFOp::create(nb, l, a[0], a[1]).getResult();
      });
  Value sumInit = filledTensor(b, loc, {b.getIndexAttr(H), b.getIndexAttr(T)},
                               f32, 0.0);
  Value rowSumExp = generic(
      b, loc, {H, T, S}, 2, {scores, rowMax}, {id3, map3({d0, d1})}, sumInit,
      map3({d0, d1}), [&](OpBuilder &nb, Location l, ValueRange a) {
        Value e = math::ExpOp::create(
            nb, l, arith::SubFOp::create(nb, l, a[0], a[1]));
        return arith::AddFOp::create(nb, l, a[2], e).getResult();
      });
  Value probs = elementwise(
      b, loc, {scores, rowMax, rowSumExp},
      {id3, map3({d0, d1}), map3({d0, d1})},
      emptyTensor(b, loc,
                  {b.getIndexAttr(H), b.getIndexAttr(T), b.getIndexAttr(S)},
                  f32),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value e = math::ExpOp::create(
            nb, l, arith::SubFOp::create(nb, l, a[0], a[1]));
        return rounded(nb, l, arith::DivFOp::create(nb, l, e, a[2]), elt);
      });
  // (t, h, d, j)
  Value outInit = filledTensor(
      b, loc, {b.getIndexAttr(T), b.getIndexAttr(H), b.getIndexAttr(dv)}, f32,
      0.0);
  Value attended = generic(
      b, loc, {T, H, dv, S}, 3, {probs, values},
      {map4({d1, d0, d3}), map4({d3, d1.floorDiv(group), d2})}, outInit,
      map4({d0, d1, d2}), [&](OpBuilder &nb, Location l, ValueRange a) {
        Value prod = arith::MulFOp::create(nb, l, a[0], toF32(nb, l, a[1]));
        return arith::AddFOp::create(nb, l, a[2], prod).getResult();
      });
  return mergeHeads(b, loc, roundTo(b, loc, attended, elt));
}

/// Row `s * n` (index) of sequence `s` of rows `n` long: an attribute where
/// `s` is a constant.
OpFoldResult rowOf(OpBuilder &b, Location loc, Value s, int64_t n) {
  if (std::optional<int64_t> c = getConstantIntValue(s))
    return b.getIndexAttr(*c * n);
  if (n == 1)
    return s;
  return arith::MulIOp::create(b, loc, s, constIndex(b, loc, n)).getResult();
}

/// Rows [first, first + n) of a rank-3 tensor (itself when whole).
Value rowsOf(OpBuilder &b, Location loc, Value t, OpFoldResult first,
             int64_t n) {
  auto type = cast<RankedTensorType>(t.getType());
  if (n == type.getDimSize(0))
    return t;
  SmallVector<OpFoldResult> offsets{first, b.getIndexAttr(0),
                                    b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes{b.getIndexAttr(n),
                                  b.getIndexAttr(type.getDimSize(1)),
                                  b.getIndexAttr(type.getDimSize(2))};
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  return tensor::ExtractSliceOp::create(
      b, loc,
      RankedTensorType::get({n, type.getDimSize(1), type.getDimSize(2)},
                            type.getElementType()),
      t, offsets, sizes, strides);
}

/// `whole` with `part` (rank 2 or 3) in its rows from `first` (`part` itself
/// when it is the whole).
Value putRowsOf(OpBuilder &b, Location loc, Value part, Value whole,
                OpFoldResult first) {
  if (part.getType() == whole.getType())
    return part;
  auto type = cast<RankedTensorType>(part.getType());
  SmallVector<OpFoldResult> offsets{first, b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes{b.getIndexAttr(type.getDimSize(0)),
                                  b.getIndexAttr(type.getDimSize(1))};
  SmallVector<OpFoldResult> strides(type.getRank(), b.getIndexAttr(1));
  if (type.getRank() == 3) {
    offsets.push_back(b.getIndexAttr(0));
    sizes.push_back(b.getIndexAttr(type.getDimSize(2)));
  }
  return tensor::InsertSliceOp::create(b, loc, part, whole, offsets, sizes,
                                       strides);
}

/// The position (i32) and its index of sequence `seq` (index) of a [B]
/// position tensor.
std::pair<Value, Value> positionOf(OpBuilder &b, Location loc, Value position,
                                   Value seq) {
  Value pos = tensor::ExtractOp::create(b, loc, position, ValueRange{seq});
  Value posIndex = arith::IndexCastOp::create(b, loc, b.getIndexType(), pos);
  return {pos, posIndex};
}

/// `body` for each sequence s of `batch`, given s (index) and the values
/// `carried` so far; it returns their next values, and this the last ones.
/// One sequence is built inline; several in an scf.for, so that the code
/// (and the time to compile it) does not grow with the batch.
SmallVector<Value>
forEachSequence(OpBuilder &b, Location loc, int64_t batch, ValueRange carried,
                function_ref<SmallVector<Value>(Value, ValueRange)> body) {
  if (batch == 1)
    return body(constIndex(b, loc, 0), carried);
  auto loop = scf::ForOp::create(b, loc, constIndex(b, loc, 0),
                                 constIndex(b, loc, batch),
                                 constIndex(b, loc, 1), carried);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(loop.getBody());
  SmallVector<Value> next =
      body(loop.getInductionVar(), loop.getRegionIterArgs());
  scf::YieldOp::create(b, loc, next);
  return SmallVector<Value>(loop.getResults());
}

/// A sequence's new rows: its queries [T, H, dq] and its key and value rows
/// [T, KV, dq], [T, KV, dv].
struct SequenceRows {
  Value queries, keys, values;
};

/// Attention of `batch` sequences of T rows over key and value caches of S
/// rows a sequence: `rowsOf` gives sequence s's new rows (given its first
/// row and its position, i32); they go into its caches at its position
/// (`position`, [B] i32), and its queries attend to the caches' rows
/// (`spec`, its key length from `keyLength` where given). Returns the
/// output [B * T, outCols] and the two caches.
std::array<Value, 3>
attendOverCaches(OpBuilder &b, Location loc, int64_t batch, int64_t T,
                 int64_t S, Value keyCache, Value valueCache, Value position,
                 Value keyLength, int64_t outCols, ScoreSpec spec, Type elt,
                 function_ref<SequenceRows(OpFoldResult, Value)> rowsOfSeq) {
  Value oInit = emptyTensor(
      b, loc, {b.getIndexAttr(batch * T), b.getIndexAttr(outCols)}, elt);
  SmallVector<Value> done = forEachSequence(
      b, loc, batch, {keyCache, valueCache, oInit},
      [&](Value s, ValueRange carried) -> SmallVector<Value> {
        Value keys = carried[0], values = carried[1], o = carried[2];
        OpFoldResult row = rowOf(b, loc, s, T), cacheRow = rowOf(b, loc, s, S);
        auto [pos, posIndex] = positionOf(b, loc, position, s);
        SequenceRows in = rowsOfSeq(row, pos);
        Value keyRows = placeInCache(
            b, loc, in.keys, rowsOf(b, loc, keys, cacheRow, S), posIndex);
        Value valueRows = placeInCache(
            b, loc, in.values, rowsOf(b, loc, values, cacheRow, S), posIndex);
        spec.posIndex = posIndex;
        if (keyLength)
          spec.keyLength = positionOf(b, loc, keyLength, s).second;
        Value os = attention(b, loc, in.queries, keyRows, valueRows, spec, elt);
        return {putRowsOf(b, loc, keyRows, keys, cacheRow),
                putRowsOf(b, loc, valueRows, values, cacheRow),
                putRowsOf(b, loc, os, o, row)};
      });
  return {done[2], done[0], done[1]};
}

struct AttentionToLinalg : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    auto xType = cast<RankedTensorType>(op.getInput().getType());
    auto cacheType = cast<RankedTensorType>(op.getKeyCacheIn().getType());
    if (!xType.hasStaticShape())
      return op.emitOpError("needs a static token count to be lowered");
    Type elt = xType.getElementType();
    int64_t H = op.getNumHeads(), KV = op.getNumKvHeads(),
            hd = cacheType.getDimSize(2);

    // 1. Projections, as [T, heads, hd].
    auto heads3 = [&](Value t, int64_t n) {
      return splitHeads(b, loc, t, n, hd);
    };
    Value x = op.getInput();
    Value q2 = projection(b, loc, x, op.getWQ(), elt, op.getQBias());
    Value k2 = projection(b, loc, x, op.getWK(), elt, op.getKBias());
    Value v = heads3(projection(b, loc, x, op.getWV(), elt, op.getVBias()), KV);
    double eps = op.getQkNormEpsilon().convertToDouble();
    bool wholeNorm =
        op.getQNorm() &&
        cast<RankedTensorType>(op.getQNorm().getType()).getDimSize(0) != hd;
    if (wholeNorm) {
      // OLMoE: RMSNorm over the whole projection.
      q2 = rowNorm(b, loc, q2, op.getQNorm(), eps, elt);
      k2 = rowNorm(b, loc, k2, op.getKNorm(), eps, elt);
    }
    Value q = heads3(q2, H), k = heads3(k2, KV);
    if (op.getQNorm() && !wholeNorm) {
      q = headNorm(b, loc, q, op.getQNorm(), eps, elt);
      k = headNorm(b, loc, k, op.getKNorm(), eps, elt);
    }

    // Per sequence (rows b*T .. of the tokens, b*S .. of the caches):
    // 2. rotary embedding; 3. the caches take the new rows; 4. attention.
    int64_t batch =
        cast<RankedTensorType>(op.getPosition().getType()).getDimSize(0);
    int64_t T = xType.getDimSize(0) / batch,
            S = cacheType.getDimSize(0) / batch;
    RopeSpec rope = ropeOf(op);
    ScoreSpec spec;
    spec.scaling = float(op.getScoreScale());
    spec.causal = !op.getBidirectional();
    if (Value table = op.getPositionBias()) {
      // Buckets of key row - query position, from -(S-1) to S-1.
      SmallVector<int32_t> buckets;
      int64_t count = cast<RankedTensorType>(table.getType()).getDimSize(0);
      for (int64_t rel = -(S - 1); rel <= S - 1; ++rel)
        buckets.push_back(int32_t(t5Bucket(rel, op.getBidirectional(), count,
                                           *op.getRelativeMaxDistance())));
      auto type = RankedTensorType::get({2 * S - 1}, b.getI32Type());
      spec.buckets = arith::ConstantOp::create(
          b, loc, type, DenseElementsAttr::get(type, ArrayRef(buckets)));
      spec.biasTable = table;
    }
    // (All-zero inverse frequencies: no rotary embedding at all.)
    bool rotary = !rope.invFreq ||
                  llvm::any_of(*rope.invFreq, [](float f) { return f != 0; });
    auto [o, keys, values] = attendOverCaches(
        b, loc, batch, T, S, op.getKeyCacheIn(), op.getValueCacheIn(),
        op.getPosition(), op.getKeyLength(), H * hd, spec, elt,
        [&](OpFoldResult row, Value pos) {
          Value qs = rowsOf(b, loc, q, row, T), ks = rowsOf(b, loc, k, row, T);
          if (rotary) {
            qs = applyRope(b, loc, qs, pos, rope, /*interleaved=*/false, elt);
            ks = applyRope(b, loc, ks, pos, rope, /*interleaved=*/false, elt);
          }
          return SequenceRows{qs, ks, rowsOf(b, loc, v, row, T)};
        });
    // 5. The output projection.
    Value y = projection(b, loc, o, op.getWO(), elt);
    b.replaceOp(op, {y, keys, values});
    return success();
  }
};

/// `t` [T, n, w] columns [from, from + size) of the last dimension, as a
/// new contiguous tensor (a copy: a strided slice would bufferize into a
/// strided memref copy that needs a runtime library).
Value lastDimSlice(OpBuilder &b, Location loc, Value t, int64_t from,
                   int64_t size) {
  auto type = cast<RankedTensorType>(t.getType());
  Value init = emptyTensor(b, loc,
                           {b.getIndexAttr(type.getDimSize(0)),
                            b.getIndexAttr(type.getDimSize(1)),
                            b.getIndexAttr(size)},
                           type.getElementType());
  return elementwise(
      b, loc, {}, {}, init, [&](OpBuilder &nb, Location l, ValueRange) {
        Value i0 = linalg::IndexOp::create(nb, l, 0);
        Value i1 = linalg::IndexOp::create(nb, l, 1);
        Value i2 = arith::AddIOp::create(nb, l, linalg::IndexOp::create(nb, l, 2),
                                         constIndex(nb, l, from));
        return tensor::ExtractOp::create(nb, l, t, ValueRange{i0, i1, i2})
            .getResult();
      });
}

struct CrossAttentionToLinalg : OpRewritePattern<CrossAttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CrossAttentionOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    auto xType = cast<RankedTensorType>(op.getInput().getType());
    auto memType = cast<RankedTensorType>(op.getMemoryKey().getType());
    Type elt = xType.getElementType();
    int64_t H = op.getNumHeads(), hd = memType.getDimSize(2);
    int64_t batch =
        cast<RankedTensorType>(op.getLength().getType()).getDimSize(0);
    int64_t T = xType.getDimSize(0) / batch,
            S = memType.getDimSize(0) / batch;
    Value q = splitHeads(b, loc, projection(b, loc, op.getInput(), op.getWQ(),
                                            elt),
                         H, hd);
    ScoreSpec spec;
    spec.scaling = float(op.getScale().convertToDouble());
    spec.causal = false;
    Value oInit = emptyTensor(
        b, loc, {b.getIndexAttr(batch * T), b.getIndexAttr(H * hd)}, elt);
    Value o = forEachSequence(
        b, loc, batch, {oInit},
        [&](Value s, ValueRange carried) -> SmallVector<Value> {
          OpFoldResult row = rowOf(b, loc, s, T), memRow = rowOf(b, loc, s, S);
          spec.keyLength = positionOf(b, loc, op.getLength(), s).second;
          Value os = attention(b, loc, rowsOf(b, loc, q, row, T),
                               rowsOf(b, loc, op.getMemoryKey(), memRow, S),
                               rowsOf(b, loc, op.getMemoryValue(), memRow, S),
                               spec, elt);
          return {putRowsOf(b, loc, os, carried[0], row)};
        })[0];
    b.replaceOp(op, projection(b, loc, o, op.getWO(), elt));
    return success();
  }
};

struct MlaAttentionToLinalg : OpRewritePattern<MlaAttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MlaAttentionOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    auto xType = cast<RankedTensorType>(op.getInput().getType());
    if (!xType.hasStaticShape())
      return op.emitOpError("needs a static token count to be lowered");
    Type elt = xType.getElementType();
    int64_t rowsAll = xType.getDimSize(0), H = op.getNumHeads(),
            nope = op.getNopeDim(), rope = op.getRopeDim(), vd = op.getVDim();
    int64_t lkv =
        cast<RankedTensorType>(op.getKvANorm().getType()).getDimSize(0);
    double eps = op.getEpsilon().convertToDouble();
    Value x = op.getInput();

    // 1. Queries [T, H, nope + rope].
    Value qIn = x;
    if (Value qa = op.getQA())
      qIn = rowNorm(b, loc, projection(b, loc, x, qa, elt), op.getQANorm(),
                    eps, elt);
    Value q = splitHeads(b, loc, projection(b, loc, qIn, op.getQB(), elt), H,
                         nope + rope);

    // 2. The compressed keys and values, and the shared rotary key part.
    Value kvA = splitHeads(b, loc, projection(b, loc, x, op.getKvA(), elt), 1,
                           lkv + rope);
    Value latent = headNorm(b, loc, lastDimSlice(b, loc, kvA, 0, lkv),
                            op.getKvANorm(), eps, elt);
    Value kRotAll = lastDimSlice(b, loc, kvA, lkv, rope); // [B*T, 1, rope]
    Value kv = splitHeads(
        b, loc, projection(b, loc, mergeHeads(b, loc, latent), op.getKvB(), elt),
        H, nope + vd);
    Value kNope = lastDimSlice(b, loc, kv, 0, nope);
    Value v = lastDimSlice(b, loc, kv, nope, vd);

    // Per sequence (rows s*T .. of the tokens, s*S .. of the caches):
    // 3. rotary parts; 4. keys [nope | rope] (the rotary part broadcast to
    // every head) and queries [nope | rope] into the caches; 5. attention.
    int64_t batch =
        cast<RankedTensorType>(op.getPosition().getType()).getDimSize(0);
    int64_t T = rowsAll / batch,
            S = cast<RankedTensorType>(op.getKeyCacheIn().getType())
                    .getDimSize(0) /
                batch;
    RopeSpec rotation = ropeOf(op);
    bool inter = op.getInterleaved();
    auto concatHeads = [&](Value a, Value r, bool broadcast) -> Value {
      Value init = emptyTensor(b, loc,
                               {b.getIndexAttr(T), b.getIndexAttr(H),
                                b.getIndexAttr(nope + rope)},
                               elt);
      return elementwise(
          b, loc, {}, {}, init, [&](OpBuilder &nb, Location l, ValueRange) {
            Value ti = linalg::IndexOp::create(nb, l, 0);
            Value hi = linalg::IndexOp::create(nb, l, 1);
            Value ii = linalg::IndexOp::create(nb, l, 2);
            Value inNope = arith::CmpIOp::create(
                nb, l, arith::CmpIPredicate::ult, ii, constIndex(nb, l, nope));
            auto ifOp = scf::IfOp::create(nb, l, TypeRange{elt}, inNope, true);
            {
              OpBuilder::InsertionGuard g(nb);
              nb.setInsertionPointToStart(&ifOp.getThenRegion().front());
              Value e = tensor::ExtractOp::create(nb, l, a,
                                                  ValueRange{ti, hi, ii});
              scf::YieldOp::create(nb, l, e);
              nb.setInsertionPointToStart(&ifOp.getElseRegion().front());
              Value j = arith::SubIOp::create(nb, l, ii,
                                              constIndex(nb, l, nope));
              Value h = broadcast ? constIndex(nb, l, 0) : hi;
              Value e2 = tensor::ExtractOp::create(nb, l, r,
                                                   ValueRange{ti, h, j});
              scf::YieldOp::create(nb, l, e2);
            }
            return ifOp.getResult(0);
          });
    };
    double scale = op.getSoftmaxScale()
                       ? op.getSoftmaxScale()->convertToDouble()
                       : 1.0 / std::sqrt(double(nope + rope));
    ScoreSpec spec;
    spec.scaling = float(scale);
    auto [o, keys, values] = attendOverCaches(
        b, loc, batch, T, S, op.getKeyCacheIn(), op.getValueCacheIn(),
        op.getPosition(), Value(), H * vd, spec, elt,
        [&](OpFoldResult row, Value pos) {
          Value qs = rowsOf(b, loc, q, row, T);
          Value qRot = applyRope(b, loc, lastDimSlice(b, loc, qs, nope, rope),
                                 pos, rotation, inter, elt);
          Value kRot = applyRope(b, loc, rowsOf(b, loc, kRotAll, row, T), pos,
                                 rotation, inter, elt);
          return SequenceRows{
              concatHeads(lastDimSlice(b, loc, qs, 0, nope), qRot, false),
              concatHeads(rowsOf(b, loc, kNope, row, T), kRot, true),
              rowsOf(b, loc, v, row, T)};
        });
    // 6. The output projection.
    Value y = projection(b, loc, o, op.getWO(), elt);
    b.replaceOp(op, {y, keys, values});
    return success();
  }
};
} // namespace

void mlir::moe::populateDenseToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<RmsNormToLinalg, LayerNormToLinalg, EmbeddingToLinalg,
               AttentionToLinalg, CrossAttentionToLinalg, MlaAttentionToLinalg>(
      patterns.getContext());
}
