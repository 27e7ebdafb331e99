//===- ExpertKernels.h - GPU kernels of the expert FFN -----------*- C++ -*-===//
//
// Part of moe-compiler. Builders for the gpu.func kernels of the expert
// fusion group. The memory-bound path (few rows per expert) is measured in
// test/bench/NOTES-gpu.md: 80-91% of the copy floor where experts have 1 to
// 4 rows each.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TARGET_CUDA_EXPERTKERNELS_H
#define MOE_TARGET_CUDA_EXPERTKERNELS_H

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::moe {

/// Adds an empty kernel `name` taking `argTypes` at the end of `module`,
/// with `knownThreads` (when non-zero) as its exact block size, so that
/// ptxas fits the registers to it. The builder's insertion point moves into
/// the kernel's entry block.
gpu::GPUFuncOp createKernelFunc(OpBuilder &builder, Location loc,
                                gpu::GPUModuleOp module, StringRef name,
                                TypeRange argTypes, int64_t knownThreads = 0);

/// Index arithmetic for kernel builders: `ops.add(a, b)`, `ops.c(8)`, ...
struct IndexOps {
  OpBuilder &b;
  Location loc;
  Value c(int64_t v) const;
  Value add(Value l, Value r) const;
  Value mul(Value l, Value r) const;
  Value divu(Value l, int64_t r) const;
  Value remu(Value l, int64_t r) const;
  Value icmp(arith::CmpIPredicate p, Value l, Value r) const;
  Value select(Value cond, Value t, Value f) const;
};

/// Builds `body` inside a new `scf.if cond` (no else) at the insertion
/// point; the insertion point stays after the if.
void buildIfThen(OpBuilder &b, Location loc, Value cond,
                 function_ref<void()> body);
/// v plus its values in the lanes lane ^ from, lane ^ 2 from, ... (xor
/// shuffles up to 16): the sum over the lanes of a warp that share
/// lane % from.
Value sumOverLanes(OpBuilder &b, Location loc, Value v, int64_t from);
/// The block reduction of thread-partial sums over column groups: `acc`
/// (vector<8xf32>, this thread's sums of columns col .. col + 8) is added
/// over the lanes of the warp that share lane % groups (sumOverLanes), and
/// the first of them stores the warp's sums to red[warp, prefix..., col + c]
/// (shared memory; a barrier must follow before sumOverWarps reads them).
void storeWarpSums(OpBuilder &b, Location loc, Value acc, int64_t groups,
                   Value lane, Value warp, Value red, ValueRange prefix,
                   Value col);
/// red[0, rest...] + ... + red[warps - 1, rest...].
Value sumOverWarps(OpBuilder &b, Location loc, Value red, int64_t warps,
                   ValueRange rest);

/// Tensor-core pieces shared by the grouped GEMM and the attention kernel:
/// one mma.sync m16n8k16, bf16 x bf16 -> f32, `c` (the 4 accumulators) +=
/// `a` (4 registers) x `bReg` (2 registers), in place; and register `i`
/// (two bf16 as an i32) of an ldmatrix fragment (vector<4x2xbf16>).
void mmaSyncBf16(OpBuilder &b, Location loc, ArrayRef<Value> a,
                 ArrayRef<Value> bReg, MutableArrayRef<Value> c);
Value fragmentRegister(OpBuilder &b, Location loc, Value fragment, int64_t i);
/// One 16-byte cp.async (8 bf16, L1 bypassed) from src[srcIndices] into
/// the shared dst[dstIndices], zero-filled past `count` elements (8 or 0);
/// and the commit of such copies as one group. Their tokens.
Value asyncCopy16(OpBuilder &b, Location loc, Value dst, ValueRange dstIndices,
                  Value src, ValueRange srcIndices, Value count);
Value commitAsyncCopies(OpBuilder &b, Location loc, ValueRange tokens);
/// out[row, col + colOffset + i] += vals[i] for 2 or 4 values as one vector
/// reduction (red.global.add.v2/.v4.f32: sm_90, PTX 8.1), half or a quarter
/// of the L2 atomics of scalar adds. `out` is a memref<?x?xf32> of identity
/// layout; (col + colOffset) * 4 bytes must be aligned to the vector (8 or 16
/// bytes). The constant colOffset goes into the instruction's address
/// ([base+imm]), so reductions along a row share one address computation
/// (LLVM does not fold offsets into an inline asm operand).
void atomicAddF32Vector(OpBuilder &b, Location loc, Value out, Value row,
                        Value col, ArrayRef<Value> vals,
                        int64_t colOffset = 0);
/// The 16 bytes at m[indices...] (a memref of identity layout, 16-byte
/// aligned there) as a vector of `type`, loaded by an ld.global.v4.b32 that
/// neither LLVM nor ptxas moves past the instructions with side effects
/// around it (e.g. a grid dependency wait): the load is issued here, and
/// only the first use of its value waits for it.
Value loadVector16Here(OpBuilder &b, Location loc, VectorType type, Value m,
                       ValueRange indices);
/// in[i] of a memref<?xi32> of identity layout, read from L2
/// (ld.global.cg).
Value loadI32FromL2(OpBuilder &b, Location loc, Value in, Value i);
/// m[indices] (i32 or f32, identity layout) from L2: ld.global.cg.
Value loadFromL2(OpBuilder &b, Location loc, Value m, ValueRange indices);
/// m[i] of a memref of i32 or i64 by ld.acquire.gpu (what other blocks
/// released before it is visible after it).
Value loadAcquire(OpBuilder &b, Location loc, Value m, Value i);
/// m[i] += v by red.release.gpu (this thread's earlier writes, and those
/// ordered before it by a barrier, are visible before the addition).
void releaseAddI32(OpBuilder &b, Location loc, Value m, Value i, Value v);
/// m[i] = v of a memref<?xi64> by st.release.gpu (ordered as
/// releaseAddI32).
void storeReleaseI64(OpBuilder &b, Location loc, Value m, Value i, Value v);
/// m[i] += v by a relaxed atom.global.add; the old value.
Value fetchAddI32(OpBuilder &b, Location loc, Value m, Value i, Value v);
/// in[row, col] of a memref<?x?xf32> of identity layout, read from L2
/// (ld.global.cg): what other blocks of the grid wrote there, never a line
/// this SM's L1 kept from before.
Value loadF32FromL2(OpBuilder &b, Location loc, Value in, Value row,
                    Value col);

/// A kernel over the elements of [N, C] buffers (the dimensions of the
/// first argument): `body(b, loc, args, r, c)` runs for every element, one
/// thread each (linear index over blocks x threads).
gpu::GPUFuncOp buildElementwiseKernel(
    OpBuilder &b, Location loc, gpu::GPUModuleOp module, StringRef name,
    TypeRange argTypes,
    function_ref<void(OpBuilder &, Location, ValueRange, Value, Value)> body);

/// Streaming multiprocessors the launch plans fill (an H100 / H200 SXM).
constexpr int64_t kPlanSms = 132;

/// Columns each thread of the grouped GEMV owns (one 16-byte bf16 vector).
constexpr int64_t kGemvColumnsPerThread = 8;
/// Rows that share each weight load, and weight rows loaded ahead of use.
constexpr int64_t kGemvRowsPerPass = 4;
constexpr int64_t kGemvUnroll = 4;
/// Threads of a grouped GEMV block, at most (the kernel's maxntid).
constexpr int64_t kGemvMaxThreads = 256;

/// Variants of the grouped GEMV. Extra arguments follow `kchunk`, in this
/// order: rowToken (memref<?xi32> [N], with gatherRows or scatter),
/// rowWeight (memref<?xf32> [N], with scatter), hit (memref<?xi32> [S], with
/// indirect), then w2 and out2 (with pair).
struct GemvOptions {
  /// One matrix (w is [1, K, M]) applied to all rows of x; no offsets read.
  bool dense = false;
  /// Input row of slot r is x[rowToken[r]] (dispatch fused into the GEMV).
  bool gatherRows = false;
  /// Grid z is a slot of `hit`, the list of experts hit (-1: none).
  bool indirect = false;
  /// Two matrices (up and gate) in one launch: grid z in [0, 2S), the second
  /// half uses w2 and out2.
  bool pair = false;
  /// out[rowToken[r], :] += rowWeight[r] * (x[r, :] * w[e]): the combine
  /// step fused into the down projection.
  bool scatter = false;
  /// Rows that share each weight load (1 where experts get about one row).
  int64_t rowsPerPass = kGemvRowsPerPass;
  /// Lanes of a warp that split K for the same columns (a power of two up
  /// to 32; K and kchunk multiples of unroll * lanes).
  int64_t lanes = 1;
  /// Weight rows each lane loads before their first use.
  int64_t unroll = kGemvUnroll;
  /// The expert activation applied to the input as it is read (the down
  /// projection reading the f32 up projection; fuses the activation
  /// kernel away): x is then memref<?x?xf32>, and with `inputGated` the
  /// gate projection (memref<?x?xf32>) is the last argument. The value is
  /// rounded to the element type first, as the activation kernel stores it.
  std::optional<Activation> inputActivation;
  bool inputGated = false;
  /// Programmatic dependent launch (see moe-gpu-programmatic-launch): the
  /// kernel issues its first K step's weight loads (and reads its slot of
  /// `hit` from L2) before its grid dependency wait, so that they overlap
  /// the previous kernel's tail. Only what the previous kernel does not
  /// write may be read there: the weights, and `hit` from a kernel before
  /// it. With `indirect` only.
  bool loadBeforeWait = false;
  /// With `inputActivation`: the block first computes the activation of
  /// its rows' K chunk once into shared memory (`stageRows` f32 a row, at
  /// least kchunk), then every thread reads it from there: no thread
  /// recomputes it for its columns, and the K loop holds no input loads
  /// from global memory (the SwiGLU down GEMV used 108-116 registers a
  /// thread without it, two blocks an SM). 0: read and activate in the loop.
  int64_t stageRows = 0;
  /// Lets the next kernel launch right after this one's grid dependency
  /// wait (its blocks then take the room this grid leaves).
  bool triggerDependents = false;
  /// Reads the routing's tables (hit, offsets, rowToken, rowWeight) and the
  /// staged input from L2 (ld.global.cg): other blocks of the same kernel
  /// write them (the persistent decode kernel), so no SM's L1 may serve a
  /// line it kept from before. The input then has to be staged.
  bool coherentLoads = false;
  /// One token routed (the one-token routing: hit sorted by expert): slot
  /// s is row s and its token is 0, so offsets and rowToken are not read
  /// (with `indirect`, one row a pass).
  bool oneToken = false;
  /// Weight rows go to shared memory by cp.async (16 bytes, L1 bypassed)
  /// instead of to registers, `asyncStages` K steps in flight a thread:
  /// bytes in flight then cost no registers. A thread reads back only what
  /// it copied (no barrier). The block's `ring` holds asyncStages * unroll
  /// 16-byte slots a thread (gemvRingSlots). 0: loads to registers. With
  /// loadBeforeWait, the first asyncStages - 1 steps are issued before the
  /// wait (one row pass only: oneToken).
  int64_t asyncStages = 0;
};

/// The arguments of a grouped GEMV (null where `GemvOptions` has none).
struct GemvArgs {
  Value x, offsets, w, out, kchunk, rowToken, rowWeight, hit, w2, out2, xGate;
};
/// The argument types of the grouped GEMV kernel of `opts`, in order.
SmallVector<Type> gemvArgTypes(OpBuilder &b, Type elt, const GemvOptions &opts);
/// `args` (of gemvArgTypes' types) by name.
GemvArgs gemvArgs(ValueRange args, const GemvOptions &opts);
/// Adds to `fn` the shared buffer of a staged input (null without staging).
Value addGemvStage(OpBuilder &b, Location loc, gpu::GPUFuncOp fn,
                   const GemvOptions &opts);
/// Which block of the GEMV's grid the current block runs: its coordinates,
/// the GEMV block's threads (`bdim`, a multiple of 32), `active` (null:
/// all; else false for the threads past `bdim`) and the staging buffer.
struct GemvBlock {
  Value bx, by, bz, bdim, active, stage;
  /// With asyncStages: memref<? x 8 x bf16> in shared memory, at least
  /// gemvRingSlots(opts, threads) rows.
  Value ring;
  /// The expert of the block's slot (i32, -1: none), where the caller has
  /// it; null: read from hit.
  Value expert;
  /// With loadBeforeWait: what the block waits for after its early loads
  /// (null: the grid dependency wait, and the trigger if asked for).
  function_ref<void()> wait;
};
/// The 16-byte slots of the cp.async ring of a block of `threads` threads.
inline int64_t gemvRingSlots(const GemvOptions &opts, int64_t threads) {
  return opts.asyncStages * opts.unroll * threads;
}
/// Emits, at the builder's point, the work of one block of the grouped GEMV
/// (of buildGroupedGemvKernel), with barriers where the input is staged.
void emitGemvBlock(OpBuilder &b, Location loc, Type elt,
                   const GemvOptions &opts, const GemvArgs &args,
                   const GemvBlock &block);

/// Limits on a grouped GEMV's plan; 0 leaves the choice to planGemv.
struct GemvTuning {
  /// Most lanes of a warp that split K for the same columns.
  int64_t maxLanes = 0;
  /// Weight rows a lane loads before their first use: 4 or 8.
  int64_t unroll = 0;
};
/// The tuning of the kernel of default GemvOptions (lanes 1, unroll 4).
constexpr GemvTuning kDefaultGemvKernel{1, kGemvUnroll};
/// Why `t` is not a valid tuning ("" when it is).
std::string whyNotGemvTuning(const GemvTuning &t);

/// `base` with the suffixes of the options that differ from the defaults
/// (_r rows, _l lanes, _u unroll), so each variant is its own kernel.
std::string gemvKernelName(StringRef base, const GemvOptions &options);

/// Adds to `module` the grouped memory-bound GEMV kernel `name`:
///   out[r, :] += x[r, :] * w[e]  for the rows r of every expert e,
/// with arguments (x: memref<?x?xT> rows in expert-major order [N, K],
/// offsets: memref<?xi32> [E+1], w: memref<?x?x?xT> [E, K, M],
/// out: memref<?x?xf32> [N, M] (accumulated with atomics; zero it first),
/// kchunk: index, a multiple of unroll * lanes). Launch with grid
/// (ceil(M / 8 / (threads / lanes)), ceil(K / kchunk), E) of whole warps.
/// M must be a multiple of 8 and w 16-byte aligned.
gpu::GPUFuncOp buildGroupedGemvKernel(OpBuilder &builder, Location loc,
                                      gpu::GPUModuleOp module, StringRef name,
                                      Type elementType,
                                      const GemvOptions &options = {});

/// Adds the kernel `name` that applies the expert activation to the f32
/// up-projection `h` [N, F] (gated: `act(g) * h` with the f32 gate projection
/// `g`) and rounds to `a` [N, F] of `elementType`, as moe.experts does.
/// Arguments: (h, [g,] a). One thread per element; launch with enough blocks
/// to cover N * F.
gpu::GPUFuncOp buildExpertActivationKernel(OpBuilder &builder, Location loc,
                                           gpu::GPUModuleOp module,
                                           StringRef name, Activation act,
                                           bool gated, Type elementType);

/// `act(x)` of an f32 in a kernel: silu with the GPU's approximate exp2 and
/// reciprocal, the others as applyActivation builds them.
Value gpuActivation(OpBuilder &b, Location loc, Activation act, Value x);
/// The row tiles of an expert of `rows` rows (a value of integer or index
/// type): ceil(rows / tileRows); with a shorter `step`, tiles step apart
/// until at most tileRows rows are left: 1 up to tileRows rows, else
/// ceil((rows - (tileRows - step)) / step). The routing's tile table and
/// the wgmma kernels' expert groups (MmaOptions::expertGroups) both count so.
Value expertTileCount(OpBuilder &b, Location loc, Value rows,
                      int64_t tileRows, int64_t step);

/// The global-memory pointer (!llvm.ptr<1>) to the byte address `addr`
/// (an index).
Value globalPointer(OpBuilder &b, Location loc, Value addr);

/// Each of the grid's threads (`threadsPerBlock` a block, x dimension)
/// prefetches into L2 its share of the 128-byte lines of `m`'s elements
/// (an identity-layout memref of `eltBytes`-byte elements, from its
/// aligned pointer).
void emitPrefetchL2(OpBuilder &b, Location loc, Value m, int64_t eltBytes,
                    int64_t threadsPerBlock);

/// The expert activation of the f32 up projection `h` (gated: `act(g) * h`),
/// rounded to `elementType`, as moe.experts computes it.
Value expertActivation(OpBuilder &b, Location loc, Activation act, Value h,
                       Value g, Type elementType);

/// The expert FFN of the few-rows path as one kernel: block (bx, by) takes
/// `columns` columns c0 = bx * columns .. of the ffn dimension of the
/// expert in slot `by` of `hit`, and for each row of that expert computes
/// the up (and gate) projection of those columns over all of d (no split
/// of K across blocks: the block owns its columns' sums), applies the
/// activation (rounded to bf16, as moe.experts does), then multiplies by
/// rows c0.. of the down projection and adds the weighted result into the
/// token's row of `y` (f32 atomics, the combine). No block waits for
/// another, and the up and down weights of a column slice stream through
/// the same block.
constexpr int64_t kFfnThreads = 256;
struct FfnKernelOptions {
  Activation activation = Activation::silu;
  bool gated = true;
  /// Ffn columns a block: 32, 64 or 128 (kFfnThreads / (columns / 8)
  /// threads share each column group's K).
  int64_t columns = 64;
};
std::string ffnKernelName(const FfnKernelOptions &options);
/// Why an expert FFN of [d, f] cannot run as the fused kernel with
/// `columns` columns a block ("" when it can).
std::string whyNotFfnKernel(int64_t d, int64_t f, int64_t columns);
/// Columns a block for `slots` experts of ffn f, or 0 for the up and down
/// GEMVs: 64 (else 128) where that gives at least 8 blocks an SM. A block
/// reads its slice's rows over all of d one round of loads after another,
/// which keeps DRAM busy only with many slices in flight: measured 19-22%
/// faster than the GEMVs at 16 tokens of ds-moe-128 (2048 blocks), but
/// 7-30% slower at 1 token of Mixtral and DeepSeek-V3 (448 and 256 blocks)
/// and up to 2x slower with 32- or 128-column slices at 1 token
/// (results/ffn-kernel-2026-12-01.md).
int64_t planFfnColumns(int64_t f, int64_t slots);
/// Arguments: (x [T, d] bf16, offsets [E+1] i32, wUp [E, d, f] bf16,
/// wDown [E, f, d] bf16, y [T, d] f32 (zeroed), rowToken [N] i32, rowWeight
/// [N] f32, hit [S] i32, [wGate [E, d, f] bf16]). Launch with grid
/// (f / columns, S) of kFfnThreads threads.
gpu::GPUFuncOp buildFusedFfnKernel(OpBuilder &builder, Location loc,
                                   gpu::GPUModuleOp module, StringRef name,
                                   const FfnKernelOptions &options);

/// Adds the kernel `name` rounding f32 `y` [N, D] to `out` of `elementType`,
/// kRoundElementsPerThread consecutive elements a thread (16-byte accesses
/// where both buffers are aligned): launch launchRound's grid.
constexpr int64_t kRoundElementsPerThread = 8;
gpu::GPUFuncOp buildRoundKernel(OpBuilder &builder, Location loc,
                                gpu::GPUModuleOp module, StringRef name,
                                Type elementType);

/// Adds the kernel `name` that sums each token's k weighted rows of the
/// down projection (MmaOptions::weighted) into its output row:
/// out [T, d] (bf16) row t = bf16(sum over j < k of h[offsets[e_j] +
/// pos_j]) in f32, j in order, with e_j = assignExpert[t k + j] and pos_j =
/// assignPos[t k + j]. Arguments (h [N, d] bf16, offsets [E+1] i32,
/// assignExpert [N] i32, assignPos [N] i32, out [T, d] bf16). A block a
/// token, kCombineThreads threads, kCombineElementsPerThread consecutive
/// columns a thread per pass (16-byte accesses where h, out and d allow,
/// else element by element): launch with grid (T, 1, 1).
constexpr int64_t kCombineThreads = 256;
constexpr int64_t kCombineElementsPerThread = 8;
/// With `drops`, an assignment whose expert is -1 (dropped by a capacity)
/// adds nothing.
gpu::GPUFuncOp buildCombineKernel(OpBuilder &builder, Location loc,
                                  gpu::GPUModuleOp module, StringRef name,
                                  int64_t topK, bool drops = false);
std::string combineKernelName(int64_t topK, bool drops = false);

/// Adds the kernel `name` that narrows a routed step to the experts
/// [first, first + L) held by this rank (a layer with `expert_offset`):
/// `localOffsets` [L + 1] = offsets[first ...], and the expert ids of `hit`
/// (and of `tileExpert` with `tiles`) become local ids, or -1 for experts
/// held elsewhere, which the expert kernels skip. Arguments: (offsets,
/// localOffsets, hit[, tileExpert], first: index). One block; any width.
gpu::GPUFuncOp buildLocalizeExpertsKernel(OpBuilder &builder, Location loc,
                                          gpu::GPUModuleOp module,
                                          StringRef name, bool tiles);

/// A dense expert stage's routing (buildDenseRouteKernel): every token one
/// row of the one expert.
struct DenseRouteOptions {
  /// Weight sigmoid(x[t] . coef) (Qwen2-MoE's shared-expert gate).
  bool coef = false;
  /// PR-MoE's mixing: l = x[t] mixCoef [d, 2] (+ mixBias [2] where
  /// mixBiasType is set); the row's weight is c1 = sigmoid(l1 - l0), and the
  /// routed output y[t] (f32, complete by then) is scaled by c0 =
  /// sigmoid(l0 - l1) in place (softmax over the two logits).
  bool mix = false;
  Type mixBiasType;
  /// > 0: also the row-tile table of the tensor-core paths.
  int64_t tileRows = 0;
};

/// Adds the kernel `name` that routes every token to a dense expert stage
/// (a layer's shared experts or PR-MoE residual MLP), run as one "expert"
/// (id 0) with one row a token: row t is token t, with the combine weight
/// of DenseRouteOptions (1 by default). Writes offsets [2] = {0, T},
/// rowToken / rowWeight [T], hit [1] = {0} and, with tileRows > 0, the
/// row-tile table (tile i: expert 0, rows i * tileRows ..; -1 past the
/// last). Arguments: (x [T, d] bf16, [coef [d] bf16 | mixCoef [d, 2] bf16,
/// [mixBias [2]], y [T, d] f32], offsets, rowToken, rowWeight, hit,
/// [tileExpert, tileRow]). Launch denseRouteGrid(T, o) blocks of
/// kDenseRouteThreads threads.
constexpr int64_t kDenseRouteThreads = 256;
gpu::GPUFuncOp buildDenseRouteKernel(OpBuilder &builder, Location loc,
                                     gpu::GPUModuleOp module, StringRef name,
                                     const DenseRouteOptions &options);
std::string denseRouteKernelName(const DenseRouteOptions &options);
/// The dot products x[t] . c[:, j] (c [d] where `sums` is 1, else [d,
/// sums]) in f32 over a block of `threads` threads, 8 loads in flight a
/// thread, summed over the lanes and then the warps through `red` (f32
/// [sums, threads / 32] in shared memory; a barrier); every thread gets the
/// sums.
SmallVector<Value> emitBlockDots(OpBuilder &b, Location loc, Value red,
                                 Value x, Value t, Value c, int64_t sums,
                                 int64_t threads);
/// A block a token where the block sums dot products, else a thread a
/// token.
inline int64_t denseRouteGrid(int64_t tokens, const DenseRouteOptions &o) {
  return o.coef || o.mix
             ? tokens
             : (tokens + kDenseRouteThreads - 1) / kDenseRouteThreads;
}

/// Threads of the routing kernel's single block; it handles up to this many
/// experts.
constexpr int64_t kRouteThreads = 1024;

/// Threads of each block of the routing kernel's select part (a warp per
/// token: the block's 16 tokens share one global atomic per expert hit).
constexpr int64_t kRouteSelectThreads = 512;

/// The select and finish parts' global counts are this many i32 apart (one
/// 128-byte line per expert): `counts` holds E * kRouteCountStride.
constexpr int64_t kRouteCountStride = 32;

/// The routing kernel whole (one block: select, count, scan, map), or in two
/// parts for many tokens: Select (a warp per token over a grid of
/// kRouteSelectThreads-thread blocks; counts by a global atomic per block
/// and expert) and Finish
/// (blocks of kRouteThreads, one per kRouteThreads assignments: each scans
/// the counts and maps its share; the first writes offsets, hit and tiles).
/// Both parts take a trailing argument `counts` (i32 [E *
/// kRouteCountStride], zeroed before Select). Finish takes no logits.
/// With a capacity (RouteKernelOptions::capacity), two parts run between
/// them, a block per kRouteThreads assignments in priority order (the
/// tables' arguments, as Finish, then `blockCounts`, i32 [blocks * E]):
/// CapacityCount counts each block's assignments per expert; Capacity
/// ranks each block's from the counts of the blocks before it, drops those
/// past the capacity, and its first block caps the global counts.
enum class RoutePart { Whole, Select, CapacityCount, Capacity, Finish };

/// Tokens a block of the Select part routes (a warp each).
constexpr int64_t kRouteSelectTokens = kRouteSelectThreads / 32;

/// The Select part's router (RouteKernelOptions::withRouter): cp.async
/// stages of stageK K rows (of the block's tokens and of the router) in
/// dynamic shared memory, `stages` of them (stages - 1 in flight), at most
/// kRouterInSelectStages within kRouterInSelectSharedBytes: the stageK of
/// 32, 64, 128, 256 dividing d that keeps the most bytes in flight (at
/// most the K steps there are); none where d is not a multiple of 32.
constexpr int64_t kRouterInSelectSharedBytes = 160 * 1024;
constexpr int64_t kRouterInSelectStages = 8;
struct RouterInSelectPlan {
  int64_t stages = 0, stageK = 0;
  /// The stages' dynamic shared memory (launch with it).
  int64_t sharedBytes = 0;
};
RouterInSelectPlan planRouterInSelect(int64_t d, int64_t experts);
/// Why the Select part cannot compute its tokens' router logits itself for
/// a router [d, E] ("" when it can): E a multiple of 8 and at most 256 (a
/// warp per pair of n8 tiles at least), d a multiple of 32, and two stages
/// in the budget.
std::string whyNotRouterInSelect(int64_t d, int64_t experts);

/// The routing options the GPU gating kernel specializes on (see
/// moe.router); group-limited routing and capacity are not supported yet.
struct RouteKernelOptions {
  int64_t numExperts = 0;
  int64_t topK = 0;
  bool sigmoid = false;
  bool afterTopk = false;
  bool renormalize = false;
  double scaling = 1.0;
  Type biasType; // null: no bias
  /// Group-limited routing (moe.router's n_group / topk_group): 0 for none;
  /// else the experts form numGroups groups of E / numGroups, scored by
  /// their best key (or, with groupTop2Sum, their best two keys' sum), and
  /// only the topkGroup best groups' experts can be selected.
  int64_t numGroups = 0, topkGroup = 0;
  bool groupTop2Sum = false;
  /// With tileRows > 0, also the row-tile table of the tensor-core path:
  /// arguments tileExpert, tileRow [TT] before the bias; tile t covers rows
  /// tileRow[t] .. + tileRows of expert tileExpert[t] (-1 past the last).
  int64_t tileRows = 0;
  /// With tileStep (less than tileRows), an expert's tiles start tileStep
  /// rows apart until at most tileRows of its rows are left: those are its
  /// last tile (WgmmaTile::step).
  int64_t tileStep = 0;
  RoutePart part = RoutePart::Whole;
  /// The gating kernel lets the next kernel launch right after its grid
  /// dependency wait, so that the next grid's blocks are resident, waiting,
  /// while its last block routes.
  bool triggerDependents = false;
  /// The gating kernel (or the decode kernel with these routing options):
  /// before its grid dependency wait, the grid's threads bring the router's
  /// 128-byte lines into L2 (no kernel before it writes the router), so
  /// that its blocks, launched early, do so while the kernel before ends.
  bool prefetchRouter = false;
  /// Select only: each block first computes its kRouteSelectTokens tokens'
  /// logits itself, x[t] . router[:, e] on mma.sync m16n8k16 (bf16 in, f32
  /// sums) from cp.async stages of the router in shared memory, and routes
  /// from there: no router GEMM kernel before it, no logits in global
  /// memory. Arguments (x [T, d] bf16, router [d, E] bf16) replace
  /// `logits`. Launch ceil(T / kRouteSelectTokens) blocks with the plan's
  /// dynamic shared memory (planRouterInSelect(d, E), whose stageK this
  /// is).
  bool withRouter = false;
  int64_t routerStageK = 0;
  /// Exactly one token (a decode step): the warp that selects the k experts
  /// also writes the offsets, the list of experts hit and the mapping
  /// directly, from the k ids it holds in registers (the row of a selected
  /// expert is the number of selected ids below it), with no counts, scans
  /// or barriers. Not with tileRows.
  bool oneToken = false;
  /// moe.layer's capacity (drop policy `position`), or 0: dropless. Each
  /// expert keeps its first `capacity` assignments in priority order (every
  /// token's first choice, in token order, before any second choice); the
  /// others are dropped: assignExpert -1, assignWeight 0, no row. Whole
  /// ranks them in its block; the split routing in the CapacityCount and
  /// Capacity parts.
  /// Not with oneToken (a capacity under one token is never planned: one
  /// token gives an expert at most one assignment).
  int64_t capacity = 0;
};

/// Adds the gating kernel `name`, run as one block of kRouteThreads threads:
/// from f32 `logits` [T, E] it selects each token's top k experts and writes
/// `offsets` [E+1] (rows of each expert in expert-major order), the mapping
/// `rowToken` / `rowWeight` [T*k] (the token and combine weight of each row),
/// and `hit` [S] (the experts with rows, in id order, then -1). Arguments:
/// (logits, offsets, rowToken, rowWeight, hit, assignExpert, assignPos,
/// assignWeight [T*k scratch], [bias [E]]).
gpu::GPUFuncOp buildRouteKernel(OpBuilder &builder, Location loc,
                                gpu::GPUModuleOp module, StringRef name,
                                const RouteKernelOptions &options);
std::string routeKernelName(const RouteKernelOptions &options);

/// The buffers routing reads and writes, as buildRouteKernel takes them
/// (tileExpert / tileRow with tileRows, bias with biasType, globalCounts
/// for the Select and Finish parts; null otherwise).
struct RouteBuffers {
  Value logits, offsets, rowToken, rowWeight, hit, assignExpert, assignPos,
      assignWeight, tileExpert, tileRow, bias, globalCounts, blockCounts;
  /// The token count where `logits` holds only some tokens' rows (null:
  /// logits' rows), and the token of logits' row 0 (null: token 0).
  Value tokens, logitsRow0;
  /// One-token routing: a workgroup copy of `hit`'s first k slots (null:
  /// none), for a block that hands the experts on without reading them
  /// back from L2.
  Value hitShared;
};
/// Emits routing (options.part) into the kernel `fn` being built, run by
/// all `threads` threads of the block (at least one per expert for Whole
/// and Finish); its shared memory becomes workgroup attributions of `fn`.
void emitRouting(OpBuilder &builder, Location loc, gpu::GPUFuncOp fn,
                 const RouteKernelOptions &options, int64_t threads,
                 const RouteBuffers &buffers);

/// The gating fusion group as one kernel at decode sizes: the router
/// matmul, split over K across the grid's blocks (each block's sums added
/// into a device global of logits by f32 atomics), the clearing of the
/// layer's accumulators, and, in the last block to finish (a ticket, also a
/// device global), the routing of buildRouteKernel (Whole). The last block
/// sets both globals back to zero for the next launch. Blocks of
/// kGateThreads threads: E / 8 column groups of 8 experts x the rest on K.
constexpr int64_t kGateThreads = 256;
/// Most tokens the gating kernel routes (its global logits' rows).
constexpr int64_t kGateMaxTokens = 64;
/// Weight rows each thread of the gating kernel loads before their use;
/// token rows that share each weight load.
constexpr int64_t kGateUnroll = 4, kGateRows = 4;
struct GatePlan {
  int64_t blocks = 0, kchunk = 0;
};
/// Why the gating of T tokens among E experts cannot run as one gating
/// kernel ("" when it can): E a multiple of 8 with E / 8 dividing
/// kGateThreads, and T at most kGateMaxTokens.
std::string whyNotGateKernel(int64_t tokens, int64_t experts);
/// Blocks and K rows a block (a multiple of the rows its threads load at
/// once) for a router of [d, E]: one round of loads a thread over at most
/// 128 blocks, more where the router is larger.
GatePlan planGate(int64_t d, int64_t experts);
/// Arguments: (x [T, d] bf16, router [d, E] bf16, accumulators
/// memref<?xf32> (cleared; a multiple of 4 elements), kchunk: index, then
/// buildRouteKernel's arguments (part Whole)). Launch with grid
/// (planGate(...).blocks) of kGateThreads threads.
gpu::GPUFuncOp buildGateKernel(OpBuilder &builder, Location loc,
                               gpu::GPUModuleOp module, StringRef name,
                               const RouteKernelOptions &options);
std::string gateKernelName(const RouteKernelOptions &options);
/// The one-token layer's gating kernel, up GEMV and down GEMV as one
/// persistent kernel of work items taken from a queue (DecodeKernel.cpp).
/// Arguments: the gating kernel's (gateArgTypes), the up GEMV's and the
/// down GEMV's (gemvArgTypes), with a dense stage its up and down GEMVs'
/// (and with denseCoef its coefficient, bf16 [d]), then the router items,
/// the up and down GEMV grids' x and y (index) and with a dense stage its
/// GEMV grids' x and y. Any grid size is correct; launch
/// kDecodeBlocksPerSm * SMs blocks of kDecodeThreads threads.
constexpr int64_t kDecodeThreads = 256;
constexpr int64_t kDecodeMaxSlots = 64;
constexpr int64_t kDecodeBlocksPerSm = 2;
struct DecodeKernelOptions {
  RouteKernelOptions route; // oneToken
  /// The chain's GEMVs, with coherentLoads (and the down input staged).
  GemvOptions up, down;
  /// Threads of the GEMVs' blocks (whole warps, at most kDecodeThreads).
  int64_t upThreads = kDecodeThreads, downThreads = kDecodeThreads;
  /// A dense stage (a layer's shared experts, or PR-MoE's MLP without its
  /// mixing) as one more slot of fixed expert 0 with its own GEMVs: its
  /// up items come right after the gating items and wait only until those
  /// have cleared the accumulators (its weights stream while the routing
  /// is decided), its down items before the routed ones. The first up item
  /// writes the slot's row weight: sigmoid(x . coef) with denseCoef, else 1.
  bool dense = false, denseCoef = false;
  GemvOptions denseUp, denseDown;
  int64_t denseUpThreads = kDecodeThreads, denseDownThreads = kDecodeThreads;
};
std::string decodeKernelName(const DecodeKernelOptions &o);
/// The decode kernel's dynamic shared memory: the GEMV items' cp.async
/// ring (0 without asyncStages).
int64_t decodeKernelSharedBytes(const DecodeKernelOptions &o);
/// Why a layer of these sizes has no decode kernel ("" when it can).
std::string whyNotDecodeKernel(int64_t tokens, int64_t slots, int64_t experts);
gpu::GPUFuncOp buildDecodeKernel(OpBuilder &b, Location loc,
                                 gpu::GPUModuleOp module, StringRef name,
                                 const DecodeKernelOptions &o);

/// The gating kernel's arguments: x, the router, the f32 buffer it clears,
/// kchunk, then the routing's (routeArgTypes).
SmallVector<Type> gateArgTypes(OpBuilder &b, const RouteKernelOptions &o);
/// Its two device globals: the ticket and the logits' sums.
MemRefType gateTicketType(MLIRContext *ctx);
MemRefType gateSumsType(MLIRContext *ctx, const RouteKernelOptions &o);
/// A zero-initialised device global `name` of `module`; its name.
std::string addDeviceGlobal(OpBuilder &b, Location loc,
                            gpu::GPUModuleOp module, const Twine &name,
                            MemRefType type);
/// The gating block's shared buffers, and the globals it uses.
struct GateShared {
  Value red, isLast, ticket, sums;
  /// Optional (one token): where the routing also writes the experts hit
  /// (RouteBuffers::hitShared).
  Value hitShared;
};
/// Adds `red` and `isLast` to `fn`.
GateShared addGateShared(OpBuilder &b, Location loc, gpu::GPUFuncOp fn,
                         const RouteKernelOptions &o);
/// Emits the work of gating block `bx` of `blocks` (of buildGateKernel):
/// its share of the clearing, then `afterClear` (if any), its share of the
/// router sums, the ticket, and in the last block the routing, then
/// `afterRouting` (in that block).
void emitGateBlock(OpBuilder &b, Location loc, gpu::GPUFuncOp fn,
                   const RouteKernelOptions &o, ValueRange args, Value bx,
                   Value blocks, const GateShared &shared,
                   function_ref<void()> afterRouting,
                   function_ref<void()> afterClear = nullptr);

/// Tile of the tensor-core grouped GEMM: rows x output columns x K step
/// (pairs: half the columns from each matrix), and its threads (8 warps,
/// 64 x 32 each).
constexpr int64_t kMmaTileM = 128, kMmaTileN = 128, kMmaTileK = 32;
constexpr int64_t kMmaThreads = 256;

struct MmaOptions {
  /// Input row of slot r is x[rowToken[r]].
  bool gatherRows = false;
  /// Up and gate: out = bf16(act(x W2) * (x W)); else out = bf16(act(x W)).
  bool pair = false;
  /// Down with combine: out (f32 [T, N]) [rowToken[r]] += rowWeight[r] * ...
  bool scatter = false;
  /// Down without combine: out (bf16 [Nrows, N]) row r = bf16(rowWeight[r]
  /// * ...), plain stores; the combine kernel (buildCombineKernel) then sums
  /// each token's k rows. Exclusive with scatter.
  bool weighted = false;
  /// wgmma only: the order in which the blocks (in launch order) take the
  /// (row tile, column block) pairs: groups of groupTiles consecutive
  /// tiles, a group's column blocks in turn, its tiles fastest, so that a
  /// group's rows stay in L2 for all its column blocks and the tiles of an
  /// expert share each weight block. 0: all tiles of a column block, then
  /// the next (the rows re-read from DRAM per column block where they
  /// outgrow the L2). The planner (LayerToGPU.cpp) picks it: at most
  /// planWgmmaGroupTiles and a wave of the grid's pairs, at least twice
  /// an expert's tiles.
  int64_t groupTiles = 0;
  /// wgmma only, persistent without multicast, instead of groupTiles: each
  /// expert's tiles a group, whatever their count, so that the blocks
  /// taking an expert's tiles on a weight block run together (adjacent
  /// pairs) and a tile's column blocks are its expert's tile count apart.
  bool expertGroups = false;
  /// wgmma only, not dense: launch gridDim.x blocks (one an SM) that take
  /// the (live tile, column block) pairs round-robin as one stream of K
  /// steps: a pair's first copies are issued while the previous pair's
  /// last MMAs run and its epilogue stores. K must be at least
  /// (stages - 2) K steps.
  bool persistent = false;
  /// With persistent: a third warpgroup (the producer) issues all copies
  /// and hands each stage to the two MMA warpgroups through mbarriers
  /// (full: the producer's cp.async done; empty: both MMA warpgroups done
  /// reading), so the MMA warpgroups issue no copies and meet at no block
  /// barrier, and the next pair's stages fill while they store a pair's
  /// epilogue. kWgmmaProducerThreads more threads a block.
  bool producer = false;
  /// With producer: the weight tiles come by TMA (cp.async.bulk.tensor, one
  /// producer thread, the 128-byte-swizzled 64 x 64 box of each B atom)
  /// instead of the producer warpgroup's cp.async; the stage's `full`
  /// mbarrier also waits for their bytes (mbarrier.arrive.expect_tx).
  /// Arguments: one more i64 a matrix after the others, the device address
  /// of its tensor map (moert_cuda_tensor_map_bf16 of w [E, K, N], box
  /// [1, 64, 64]). N must be a multiple of 8.
  bool tmaWeights = false;
  /// With tmaWeights: blocks in clusters of two (launched with `clusters in
  /// (2, 1, 1)`, an even grid) over the two 128-row halves of the routing's
  /// 256-row tiles (tileRows 2 x kWgmmaTileM), the same (tile, column
  /// block) pairs in turn; each block's producer brings half of the weight
  /// atoms by TMA multicast to both, so L2 serves a weight block once per
  /// 256 rows (each SM still takes in all of it). A stage is free again
  /// once the MMA warpgroups of both blocks are done with it. The weights'
  /// atoms a matrix must be even (256-column tiles where gated).
  bool multicast = false;
  /// With tmaWeights: the weights' TMA loads carry the L2 evict-first
  /// policy (each weight byte is read by the few blocks of one expert's
  /// tiles at about the same time, then never again), so that the rows,
  /// read again by every column block, and the buffers the next kernel
  /// reads stay in L2.
  bool evictFirst = false;
  /// With producer: expert e's pairs take their K steps from step 5 e on
  /// (mod the steps), so that the tiles of a wave's experts read different
  /// parts of K at a time (the planner's choice where experts get two or
  /// more row tiles).
  bool rotateK = false;
  /// With producer and 192-row tiles: a tile that multiplies its last 64
  /// rows takes two of every three K steps first (at the pace of its
  /// expert's 128-row tiles), the third ones after.
  bool bandKOrder = false;
  /// With producer and 192-row tiles, 16 or 32: the band (rows 128-191)
  /// multiplied with the operands swapped ("swap AB"): the weights are the
  /// wgmma's A (MN-major, transposed), the band's rows its B (K-major), in
  /// sub-bands of this many rows (m64n16k16 or m64n32k16), each multiplied
  /// only where the tile has rows in it. The band then costs MMAs by 16 or
  /// 32 rows instead of 64, but each sub-band reads the weights from shared
  /// memory again; its epilogue stores each element on its own (a thread's
  /// accumulators are two columns by swapBandRows / 4 rows of a sub-band).
  /// 0: the band is m64n128 wgmmas over its 64 rows.
  int64_t swapBandRows = 0;
  /// With producer, not multicast: the blocks take the pairs from a global
  /// counter (one more argument after the others: a zeroed i32 [1], used
  /// up by the launch) instead of round-robin by block index, so pairs start
  /// in their order however long each took: the tiles of an expert,
  /// consecutive pairs, read a weight block at about the same time (from
  /// L2 after the first), and no block is left with more pairs at the end.
  /// At most kWgmmaQueueRing - 3 stages.
  bool queue = false;
  /// With producer and scatter: each (row tile, column block) pair's K
  /// steps in kRuns equal runs, each an item of its own (run i % kRuns of
  /// pair i / kRuns), their sums added by the scatter's f32 atomics: where
  /// the pairs are few and long (an expert's last, taller tile taking 1.5x
  /// the others' time), the SMs' shares even out. K / kWgmmaTileK must be a
  /// multiple of kRuns.
  int64_t kRuns = 1;
  /// With tmaWeights (not multicast): as the producer issues a pair's K step
  /// kt, it also brings the weight boxes of step kt + l2PrefetchSteps of
  /// the same pair into L2 (cp.async.bulk.prefetch.tensor), so that more
  /// weight bytes are in flight from DRAM than the shared-memory stages
  /// hold (0: none).
  int64_t l2PrefetchSteps = 0;
  /// The wgmma kernels' bf16 rows (not dense, not scatter) stored 16 bytes
  /// a thread, the threads of a row swapping their columns by shuffles,
  /// where a pair's arithmetic is cheap (wgmmaWideStores).
  bool wideStores = false;
  /// One matrix (w [1, K, N]) over all rows of x, f32 out [R, N] stored
  /// (the router's logits); arguments (x, w, out), grid (ceil(N / 128),
  /// ceil(R / tileM), 1).
  bool dense = false;
  /// Dense, or scatter in the grid form (not persistent): grid z splits K
  /// into equal runs of K steps, and out (zeroed first) is accumulated by
  /// f32 atomics (few row tiles, as the router's logits or a shared
  /// expert's down projection at few tokens, then still fill the GPU).
  bool splitK = false;
  Activation activation = Activation::silu;
  /// Rows per block (64 or 128) and cp.async stages (2 to 4; static shared
  /// memory, which ptxas allows up to 227 KB on sm_90: 56 KB for 64-row pair
  /// tiles of 4 stages, 76 KB at 128 rows).
  int64_t tileM = kMmaTileM;
  int64_t stages = 2;
  /// Warps per block, in a 2 x (warps/2) grid: 8 (warp tiles of tileM/2 x
  /// 32 columns) or 4 (tileM/2 x 64: twice the mma per fragment load).
  int64_t warps = 8;
};

/// Adds the tensor-core grouped GEMM `name` (mma.sync m16n8k16, bf16 in, f32
/// accumulate). Arguments: (x [R, K] bf16, w [E, K, N] bf16, out, tileExpert
/// [TT] i32, tileRow [TT] i32, offsets [E+1] i32, rowToken [Nrows] i32,
/// [rowWeight [Nrows] f32 with scatter], [w2 with pair]); out is bf16
/// [Nrows, N] (f32 [T, N] with scatter, accumulated: zero it first). Launch
/// with grid (N / mmaColumnsPerMatrix, TT, 1) and kMmaThreads threads; K
/// must be a multiple of kMmaTileK and N of kMmaTileN.
gpu::GPUFuncOp buildGroupedMmaKernel(OpBuilder &builder, Location loc,
                                     gpu::GPUModuleOp module, StringRef name,
                                     const MmaOptions &options);
std::string mmaKernelName(const MmaOptions &options);
/// The K steps of this block of a kernel of `options`: all `steps`, or with
/// splitK the run of grid z (runs of ceil(steps / grid z); the last ones
/// may be short or empty).
struct KSteps {
  Value first, count;
};
KSteps blockKSteps(OpBuilder &b, Location loc, const MmaOptions &options,
                   Value steps);
/// K splits for a dense GEMM of `blocks` blocks and `steps` K steps: none
/// where the blocks fill half the SMs, else about two blocks an SM, at
/// least two K steps each.
int64_t planSplitK(int64_t blocks, int64_t steps);
/// Weight columns of each matrix one block of the kernel covers.
int64_t mmaColumnsPerMatrix(const MmaOptions &options);

/// The Hopper path of the grouped GEMM (sm_90a): warpgroup MMAs
/// (wgmma.mma_async) with both operands in 128-byte-swizzled shared memory.
/// Blocks of two warpgroups over kWgmmaTileM rows and `columns` weight
/// columns (half per matrix for pairs), K steps of kWgmmaTileK, `stages`
/// buffers in dynamic shared memory.
constexpr int64_t kWgmmaTileM = 128, kWgmmaTileK = 64, kWgmmaThreads = 256;
/// The producer warpgroup of MmaOptions::producer, after the MMA ones.
constexpr int64_t kWgmmaProducerThreads = 128;
/// Rows an expert gets on average (tokens x top-k / experts) from which the
/// producer's weights of an ungated layer come by TMA
/// (MmaOptions::tmaWeights) by default: four row tiles. (Gated layers take
/// TMA at any rows.)
constexpr int64_t kTmaMinRowsPerExpert = 4 * kWgmmaTileM;
/// Threads a block of the wgmma kernel of `o` has.
int64_t wgmmaBlockThreads(const MmaOptions &o);
/// Dynamic shared memory one block may have on sm_90 (227 KB).
constexpr int64_t kWgmmaMaxSharedBytes = 227 * 1024;
/// Rows of the tall wgmma tile (WgmmaTile::rows), and the registers its
/// producer warpgroup gives up for its MMA warpgroups (setmaxnreg; 168 a
/// thread at entry with 384 threads and one block an SM): the MMA threads
/// hold 192 f32 accumulators.
constexpr int64_t kWgmmaTallRows = 192;
/// Rows an expert from which the planner stores the wgmma kernels' bf16
/// rows 16 bytes a thread (MmaOptions::wideStores).
constexpr int64_t kWgmmaWideStoreRows = 64;
constexpr int64_t kWgmmaTallProducerRegs = 56, kWgmmaTallMmaRegs = 224;
struct WgmmaTile {
  int64_t columns = 256; // 128 or 256
  int64_t stages = 4;    // 3 or more, as shared memory allows
  /// Rows of a tile: kWgmmaTileM (each MMA warpgroup 64 of them, all
  /// columns), or 64 (both warpgroups on the same 64 rows, each half of
  /// each matrix's columns: fewer padded rows where experts get few rows,
  /// at more shared-memory bytes per MMA; 0.71-0.99x the time of the other
  /// paths at 1.2-16 rows an expert where the SMs have work, 1.02-1.30x
  /// that of 128 rows from 64).
  /// 64 needs an even count of 64-column atoms a matrix, and no multicast.
  /// kWgmmaTallRows (192; the producer form only): each MMA warpgroup
  /// its 64 rows of all columns plus half the columns of the last 64 rows
  /// (0.78x the shared-memory bytes per MMA of 128 rows).
  int64_t rows = kWgmmaTileM;
  /// Rows from one of an expert's tiles to the next (0: `rows`). With
  /// 192-row tiles, kWgmmaTileM: an expert's rows in tiles of 128 until at
  /// most 192 are left, which are its last tile (the band multiplied only
  /// there, and only past 128 rows): an expert's rows padded to a multiple
  /// of 64 where its last 128 are at most 64 past a multiple of 128.
  int64_t step = 0;
  /// The rows between an expert's tiles.
  int64_t tileStep() const { return step ? step : rows; }
};
/// Why `t` cannot be built (empty when it can).
std::string whyNotWgmma(const WgmmaTile &t);
/// Whether `act` is cheap enough for the wgmma epilogue to apply it to 4
/// pairs at once (silu, relu; with gelu's erf or tanh ds-moe-128's up kernel
/// spilled 228-1988 bytes, 0-16 with a pair at a time, and its layer took
/// 1.02-1.15x the time on an H100).
bool wgmmaCheapActivation(Activation act);
/// Whether a wgmma kernel of `o` stores its bf16 rows 16 bytes a thread:
/// MmaOptions::wideStores, bf16 rows (neither dense nor scatter), and a
/// pair's arithmetic cheap (weighted rows, or wgmmaCheapActivation).
bool wgmmaWideStores(const MmaOptions &o);
/// Why the options `t` cannot be built, where rows 0 leaves the rows to the
/// planner (kWgmmaTileM, or 64 per layer where whyNotWgmma allows it).
std::string whyNotWgmmaOptions(const WgmmaTile &t);
/// The most rows a group of tiles (MmaOptions::groupTiles) takes: about
/// half the H200's 50 MiB L2. (Groups this large do not keep their rows in
/// L2 by themselves while the weights stream past: planWgmmaGroup also
/// caps a group at a wave of the grid.)
constexpr int64_t kWgmmaGroupRowBytes = int64_t(24) << 20;
/// The weight bytes a group of tiles brings into L2 between a tile's column
/// blocks, at most (planWgmmaGroup). 4 MiB (the up kernel's groups of 2 at
/// DeepSeek-V3 8192 tokens) left Mixtral's 1024-token up kernel groups of 4
/// and 1.02-1.04x the time of 2; at 2 MiB the up kernels of Mixtral 8192
/// (groups of 16 instead of 24) and qwen3 8192 (6 instead of 12) took
/// 0.993-0.995x and 0.987-1.001x their time (two rounds each; Nsight
/// Compute, H100, base clocks;
/// results/kernel-sol-groups-1024-h100-2026-12-06.md).
constexpr int64_t kWgmmaGroupLagBytes = int64_t(2) << 20;
/// The wgmma_group_tiles value that asks for each expert's tiles as a
/// group (MmaOptions::expertGroups).
constexpr int64_t kExpertGroupsAsked = -2;
/// Shared slots of the pair counter's values (MmaOptions::queue): the
/// producer runs at most stages + 2 pairs ahead of the MMA warpgroups, so
/// the queue takes tiles of up to kWgmmaQueueRing - 3 stages.
constexpr int64_t kWgmmaQueueRing = 8;
/// Tiles a group of kWgmmaGroupRowBytes holds at K (bf16 rows of
/// kWgmmaTileM), at least 1.
int64_t planWgmmaGroupTiles(int64_t k);
/// The planner's MmaOptions::groupTiles for a kernel over K with
/// `colBlocks` column blocks and tiles of `tileM` rows, where experts get
/// `rowsPerExpert` rows on average: planWgmmaGroupTiles (scaled to tileM),
/// but at most the tiles whose pairs one wave of kPlanSms blocks covers,
/// so that the blocks reading a tile's rows run together (larger groups
/// re-read the rows from DRAM per column block); and at least twice the
/// tiles an expert gets, so that an expert's tiles meet on its weight
/// blocks (results/wgmma-groups-2026-12-03.md). At least 1. With
/// `blockColumns` (> 0) where experts get two or more tiles, also at most
/// the tiles whose share of their experts' weight blocks (blockColumns
/// columns over K) comes to kWgmmaGroupLagBytes, but at least an expert's
/// tiles: the pairs a tile's column blocks are apart then bring about that
/// much into L2 in between (results/wgmma-group-lag-2026-12-05.md).
int64_t planWgmmaGroup(int64_t k, int64_t tileM, int64_t colBlocks,
                       double rowsPerExpert, int64_t blockColumns);
/// The dynamic shared memory a block of `t` needs (launch with it).
int64_t wgmmaSharedBytes(const WgmmaTile &t);
int64_t wgmmaColumnsPerMatrix(const MmaOptions &o, const WgmmaTile &t);
std::string wgmmaKernelName(const MmaOptions &o, const WgmmaTile &t);
/// Adds the wgmma grouped GEMM `name`: the arguments and epilogues of
/// buildGroupedMmaKernel (gatherRows, pair, scatter, activation or dense of
/// `o`). Launch with grid (TT tiles (dense: ceil(R / kWgmmaTileM)),
/// ceil(N / wgmmaColumnsPerMatrix), 1),
/// kWgmmaThreads threads and wgmmaSharedBytes(t) bytes of dynamic shared
/// memory; K must be a multiple of kWgmmaTileK and N of 8.
gpu::GPUFuncOp buildGroupedWgmmaKernel(OpBuilder &builder, Location loc,
                                       gpu::GPUModuleOp module, StringRef name,
                                       const MmaOptions &o, const WgmmaTile &t);

/// Pieces both tensor-core expert kernels share. Their argument types:
/// (x, w, out, tileExpert, tileRow, offsets, rowToken[, rowWeight][, w2]);
/// dense: (x, w, out).
SmallVector<Type> groupedGemmArgTypes(OpBuilder &b, const MmaOptions &o);
/// The arguments of a kernel made with groupedGemmArgTypes.
struct GroupedGemmArgs {
  Value x, out, tileExpert, tileRow, offsets, rowToken, rowWeight;
  SmallVector<Value, 2> w; // W (and W2 for pairs)
  SmallVector<Value, 2> wMaps; // with tmaWeights: their tensor maps (i64)
  Value queue;                 // with queue: the pair counter
};
GroupedGemmArgs groupedGemmArgs(Block &entry, const MmaOptions &o);
/// The rows of tile `tile` (`tileM` rows): its expert and slots [begin,
/// end). For a grouped kernel, builds `if (tileExpert[tile] >= 0)` and
/// leaves the builder inside it; dense tiles are rows tile * tileM ... of x.
struct TileRows {
  Value expert, begin, end;
};
TileRows groupedGemmTileRows(OpBuilder &b, Location loc, const MmaOptions &o,
                             const GroupedGemmArgs &args, Value tile,
                             int64_t tileM);
/// A 16-byte copy's source: the row of x for tile row `row` (gathered by
/// token with gatherRows; the first row past the tile's end) and its byte
/// count (8 elements, or 0 to zero-fill past the end); or, for a weight
/// column `col`, the column (0 past N) and count.
struct CopySource {
  Value index, count;
};
CopySource rowSource(OpBuilder &b, Location loc, const MmaOptions &o,
                     const GroupedGemmArgs &args, const TileRows &rows,
                     Value row);
CopySource columnSource(OpBuilder &b, Location loc, Value col, Value n);

/// The epilogue both tensor-core expert kernels share. A row of the tile:
/// its slot in expert-major order and, with `scatter`, the token it adds to
/// and its combine weight.
struct AccumulatorRow {
  Value slot, token, scale;
};
AccumulatorRow loadAccumulatorRow(OpBuilder &b, Location loc,
                                  const MmaOptions &o,
                                  const GroupedGemmArgs &args, Value slot);
/// Stores columns c = `col + colOffset` and c + 1 (skipped from N on; a null
/// N: not checked) of `row` from the f32 accumulators `h` (and the gate's,
/// `gate`, for pairs), as `o` says: bf16(act(gate) * h) or bf16(act(h)); f32
/// as they are (dense); or out[token] += scale * h with atomics (scatter).
/// A row's stores pass one `col` and constant offsets (see
/// atomicAddF32Vector).
void storeAccumulatorPair(OpBuilder &b, Location loc, const MmaOptions &o,
                          Value out, const AccumulatorRow &row, Value col,
                          Value N, ArrayRef<Value> h, ArrayRef<Value> gate,
                          int64_t colOffset = 0);
/// bf16(act(gate) * h), bf16(act(h)) or bf16(scale * h) of a pair of
/// columns, as storeAccumulatorPair stores them where `o` is neither dense
/// nor scatter: a vector<2xbf16>.
Value accumulatorPairBf16(OpBuilder &b, Location loc, const MmaOptions &o,
                          const AccumulatorRow &row, ArrayRef<Value> h,
                          ArrayRef<Value> gate);
/// One column `col` of `row` (not checked against N) from the f32
/// accumulator `h` (and the gate's, `gate`, for pairs; else null), as
/// storeAccumulatorPair stores pairs where `o` is not dense: a bf16 store,
/// or with scatter an f32 atomic add of scale * h.
void storeAccumulatorElement(OpBuilder &b, Location loc, const MmaOptions &o,
                             Value out, const AccumulatorRow &row, Value col,
                             Value h, Value gate);

/// Builds an epilogue's stores twice: `stores(Value())` (no column checks)
/// where `whole` (the block's columns all below N), else `stores(n)`.
void buildColumnChecked(OpBuilder &b, Location loc, Value whole, Value n,
                        function_ref<void(Value)> stores);

/// Why `layer` cannot run as one fused GPU layer (empty when it can): the
/// fused path takes bf16 layers with static shapes, dropless routing or a
/// capacity with drop policy `position`, group limits, shared experts and
/// the PR-MoE MLP (further expert stages), E <= kRouteThreads, top_k <= 32
/// and sizes divisible by 8.
std::string whyNotGpuLayer(LayerOp layer);

/// The capacity that `layer`'s routing can drop at (moe.layer's
/// `max(min_capacity, ceil(capacity_factor * T * top_k / E))`, computed as
/// the CPU lowering does), or none where it is dropless or the capacity
/// keeps every assignment (at least T).
std::optional<int64_t> gpuLayerCapacity(LayerOp layer);

/// The sum over ranks that a fused GPU layer takes into its kernel chain
/// (moe-partition's all-reduce of its partial output): the layer's only
/// user, a sum of the same type; null when there is none.
shard::AllReduceOp gpuLayerSum(LayerOp layer);

/// The kernel names -moe-gpu-add-expert-kernels uses.
std::string expertActivationKernelName(Activation act, bool gated);

} // namespace mlir::moe

#endif // MOE_TARGET_CUDA_EXPERTKERNELS_H
