//===- CostModelTest.cpp - Unit tests of the planner's cost model ----------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Parallel/CostModel.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace mlir::moe;

namespace {

LayerShape mixtral(int64_t repeat = 32) {
  LayerShape l;
  l.numExperts = 8;
  l.topK = 2;
  l.hidden = 4096;
  l.expertFfn = 14336;
  l.expertMatrices = 3;
  l.elementBytes = 2;
  l.replicatedBytes = 4096 * 8 * 2;
  l.repeat = repeat;
  return l;
}

LayerShape deepseekV3(int64_t repeat = 58) {
  LayerShape l;
  l.numExperts = 256;
  l.topK = 8;
  l.hidden = 7168;
  l.expertFfn = 2048;
  l.expertMatrices = 3;
  l.elementBytes = 2;
  l.dense.push_back(DenseMlpShape{2048, 3, 2});
  l.replicatedBytes = 7168 * 256 * 2 + 256 * 4;
  l.repeat = repeat;
  return l;
}

TEST(CostModel, WeightBytes) {
  LayerShape l = mixtral(1);
  EXPECT_DOUBLE_EQ(l.bytesPerExpert(), 3.0 * 4096 * 14336 * 2);
  EXPECT_DOUBLE_EQ(l.bytes(), 8 * l.bytesPerExpert() + 4096 * 8 * 2);
  LayerShape d = deepseekV3(1);
  EXPECT_DOUBLE_EQ(d.denseBytes(), 3.0 * 7168 * 2048 * 2);
  // DeepSeek-V3's 58 MoE layers: ~1.31 TB in bf16.
  double total = CostModel::totalWeightBytes({deepseekV3()});
  EXPECT_NEAR(total / 1e12, 1.31, 0.01);
}

TEST(CostModel, GpuCounts) {
  CostModel m(HardwareSpec{}, 1);
  EXPECT_TRUE(m.isValidGpuCount(1));
  EXPECT_TRUE(m.isValidGpuCount(6));
  EXPECT_TRUE(m.isValidGpuCount(64));
  EXPECT_FALSE(m.isValidGpuCount(12));
  EXPECT_FALSE(m.isValidGpuCount(0));
}

TEST(CostModel, CandidatesDivideExpertsAndFfn) {
  CostModel m(HardwareSpec{}, 1);
  llvm::SmallVector<Plan> plans = m.candidatePlans({mixtral()}, 8);
  EXPECT_FALSE(plans.empty());
  bool expertParallel = false, sliced = false;
  for (const Plan &p : plans) {
    EXPECT_EQ(p.gpus(), 8);
    EXPECT_EQ(8 % p.expert, 0);
    EXPECT_EQ(p.tensor, 1); // no dense parts
    expertParallel |= p == Plan{1, 8, 1, 1};
    sliced |= p == Plan{1, 1, 8, 1};
  }
  EXPECT_TRUE(expertParallel);
  EXPECT_TRUE(sliced);

  // 6 experts on 4 GPUs: expert parallelism of 2 at most.
  LayerShape six = mixtral();
  six.numExperts = 6;
  for (const Plan &p : m.candidatePlans({six}, 4))
    EXPECT_LE(p.expert, 2);
}

TEST(CostModel, MinimumSlice) {
  CostModel m(HardwareSpec{}, 1, /*minSlice=*/128);
  for (const Plan &p : m.candidatePlans({deepseekV3()}, 256)) {
    EXPECT_LE(p.slicing, 16); // 2048 / 128
    EXPECT_LE(p.tensor, 16);
  }
  CostModel unbounded(HardwareSpec{}, 1);
  bool thin = false;
  for (const Plan &p : unbounded.candidatePlans({deepseekV3()}, 256))
    thin |= p.slicing > 16;
  EXPECT_TRUE(thin);
}

TEST(CostModel, DenseTensorSlicingChoices) {
  CostModel m(HardwareSpec{}, 1);
  bool acrossBoth = false, alongTensor = false;
  for (const Plan &p : m.candidatePlans({deepseekV3()}, 64)) {
    EXPECT_TRUE(p.tensor == 1 || p.tensor == p.slicing ||
                p.tensor == p.gpusPerReplica());
    acrossBoth |= p == Plan{1, 8, 8, 64};
    alongTensor |= p == Plan{1, 8, 8, 8};
  }
  EXPECT_TRUE(acrossBoth);
  EXPECT_TRUE(alongTensor);
}

TEST(CostModel, ExpectedBusiestHits) {
  EXPECT_DOUBLE_EQ(CostModel::expectedBusiestHits(8, 1, 1.0), 8.0);
  EXPECT_DOUBLE_EQ(CostModel::expectedBusiestHits(8, 4, 0.0), 0.0);
  // One GPU: the mean of a binomial.
  EXPECT_NEAR(CostModel::expectedBusiestHits(16, 1, 0.25), 4.0, 1e-9);
  // One expert per GPU: the chance that any of the GPUs is hit.
  EXPECT_NEAR(CostModel::expectedBusiestHits(1, 256, 8.0 / 256),
              1.0 - std::pow(1.0 - 8.0 / 256, 256), 1e-9);
  // More GPUs: the busiest one is busier.
  double few = CostModel::expectedBusiestHits(16, 2, 0.1);
  double many = CostModel::expectedBusiestHits(16, 64, 0.1);
  EXPECT_GT(many, few);
  EXPECT_LE(many, 16.0);
}

TEST(CostModel, Collectives) {
  HardwareSpec hw;
  CostModel m(hw, 1);
  EXPECT_EQ(m.allToAllSeconds(1e6, 1, 1), 0.0);
  EXPECT_EQ(m.allGatherSeconds(1e6, 1, 1), 0.0);
  // Inside a host: one NVLink latency plus 7/8 of the bytes.
  EXPECT_NEAR(m.allToAllSeconds(8e6, 8, 8),
              hw.nvlinkLatencySeconds + 7e6 / hw.nvlinkBytesPerSecond, 1e-12);
  EXPECT_NEAR(m.allGatherSeconds(8e6, 8, 8),
              hw.nvlinkLatencySeconds + 7e6 / hw.nvlinkBytesPerSecond, 1e-12);
  // Crossing hosts costs more than staying inside one.
  EXPECT_GT(m.allToAllSeconds(8e6, 16, 8), m.allToAllSeconds(8e6, 8, 8));
  EXPECT_GT(m.allGatherSeconds(8e6, 16, 8), m.allGatherSeconds(8e6, 8, 8));
  // All-reduce: twice the bytes of an all-gather, latency once.
  EXPECT_NEAR(m.allReduceSeconds(8e6, 8, 8),
              hw.nvlinkLatencySeconds + 2 * 7e6 / hw.nvlinkBytesPerSecond,
              1e-12);
}

TEST(CostModel, LayerEstimate) {
  HardwareSpec hw;
  CostModel m(hw, 1);
  LayerShape l = mixtral(1);
  // One GPU, one token, top-2 of 8: exactly two experts are read.
  LayerCost one = m.estimateLayer(l, Plan{1, 1, 1, 1}, 1);
  EXPECT_NEAR(one.hbmBytesPerGpu, 2 * l.bytesPerExpert() + l.replicatedBytes,
              1.0);
  EXPECT_EQ(one.commSeconds, 0.0);
  EXPECT_DOUBLE_EQ(one.weightBytesPerGpu, l.bytes());
  // Expert slicing over 8 GPUs: an eighth of every expert on each GPU, the
  // same two experts read in eighths, and one all-reduce of the token's f32
  // partial outputs inside the host.
  LayerCost sliced = m.estimateLayer(l, Plan{1, 1, 8, 1}, 1);
  EXPECT_NEAR(sliced.weightBytesPerGpu,
              l.expertBytes() / 8 + l.replicatedBytes, 1.0);
  EXPECT_NEAR(sliced.hbmBytesPerGpu,
              2 * l.bytesPerExpert() / 8 + l.replicatedBytes, 1.0);
  EXPECT_NEAR(sliced.commSeconds, m.allReduceSeconds(4096 * 4, 8, 8), 1e-12);
  EXPECT_TRUE(sliced.allReduceDispatch);
  EXPECT_EQ(sliced.allToAllBytes, 0.0);
  EXPECT_EQ(sliced.allToAllPathSeconds, -1.0); // no expert parallelism
  // Expert parallelism at 1024 tokens: the all-to-alls (each GPU sends its
  // 1024 x 2 / 8 assignments, twice) beat an all-reduce of all 1024 tokens'
  // 16 MB of f32 partial outputs.
  LayerCost big = m.estimateLayer(l, Plan{1, 8, 1, 1}, 1024);
  EXPECT_FALSE(big.allReduceDispatch);
  EXPECT_GT(big.allToAllBytes, 0.0);
  EXPECT_EQ(big.allGatherBytes, 0.0);
  EXPECT_EQ(big.commSeconds, big.allToAllPathSeconds);
  EXPECT_NEAR(big.allReducePathSeconds,
              m.allReduceSeconds(1024.0 * 4096 * 4, 8, 8), 1e-12);
  EXPECT_LT(big.allToAllPathSeconds, big.allReducePathSeconds);
  // At 128 tokens both are latency-bound: one all-reduce beats two
  // all-to-alls.
  LayerCost ep = m.estimateLayer(l, Plan{1, 8, 1, 1}, 128);
  EXPECT_TRUE(ep.allReduceDispatch);
  EXPECT_LT(ep.allReducePathSeconds, ep.allToAllPathSeconds);
  // One token: the all-reduce dispatch (one collective instead of two).
  LayerCost ep1 = m.estimateLayer(l, Plan{1, 8, 1, 1}, 1);
  EXPECT_TRUE(ep1.allReduceDispatch);
  EXPECT_EQ(ep1.commSeconds, ep1.allReducePathSeconds);
  EXPECT_LT(ep1.allReducePathSeconds, ep1.allToAllPathSeconds);
  // A fixed dispatch is kept; capacity-limited routing takes the
  // all-reduce under `auto`.
  CostModel a2a(hw, 1, 1, Dispatch::AllToAll);
  EXPECT_FALSE(a2a.estimateLayer(l, Plan{1, 8, 1, 1}, 1).allReduceDispatch);
  LayerShape capped = l;
  capped.capacityLimited = true;
  EXPECT_TRUE(m.estimateLayer(capped, Plan{1, 8, 1, 1}, 128).allReduceDispatch);
  // Dense parts not sliced over the whole replica: no all-reduce dispatch.
  LayerShape shared = l;
  shared.dense.push_back(DenseMlpShape{14336, 3, 2});
  LayerCost denseEp = m.estimateLayer(shared, Plan{1, 8, 1, 1}, 1);
  EXPECT_FALSE(denseEp.allReduceDispatch);
  EXPECT_EQ(denseEp.allReducePathSeconds, -1.0);
  EXPECT_TRUE(denseEp.partitionable);
  // Layouts moe-partition refuses are marked: expert slicing keeps the
  // tokens replicated, so the shared expert must be sliced over all 8 GPUs;
  // all-to-all cannot carry capacity-limited routing.
  EXPECT_FALSE(m.estimateLayer(shared, Plan{1, 1, 8, 1}, 1).partitionable);
  EXPECT_TRUE(m.estimateLayer(shared, Plan{1, 1, 8, 8}, 1).partitionable);
  EXPECT_FALSE(a2a.estimateLayer(capped, Plan{1, 8, 1, 1}, 1).partitionable);
  for (const PlanCost &c : m.rankPlans({shared}, 8, Objective::Latency))
    EXPECT_TRUE(c.partitionable);
  // 128 x 2 / 8 expert rows per GPU; with the all-reduce dispatch every
  // GPU routes all 128 tokens, with all-to-all (1024 tokens) its own 128.
  EXPECT_NEAR(ep.flopsPerGpu,
              128.0 * 2 / 8 * 2 * 3 * 4096 * 14336 + 128.0 * 2 * 4096 * 8,
              1e3);
  EXPECT_NEAR(big.flopsPerGpu,
              1024.0 * 2 / 8 * 2 * 3 * 4096 * 14336 + 128.0 * 2 * 4096 * 8,
              1e4);
  EXPECT_DOUBLE_EQ(ep.stepSeconds(),
                   std::max(ep.computeSeconds, ep.memorySeconds) +
                       ep.commSeconds);
}

TEST(CostModel, ChoosesByObjective) {
  CostModel latency(HardwareSpec{}, 1, 128);
  std::optional<PlanCost> a = latency.choose({mixtral()}, 8, Objective::Latency);
  ASSERT_TRUE(a);
  // One token: the busiest GPU reads whole experts under expert parallelism,
  // an eighth of two experts under expert slicing.
  EXPECT_EQ(a->plan, (Plan{1, 1, 8, 1}));
  EXPECT_TRUE(a->fits);

  CostModel throughput(HardwareSpec{}, 16, 128);
  std::optional<PlanCost> b =
      throughput.choose({mixtral()}, 8, Objective::Throughput);
  ASSERT_TRUE(b);
  // 128 tokens hit every expert: ep=8 (all-reduce dispatch) and es=8 read
  // and compute the same and send the same all-reduce; the tie goes to
  // expert slicing, measured faster where both keep the tokens replicated.
  EXPECT_EQ(b->plan, (Plan{1, 1, 8, 1}));
  llvm::SmallVector<PlanCost> ranked =
      throughput.rankPlans({mixtral()}, 8, Objective::Throughput);
  auto epPlan = llvm::find_if(ranked, [](const PlanCost &c) {
    return c.plan == Plan{1, 8, 1, 1};
  });
  ASSERT_NE(epPlan, ranked.end());
  EXPECT_TRUE(epPlan->layers[0].allReduceDispatch);
  EXPECT_NEAR(CostModel::score(*epPlan, Objective::Throughput),
              CostModel::score(ranked[0], Objective::Throughput),
              0.01 * CostModel::score(ranked[0], Objective::Throughput));
  EXPECT_EQ(b->replicaTokens, 128);
  EXPECT_NEAR(b->tokensPerSecond, 128 / b->stepSeconds, 1e-6);
}

TEST(CostModel, RankingIsBestFirst) {
  CostModel m(HardwareSpec{}, 1, 128);
  llvm::SmallVector<PlanCost> ranked =
      m.rankPlans({mixtral()}, 64, Objective::Latency);
  ASSERT_GT(ranked.size(), 2u);
  for (size_t i = 1; i < ranked.size(); ++i)
    EXPECT_LE(CostModel::score(ranked[0], Objective::Latency),
              CostModel::score(ranked[i], Objective::Latency) * 1.01);
}

TEST(CostModel, RefusalAndMinimumGpus) {
  CostModel m(HardwareSpec{}, 1, 128);
  EXPECT_FALSE(m.choose({deepseekV3()}, 8, Objective::Latency));
  // 1.31 TB / 126.9 GB = 10.3: 11 GPUs would do by bytes, but counts past a
  // host come in whole hosts of 8.
  EXPECT_EQ(m.minimumGpus({deepseekV3()}), 16);
  EXPECT_TRUE(m.choose({deepseekV3()}, 16, Objective::Latency));
  EXPECT_EQ(m.minimumGpus({mixtral()}), 1);
  // Replicated weights larger than a GPU never fit.
  LayerShape huge = mixtral(1);
  huge.replicatedBytes = int64_t(200e9);
  EXPECT_EQ(m.minimumGpus({huge}, 1024), 0);
}

} // namespace
