//===- MoEOps.cpp - MoE dialect operations ---------------------------------===//
//
// Part of moe-compiler.
//
// Verifiers check every shape and type invariant with a message that names
// the operand and the dimension involved, so that a user can fix the IR
// without reading this file. Dynamic dimensions are accepted wherever the
// invariant cannot be decided statically.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Verification helpers
//===----------------------------------------------------------------------===//

namespace {
/// A named value being verified, for messages such as "w_up has d=64".
struct Named {
  StringRef name;
  Value value;
  RankedTensorType type() const {
    return cast<RankedTensorType>(value.getType());
  }
  int64_t dim(unsigned i) const { return type().getDimSize(i); }
};

std::string dimStr(int64_t d) {
  return ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
}

/// Emits an error unless `v` has rank `rank`; `shape` spells the expected
/// shape, e.g. "[T, d]".
LogicalResult checkRank(Operation *op, Named v, int64_t rank,
                        StringRef shape) {
  if (v.type().getRank() == rank)
    return success();
  return op->emitOpError() << v.name << " must have rank " << rank << " "
                           << shape << ", got " << v.type();
}

/// Emits an error unless dimension `ia` of `a` equals dimension `ib` of `b`
/// (or either is dynamic). `what` names the size, e.g. "hidden size d".
LogicalResult checkSameDim(Operation *op, StringRef what, Named a, unsigned ia,
                           Named b, unsigned ib) {
  int64_t da = a.dim(ia), db = b.dim(ib);
  if (ShapedType::isDynamic(da) || ShapedType::isDynamic(db) || da == db)
    return success();
  return op->emitOpError() << what << " mismatch: " << a.name << " has "
                           << dimStr(da) << " but " << b.name << " has "
                           << dimStr(db);
}

/// Emits an error unless dimension `i` of `v` is `expected` (or dynamic).
LogicalResult checkDimIs(Operation *op, StringRef what, Named v, unsigned i,
                         int64_t expected) {
  int64_t d = v.dim(i);
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(expected) ||
      d == expected)
    return success();
  return op->emitOpError() << what << " mismatch: " << v.name << " has "
                           << d << ", expected " << dimStr(expected);
}

/// Emits an error unless `result` has the type of `input` (the ops that
/// keep their token rows' shape).
LogicalResult checkResultTypeIsInputs(Operation *op, Value input,
                                      Value result) {
  if (input.getType() == result.getType())
    return success();
  return op->emitOpError() << "result type " << result.getType()
                           << " must equal the input type "
                           << input.getType();
}

/// B sequences of an attention step (`pos` [B]): the input rows `x` and
/// the cache rows `cache` are B equal blocks.
LogicalResult checkSequences(Operation *op, Named pos, Named x,
                             Named cache) {
  int64_t batch = pos.dim(0);
  if (ShapedType::isDynamic(batch))
    return success();
  if (batch < 1)
    return op->emitOpError() << "position needs one entry per sequence, got "
                             << pos.type();
  if (!ShapedType::isDynamic(x.dim(0)) && x.dim(0) % batch != 0)
    return op->emitOpError() << "input rows (" << x.dim(0)
                             << ") must split evenly into the " << batch
                             << " sequences of the position";
  if (!ShapedType::isDynamic(cache.dim(0)) && cache.dim(0) % batch != 0)
    return op->emitOpError() << "cache rows (" << cache.dim(0)
                             << ") must split evenly into the " << batch
                             << " sequences of the position";
  return success();
}

LogicalResult checkSameElementType(Operation *op, Named a, Named b) {
  Type ea = a.type().getElementType(), eb = b.type().getElementType();
  if (ea == eb)
    return success();
  return op->emitOpError() << b.name << " element type " << eb
                           << " differs from " << a.name << "'s " << ea;
}

/// Checks an FFN's weights: `up`/`gate` [(E,) d, f] and `down` [(E,) f, d]
/// against token rows `x` [*, d]. `lead` is 1 for stacked expert weights.
LogicalResult verifyFfnWeights(Operation *op, Named x, Named up,
                               std::optional<Named> gate, Named down,
                               unsigned lead) {
  StringRef upShape = lead ? "[E, d, f]" : "[d, f]";
  StringRef downShape = lead ? "[E, f, d]" : "[f, d]";
  if (failed(checkRank(op, up, 2 + lead, upShape)) ||
      failed(checkRank(op, down, 2 + lead, downShape)) ||
      (gate && failed(checkRank(op, *gate, 2 + lead, upShape))))
    return failure();
  if (failed(checkSameDim(op, "hidden size d", x, 1, up, lead)) ||
      failed(checkSameDim(op, "hidden size d", x, 1, down, lead + 1)) ||
      failed(checkSameDim(op, "ffn size f", up, lead + 1, down, lead)))
    return failure();
  if (lead && failed(checkSameDim(op, "number of experts E", up, 0, down, 0)))
    return failure();
  if (gate) {
    if (gate->type().getShape() != up.type().getShape())
      return op->emitOpError()
             << gate->name << " must have the shape of " << up.name << " "
             << up.type() << ", got " << gate->type();
    if (failed(checkSameElementType(op, x, *gate)))
      return failure();
  }
  if (failed(checkSameElementType(op, x, up)) ||
      failed(checkSameElementType(op, x, down)))
    return failure();
  return success();
}

