//===- LayerToGPU.cpp - A whole moe.layer as one GPU fusion chain ---------===//
//
// Part of moe-compiler.
//
// A bf16 moe.layer that the fused path supports (whyNotGpuLayer) becomes a
// call to a private helper, as moe.experts does in ExpertsToGPU.cpp, so that
// bufferization and deallocation run around it. After bufferization the
// helper gets its body: the kernel chain of a layer step, all on the model
// stream, with nothing crossing to the host:
//
//   logits = x W_router            dense GEMV (split over d), or dense mma
//                                  from 128 tokens
//   route(logits)                  top k, counts, offsets, the mapping table,
//                                  the experts hit and the row tiles: one
//                                  block, or select over the grid + finish
//   a = act(x[rowToken] W_gate) * (x[rowToken] W_up)
//                                  the dispatch gather fused in; GEMV path:
//                                  up and gate in one launch, then an
//                                  activation kernel; mma path: one kernel
//   y[rowToken] += w_row * a W_down   GEMV or mma with the combine fused in
//   out = bf16(y)
// or, on the tensor-core paths up to a rows buffer of 128 MiB (`combine`):
//   r = bf16(w_row * a W_down)     mma, plain stores by row
//   out[t] = bf16(sum_j r[row(t, j)])   the combine kernel
//
// At 1-4 tokens (routers up to 1 MiB) the first two are one gating kernel
// that also clears the accumulators (no memset); where experts get about
// one row and the column slices are many, the two expert steps are one
// kernel (buildFusedFfnKernel). `moe.gpu_plan` records which (gate, ffn).
//
// The expert path and its tiles are chosen by the conversion pass from the
// rows each expert gets (`moe.gpu_layer`); grids, split counts and the
// kernels' forms by ExpertStage::decide (GpuLayerPlan.cpp) from the static
// shapes, recorded as `moe.gpu_plan`, so the plan is visible in the IR.
//
//===----------------------------------------------------------------------===//

#include "GpuLayerPlan.h"
#include "moe/Conversion/MoEToGPU/GpuHelpers.h"
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <cmath>
#include <tuple>

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOELAYERTOGPUCALL
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_layer;

