//===- AttentionPlanTest.cpp - The decoding attention's plan --------------===//
//
// Part of moe-compiler.
//
// planAttention's invariants over the shapes of real models (every plan
// fits the shared-memory limit, its heads divide the group, a split with
// partial sums leaves its blocks kAttentionMinPartialKeys keys and a
// cluster at most kAttentionMaxSplit blocks), and the choices the H100
// sweeps measured (`test/bench/results/attention-decode-splits-h100-
// 2026-12-07.md`, `attention-decode-planner-h100-2026-12-07.md`).
//
//===----------------------------------------------------------------------===//

#include "moe/Target/CUDA/DenseKernels.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include <gtest/gtest.h>

#include <utility>

using namespace mlir::moe;

namespace {

AttentionKernelOptions options(int64_t hd, int64_t dv, int64_t rows,
                               int64_t group) {
  AttentionKernelOptions o;
  o.headDim = hd;
  o.valueDim = dv;
  o.maxRows = rows;
  o.group = group;
  return o;
}

/// Query heads, kv heads and head sizes of a model's attention.
struct Heads {
  int64_t H, KV, hd, dv;
};

TEST(AttentionPlan, InvariantsOverModelShapes) {
  for (Heads h :
       {Heads{32, 8, 128, 128}, Heads{32, 4, 128, 128}, Heads{16, 16, 192, 128},
        Heads{8, 2, 64, 64}, Heads{4, 4, 6, 6}, Heads{40, 8, 80, 80}})
    for (int64_t rows : {64, 1000, 2048, 4096, 20000, 32768, 131072, 500000})
      for (int64_t B : {1, 2, 16, 64})
        for (int64_t T : {1, 3}) {
          SCOPED_TRACE("heads " + std::to_string(h.H) + "/" +
                       std::to_string(h.KV) + " hd " + std::to_string(h.hd) +
                       " rows " + std::to_string(rows) + " B " +
                       std::to_string(B) + " T " + std::to_string(T));
          AttentionKernelOptions p =
              planAttention(options(h.hd, h.dv, rows, h.H / h.KV), T, h.H, B);
          ASSERT_GT(p.split, 0);
          EXPECT_EQ((h.H / h.KV) % p.heads, 0);
          EXPECT_LE(p.heads, kAttentionMaxHeads);
          EXPECT_LE(attentionSharedBytes(p), kAttentionSharedLimit);
          EXPECT_TRUE(p.threads == 128 || p.threads == 256);
          if (p.partials) {
            EXPECT_GT(p.split, kAttentionMaxSplit);
            EXPECT_LE(p.split, kAttentionMaxPartialSplit);
            EXPECT_GE((rows + p.split - 1) / p.split, kAttentionMinPartialKeys);
          } else {
            EXPECT_LE(p.split, kAttentionMaxSplit);
          }
        }
}

TEST(AttentionPlan, MeasuredChoices) {
  struct Choice {
    const char *shape;
    // The shape (head sizes, cache rows, heads, kv heads, sequences) and
    // the plan measured best for it.
    int64_t hd, dv, rows, H, KV, B;
    int64_t heads, split, threads;
    bool partials;
  };
  for (const Choice &c : {
           // One sequence of 32 heads over 8 kv heads: 4 heads a block, 32
           // blocks an item with partial sums (256 blocks).
           Choice{"gqa-4k", 128, 128, 4096, 32, 8, 1, 4, 32, 128, true},
           Choice{"gqa-32k", 128, 128, 32768, 32, 8, 1, 4, 32, 128, true},
           Choice{"gqa-128k", 128, 128, 131072, 32, 8, 1, 4, 32, 128, true},
           // 16 sequences of 2k: 16 blocks (128 keys each).
           Choice{"gqa-b16-2k", 128, 128, 2048, 32, 8, 16, 4, 16, 128, true},
           // 64 sequences of 1k, 8 heads a kv head: no split.
           Choice{"gqa-b64-1k", 128, 128, 1024, 32, 4, 64, 4, 1, 128, false},
           // Latent attention: a key row takes a warp, so 256 threads.
           Choice{"mla-4k", 192, 128, 4096, 16, 16, 1, 1, 16, 256, true},
           // A cache too short for partial sums: a cluster of 8.
           Choice{"short-1k", 128, 128, 1024, 8, 2, 1, 1, 8, 128, false},
       }) {
    SCOPED_TRACE(c.shape);
    AttentionKernelOptions p =
        planAttention(options(c.hd, c.dv, c.rows, c.H / c.KV), 1, c.H, c.B);
    EXPECT_EQ(p.heads, c.heads);
    EXPECT_EQ(p.split, c.split);
    EXPECT_EQ(p.threads, c.threads);
    EXPECT_EQ(p.partials, c.partials);
  }
}

TEST(AttentionPlan, ForcedSplits) {
  AttentionKernelOptions o = options(128, 128, 4096, 4);
  AttentionKernelOptions c8 = planAttention(o, 1, 32, 1, 4, 0, 0, 8);
  EXPECT_EQ(c8.split, 8);
  EXPECT_FALSE(c8.partials);
  AttentionKernelOptions p1024 = planAttention(o, 1, 32, 1, 4, 0, 0, 1024);
  EXPECT_EQ(p1024.split, 1024);
  EXPECT_TRUE(p1024.partials);
  // A forced split that 4 heads a block cannot hold takes fewer heads.
  AttentionKernelOptions c2 =
      planAttention(options(128, 128, 65536, 4), 1, 32, 1, 0, 0, 0, 2);
  EXPECT_EQ(c2.split, 2);
  EXPECT_EQ(c2.heads, 1);
  // A split whose blocks cannot hold their scores: 0 (the caller's error).
  AttentionKernelOptions tooLong = options(128, 128, 4000000, 4);
  EXPECT_EQ(planAttention(tooLong, 1, 32, 1, 4, 0, 0, 2).split, 0);
}

TEST(AttentionPlan, LongestCache) {
  // The most rows attentionMaxRows admits plan (with the threads the plan
  // picks: 256 where a key row takes a whole warp); past them, none.
  for (auto [hd, dv] :
       {std::pair<int64_t, int64_t>{128, 128}, {256, 256}, {192, 128}}) {
    AttentionKernelOptions o = options(hd, dv, 0, 4);
    int64_t most = attentionMaxRows(o);
    EXPECT_GE(most, 40'000'000) << hd;
    o.maxRows = most;
    AttentionKernelOptions p = planAttention(o, 1, 32, 1);
    EXPECT_GT(p.split, 0) << hd;
    EXPECT_LE(attentionSharedBytes(p), kAttentionSharedLimit) << hd;
    o.maxRows = most + 16 * kAttentionMaxPartialSplit;
    EXPECT_EQ(planAttention(o, 1, 32, 1, 1).split, 0) << hd;
  }
}

} // namespace