/// Checks the routing attributes shared by moe.router and moe.layer against
/// the number of experts `numExperts` and the token count `tokens`.
template <typename OpTy>
LogicalResult verifyRouting(OpTy op, int64_t numExperts) {
  // I64Attr getters are unsigned; read the signed values so that negative
  // inputs are reported rather than wrapped.
  int64_t k = op.getTopKAttr().getInt();
  int64_t minCapacity = op.getMinCapacityAttr().getInt();
  if (ShapedType::isDynamic(numExperts))
    return op.emitOpError() << "the number of experts must be static";
  if (k < 1)
    return op.emitOpError() << "top_k must be at least 1, got " << k;
  if (k > numExperts)
    return op.emitOpError() << "top_k (" << k
                            << ") exceeds the number of experts ("
                            << numExperts << ")";
  if (op.getScoreAfterTopk() && op.getScoreFunc() != ScoreFunc::softmax)
    return op.emitOpError()
           << "score_after_topk needs score_func softmax, got "
           << stringifyScoreFunc(op.getScoreFunc());
  if (!(op.getScaling().convertToDouble() > 0.0))
    return op.emitOpError() << "scaling must be positive, got "
                            << op.getScaling().convertToDouble();
  if (auto cf = op.getCapacityFactor()) {
    if (!(cf->convertToDouble() > 0.0))
      return op.emitOpError() << "capacity_factor must be positive, got "
                              << cf->convertToDouble();
  }
  if (minCapacity < 0)
    return op.emitOpError() << "min_capacity must be non-negative, got "
                            << minCapacity;
  std::optional<int64_t> nGroup, topkGroup;
  if (IntegerAttr a = op.getNGroupAttr())
    nGroup = a.getInt();
  if (IntegerAttr a = op.getTopkGroupAttr())
    topkGroup = a.getInt();
  if (nGroup.has_value() != topkGroup.has_value())
    return op.emitOpError() << "n_group and topk_group must be given together";
  if (nGroup) {
    if (*nGroup < 1 || numExperts % *nGroup != 0)
      return op.emitOpError() << "n_group (" << *nGroup
                              << ") must divide the number of experts ("
                              << numExperts << ")";
    if (*topkGroup < 1 || *topkGroup > *nGroup)
      return op.emitOpError() << "topk_group (" << *topkGroup
                              << ") must be in [1, n_group=" << *nGroup << "]";
    int64_t perGroup = numExperts / *nGroup;
    if (k > *topkGroup * perGroup)
      return op.emitOpError()
             << "top_k (" << k << ") exceeds the " << *topkGroup * perGroup
             << " experts of the topk_group=" << *topkGroup
             << " selected groups";
    if (op.getGroupScore() == GroupScore::top2_sum && perGroup < 2)
      return op.emitOpError()
             << "group_score top2_sum needs at least 2 experts per group, got "
             << perGroup;
  }
  return success();
}

/// Rejects attributes without a dialect prefix that the op does not define:
/// a misspelt option (`renormalise`) must not silently change the routing.
/// Dialect-prefixed discardable attributes (`shard.sharding`, ...) pass.
template <typename OpTy>
LogicalResult verifyKnownAttributes(OpTy op) {
  for (NamedAttribute attr : op->getDiscardableAttrs()) {
    StringRef name = attr.getName().strref();
    if (name.contains('.'))
      continue;
    std::string known;
    llvm::raw_string_ostream os(known);
    llvm::interleaveComma(
        llvm::make_filter_range(OpTy::getAttributeNames(),
                                [](StringRef n) {
                                  return n != "operandSegmentSizes";
                                }),
        os);
    return op.emitOpError() << "unknown attribute '" << name
                            << "' (known: " << known << ")";
  }
  return success();
}

/// Verifies `bias` [E].
LogicalResult verifyBias(Operation *op, Named bias, int64_t numExperts) {
  if (failed(checkRank(op, bias, 1, "[E]")))
    return failure();
  return checkDimIs(op, "number of experts E", bias, 0, numExperts);
}
} // namespace

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

int64_t RouterOp::getNumExperts() {
  Value logitsSource = getWeight() ? getWeight() : getInput();
  return cast<RankedTensorType>(logitsSource.getType()).getDimSize(1);
}