namespace {
struct ConvertMoELayerToGpuCallPass
    : mlir::moe::impl::ConvertMoELayerToGpuCallBase<
          ConvertMoELayerToGpuCallPass> {
  using Base::Base;

  /// What the planner reads of an expert stage: the routed experts of a
  /// layer, or its shared experts (one expert every token goes to).
  struct StageShape {
    int64_t tokens, experts, topK, d, f;
    bool gated;
  };
  static StageShape routedShape(LayerOp op) {
    auto up = cast<RankedTensorType>(op.getWUp().getType());
    return {cast<RankedTensorType>(op.getInput().getType()).getDimSize(0),
            op.getNumExperts(),
            op.getTopKAttr().getInt(),
            up.getDimSize(1),
            up.getDimSize(2),
            op.getWGate() != nullptr};
  }
  /// The PR-MoE residual MLP: ungated, one expert every token goes to.
  static StageShape mlpShape(LayerOp op) {
    auto up = cast<RankedTensorType>(op.getMlpUp().getType());
    return {cast<RankedTensorType>(op.getInput().getType()).getDimSize(0),
            1,
            1,
            up.getDimSize(0),
            up.getDimSize(1),
            /*gated=*/false};
  }
  static StageShape sharedShape(LayerOp op) {
    auto up = cast<RankedTensorType>(op.getSharedUp().getType());
    return {cast<RankedTensorType>(op.getInput().getType()).getDimSize(0),
            1,
            1,
            up.getDimSize(0),
            up.getDimSize(1),
            op.getSharedGate() != nullptr};
  }

  /// Rows an expert hit by a step gets on average.
  static double rowsPerExpert(const StageShape &s) {
    return double(s.tokens * s.topK) /
           expectedExpertsHit(s.experts, s.topK, s.tokens);
  }

  /// Rows of the wgmma tiles where the user left them to the planner: 64
  /// where experts get fewer than kWgmmaHalfRowsBelow rows on average (and
  /// the options allow a 64-row tile), else kWgmmaTileM. Measured at 1 to
  /// 1024 tokens of the five standard shapes (TMA weights, 4 stages): 64-row
  /// tiles 0.80-0.99x the time of the mma.sync tiles and 128-row wgmma
  /// tiles at 1.2 to 16 rows an expert, 0.99-1.02x at 32, 1.03-1.16x from
  /// 64 (results/wgmma-small-rows-2026-12-03.md).
  static constexpr double kWgmmaHalfRowsBelow = 32;
  /// 192-row tiles where the rows they multiply (an expert's last tile
  /// 128 or 192 of them, expected under uniform routing) are at most this
  /// share of those of 128-row tiles. Their 0.78x the shared-memory bytes
  /// per MMA did not make them faster (layers' kernels 0.998-1.13x at 1024
  /// and 8192 tokens without the band's skip, Nsight Compute at base
  /// clocks); the padded MMAs they skip did, at about 1.04x the time per
  /// MMA: qwen3 8192 (0.946 of the rows) 0.984x, OLMoE 1024 (0.839) 0.966x;
  /// OLMoE 8192 (1.000) 1.040x, Mixtral 8192 (0.988) 1.011x, Mixtral 1024
  /// (1.007) 1.061x (results/wgmma-tall-2026-12-04.md).
  static constexpr double kWgmmaTallMaxRows = 0.95;
  int64_t chooseWgmmaRows(const StageShape &s) {
    // (A dense stage's kernels are not of the producer form.)
    if (wgmmaRows == kWgmmaTallRows && s.experts == 1)
      return kWgmmaTileM;
    if (wgmmaRows != 0)
      return wgmmaRows;
    if (wgmmaPersistent != "multicast" &&
        rowsPerExpert(s) < kWgmmaHalfRowsBelow &&
        whyNotWgmma({wgmmaColumns, wgmmaStages, 64}).empty())
      return 64;
    if (s.experts > 1 && producerForm() &&
        whyNotWgmma({wgmmaColumns, wgmmaStages, kWgmmaTallRows}).empty() &&
        std::min(expectedTileRows(s, kWgmmaTallRows, kWgmmaTallRows),
                 expectedTileRows(s, kWgmmaTallRows, kWgmmaTileM)) <=
            kWgmmaTallMaxRows *
                expectedTileRows(s, kWgmmaTileM, kWgmmaTileM))
      return kWgmmaTallRows;
    return kWgmmaTileM;
  }
  /// WgmmaTile::step of tiles of `rows` (0: `rows` apart): as asked, else
  /// for 192-row tiles the planner chose, kWgmmaTileM where the tiles then
  /// multiply at most kWgmmaTallMaxRows the rows of tiles 192 apart: an
  /// expert's 256 +- 16 rows (DeepSeek-V3 at 8192 tokens, Mixtral at 1024)
  /// 0.90x (288 against 320, as many as 128-row tiles); elsewhere in the
  /// standard table 0.97-1.00x, where the longer tiles stay. Measured
  /// against 128-row tiles (kernels under Nsight Compute): DeepSeek-V3
  /// 8192 0.982x, Mixtral 1024 0.997x; a 128-row tile of the 192-row
  /// kernel costs about 1.09-1.10x one of the 128-row kernel
  /// (results/wgmma-tile-step-2026-12-04.md).
  int64_t chooseWgmmaStep(const StageShape &s, int64_t rows) {
    if (rows != kWgmmaTallRows || wgmmaTileStep == kWgmmaTallRows)
      return 0;
    if (wgmmaTileStep != 0 || wgmmaRows == kWgmmaTallRows)
      return wgmmaTileStep;
    return expectedTileRows(s, rows, kWgmmaTileM) <=
                   kWgmmaTallMaxRows * expectedTileRows(s, rows, rows)
               ? kWgmmaTileM
               : 0;
  }
  /// Whether the options leave the wgmma expert kernels their producer
  /// warpgroup (the form 192-row tiles need).
  bool producerForm() const {
    return wgmmaPersistent == "auto" || wgmmaPersistent == "producer" ||
           wgmmaPersistent == "tma";
  }
  /// The rows the experts' tiles of `tileM` rows, `step` apart (tiles
  /// `step` apart until at most tileM rows are left: WgmmaTile::step),
  /// multiply, padding included, expected under uniform random routing (an
  /// expert's rows binomial over the tokens with probability k / E). A
  /// 192-row tile of at most 128 rows multiplies 128.
  static double expectedTileRows(const StageShape &s, int64_t tileM,
                                 int64_t step) {
    double p = double(s.topK) / double(s.experts), n = double(s.tokens);
    auto tileOf = [&](int64_t rest) -> int64_t {
      return rest == 0                                          ? 0
             : tileM == kWgmmaTallRows && rest <= kWgmmaTileM ? kWgmmaTileM
                                                              : tileM;
    };
    auto rowsOf = [&](int64_t r) -> double {
      if (step == tileM)
        return double(r / tileM * tileM + tileOf(r % tileM));
      int64_t before = r <= tileM ? 0 : (r - tileM + step - 1) / step;
      return double(before * step + tileOf(r - before * step));
    };
    if (p >= 1)
      return double(s.experts) * rowsOf(s.tokens);
    double mean = n * p, sd = std::sqrt(n * p * (1 - p));
    int64_t lo = std::max<int64_t>(0, int64_t(mean - 12 * sd));
    int64_t hi = std::min<int64_t>(s.tokens, int64_t(mean + 12 * sd) + 1);
    double rows = 0;
    for (int64_t r = lo; r <= hi; ++r) {
      double logP = std::lgamma(n + 1) - std::lgamma(r + 1.0) -
                    std::lgamma(n - r + 1) + r * std::log(p) +
                    (n - r) * std::log1p(-p);
      rows += std::exp(logP) * rowsOf(r);
    }
    return double(s.experts) * rows;
  }

  /// Whether the 64-row wgmma tiles keep the GPU busy below wgmmaMinRows
  /// rows an expert: more than one token (one token has the decode kernel,
  /// which the 64-row tiles took 1.02-2.8x as long as), and in both the up
  /// and the down kernel at least kWgmmaSmallMinPairs (tile, column block)
  /// pairs for the SMs, expected from the experts hit. With fewer, each
  /// SM streams a whole column block's weights alone: ds-moe-128 at 8
  /// tokens (62 down pairs of 8192 K rows) 1.03x, Mixtral at 2 tokens (56)
  /// 1.09x the GEMVs; from 87.5 pairs (Mixtral, 4 tokens) 0.87x, and 0.71-
  /// 0.99x wherever more (qwen3 and DeepSeek-V3 from 2 tokens, OLMoE from
  /// 4; OLMoE at 2 tokens, 120 pairs, measured 1.035x).
  static constexpr int64_t kWgmmaSmallMinPairs = kPlanSms * 3 / 5;
  bool smallRowsWgmma(const StageShape &s) {
    if (s.tokens < 2 || chooseWgmmaRows(s) != 64)
      return false;
    // A gated tile holds wgmmaColumns / 2 columns of each matrix.
    int64_t upColumns = s.gated ? wgmmaColumns / 2 : wgmmaColumns;
    double hit = expectedExpertsHit(s.experts, s.topK, s.tokens);
    double upPairs = hit * double((s.f + upColumns - 1) / upColumns);
    double downPairs = hit * double((s.d + wgmmaColumns - 1) / wgmmaColumns);
    return std::min(upPairs, downPairs) >= double(kWgmmaSmallMinPairs);
  }

  /// Whether the tensor-core paths take a stage's sizes: d and f multiples
  /// of kMmaTileN (kMmaTileK divides it, so both K steps fit too).
  static bool tensorCoresFit(const StageShape &s) {
    return s.d % kMmaTileN == 0 && s.f % kMmaTileN == 0;
  }

  /// The expert path: the memory-bound grouped GEMV (split over K, weights
  /// read once per 4 rows) where experts get few rows and the 64-row wgmma
  /// tiles would leave SMs idle, the tensor-core grouped GEMM elsewhere
  /// (mma.sync where the wgmma path is not taken).
  StringRef choosePath(const StageShape &s) {
    if (path == "gemv" || !tensorCoresFit(s))
      return "gemv";
    // A dense stage (one expert) where asked.
    if (s.experts == 1 && densePath != "auto")
      return densePath == "gemv" ? "gemv" : StringRef(densePath);
    // wgmma: K steps of 64 (d and f are multiples of 128 here).
    if (path == "mma" || path == "wgmma")
      return path;
    double rows = rowsPerExpert(s);
    if (rows >= wgmmaMinRows || smallRowsWgmma(s))
      return "wgmma";
    // A dense stage (one expert, a row a token) has few (tile, column
    // block) pairs on either tensor-core path; its weights streamed faster
    // through the 64-row wgmma tiles than through the mma.sync tiles at 16
    // tokens: Qwen2-57B's shared expert 0.912x, DeepSeek-V2-Lite's 0.965x,
    // DeepSeek-V3's 0.978x the layer's time
    // (results/dense-path-2026-12-03.md).
    if (s.experts == 1 && rows >= mmaMinRows && chooseWgmmaRows(s) == 64)
      return "wgmma";
    return rows < mmaMinRows ? "gemv" : "mma";
  }

  /// A tensor-core path asked for (--gpu-path) that a stage's sizes cannot
  /// take (choosePath sends it to the GEMVs): said, so that a test asking
  /// for wgmma tiles does not pass on the GEMVs unnoticed.
  void warnPathNotTaken(Operation *op, const StageShape &s, StringRef stage) {
    if ((path != "mma" && path != "wgmma") || tensorCoresFit(s))
      return;
    op->emitWarning() << "the " << path << " path was asked for (--gpu-path), "
                      << "but the hidden size (" << s.d << ") and ffn size ("
                      << s.f << ") of the " << stage
                      << " must be multiples of " << kMmaTileN
                      << ": they run on the GEMV path";
  }

  /// The planner's entries of a stage's plan (`moe.gpu_layer`, or its
  /// `shared` entry): its rows per expert, path and tiles, and the options
  /// the user gave.
  void addStagePlan(OpBuilder &b, const StageShape &s,
                    SmallVectorImpl<NamedAttribute> &plan) {
    plan.push_back(
        b.getNamedAttr("rows_per_expert", b.getF64FloatAttr(rowsPerExpert(s))));
    // Tensor-core tiles: 128 rows where experts fill them, else 64 rows
    // with a third pipeline stage (more bytes in flight per SM).
    StringRef chosen = choosePath(s);
    WgmmaTile wgmmaTile{wgmmaColumns, wgmmaStages, chooseWgmmaRows(s)};
    wgmmaTile.step = chooseWgmmaStep(s, wgmmaTile.rows);
    int64_t tileM = chosen == "wgmma" ? wgmmaTile.rows
                    : mmaTileM        ? mmaTileM
                    : rowsPerExpert(s) >= 96 ? 128
                                              : 64;
    plan.push_back(b.getNamedAttr("tile_m", b.getI64IntegerAttr(tileM)));
    plan.push_back(b.getNamedAttr("path", b.getStringAttr(chosen)));
    if (chosen == "wgmma")
      plan.push_back(b.getNamedAttr(
          "wgmma_tile",
          wgmmaTile.step
              ? b.getDenseI64ArrayAttr({wgmmaTile.columns, wgmmaTile.stages,
                                        wgmmaTile.rows, wgmmaTile.step})
              : b.getDenseI64ArrayAttr(
                    {wgmmaTile.columns, wgmmaTile.stages, wgmmaTile.rows})));
    // 4 warps of 64 x 64 (per matrix 64 x 32 for pairs) measured 3-10%
    // faster than 8 warps of half the width at 128 to 8192 tokens.
    plan.push_back(b.getNamedAttr(
        "mma_warps", b.getI64IntegerAttr(mmaWarps ? int64_t(mmaWarps) : 4)));
    if (mmaStages)
      plan.push_back(
          b.getNamedAttr("mma_stages", b.getI64IntegerAttr(mmaStages)));
    if (gemvLanes || gemvUnroll)
      plan.push_back(b.getNamedAttr(
          "gemv_tuning", b.getDenseI64ArrayAttr({gemvLanes, gemvUnroll})));
    if (decodeStages)
      plan.push_back(
          b.getNamedAttr("decode_stages", b.getI64IntegerAttr(decodeStages)));
    if (decodeGridShare != 100)
      plan.push_back(b.getNamedAttr("decode_grid_share",
                                    b.getI64IntegerAttr(decodeGridShare)));
    if (ffnColumns != 0)
      plan.push_back(
          b.getNamedAttr("ffn_columns", b.getI64IntegerAttr(ffnColumns)));
    if (fusedGate != "auto")
      plan.push_back(b.getNamedAttr("fused_gate", b.getStringAttr(fusedGate)));
    if (combine != "auto")
      plan.push_back(b.getNamedAttr("combine", b.getStringAttr(combine)));
    if (wgmmaPersistent != "auto")
      plan.push_back(b.getNamedAttr("wgmma_persistent",
                                    b.getStringAttr(wgmmaPersistent)));
    if (wgmmaQueue != "auto")
      plan.push_back(
          b.getNamedAttr("wgmma_queue", b.getStringAttr(wgmmaQueue)));
    if (wgmmaGroupTiles != -1)
      plan.push_back(b.getNamedAttr("wgmma_group_tiles",
                                    b.getI64IntegerAttr(wgmmaGroupTiles)));
    if (downKRuns != 0)
      plan.push_back(
          b.getNamedAttr("down_k_runs", b.getI64IntegerAttr(downKRuns)));
    if (wgmmaL2Prefetch != 0)
      plan.push_back(b.getNamedAttr("wgmma_l2_prefetch",
                                    b.getI64IntegerAttr(wgmmaL2Prefetch)));
    if (routerSplitK != 0)
      plan.push_back(b.getNamedAttr("router_split_k",
                                    b.getI64IntegerAttr(routerSplitK)));
    if (fusedRoute)
      plan.push_back(b.getNamedAttr("fused_route", b.getUnitAttr()));
    for (auto [option, attr, value] : switches())
      if (value != "auto")
        plan.push_back(b.getNamedAttr(attr, b.getStringAttr(value)));
    if (wgmmaKOrder != "auto")
      plan.push_back(
          b.getNamedAttr("wgmma_k_order", b.getStringAttr(wgmmaKOrder)));
    if (wgmmaBand != "auto")
      plan.push_back(b.getNamedAttr("wgmma_band", b.getStringAttr(wgmmaBand)));
  }

  /// The auto|never options, and the plan attribute each becomes.
  SmallVector<std::tuple<StringRef, StringRef, std::string>, 8> switches() {
    return {{"decode-overlap", "decode_overlap", decodeOverlap},
            {"stage-down", "stage_down", stageDown},
            {"decode-kernel", "decode_kernel", decodeKernel},
            {"decode-dense", "decode_dense", decodeDense},
            {"prefetch-router", "prefetch_router", prefetchRouter},
            {"dense-split-k", "dense_split_k", denseSplitK},
            {"weights-evict-first", "weights_evict_first", weightsEvictFirst},
            {"wgmma-wide-stores", "wgmma_wide_stores", wgmmaWideStores}};
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (mmaWarps != 0 && mmaWarps != 4 && mmaWarps != 8) {
      mlir::emitError(module.getLoc())
          << "mma-warps must be 0 (auto), 4 or 8, got "
          << static_cast<int64_t>(mmaWarps);
      return signalPassFailure();
    }
    if (mmaStages != 0 && (mmaStages < 2 || mmaStages > 4)) {
      mlir::emitError(module.getLoc())
          << "mma-stages must be 0 (auto), 2, 3 or 4, got "
          << static_cast<int64_t>(mmaStages);
      return signalPassFailure();
    }
    if (mmaTileM != 0 && mmaTileM != 64 && mmaTileM != 128) {
      mlir::emitError(module.getLoc())
          << "mma-tile-m must be 0 (auto), 64 or 128, got "
          << static_cast<int64_t>(mmaTileM);
      return signalPassFailure();
    }
    if (ffnColumns != 0 && ffnColumns != -1 && ffnColumns != 32 &&
        ffnColumns != 64 && ffnColumns != 128) {
      mlir::emitError(module.getLoc())
          << "ffn-columns must be 0 (auto), 32, 64, 128 or -1 (none), got "
          << static_cast<int64_t>(ffnColumns);
      return signalPassFailure();
    }
    if (wgmmaPersistent != "auto" && wgmmaPersistent != "always" &&
        wgmmaPersistent != "producer" && wgmmaPersistent != "tma" &&
        wgmmaPersistent != "multicast" && wgmmaPersistent != "never") {
      mlir::emitError(module.getLoc())
          << "wgmma-persistent must be auto, always, producer, tma, "
             "multicast or never, got '"
          << wgmmaPersistent << "'";
      return signalPassFailure();
    }
    for (auto [option, attr, value] : switches())
      if (value != "auto" && value != "never") {
        mlir::emitError(module.getLoc()) << option
                                         << " must be auto or never, got '"
                                         << value << "'";
        return signalPassFailure();
      }
    if (wgmmaKOrder != "auto" && wgmmaKOrder != "never" &&
        wgmmaKOrder != "band" && wgmmaKOrder != "up" &&
        wgmmaKOrder != "both") {
      mlir::emitError(module.getLoc())
          << "wgmma-k-order must be auto, never, band, up or both, got '"
          << wgmmaKOrder << "'";
      return signalPassFailure();
    }
    if (wgmmaBand != "auto" && wgmmaBand != "m64" && wgmmaBand != "swap16" &&
        wgmmaBand != "swap32") {
      mlir::emitError(module.getLoc())
          << "wgmma-band must be auto, m64, swap16 or swap32, got '"
          << wgmmaBand << "'";
      return signalPassFailure();
    }
    if (fusedGate != "auto" && fusedGate != "always" && fusedGate != "never") {
      mlir::emitError(module.getLoc())
          << "fused-gate must be auto, always or never, got '" << fusedGate
          << "'";
      return signalPassFailure();
    }
    if (wgmmaQueue != "auto" && wgmmaQueue != "always" &&
        wgmmaQueue != "never") {
      mlir::emitError(module.getLoc())
          << "wgmma-queue must be auto, always or never, got '" << wgmmaQueue
          << "'";
      return signalPassFailure();
    }
    if (routerSplitK < 0 || routerSplitK > kMaxRouterSplitK) {
      mlir::emitError(module.getLoc())
          << "router-split-k must be 0 (auto) or a split count from 1 to "
          << kMaxRouterSplitK << ", got " << int64_t(routerSplitK);
      return signalPassFailure();
    }
    if (downKRuns < 0 || downKRuns > kMaxDownKRuns) {
      mlir::emitError(module.getLoc())
          << "down-k-runs must be 0 (auto) or a run count from 1 to "
          << kMaxDownKRuns << ", got " << int64_t(downKRuns);
      return signalPassFailure();
    }
    if (wgmmaL2Prefetch < 0 || wgmmaL2Prefetch > kMaxL2PrefetchSteps) {
      mlir::emitError(module.getLoc())
          << "wgmma-l2-prefetch must be 0 (none) or a count of K steps "
             "from 1 to "
          << kMaxL2PrefetchSteps << ", got " << int64_t(wgmmaL2Prefetch);
      return signalPassFailure();
    }
    if (wgmmaGroupTiles < -2) {
      mlir::emitError(module.getLoc())
          << "wgmma-group-tiles must be -1 (auto), -2 (each expert's tiles), "
             "0 or a tile count, got "
          << int64_t(wgmmaGroupTiles);
      return signalPassFailure();
    }
    if (combine != "auto" && combine != "atomic" && combine != "rows") {
      mlir::emitError(module.getLoc())
          << "combine must be auto, atomic or rows, got '" << combine << "'";
      return signalPassFailure();
    }
    if (downKRuns > 1 && combine == "rows") {
      mlir::emitError(module.getLoc())
          << "down-k-runs=" << int64_t(downKRuns)
          << " adds the runs' sums by atomics: it needs combine=auto or "
             "atomic, got combine=rows";
      return signalPassFailure();
    }
    if (densePath != "auto" && densePath != "gemv" && densePath != "mma" &&
        densePath != "wgmma") {
      mlir::emitError(module.getLoc())
          << "unknown GPU dense-stage path '" << densePath
          << "' (expected auto, gemv, mma or wgmma)";
      return signalPassFailure();
    }
    if (path != "auto" && path != "gemv" && path != "mma" && path != "wgmma") {
      mlir::emitError(module.getLoc())
          << "unknown GPU expert path '" << path
          << "' (expected auto, gemv, mma or wgmma)";
      return signalPassFailure();
    }
    if (std::string why = whyNotGemvTuning({gemvLanes, gemvUnroll});
        !why.empty()) {
      mlir::emitError(module.getLoc()) << why;
      return signalPassFailure();
    }
    if (decodeGridShare < 10 || decodeGridShare > 1000) {
      mlir::emitError(module.getLoc())
          << "decode-grid-share must be a percentage from 10 to 1000, got "
          << int64_t(decodeGridShare);
      return signalPassFailure();
    }
    if (decodeStages != 0 && decodeStages != 2 && decodeStages != 3) {
      mlir::emitError(module.getLoc())
          << "decode-stages must be 0, 2 or 3, got " << int64_t(decodeStages);
      return signalPassFailure();
    }
    if (std::string why =
            whyNotWgmmaOptions(
                {wgmmaColumns, wgmmaStages, wgmmaRows, wgmmaTileStep});
        !why.empty()) {
      mlir::emitError(module.getLoc()) << why;
      return signalPassFailure();
    }
    if (wgmmaRows != 0 && wgmmaRows != kWgmmaTileM &&
        wgmmaPersistent == "multicast") {
      mlir::emitError(module.getLoc())
          << "multicast wgmma clusters take " << kWgmmaTileM
          << "-row tiles, got " << int64_t(wgmmaRows) << " rows";
      return signalPassFailure();
    }
    if (wgmmaRows == kWgmmaTallRows && !producerForm()) {
      mlir::emitError(module.getLoc())
          << kWgmmaTallRows
          << "-row wgmma tiles need the producer warpgroup (wgmma-persistent "
             "auto, producer or tma), got wgmma-persistent="
          << wgmmaPersistent;
      return signalPassFailure();
    }
    SmallVector<LayerOp> ops;
    module.walk([&](LayerOp op) { ops.push_back(op); });
    unsigned counter = 0;
    for (LayerOp op : ops) {
      if (std::string why = whyNotGpuLayer(op); !why.empty()) {
        if (report) {
          InFlightDiagnostic remark =
              op.emitRemark() << "'moe.layer' is decomposed: " << why;
          if (cast<RankedTensorType>(op.getWUp().getType())
                  .getElementType()
                  .isBF16())
            remark << " (its expert FFN still runs on the GPU)";
        }
        continue; // decomposed; its experts may still go to the GPU
      }
      OpBuilder b(module.getContext());
      SmallVector<Value> args{op.getInput(), op.getRouterWeight()};
      if (op.getRouterBias())
        args.push_back(op.getRouterBias());
      args.push_back(op.getWUp());
      if (op.getWGate())
        args.push_back(op.getWGate());
      args.push_back(op.getWDown());
      for (Value v : {op.getSharedUp(), op.getSharedGate(),
                      op.getSharedDown(), op.getSharedCoef(), op.getMlpUp(),
                      op.getMlpDown(), op.getMlpCoef(), op.getMlpCoefBias()})
        if (v)
          args.push_back(v);
      if (op.getExpertOffset())
        args.push_back(op.getExpertOffset());
      func::FuncOp decl = declareGpuHelper(
          module, "__moe_gpu_layer_", counter, ValueRange(args).getTypes(),
          op.getType(), op.getLoc());
      SmallVector<NamedAttribute> plan{
          b.getNamedAttr("top_k", op.getTopKAttr()),
          b.getNamedAttr("experts", b.getI64IntegerAttr(op.getNumExperts())),
          b.getNamedAttr("activation", op.getActivationAttr()),
          b.getNamedAttr("scaling", op.getScalingAttr())};
      if (op.getScoreFunc() == ScoreFunc::sigmoid)
        plan.push_back(b.getNamedAttr("sigmoid", b.getUnitAttr()));
      if (op.getScoreAfterTopk())
        plan.push_back(b.getNamedAttr("score_after_topk", b.getUnitAttr()));
      if (op.getRenormalize())
        plan.push_back(b.getNamedAttr("renormalize", b.getUnitAttr()));
      if (op.getRouterBias())
        plan.push_back(b.getNamedAttr("bias", b.getUnitAttr()));
      if (IntegerAttr groups = op.getNGroupAttr()) {
        plan.push_back(b.getNamedAttr("n_group", groups));
        plan.push_back(b.getNamedAttr("topk_group", op.getTopkGroupAttr()));
        if (op.getGroupScore() == GroupScore::top2_sum)
          plan.push_back(b.getNamedAttr("group_top2_sum", b.getUnitAttr()));
      }
      if (op.getWGate())
        plan.push_back(b.getNamedAttr("gated", b.getUnitAttr()));
      if (std::optional<int64_t> capacity = gpuLayerCapacity(op))
        plan.push_back(
            b.getNamedAttr("capacity", b.getI64IntegerAttr(*capacity)));
      if (op.getExpertOffset())
        plan.push_back(b.getNamedAttr(
            "local_experts", b.getI64IntegerAttr(op.getNumLocalExperts())));
      addStagePlan(b, routedShape(op), plan);
      warnPathNotTaken(op, routedShape(op), "routed experts");
      // The shared experts: a second expert stage, planned for one expert
      // that every token goes to (with the weight sigmoid(x shared_coef)
      // where given, else 1), adding into the routed stage's f32 output.
      if (op.getSharedUp()) {
        SmallVector<NamedAttribute> shared;
        if (op.getSharedGate())
          shared.push_back(b.getNamedAttr("gated", b.getUnitAttr()));
        if (op.getSharedCoef())
          shared.push_back(b.getNamedAttr("coef", b.getUnitAttr()));
        addStagePlan(b, sharedShape(op), shared);
        warnPathNotTaken(op, sharedShape(op), "shared experts");
        plan.push_back(
            b.getNamedAttr("shared", b.getDictionaryAttr(shared)));
      }
      // The PR-MoE residual MLP: a stage of the same kind (ungated), before
      // the shared experts; with mlp_coef its routing kernel also scales
      // the routed output by c0 of the softmax over x mlp_coef (+ bias).
      if (op.getMlpUp()) {
        SmallVector<NamedAttribute> mlp;
        if (op.getMlpCoef())
          mlp.push_back(b.getNamedAttr("mix", b.getUnitAttr()));
        if (op.getMlpCoefBias())
          mlp.push_back(b.getNamedAttr("mix_bias", b.getUnitAttr()));
        addStagePlan(b, mlpShape(op), mlp);
        warnPathNotTaken(op, mlpShape(op), "PR-MoE MLP");
        plan.push_back(b.getNamedAttr("mlp", b.getDictionaryAttr(mlp)));
      }
      DictionaryAttr planDict = b.getDictionaryAttr(plan);
      decl->setAttr(kGpuLayerAttr, planDict);
      if (report) {
        // The paths just planned, per stage.
        auto pathOf = [](DictionaryAttr d) {
          return d.getAs<StringAttr>("path").getValue();
        };
        InFlightDiagnostic remark = op.emitRemark()
                                    << "'moe.layer' runs fused on the GPU: "
                                       "routed experts on "
                                    << pathOf(planDict);
        if (auto mlp = planDict.getAs<DictionaryAttr>("mlp"))
          remark << ", the PR-MoE MLP on " << pathOf(mlp);
        if (auto shared = planDict.getAs<DictionaryAttr>("shared"))
          remark << ", the shared experts on " << pathOf(shared);
      }
      // A partitioned layer's sum over ranks (moe-partition's all-reduce)
      // joins the chain: NCCL sums the f32 partial outputs on the device,
      // before the one rounding, as the single-GPU layer rounds.
      shard::AllReduceOp reduce = gpuLayerSum(op);
      if (reduce) {
        int64_t mask = 0;
        for (int16_t a : reduce.getGridAxes())
          mask |= int64_t(1) << a;
        auto dict = decl->getAttrOfType<DictionaryAttr>(kGpuLayerAttr);
        NamedAttrList withMask(dict);
        withMask.set("all_reduce_mask", b.getI64IntegerAttr(mask));
        decl->setAttr(kGpuLayerAttr, withMask.getDictionary(b.getContext()));
      }
      b.setInsertionPoint(op);
      auto call = func::CallOp::create(b, op.getLoc(), decl, args);
      if (reduce) {
        reduce.getResult().replaceAllUsesWith(call.getResult(0));
        reduce.erase();
      }
      op.replaceAllUsesWith(call.getResult(0));
      op.erase();
    }
  }
};
} // namespace


