//===- GpuLayerPlan.cpp - The fused GPU layer's choices, per stage --------===//
//
// Part of moe-compiler.
//
// ExpertStage::decide makes every choice of one expert stage of a fused GPU
// layer (paths, tiles, grids, split counts, the kernels' forms) from its
// static shapes and the plan the conversion pass wrote (`moe.gpu_layer`,
// with the user's --gpu-* requests); planAttrs records them as
// `moe.gpu_plan`, so the plan is visible in the IR. Each choice's comment
// cites the measurement behind it (test/bench/results/).
//
//===----------------------------------------------------------------------===//

#include "GpuLayerPlan.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_layer;

double mlir::moe::gpu_layer::expectedExpertsHit(int64_t experts, int64_t k,
                                                int64_t tokens) {
  return experts * (1.0 - std::pow(1.0 - double(k) / experts, double(tokens)));
}

void ExpertStage::decide(bool addsDenseStages) {
  N = T * k;
  S = std::min(E, N);
  path = cast<StringAttr>(plan.get("path")).getValue();
  // Both tensor-core paths take the routing kernel's table of row tiles.
  wgmma = path == "wgmma";
  mma = path == "mma" || wgmma;
  if (auto t = plan.getAs<DenseI64ArrayAttr>("wgmma_tile"))
    wgmmaTile = {t[0], t[1], t[2], t.size() > 3 ? t[3] : 0};
  // (256 rows with the weights multicast over clusters of two blocks.)
  tileM = cast<IntegerAttr>(plan.get("tile_m")).getInt();
  // cp.async stages of the mma.sync tiles: a third at 64 rows (more bytes in
  // flight per SM), or as asked (a fourth at 64 rows measured 0.98-1.02x,
  // results/wgmma-tma-queue-2026-12-02.md).
  auto mmaStagesAttr = plan.getAs<IntegerAttr>("mma_stages");
  stages = mmaStagesAttr ? mmaStagesAttr.getInt() : tileM == 64 ? 3 : 2;
  warps = cast<IntegerAttr>(plan.get("mma_warps")).getInt();
  auto tilesFor = [&](int64_t rows) { return (N + rows - 1) / rows + S; };
  tileStep = wgmma && wgmmaTile.step ? wgmmaTile.step : tileM;
  // (Tiles `step` apart number at most those of that many rows.)
  tiles = tilesFor(tileStep);
  mmaRouter = !dense && denseMatmulOnTensorCores(T, d, kTensorRouterRows);
  // Many tokens: routing selects in parallel over the GPU, then a block
  // per kRouteThreads assignments finishes (a single block would route
  // thousands of tokens alone).
  splitRoute = !dense && T > 2 * (kRouteThreads / 32);
  // As asked (fused_route; measured slower, so never by default:
  // results/router-in-select-2026-12-05.md): the select kernel's blocks
  // compute their 16 tokens' logits themselves, each reading the whole
  // router through shared memory, instead of the router GEMM kernel (split
  // over K, f32 atomics) before them.
  routerInSelect = splitRoute && plan.get("fused_route") &&
                   whyNotRouterInSelect(d, E).empty();
  if (routerInSelect)
    mmaRouter = false;
  // Decode sizes: the router GEMV, the clearing of the accumulators and the
  // routing in one gating kernel, where it measured no slower than the
  // three (results/gate-kernel-2026-12-01.md): up to kGateRows tokens (one
  // pass over the router; at 16 tokens it was 1-3% slower) and routers of
  // at most 1 MiB (DeepSeek-V3's 3.5 MiB router was not measured apart
  // from the 10% spread of its layer, so it keeps the three kernels).
  StringRef gateChoice = choice("fused_gate");
  fusedGate = !dense && gateChoice != "never" && !mmaRouter && !splitRoute &&
              whyNotGateKernel(T, E).empty() &&
              (gateChoice == "always" ||
               (T <= kGateRows && d * E * 2 <= (int64_t(1) << 20)));

  // Rows each expert gets on average: the expert GEMVs share each weight
  // load among that many rows.
  rowsPerExpert =
      cast<FloatAttr>(plan.get("rows_per_expert")).getValueAsDouble();
  expertRows = rowsPerExpert <= 1.5 ? 1 : rowsPerExpert <= 2.5 ? 2 : 4;
  // About one row an expert: the expert FFN as one kernel (up, activation,
  // down and combine by column slices, no intermediate buffers), with
  // ffnColumns columns a block; 0: the up and down GEMVs.
  if (!mma && expertRows == 1) {
    int64_t asked = 0;
    if (auto c = plan.getAs<IntegerAttr>("ffn_columns"))
      asked = c.getInt();
    int64_t c = asked ? asked : planFfnColumns(f, S);
    if (c > 0 && whyNotFfnKernel(d, f, c).empty())
      ffnColumns = c;
  }

  gemvExperts = !mma && !ffnColumns;
  planGemvs(S * (gated ? 2 : 1), S);
  // One token: the gating kernel's blocks, the up GEMV's and the down
  // GEMV's as work items of one persistent kernel (DecodeKernel.cpp), the
  // routing published and each slot's up projection handed to the down
  // projection through counters instead of kernel boundaries. Where two or
  // more experts are hit (a slot's down items then overlap the next slots'
  // up items): DeepSeek-V3 7% and Mixtral 1.6-2.6% faster than the chain,
  // OLMoE and qwen3 within 3% either way; with one expert (ds-moe-128,
  // every down item waits for every up item) 4-6% slower
  // (results/decode-kernel-2026-12-01.md).
  StringRef decodeChoice = choice("decode_kernel");
  auto stagesAttr = plan.getAs<IntegerAttr>("decode_stages");
  decodeStages = stagesAttr ? stagesAttr.getInt() : 0;
  // (Not yet in a layer summed over ranks: it has not run on two GPUs.)
  decodeKernel = !dense && decodeChoice != "never" && gateChoice != "never" &&
                 gemvExperts && stageRows && S >= 2 && !localized &&
                 !mmaRouter && !summed && whyNotDecodeKernel(T, S, E).empty();
  if (decodeKernel)
    fusedGate = true; // its router items clear the accumulators
  // The decode kernel's items planned as for a share of the matrices
  // (--gpu-decode-grid-share, percent): coarser or finer than the chain's
  // launches; kept where the down GEMV still stages its input.
  if (auto share = plan.getAs<IntegerAttr>("decode_grid_share");
      decodeKernel && share) {
    gridShare = share.getInt();
    planGemvs(std::max<int64_t>(1, S * (gated ? 2 : 1) * gridShare / 100),
              std::max<int64_t>(1, S * gridShare / 100));
    if (!stageRows) {
      gridShare = 100;
      planGemvs(S * (gated ? 2 : 1), S);
    }
  }
  if (decodeKernel)
    fillDecodeItems();
  // The gating or decode kernel's blocks bring the router into L2 before
  // their grid dependency wait: they launch early (programmatic dependent
  // launch) and wait there while the kernel before ends (in a model's
  // decoding step, the previous layer's), and their router shares, the
  // first link of the chain every expert waits on, then come from L2.
  // On by default (auto): at one token on an H100, three runs of the five
  // benchmark shapes, 13 of 15 single-layer graphs and 14 of 15 layers of
  // decoding steps as fast or faster (0.973-0.999x; the others 1.001-1.015x,
  // qwen3 alone; results/prefetch-router-2026-12-05.md). Not measured on
  // an H200.
  prefetchRouter = fusedGate && choice("prefetch_router") != "never";

  // The tensor-core paths' combine. "atomic": the down kernel adds each
  // weighted row into the f32 output [T, d] by atomics, then the rounding
  // kernel. "rows": it stores each weighted row in bf16 [N, d] by plain
  // stores, and the combine kernel sums each token's k rows into the bf16
  // output (no f32 output to clear and round). Rows up to a rows buffer
  // of kCombineRowsMaxBytes: at 1024 tokens 0-2.4% faster, at 8192 tokens
  // of ds-moe-128 and Mixtral 0.7-1.2%; with the 256-940 MiB buffers of
  // qwen3, OLMoE and DeepSeek-V3 at 8192 tokens (the combine kernel reads
  // all of it: 240 us for DeepSeek-V3's) -0.7% to +2.1%
  // (results/combine-rows-2026-12-02.md). A layer summed over ranks,
  // narrowed to local experts, or with dense stages after it (shared experts,
  // PR-MoE MLP) adds into the f32 output.
  StringRef combineChoice = choice("combine");
  combineRows =
      mma && !dense && !localized && !summed && !addsDenseStages &&
      (combineChoice == "rows" ||
       (combineChoice == "auto" && N * d * 2 <= kCombineRowsMaxBytes));

  // The persistent form (WgmmaKernel.cpp) needs a pair's K steps to cover
  // the copies in flight (stages - 2 steps).
  StringRef persistentChoice = choice("wgmma_persistent");
  // With a producer warpgroup (warp-specialised; the default: 0.94-1.00 of
  // the time of the grid of (tile, column block) blocks at 1024 and 8192
  // tokens, results/wgmma-producer-2026-12-02.md) any K will do.
  producer = wgmma && (persistentChoice == "producer" ||
                       persistentChoice == "tma" ||
                       persistentChoice == "multicast" ||
                       persistentChoice == "auto");
  // The producer's weight tiles by TMA (tensor maps made by the runtime;
  // the wgmma path's d and f are multiples of 128, so the weights' rows are
  // multiples of 16 bytes as TMA needs). By default for gated layers, and
  // for the others where experts get kTmaMinRowsPerExpert rows or more.
  // Where a weight block serves several row tiles from L2 the layers were
  // 3-8% faster (qwen3 and OLMoE at 8192 tokens,
  // results/wgmma-tma-2026-12-02.md). With pairs taken in order from the
  // counter (MmaOptions::queue) the tiles of an expert meet on a weight
  // block, and TMA also won with one to three row tiles an expert: layers
  // 0.95-0.99x at 1024 tokens (Mixtral 0.949), DeepSeek-V3 at 8192 0.965x
  // (its kernels 13.98 -> 13.22 ms at base clocks); the ungated ds-moe-128
  // at 8192 (one half-full tile an expert) measured 1.017x, as it did
  // before the queue (results/wgmma-tma-queue-2026-12-02.md).
  // 64-row tiles take TMA weights too (how they were measured against the
  // GEMVs and mma.sync tiles, results/wgmma-small-rows-2026-12-03.md), and
  // so do 192-row tiles (the only form of them measured; a producer
  // copying both their 12 row chunks and the weights by cp.async was not
  // tried within its 56 registers).
  tmaWeights =
      producer &&
      (persistentChoice == "tma" || persistentChoice == "multicast" ||
       (persistentChoice == "auto" &&
        (gated || wgmmaTile.rows != kWgmmaTileM ||
         N >= kTmaMinRowsPerExpert * E)));
  // The weights multicast by TMA to the two blocks of a cluster, which take
  // the two 128-row halves of a 256-row tile (MmaOptions::multicast): L2
  // serves each weight block once per 256 rows. Only where asked: each SM
  // still takes in the whole block, and it measured 1.17-2.07x slower
  // (results/wgmma-multicast-2026-12-02.md). Needs an even count of
  // 64-column atoms a matrix.
  multicast =
      tmaWeights && persistentChoice == "multicast" &&
      wgmmaTile.rows == kWgmmaTileM &&
      (wgmmaTile.columns / (gated ? 2 : 1) / 64) % 2 == 0;
  if (multicast) {
    tileM = tileStep = 2 * kWgmmaTileM;
    tiles = tilesFor(tileM);
  }
  // The weights' TMA loads with the L2 evict-first policy
  // (MmaOptions::evictFirst) where an expert gets fewer than two row tiles
  // on average: its weight blocks are then read by blocks running
  // together, and the rows, read again by every column block, stay in L2.
  // qwen3 at 1024 tokens: the up kernel read 810 MB from DRAM instead of
  // 826 (199 us against 207), the layer 0.963-0.968x; 0.917-0.999x at 128
  // tokens. At two tiles an expert (Mixtral 1024, DeepSeek-V3 8192)
  // 0.990-1.015x (results/weights-evict-first-2026-12-03.md).
  evictFirst = tmaWeights && choice("weights_evict_first") != "never" &&
               rowsPerExpert < 2 * tileStep;
  // The weights of a pair's K step kt + N brought into L2 as the producer
  // issues step kt (MmaOptions::l2PrefetchSteps), so that more bytes are in
  // flight from DRAM than the stages hold: only where asked
  // (wgmma_l2_prefetch = N). The question it asks: on an H200 the fused
  // Triton layer (two blocks an SM, more stages of weights in flight) read
  // 4.22-4.47 TB/s at DeepSeek-V3 16 and 128 tokens and ds-moe-128 128 and
  // 1024 tokens where the compiled layers read 4.05-4.25, while on an H100
  // their expert kernels were within 1.3% (results/targets-2026-12-06.md).
  // On an H100 it was slower at DeepSeek-V3 and ds-moe-128, 16 and 128
  // tokens: 1.09-1.14x at N = 4, 1.21-1.25x at 8 (1.10-1.11x at 1,
  // DeepSeek-V3 only)
  // (results/ab-r64s5-l2-prefetch-h100-2026-12-06.md); not run on an H200.
  if (auto asked = plan.getAs<IntegerAttr>("wgmma_l2_prefetch");
      asked && tmaWeights && !multicast)
    l2PrefetchSteps = asked.getInt();
  // Each expert's K steps from step 5 e on (MmaOptions::rotateK) where an
  // expert gets two or more row tiles, but in tall tiles 192 apart: 0.95x
  // the expert kernels' time at Mixtral and OLMoE 8192, 0.97-0.98x on top
  // of the band order at DeepSeek-V3 8192; no gain shown in tall tiles 192
  // apart (qwen3 8192 0.942-0.967x with it, 0.934-0.946x without), 1.17x
  // at ds-moe-128 8192 (64 rows an expert), 1.01-1.03x at 128 tokens
  // (results/wgmma-k-order-2026-12-04.md).
  // `wgmma_k_order`: "never" neither this nor the band order, "band" the
  // band order only, "up" the rotation in the up kernel only, "both" the
  // rotation in both kernels wherever it applies. The down kernel's
  // rotation is decided with its K runs (below).
  StringRef kOrder = choice("wgmma_k_order");
  bandKOrder = kOrder != "never";
  // A 192-row tile's band with the operands swapped
  // (MmaOptions::swapBandRows) only where asked (wgmma_band = swap16 or
  // swap32): not measured yet.
  StringRef band = choice("wgmma_band");
  if (producer && wgmmaTile.rows == kWgmmaTallRows && band.starts_with("swap"))
    swapBandRows = band == "swap16" ? 16 : 32;
  rotateK = producer && bandKOrder && kOrder != "band" &&
            !(wgmmaTile.rows == kWgmmaTallRows && tileStep == tileM) &&
            rowsPerExpert >= 2 * tileStep;
  // The producer form's pairs from a global counter (MmaOptions::queue),
  // by default: pairs then start in their order, so the tiles of an expert
  // meet on a weight block in L2. DeepSeek-V3 at 8192 tokens: the down
  // kernel read 13.8 GB from DRAM instead of 18.1 (4.65 ms against 5.05),
  // the up kernel 22.0 GB instead of 22.9; layers 0.95-1.02x the time of
  // round-robin pairs at 1024 and 8192 tokens
  // (results/wgmma-queue-2026-12-02.md). Its ring of taken values covers
  // up to kWgmmaQueueRing - 3 stages.
  StringRef queueChoice = choice("wgmma_queue");
  queue = producer && !multicast && queueChoice != "never" &&
          wgmmaTile.stages + 3 <= kWgmmaQueueRing;
  persistent = producer || (wgmma && persistentChoice == "always" &&
                            std::min(d, f) / kWgmmaTileK >=
                                wgmmaTile.stages - 2);
  // The wgmma blocks' order over (row tile, column block): groups of tiles
  // (planWgmmaGroup: rows within 24 MiB, at most a wave of the grid's
  // pairs, at least twice an expert's tiles). The down kernel of qwen3 at
  // 1024 tokens, with all its tiles one group, read 499 MB from DRAM for
  // 403 MB of weights; with groups of a wave, 416 MB
  // (results/kernel-profile-1024-2026-12-03.md,
  // results/weights-evict-first-2026-12-03.md).
  // Asked -2 (kExpertGroupsAsked): each expert's tiles a group
  // (MmaOptions::expertGroups), in the persistent form without multicast.
  auto asked = plan.getAs<IntegerAttr>("wgmma_group_tiles");
  expertGroups = asked && asked.getInt() == kExpertGroupsAsked &&
                 persistent && !multicast;
  // The groups also within kWgmmaGroupLagBytes of weights between a tile's
  // column blocks (up kernel): DeepSeek-V3 at 8192 tokens (two tiles
  // an expert, K 7168) took groups of 8 tiles, and its up kernel read
  // 23.36 GB from DRAM in 7449 us under Nsight Compute; groups of 4: 19.73
  // GB, 6957 us; of 2: 18.85 GB, 6872 us (layers 0.936x and 0.944x as
  // graphs); of 1 (an expert's tiles apart): 25.05 GB. Its down kernel
  // gained nothing from smaller groups (4179 us in groups of 4, 4199 of 2,
  // 4362 of 1; the cap leaves it 4). (qwen3 at 8192 tokens, whose up
  // groups the cap takes from 22 to 6 tiles: its up kernel within 1.3%
  // from groups of 2 to 22; results/wgmma-group-lag-2026-12-05.md.) The
  // down kernel takes the same cap: there the rows a tile keeps in L2
  // between its column blocks are its K = ffn columns of the up kernel's
  // output, and Mixtral at 1024 tokens (two tiles an expert, 7.3 MB weight
  // blocks) took groups of 6, its down kernel reading 1504-1536 MB from
  // DRAM for 940 MB of weights and 59 MB of rows in 595-604 us under
  // Nsight Compute (H100, base clocks); in groups of 2 (the cap's):
  // 1377-1388 MB, 541 us. Of the benchmark's layers the cap (with
  // kWgmmaGroupLagBytes at 2 MiB) changes Mixtral 1024 (4, 6 -> 2, 2),
  // Mixtral 8192 (up 24 -> 16) and qwen3 8192 (up 12 -> 6): the kernels
  // 0.90-1.001x their time, the layers 0.937-0.998x as graphs
  // (results/kernel-sol-groups-1024-h100-2026-12-06.md).
  auto groupTiles = [&](int64_t kDim, int64_t colBlocks,
                        int64_t lagColumns) -> int64_t {
    if (expertGroups)
      return 0;
    int64_t g = asked && asked.getInt() >= 0
                    ? asked.getInt()
                    : planWgmmaGroup(kDim, tileStep, colBlocks, rowsPerExpert,
                                     lagColumns);
    return g >= tiles ? 0 : g;
  };
  // Column blocks: the up kernel's pairs take columns / 2 of each of the
  // up and gate matrices.
  int64_t upBlockCols = wgmmaTile.columns / (gated ? 2 : 1);
  upGroupTiles = wgmma ? groupTiles(d, llvm::divideCeil(f, upBlockCols),
                                    wgmmaTile.columns)
                       : 0;
  downGroupTiles = wgmma ? groupTiles(f, llvm::divideCeil(d, wgmmaTile.columns),
                                      wgmmaTile.columns)
                         : 0;
  // A dense stage's down kernel has a (tile, column block) pair per
  // wgmmaTile.columns of d and a row tile of its T rows: Qwen2-57B's shared
  // expert at 16 tokens, 14 pairs streaming 147 MB on 14 SMs. There the
  // grid form splits K over grid z (about two blocks an SM, planSplitK),
  // the scatter epilogue's f32 atomics adding the runs' sums (its rows'
  // weights are linear in them); the cp.async copies of the grid form
  // replace the producer's TMA. Layers at 8-512 tokens: Qwen2-57B
  // 0.877-0.937x the time, DeepSeek-V2-Lite 0.933-0.997x, DeepSeek-V3's
  // layer (28 pairs) 0.996-1.000x (results/dense-split-k-2026-12-04.md).
  // The routed down kernel's pairs in K runs (MmaOptions::kRuns), their
  // sums added by the scatter's atomics, where the pairs are few and long:
  // Mixtral at 1024 tokens has about 256 pairs of 224 K steps for 132 SMs,
  // and an expert's last tile, with its band, takes 1.5x the others' time.
  // There: kDownKRuns runs where experts get two or more row tiles, the
  // pairs are under kDownKRunsMaxWaves waves of kPlanSms and a run keeps
  // kDownKRunsMinSteps K steps. Asked (down_k_runs = N): the most runs up
  // to N that divide the K steps. Runs take the combine by atomics.
  // Mixtral 1024 on an H200 (results/down-k-runs-2026-12-05.md), against
  // no runs and the combine by rows: 2 runs 0.972x the kernels' time at
  // base clocks (down kernel 538 us against 577), 4 runs 1.012x (599 us:
  // each run adds its tile by atomics); graph replays 0.985x, 1.052x and
  // 7 runs 1.086x.
  if (!dense && queue && choice("combine") != "rows") {
    int64_t steps = f / kWgmmaTileK;
    int64_t want = 1;
    if (auto asked = plan.getAs<IntegerAttr>("down_k_runs")) {
      want = asked.getInt();
    } else if (rowsPerExpert >= 2 * tileStep) {
      double pairs = expectedExpertsHit(E, k, T) *
                     std::ceil(rowsPerExpert / double(tileStep)) *
                     double(llvm::divideCeil(d, wgmmaTile.columns));
      if (pairs < kDownKRunsMaxWaves * kPlanSms &&
          steps / kDownKRuns >= kDownKRunsMinSteps)
        want = kDownKRuns;
    }
    downKRuns = 1;
    for (int64_t r = want; r > 1; --r)
      if (steps % r == 0) {
        downKRuns = r;
        break;
      }
    if (downKRuns > 1)
      combineRows = false;
  }
  // The rotation in the down kernel, but where its tiles are 192-row tiles
  // 128 apart and its pairs run whole K: DeepSeek-V3 8192's down kernel
  // (an expert's 128-row tile and its tall last one) took 4147.8 us
  // without the rotation against 4206.4 with it on an H200 (1.014x; the up
  // kernel's rotation kept; results/wgmma-k-order-2026-12-05.md) and 4114
  // against 4172 on 2026-12-04. Mixtral 1024 (the same tiles, its down
  // kernel in K runs) was 0.979-0.992x the layer's graph time with it in
  // three runs on an H100, its kernels equal under Nsight Compute
  // (results/ab-kboth-mixtral1024-h100-2026-12-05.md). Where the tiles are
  // 128 rows (Mixtral and OLMoE 8192) the down kernels gained with it
  // (3390 -> 3174 and 713 -> 667 us).
  bool tallApart128 = wgmmaTile.rows == kWgmmaTallRows && tileStep < tileM;
  rotateDownK = rotateK && kOrder != "up" &&
                (kOrder == "both" || !tallApart128 || downKRuns > 1);
  if (dense && wgmma && !multicast && choice("dense_split_k") != "never") {
    int64_t pairs = llvm::divideCeil(T, tileM) *
                    llvm::divideCeil(d, wgmmaTile.columns);
    downSplitK = planSplitK(pairs, f / kWgmmaTileK);
  }

  activation = cast<ActivationAttr>(plan.get("activation")).getValue();
  // The wgmma epilogues' bf16 rows 16 bytes a thread (MmaOptions::
  // wideStores: the 4 threads of a row swap their columns by shuffles, so
  // that a warp's store writes whole 32-byte sectors instead of halves)
  // where experts get kWgmmaWideStoreRows rows or more. Against the
  // per-pair stores on an H100 (results/wgmma-wide-stores-h100-2026-12-06.md,
  // 9 rounds): OLMoE 1024 0.979x (its down kernel 0.932x at base clocks)
  // and 8192 0.984x, DeepSeek-V3 8192 0.979x, Mixtral 8192 0.984x and 1024
  // 0.991x, qwen3 8192 0.987x and 1024 0.995x, ds-moe-128 8192 0.996x; at
  // 16 tokens 1.003-1.028x slower (5 rounds: the shuffles and activations
  // run for every row of tiles that hold a few, where the per-pair stores
  // skipped the empty rows; a branch around them made ptxas serialize the
  // wgmmas), 128 tokens 0.999-1.003x.
  // Only where a kernel takes them (wgmmaWideStores): the down kernel's
  // weighted rows, or an up kernel whose activation is cheap.
  wideStores = wgmma && choice("wgmma_wide_stores") != "never" &&
               rowsPerExpert >= kWgmmaWideStoreRows &&
               (combineRows || wgmmaCheapActivation(activation));
  ro.numExperts = E;
  ro.topK = k;
  ro.sigmoid = plan.get("sigmoid") != nullptr;
  ro.afterTopk = plan.get("score_after_topk") != nullptr;
  ro.renormalize = plan.get("renormalize") != nullptr;
  if (auto groups = plan.getAs<IntegerAttr>("n_group")) {
    ro.numGroups = groups.getInt();
    ro.topkGroup = cast<IntegerAttr>(plan.get("topk_group")).getInt();
    ro.groupTop2Sum = plan.get("group_top2_sum") != nullptr;
  }
  if (auto scaling = plan.getAs<FloatAttr>("scaling"))
    ro.scaling = scaling.getValueAsDouble();
  if (mma) {
    ro.tileRows = tileM;
    ro.tileStep = tileStep;
  }
  if (auto capacity = plan.getAs<IntegerAttr>("capacity"))
    ro.capacity = capacity.getInt();
  // A decode step routes in one warp, without counts and scans (no
  // capacity is planned there: one token gives an expert one assignment at
  // most, and a capacity is at least one).
  ro.oneToken = T == 1 && !mma;

  // The plan, fixed from the static shapes.
  if (!dense)
    routerGrid = planGemv(d, E, 1);
  gatePlan = fusedGate ? planGate(d, E) : GatePlan();
  // The decode chain overlaps each kernel's start with the tail of the one
  // before (programmatic dependent launch): the up GEMV lets the down GEMV
  // launch right after its grid dependency wait, so that its blocks are
  // resident while the up GEMV finishes, and the down GEMV issues its first
  // weight loads before its own wait; at one token the gating kernel and
  // the down GEMV let the next kernel launch early too (3.9-6.8% faster at
  // one token of ds-moe-128, qwen3 and OLMoE; with the one trigger, 0-4%
  // faster at four tokens, OLMoE 0.5-1.3% slower, where all three made
  // ds-moe-128 4% slower:
  // results/decode-overlap-2026-12-01.md).
  StringRef overlapChoice = choice("decode_overlap");
  decodeOverlap = gemvExperts && !decodeKernel && overlapChoice != "never";
  overlapEnds = decodeOverlap && T == 1;
}