LogicalResult RouterOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyKnownAttributes(*this)))
    return failure();
  Named input{"input", getInput()};
  if (failed(checkRank(op, input, 2, getWeight() ? "[T, d]" : "[T, E]")))
    return failure();
  if (Value w = getWeight()) {
    Named weight{"weight", w};
    if (failed(checkRank(op, weight, 2, "[d, E]")) ||
        failed(checkSameDim(op, "hidden size d", input, 1, weight, 0)))
      return failure();
  }
  int64_t numExperts = getNumExperts();
  if (failed(verifyRouting(*this, numExperts)))
    return failure();
  if (Value b = getBias())
    if (failed(verifyBias(op, {"bias", b}, numExperts)))
      return failure();
  int64_t k = getTopKAttr().getInt();
  for (Named res : {Named{"expert_ids", getExpertIds()},
                    Named{"weights", getWeights()}}) {
    if (failed(checkRank(op, res, 2, "[T, top_k]")) ||
        failed(checkSameDim(op, "token count T", input, 0, res, 0)) ||
        failed(checkDimIs(op, "top_k", res, 1, k)))
      return failure();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

LogicalResult DispatchOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyKnownAttributes(*this)))
    return failure();
  Named input{"input", getInput()}, ids{"expert_ids", getExpertIds()};
  Named permuted{"permuted", getPermuted()}, offsets{"offsets", getOffsets()},
      mapping{"mapping", getMapping()};
  if (failed(checkRank(op, input, 2, "[T, d]")) ||
      failed(checkRank(op, ids, 2, "[T, k]")) ||
      failed(checkRank(op, permuted, 2, "[T*k, d]")) ||
      failed(checkRank(op, offsets, 1, "[E+1]")) ||
      failed(checkRank(op, mapping, 2, "[T, k]")))
    return failure();
  if (getNumExperts() < 1)
    return emitOpError() << "num_experts must be at least 1, got "
                         << getNumExperts();
  if (failed(checkSameDim(op, "token count T", input, 0, ids, 0)) ||
      failed(checkSameDim(op, "hidden size d", input, 1, permuted, 1)) ||
      failed(checkDimIs(op, "offsets size E+1", offsets, 0,
                        getNumExperts() + 1)) ||
      failed(checkSameElementType(op, input, permuted)))
    return failure();
  if (ids.type().getShape() != mapping.type().getShape())
    return emitOpError() << "mapping must have the shape of expert_ids "
                         << ids.type() << ", got " << mapping.type();
  int64_t t = input.dim(0), k = ids.dim(1);
  int64_t rows = ShapedType::isDynamic(t) || ShapedType::isDynamic(k)
                     ? ShapedType::kDynamic
                     : t * k;
  return checkDimIs(op, "slot count T*k", permuted, 0, rows);
}

//===----------------------------------------------------------------------===//
// ExpertsOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertsOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyKnownAttributes(*this)))
    return failure();
  Named input{"input", getInput()}, offsets{"offsets", getOffsets()};
  Named up{"w_up", getWUp()}, down{"w_down", getWDown()};
  std::optional<Named> gate;
  if (getWGate())
    gate = Named{"w_gate", getWGate()};
  if (failed(checkRank(op, input, 2, "[N, d]")) ||
      failed(checkRank(op, offsets, 1, "[E+1]")) ||
      failed(verifyFfnWeights(op, input, up, gate, down, /*lead=*/1)))
    return failure();
  int64_t numExperts = up.dim(0);
  if (!ShapedType::isDynamic(numExperts) &&
      failed(checkDimIs(op, "offsets size E+1", offsets, 0, numExperts + 1)))
    return failure();
  return checkResultTypeIsInputs(op, getInput(), getResult());
}

//===----------------------------------------------------------------------===//
// MlpOp
//===----------------------------------------------------------------------===//

LogicalResult MlpOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyKnownAttributes(*this)))
    return failure();
  Named input{"input", getInput()};
  Named up{"w_up", getWUp()}, down{"w_down", getWDown()};
  std::optional<Named> gate;
  if (getWGate())
    gate = Named{"w_gate", getWGate()};
  if (failed(checkRank(op, input, 2, "[T, d]")) ||
      failed(verifyFfnWeights(op, input, up, gate, down, /*lead=*/0)))
    return failure();
  return checkResultTypeIsInputs(op, getInput(), getResult());
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyKnownAttributes(*this)))
    return failure();
  Named input{"input", getInput()}, mapping{"mapping", getMapping()},
      weights{"weights", getWeights()}, result{"result", getResult()};
  if (failed(checkRank(op, input, 2, "[N, d]")) ||
      failed(checkRank(op, mapping, 2, "[T, k]")) ||
      failed(checkRank(op, weights, 2, "[T, k]")) ||
      failed(checkRank(op, result, 2, "[T, d]")))
    return failure();
  if (failed(checkSameDim(op, "token count T", mapping, 0, weights, 0)) ||
      failed(checkSameDim(op, "top_k", mapping, 1, weights, 1)) ||
      failed(checkSameDim(op, "token count T", mapping, 0, result, 0)) ||
      failed(checkSameDim(op, "hidden size d", input, 1, result, 1)) ||
      failed(checkSameElementType(op, input, result)))
    return failure();
  if (Value r = getResidual(); r && r.getType() != getResult().getType())
    return emitOpError() << "residual type " << r.getType()
                         << " must equal the result type "
                         << getResult().getType();
  return success();
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

int64_t LayerOp::getNumExperts() {
  return cast<RankedTensorType>(getRouterWeight().getType()).getDimSize(1);
}

int64_t LayerOp::getNumLocalExperts() {
  return cast<RankedTensorType>(getWUp().getType()).getDimSize(0);
}