/// Emits a stage's routing and expert kernels on the helper's stream. They
/// add into `y` (f32 [T, d]) where given; else the stage clears its own
/// (or, combining by rows, writes the rows the combine kernel sums).
static StageOutputs emitStage(OpBuilder &b, Location loc, HostBuilder &h,
                              gpu::GPUModuleOp kernels, const ExpertStage &p,
                              const StageInputs &in, Value y,
                              const StageInputs *denseIn = nullptr) {
  Type f32 = b.getF32Type(), i32 = b.getI32Type(), bf16 = b.getBF16Type();
  const int64_t T = p.T, d = p.d, E = p.E, L = p.L, f = p.f,
                N = p.N, S = p.S;
  const bool gated = p.gated, mma = p.mma, wgmma = p.wgmma;
  Value xDev = in.x;
  Value offsets = h.alloc({E + 1}, i32);
  Value expertOffsets = p.localized ? h.alloc({L + 1}, i32) : offsets;
  Value rowToken = h.alloc({N}, i32), rowWeight = h.alloc({N}, f32);
  Value hit = h.alloc({S}, i32);
  Value assignExpert, assignPos, assignWeight;
  if (!p.dense) {
    assignExpert = h.alloc({N}, i32);
    assignPos = h.alloc({N}, i32);
    assignWeight = h.alloc({N}, f32);
  }
  Value tileExpert = mma ? h.alloc({p.tiles}, i32) : Value();
  Value tileRow = mma ? h.alloc({p.tiles}, i32) : Value();
  // The buffers accumulated by atomics, cleared by one memset (or by the
  // gating kernel): the output (unless given), the GEMV path's up (and
  // gate) projections and the router's logits (the GEMV's, or the tensor
  // cores' split over K).
  SmallVector<SmallVector<int64_t, 2>> zeroShapes;
  bool ownY = !p.combineRows && !y;
  if (ownY)
    zeroShapes.push_back({T, d});
  size_t hAt = zeroShapes.size();
  if (p.gemvExperts)
    zeroShapes.append(gated ? 2 : 1, {N, f});
  // The up (and gate) projections of the dense stage the decode kernel runs.
  const ExpertStage *dense = p.decodeDense;
  size_t denseHAt = zeroShapes.size();
  if (dense)
    zeroShapes.append(dense->gated ? 2 : 1, {1, dense->f});
  // The up and down kernels' pair counters (one i32 each, in 64-element
  // slots of the cleared group), from zeroShapes[queueAt].
  size_t queueAt = zeroShapes.size();
  if (p.queue)
    zeroShapes.append(2, {1});
  // The split routing's per-expert counts (no memset of their own between
  // the router and the select kernel: a graph's memset node held the select
  // kernel back about 4.5 us). The plan splits the routing only where no
  // gating or decode kernel routes (more than 64 tokens, not dense).
  size_t routeCountsAt = zeroShapes.size();
  if (p.splitRoute)
    zeroShapes.push_back({E * kRouteCountStride});
  bool zeroRouter = !p.dense && !p.fusedGate && !p.routerInSelect;
  if (zeroRouter)
    zeroShapes.push_back({T, E});
  Value clearInGate;
  SmallVector<Value> zeroedBuffers;
  // (The gating kernel takes its buffer to clear even where nothing is
  // accumulated: the combine by rows on tensor cores, no queue; then an
  // empty one.)
  if (!zeroShapes.empty() || p.fusedGate) {
    SmallVector<Type> zeroTypes(zeroShapes.size(), f32);
    if (p.queue)
      std::fill_n(zeroTypes.begin() + queueAt, 2, i32);
    if (p.splitRoute)
      zeroTypes[routeCountsAt] = i32;
    zeroedBuffers = h.zeroedGroup(
        zeroShapes, p.fusedGate ? &clearInGate : nullptr, zeroTypes);
  }
  if (ownY)
    y = zeroedBuffers[0];
  Value hUp = p.gemvExperts ? zeroedBuffers[hAt] : Value();
  Value hGate = gated && p.gemvExperts ? zeroedBuffers[hAt + 1] : Value();
  Value hDown = p.combineRows ? h.alloc({N, d}, bf16) : Value();
  Value routerOut = zeroRouter ? zeroedBuffers.back() : Value();
  ArrayRef<Value> queues =
      p.queue ? ArrayRef<Value>(zeroedBuffers).slice(queueAt, 2)
              : ArrayRef<Value>();
  Value act = mma ? h.alloc({N, f}, bf16) : Value();

  auto kernel = [&](StringRef name, function_ref<gpu::GPUFuncOp()> build) {
    return getOrBuildKernel(kernels, name, build);
  };
  Location kloc = kernels.getLoc();
  auto gemvKernel = [&](StringRef base, const GemvOptions &o) {
    std::string name = gemvKernelName(base, o);
    return kernel(name, [&] {
      return buildGroupedGemvKernel(b, kloc, kernels, name, bf16, o);
    });
  };
  auto mmaKernel = [&](const MmaOptions &o) {
    std::string name = mmaKernelName(o);
    return kernel(name, [&] {
      return buildGroupedMmaKernel(b, kloc, kernels, name, o);
    });
  };
  const RouteKernelOptions &ro = p.ro;
  RouterInSelectPlan routerPlan =
      p.routerInSelect ? planRouterInSelect(d, E) : RouterInSelectPlan();
  auto routeKernel = [&](RoutePart part, bool withRouter = false) {
    RouteKernelOptions po = ro;
    po.part = part;
    // (The select part counts every assignment; the Capacity part drops.)
    if (part == RoutePart::Select)
      po.capacity = 0;
    po.withRouter = withRouter;
    po.routerStageK = withRouter ? routerPlan.stageK : 0;
    std::string name = routeKernelName(po);
    return kernel(name,
                  [&] { return buildRouteKernel(b, kloc, kernels, name, po); });
  };
  auto launchGemv = [&](gpu::GPUFuncOp k, const GemvGrid &g, int64_t gz,
                        ValueRange args) {
    h.launch(k, {g.blocksX, g.splits, gz}, {g.threads, 1, 1}, args);
  };

  SmallVector<Value> routeArgs{Value(),      offsets,   rowToken,
                               rowWeight,    hit,       assignExpert,
                               assignPos,    assignWeight};
  if (p.dense) {
    // Every token one row of the one expert, weighted by its coefficient
    // (PR-MoE's mixing also scales the routed output, complete by now).
    DenseRouteOptions dro;
    dro.coef = p.coef;
    dro.mix = p.mix;
    dro.mixBiasType = p.mixBiasType;
    dro.tileRows = mma ? p.tileM : 0;
    std::string name = denseRouteKernelName(dro);
    gpu::GPUFuncOp route = kernel(name, [&] {
      return buildDenseRouteKernel(b, kloc, kernels, name, dro);
    });
    SmallVector<Value> args{xDev};
    if (p.coef)
      args.push_back(in.coef);
    if (p.mix) {
      args.push_back(in.mixCoef);
      if (in.mixBias)
        args.push_back(in.mixBias);
      args.push_back(y);
    }
    args.append({offsets, rowToken, rowWeight, hit});
    if (mma)
      args.append({tileExpert, tileRow});
    h.launch(route, {denseRouteGrid(T, dro), 1, 1},
             {kDenseRouteThreads, 1, 1}, args);
  } else {
    // logits = x W_router (the GEMV's grid is routerGrid, recorded in the
    // plan), or the gating kernel's; none where the select kernel computes
    // them.
    if (p.fusedGate)
      routeArgs[0] = h.alloc({T, E}, f32);
    else if (!p.routerInSelect)
      routeArgs[0] =
          denseMatmulF32(b, h, kernels, xDev, in.wr, offsets, routerOut,
                         kTensorRouterRows, p.routerSplits());
    if (mma) {
      routeArgs.push_back(tileExpert);
      routeArgs.push_back(tileRow);
    }
    if (in.bias)
      routeArgs.push_back(in.bias);
  }
  if (p.dense || p.decodeKernel) {
    // Routed above, or below with the GEMVs' arguments.
  } else if (p.fusedGate) {
    RouteKernelOptions gateOpts = ro;
    gateOpts.triggerDependents = p.overlapEnds;
    gateOpts.prefetchRouter = p.prefetchRouter;
    std::string name = gateKernelName(gateOpts);
    gpu::GPUFuncOp gate = kernel(name, [&] {
      return buildGateKernel(b, kloc, kernels, name, gateOpts);
    });
    SmallVector<Value> gateArgs{xDev, in.wr, clearInGate,
                                h.index(p.gatePlan.kchunk)};
    llvm::append_range(gateArgs, routeArgs);
    h.launch(gate, {p.gatePlan.blocks, 1, 1}, {kGateThreads, 1, 1}, gateArgs);
  } else if (p.splitRoute) {
    routeArgs.push_back(zeroedBuffers[routeCountsAt]);
    // The tables after the logits (the finish kernel reads no logits).
    ArrayRef<Value> tables = ArrayRef<Value>(routeArgs).drop_front();
    SmallVector<Value> selectArgs;
    if (p.routerInSelect)
      selectArgs = {xDev, in.wr};
    else
      selectArgs = {routeArgs[0]};
    llvm::append_range(selectArgs, tables);
    h.launch(routeKernel(RoutePart::Select, p.routerInSelect),
             {(T + kRouteSelectTokens - 1) / kRouteSelectTokens, 1, 1},
             {kRouteSelectThreads, 1, 1}, selectArgs, routerPlan.sharedBytes);
    // With a capacity, a block per kRouteThreads assignments in priority
    // order counts its experts', then ranks and drops them from the counts
    // of the blocks before it, before the tables are made.
    if (ro.capacity) {
      int64_t blocks = (N + kRouteThreads - 1) / kRouteThreads;
      SmallVector<Value> capacityArgs(tables);
      capacityArgs.push_back(h.alloc({blocks * E}, i32));
      for (RoutePart part : {RoutePart::CapacityCount, RoutePart::Capacity})
        h.launch(routeKernel(part), {blocks, 1, 1}, {kRouteThreads, 1, 1},
                 capacityArgs);
    }
    // A block per kRouteThreads assignments (one block mapped 8192 of them,
    // at 1024 tokens, in about 20 us).
    h.launch(routeKernel(RoutePart::Finish),
             {(N + kRouteThreads - 1) / kRouteThreads, 1, 1},
             {kRouteThreads, 1, 1}, tables);
  } else {
    h.launch(routeKernel(RoutePart::Whole), {1, 1, 1}, {kRouteThreads, 1, 1},
             routeArgs);
  }

  if (p.localized) {
    // Only the experts [firstExpert, firstExpert + L) are here.
    std::string name = mma ? "moe_localize_experts_tiles" : "moe_localize_experts";
    gpu::GPUFuncOp localize = kernel(name, [&] {
      return buildLocalizeExpertsKernel(b, kloc, kernels, name, mma);
    });
    SmallVector<Value> localizeArgs{offsets, expertOffsets, hit};
    if (mma)
      localizeArgs.push_back(tileExpert);
    localizeArgs.push_back(in.firstExpert);
    h.launch(localize, {1, 1, 1}, {256, 1, 1}, localizeArgs);
  }

  Value wUp = in.wUp, wGate = in.wGate, wDown = in.wDown;
  if (mma) {
    // What the up and down kernels share of the stage's plan.
    MmaOptions common;
    common.warps = p.warps;
    common.tileM = p.tileM;
    common.stages = p.stages;
    common.persistent = p.persistent;
    common.producer = p.producer;
    common.tmaWeights = p.tmaWeights;
    common.multicast = p.multicast;
    common.evictFirst = p.evictFirst;
    common.l2PrefetchSteps = p.l2PrefetchSteps;
    common.wideStores = p.wideStores;
    common.bandKOrder = p.bandKOrder;
    common.swapBandRows = p.swapBandRows;
    common.rotateK = p.rotateK;
    common.queue = p.queue;
    MmaOptions upOpts = common;
    upOpts.gatherRows = true;
    upOpts.pair = gated;
    upOpts.activation = p.activation;
    upOpts.groupTiles = p.upGroupTiles;
    upOpts.expertGroups = p.expertGroups;
    SmallVector<Value> upArgs{xDev,    wUp,           act,     tileExpert,
                              tileRow, expertOffsets, rowToken};
    if (gated)
      upArgs.push_back(wGate);
    MmaOptions downOpts = common;
    downOpts.scatter = !p.combineRows;
    downOpts.weighted = p.combineRows;
    downOpts.groupTiles = p.downGroupTiles;
    downOpts.expertGroups = p.expertGroups;
    downOpts.kRuns = p.downKRuns;
    downOpts.rotateK = p.rotateDownK;
    if (p.downSplitK > 1) {
      // The grid form over (tile, column block, K run).
      downOpts.persistent = downOpts.producer = downOpts.tmaWeights = false;
      downOpts.multicast = downOpts.queue = downOpts.evictFirst = false;
      downOpts.l2PrefetchSteps = 0;
      downOpts.rotateK = false;
      downOpts.groupTiles = 0;
      downOpts.expertGroups = false;
      downOpts.splitK = true;
    }
    const WgmmaTile &wgmmaTile = p.wgmmaTile;
    int64_t tiles = p.tiles;
    // The wgmma grid runs over the tiles first: the tiles of an expert read
    // the same weight columns together (from L2 after the first).
    auto launchGemm = [&](const MmaOptions &o, int64_t n, ValueRange args) {
      if (!wgmma) {
        h.launch(mmaKernel(o), {n / mmaColumnsPerMatrix(o), tiles, 1},
                 {32 * p.warps, 1, 1}, args);
        return;
      }
      std::string name = wgmmaKernelName(o, wgmmaTile);
      gpu::GPUFuncOp k = kernel(name, [&] {
        return buildGroupedWgmmaKernel(b, kloc, kernels, name, o, wgmmaTile);
      });
      int64_t cols = wgmmaColumnsPerMatrix(o, wgmmaTile);
      int64_t pairs = tiles * ((n + cols - 1) / cols);
      if (o.multicast)
        h.launch(k, {2 * std::min(pairs, kPlanSms / 2), 1, 1},
                 {wgmmaBlockThreads(o), 1, 1}, args,
                 wgmmaSharedBytes(wgmmaTile), /*cluster=*/{2, 1, 1});
      else if (o.persistent)
        h.launch(k, {std::min(pairs, kPlanSms), 1, 1},
                 {wgmmaBlockThreads(o), 1, 1}, args,
                 wgmmaSharedBytes(wgmmaTile));
      else
        h.launch(k, {tiles, (n + cols - 1) / cols, o.splitK ? p.downSplitK : 1},
                 {kWgmmaThreads, 1, 1}, args, wgmmaSharedBytes(wgmmaTile));
    };
    SmallVector<Value> downArgs{act,      wDown,   p.combineRows ? hDown : y,
                                tileExpert, tileRow, expertOffsets,
                                rowToken, rowWeight};
    llvm::append_range(upArgs, in.upMaps);
    if (p.queue)
      upArgs.push_back(queues[0]);
    if (!downOpts.splitK) {
      llvm::append_range(downArgs, in.downMaps);
      if (p.queue)
        downArgs.push_back(queues[1]);
    }
    launchGemm(upOpts, f, upArgs);
    launchGemm(downOpts, d, downArgs);
  } else if (p.ffnColumns) {
    FfnKernelOptions fo;
    fo.activation = p.activation;
    fo.gated = gated;
    fo.columns = p.ffnColumns;
    std::string name = ffnKernelName(fo);
    gpu::GPUFuncOp ffn = kernel(
        name, [&] { return buildFusedFfnKernel(b, kloc, kernels, name, fo); });
    SmallVector<Value> ffnArgs{xDev, expertOffsets, wUp, wDown,
                               y,    rowToken,      rowWeight, hit};
    if (gated)
      ffnArgs.push_back(wGate);
    h.launch(ffn, {f / p.ffnColumns, S, 1}, {kFfnThreads, 1, 1}, ffnArgs);
  } else {
    const GemvGrid &upGrid = p.upGrid, &downGrid = p.downGrid;
    GemvOptions upOpts;
    upOpts.gatherRows = upOpts.indirect = true;
    upOpts.pair = gated;
    upOpts.rowsPerPass = p.expertRows;
    upOpts.triggerDependents = p.decodeOverlap;
    GemvOptions downOpts;
    downOpts.indirect = downOpts.scatter = true;
    downOpts.rowsPerPass = p.expertRows;
    // The down projection applies the activation as it reads hUp (hGate).
    downOpts.inputActivation = p.activation;
    downOpts.inputGated = gated;
    downOpts.loadBeforeWait = p.decodeOverlap;
    downOpts.triggerDependents = p.overlapEnds;
    downOpts.stageRows = p.stageRows;
    SmallVector<Value> upArgs{xDev,     expertOffsets, wUp, hUp,
                              h.index(upGrid.kchunk), rowToken, hit};
    if (gated) {
      upArgs.push_back(wGate);
      upArgs.push_back(hGate);
    }
    SmallVector<Value> downArgs{hUp,      expertOffsets, wDown, y,
                                h.index(downGrid.kchunk), rowToken,
                                rowWeight, hit};
    if (gated)
      downArgs.push_back(hGate);
    if (p.decodeKernel) {
      DecodeKernelOptions dk;
      dk.route = ro;
      dk.route.prefetchRouter = p.prefetchRouter;
      dk.up = upGrid.kernelOptions(upOpts);
      dk.down = downGrid.kernelOptions(downOpts);
      dk.up.coherentLoads = dk.down.coherentLoads = true;
      dk.up.oneToken = dk.down.oneToken = true;
      // A down item issues its first weight loads before it waits for its
      // slot's up items (no trigger: decodeOverlap is off).
      dk.down.loadBeforeWait = true;
      dk.up.asyncStages = dk.down.asyncStages = p.decodeStages;
      dk.upThreads = upGrid.threads;
      dk.downThreads = downGrid.threads;

      SmallVector<int64_t> plan{p.gatePlan.blocks, upGrid.blocksX,
                                upGrid.splits, downGrid.blocksX,
                                downGrid.splits};
      if (dense) {
        // The dense slot's GEMVs: as the routed ones, their own grids; its
        // up items load their first weights before they wait (for the
        // clearing). Its tables are the one row of the token (offsets,
        // rowToken and hit are not read at one token; its row weight is
        // written by its first up item).
        const ExpertStage &ds = *dense;
        GemvOptions dUp = upOpts, dDown = downOpts;
        dUp.pair = ds.gated;
        dDown.inputGated = ds.gated;
        dDown.stageRows = ds.stageRows;
        dk.dense = true;
        dk.denseCoef = ds.coef;
        dk.denseUp = ds.upGrid.kernelOptions(dUp);
        dk.denseDown = ds.downGrid.kernelOptions(dDown);
        dk.denseUp.coherentLoads = dk.denseDown.coherentLoads = true;
        dk.denseUp.oneToken = dk.denseDown.oneToken = true;
        dk.denseUp.loadBeforeWait = dk.denseDown.loadBeforeWait = true;
        dk.denseUp.asyncStages = dk.denseDown.asyncStages = p.decodeStages;
        dk.denseUpThreads = ds.upGrid.threads;
        dk.denseDownThreads = ds.downGrid.threads;
        Value denseHit = h.alloc({1}, i32), denseWeight = h.alloc({1}, f32);
        Value dHUp = zeroedBuffers[denseHAt];
        Value dHGate = ds.gated ? zeroedBuffers[denseHAt + 1] : Value();
        SmallVector<Value> dUpArgs{xDev,     denseHit, denseIn->wUp,
                                   dHUp,     h.index(ds.upGrid.kchunk),
                                   denseHit, denseHit};
        if (ds.gated) {
          dUpArgs.push_back(denseIn->wGate);
          dUpArgs.push_back(dHGate);
        }
        SmallVector<Value> dDownArgs{dHUp,     denseHit,    denseIn->wDown,
                                     y,        h.index(ds.downGrid.kchunk),
                                     denseHit, denseWeight, denseHit};
        if (ds.gated)
          dDownArgs.push_back(dHGate);
        llvm::append_range(downArgs, dUpArgs);
        llvm::append_range(downArgs, dDownArgs);
        if (ds.coef)
          downArgs.push_back(denseIn->coef);
        plan.append({ds.upGrid.blocksX, ds.upGrid.splits, ds.downGrid.blocksX,
                     ds.downGrid.splits});
      }
      std::string name = decodeKernelName(dk);
      gpu::GPUFuncOp decode = kernel(name, [&] {
        return buildDecodeKernel(b, kloc, kernels, name, dk);
      });
      SmallVector<Value> args{xDev, in.wr, clearInGate,
                              h.index(p.gatePlan.kchunk)};
      llvm::append_range(args, routeArgs);
      llvm::append_range(args, upArgs);
      llvm::append_range(args, downArgs);
      for (int64_t v : plan)
        args.push_back(h.index(v));
      h.launch(decode, {kPlanSms * kDecodeBlocksPerSm, 1, 1},
               {kDecodeThreads, 1, 1}, args, decodeKernelSharedBytes(dk));
    } else {
      gpu::GPUFuncOp upK = gemvKernel(
          gated ? "moe_gemv_gather_pair_bf16" : "moe_gemv_gather_bf16",
          upGrid.kernelOptions(upOpts));
      gpu::GPUFuncOp downK =
          gemvKernel("moe_gemv_scatter_bf16", downGrid.kernelOptions(downOpts));
      launchGemv(upK, upGrid, S * (gated ? 2 : 1), upArgs);
      launchGemv(downK, downGrid, S, downArgs);
    }
  }
  return {y, hDown, offsets, assignExpert, assignPos};
}