void ExpertStage::planGemvs(int64_t upMatrices, int64_t downMatrices) {
  GemvTuning tuning;
  if (auto t = plan.getAs<DenseI64ArrayAttr>("gemv_tuning"))
    tuning = {t[0], t[1]};
  upGrid = planGemv(d, f, upMatrices, tuning);
  downGrid = planGemv(f, d, downMatrices, tuning);
  stageRows = stageRowsOf(downGrid);
}

int64_t ExpertStage::stageRowsOf(const GemvGrid &down) const {
  // The down GEMV's input (the activation of the up projection) computed
  // once a block into shared memory, where a block's rows fit 16 KiB.
  return gemvExperts && choice("stage_down") != "never" &&
                 expertRows * down.kchunk * 4 <= kGemvStageBytes
             ? down.kchunk
             : 0;
}

// The decode kernel's blocks have kDecodeThreads threads; a GEMV planned
// for its own launch may take fewer (qwen3's up projection: 96 column
// groups, 768 columns, two lanes each: 192 threads), leaving a quarter of
// the block's loads unissued for the whole up phase. A bare read of one
// token's experts with 192 of 256 threads loading took 1.8-2.6 us longer
// in 64 KB chunks, 0.6-2.0 in 128 KB (results/decode-floor-2026-12-04.md);
// qwen3's layer at one token 0.983x (results/decode-fill-2026-12-04.md).
void ExpertStage::fillDecodeItems() {
  upGrid = fillGemvBlock(upGrid, d, f, kDecodeThreads);
  // The down items keep staging their input (or not) as planned.
  GemvGrid down = fillGemvBlock(downGrid, f, d, kDecodeThreads);
  if ((stageRowsOf(down) != 0) == (stageRows != 0)) {
    downGrid = down;
    stageRows = stageRowsOf(down);
  }
}

