//===- GpuLayerPlan.h - A fused GPU layer's stages, planned -----*- C++ -*-===//
//
// Part of moe-compiler.
//
// Shared by LayerToGPU.cpp (the conversion pass and the kernel chain it
// emits) and GpuLayerPlan.cpp (every choice of a stage, made from the
// static shapes and the layer's plan before anything is emitted, and the
// `moe.gpu_plan` attributes that record them). Internal to the conversion.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_GPULAYERPLAN_H
#define MOE_LIB_CONVERSION_MOETOGPU_GPULAYERPLAN_H

#include "moe/Conversion/MoEToGPU/GpuHelpers.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

namespace mlir::moe::gpu_layer {
/// The largest rows buffer (bf16 [T k, d]) with which the tensor-core
/// paths combine by rows (results/combine-rows-2026-12-02.md).
constexpr int64_t kCombineRowsMaxBytes = int64_t(128) << 20;

/// The routed down kernel's K runs (ExpertStage::downKRuns): how many,
/// below how many waves of the expected pairs, and the fewest K steps a run
/// keeps. The asked count's ceiling (down-k-runs).
constexpr int64_t kDownKRuns = 2;
constexpr double kDownKRunsMaxWaves = 3;
constexpr int64_t kDownKRunsMinSteps = 64;
constexpr int64_t kMaxDownKRuns = 64;
/// The most K steps ahead the wgmma producers may bring weights into L2
/// (wgmma-l2-prefetch).
constexpr int64_t kMaxL2PrefetchSteps = 64;
/// The asked router splits' ceiling (router-split-k).
constexpr int64_t kMaxRouterSplitK = 256;

/// Experts a step of `tokens` tokens hits on average under uniform random
/// routing: E (1 - (1 - k/E)^T).
double expectedExpertsHit(int64_t experts, int64_t k, int64_t tokens);

/// The router's logits on tensor cores (split over K) from 16 tokens: the
/// router GEMV read its weights once per 4 tokens (10 us for qwen3's at 16
/// tokens).
constexpr int64_t kTensorRouterRows = 16;

/// One expert stage of a GPU layer's kernel chain: the routed experts, or
/// the shared experts run as one expert that every token goes to (`dense`).
/// Every choice is made from the static shapes and the stage's plan before
/// anything is emitted: the tensor maps of both stages must be made before
/// the layer's first GPU operation.
struct ExpertStage {
  DictionaryAttr plan;
  /// A dense stage's row weights: sigmoid(x coef), or PR-MoE's mixing.
  bool dense = false, coef = false, mix = false;
  Type mixBiasType;
  bool gated = false, localized = false, hasBias = false, summed = false;
  int64_t T = 0, d = 0, E = 0, L = 0, f = 0, k = 0, N = 0, S = 0;
  StringRef path;
  bool wgmma = false, mma = false;
  WgmmaTile wgmmaTile;
  int64_t tileM = 0, stages = 0, warps = 0, tiles = 0;
  /// Rows from one of an expert's row tiles to the next: tileM, or
  /// WgmmaTile::step where set.
  int64_t tileStep = 0;
  bool mmaRouter = false, splitRoute = false, fusedGate = false;
  /// The split routing's select kernel computes its tokens' logits itself
  /// (RouteKernelOptions::withRouter): no router GEMM kernel.
  bool routerInSelect = false;
  double rowsPerExpert = 0;
  int64_t expertRows = 0, ffnColumns = 0;
  GemvGrid upGrid{}, downGrid{}, routerGrid{};
  bool gemvExperts = false;
  int64_t stageRows = 0, decodeStages = 0;
  bool decodeKernel = false, combineRows = false;
  /// The gating or decode kernel brings the router into L2 before its grid
  /// dependency wait (RouteKernelOptions::prefetchRouter).
  bool prefetchRouter = false;
  int64_t upGroupTiles = 0, downGroupTiles = 0;
  /// Each expert's tiles a group in both kernels (MmaOptions::expertGroups)
  /// instead.
  bool expertGroups = false;
  /// A dense stage's wgmma down kernel: K splits over grid z (1: none).
  int64_t downSplitK = 1;
  /// The routed stage's persistent down kernel: each pair's K steps in
  /// this many runs (MmaOptions::kRuns; 1: none).
  int64_t downKRuns = 1;
  /// A 192-row tile's band multiplied swapped, in sub-bands of this many
  /// rows (MmaOptions::swapBandRows; 0: m64 wgmmas).
  int64_t swapBandRows = 0;
  /// The wgmma producers' weight boxes brought into L2 this many K steps
  /// ahead (MmaOptions::l2PrefetchSteps; 0: none).
  int64_t l2PrefetchSteps = 0;
  /// The wgmma kernels' bf16 rows stored 16 bytes a thread
  /// (MmaOptions::wideStores).
  bool wideStores = false;
  /// The router's K splits on tensor cores as asked (router_split_k), or 0:
  /// planDenseMatmul's.
  int64_t routerSplits() const {
    auto asked = plan.getAs<IntegerAttr>("router_split_k");
    return asked ? asked.getInt() : 0;
  }
  bool producer = false, tmaWeights = false, multicast = false,
       evictFirst = false, bandKOrder = false, rotateK = false,
       rotateDownK = false,
       queue = false, persistent = false;
  bool decodeOverlap = false, overlapEnds = false;
  /// The routed stage's decode kernel: its GEMV items planned as for this
  /// percentage of the matrices.
  int64_t gridShare = 100;
  /// A dense stage: runs as items of the routed stage's decode kernel.
  bool inDecodeKernel = false;
  /// The routed stage: the dense stage its decode kernel runs (or null).
  const ExpertStage *decodeDense = nullptr;
  GatePlan gatePlan;
  Activation activation = Activation::silu;
  RouteKernelOptions ro;

