//===- GemvPlanTest.cpp - The memory-bound GEMV's launch plan --------------===//
//
// Part of moe-compiler.
//
// planGemv's invariants over a grid of shapes the compiler meets (K a
// multiple of 4, M of 8): the kernel's K loop needs kchunk and K to be
// multiples of unroll * lanes, no block of the grid is empty, blocks are
// whole warps within the kernel's maxntid, and the default kernel's tuning
// is kept. Also the wgmma planner's groups of row tiles and the tile count
// of an expert (expertTileCount) that the routing and kernels share.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/GpuHelpers.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include "MoETestUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/MathExtras.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

using namespace mlir::moe;

namespace {

void expectValid(const GemvGrid &g, int64_t k, int64_t m,
                 const GemvTuning &t) {
  SCOPED_TRACE("k=" + std::to_string(k) + " m=" + std::to_string(m) +
               " lanes<=" + std::to_string(t.maxLanes) +
               " unroll=" + std::to_string(t.unroll));
  int64_t maxLanes = t.maxLanes ? t.maxLanes : 4;
  EXPECT_TRUE(llvm::isPowerOf2_64(g.lanes));
  EXPECT_LE(g.lanes, maxLanes);
  EXPECT_TRUE(g.unroll == 4 || g.unroll == 8);
  if (t.unroll && k % t.unroll == 0) {
    EXPECT_EQ(g.unroll, t.unroll);
  }
  int64_t step = g.unroll * g.lanes;
  EXPECT_EQ(k % step, 0);
  EXPECT_GT(g.kchunk, 0);
  EXPECT_EQ(g.kchunk % step, 0);
  EXPECT_EQ(g.splits, (k + g.kchunk - 1) / g.kchunk);
  EXPECT_LT((g.splits - 1) * g.kchunk, k); // no empty split
  EXPECT_EQ(g.threads % 32, 0);
  EXPECT_GE(g.threads, 32);
  EXPECT_LE(g.threads, kGemvMaxThreads);
  int64_t colsPerBlock = g.threads / g.lanes * kGemvColumnsPerThread;
  EXPECT_GE(g.blocksX * colsPerBlock, m);       // every column covered
  EXPECT_LT((g.blocksX - 1) * colsPerBlock, m); // no empty block column
  // The summary the plans in the IR record.
  EXPECT_EQ(g.summary(), (llvm::SmallVector<int64_t>{g.blocksX, g.splits,
                                                     g.threads, g.kchunk,
                                                     g.lanes, g.unroll}));
}

TEST(GemvPlan, InvariantsOverShapes) {
  const GemvTuning tunings[] = {{}, kDefaultGemvKernel, {2, 4}, {8, 8},
                                {1, 8}, {8, 0}};
  for (int64_t k : {4, 8, 12, 64, 68, 96, 1024, 2048, 4100, 7168, 14336})
    for (int64_t m : {8, 24, 64, 128, 256, 1032, 2048, 14336, 32000})
      for (int64_t active : {0, 1, 2, 8, 16, 64, 512})
        for (const GemvTuning &t : tunings)
          expectValid(planGemv(k, m, active, t), k, m, t);
}

TEST(GemvPlan, DefaultKernelKeepsItsTuning) {
  for (int64_t k : {64, 2048, 14336})
    for (int64_t m : {64, 2048}) {
      GemvGrid g = planGemv(k, m, 8, kDefaultGemvKernel);
      EXPECT_EQ(g.lanes, 1);
      EXPECT_EQ(g.unroll, kGemvUnroll);
    }
}

TEST(GemvPlan, FewExpertsGetMoreThreads) {
  // One expert hit (a decode token) spreads K over more threads than 64
  // experts hit at once, and never fewer.
  for (int64_t k : {2048, 7168}) {
    GemvGrid one = planGemv(k, 2048, 1), many = planGemv(k, 2048, 64);
    EXPECT_GT(one.splits * one.lanes, many.splits * many.lanes);
  }
  // A router (64 columns) fills its warps with lanes and splits K into
  // blocks of 16 to 32 rows, so its matrix goes out in one round of loads.
  GemvGrid router = planGemv(2048, 64, 1);
  EXPECT_EQ(router.lanes, 4);
  EXPECT_EQ(router.kchunk, router.unroll * router.lanes);
  EXPECT_EQ(router.splits * router.kchunk, 2048);
}

TEST(GatePlan, CoversTheRouterInRoundsOfLoads) {
  // The gating kernel: every router row in exactly one block, K rows a
  // block a multiple of what its threads load at once (256 threads: E / 8
  // column groups, the rest on K, 4 rows each), at most 128 blocks.
  for (int64_t e : {8, 16, 32, 64, 128, 256})
    for (int64_t d : {32, 64, 192, 1000, 2048, 4096, 7168}) {
      GatePlan p = planGate(d, e);
      int64_t step = kGateThreads / (e / 8) * kGateUnroll;
      EXPECT_EQ(p.kchunk % step, 0) << d << " x " << e;
      EXPECT_GE(p.blocks * p.kchunk, d) << d << " x " << e;
      EXPECT_LT((p.blocks - 1) * p.kchunk, d) << d << " x " << e;
      EXPECT_LE(p.blocks, 128) << d << " x " << e;
      EXPECT_EQ(whyNotGateKernel(64, e), "");
    }
  // One round of loads a thread while that fits in 128 blocks.
  EXPECT_EQ(planGate(2048, 128).kchunk, 64);
  EXPECT_EQ(planGate(2048, 128).blocks, 32);
  EXPECT_EQ(planGate(7168, 256).blocks, 112);
  EXPECT_EQ(whyNotGateKernel(1, 12),
            "the gating kernel takes 8, 16, ..., 256 experts (E / 8 dividing "
            "256), got 12");
  EXPECT_EQ(whyNotGateKernel(1, 512),
            "the gating kernel takes 8, 16, ..., 256 experts (E / 8 dividing "
            "256), got 512");
  EXPECT_EQ(whyNotGateKernel(65, 64),
            "the gating kernel routes at most 64 tokens, got 65");
}

TEST(RouterInSelectPlan, StagesFitTheBudgetAndKeepTheMostBytesInFlight) {
  // The select kernel's router (--gpu-fused-route): stages of 32 to 256 K
  // rows dividing d, 2 to 8 of them within the dynamic shared memory
  // budget, the stage size with the most bytes in flight (stages - 1, at
  // most the K steps there are).
  auto stageBytes = [](int64_t e, int64_t k) {
    int64_t row = e + ((e / 8) % 2 ? 16 : 8);
    return (kRouteSelectTokens * (k + 8) + k * row) * 2;
  };
  for (int64_t e = 8; e <= 256; e += 8)
    for (int64_t d : {32, 64, 96, 192, 256, 1024, 2048, 4096, 7168}) {
      SCOPED_TRACE(std::to_string(d) + " x " + std::to_string(e));
      ASSERT_EQ(whyNotRouterInSelect(d, e), "");
      RouterInSelectPlan p = planRouterInSelect(d, e);
      EXPECT_EQ(d % p.stageK, 0);
      EXPECT_GE(p.stages, 2);
      EXPECT_LE(p.stages, kRouterInSelectStages);
      EXPECT_EQ(p.sharedBytes, p.stages * stageBytes(e, p.stageK));
      EXPECT_LE(p.sharedBytes, kRouterInSelectSharedBytes);
      int64_t inFlight =
          std::min(p.stages - 1, d / p.stageK) * stageBytes(e, p.stageK);
      for (int64_t k : {32, 64, 128, 256}) {
        if (d % k)
          continue;
        int64_t stages = std::min<int64_t>(
            kRouterInSelectStages, kRouterInSelectSharedBytes / stageBytes(e, k));
        if (k > 32 && stages < 3)
          continue;
        EXPECT_LE(std::min(stages - 1, d / k) * stageBytes(e, k), inFlight)
            << "stages of " << k << " rows keep more in flight";
      }
    }
  // The benchmark's routers (results/targets-2026-12-05.md's shapes).
  auto plan = [](int64_t d, int64_t e) {
    RouterInSelectPlan p = planRouterInSelect(d, e);
    return std::make_pair(p.stages, p.stageK);
  };
  EXPECT_EQ(plan(2048, 64), std::make_pair(int64_t(7), int64_t(128)));
  EXPECT_EQ(plan(2048, 128), std::make_pair(int64_t(8), int64_t(64)));
  EXPECT_EQ(plan(4096, 8), std::make_pair(int64_t(7), int64_t(256)));
  EXPECT_EQ(plan(7168, 256), std::make_pair(int64_t(8), int64_t(32)));
  EXPECT_EQ(whyNotRouterInSelect(2048, 12),
            "the select kernel computes the logits of 8 to 256 experts, a "
            "multiple of 8, got 12");
  EXPECT_EQ(whyNotRouterInSelect(2048, 264),
            "the select kernel computes the logits of 8 to 256 experts, a "
            "multiple of 8, got 264");
  EXPECT_EQ(whyNotRouterInSelect(264, 64),
            "the select kernel computes the logits of a hidden size that is "
            "a multiple of 32, got 264");
}

TEST(DenseMatmulPlan, SplitsKWhereTheTilesLeaveSmsIdle) {
  // planSplitK: no split once the tiles fill half the SMs; else about two
  // blocks an SM in all, at least two K steps a run.
  for (int64_t blocks = 1; blocks <= 300; ++blocks)
    for (int64_t steps : {1, 2, 3, 4, 8, 16, 32, 64, 128, 224}) {
      int64_t s = planSplitK(blocks, steps);
      SCOPED_TRACE(std::to_string(blocks) + " blocks, " +
                   std::to_string(steps) + " steps");
      EXPECT_GE(s, 1);
      if (2 * blocks >= kPlanSms) {
        EXPECT_EQ(s, 1);
        continue;
      }
      EXPECT_LE(s, std::max<int64_t>(1, steps / 2));
      EXPECT_LT(blocks * (s - 1), 2 * kPlanSms);
      if (s < steps / 2) {
        EXPECT_GE(blocks * s, 2 * kPlanSms);
      }
    }
  // The routers of the standard shapes: OLMoE (64 experts) at 1024 tokens
  // on mma.sync, 8 row tiles split 32 ways (64 K steps of 32); qwen3 (128)
  // at 16 tokens on warpgroup MMAs, one 128-column block split 16 ways (32
  // K steps of 64); a wide projection at 8192 tokens is not split.
  DenseMatmulPlan olmoe = planDenseMatmul(1024, 2048, 64);
  EXPECT_FALSE(olmoe.wgmma);
  EXPECT_EQ(olmoe.rowTiles, 8);
  EXPECT_EQ(olmoe.splits, 32);
  DenseMatmulPlan qwen = planDenseMatmul(16, 2048, 128);
  EXPECT_TRUE(qwen.wgmma);
  EXPECT_EQ(qwen.columns, 128);
  EXPECT_EQ(qwen.rowTiles, 1);
  EXPECT_EQ(qwen.splits, 16);
  EXPECT_EQ(planDenseMatmul(8192, 4096, 4096).splits, 1);
  EXPECT_EQ(planDenseMatmul(8192, 4096, 4096).columns, 256);
}

TEST(WgmmaGroupTiles, KeepsAGroupsRowsWithinItsShareOfL2) {
  // A group's rows (G tiles of kWgmmaTileM bf16 rows of K) fit
  // kWgmmaGroupRowBytes, one more tile would not, and a group has at least
  // one tile; fewer tiles as K grows.
  int64_t last = std::numeric_limits<int64_t>::max();
  for (int64_t k = 64; k <= 65536; k *= 2) {
    SCOPED_TRACE("K = " + std::to_string(k));
    int64_t g = planWgmmaGroupTiles(k);
    int64_t tileBytes = kWgmmaTileM * k * 2;
    EXPECT_GE(g, 1);
    if (g > 1) {
      EXPECT_LE(g * tileBytes, kWgmmaGroupRowBytes);
    }
    EXPECT_GT((g + 1) * tileBytes, kWgmmaGroupRowBytes);
    EXPECT_LE(g, last);
    last = g;
  }
  // The standard shapes' up (K = hidden) and down (K = ffn) kernels:
  // qwen3 48 / 128, DeepSeek-V3 13 / 48, Mixtral 24 / 6.
  EXPECT_EQ(planWgmmaGroupTiles(2048), 48);
  EXPECT_EQ(planWgmmaGroupTiles(768), 128);
  EXPECT_EQ(planWgmmaGroupTiles(7168), 13);
  EXPECT_EQ(planWgmmaGroupTiles(14336), 6);
}

/// A kernel of the benchmark's layers: planWgmmaGroup's inputs, its groups
/// by the rule alone (blockColumns 0) and under the weight-lag cap (256-
/// column blocks, as the planner passes for both kernels).
struct GroupCase {
  const char *kernel;
  int64_t k, tileM, colBlocks;
  double rowsPerExpert;
  int64_t rule, capped;
};

TEST(WgmmaGroupTiles, PlannerTakesAWaveButAtLeastTwiceAnExpertsTilesUnderTheLagCap) {
  // The rule: at most the 24 MiB of rows (planWgmmaGroupTiles, scaled to
  // the tile's rows) and at most a wave of the grid's pairs, but at least
  // twice an expert's tiles. The cap, where experts get two or more tiles:
  // at most the tiles whose share of their experts' weight blocks comes to
  // kWgmmaGroupLagBytes, at least an expert's tiles
  // (results/kernel-sol-groups-1024-h100-2026-12-06.md).
  ASSERT_EQ(kWgmmaGroupLagBytes, int64_t(2) << 20);
  const GroupCase cases[] = {
      // One tile an expert (qwen3 at 1024 tokens, 64 rows an expert): a
      // wave's 22 and 16 tiles under the 24 MiB caps of 48 and 128; no
      // weight block is shared, so the cap does not apply.
      {"qwen3 1024 up", 2048, 128, 6, 64.0, 22, 22},
      {"qwen3 1024 down", 768, 128, 8, 64.0, 16, 16},
      {"one tile an expert", 7168, 128, 16, 32.0, 8, 8},
      // Mixtral at 1024 tokens (2 tiles an expert): the up kernel's 112
      // column blocks leave a wave 1 tile, raised to twice an expert's 2;
      // the down kernel's wave of 8 is capped at the 6 of 24 MiB. Under
      // the cap (2 MiB blocks over K 4096, 7 MiB over K 14336) an expert's
      // 2 in both.
      {"Mixtral 1024 up", 4096, 128, 112, 256.0, 4, 2},
      {"Mixtral 1024 down", 14336, 128, 16, 256.0, 6, 2},
      // Mixtral at 8192 (16 tiles an expert): twice an expert's tiles
      // exceeds the 24 MiB caps (24, 6); the up kernel's cap takes 16, the
      // down kernel's stays at least an expert's 16, so 6.
      {"Mixtral 8192 up", 4096, 128, 112, 2048.0, 24, 16},
      {"Mixtral 8192 down", 14336, 128, 16, 2048.0, 6, 6},
      // DeepSeek-V3 at 8192 (2 tiles an expert): up blocks of 3.5 MiB over
      // K 7168, 2 MiB under two tiles' share, so an expert's 2; down (1 MiB
      // blocks) the rule's 4 is 2 MiB already.
      {"DeepSeek-V3 8192 up", 7168, 128, 16, 256.0, 8, 2},
      {"DeepSeek-V3 8192 down", 2048, 128, 28, 256.0, 4, 4},
      // qwen3 at 8192 (512 rows in 192-row tiles: 3 an expert; 1 MiB
      // blocks over K 2048): 6 under the wave's 22.
      {"qwen3 8192 up", 2048, 192, 6, 512.0, 22, 6},
      // Never below an expert's tiles (5, 8 MiB blocks over K 16384: one
      // tile's share is 1.6 MiB), under the 24 MiB cap of 6.
      {"5 tiles an expert", 16384, 128, 4, 640.0, 6, 5},
      // 64-row tiles double the rows cap and count an expert's tiles in 64
      // rows.
      {"64-row tiles", 2048, 64, 200, 100.0, 4, 4},
  };
  for (const GroupCase &c : cases) {
    EXPECT_EQ(planWgmmaGroup(c.k, c.tileM, c.colBlocks, c.rowsPerExpert, 0),
              c.rule)
        << c.kernel;
    EXPECT_EQ(planWgmmaGroup(c.k, c.tileM, c.colBlocks, c.rowsPerExpert, 256),
              c.capped)
        << c.kernel;
  }
  // Never below one tile, whatever the inputs.
  EXPECT_EQ(planWgmmaGroup(1 << 20, 128, 1000, 0.0, 256), 1);
}

/// The tiles the kernel walks for an expert of `rows` rows: a tile at each
/// `step` rows until at most `tileRows` are left, the expert's last.
int64_t walkTiles(int64_t rows, int64_t tileRows, int64_t step) {
  int64_t n = 0;
  for (int64_t begin = 0; begin < rows; begin += step) {
    ++n;
    if (rows - begin <= tileRows)
      break;
  }
  return n;
}

class ExpertTileCount : public moe_test::MoEFixture {};

TEST_F(ExpertTileCount, FoldsToTheTilesTheKernelWalks) {
  // expertTileCount's IR (the routing's tile table and the wgmma expert
  // groups count with it) on constant rows 0..600, folded by the
  // canonicalizer, against a walk of the tiles.
  using namespace mlir;
  const int64_t maxRows = 600;
  const std::pair<int64_t, int64_t> forms[] = {
      {192, 128}, {192, 192}, {128, 128}, {64, 64}, {192, 64}};
  Type i32 = builder.getI32Type();
  for (auto [tileRows, step] : forms) {
    SCOPED_TRACE("tile " + std::to_string(tileRows) + " step " +
                 std::to_string(step));
    builder.setInsertionPointToEnd(module->getBody());
    SmallVector<Type> results(maxRows + 1, i32);
    auto fn = func::FuncOp::create(
        builder, loc, "count_" + std::to_string(tileRows) + "_" +
                          std::to_string(step),
        builder.getFunctionType({}, results));
    builder.setInsertionPointToEnd(fn.addEntryBlock());
    SmallVector<Value> counts;
    for (int64_t rows = 0; rows <= maxRows; ++rows)
      counts.push_back(expertTileCount(
          builder, loc, arith::ConstantIntOp::create(builder, loc, i32, rows),
          tileRows, step));
    auto ret = func::ReturnOp::create(builder, loc, counts);
    PassManager pm(&context, func::FuncOp::getOperationName());
    pm.addPass(createCanonicalizerPass());
    ASSERT_TRUE(succeeded(pm.run(fn)));
    for (int64_t rows = 0; rows <= maxRows; ++rows) {
      auto folded = ret.getOperand(rows).getDefiningOp<arith::ConstantIntOp>();
      ASSERT_TRUE(folded) << "rows " << rows << " did not fold";
      EXPECT_EQ(folded.value(), walkTiles(rows, tileRows, step))
          << "rows " << rows;
    }
  }
}

} // namespace