// The tensor-core kernel's plan (planAttentionMma): every query head of a
// kv head in one block up to 16 rows, a split only where the items leave
// SMs idle, powers of two of blocks keeping kAttentionMinPartialKeys keys
// each, and the shapes it takes fit its static shared memory.
TEST(AttentionPlan, MmaPlan) {
  for (Heads h :
       {Heads{32, 8, 128, 128}, Heads{32, 4, 128, 128}, Heads{16, 16, 192, 128},
        Heads{8, 2, 64, 64}, Heads{40, 8, 80, 80}, Heads{64, 2, 128, 128}})
    for (int64_t rows : {64, 1000, 4096, 32768, 500000})
      for (int64_t B : {1, 16, 300}) {
        SCOPED_TRACE("heads " + std::to_string(h.H) + "/" +
                     std::to_string(h.KV) + " rows " + std::to_string(rows) +
                     " B " + std::to_string(B));
        int64_t group = h.H / h.KV;
        AttentionKernelOptions p =
            planAttentionMma(options(h.hd, h.dv, rows, group), 1, h.H, B);
        EXPECT_EQ(group % p.heads, 0);
        EXPECT_LE(p.heads, kAttentionMmaRows);
        if (group <= kAttentionMmaRows) {
          EXPECT_EQ(p.heads, group);
        }
        EXPECT_TRUE(whyNotAttentionMma(p).empty()) << whyNotAttentionMma(p);
        EXPECT_LE(attentionMmaSharedBytes(p), kAttentionMmaSharedLimit);
        int64_t items = h.KV * (group / p.heads) * B;
        EXPECT_EQ(p.partials, p.split > 1);
        if (items >= 2 * kPlanSms) {
          EXPECT_EQ(p.split, 1);
        }
        if (p.split > 1) {
          EXPECT_TRUE((p.split & (p.split - 1)) == 0);
          EXPECT_LE(p.split, kAttentionMaxPartialSplit);
          EXPECT_GE((rows + p.split - 1) / p.split, kAttentionMinPartialKeys);
        }
      }
  // Measured shapes: one sequence of 32/8 heads at 4k keys: 4 heads, 32
  // blocks an item (128 keys each); 64 sequences of 32/4 heads at 1k: 8
  // heads a block, 2 blocks an item; heads of 256 do not fit (the CUDA-core
  // kernel takes them), nor heads of 6.
  AttentionKernelOptions a =
      planAttentionMma(options(128, 128, 4096, 4), 1, 32, 1);
  EXPECT_EQ(a.heads, 4);
  EXPECT_EQ(a.split, 32);
  AttentionKernelOptions b =
      planAttentionMma(options(128, 128, 1024, 8), 1, 32, 64);
  EXPECT_EQ(b.heads, 8);
  EXPECT_EQ(b.split, 2);
  EXPECT_FALSE(
      whyNotAttentionMma(planAttentionMma(options(256, 256, 1024, 2), 1, 4, 1))
          .empty());
  EXPECT_FALSE(
      whyNotAttentionMma(planAttentionMma(options(6, 6, 128, 1), 1, 4, 1))
          .empty());
  // A group of 32 query heads a kv head: 16 a block (two blocks an item).
  EXPECT_EQ(planAttentionMma(options(128, 128, 1024, 32), 1, 64, 1).heads, 16);
  // Keys of 64 and values of 256: the warps' output rows of 16 (or 10)
  // heads would not fit the key and value tiles, those of 8 do.
  AttentionKernelOptions wide = options(64, 256, 1024, 16);
  wide.heads = 16;
  EXPECT_FALSE(whyNotAttentionMma(wide).empty());
  AttentionKernelOptions w =
      planAttentionMma(options(64, 256, 1024, 16), 1, 32, 1);
  EXPECT_EQ(w.heads, 8);
  EXPECT_TRUE(whyNotAttentionMma(w).empty()) << whyNotAttentionMma(w);
}