LogicalResult LayerOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyKnownAttributes(*this)))
    return failure();
  Named input{"input", getInput()}, router{"router_weight", getRouterWeight()};
  if (failed(checkRank(op, input, 2, "[T, d]")) ||
      failed(checkRank(op, router, 2, "[d, E]")) ||
      failed(checkSameDim(op, "hidden size d", input, 1, router, 0)))
    return failure();
  int64_t numExperts = getNumExperts();
  if (failed(verifyRouting(*this, numExperts)))
    return failure();
  if (Value b = getRouterBias())
    if (failed(verifyBias(op, {"router_bias", b}, numExperts)))
      return failure();

  Named up{"w_up", getWUp()}, down{"w_down", getWDown()};
  std::optional<Named> gate;
  if (getWGate())
    gate = Named{"w_gate", getWGate()};
  if (failed(verifyFfnWeights(op, input, up, gate, down, /*lead=*/1)))
    return failure();
  if (!getExpertOffset()) {
    if (failed(checkDimIs(op, "number of experts E", up, 0, numExperts)))
      return failure();
  } else {
    int64_t local = getNumLocalExperts();
    if (!ShapedType::isDynamic(numExperts) && !ShapedType::isDynamic(local) &&
        (local < 1 || local > numExperts || numExperts % local != 0))
      return emitOpError()
             << "with expert_offset, w_up's " << local
             << " local experts must divide the router's " << numExperts;
  }

  // Shared experts: up and down together; gate and coefficient only with them.
  if (bool(getSharedUp()) != bool(getSharedDown()))
    return emitOpError() << "shared_up and shared_down must be given together";
  if ((getSharedGate() || getSharedCoef()) && !getSharedUp())
    return emitOpError()
           << "shared_gate and shared_coef need shared_up and shared_down";
  if (getSharedUp()) {
    std::optional<Named> sharedGate;
    if (getSharedGate())
      sharedGate = Named{"shared_gate", getSharedGate()};
    if (failed(verifyFfnWeights(op, input, {"shared_up", getSharedUp()},
                                sharedGate, {"shared_down", getSharedDown()},
                                /*lead=*/0)))
      return failure();
  }
  if (Value c = getSharedCoef()) {
    Named coef{"shared_coef", c};
    if (failed(checkRank(op, coef, 2, "[d, 1]")) ||
        failed(checkSameDim(op, "hidden size d", input, 1, coef, 0)) ||
        failed(checkDimIs(op, "gate width", coef, 1, 1)))
      return failure();
  }

  // PR-MoE residual MLP.
  if (bool(getMlpUp()) != bool(getMlpDown()))
    return emitOpError() << "mlp_up and mlp_down must be given together";
  if (getMlpCoef() && !getMlpUp())
    return emitOpError() << "mlp_coef needs mlp_up and mlp_down";
  if (getMlpUp() &&
      failed(verifyFfnWeights(op, input, {"mlp_up", getMlpUp()}, std::nullopt,
                              {"mlp_down", getMlpDown()}, /*lead=*/0)))
    return failure();
  if (Value c = getMlpCoef()) {
    Named coef{"mlp_coef", c};
    if (failed(checkRank(op, coef, 2, "[d, 2]")) ||
        failed(checkSameDim(op, "hidden size d", input, 1, coef, 0)) ||
        failed(checkDimIs(op, "mixing width", coef, 1, 2)))
      return failure();
  }
  if (getMlpCoefBias() && !getMlpCoef())
    return emitOpError() << "mlp_coef_bias needs mlp_coef";
  if (Value c = getMlpCoefBias()) {
    Named bias{"mlp_coef_bias", c};
    if (failed(checkRank(op, bias, 1, "[2]")) ||
        failed(checkDimIs(op, "mixing width", bias, 0, 2)))
      return failure();
  }

  return checkResultTypeIsInputs(op, getInput(), getResult());
}

//===----------------------------------------------------------------------===//
// Canonicalization: routing options that cannot change the result
//===----------------------------------------------------------------------===//

double mlir::moe::routingCapacity(double capacityFactor, int64_t tokens,
                                  int64_t topK, int64_t experts,
                                  int64_t minCapacity) {
  double factor = capacityFactor * double(topK) / double(experts);
  return std::max(std::ceil(double(tokens) * factor), double(minCapacity));
}

namespace {
/// Drops routing options that are provably no-ops, so that later passes see
/// one canonical form:
/// - a capacity that can never drop: an expert gets at most one assignment per
///   token, so a capacity >= T keeps everything (dropless);
/// - group-limited routing that keeps every group (topk_group == n_group);
/// - `renormalize` after a softmax over exactly the selected experts
///   (score_after_topk, or softmax over all E with top_k == E): the weights
///   already sum to one;
/// - `score_after_topk` with top_k == E: a softmax over the selected experts is
///   the softmax over all experts.
template <typename OpTy>
struct SimplifyRouting : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    int64_t numExperts = op.getNumExperts();
    int64_t k = op.getTopKAttr().getInt();
    int64_t tokens =
        cast<RankedTensorType>(op.getInput().getType()).getDimSize(0);
    bool softmax = op.getScoreFunc() == ScoreFunc::softmax;

    bool dropCapacity = false;
    if (auto cf = op.getCapacityFactor(); cf && !ShapedType::isDynamic(tokens)) {
      dropCapacity =
          routingCapacity(cf->convertToDouble(), tokens, k, numExperts,
                          op.getMinCapacityAttr().getInt()) >= double(tokens);
    }
    bool dropGroups = op.getNGroupAttr() && op.getTopkGroupAttr() &&
                      op.getNGroupAttr().getInt() ==
                          op.getTopkGroupAttr().getInt();
    bool allSelected = k == numExperts;
    bool dropAfterTopk = softmax && op.getScoreAfterTopk() && allSelected;
    bool dropRenorm = softmax && op.getRenormalize() &&
                      (op.getScoreAfterTopk() || allSelected) &&
                      op.getScaling().convertToDouble() > 0.0;
    if (!dropCapacity && !dropGroups && !dropAfterTopk && !dropRenorm)
      return rewriter.notifyMatchFailure(op, "routing is already canonical");

