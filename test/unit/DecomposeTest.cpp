//===- DecomposeTest.cpp - moe.layer decomposition built from C++ ----------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "MoETestUtils.h"

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Pass/PassManager.h"

using namespace mlir;
using namespace mlir::moe;
using moe_test::MoEFixture;

namespace {

/// Optional parts of a layer built by the fixture.
struct LayerParts {
  int64_t tokens = 16, hidden = 64, ffn = 128, experts = 8, k = 2;
  bool gated = true;
  bool shared = false, sharedCoef = false;
  bool residualMlp = false, mlpCoef = false;
  std::optional<double> capacity;
};

class DecomposeTest : public MoEFixture {
protected:
  LayerOp buildLayer(const LayerParts &p) {
    Type e = bf16();
    int64_t t = p.tokens, d = p.hidden, f = p.ffn, n = p.experts;
    Value x = arg({t, d}, e);
    Value router = arg({d, n}, e);
    Value up = arg({n, d, f}, e);
    Value gate = p.gated ? arg({n, d, f}, e) : Value();
    Value down = arg({n, f, d}, e);
    Value sUp, sGate, sDown, sCoef, mUp, mDown, mCoef;
    if (p.shared) {
      sUp = arg({d, 2 * f}, e);
      sGate = arg({d, 2 * f}, e);
      sDown = arg({2 * f, d}, e);
      if (p.sharedCoef)
        sCoef = arg({d, 1}, e);
    }
    if (p.residualMlp) {
      mUp = arg({d, f}, e);
      mDown = arg({f, d}, e);
      if (p.mlpCoef)
        mCoef = arg({d, 2}, e);
    }
    FloatAttr cf = p.capacity ? builder.getF64FloatAttr(*p.capacity) : nullptr;
    auto op = LayerOp::create(
        builder, loc, tensor({t, d}, e), x, router, Value(), up, gate, down,
        sUp, sGate, sDown, sCoef, mUp, mDown, mCoef, /*mlp_coef_bias=*/Value(),
        /*expert_offset=*/Value(),
        ActivationAttr::get(&context, Activation::silu), i64(p.k), nullptr,
        nullptr, builder.getUnitAttr(), nullptr, cf, nullptr, nullptr, nullptr,
        nullptr, nullptr);
    func::ReturnOp::create(builder, loc, op.getResult());
    func.setFunctionType(builder.getFunctionType(
        SmallVector<Type>(block->getArgumentTypes()), {op.getType()}));
    return op;
  }

  /// Runs -moe-decompose-layer on the module and checks it still verifies.
  void decompose() {
    PassManager pm(&context);
    pm.addPass(createMoEDecomposeLayer());
    ASSERT_TRUE(succeeded(pm.run(*module)));
    ASSERT_TRUE(succeeded(verify(*module)));
  }