std::string ExpertStage::describe() const {
  std::string text;
  llvm::raw_string_ostream os(text);
  auto combine = [&] {
    os << ", combined by "
       << (combineRows ? "weighted bf16 rows" : "f32 atomics");
  };
  if (wgmma) {
    os << "wgmma, tiles of " << tileM << " rows";
    if (wgmmaTile.step)
      os << " " << wgmmaTile.step << " apart";
    os << " x " << wgmmaTile.columns << " columns, " << wgmmaTile.stages
       << " stages, at most " << tiles << " tiles";
    if (expertGroups)
      os << ", each expert's tiles a group";
    else if (upGroupTiles || downGroupTiles) {
      // (0: a column block's tiles all in turn.)
      auto group = [&](int64_t g) -> raw_ostream & {
        return g ? os << g : os << "all";
      };
      os << ", groups of ";
      group(upGroupTiles) << " (up) and ";
      group(downGroupTiles) << " (down) row tiles";
    }
    if (persistent)
      os << ", persistent";
    if (l2PrefetchSteps)
      os << ", weights into L2 " << l2PrefetchSteps << " K steps ahead";
    if (wideStores)
      os << ", 16-byte row stores";
    if (downKRuns > 1)
      os << ", the down kernel's K in " << downKRuns << " runs";
    if (downSplitK > 1)
      os << ", the down kernel split " << downSplitK << " ways over K";
    combine();
  } else if (mma) {
    os << "mma.sync, tiles of " << tileM << " rows x " << kMmaTileN
       << " columns, " << stages << " stages, at most " << tiles << " tiles";
    combine();
  } else if (ffnColumns) {
    os << "one fused FFN kernel, blocks of " << ffnColumns << " columns";
  } else if (inDecodeKernel) {
    os << "items of the routed experts' decode kernel";
  } else {
    os << "grouped GEMVs";
    if (decodeKernel)
      os << " in one persistent decode kernel with the gating";
  }
  if (ro.capacity)
    os << "; each expert keeps its first " << ro.capacity
       << " assignments in priority order";
  return text;
}