    rewriter.modifyOpInPlace(op, [&] {
      if (dropCapacity) {
        op.removeCapacityFactorAttr();
        op.setMinCapacity(0);
        op.setDropPolicy(DropPolicy::position);
      }
      if (dropGroups) {
        op.removeNGroupAttr();
        op.removeTopkGroupAttr();
        op.setGroupScore(GroupScore::max);
      }
      if (dropAfterTopk)
        op.setScoreAfterTopk(false);
      if (dropRenorm)
        op.setRenormalize(false);
    });
    return success();
  }
};
} // namespace

void RouterOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                           MLIRContext *context) {
  results.add<SimplifyRouting<RouterOp>>(context);
}

void LayerOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                          MLIRContext *context) {
  results.add<SimplifyRouting<LayerOp>>(context);
}

/// Scaled RoPE: one positive, finite inverse frequency per rotated pair of
/// the `rotary` dimensions, and a positive cos/sin factor.
template <typename OpT>
static LogicalResult verifyRopeScaling(OpT op, int64_t rotary) {
  if (std::optional<ArrayRef<float>> freqs = op.getRopeInvFreq()) {
    if (int64_t(freqs->size()) != rotary / 2)
      return op.emitOpError()
             << "rope_inv_freq needs " << rotary / 2
             << " inverse frequencies (one per rotated pair), got "
             << freqs->size();
    // Zero leaves a pair unrotated (all zero: no rotary embedding, as in
    // GPT with learned positions).
    for (float f : *freqs)
      if (!(f >= 0.0f) || !std::isfinite(f))
        return op.emitOpError()
               << "rope_inv_freq must be non-negative and finite, got " << f;
  }
  double factor = op.getRopeAttentionFactor().convertToDouble();
  if (!(factor > 0.0) || !std::isfinite(factor))
    return op.emitOpError() << "rope_attention_factor must be positive, got "
                            << factor;
  return success();
}

LogicalResult MlaAttentionOp::verify() {
  Operation *op = getOperation();
  Named x{"input", getInput()}, qb{"q_b", getQB()}, kva{"kv_a", getKvA()},
      kvn{"kv_a_norm", getKvANorm()}, kvb{"kv_b", getKvB()},
      wo{"w_o", getWO()}, kc{"key_cache_in", getKeyCacheIn()},
      vc{"value_cache_in", getValueCacheIn()}, pos{"position", getPosition()};
  if (failed(checkRank(op, x, 2, "[T, d]")) ||
      failed(checkRank(op, qb, 2, "[Lq or d, H*(nope+rope)]")) ||
      failed(checkRank(op, kva, 2, "[d, Lkv+rope]")) ||
      failed(checkRank(op, kvn, 1, "[Lkv]")) ||
      failed(checkRank(op, kvb, 2, "[Lkv, H*(nope+v)]")) ||
      failed(checkRank(op, wo, 2, "[H*v, d]")) ||
      failed(checkRank(op, kc, 3, "[S, H, nope+rope]")) ||
      failed(checkRank(op, vc, 3, "[S, H, v]")) ||
      failed(checkRank(op, pos, 1, "[B]")))
    return failure();
  for (Named n : {qb, kva, kvn, kvb, wo, kc, vc})
    if (!n.type().hasStaticShape())
      return emitOpError() << n.name << " needs a static shape, got "
                           << n.type();
  int64_t heads = getNumHeads(), nope = getNopeDim(), rope = getRopeDim(),
          vdim = getVDim(), lkv = kvn.dim(0);
  if (heads < 1 || nope < 0 || rope < 2 || rope % 2 != 0 || vdim < 1)
    return emitOpError() << "needs num_heads >= 1, nope_dim >= 0, an even "
                            "rope_dim >= 2 and v_dim >= 1";
  if (failed(verifyRopeScaling(*this, rope)))
    return failure();
  if (bool(getQA()) != bool(getQANorm()))
    return emitOpError() << "q_a and q_a_norm come together";
  Named qIn = x;
  if (getQA()) {
    Named qa{"q_a", getQA()}, qan{"q_a_norm", getQANorm()};
    if (failed(checkRank(op, qa, 2, "[d, Lq]")) ||
        failed(checkRank(op, qan, 1, "[Lq]")) ||
        failed(checkSameDim(op, "hidden size d", x, 1, qa, 0)) ||
        failed(checkSameDim(op, "query rank Lq", qa, 1, qan, 0)) ||
        failed(checkSameElementType(op, x, qa)) ||
        failed(checkSameElementType(op, x, qan)))
      return failure();
    qIn = qan;
  }
  int64_t qInDim = getQA() ? qIn.dim(0) : x.dim(1);
  if (failed(checkDimIs(op, "q_b rows", qb, 0, qInDim)) ||
      failed(checkDimIs(op, "query width H*(nope+rope)", qb, 1,
                        heads * (nope + rope))) ||
      failed(checkSameDim(op, "hidden size d", x, 1, kva, 0)) ||
      failed(checkDimIs(op, "kv_a width Lkv+rope", kva, 1, lkv + rope)) ||
      failed(checkDimIs(op, "kv_b rows Lkv", kvb, 0, lkv)) ||
      failed(checkDimIs(op, "kv_b width H*(nope+v)", kvb, 1,
                        heads * (nope + vdim))) ||
      failed(checkDimIs(op, "w_o rows H*v", wo, 0, heads * vdim)) ||
      failed(checkSameDim(op, "hidden size d", x, 1, wo, 1)) ||
      failed(checkDimIs(op, "key cache heads", kc, 1, heads)) ||
      failed(checkDimIs(op, "key cache width nope+rope", kc, 2, nope + rope)) ||
      failed(checkDimIs(op, "value cache heads", vc, 1, heads)) ||
      failed(checkDimIs(op, "value cache width v", vc, 2, vdim)) ||
      failed(checkSameDim(op, "cache rows S", kc, 0, vc, 0)))
    return failure();
  if (failed(checkSequences(op, pos, x, kc)))
    return failure();
  for (Named n : {qb, kva, kvn, kvb, wo, kc, vc})
    if (failed(checkSameElementType(op, x, n)))
      return failure();
  if (!(getEpsilon().convertToDouble() > 0.0))
    return emitOpError() << "epsilon must be positive";
  if (auto scale = getSoftmaxScale(); scale && !(scale->convertToDouble() > 0))
    return emitOpError() << "softmax_scale must be positive";
  if (getResult().getType() != x.type() ||
      getKeyCache().getType() != kc.type() ||
      getValueCache().getType() != vc.type())
    return emitOpError() << "results must have the input's and the caches' "
                            "types";
  return success();
}

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"