  template <typename OpTy> SmallVector<OpTy> all() {
    SmallVector<OpTy> ops;
    module->walk([&](OpTy op) { ops.push_back(op); });
    return ops;
  }
};

TEST_F(DecomposeTest, TopTwoGatedLayerBecomesFourPrimitives) {
  LayerOp layer = buildLayer({});
  EXPECT_EQ(verifyMessage(layer), "");
  decompose();
  EXPECT_TRUE(all<LayerOp>().empty());
  ASSERT_EQ(all<RouterOp>().size(), 1u);
  ASSERT_EQ(all<DispatchOp>().size(), 1u);
  ASSERT_EQ(all<ExpertsOp>().size(), 1u);
  ASSERT_EQ(all<CombineOp>().size(), 1u);
  EXPECT_TRUE(all<MlpOp>().empty());

  RouterOp router = all<RouterOp>()[0];
  DispatchOp dispatch = all<DispatchOp>()[0];
  ExpertsOp experts = all<ExpertsOp>()[0];
  CombineOp combine = all<CombineOp>()[0];
  // The dataflow chains router -> dispatch -> experts -> combine.
  EXPECT_EQ(dispatch.getExpertIds(), router.getExpertIds());
  EXPECT_EQ(experts.getInput(), dispatch.getPermuted());
  EXPECT_EQ(experts.getOffsets(), dispatch.getOffsets());
  EXPECT_EQ(combine.getInput(), experts.getResult());
  EXPECT_EQ(combine.getMapping(), dispatch.getMapping());
  EXPECT_EQ(combine.getWeights(), router.getWeights());
  EXPECT_FALSE(combine.getResidual());
  EXPECT_TRUE(experts.getWGate());
  EXPECT_EQ(dispatch.getNumExperts(), 8u);
  EXPECT_TRUE(router.getRenormalize());
  EXPECT_EQ(cast<RankedTensorType>(dispatch.getPermuted().getType())
                .getDimSize(0),
            32);
}

TEST_F(DecomposeTest, CapacityAttributesReachTheRouter) {
  LayerParts p;
  p.k = 1;
  p.gated = false;
  p.capacity = 1.25;
  buildLayer(p);
  decompose();
  RouterOp router = all<RouterOp>()[0];
  ASSERT_TRUE(router.getCapacityFactor().has_value());
  EXPECT_EQ(router.getCapacityFactor()->convertToDouble(), 1.25);
  EXPECT_EQ(router.getTopK(), 1u);
  EXPECT_FALSE(all<ExpertsOp>()[0].getWGate());
}

TEST_F(DecomposeTest, GatedSharedExpertFeedsTheResidual) {
  LayerParts p;
  p.shared = true;
  p.sharedCoef = true;
  buildLayer(p);
  decompose();
  ASSERT_EQ(all<MlpOp>().size(), 1u);
  MlpOp shared = all<MlpOp>()[0];
  EXPECT_TRUE(shared.getWGate());
  // sigmoid(x Ws) is a matmul and an elementwise scale of the shared output.
  ASSERT_EQ(all<linalg::MatmulOp>().size(), 1u);
  CombineOp combine = all<CombineOp>()[0];
  ASSERT_TRUE(combine.getResidual());
  auto scale = combine.getResidual().getDefiningOp<linalg::GenericOp>();
  ASSERT_TRUE(scale);
  EXPECT_EQ(scale.getDpsInputs()[0], shared.getResult());
}

TEST_F(DecomposeTest, PrMoEMixesBothBranches) {
  LayerParts p;
  p.k = 1;
  p.gated = false;
  p.residualMlp = true;
  p.mlpCoef = true;
  buildLayer(p);
  decompose();
  ASSERT_EQ(all<MlpOp>().size(), 1u);
  CombineOp combine = all<CombineOp>()[0];
  RouterOp router = all<RouterOp>()[0];
  // c0 scales the routing weights, c1 the MLP output.
  auto weights = combine.getWeights().getDefiningOp<linalg::GenericOp>();
  ASSERT_TRUE(weights);
  EXPECT_EQ(weights.getDpsInputs()[0], router.getWeights());
  auto mlpScale = combine.getResidual().getDefiningOp<linalg::GenericOp>();
  ASSERT_TRUE(mlpScale);
  EXPECT_EQ(mlpScale.getDpsInputs()[0], all<MlpOp>()[0].getResult());
}

TEST_F(DecomposeTest, SharedAndResidualMlpAreSummed) {
  LayerParts p;
  p.shared = true;
  p.residualMlp = true;
  buildLayer(p);
  decompose();
  EXPECT_EQ(all<MlpOp>().size(), 2u);
  CombineOp combine = all<CombineOp>()[0];
  auto sum = combine.getResidual().getDefiningOp<linalg::GenericOp>();
  ASSERT_TRUE(sum);
  EXPECT_EQ(sum.getDpsInputs().size(), 2u);
}

TEST_F(DecomposeTest, DynamicTokenCount) {
  LayerParts p;
  p.tokens = ShapedType::kDynamic;
  p.shared = true;
  p.sharedCoef = true;
  buildLayer(p);
  decompose();
  DispatchOp dispatch = all<DispatchOp>()[0];
  EXPECT_TRUE(cast<RankedTensorType>(dispatch.getPermuted().getType())
                  .isDynamicDim(0));
}

} // namespace