SmallVector<NamedAttribute> ExpertStage::planAttrs(OpBuilder &b) const {
  auto gridAttr = [&](const GemvGrid &g) {
    return b.getDenseI64ArrayAttr(g.summary());
  };
  SmallVector<NamedAttribute> planAttrs{
      b.getNamedAttr("path", b.getStringAttr(path)),
      b.getNamedAttr("slots", b.getI64IntegerAttr(S))};
  if (dense) {
    // Routing: every token to the one expert (moe_route_dense).
    planAttrs.push_back(b.getNamedAttr(
        "router", b.getStringAttr(coef  ? "dense_coef"
                                  : mix ? "dense_mix"
                                        : "dense")));
  } else if (routerInSelect) {
    RouterInSelectPlan rp = planRouterInSelect(d, E);
    planAttrs.push_back(b.getNamedAttr("router", b.getStringAttr("select")));
    // Its cp.async stages: how many, of how many K rows.
    planAttrs.push_back(b.getNamedAttr(
        "router_stages", b.getDenseI64ArrayAttr({rp.stages, rp.stageK})));
  } else if (mmaRouter) {
    DenseMatmulPlan rp = planDenseMatmul(T, d, E, routerSplits());
    planAttrs.push_back(b.getNamedAttr(
        "router", b.getStringAttr(rp.wgmma ? "wgmma" : "mma")));
    if (rp.splits > 1)
      planAttrs.push_back(
          b.getNamedAttr("router_split_k", b.getI64IntegerAttr(rp.splits)));
  } else if (fusedGate)
    planAttrs.push_back(b.getNamedAttr(
        "gate", b.getDenseI64ArrayAttr(
                    {gatePlan.blocks, kGateThreads, gatePlan.kchunk})));
  else
    planAttrs.push_back(b.getNamedAttr("router", gridAttr(routerGrid)));
  if (mma)
    planAttrs.push_back(b.getNamedAttr(
        "combine", b.getStringAttr(combineRows ? "rows" : "atomic")));
  if (wgmma) {
    planAttrs.push_back(b.getNamedAttr(
        "tile",
        b.getDenseI64ArrayAttr({tileM, wgmmaTile.columns, kWgmmaTileK})));
    planAttrs.push_back(
        b.getNamedAttr("stages", b.getI64IntegerAttr(wgmmaTile.stages)));
    if (wgmmaTile.step)
      planAttrs.push_back(
          b.getNamedAttr("tile_step", b.getI64IntegerAttr(wgmmaTile.step)));
    planAttrs.push_back(b.getNamedAttr("tiles", b.getI64IntegerAttr(tiles)));
    // Tiles a group of the up and down kernels (0: all tiles per column
    // block; -2: each expert's tiles).
    planAttrs.push_back(b.getNamedAttr(
        "group_tiles",
        b.getDenseI64ArrayAttr(
            {expertGroups ? kExpertGroupsAsked : upGroupTiles,
             expertGroups ? kExpertGroupsAsked : downGroupTiles})));
    if (persistent)
      planAttrs.push_back(b.getNamedAttr("persistent", b.getUnitAttr()));
    if (producer)
      planAttrs.push_back(b.getNamedAttr("producer", b.getUnitAttr()));
    if (tmaWeights)
      planAttrs.push_back(b.getNamedAttr("weights_tma", b.getUnitAttr()));
    if (evictFirst)
      planAttrs.push_back(b.getNamedAttr("evict_first", b.getUnitAttr()));
    if (l2PrefetchSteps)
      planAttrs.push_back(b.getNamedAttr(
          "l2_prefetch", b.getI64IntegerAttr(l2PrefetchSteps)));
    if (wideStores)
      planAttrs.push_back(b.getNamedAttr("wide_stores", b.getUnitAttr()));
    if (rotateDownK)
      planAttrs.push_back(b.getNamedAttr("k_rotate", b.getUnitAttr()));
    else if (rotateK)
      planAttrs.push_back(b.getNamedAttr("k_rotate", b.getStringAttr("up")));
    if (multicast)
      planAttrs.push_back(
          b.getNamedAttr("weights_multicast", b.getI64IntegerAttr(2)));
    if (queue)
      planAttrs.push_back(b.getNamedAttr("queue", b.getUnitAttr()));
    if (downSplitK > 1)
      planAttrs.push_back(
          b.getNamedAttr("down_split_k", b.getI64IntegerAttr(downSplitK)));
    if (downKRuns > 1)
      planAttrs.push_back(
          b.getNamedAttr("down_k_runs", b.getI64IntegerAttr(downKRuns)));
  } else if (mma) {
    planAttrs.push_back(b.getNamedAttr(
        "tile", b.getDenseI64ArrayAttr({tileM, kMmaTileN, kMmaTileK})));
    planAttrs.push_back(b.getNamedAttr("stages", b.getI64IntegerAttr(stages)));
    planAttrs.push_back(b.getNamedAttr("tiles", b.getI64IntegerAttr(tiles)));
  } else if (ffnColumns) {
    planAttrs.push_back(b.getNamedAttr(
        "ffn", b.getDenseI64ArrayAttr(
                   {f / ffnColumns, S, kFfnThreads, ffnColumns})));
  } else {
    planAttrs.push_back(b.getNamedAttr("up", gridAttr(upGrid)));
    planAttrs.push_back(b.getNamedAttr("down", gridAttr(downGrid)));
    // "chain": gating, up and down GEMVs trigger early; "down": the up
    // GEMV triggers early; the down GEMV loads before its wait in both.
    if (decodeOverlap && !inDecodeKernel)
      planAttrs.push_back(b.getNamedAttr(
          "decode_overlap", b.getStringAttr(overlapEnds ? "chain" : "down")));
    if (stageRows)
      planAttrs.push_back(
          b.getNamedAttr("stage_down", b.getI64IntegerAttr(stageRows)));
    // [blocks, gating items, up items, down items, cp.async stages]
    if (decodeKernel)
      planAttrs.push_back(b.getNamedAttr(
          "decode_kernel",
          b.getDenseI64ArrayAttr(
              {kPlanSms * kDecodeBlocksPerSm, gatePlan.blocks,
               upGrid.blocksX * upGrid.splits * S * (gated ? 2 : 1),
               downGrid.blocksX * downGrid.splits * S, decodeStages})));
    // [up items, down items] of the dense stage the decode kernel runs.
    if (decodeDense)
      planAttrs.push_back(b.getNamedAttr(
          "decode_dense",
          b.getDenseI64ArrayAttr(
              {decodeDense->denseUpItems(), decodeDense->denseDownItems()})));
    if (inDecodeKernel)
      planAttrs.push_back(b.getNamedAttr("in_decode_kernel", b.getUnitAttr()));
  }
  return planAttrs;
}