//===----------------------------------------------------------------------===//
// DispatchExchangeOp / CombineExchangeOp
//===----------------------------------------------------------------------===//

/// The group attributes both exchanges share; `offsets` gives E.
static LogicalResult verifyExchangeGroup(Operation *op, int64_t groupSize,
                                         ArrayRef<int16_t> axes,
                                         Named offsets, int64_t &localExperts) {
  localExperts = ShapedType::kDynamic;
  if (groupSize < 1)
    return op->emitOpError() << "group_size must be at least 1, got "
                             << groupSize;
  if (axes.empty())
    return op->emitOpError() << "grid_axes must name at least one grid axis";
  for (int16_t a : axes)
    if (a < 0)
      return op->emitOpError() << "grid axis " << a << " is negative";
  if (failed(checkRank(op, offsets, 1, "[E+1]")))
    return failure();
  int64_t e1 = offsets.dim(0);
  if (ShapedType::isDynamic(e1))
    return op->emitOpError() << "offsets need a static expert count";
  if ((e1 - 1) % groupSize != 0 || e1 < 2)
    return op->emitOpError() << "the " << e1 - 1
                             << " experts do not split evenly over a group of "
                             << groupSize;
  localExperts = (e1 - 1) / groupSize;
  return success();
}

LogicalResult DispatchExchangeOp::verify() {
  Operation *op = getOperation();
  Named input{"input", getInput()}, offsets{"offsets", getOffsets()},
      result{"result", getResult()},
      resultOffsets{"result_offsets", getResultOffsets()},
      counts{"counts", getCounts()};
  int64_t local;
  if (failed(verifyExchangeGroup(op, getGroupSize(), getGridAxes(), offsets,
                                 local)) ||
      failed(checkRank(op, input, 2, "[N, d]")) ||
      failed(checkRank(op, result, 2, "[C, d]")) ||
      failed(checkRank(op, resultOffsets, 1, "[E/G+1]")) ||
      failed(checkRank(op, counts, 2, "[G, E/G]")) ||
      failed(checkSameDim(op, "hidden size d", input, 1, result, 1)) ||
      failed(checkSameElementType(op, input, result)) ||
      failed(checkDimIs(op, "local expert count", resultOffsets, 0,
                        local + 1)) ||
      failed(checkDimIs(op, "group size", counts, 0, getGroupSize())) ||
      failed(checkDimIs(op, "local expert count", counts, 1, local)))
    return failure();
  return success();
}

