//===- DenseKernels.h - GPU kernels of the dense transformer parts -*- C++ -*-===//
//
// Part of moe-compiler. Builders for the gpu.func kernels of a whole model's
// dense parts (moe.embedding, moe.rms_norm, moe.attention, residual adds and
// the rounding of projections); the projections themselves use the dense
// GEMV and tensor-core kernels of ExpertKernels.h. Every kernel computes in
// f32 and rounds where the CPU lowering (DenseToLinalg.cpp) rounds, so the
// two targets agree up to the order of f32 sums.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TARGET_CUDA_DENSEKERNELS_H
#define MOE_TARGET_CUDA_DENSEKERNELS_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"

#include <string>

namespace mlir::moe {

class EmbeddingOp;

/// Threads of a block of the decoding attention kernel (by default).
constexpr int64_t kAttentionThreads = 128;

/// Threads of the RMSNorm kernel (one block per row) for rows of `cols`
/// elements: about 4 per thread, 32 to 1024 (a decoding step's single row
/// is latency-bound: few sequential loads per thread).
inline int64_t normThreads(int64_t cols) {
  int64_t t = 32;
  while (t < 1024 && t * 4 < cols)
    t *= 2;
  return t;
}

/// `out[t, :] = table[ids[t], :]` (zero rows for ids outside the table).
/// Arguments (out [T, d], ids i32 [T], table [V, d]); one thread per
/// output element. With `learnedPositions`, the ids are those of learned
/// position embeddings: arguments (out, positions i32 [B], table, T:
/// index), row s T + t taking row positions[s] + t of the table.
gpu::GPUFuncOp buildEmbeddingKernel(OpBuilder &b, Location loc,
                                    gpu::GPUModuleOp module, StringRef name,
                                    Type elementType,
                                    bool learnedPositions = false);

/// `out = round(a + b)` in f32. Arguments (a, b, out), all [R, C]; one
/// thread per element.
gpu::GPUFuncOp buildAddKernel(OpBuilder &b, Location loc,
                              gpu::GPUModuleOp module, StringRef name,
                              Type elementType);

/// `out[r, c] = round(acc[r, c] + bias[c])` for f32 `acc` (a projection's
/// sum). Arguments (acc f32 [R, C], bias [C], out [R, C]).
gpu::GPUFuncOp buildRoundBiasKernel(OpBuilder &b, Location loc,
                                    gpu::GPUModuleOp module, StringRef name,
                                    Type elementType);

/// RMSNorm of each row with moe.rms_norm's rounding. Arguments (x [R, C],
/// weight [C], out [R, C], epsilon: f32); grid R blocks of `threads`.
gpu::GPUFuncOp buildRmsNormKernel(OpBuilder &b, Location loc,
                                  gpu::GPUModuleOp module, StringRef name,
                                  Type elementType, int64_t threads);

/// LayerNorm of each row with moe.layer_norm's numerics (f32, two passes,
/// rounded once). Arguments (x [R, C], weight [C], [bias [C],] out [R, C],
/// epsilon: f32); grid R blocks of `threads`.
gpu::GPUFuncOp buildLayerNormKernel(OpBuilder &b, Location loc,
                                    gpu::GPUModuleOp module, StringRef name,
                                    Type elementType, int64_t threads,
                                    bool bias);

/// Rotary embedding (the rotate_half form, as moe.attention computes it) of
/// heads of width `invFreq.size() * 2`; the inverse frequencies are
/// constants of the kernel, cos and sin are scaled by `factor` before
/// rounding. A step of B sequences of T rows (B may be 1), each at its own
/// position in the device array `positions` i32 [B]: source row
/// r = b*T + t at position positions[b] + t, written to destination row
/// b*dstRows + t, plus positions[b] when `atPosition` is 1 (a cache).
/// Arguments (src [B*T, n*w], dst, positions, T: index, dstRows: index,
/// atPosition: index).
gpu::GPUFuncOp buildBatchedRopeKernel(OpBuilder &b, Location loc,
                                      gpu::GPUModuleOp module, StringRef name,
                                      Type elementType, ArrayRef<float> invFreq,
                                      double factor);

/// `dst[b*S + positions[b] + t, c] = src[b*T + t, c]`. Arguments (src
/// [B*T, C], dst [B*S, C], positions i32 [B], T: index, S: index).
gpu::GPUFuncOp buildBatchedStoreRowsKernel(OpBuilder &b, Location loc,
                                           gpu::GPUModuleOp module,
                                           StringRef name, Type elementType);

/// The sizes the attention kernel specializes on.
struct AttentionKernelOptions {
  int64_t headDim = 0;  // query / key width per head
  int64_t valueDim = 0; // value width per head
  int64_t maxRows = 0;  // cache rows S (the scores of a row live in shared memory)
  int64_t group = 1;    // query heads per key/value head
  float scale = 1.0f;   // softmax scale
  int64_t split = 1;    // blocks splitting the keys (a cluster, or partials)
  bool partials = false; // the split's blocks hand partial sums to the merge
  int64_t heads = 1;    // query heads of one kv head a block takes together
  int64_t unroll = 4;   // key rows a lane loads at once
  int64_t threads = kAttentionThreads; // a block's threads (128, 256, 512)
};

/// Causal attention of decoding steps, as moe.attention rounds it: scores
/// rounded, times the scale rounded, softmax in f32 rounded, p v in f32
/// rounded. Each item, `options.heads` query heads of one kv head at one
/// query row t of sequence b, is taken by a cluster of `options.split`
/// blocks of `options.threads` threads, block `rank` of it taking the
/// rank-th of `split` runs of the item's keys: each key and value row is
/// read once for the item's heads, `options.unroll` rows a lane at once.
/// The softmax's maximum and sum and the p v sums meet through distributed
/// shared memory. Launch: grid (items * split) in clusters of (split, 1, 1)
/// (no cluster for 1), attentionDynamicSharedBytes of dynamic shared
/// memory; clusters take items by the grid's size, so any grid is correct.
/// With `options.partials` (splits past a cluster: the split's blocks need
/// not run at once) there is no cluster: each block writes its keys' p v
/// sums, softmax maximum and sum of exponentials (relative to its own
/// maximum) into the extra argument `work` (f32, items * split *
/// attentionPartialFloats), and buildAttentionMergeKernel finishes the
/// item (FlashDecoding's split; the probabilities are rounded to bf16
/// relative to the block's maximum, not the item's, and divided by the sum
/// after p v).
/// Arguments (q [B*T, H*hd], keys [B*S, KV*hd], values [B*S, KV*dv], out
/// [B*T, H*dv], positions i32 [B], T: index, S: index): row t of sequence
/// b attends to its cache rows b*S + 0 .. positions[b] + t. The positions
/// are read on the device, so a step's launches do not depend on where it
/// is (a CUDA graph replays it). bf16 only.
gpu::GPUFuncOp buildAttentionKernel(OpBuilder &b, Location loc,
                                    gpu::GPUModuleOp module, StringRef name,
                                    const AttentionKernelOptions &options);

/// Floats of one block's entry in the attention kernel's `work` (with
/// partials): heads * valueDim sums, heads maxima, heads sums.
int64_t attentionPartialFloats(const AttentionKernelOptions &options);
/// The end of a split attention with partials: block (item, g) of a grid of
/// items * heads rescales the split's p v sums of head g to the item's
/// maximum, divides by the rescaled sum of exponentials and writes the
/// bf16 output row. Arguments (work f32, out [B*T, H*dv], T: index). A
/// thread takes a column, loading kAttentionMergeLoads blocks' sums at once.
constexpr int64_t kAttentionMergeThreads = 128, kAttentionMergeLoads = 8;
gpu::GPUFuncOp buildAttentionMergeKernel(OpBuilder &b, Location loc,
                                         gpu::GPUModuleOp module,
                                         StringRef name,
                                         const AttentionKernelOptions &options);

/// Causal attention on tensor cores for steps of many rows per sequence
/// (FlashAttention-2's online softmax; FlashAttentionKernel.cpp): a block of
/// kFlashWarps warps per kFlashRows query rows of one head, keys in blocks
/// of kFlashKeys. Grid (ceil(T / kFlashRows), H, B); the arguments of
/// buildAttentionKernel (same `options`, maxRows unused). bf16 only.
constexpr int64_t kFlashWarps = 4, kFlashRows = 64, kFlashKeys = 64;
/// Value heads (and so heads where query and value sizes agree) up to
/// kFlashMaxHeadDim, query/key heads up to kFlashMaxKeyDim (DeepSeek's
/// latent attention: 192 and 128), both multiples of 16.
constexpr int64_t kFlashMaxHeadDim = 128, kFlashMaxKeyDim = 192;
/// From this many query rows per sequence, attention takes the tensor-core
/// kernel (below, the decoding kernel).
constexpr int64_t kFlashMinRows = 16;
gpu::GPUFuncOp buildFlashAttentionKernel(OpBuilder &b, Location loc,
                                         gpu::GPUModuleOp module,
                                         StringRef name,
                                         const AttentionKernelOptions &options);
/// Why the tensor-core kernel cannot take `options` (empty when it can).
std::string whyNotFlashAttention(const AttentionKernelOptions &options);
/// Whether a step of `rowsPerSequence` query rows takes the tensor-core
/// kernel.
inline bool usesFlashAttention(const AttentionKernelOptions &options,
                               int64_t rowsPerSequence) {
  return rowsPerSequence >= kFlashMinRows &&
         whyNotFlashAttention(options).empty();
}

/// Whether `kind` names a choice of the decoding attention's kernel
/// (--gpu-attention-kernel, the pass option attention-kernel): auto, mma
/// (buildAttentionMmaKernel) or cores (buildAttentionKernel).
inline bool isAttentionKernelKind(StringRef kind) {
  return kind == "auto" || kind == "mma" || kind == "cores";
}

/// One item of a decoding attention kernel (G query heads h0 .. h0 + G - 1
/// of kv head kvHead at query row t of sequence seq; item = (seq * H / G +
/// h0 / G) * T + t) and block `rank` of its S: keys lo .. lo + n of the
/// item's 0 .. rows (n at most `chunkMax` where non-zero), at cache rows
/// from keyBase (cacheBase = seq * cacheRows); qRow its query row.
struct AttentionItem {
  Value item, rank, t, h0, seq, qRow, rows, lo, n, cacheBase, keyBase, kvHead;
};
/// The blocks' walk over the items of a decoding attention kernel (S blocks
/// an item, the items taken in turn by the grid's size; arguments `out`,
/// `positions`, `tokens` and `cacheRows` as buildAttentionKernel's): builds
/// the loop and leaves `b` at the start of its body, where the returned
/// item is this iteration's.
AttentionItem attentionItemLoop(OpBuilder &b, Location loc, Value out,
                                Value positions, Value tokens, Value cacheRows,
                                int64_t valueDim, int64_t G, int64_t S,
                                int64_t group, int64_t chunkMax = 0);

/// Decoding attention on tensor cores (FlashDecoding with the query heads
/// of a kv head as the rows of one mma): a block of kFlashWarps warps takes
/// `options.heads` (G, up to kAttentionMmaRows) query heads of one kv head
/// at one query row and walks its keys in tiles of kFlashKeys rows (cp.async
/// into shared memory, the next tile in flight during this one's softmax
/// and P V), warp w taking keys 16 w .. 16 w + 15 of each tile: S = Q K^T
/// and O += P V by mma.sync m16n8k16 (bf16 in, f32 accumulate) with an
/// online softmax a warp; the warps' rows then meet in shared memory. Its
/// rounding is FlashAttention's (scores in f32, the unnormalised
/// probabilities rounded to bf16), not moe.attention's eager order. With
/// `options.split` > 1 the item's keys are split over that many blocks,
/// which hand partial sums to buildAttentionMergeKernel (`options.partials`
/// must be set; entries as the CUDA-core kernel's). Arguments and grid as
/// buildAttentionKernel's (no cluster, no dynamic shared memory).
constexpr int64_t kAttentionMmaRows = 16, kAttentionMmaSharedLimit = 48 * 1024;
/// --gpu-attention-kernel=auto takes this kernel where it can and a block
/// gets at least kAttentionMmaMinHeads query heads (on an H100, 1.16-1.54x
/// the CUDA-core kernel at 2-8 heads a block; 0.975x at latent attention's
/// one head a block: `attention-decode-mma-h100-2026-12-07.md`).
constexpr int64_t kAttentionMmaMinHeads = 2;
gpu::GPUFuncOp buildAttentionMmaKernel(OpBuilder &b, Location loc,
                                       gpu::GPUModuleOp module, StringRef name,
                                       const AttentionKernelOptions &options);
/// Why buildAttentionMmaKernel cannot take `options` ("" where it can).
std::string whyNotAttentionMma(const AttentionKernelOptions &options);
/// Its static shared memory: a key tile, a value tile, the warps' row
/// statistics.
int64_t attentionMmaSharedBytes(const AttentionKernelOptions &options);
/// The tensor-core decoding attention's plan for T query rows a sequence,
/// H heads, B sequences: the most heads a block (a divisor of the group up
/// to kAttentionMmaRows), no split where the items give two blocks an SM,
/// else partial sums over the smallest power of two of blocks giving that
/// on 15/16 of the SMs while keeping kAttentionMinPartialKeys keys a block
/// (none where the keys are too few). `heads` and `split` (non-zero)
/// instead.
AttentionKernelOptions planAttentionMma(AttentionKernelOptions options,
                                        int64_t T, int64_t H, int64_t B,
                                        int64_t heads = 0, int64_t split = 0);

/// `out[r, c] = src[r, (c / width) * stride + offset + c % width]`: heads'
/// column ranges gathered into a contiguous buffer. Arguments (out [R, C],
/// src [R, *], width, stride, offset: index).
gpu::GPUFuncOp buildGatherColumnsKernel(OpBuilder &b, Location loc,
                                        gpu::GPUModuleOp module, StringRef name,
                                        Type elementType);

/// The queries or keys of multi-head latent attention, heads of
/// [nope | rope] (rope = 2 * invFreq.size()): `out[r, h * w + i]` (w = nope +
/// rope) is `nopeSrc[r, h * nopeStride + i]` for i < nope, else element
/// i - nope of the rotary embedding (moe.mla_attention's, `interleaved` or
/// not) of the rope-wide vector at `ropeSrc[r, h * ropeStride +
/// ropeOffset ..]` (ropeStride 0: one vector shared by all heads) at row
/// r's position (sequence r / T at positions[r / T] + r % T). Arguments
/// (out [R, H * w], nopeSrc, ropeSrc, positions i32 [B], nopeStride,
/// ropeStride, ropeOffset, T: index).
gpu::GPUFuncOp buildMlaHeadsKernel(OpBuilder &b, Location loc,
                                   gpu::GPUModuleOp module, StringRef name,
                                   Type elementType, int64_t nope,
                                   ArrayRef<float> invFreq, double factor,
                                   bool interleaved);

/// Shared memory the attention kernel needs (bytes: static and dynamic),
/// its dynamic part (the scores, then the p v partial sums), and the most
/// the attention kernel takes (two blocks an SM).
int64_t attentionSharedBytes(const AttentionKernelOptions &options);
int64_t attentionDynamicSharedBytes(const AttentionKernelOptions &options);
constexpr int64_t kAttentionSharedLimit = 100 * 1024;
/// Elements of the attention kernel's vector loads (8, 4, 2 or 1: the
/// largest dividing both head sizes).
int64_t attentionVectorWidth(const AttentionKernelOptions &options);
/// The most blocks the attention kernel splits an item's keys over (a
/// portable cluster size), and the fewest keys it gives a block when it
/// splits to fill the GPU.
constexpr int64_t kAttentionMaxSplit = 8, kAttentionMinKeys = 32;
/// The split (options.split) for `items` (items of options.heads query
/// heads): the smallest that fits kAttentionSharedLimit and gives two
/// blocks an SM, unless blocks would get fewer than kAttentionMinKeys of
/// the cache's rows; 0 where even kAttentionMaxSplit blocks cannot hold
/// the scores.
int64_t attentionSplit(AttentionKernelOptions options, int64_t items);
/// Splits past a cluster (partials): up to kAttentionMaxPartialSplit
/// blocks an item, at least kAttentionMinPartialKeys keys a block where it
/// splits to fill the GPU (each adds an entry the merge kernel reads).
constexpr int64_t kAttentionMaxPartialSplit = 1024,
                  kAttentionMinPartialKeys = 128;
/// The split with partials for `items`: the smallest past
/// kAttentionMaxSplit that fits kAttentionSharedLimit and gives two blocks
/// an SM (on 15/16 of the SMs), else the largest that leaves blocks
/// kAttentionMinPartialKeys rows; 0 where none does (short caches).
int64_t attentionPartialSplit(AttentionKernelOptions options, int64_t items);
/// The most query heads a block of the attention kernel takes by default
/// (its scores and p v run on the CUDA cores: each head adds two f32
/// operations a key element) and the most key rows a lane loads at once.
constexpr int64_t kAttentionMaxHeads = 4, kAttentionMaxUnroll = 16;
/// The attention kernel's plan for T query rows a sequence, H heads, B
/// sequences: `options` with heads, split and unroll chosen. For G heads a
/// block: no split where the items give two blocks an SM, else partials
/// (attentionPartialSplit) where they give at least one, else a cluster
/// split (attentionSplit) where it gives two.
/// Query heads a block: the most (a divisor of the group, up to
/// kAttentionMaxHeads) that fill the GPU so, else one (then the split of
/// more blocks); `heads` (when non-zero) instead, which must divide the
/// group. Rows in flight: 16 for one or two heads, 8 for up to 4, then 4
/// (its registers); `unroll` (1-16, when non-zero) instead. Threads a
/// block: kAttentionThreads (twice that where a key row takes a whole
/// warp's lanes), or `threads` (128, 256 or 512) when non-zero. `split`
/// (when non-zero): that split, in a cluster up to kAttentionMaxSplit,
/// else with partials. Fails (split 0) where no split fits the cache.
AttentionKernelOptions planAttention(AttentionKernelOptions options, int64_t T,
                                     int64_t H, int64_t B, int64_t heads = 0,
                                     int64_t unroll = 0, int64_t threads = 0,
                                     int64_t split = 0);
/// The most cache rows per sequence the attention kernel takes (one head a
/// block, kAttentionMaxPartialSplit blocks).
int64_t attentionMaxRows(const AttentionKernelOptions &options);

//===----------------------------------------------------------------------===//
// Which dense parts run on the GPU (shared by -convert-moe-dense-to-gpu-call
// and the model entry, which keeps their buffers on the device)
//===----------------------------------------------------------------------===//

/// Why `op` cannot run on the GPU as a dense part of a model (empty when it
/// can): bf16 moe.embedding, moe.rms_norm and moe.attention with static
/// shapes and sizes the kernels take, a residual add (isResidualAdd) and a
/// projection rounded to bf16 (gpuMatmulOf). Any other op: non-empty.
std::string whyNotGpuDense(Operation *op);

/// Whether `op` is a bf16 residual add: a linalg.generic of two [T, d] bf16
/// inputs and identity maps computing truncf(extf(a) + extf(b)).
bool isResidualAdd(linalg::GenericOp op);

/// The rounding of a bf16 projection: for `round` =
/// truncf(linalg.matmul(a, w) over a zero f32 fill), a, w bf16, the matmul
/// (null when `round` is no such rounding).
linalg::MatmulOp gpuMatmulOf(linalg::GenericOp round);

/// The positions [B] (i32) where the ids of `emb` are those of learned
/// position embeddings (row s T + t at position[s] + t, as the importer
/// computes them for GPT), else null: the GPU computes such ids itself.
Value learnedPositionsOf(EmbeddingOp emb);

/// Whether `use` is an operand that a dense part run on the GPU reads (its
/// weights, caches and activations), where the entry may hand over a device
/// buffer. The position and the token ids are read on the host: false.
bool isGpuDenseOperand(OpOperand &use);

} // namespace mlir::moe

#endif // MOE_TARGET_CUDA_DENSEKERNELS_H
