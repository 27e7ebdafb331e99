//===- Pipelines.h - moe compilation pipelines -------------------*- C++ -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

#include <string>

namespace mlir {
class OpPassManager;
namespace moe {

/// moe ops (composite or primitives) -> linalg/tensor/scf on tensors.
void buildMoEToLinalgPipeline(OpPassManager &pm);

/// The whole CPU pipeline: moe -> linalg -> bufferized loops -> LLVM dialect.
/// Public functions take and fill bare pointers to their (static-shaped)
/// buffers; results become trailing out-parameters.
void buildCpuPipeline(OpPassManager &pm);

/// The CUDA pipeline: bf16 expert FFNs on the GPU (sm_90a kernels embedded as
/// a gpu.binary, host code calling the runtime's mgpu* ABI), the rest as in
/// the CPU pipeline. Expert weights are device pointers.
struct CudaPipelineOptions : public PassPipelineOptions<CudaPipelineOptions> {
  PassOptions::Option<std::string> path{
      *this, "path",
      llvm::cl::desc("expert path of fused GPU layers: auto, gemv, mma or "
                     "wgmma"),
      llvm::cl::init("auto")};
  PassOptions::Option<int64_t> wgmmaColumns{
      *this, "wgmma-columns",
      llvm::cl::desc("weight columns per wgmma block: 128 or 256"),
      llvm::cl::init(256)};
  PassOptions::Option<int64_t> wgmmaStages{
      *this, "wgmma-stages",
      llvm::cl::desc("shared-memory stages of the wgmma path"),
      llvm::cl::init(4)};
  PassOptions::Option<int64_t> wgmmaRows{
      *this, "wgmma-rows",
      llvm::cl::desc("rows per wgmma tile: 0 (chosen per layer), 128, 64 "
                     "or 192"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> wgmmaTileStep{
      *this, "wgmma-tile-step",
      llvm::cl::desc("rows from one of an expert's 192-row tiles to the "
                     "next: 0 (chosen), 192 or 128"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> mmaTileM{
      *this, "mma-tile-m",
      llvm::cl::desc("rows per tensor-core tile: 0 (chosen per layer), 64 "
                     "or 128"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> gemvLanes{
      *this, "gemv-lanes",
      llvm::cl::desc("most lanes of a warp splitting K in the expert GEMVs: "
                     "0 (auto), 1, 2, 4 or 8"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> gemvUnroll{
      *this, "gemv-unroll",
      llvm::cl::desc("weight rows each lane of the expert GEMVs loads ahead: "
                     "0 (auto), 4 or 8"),
      llvm::cl::init(0)};
  PassOptions::Option<std::string> fusedGate{
      *this, "fused-gate",
      llvm::cl::desc("the router matmul, the clearing of the accumulators "
                     "and the routing in one gating kernel: auto (default), "
                     "always or never"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> decodeOverlap{
      *this, "decode-overlap",
      llvm::cl::desc("the down GEMV loads its first weights before its grid "
                     "dependency wait, the up GEMV lets it launch early: "
                     "auto (default) or never"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> wgmmaKOrder{
      *this, "wgmma-k-order",
      llvm::cl::desc("the wgmma producer's K-step order (a tall tile with "
                     "its band two of every three steps first, each "
                     "expert's steps from its own start): auto (default), "
                     "never, band (no rotation), up (rotation in the up "
                     "kernel only) or both"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> wgmmaBand{
      *this, "wgmma-band",
      llvm::cl::desc("how a 192-row tile multiplies its band (rows "
                     "128-191): auto (default: m64), m64 (m64n128 wgmmas "
                     "over all 64 rows), swap16 or swap32 (weights as A, "
                     "the rows as B, in sub-bands of 16 or 32 rows)"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> wgmmaWideStores{
      *this, "wgmma-wide-stores",
      llvm::cl::desc("the wgmma kernels' bf16 rows stored 16 bytes a thread "
                     "where experts get 64 rows or more: auto (default) or "
                     "never"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> weightsEvictFirst{
      *this, "weights-evict-first",
      llvm::cl::desc("the wgmma kernels' TMA weight loads with the L2 "
                     "evict-first policy: auto (default) or never"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> decodeKernel{
      *this, "decode-kernel",
      llvm::cl::desc("one token's gating, up and down GEMVs as one "
                     "persistent kernel: auto (default) or never"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> decodeDense{
      *this, "decode-dense",
      llvm::cl::desc("at one token, the shared experts (or PR-MoE MLP) as "
                     "items of the decode kernel: auto (default) or never"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> prefetchRouter{
      *this, "prefetch-router",
      llvm::cl::desc("the gating (or decode) kernel brings the router into "
                     "L2 before its grid dependency wait: auto (default) or "
                     "never"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> denseSplitK{
      *this, "dense-split-k",
      llvm::cl::desc("a dense stage's wgmma down projection split over K "
                     "where its column blocks leave SMs idle: auto "
                     "(default) or never"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> densePath{
      *this, "dense-path",
      llvm::cl::desc("the expert path of the dense stages (shared experts, "
                     "PR-MoE MLP): auto (default), gemv, mma or wgmma"),
      llvm::cl::init("auto")};
  PassOptions::Option<int64_t> attentionHeads{
      *this, "attention-heads",
      llvm::cl::desc("query heads a block of the decoding attention: 0 "
                     "(auto) or a divisor of the group"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> attentionUnroll{
      *this, "attention-unroll",
      llvm::cl::desc("key rows a lane of the decoding attention loads at "
                     "once: 0 (auto) or 1 to 16"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> attentionThreads{
      *this, "attention-threads",
      llvm::cl::desc("threads of a block of the decoding attention: 0 "
                     "(auto), 128, 256 or 512"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> attentionSplit{
      *this, "attention-split",
      llvm::cl::desc("blocks splitting an item's keys in the decoding "
                     "attention: 0 (auto), a power of two up to 8 (a "
                     "cluster) or up to 1024 (partial sums and a merge)"),
      llvm::cl::init(0)};
  PassOptions::Option<std::string> attentionKernel{
      *this, "attention-kernel",
      llvm::cl::desc("the decoding attention's kernel: auto (tensor cores "
                     "where they can, with 2 or more heads a block, and no "
                     "other choice is given), mma or cores"),
      llvm::cl::init("auto")};
  PassOptions::Option<int64_t> decodeGridShare{
      *this, "decode-grid-share",
      llvm::cl::desc("the decode kernel's GEMV items planned as for this "
                     "percentage of the matrices (default 100)"),
      llvm::cl::init(100)};
  PassOptions::Option<int64_t> decodeStages{
      *this, "decode-stages",
      llvm::cl::desc("K steps each thread of the decode kernel's GEMV items "
                     "keeps in flight through cp.async to shared memory: 2 "
                     "or 3; 0 (default): loads to registers"),
      llvm::cl::init(0)};
  PassOptions::Option<std::string> wgmmaQueue{
      *this, "wgmma-queue",
      llvm::cl::desc("the producer-form wgmma kernels take their pairs from "
                     "a global counter: auto, always or never"),
      llvm::cl::init("auto")};
  PassOptions::Option<int64_t> wgmmaGroupTiles{
      *this, "wgmma-group-tiles",
      llvm::cl::desc("row tiles the wgmma blocks take together: -1 (auto, "
                     "default), -2 (each expert's tiles), 0 (all tiles of "
                     "a column block, then the next) or a count"),
      llvm::cl::init(-1)};
  PassOptions::Option<bool> fusedRoute{
      *this, "fused-route",
      llvm::cl::desc("where the routing is split (over 64 tokens), the "
                     "select kernel computes its tokens' router logits "
                     "itself instead of a router GEMM kernel before it "
                     "(not the default: measured slower)"),
      llvm::cl::init(false)};
  PassOptions::Option<int64_t> routerSplitK{
      *this, "router-split-k",
      llvm::cl::desc("the router's tensor-core GEMM split over K: 0 (auto, "
                     "default) or a count up to 256 (1: none)"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> downKRuns{
      *this, "down-k-runs",
      llvm::cl::desc("the routed down kernel's pairs in this many runs of "
                     "their K steps: 0 (auto, default), 1 (none) or a count "
                     "up to 64"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> wgmmaL2Prefetch{
      *this, "wgmma-l2-prefetch",
      llvm::cl::desc("the wgmma producers bring the weights of a pair's K "
                     "step kt + N into L2 as they issue step kt: 0 (default: "
                     "none) or N from 1 to 64"),
      llvm::cl::init(0)};
  PassOptions::Option<std::string> wgmmaPersistent{
      *this, "wgmma-persistent",
      llvm::cl::desc("the wgmma expert kernels as persistent grids: auto "
                     "(default: producer, tma from 512 rows an expert), "
                     "always, producer (with a producer warpgroup), tma, "
                     "multicast or never"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> combine{
      *this, "combine",
      llvm::cl::desc("how the tensor-core paths' down projection meets each "
                     "token's k rows: auto (default), atomic or rows"),
      llvm::cl::init("auto")};
  PassOptions::Option<std::string> stageDown{
      *this, "stage-down",
      llvm::cl::desc("the down GEMV computes its input's activation once a "
                     "block into shared memory: auto (default) or never"),
      llvm::cl::init("auto")};
  PassOptions::Option<int64_t> ffnColumns{
      *this, "ffn-columns",
      llvm::cl::desc("the few-rows path's expert FFN as one kernel with this "
                     "many ffn columns a block: 0 (auto), 32, 64 or 128; -1: "
                     "the up and down GEMVs instead"),
      llvm::cl::init(0)};
  PassOptions::Option<bool> earlyLaunch{
      *this, "early-launch",
      llvm::cl::desc("kernels of more than one wave let the next one launch "
                     "right after their grid dependency wait (default "
                     "false: as their blocks exit)"),
      llvm::cl::init(false)};
  PassOptions::Option<int64_t> mmaStages{
      *this, "mma-stages",
      llvm::cl::desc("cp.async stages of the mma.sync tiles: 0 (auto), 2, 3 "
                     "or 4"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> mmaWarps{
      *this, "mma-warps",
      llvm::cl::desc("warps per tensor-core block: 0 (auto), 4 or 8"),
      llvm::cl::init(0)};
  PassOptions::Option<bool> report{
      *this, "report",
      llvm::cl::desc("a remark per moe.layer (fused on the GPU, or "
                     "decomposed and why) and per dense op (on the GPU, or "
                     "on the host and why)"),
      llvm::cl::init(false)};
  PassOptions::Option<std::string> format{
      *this, "format",
      llvm::cl::desc("kernel binary format: fatbin (default), bin or isa "
                     "(PTX text, for tests)"),
      llvm::cl::init("fatbin")};
};
void buildCudaPipeline(OpPassManager &pm,
                       const CudaPipelineOptions &options = {});

/// Registers `-moe-cpu-pipeline`, `-moe-cuda-pipeline` and `-moe-to-linalg-pipeline` for moe-opt.
void registerPipelines();

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H