LogicalResult CombineExchangeOp::verify() {
  Operation *op = getOperation();
  Named input{"input", getInput()}, counts{"counts", getCounts()},
      offsets{"offsets", getOffsets()}, result{"result", getResult()};
  int64_t local;
  if (failed(verifyExchangeGroup(op, getGroupSize(), getGridAxes(), offsets,
                                 local)) ||
      failed(checkRank(op, input, 2, "[C, d]")) ||
      failed(checkRank(op, counts, 2, "[G, E/G]")) ||
      failed(checkRank(op, result, 2, "[N, d]")) ||
      failed(checkSameDim(op, "hidden size d", input, 1, result, 1)) ||
      failed(checkSameElementType(op, input, result)) ||
      failed(checkDimIs(op, "group size", counts, 0, getGroupSize())) ||
      failed(checkDimIs(op, "local expert count", counts, 1, local)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// EmbeddingOp / RmsNormOp / LayerNormOp
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  Operation *op = getOperation();
  Named ids{"ids", getIds()}, table{"table", getTable()},
      result{"result", getResult()};
  if (failed(checkRank(op, ids, 1, "[T]")) ||
      failed(checkRank(op, table, 2, "[V, d]")) ||
      failed(checkRank(op, result, 2, "[T, d]")) ||
      failed(checkSameDim(op, "token count T", ids, 0, result, 0)) ||
      failed(checkSameDim(op, "hidden size d", table, 1, result, 1)) ||
      failed(checkSameElementType(op, table, result)))
    return failure();
  return success();
}

/// The shared checks of the two normalisations.
static LogicalResult verifyNorm(Operation *op, Value input, Value weight,
                                Value bias, Value result, double epsilon) {
  Named x{"input", input}, w{"weight", weight};
  if (failed(checkRank(op, x, 2, "[T, d]")) ||
      failed(checkRank(op, w, 1, "[d]")) ||
      failed(checkSameDim(op, "hidden size d", x, 1, w, 0)) ||
      failed(checkSameElementType(op, x, w)))
    return failure();
  if (bias) {
    Named b{"bias", bias};
    if (failed(checkRank(op, b, 1, "[d]")) ||
        failed(checkSameDim(op, "hidden size d", x, 1, b, 0)) ||
        failed(checkSameElementType(op, x, b)))
      return failure();
  }
  if (failed(checkResultTypeIsInputs(op, input, result)))
    return failure();
  if (!(epsilon > 0.0))
    return op->emitOpError() << "epsilon must be positive, got " << epsilon;
  return success();
}

LogicalResult RmsNormOp::verify() {
  return verifyNorm(getOperation(), getInput(), getWeight(), Value(),
                    getResult(), getEpsilon().convertToDouble());
}

LogicalResult LayerNormOp::verify() {
  return verifyNorm(getOperation(), getInput(), getWeight(), getBias(),
                    getResult(), getEpsilon().convertToDouble());
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::verify() {
  Operation *op = getOperation();
  Named x{"input", getInput()}, wq{"w_q", getWQ()}, wk{"w_k", getWK()},
      wv{"w_v", getWV()}, wo{"w_o", getWO()},
      kc{"key_cache_in", getKeyCacheIn()},
      vc{"value_cache_in", getValueCacheIn()}, pos{"position", getPosition()};
  if (failed(checkRank(op, x, 2, "[T, d]")) ||
      failed(checkRank(op, wq, 2, "[d, H*hd]")) ||
      failed(checkRank(op, wk, 2, "[d, KV*hd]")) ||
      failed(checkRank(op, wv, 2, "[d, KV*hd]")) ||
      failed(checkRank(op, wo, 2, "[H*hd, d]")) ||
      failed(checkRank(op, kc, 3, "[S, KV, hd]")) ||
      failed(checkRank(op, vc, 3, "[S, KV, hd]")) ||
      failed(checkRank(op, pos, 1, "[B]")))
    return failure();
  for (Named n : {wq, wk, wv, wo, kc, vc, pos})
    if (!n.type().hasStaticShape())
      return emitOpError() << n.name << " needs a static shape, got "
                           << n.type();
  if (failed(checkSequences(op, pos, x, kc)))
    return failure();
  int64_t heads = getNumHeads(), kvHeads = getNumKvHeads();
  if (heads < 1 || kvHeads < 1 || heads % kvHeads != 0)
    return emitOpError() << "num_heads (" << heads
                         << ") must be a positive multiple of num_kv_heads ("
                         << kvHeads << ")";
  int64_t hd = kc.dim(2);
  if (hd % 2 != 0)
    return emitOpError() << "the head size " << hd
                         << " must be even for the rotary embedding";
  if (failed(verifyRopeScaling(*this, hd)))
    return failure();
  if (failed(checkSameDim(op, "hidden size d", x, 1, wq, 0)) ||
      failed(checkSameDim(op, "hidden size d", x, 1, wk, 0)) ||
      failed(checkSameDim(op, "hidden size d", x, 1, wv, 0)) ||
      failed(checkSameDim(op, "hidden size d", x, 1, wo, 1)) ||
      failed(checkDimIs(op, "query width H*hd", wq, 1, heads * hd)) ||
      failed(checkDimIs(op, "query width H*hd", wo, 0, heads * hd)) ||
      failed(checkDimIs(op, "key width KV*hd", wk, 1, kvHeads * hd)) ||
      failed(checkDimIs(op, "value width KV*hd", wv, 1, kvHeads * hd)) ||
      failed(checkDimIs(op, "kv head count", kc, 1, kvHeads)))
    return failure();
  auto vector = [&](Value v, StringRef name, int64_t size) -> LogicalResult {
    if (!v)
      return success();
    Named n{name, v};
    if (failed(checkRank(op, n, 1, "[n]")) ||
        failed(checkDimIs(op, (name + " size").str(), n, 0, size)) ||
        failed(checkSameElementType(op, x, n)))
      return failure();
    return success();
  };
  if (failed(vector(getQBias(), "q_bias", heads * hd)) ||
      failed(vector(getKBias(), "k_bias", kvHeads * hd)) ||
      failed(vector(getVBias(), "v_bias", kvHeads * hd)))
    return failure();
  if (bool(getQNorm()) != bool(getKNorm()))
    return emitOpError() << "q_norm and k_norm come together";
  if (getQNorm()) {
    // Per head ([hd], Qwen3) or over the whole projection ([H*hd] and
    // [KV*hd], OLMoE).
    auto qType = cast<RankedTensorType>(getQNorm().getType());
    bool whole = qType.getRank() == 1 && qType.getDimSize(0) == heads * hd &&
                 heads > 1;
    if (failed(vector(getQNorm(), "q_norm", whole ? heads * hd : hd)) ||
        failed(vector(getKNorm(), "k_norm", whole ? kvHeads * hd : hd)))
      return failure();
  }
  if (!(getQkNormEpsilon().convertToDouble() > 0.0))
    return emitOpError() << "qk_norm_epsilon must be positive";
  if (kc.type() != vc.type())
    return emitOpError() << "the value cache " << vc.type()
                         << " must have the key cache's type " << kc.type();
  for (Named n : {wq, wk, wv, wo, kc})
    if (failed(checkSameElementType(op, x, n)))
      return failure();
  if (getResult().getType() != x.type() ||
      getKeyCache().getType() != kc.type() ||
      getValueCache().getType() != vc.type())
    return emitOpError() << "results must have the input's and the caches' "
                            "types";
  if (!(getRopeTheta().convertToDouble() > 0.0))
    return emitOpError() << "rope_theta must be positive";
  if (std::optional<APFloat> scale = getScale()) {
    double value = scale->convertToDouble();
    if (!(value > 0.0) || !std::isfinite(value))
      return emitOpError() << "scale must be positive and finite, got "
                           << value;
  }
  if (Value table = getPositionBias()) {
    Named t{"position_bias", table};
    if (failed(checkRank(op, t, 2, "[buckets, H]")) ||
        failed(checkDimIs(op, "position bias heads", t, 1, heads)) ||
        failed(checkSameElementType(op, x, t)))
      return failure();
    int64_t buckets = t.dim(0);
    // T5 halves the buckets for the two directions, then spends half of
    // those on exact distances: at least 2 per direction.
    if (ShapedType::isDynamic(buckets) ||
        buckets < (getBidirectional() ? 4 : 2))
      return emitOpError() << "position_bias needs at least "
                           << (getBidirectional() ? 4 : 2)
                           << " buckets, got " << t.type();
    int64_t maxDistance = getRelativeMaxDistance().value_or(0);
    int64_t exact = (getBidirectional() ? buckets / 2 : buckets) / 2;
    if (maxDistance <= exact)
      return emitOpError() << "position_bias needs relative_max_distance "
                              "above its "
                           << exact << " exact buckets";
  } else if (getRelativeMaxDistance()) {
    return emitOpError() << "relative_max_distance needs a position_bias";
  }
  if (Value len = getKeyLength()) {
    Named l{"key_length", len};
    if (failed(checkRank(op, l, 1, "[B]")) ||
        failed(checkDimIs(op, "key_length size", l, 0, pos.dim(0))))
      return failure();
  }
  return success();
}

double AttentionOp::getScoreScale() {
  if (std::optional<APFloat> scale = getScale())
    return scale->convertToDouble();
  auto cache = cast<RankedTensorType>(getKeyCacheIn().getType());
  return 1.0 / std::sqrt(double(cache.getDimSize(2)));
}

LogicalResult CrossAttentionOp::verify() {
  Operation *op = getOperation();
  Named x{"input", getInput()}, wq{"w_q", getWQ()}, wo{"w_o", getWO()},
      mk{"memory_key", getMemoryKey()}, mv{"memory_value", getMemoryValue()},
      len{"length", getLength()};
  if (failed(checkRank(op, x, 2, "[B*T, d]")) ||
      failed(checkRank(op, wq, 2, "[d, H*hd]")) ||
      failed(checkRank(op, wo, 2, "[H*hd, d]")) ||
      failed(checkRank(op, mk, 3, "[B*S, H, hd]")) ||
      failed(checkRank(op, mv, 3, "[B*S, H, hd]")) ||
      failed(checkRank(op, len, 1, "[B]")))
    return failure();
  for (Named n : {x, wq, wo, mk, mv, len})
    if (!n.type().hasStaticShape())
      return emitOpError() << n.name << " needs a static shape, got "
                           << n.type();
  int64_t heads = getNumHeads(), batch = len.dim(0);
  if (heads < 1)
    return emitOpError() << "num_heads must be positive, got " << heads;
  if (batch < 1 || x.dim(0) % batch != 0 || mk.dim(0) % batch != 0)
    return emitOpError() << "input rows (" << x.dim(0) << ") and memory rows ("
                         << mk.dim(0) << ") must split evenly into the "
                         << batch << " sequences of the length";
  if (mk.type() != mv.type())
    return emitOpError() << "memory_value " << mv.type()
                         << " must have memory_key's type " << mk.type();
  int64_t hd = mk.dim(2);
  if (failed(checkDimIs(op, "memory heads", mk, 1, heads)) ||
      failed(checkSameDim(op, "hidden size d", x, 1, wq, 0)) ||
      failed(checkSameDim(op, "hidden size d", x, 1, wo, 1)) ||
      failed(checkDimIs(op, "query width H*hd", wq, 1, heads * hd)) ||
      failed(checkDimIs(op, "output rows H*hd", wo, 0, heads * hd)))
    return failure();
  for (Named n : {wq, wo, mk})
    if (failed(checkSameElementType(op, x, n)))
      return failure();
  double scale = getScale().convertToDouble();
  if (!(scale > 0.0) || !std::isfinite(scale))
    return emitOpError() << "scale must be positive and finite, got " << scale;
  if (getResult().getType() != x.type())
    return emitOpError() << "the result must have the input's type "
                         << x.type();
  return success();
}