  /// A choice the user made (a string attribute of the plan), or "auto".
  StringRef choice(StringRef attr) const {
    auto s = plan.getAs<StringAttr>(attr);
    return s ? s.getValue() : StringRef("auto");
  }
  void decide(bool addsDenseStages);
  /// The GEMV grids (and the down GEMV's staging) for `upMatrices` and
  /// `downMatrices` matrices of this stage's sizes in one launch.
  void planGemvs(int64_t upMatrices, int64_t downMatrices);
  /// The rows a down GEMV block of `down` stages (its K chunk), or 0.
  int64_t stageRowsOf(const GemvGrid &down) const;
  /// The GEMV grids as items of the decode kernel's blocks
  /// (fillGemvBlock): every thread of a block loads.
  void fillDecodeItems();
  /// Whether the decode kernel of this (routed) stage can run dense stage
  /// `s` as items of its own.
  bool canRunInDecode(const ExpertStage &s) const {
    return decodeKernel && choice("decode_dense") != "never" && s.dense &&
           !s.mix && s.T == 1 && s.gemvExperts && s.stageRows &&
           s.upGrid.threads <= kDecodeThreads &&
           s.downGrid.threads <= kDecodeThreads;
  }
  /// The dense stage's up and down items in the decode kernel.
  int64_t denseUpItems() const {
    return upGrid.blocksX * upGrid.splits * (gated ? 2 : 1);
  }
  int64_t denseDownItems() const { return downGrid.blocksX * downGrid.splits; }
  SmallVector<NamedAttribute> planAttrs(OpBuilder &b) const;
  /// The plan in words, for --gpu-report: the expert path, its tiles,
  /// stages, groups of row tiles and combine, or its GEMV form.
  std::string describe() const;
};

/// The device buffers a stage reads (x and the weights) and its tensor maps.
struct StageInputs {
  Value x, wr, bias, wUp, wGate, wDown, firstExpert, coef, mixCoef, mixBias;
  SmallVector<Value> upMaps, downMaps;
};

/// What a stage leaves for the end of the chain: the f32 output it added
/// into, or (combine by rows) its weighted rows and their tables.
struct StageOutputs {
  Value y, hDown, offsets, assignExpert, assignPos;
};
} // namespace mlir::moe::gpu_layer

#endif // MOE_LIB_CONVERSION_MOETOGPU_GPULAYERPLAN_H
