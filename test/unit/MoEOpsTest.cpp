//===- MoEOpsTest.cpp - Build moe ops in C++ and check their verifiers -----===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "MoETestUtils.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;
using namespace mlir::moe;
using moe_test::MoEFixture;

namespace {

class RouterTest : public MoEFixture {
protected:
  /// Builds a router over x [tokens, 64] and weight [64, experts].
  RouterOp build(int64_t tokens, int64_t experts, int64_t k,
                 int64_t resultK = -1) {
    Value x = arg({tokens, 64}, bf16());
    Value w = arg({64, experts}, bf16());
    if (resultK < 0)
      resultK = k;
    return RouterOp::create(builder, loc, tensor({tokens, resultK}, i32()),
                            tensor({tokens, resultK}, f32()), x, w, Value(),
                            i64(k), nullptr, nullptr, nullptr, nullptr,
                            nullptr, nullptr, nullptr, nullptr, nullptr,
                            nullptr);
  }
};

TEST_F(RouterTest, MixtralRoutingVerifies) {
  RouterOp op = build(16, 8, 2);
  op.setRenormalize(true);
  EXPECT_EQ(verifyMessage(op), "");
  EXPECT_EQ(op.getNumExperts(), 8);
  // Defaults the user did not spell.
  EXPECT_EQ(op.getScoreFunc(), ScoreFunc::softmax);
  EXPECT_EQ(op.getScaling().convertToDouble(), 1.0);
  EXPECT_FALSE(op.getCapacityFactor().has_value());
}

TEST_F(RouterTest, TopKLargerThanExpertsIsRejected) {
  RouterOp op = build(16, 8, 9);
  EXPECT_EQ(verifyMessage(op),
            "'moe.router' op top_k (9) exceeds the number of experts (8)");
}

TEST_F(RouterTest, ZeroTopKIsRejected) {
  RouterOp op = build(16, 8, 0);
  EXPECT_EQ(verifyMessage(op), "'moe.router' op top_k must be at least 1, got 0");
}

TEST_F(RouterTest, ResultWidthMustBeTopK) {
  RouterOp op = build(16, 8, 2, /*resultK=*/3);
  EXPECT_EQ(verifyMessage(op),
            "'moe.router' op top_k mismatch: expert_ids has 3, expected 2");
}

TEST_F(RouterTest, HiddenSizeMismatchNamesBothOperands) {
  Value x = arg({4, 64}, f32());
  Value w = arg({32, 8}, f32());
  auto op = RouterOp::create(builder, loc, tensor({4, 1}, i32()),
                             tensor({4, 1}, f32()), x, w, Value(), i64(1),
                             nullptr, nullptr, nullptr, nullptr, nullptr,
                             nullptr, nullptr, nullptr, nullptr, nullptr);
  EXPECT_EQ(verifyMessage(op), "'moe.router' op hidden size d mismatch: input "
                               "has 64 but weight has 32");
}

TEST_F(RouterTest, ScoreAfterTopKNeedsSoftmax) {
  RouterOp op = build(16, 8, 2);
  op.setScoreFunc(ScoreFunc::sigmoid);
  op.setScoreAfterTopk(true);
  EXPECT_EQ(verifyMessage(op), "'moe.router' op score_after_topk needs "
                               "score_func softmax, got sigmoid");
}

TEST_F(RouterTest, GroupLimitedRoutingChecksDivisibility) {
  RouterOp op = build(16, 256, 8);
  op.setNGroupAttr(i64(8));
  op.setTopkGroupAttr(i64(4));
  op.setGroupScore(GroupScore::top2_sum);
  EXPECT_EQ(verifyMessage(op), "");
  op.setNGroupAttr(i64(6));
  EXPECT_EQ(verifyMessage(op), "'moe.router' op n_group (6) must divide the "
                               "number of experts (256)");
}

TEST_F(RouterTest, BiasMustHaveOneEntryPerExpert) {
  Value x = arg({4, 64}, f32());
  Value w = arg({64, 8}, f32());
  Value bias = arg({7}, f32());
  auto op = RouterOp::create(builder, loc, tensor({4, 2}, i32()),
                             tensor({4, 2}, f32()), x, w, bias, i64(2),
                             nullptr, nullptr, nullptr, nullptr, nullptr,
                             nullptr, nullptr, nullptr, nullptr, nullptr);
  EXPECT_EQ(verifyMessage(op), "'moe.router' op number of experts E mismatch: "
                               "bias has 7, expected 8");
}

/// Runs the canonicalization patterns of the router on `op`. A call (which
/// has side effects) keeps the results alive: the greedy driver erases
/// unused pure ops.
void canonicalize(RouterOp op) {
  OpBuilder b(op.getContext());
  b.setInsertionPointAfter(op);
  func::CallOp::create(b, op.getLoc(), "sink", TypeRange{}, op->getResults());
  RewritePatternSet patterns(op.getContext());
  RouterOp::getCanonicalizationPatterns(patterns, op.getContext());
  ASSERT_TRUE(succeeded(applyOpPatternsGreedily(
      ArrayRef<Operation *>{op.getOperation()}, std::move(patterns))));
}

TEST_F(RouterTest, CapacityThatCannotDropIsRemoved) {
  // capacity = ceil(2.0 * 16 * 2 / 4) = 16 >= T = 16: nothing can drop.
  RouterOp op = build(16, 4, 2);
  op.setCapacityFactorAttr(builder.getF64FloatAttr(2.0));
  canonicalize(op);
  EXPECT_FALSE(op.getCapacityFactor().has_value());
}

TEST_F(RouterTest, CapacityThatCanDropIsKept) {
  // capacity = ceil(1.0 * 16 * 2 / 4) = 8 < T = 16.
  RouterOp op = build(16, 4, 2);
  op.setCapacityFactorAttr(builder.getF64FloatAttr(1.0));
  canonicalize(op);
  ASSERT_TRUE(op.getCapacityFactor().has_value());
  EXPECT_EQ(op.getCapacityFactor()->convertToDouble(), 1.0);
}

TEST_F(RouterTest, RenormalizeAfterSoftmaxOfAllExpertsIsRemoved) {
  RouterOp op = build(16, 4, 4);
  op.setRenormalize(true);
  canonicalize(op);
  EXPECT_FALSE(op.getRenormalize());
  // With top_k < E the renormalisation changes the weights and stays.
  RouterOp partial = build(16, 8, 2);
  partial.setRenormalize(true);
  canonicalize(partial);
  EXPECT_TRUE(partial.getRenormalize());
}

class PrimitivesTest : public MoEFixture {};

TEST_F(PrimitivesTest, DispatchSlotCountIsTokensTimesK) {
  Value x = arg({16, 64}, f32());
  Value ids = arg({16, 2}, i32());
  auto good = DispatchOp::create(builder, loc, tensor({32, 64}, f32()),
                                 tensor({9}, i32()), tensor({16, 2}, i32()), x,
                                 ids, i64(8));
  EXPECT_EQ(verifyMessage(good), "");
  auto bad = DispatchOp::create(builder, loc, tensor({16, 64}, f32()),
                                tensor({9}, i32()), tensor({16, 2}, i32()), x,
                                ids, i64(8));
  EXPECT_EQ(verifyMessage(bad), "'moe.dispatch' op slot count T*k mismatch: "
                                "permuted has 16, expected 32");
}

TEST_F(PrimitivesTest, DispatchAcceptsDynamicTokens) {
  Value x = arg({ShapedType::kDynamic, 64}, f32());
  Value ids = arg({ShapedType::kDynamic, 2}, i32());
  auto op = DispatchOp::create(
      builder, loc, tensor({ShapedType::kDynamic, 64}, f32()),
      tensor({9}, i32()), tensor({ShapedType::kDynamic, 2}, i32()), x, ids,
      i64(8));
  EXPECT_EQ(verifyMessage(op), "");
}

TEST_F(PrimitivesTest, ExpertsGateMustMatchUp) {
  Value x = arg({32, 64}, bf16());
  Value off = arg({9}, i32());
  Value up = arg({8, 64, 128}, bf16());
  Value gate = arg({8, 64, 96}, bf16());
  Value down = arg({8, 128, 64}, bf16());
  auto act = ActivationAttr::get(&context, Activation::silu);
  auto op = ExpertsOp::create(builder, loc, tensor({32, 64}, bf16()), x, off,
                              up, gate, down, act);
  EXPECT_EQ(verifyMessage(op),
            "'moe.experts' op w_gate must have the shape of w_up "
            "'tensor<8x64x128xbf16>', got 'tensor<8x64x96xbf16>'");
}

TEST_F(PrimitivesTest, ExpertsWeightDtypeMustMatchTokens) {
  Value x = arg({32, 64}, bf16());
  Value off = arg({9}, i32());
  Value up = arg({8, 64, 128}, f32());
  Value down = arg({8, 128, 64}, bf16());
  auto act = ActivationAttr::get(&context, Activation::gelu);
  auto op = ExpertsOp::create(builder, loc, tensor({32, 64}, bf16()), x, off,
                              up, Value(), down, act);
  EXPECT_EQ(verifyMessage(op), "'moe.experts' op w_up element type 'f32' "
                               "differs from input's 'bf16'");
}

TEST_F(PrimitivesTest, CombineResidualMustMatchResult) {
  Value e = arg({32, 64}, f32());
  Value map = arg({16, 2}, i32());
  Value w = arg({16, 2}, f32());
  Value residual = arg({16, 64}, bf16());
  auto op = CombineOp::create(builder, loc, tensor({16, 64}, f32()), e, map, w,
                              residual);
  EXPECT_EQ(verifyMessage(op),
            "'moe.combine' op residual type 'tensor<16x64xbf16>' must equal "
            "the result type 'tensor<16x64xf32>'");
}

TEST_F(PrimitivesTest, MlpVerifiesDenseShapes) {
  Value x = arg({16, 64}, f32());
  Value up = arg({64, 256}, f32());
  Value down = arg({256, 64}, f32());
  auto act = ActivationAttr::get(&context, Activation::gelu_tanh);
  auto op = MlpOp::create(builder, loc, tensor({16, 64}, f32()), x, up,
                          Value(), down, act);
  EXPECT_EQ(verifyMessage(op), "");
  Value badDown = arg({128, 64}, f32());
  auto bad = MlpOp::create(builder, loc, tensor({16, 64}, f32()), x, up,
                           Value(), badDown, act);
  EXPECT_EQ(verifyMessage(bad), "'moe.mlp' op ffn size f mismatch: w_up has "
                                "256 but w_down has 128");
}

} // namespace