/// `w` [d, f] (a shared expert's matrix) as the one expert [1, d, f] of the
/// grouped kernels.
static Value asOneExpert(OpBuilder &b, Location loc, Value w) {
  auto type = cast<MemRefType>(w.getType());
  SmallVector<int64_t> shape{1};
  llvm::append_range(shape, type.getShape());
  return memref::ExpandShapeOp::create(
      b, loc, MemRefType::get(shape, type.getElementType()), w,
      ArrayRef<ReassociationIndices>{{0, 1}, {2}});
}

LogicalResult mlir::moe::buildGpuLayerBody(OpBuilder &b, func::FuncOp fn,
                                           gpu::GPUModuleOp kernels,
                                           ArrayRef<bool> deviceArgs,
                                           bool report) {
  auto plan = fn->getAttrOfType<DictionaryAttr>(kGpuLayerAttr);
  auto sharedPlan = plan.getAs<DictionaryAttr>("shared");
  auto mlpPlan = plan.getAs<DictionaryAttr>("mlp");
  FunctionType type = fn.getFunctionType();
  bool hasBias = plan.get("bias") != nullptr;
  bool gated = plan.get("gated") != nullptr;
  bool localized = plan.get("local_experts") != nullptr;
  bool sharedGated = sharedPlan && sharedPlan.get("gated");
  bool sharedCoef = sharedPlan && sharedPlan.get("coef");
  unsigned sharedArgs =
      sharedPlan ? 2 + unsigned(sharedGated) + unsigned(sharedCoef) : 0;
  bool mlpMix = mlpPlan && mlpPlan.get("mix");
  bool mlpMixBias = mlpPlan && mlpPlan.get("mix_bias");
  unsigned mlpArgs =
      mlpPlan ? 2 + unsigned(mlpMix) + unsigned(mlpMixBias) : 0;
  // + the expert offset (an index) and the out-parameter
  unsigned numArgs = 5 + hasBias + gated + sharedArgs + mlpArgs + localized;
  if (type.getNumInputs() != numArgs || type.getNumResults() != 0 ||
      !llvm::all_of(llvm::enumerate(type.getInputs()), [&](auto it) {
        if (localized && it.index() == numArgs - 2)
          return it.value().isIndex();
        auto m = dyn_cast<MemRefType>(it.value());
        return m && m.hasStaticShape() && m.getLayout().isIdentity();
      }))
    return fn.emitError() << "expected the bufferized GPU layer helper to "
                             "take static identity-layout memrefs, got "
                          << type;
  Location loc = fn.getLoc();
  Block *entry = prepareHelperEntry(fn);
  b.setInsertionPointToStart(entry);
  unsigned next = 0;
  Value x = entry->getArgument(next++), wr = entry->getArgument(next++);
  Value bias = hasBias ? entry->getArgument(next++) : Value();
  Value wUp = entry->getArgument(next++);
  Value wGate = gated ? entry->getArgument(next++) : Value();
  Value wDown = entry->getArgument(next++);
  Value sUp, sGate, sDown, sCoef;
  if (sharedPlan) {
    sUp = entry->getArgument(next++);
    sGate = sharedGated ? entry->getArgument(next++) : Value();
    sDown = entry->getArgument(next++);
    sCoef = sharedCoef ? entry->getArgument(next++) : Value();
  }
  Value mUp, mDown, mCoef, mBias;
  if (mlpPlan) {
    mUp = entry->getArgument(next++);
    mDown = entry->getArgument(next++);
    mCoef = mlpMix ? entry->getArgument(next++) : Value();
    mBias = mlpMixBias ? entry->getArgument(next++) : Value();
  }
  Value firstExpert = localized ? entry->getArgument(next++) : Value();
  Value result = entry->getArgument(next++);

  auto xType = cast<MemRefType>(x.getType());
  auto upType = cast<MemRefType>(wUp.getType());
  ExpertStage routed;
  routed.plan = plan;
  routed.gated = gated;
  routed.localized = localized;
  routed.hasBias = hasBias;
  routed.summed = plan.get("all_reduce_mask") != nullptr;
  routed.T = xType.getDimSize(0);
  routed.d = xType.getDimSize(1);
  // E: the experts routing picks among; L: those whose weights are here.
  routed.E = cast<IntegerAttr>(plan.get("experts")).getInt();
  routed.L = upType.getDimSize(0);
  routed.f = upType.getDimSize(2);
  routed.k = cast<IntegerAttr>(plan.get("top_k")).getInt();
  routed.decide(sharedPlan || mlpPlan);
  if (bias)
    routed.ro.biasType = cast<MemRefType>(bias.getType()).getElementType();

  // A dense stage (one expert, a row a token) from its own plan entries,
  // with the layer's activation.
  auto denseStage = [&](DictionaryAttr stagePlan, bool stageGated,
                        Value up) {
    NamedAttrList entries(stagePlan);
    entries.set("activation", plan.get("activation"));
    ExpertStage s;
    s.plan = entries.getDictionary(b.getContext());
    s.dense = true;
    s.gated = stageGated;
    s.T = routed.T;
    s.d = routed.d;
    s.E = s.L = s.k = 1;
    s.f = cast<MemRefType>(up.getType()).getDimSize(1);
    s.decide(/*addsDenseStages=*/false);
    return s;
  };
  std::optional<ExpertStage> shared, mlp;
  if (sharedPlan) {
    shared = denseStage(sharedPlan, sharedGated, sUp);
    shared->coef = sharedCoef;
  }
  if (mlpPlan) {
    mlp = denseStage(mlpPlan, /*stageGated=*/false, mUp);
    mlp->mix = mlpMix;
    if (mBias)
      mlp->mixBiasType = cast<MemRefType>(mBias.getType()).getElementType();
  }
  // At one token, the one dense stage (without PR-MoE's mixing, which
  // scales the routed output once it is complete) runs as items of the
  // routed stage's decode kernel: its weights stream while the routing is
  // decided, and its own routing and GEMV kernels go.
  ExpertStage *inDecode = shared && !mlp ? &*shared : mlp && !shared ? &*mlp
                                                                     : nullptr;
  if (inDecode) {
    // Its GEMV items planned as a share of the decode kernel's: the grid
    // of one launch over the up (down) projections of both stages, counted
    // in matrices of the dense stage's size (coarser items than its own
    // launch's, as fine as the routed items where the sizes match).
    int64_t mats = routed.gated ? 2 : 1, denseMats = inDecode->gated ? 2 : 1;
    int64_t fs = inDecode->f;
    int64_t share = routed.gridShare;
    inDecode->planGemvs(
        llvm::divideCeil((routed.S * mats * routed.f + denseMats * fs) * share,
                         fs * 100),
        llvm::divideCeil((routed.S * routed.f + fs) * share, fs * 100));
    inDecode->fillDecodeItems();
    if (routed.canRunInDecode(*inDecode)) {
      inDecode->inDecodeKernel = true;
      routed.decodeDense = inDecode;
    } else {
      inDecode->planGemvs(denseMats, 1); // its own launches after all
      inDecode = nullptr;
    }
  }
  SmallVector<NamedAttribute> planAttrs = routed.planAttrs(b);
  if (shared)
    planAttrs.push_back(b.getNamedAttr(
        "shared", b.getDictionaryAttr(shared->planAttrs(b))));
  if (mlp)
    planAttrs.push_back(
        b.getNamedAttr("mlp", b.getDictionaryAttr(mlp->planAttrs(b))));
  fn->setAttr("moe.gpu_plan", b.getDictionaryAttr(planAttrs));
  if (report) {
    InFlightDiagnostic remark = fn.emitRemark()
                                << "the GPU layer's routed experts: "
                                << routed.describe();
    if (mlp)
      remark << "; the PR-MoE MLP: " << mlp->describe();
    if (shared)
      remark << "; the shared experts: " << shared->describe();
  }

  HostBuilder h(b, loc);
  StageInputs routedIn{x, wr, bias, wUp, wGate, wDown, firstExpert, Value(),
                       {}, {}};
  StageInputs sharedIn, mlpIn;
  if (mlp) {
    mlpIn.wUp = asOneExpert(b, loc, mUp);
    mlpIn.wDown = asOneExpert(b, loc, mDown);
    mlpIn.mixCoef = mCoef;
    mlpIn.mixBias = mBias;
  }
  if (shared) {
    sharedIn.wUp = asOneExpert(b, loc, sUp);
    sharedIn.wGate = sGate ? asOneExpert(b, loc, sGate) : Value();
    sharedIn.wDown = asOneExpert(b, loc, sDown);
    if (sCoef) // [d, 1] as [d]
      sharedIn.coef = memref::CollapseShapeOp::create(
          b, loc, sCoef, ArrayRef<ReassociationIndices>{{0, 1}});
  }
  // The weights' tensor maps: boxes of 64 columns x 64 K rows (one
  // 128-byte-swizzled B atom of the wgmma tile). Made before any GPU work:
  // a host call between launches would end their async region with a
  // stream synchronization.
  auto makeMaps = [&](const ExpertStage &s, StageInputs &in) {
    if (!s.tmaWeights)
      return;
    in.upMaps.push_back(h.tensorMapBf16(in.wUp, 64, kWgmmaTileK));
    if (s.gated)
      in.upMaps.push_back(h.tensorMapBf16(in.wGate, 64, kWgmmaTileK));
    in.downMaps.push_back(h.tensorMapBf16(in.wDown, 64, kWgmmaTileK));
  };
  makeMaps(routed, routedIn);
  if (shared)
    makeMaps(*shared, sharedIn);
  if (mlp)
    makeMaps(*mlp, mlpIn);
  routedIn.x = sharedIn.x = mlpIn.x = deviceArgs[0] ? x : h.upload(x);

  int64_t T = routed.T, d = routed.d;
  Type bf16 = b.getBF16Type();
  Value out = deviceArgs[numArgs - 1] ? result : h.alloc({T, d}, bf16);
  StageOutputs o =
      emitStage(b, loc, h, kernels, routed, routedIn, Value(),
                inDecode ? (shared && inDecode == &*shared ? &sharedIn : &mlpIn)
                         : nullptr);
  // The PR-MoE MLP (whose routing kernel first scales the routed output by
  // c0 where it mixes), then the shared experts, add into the routed
  // stage's f32 output (unless the decode kernel ran them).
  if (mlp && !mlp->inDecodeKernel)
    emitStage(b, loc, h, kernels, *mlp, mlpIn, o.y);
  if (shared && !shared->inDecodeKernel)
    emitStage(b, loc, h, kernels, *shared, sharedIn, o.y);

  auto kernel = [&](StringRef name, function_ref<gpu::GPUFuncOp()> build) {
    return getOrBuildKernel(kernels, name, build);
  };
  Location kloc = kernels.getLoc();
  if (auto mask = plan.getAs<IntegerAttr>("all_reduce_mask")) {
    // The ranks' partial sums, added in f32 on the device (the model
    // stream orders it after the kernels above and before the rounding).
    Type i64 = b.getI64Type();
    Value ptr = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, o.y);
    h.callRuntime(
        "moert_comm_all_reduce_device",
        {arith::IndexCastOp::create(b, loc, i64, ptr),
         arith::ConstantIntOp::create(b, loc, i64, T * d),
         arith::ConstantIntOp::create(b, loc, i64, mask.getInt())},
        /*returnsI64=*/false);
  }
  if (routed.combineRows) {
    bool drops = routed.ro.capacity > 0;
    std::string name = combineKernelName(routed.k, drops);
    gpu::GPUFuncOp combine = kernel(name, [&] {
      return buildCombineKernel(b, kloc, kernels, name, routed.k, drops);
    });
    h.launch(combine, {T, 1, 1}, {kCombineThreads, 1, 1},
             {o.hDown, o.offsets, o.assignExpert, o.assignPos, out});
  } else {
    gpu::GPUFuncOp round = kernel("round_bf16", [&] {
      return buildRoundKernel(b, kloc, kernels, "round_bf16", bf16);
    });
    h.launchRound(round, T * d, {o.y, out});
  }
  if (out != result)
    h.copy(result, out);
  h.freeAll();
  func::ReturnOp::create(b, loc);
  return success();
}
