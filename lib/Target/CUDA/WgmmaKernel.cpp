//===- WgmmaKernel.cpp - Grouped expert GEMM on Hopper's wgmma ------------===//
//
// Part of moe-compiler.
//
// The Hopper (sm_90a) form of the tensor-core expert path: the same tiles
// of the routing kernel's table, arguments and epilogues as the mma.sync
// kernel (MmaKernel.cpp), but the products are warpgroup MMAs
// (wgmma.mma_async m64nNk16, bf16 in, f32 accumulate) that read both
// operands from shared memory through matrix descriptors.
//
// A block is two warpgroups (256 threads) over kWgmmaTileM = 128 rows of one
// expert (64 each) and `columns` weight columns (for the gated up
// projection, half from W_up and half from W_gate side by side, so one
// wgmma covers both). With WgmmaTile::rows = 64 both warpgroups take the
// same 64 rows and each half of every matrix's columns (m64n128 wgmmas):
// fewer padded rows where experts get few rows. The planner takes them below
// 32 rows an expert (0.71-0.99x the time of the other paths where the SMs
// have work, results/wgmma-small-rows-2026-12-03.md); from 64 rows they are
// 1.02-1.30x slower than 128-row tiles (a K step's time follows the bytes
// of its stage more than its MMAs: results/wgmma-tiles-2026-12-03.md).
// Per K step of kWgmmaTileK = 64:
//  - A (the rows, gathered by token, zero-filled past the expert's rows) is
//    stored K-major, 128 bytes a row, in the 128-byte swizzle: 16-byte chunk
//    c of row r goes to chunk c ^ (r % 8) of its row;
//  - B (weights [K, N], N contiguous) is stored MN-major in atoms of 64
//    columns x K rows, swizzled the same way per K row; the descriptor's
//    leading offset steps from atom to atom along N, its stride offset from
//    8 K rows to the next 8;
//  - copies go global -> shared with cp.async (16 bytes) into `stages`
//    buffers in dynamic shared memory, S - 2 steps ahead of the MMAs; one
//    wgmma group stays in flight while the next step's copies are issued.
// Each iteration: wait for step kt's copies, fence them into the async
// proxy, barrier (also: both warpgroups are done with step kt - 2, whose
// buffer the copies for step kt + S - 2 reuse), issue those copies, then
// the four k16 wgmmas of step kt, commit, and wait until one group is left.
//
// Blocks run over the tiles first (grid x) and the columns second, so the
// tiles of one expert read the same weight columns at about the same time:
// the weights come from HBM once and from L2 for the other tiles.
//
// Two persistent forms take the (live tile, column block) pairs with one
// block an SM: MmaOptions::persistent alone (the same threads copy and
// multiply, the next pair's first copies issued during an epilogue), and
// with MmaOptions::producer (the default for the expert kernels) a third
// warpgroup that only copies. Its stages go to the two MMA warpgroups
// through mbarriers instead of block barriers: `full` (the producer's
// cp.async, tracked by cp.async.mbarrier.arrive.noinc) and `empty` (both
// MMA warpgroups past the stage's wgmma group), so the producer runs up to
// S stages ahead, across pairs and through the MMA warpgroups' epilogues.
// With MmaOptions::tmaWeights the producer's first thread brings the weight
// atoms instead, one TMA box (64 columns x 64 K rows, 128-byte swizzle: the
// atom's layout above) each, tracked by the same `full` mbarrier through
// its expected transaction bytes. With MmaOptions::multicast as well, the
// blocks run in clusters of two over 256-row tiles (one 128-row half each)
// and each leader multicasts half of the weight atoms to both; a stage is
// released to the producers by the MMA warpgroups of both blocks. (Correct,
// but 1.2-2x slower: results/wgmma-multicast-2026-12-02.md.)
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/TensorBuilders.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

namespace {
/// Bytes of one 8-row swizzle atom (8 rows of 128 bytes), which must start
/// on a multiple of its size.
constexpr int64_t kAtomBytes = 1024;
/// Row bytes of an operand tile: kWgmmaTileK bf16, one 128-byte swizzle row.
constexpr int64_t kRowBytes = kWgmmaTileK * 2;
/// A swapped band (MmaOptions::swapBandRows): each sub-band multiplied by
/// kSwapSlices weight atoms a warpgroup.
constexpr int64_t kSwapSlices = 2;
} // namespace

std::string mlir::moe::whyNotWgmma(const WgmmaTile &t) {
  if (t.columns != 128 && t.columns != 256)
    return "wgmma tiles are 128 or 256 columns wide, got " +
           std::to_string(t.columns);
  if (t.rows != 64 && t.rows != kWgmmaTileM && t.rows != kWgmmaTallRows)
    return "wgmma tiles are 64, " + std::to_string(kWgmmaTileM) + " or " +
           std::to_string(kWgmmaTallRows) + " rows high, got " +
           std::to_string(t.rows);
  // (Each warpgroup of a 64-row tile takes half of each matrix's atoms.)
  if ((t.rows == 64 || t.rows == kWgmmaTallRows) && t.columns != 256)
    return std::to_string(t.rows) +
           "-row wgmma tiles are 256 columns wide, got " +
           std::to_string(t.columns);
  if (t.step != 0 && t.step != t.rows &&
      !(t.rows == kWgmmaTallRows && t.step == kWgmmaTileM))
    return "wgmma tiles start " + std::to_string(t.rows) +
           " rows apart (or " + std::to_string(kWgmmaTileM) + " with " +
           std::to_string(kWgmmaTallRows) + "-row tiles), got " +
           std::to_string(t.step);
  if (t.stages < 3 || wgmmaSharedBytes(t) > kWgmmaMaxSharedBytes)
    return std::to_string(t.stages) + " stages of a " +
           std::to_string(t.columns) + "-column tile do not fit: " +
           std::to_string(wgmmaSharedBytes(t)) + " bytes of shared memory (" +
           std::to_string(kWgmmaMaxSharedBytes) + " at most, 3 stages at least)";
  return "";
}

std::string mlir::moe::whyNotWgmmaOptions(const WgmmaTile &t) {
  if (t.rows == 0 && t.step != 0)
    return "a wgmma tile step needs the tiles' rows (" +
           std::to_string(kWgmmaTallRows) + "), got step " +
           std::to_string(t.step) + " with rows chosen per layer";
  if (t.rows != 0)
    return whyNotWgmma(t);
  // Rows chosen per layer: 128 must fit; the planner takes 64 only where
  // whyNotWgmma allows it.
  std::string why = whyNotWgmma({t.columns, t.stages, kWgmmaTileM});
  // Stages that fit only 64-row tiles: say which rows they were sized for
  // and how to ask for the tiles they fit.
  if (!why.empty() && t.stages >= 3 &&
      whyNotWgmma({t.columns, t.stages, 64}).empty())
    why += ", sized for " + std::to_string(kWgmmaTileM) +
           "-row tiles with rows chosen per layer (64-row tiles, "
           "--gpu-wgmma-rows=64, fit them)";
  return why;
}

int64_t mlir::moe::planWgmmaGroupTiles(int64_t k) {
  return std::max<int64_t>(1, kWgmmaGroupRowBytes / (kWgmmaTileM * k * 2));
}

int64_t mlir::moe::planWgmmaGroup(int64_t k, int64_t tileM,
                                  int64_t colBlocks, double rowsPerExpert,
                                  int64_t blockColumns) {
  int64_t rowsCap =
      std::max<int64_t>(1, planWgmmaGroupTiles(k) * kWgmmaTileM / tileM);
  int64_t wave =
      std::max<int64_t>(1, kPlanSms / std::max<int64_t>(1, colBlocks));
  int64_t perExpert = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(rowsPerExpert / double(tileM))));
  int64_t g = std::min(rowsCap, std::max(wave, 2 * perExpert));
  if (perExpert < 2 || blockColumns <= 0)
    return g;
  // Pairs come in order (tiles fastest), so a tile's next column block
  // starts g pairs after its last; meanwhile each pair brings about its
  // share of a weight block into L2.
  int64_t blockBytes = blockColumns * k * 2;
  int64_t lagCap = kWgmmaGroupLagBytes * perExpert / blockBytes;
  return std::min(g, std::max(perExpert, lagCap));
}

int64_t mlir::moe::wgmmaSharedBytes(const WgmmaTile &t) {
  return t.stages * (t.rows + t.columns) * kRowBytes + kAtomBytes;
}

int64_t mlir::moe::wgmmaBlockThreads(const MmaOptions &o) {
  return kWgmmaThreads + (o.producer ? kWgmmaProducerThreads : 0);
}

int64_t mlir::moe::wgmmaColumnsPerMatrix(const MmaOptions &o,
                                         const WgmmaTile &t) {
  return o.pair ? t.columns / 2 : t.columns;
}

bool mlir::moe::wgmmaCheapActivation(Activation act) {
  return act == Activation::silu || act == Activation::relu;
}

bool mlir::moe::wgmmaWideStores(const MmaOptions &o) {
  return o.wideStores && !o.dense && !o.scatter &&
         (o.weighted || wgmmaCheapActivation(o.activation));
}

std::string mlir::moe::wgmmaKernelName(const MmaOptions &o,
                                       const WgmmaTile &t) {
  std::string name =
      o.dense     ? "moe_wgmma_dense_f32"
      : o.scatter ? "moe_wgmma_scatter_bf16"
      : o.weighted ? "moe_wgmma_weighted_bf16"
                : ("moe_wgmma_" + Twine(o.pair ? "pair_" : "plain_") +
                   stringifyActivation(o.activation) + "_bf16")
                      .str();
  return name + (t.rows != kWgmmaTileM ? "_m" + std::to_string(t.rows) : "") +
         (t.tileStep() != t.rows ? "s" + std::to_string(t.tileStep()) : "") +
         "_n" + std::to_string(t.columns) + "_s" + std::to_string(t.stages) +
         (o.groupTiles ? "_g" + std::to_string(o.groupTiles) : "") +
         (o.expertGroups ? "_ge" : "") +
         (o.persistent ? (o.producer ? "_ws" : "_p") : "") +
         (o.tmaWeights ? "_tma" : "") + (o.evictFirst ? "_ef" : "") +
         (o.rotateK ? "_kr" : "") +
         (o.swapBandRows ? "_sw" + std::to_string(o.swapBandRows) : "") +
         (o.multicast ? "_mc2" : "") + (o.queue ? "_q" : "") +
         (wgmmaWideStores(o) ? "_v16" : "") +
         (o.kRuns > 1 ? "_k" + std::to_string(o.kRuns) : "") +
         (o.l2PrefetchSteps ? "_pf" + std::to_string(o.l2PrefetchSteps) : "") +
         (o.splitK ? "_splitk" : "");
}

gpu::GPUFuncOp mlir::moe::buildGroupedWgmmaKernel(OpBuilder &b, Location loc,
                                                  gpu::GPUModuleOp module,
                                                  StringRef name,
                                                  const MmaOptions &o,
                                                  const WgmmaTile &t) {
  assert(whyNotWgmma(t).empty() && "unsupported wgmma tile");
  assert(!(o.persistent && (o.dense || o.splitK)) &&
         "the persistent form takes the grouped kernels' tiles");
  assert((!o.producer || o.persistent) &&
         "the producer warpgroup comes with the persistent form");
  assert((!o.tmaWeights || o.producer) &&
         "the weights come by TMA in the producer form");
  assert((!o.multicast || o.tmaWeights) && "multicast weights come by TMA");
  assert((!o.expertGroups || (o.persistent && !o.multicast)) &&
         "expert groups are for the persistent form's tiles of TM rows");
  assert((!o.l2PrefetchSteps || (o.tmaWeights && !o.multicast)) &&
         "the L2 prefetch takes the weights' tensor maps, without multicast");
  assert((!o.queue || (o.producer && !o.multicast)) &&
         "the pair counter is for the producer form without clusters");
  assert((!o.multicast || (t.columns / (o.pair ? 2 : 1) / 64) % 2 == 0) &&
         "multicast halves each matrix's weight atoms");
  assert(!(o.dense && (o.pair || o.scatter || o.gatherRows)) &&
         "a dense wgmma kernel has one matrix and plain rows");
  assert((t.rows == kWgmmaTileM || !o.multicast) &&
         "multicast clusters take 128-row halves");
  assert((t.rows != kWgmmaTallRows || (o.producer && !o.dense)) &&
         "192-row tiles are for the producer form's expert kernels");
  assert((!o.swapBandRows || t.rows == kWgmmaTallRows) &&
         "the swapped band is a 192-row tile's");
  assert((!o.swapBandRows || o.swapBandRows == 16 || o.swapBandRows == 32) &&
         "a swapped band's sub-bands are 16 or 32 rows");
  assert((o.kRuns == 1 || (o.producer && o.scatter && !o.multicast)) &&
         "K runs are for the producer form's scatter kernels (their atomics "
         "add the runs' sums)");
  OpBuilder::InsertionGuard guard(b);
  MLIRContext *ctx = b.getContext();
  int64_t dyn = ShapedType::kDynamic;
  Type f32 = b.getF32Type(), i64 = b.getI64Type(), bf16 = b.getBF16Type();
  SmallVector<Type> argTypes = groupedGemmArgTypes(b, o);
  auto fn =
      createKernelFunc(b, loc, module, name, argTypes, wgmmaBlockThreads(o));
  // setmaxnreg needs the registers a thread has at entry: one block an SM.
  if (t.rows == kWgmmaTallRows)
    fn->setAttr(NVVM::NVVMDialect::getMinctasmAttrName(),
                b.getI32IntegerAttr(1));

  const int64_t TM = t.rows, TK = kWgmmaTileK, S = t.stages;
  const int64_t numMats = o.pair ? 2 : 1;
  const int64_t TN = wgmmaColumnsPerMatrix(o, t); // columns per matrix
  const int64_t atoms = t.columns / 64, atomsPerMat = TN / 64;
  // A 64-row tile: both warpgroups multiply the same rows, warpgroup w the
  // w-th half of each matrix's columns (TNw of them), so each wgmma is
  // m64n(columns / 2). The B atoms sit in shared memory by warpgroup, then
  // matrix: warpgroup w's are one run (its descriptor's start).
  const bool splitColumns = TM == 64;
  // A 192-row tile: warpgroup w multiplies rows [64 w, 64 w + 64) by all
  // columns (the main accumulators) and the last 64 rows by the w-th half
  // of each matrix's columns (the band: m64n128 wgmmas), 192 accumulators a
  // thread (the MMA warpgroups take the producer's registers).
  const bool tall = TM == kWgmmaTallRows;
  // A swapped band: subBands sub-bands of swapRows rows (the wgmmas' N).
  const bool swapped = o.swapBandRows != 0;
  const int64_t swapRows = o.swapBandRows,
                subBands =
                    swapped ? (kWgmmaTallRows - kWgmmaTileM) / swapRows : 0;
  assert((!tall || atoms == 4) && "a 192-row tile is 256 columns wide");
  const int64_t TNw = splitColumns ? TN / 2 : TN;
  const int64_t wgColumns = splitColumns ? t.columns / 2 : t.columns;
  assert((!splitColumns || atomsPerMat % 2 == 0) &&
         "a 64-row tile halves each matrix's atoms");
  const int64_t aStageBytes = TM * kRowBytes;
  const int64_t bStageBytes = t.columns * kRowBytes;

  Block &entry = fn.getBody().front();
  b.setInsertionPointToStart(&entry);
  GroupedGemmArgs args = groupedGemmArgs(entry, o);
  Value x = args.x;
  ArrayRef<Value> w = args.w;

  IndexOps ops{b, loc};
  auto ci = [&](int64_t v) { return ops.c(v); };
  using P = arith::CmpIPredicate;
  auto icmp = [&](P p, Value l, Value r) { return ops.icmp(p, l, r); };
  auto add = [&](Value l, Value r) { return ops.add(l, r); };
  auto mul = [&](Value l, Value r) { return ops.mul(l, r); };
  auto divu = [&](Value l, int64_t r) { return ops.divu(l, r); };
  auto remu = [&](Value l, int64_t r) { return ops.remu(l, r); };
  auto xorI = [&](Value l, Value r) -> Value {
    return arith::XOrIOp::create(b, loc, l, r);
  };
  // Where atom i of matrix m sits among a stage's atoms (constants fold
  // later).
  auto atomSlot = [&](int64_t m, Value i) -> Value {
    if (!splitColumns)
      return ops.add(ops.c(m * atomsPerMat), i);
    int64_t half = atomsPerMat / 2;
    return ops.add(ops.mul(ops.divu(i, half), ops.c(atoms / 2)),
                   ops.add(ops.c(m * half), ops.remu(i, half)));
  };

  // Dynamic shared memory: A stages, then B stages, from the first multiple
  // of kAtomBytes (the swizzle is a function of the address bits).
  auto wg = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  Value raw = gpu::DynamicSharedMemoryOp::create(
      b, loc,
      MemRefType::get({dyn}, b.getI8Type(), MemRefLayoutAttrInterface(), wg));
  Value rawAddr = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, raw);
  Value pad = remu(arith::SubIOp::create(b, loc, ci(kAtomBytes),
                                         remu(rawAddr, kAtomBytes)),
                   kAtomBytes);
  Value sA = memref::ViewOp::create(
      b, loc, MemRefType::get({S, TM, TK}, bf16, MemRefLayoutAttrInterface(), wg),
      raw, pad, ValueRange{});
  Value bOffset = add(pad, ci(S * aStageBytes));
  Value sB = memref::ViewOp::create(
      b, loc,
      MemRefType::get({S, atoms, TK, 64}, bf16, MemRefLayoutAttrInterface(), wg),
      raw, bOffset, ValueRange{});
  auto toI64 = [&](Value v) -> Value {
    return arith::IndexCastUIOp::create(b, loc, i64, v);
  };
  Value aAddr = toI64(add(rawAddr, pad)), bAddr = toI64(add(rawAddr, bOffset));

  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value K = memref::DimOp::create(b, loc, w[0], 1);
  // Columns past N are zero-filled and not stored.
  Value N = memref::DimOp::create(b, loc, w[0], 2);
  Value cols = ops.divu(ops.add(N, ci(TN - 1)), TN);

  // The 16-byte chunks each copying thread (`thread` of `threads`: all, or
  // the producer warpgroup's) copies per K step, and where they go
  // (swizzled: chunk c of a 128-byte row r lands at chunk c ^ r % 8): A has
  // TM rows x 8 chunks; each B matrix TK rows x TN / 8 chunks. Where they
  // come from depends on the block's (tile, column block): `sources`.
  struct Chunk {
    Value row, col;       // in the shared tile (col swizzled)
    Value srcCol;         // A: chunk column; B: column within the block's
    Value atom;           // B: the 64-column atom
    int64_t matrix = 0;   // B: w[matrix]
  };
  auto swizzle = [&](Value chunk, Value row) {
    return mul(xorI(chunk, remu(row, 8)), ci(8));
  };
  SmallVector<Chunk> aChunks, bChunks;
  // A chunks of rows below kWgmmaTileM come first (a thread's chunk c is
  // rows of c * threads / 8 on): the rest are a tall tile's band.
  int64_t aMainChunks = 0;
  auto makeChunks = [&](Value thread, int64_t threads) {
  aChunks.clear();
  bChunks.clear();
  aMainChunks = std::min<int64_t>(TM, kWgmmaTileM) * (TK / 8) / threads;
  for (int64_t c = 0; c < TM * (TK / 8) / threads; ++c) {
    Value v = add(thread, ci(c * threads));
    Chunk ch;
    ch.row = divu(v, TK / 8);
    Value chunk = remu(v, TK / 8);
    ch.col = swizzle(chunk, ch.row);
    ch.srcCol = mul(chunk, ci(8));
    aChunks.push_back(ch);
  }
  for (int64_t m = 0; !o.tmaWeights && m < numMats; ++m)
    for (int64_t c = 0; c < TK * (TN / 8) / threads; ++c) {
      Value v = add(thread, ci(c * threads));
      Chunk ch;
      ch.matrix = m;
      ch.row = divu(v, TN / 8);
      Value chunk = remu(v, TN / 8); // of this matrix's TN columns
      ch.atom = atomSlot(m, divu(chunk, 8));
      ch.col = swizzle(remu(chunk, 8), ch.row);
      ch.srcCol = mul(chunk, ci(8));
      bChunks.push_back(ch);
    }
  };
  if (!o.producer)
    makeChunks(tid, kWgmmaThreads);
  // A block's work: the rows of one tile (an expert's) and a column block.
  // aSources: the source row and element count of each A chunk.
  struct Work {
    Value expert, begin, end, col0;
    SmallVector<Value> aSources; // index, count, index, count, ...
    /// With kRuns: the first K step of the pair's run (null: 0).
    Value kFirst;
  };
  auto sources = [&](const TileRows &rows, Value col0,
                     Value kFirst = Value()) {
    Work wk{rows.expert, rows.begin, rows.end, col0, {}, kFirst};
    for (const Chunk &ch : aChunks) {
      CopySource src = rowSource(b, loc, o, args, rows, ch.row);
      wk.aSources.append({src.index, src.count});
    }
    return wk;
  };

  // Issues the copies of the K step at k0 of `wk` into `stage`, as one
  // group (zero-filled where `valid` is false: a group all the same), or
  // with `full`, tracked by that mbarrier (one arrival a thread once its
  // copies are done).
  auto issue = [&](Value stage, Value k0, const Work &wk, Value valid,
                   Value full = Value()) {
    SmallVector<Value> tokens;
    auto count = [&](Value c) {
      return valid ? ops.select(valid, c, ci(0)) : c;
    };
    auto copyA = [&](size_t first, size_t last) {
      for (size_t i = first; i < last; ++i) {
        const Chunk &ch = aChunks[i];
        tokens.push_back(asyncCopy16(b, loc, sA, {stage, ch.row, ch.col}, x,
                                     {wk.aSources[2 * i], add(k0, ch.srcCol)},
                                     count(wk.aSources[2 * i + 1])));
      }
    };
    copyA(0, aMainChunks);
    if (aMainChunks < int64_t(aChunks.size())) {
      // A tall tile's band rows are copied only where its MMAs run: past
      // 128 rows (no zero-filling of rows nothing reads; a 128-row tile of
      // 192-row tiles 128 apart then fills its stage as a 128-row tile
      // does).
      assert(full && "tall tiles come with the producer form");
      buildIfThen(b, loc,
                  icmp(P::ugt, arith::SubIOp::create(b, loc, wk.end, wk.begin),
                       ci(kWgmmaTileM)),
                  [&] { copyA(aMainChunks, aChunks.size()); });
    }
    for (const Chunk &ch : bChunks) {
      CopySource src = columnSource(b, loc, add(wk.col0, ch.srcCol), N);
      tokens.push_back(asyncCopy16(b, loc, sB,
                                   {stage, ch.atom, ch.row, ch.col},
                                   w[ch.matrix], {wk.expert, add(k0, ch.row), src.index},
                                   count(src.count)));
    }
    if (full)
      NVVM::CpAsyncMBarrierArriveOp::create(b, loc, full, /*noinc=*/true);
    else
      commitAsyncCopies(b, loc, tokens);
  };

  // Matrix descriptors (PTX "matrix descriptor format"): start address >> 4
  // in bits 0-13, leading byte offset >> 4 in 16-29, stride byte offset >> 4
  // in 32-45, 128-byte swizzle (1) in bits 62-63. A (K-major): the leading
  // offset is unused (1), 8 rows to the next 8: one atom. B (MN-major):
  // atom to atom along N, TK rows of 128 bytes apart; 8 K rows to the next:
  // one atom.
  auto descriptor = [&](Value addr, int64_t leading, int64_t stride) {
    uint64_t fixed = (uint64_t(leading >> 4) << 16) |
                     (uint64_t(stride >> 4) << 32) | (uint64_t(1) << 62);
    Value start = arith::ShRUIOp::create(
        b, loc,
        arith::AndIOp::create(b, loc, addr,
                              arith::ConstantOp::create(
                                  b, loc, b.getI64IntegerAttr(0x3FFFF))),
        arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(4)));
    return arith::OrIOp::create(
        b, loc, start,
        arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(int64_t(fixed))));
  };
  auto addI64 = [&](Value v, int64_t c) -> Value {
    return arith::AddIOp::create(
        b, loc, v, arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(c)));
  };
  Value warpgroup = divu(tid, 128);
  // This warpgroup's 64 rows of A, and its B atoms, in stage 0.
  Value aDesc0 = descriptor(
      splitColumns ? aAddr
                   : Value(arith::AddIOp::create(
                         b, loc, aAddr,
                         toI64(mul(warpgroup, ci(64 * kRowBytes))))),
      16, kAtomBytes);
  Value bDesc0 = descriptor(
      splitColumns ? Value(arith::AddIOp::create(
                         b, loc, bAddr,
                         toI64(mul(warpgroup,
                                   ci(atoms / 2 * TK * kRowBytes)))))
                   : bAddr,
      TK * kRowBytes, kAtomBytes);

  // The band of a tall tile: rows 128-191 (one A run for both
  // warpgroups), and warpgroup w's half of each matrix's B atoms: atom w of
  // each of a pair's matrices (slots w and 2 + w, two atoms apart), else
  // atoms 2 w and 2 w + 1.
  Value aBandDesc0, bBandDesc0;
  // Swapped: A is one 64-column weight atom (MN-major; the leading offset
  // unused, 8 K rows to the next: one atom), slice c of warpgroup w that
  // of matrix c (a pair: atom w of each) or atom 2 w + c; B is sub-band
  // s's swapRows rows (K-major, as A above) from row 128 + swapRows s.
  SmallVector<Value, 2> swapWeightDesc0;
  SmallVector<Value, 4> swapRowsDesc0;
  if (swapped) {
    for (int64_t c = 0; c < kSwapSlices; ++c) {
      Value slot = o.pair ? add(warpgroup, ci(2 * c))
                          : add(mul(warpgroup, ci(2)), ci(c));
      swapWeightDesc0.push_back(
          descriptor(arith::AddIOp::create(
                         b, loc, bAddr, toI64(mul(slot, ci(TK * kRowBytes)))),
                     TK * kRowBytes, kAtomBytes));
    }
    for (int64_t s = 0; s < subBands; ++s)
      swapRowsDesc0.push_back(
          descriptor(addI64(aAddr, (kWgmmaTileM + swapRows * s) * kRowBytes),
                     16, kAtomBytes));
  } else if (tall) {
    aBandDesc0 = descriptor(addI64(aAddr, kWgmmaTileM * kRowBytes), 16,
                            kAtomBytes);
    Value slot = o.pair ? warpgroup : mul(warpgroup, ci(2));
    bBandDesc0 = descriptor(
        arith::AddIOp::create(b, loc, bAddr,
                              toI64(mul(slot, ci(TK * kRowBytes)))),
        (o.pair ? 2 : 1) * TK * kRowBytes, kAtomBytes);
  }

  // The accumulators: one struct of wgColumns / 2 f32 per thread (and the
  // band's of a tall tile: t.columns / 4).
  const int64_t numAcc = wgColumns / 2;
  auto accType = LLVM::LLVMStructType::getLiteral(
      ctx, SmallVector<Type>(numAcc, f32));
  Value zeroAcc = LLVM::ZeroOp::create(b, loc, accType);
  // Swapped, sub-band s's accumulators of slice c are accumulator
  // 1 + kSwapSlices s + c: m64n(swapRows), swapRows / 2 f32 a thread.
  Type bandType;
  SmallVector<Value> zeroAccs{zeroAcc};
  if (tall) {
    bandType = LLVM::LLVMStructType::getLiteral(
        ctx, SmallVector<Type>(swapped ? swapRows / 2 : t.columns / 4, f32));
    for (int64_t i = 0; i < (swapped ? subBands * kSwapSlices : 1); ++i)
      zeroAccs.push_back(LLVM::ZeroOp::create(b, loc, bandType));
  }

  // The MMAs of the K step in `stage` (its copies waited for, fenced and
  // behind a barrier), committed; one group left in flight. `rowsHere`
  // (dense): a warpgroup whose 64 rows are all past the tile's issues no
  // MMAs, the other gets the tensor cores to itself. Uniform over the
  // warpgroup and the loop. (In the expert kernels, for their experts'
  // last tiles, it measured 2-7% slower at 1024 and 8192 tokens:
  // results/wgmma-skip-rows-2026-12-02.md.)
  // A tall tile's accumulators are the main ones, always multiplied
  // (`rowsHere` is for the other tiles), then the band's, whose MMAs run
  // where `bandHere` (uniform over the block).
  auto mmaStep = [&](ValueRange accsIn, Value stage, Value rowsHere,
                     ValueRange bandHere = {}) -> SmallVector<Value> {
    Value stage64 = toI64(stage);
    auto atStage = [&](Value desc0, int64_t stageBytes) -> Value {
      return arith::AddIOp::create(
          b, loc, desc0,
          arith::MulIOp::create(b, loc, stage64,
                                arith::ConstantOp::create(
                                    b, loc, b.getI64IntegerAttr(stageBytes >> 4))));
    };
    Value aDesc = atStage(aDesc0, aStageBytes);
    Value bDesc = atStage(bDesc0, bStageBytes);
    Value aBandDesc, bBandDesc;
    if (tall && !swapped) {
      aBandDesc = atStage(aBandDesc0, aStageBytes);
      bBandDesc = atStage(bBandDesc0, bStageBytes);
    }
    auto bf16T = NVVM::WGMMATypesAttr::get(ctx, NVVM::WGMMATypes::bf16);
    auto f32T = NVVM::WGMMATypesAttr::get(ctx, NVVM::WGMMATypes::f32);
    auto one = NVVM::WGMMAScaleInAttr::get(ctx, NVVM::WGMMAScaleIn::one);
    // A K-major and B MN-major (transposed), or swapped: A MN-major
    // (transposed), B K-major.
    auto wgmma = [&](Value &acc, int64_t n, Value a, Value bDescJ,
                     bool operandsSwapped = false) {
      auto layoutA =
          operandsSwapped ? NVVM::MMALayout::col : NVVM::MMALayout::row;
      auto layoutB =
          operandsSwapped ? NVVM::MMALayout::col : NVVM::MMALayout::row;
      acc = NVVM::WgmmaMmaAsyncOp::create(
          b, loc, acc.getType(), acc, a, bDescJ,
          NVVM::MMAShapeAttr::get(ctx, 64, n, 16), bf16T, bf16T, f32T,
          NVVM::WGMMAScaleOutAttr::get(ctx, NVVM::WGMMAScaleOut::one), one, one,
          NVVM::MMALayoutAttr::get(ctx, layoutA),
          NVVM::MMALayoutAttr::get(ctx, layoutB),
          /*satfinite=*/nullptr);
    };
    // The four k16 slices of one accumulator's MMAs, under `here` (null:
    // always): slice j is 32 bytes further along A's rows, 16 K rows (two
    // atoms) further down B.
    auto slices = [&](Value acc, Value here, int64_t n, Value a,
                      Value bd) -> Value {
      if (!here) {
        for (int64_t j = 0; j < TK / 16; ++j)
          wgmma(acc, n, addI64(a, (32 * j) >> 4),
                addI64(bd, (2 * kAtomBytes * j) >> 4));
        return acc;
      }
      auto mmaIf = scf::IfOp::create(b, loc, TypeRange{acc.getType()}, here,
                                     /*withElseRegion=*/true);
      OpBuilder::InsertionGuard mg(b);
      b.setInsertionPointToStart(&mmaIf.getElseRegion().front());
      scf::YieldOp::create(b, loc, acc);
      b.setInsertionPointToStart(&mmaIf.getThenRegion().front());
      NVVM::WgmmaFenceAlignedOp::create(b, loc);
      for (int64_t j = 0; j < TK / 16; ++j)
        wgmma(acc, n, addI64(a, (32 * j) >> 4),
              addI64(bd, (2 * kAtomBytes * j) >> 4));
      if (!tall) {
        NVVM::WgmmaGroupSyncAlignedOp::create(b, loc);
        NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 1);
      }
      scf::YieldOp::create(b, loc, acc);
      return mmaIf.getResult(0);
    };
    if (!tall)
      return {slices(accsIn[0], rowsHere, wgColumns, aDesc, bDesc)};
    // (The band's fence inside its branch: with the one before the main
    // MMAs only, ptxas serialized the kernel's wgmmas, C7520.)
    NVVM::WgmmaFenceAlignedOp::create(b, loc);
    SmallVector<Value> accs{
        slices(accsIn[0], Value(), wgColumns, aDesc, bDesc)};
    if (!swapped) {
      accs.push_back(
          slices(accsIn[1], bandHere[0], t.columns / 2, aBandDesc, bBandDesc));
    } else {
      // Sub-band s where the tile has rows past 128 + swapRows s: its slices'
      // k16 MMAs (A: the weight atom, 16 K rows = two atoms further a
      // slice; B: the rows, 32 bytes further).
      SmallVector<Value, 2> weightDesc;
      for (Value d : swapWeightDesc0)
        weightDesc.push_back(atStage(d, bStageBytes));
      for (int64_t sb = 0; sb < subBands; ++sb) {
        Value rowsDesc = atStage(swapRowsDesc0[sb], aStageBytes);
        ValueRange in = accsIn.slice(1 + kSwapSlices * sb, kSwapSlices);
        auto mmaIf = scf::IfOp::create(b, loc, in.getTypes(), bandHere[sb],
                                       /*withElseRegion=*/true);
        OpBuilder::InsertionGuard mg(b);
        b.setInsertionPointToStart(&mmaIf.getElseRegion().front());
        scf::YieldOp::create(b, loc, in);
        b.setInsertionPointToStart(&mmaIf.getThenRegion().front());
        NVVM::WgmmaFenceAlignedOp::create(b, loc);
        SmallVector<Value, 2> sub(in.begin(), in.end());
        for (int64_t j = 0; j < TK / 16; ++j)
          for (int64_t c = 0; c < kSwapSlices; ++c)
            wgmma(sub[c], swapRows,
                  addI64(weightDesc[c], (2 * kAtomBytes * j) >> 4),
                  addI64(rowsDesc, (32 * j) >> 4), /*operandsSwapped=*/true);
        scf::YieldOp::create(b, loc, sub);
        accs.append(mmaIf.getResults().begin(), mmaIf.getResults().end());
      }
    }
    NVVM::WgmmaGroupSyncAlignedOp::create(b, loc);
    NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 1);
    return accs;
  };
  // Waits for the copies of the step S - 2 steps back (S - 3 groups may
  // stay in flight), fences them into the async proxy; the barrier also
  // tells that every warpgroup is done with the step whose buffer the next
  // copies reuse.
  auto waitStep = [&] {
    NVVM::CpAsyncWaitGroupOp::create(b, loc, int32_t(S - 3));
    NVVM::FenceProxyOp::create(
        b, loc, NVVM::ProxyKind::async_shared,
        NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
    gpu::BarrierOp::create(b, loc);
  };

  // Epilogue. Accumulator 4 q + 2 i + j of a thread (lane l of warp v of
  // its warpgroup) is row 16 v + l / 4 + 8 i, column 8 q + 2 (l % 4) + j of
  // the warpgroup's; matrix m's columns are the q in [m TNw / 8,
  // (m + 1) TNw / 8).
  Value lane = remu(tid, 32), warp = remu(divu(tid, 32), 4);
  Value rowBase = add(mul(warp, ci(16)), divu(lane, 4));
  if (!splitColumns)
    rowBase = add(mul(warpgroup, ci(64)), rowBase);
  Value tg2 = mul(remu(lane, 4), ci(2));
  // What each accumulator struct covers: the thread's first row in the
  // tile, and the columns of each matrix its warpgroup takes (all TNw, or
  // with `halfColumns` the warpgroup's half of them).
  struct AccPart {
    Value rowBase;
    int64_t columns;
    bool halfColumns;
  };
  SmallVector<AccPart, 2> parts{{rowBase, TNw, splitColumns}};
  if (tall && !swapped)
    parts.push_back({add(ci(kWgmmaTileM), add(mul(warp, ci(16)), divu(lane, 4))),
                     TN / 2, true});
  // The thread's two rows of each part (rowBase + 8 i of the tile) and
  // what their stores need (the token and weight of a scatter, the weight
  // of weighted rows), loaded before the last MMAs' wait so that the
  // latency hides under it (the down kernels' epilogue stalled on them). A
  // slot past `end` reads slot 0 (it is not stored).
  auto rowsAhead = [&](Value begin, Value end) {
    SmallVector<AccumulatorRow, 4> pre;
    for (const AccPart &part : parts)
      for (int64_t i = 0; i < 2; ++i) {
        Value slot = add(begin, add(part.rowBase, ci(8 * i)));
        AccumulatorRow row = loadAccumulatorRow(
            b, loc, o, args, ops.select(icmp(P::ult, slot, end), slot, ci(0)));
        row.slot = slot;
        pre.push_back(row);
      }
    return pre;
  };
  // With wgmmaWideStores, bf16 rows go out 16 bytes a thread: the 4
  // threads of a row (a quad) hold 2 columns of each 8-column group q; for
  // each 4 groups they transpose their bf16 pairs (3 xor shuffles), so that
  // thread t stores the 8 columns of group 4 Q + t, and a warp's store
  // writes 64 bytes (two whole 32-byte sectors) of each of its 8 rows
  // instead of 16 (half a sector) per group. Needs N a multiple of 8 and the
  // output's rows and base 16-byte aligned (wideOk, checked once; the
  // per-pair stores run where it does not hold).
  const bool wideStores = wgmmaWideStores(o);
  assert(llvm::all_of(parts,
                      [&](const auto &p) { return p.columns % 32 == 0; }) &&
         "a part's columns are whole runs of 4 groups");
  Value wideOk;
  if (wideStores) {
    Value outCols = memref::DimOp::create(b, loc, args.out, 1);
    Value outAddr =
        memref::ExtractAlignedPointerAsIndexOp::create(b, loc, args.out);
    wideOk = arith::AndIOp::create(
        b, loc,
        arith::AndIOp::create(b, loc, icmp(P::eq, remu(N, 8), ci(0)),
                              icmp(P::eq, remu(outCols, 8), ci(0))),
        icmp(P::eq, remu(outAddr, 16), ci(0)));
  }
  Value quadLane = remu(lane, 4);
  Type i32 = b.getI32Type();
  // Lane t of a quad holding v[j] (its 2 columns of group j) gets the
  // pairs of group t: lane s's v[t] for s = 0..3.
  auto quadTranspose = [&](ArrayRef<Value> v) {
    auto pick = [&](Value at, ArrayRef<Value> from) {
      Value r = from[3];
      for (int64_t j = 2; j >= 0; --j)
        r = ops.select(icmp(P::eq, at, ci(j)), from[j], r);
      return r;
    };
    SmallVector<Value, 4> got(4);
    for (int64_t r = 1; r < 4; ++r) {
      Value send = pick(xorI(quadLane, ci(r)), v);
      got[r] = gpu::ShuffleOp::create(b, loc, send, int32_t(r), 32,
                                      gpu::ShuffleMode::XOR)
                   .getShuffleResult();
    }
    SmallVector<Value, 4> mine;
    for (int64_t s = 0; s < 4; ++s) {
      got[0] = v[s];
      mine.push_back(pick(xorI(quadLane, ci(s)), got));
    }
    return mine;
  };
  // A swapped band's stores (`accs` its sub-bands' slices, the tile's
  // rows from `begin`): accumulator 4 q + 2 i + j of slice c of a thread
  // (lane l of warp v of its warpgroup) is column 16 v + l / 4 + 8 i of the
  // slice's 64 and row 8 q + 2 (l % 4) + j of the sub-band's swapRows. Each of
  // the thread's rows in the tile is loaded once for its columns; a pair's
  // gate columns are slice 1's (matrix 1's atom), so a pair stores slice
  // 0's columns only.
  auto swapEpilogue = [&](ValueRange accs, Value begin, Value end,
                          Value blockCol0) {
    int64_t outSlices = o.pair ? 1 : kSwapSlices;
    Value colOfThread =
        add(add(blockCol0, mul(warpgroup, ci(o.pair ? 64 : 2 * 64))),
            add(mul(warp, ci(16)), divu(lane, 4)));
    for (int64_t sb = 0; sb < subBands; ++sb)
      for (int64_t q = 0; q < swapRows / 8; ++q)
        for (int64_t j = 0; j < 2; ++j) {
          Value slot =
              add(begin, add(ci(kWgmmaTileM + swapRows * sb + 8 * q + j), tg2));
          auto inRows =
              scf::IfOp::create(b, loc, icmp(P::ult, slot, end), false);
          OpBuilder::InsertionGuard eg(b);
          b.setInsertionPointToStart(&inRows.getThenRegion().front());
          AccumulatorRow row = loadAccumulatorRow(b, loc, o, args, slot);
          for (int64_t c = 0; c < outSlices; ++c)
            for (int64_t i = 0; i < 2; ++i) {
              int64_t e = 4 * q + 2 * i + j;
              Value h = LLVM::ExtractValueOp::create(
                  b, loc, accs[kSwapSlices * sb + c], e);
              Value gate = o.pair ? Value(LLVM::ExtractValueOp::create(
                                        b, loc, accs[kSwapSlices * sb + 1], e))
                                  : Value();
              Value col = add(colOfThread, ci(64 * c + 8 * i));
              auto inCols =
                  scf::IfOp::create(b, loc, icmp(P::ult, col, N), false);
              OpBuilder::InsertionGuard cg(b);
              b.setInsertionPointToStart(&inCols.getThenRegion().front());
              storeAccumulatorElement(b, loc, o, args.out, row, col, h, gate);
            }
        }
  };
  // Column checks only in a column block that N ends in. With a swapped
  // band, `begin` is the tile's first row.
  auto epilogue = [&](ValueRange accs, ArrayRef<AccumulatorRow> pre, Value end,
                      Value blockCol0, Value begin = Value()) {
    if (swapped) {
      assert(begin && "a swapped band's rows from the tile's first");
      swapEpilogue(accs.drop_front(1), begin, end, blockCol0);
      accs = accs.take_front(1);
    }
    assert(accs.size() == parts.size() && "an accumulator struct a part");
    for (auto [p, part] : llvm::enumerate(parts)) {
      Value acc = accs[p];
      auto accAt = [&](int64_t i) -> Value {
        return LLVM::ExtractValueOp::create(b, loc, acc, i);
      };
      int64_t n = part.columns;
      Value col0 = part.halfColumns ? add(blockCol0, mul(warpgroup, ci(n)))
                                    : blockCol0;
      auto pairAt = [&](int64_t q, int64_t i) {
        SmallVector<Value, 2> h{accAt(4 * q + 2 * i), accAt(4 * q + 2 * i + 1)};
        SmallVector<Value, 2> gate;
        if (o.pair) {
          int64_t g = q + n / 8;
          gate = {accAt(4 * g + 2 * i), accAt(4 * g + 2 * i + 1)};
        }
        return std::make_pair(h, gate);
      };
      // The per-pair stores (column checks only in a column block that N
      // ends in); with wide stores only where those cannot run.
      auto pairStores = [&] {
        buildColumnChecked(b, loc, icmp(P::ule, add(col0, ci(n)), N), N,
                           [&](Value cols) {
        for (int64_t i = 0; i < 2; ++i) {
          const AccumulatorRow &row = pre[2 * p + i];
          auto inRows =
              scf::IfOp::create(b, loc, icmp(P::ult, row.slot, end), false);
          OpBuilder::InsertionGuard eg(b);
          b.setInsertionPointToStart(&inRows.getThenRegion().front());
          Value col = add(col0, tg2);
          for (int64_t q = 0; q < n / 8; ++q) {
            auto [h, gate] = pairAt(q, i);
            storeAccumulatorPair(b, loc, o, args.out, row, col, cols, h,
                                 gate, q * 8);
          }
        }
        });
      };
      if (!wideStores) {
        pairStores();
        continue;
      }
      // The wide stores: the shuffles outside any branch (a shuffle under
      // one made ptxas serialize the kernel's wgmmas, C7520), each store
      // under its row, column and wideOk check (a thread's 8 columns are
      // one group, so its first column's check covers them).
      for (int64_t i = 0; i < 2; ++i) {
        const AccumulatorRow &row = pre[2 * p + i];
        Value rowOk =
            arith::AndIOp::create(b, loc, wideOk, icmp(P::ult, row.slot, end));
        for (int64_t q4 = 0; q4 < n / 32; ++q4) {
          SmallVector<Value, 4> packed;
          for (int64_t j = 0; j < 4; ++j) {
            auto [h, gate] = pairAt(4 * q4 + j, i);
            Value pairV = vector::BitCastOp::create(
                b, loc, VectorType::get({1}, i32),
                accumulatorPairBf16(b, loc, o, row, h, gate));
            packed.push_back(
                vector::ExtractOp::create(b, loc, pairV, ArrayRef<int64_t>{0}));
          }
          SmallVector<Value, 4> mine = quadTranspose(packed);
          Value wide = vector::BitCastOp::create(
              b, loc, VectorType::get({8}, bf16),
              vector::FromElementsOp::create(b, loc, VectorType::get({4}, i32),
                                             mine));
          Value col = add(add(col0, ci(32 * q4)), mul(quadLane, ci(8)));
          auto ifOk = scf::IfOp::create(
              b, loc, arith::AndIOp::create(b, loc, rowOk, icmp(P::ult, col, N)),
              false);
          OpBuilder::InsertionGuard eg(b);
          b.setInsertionPointToStart(&ifOk.getThenRegion().front());
          vector::StoreOp::create(b, loc, wide, args.out,
                                  ValueRange{row.slot, col}, false,
                                  llvm::MaybeAlign(16));
        }
      }
      auto ifNot = scf::IfOp::create(
          b, loc,
          arith::XOrIOp::create(b, loc, wideOk,
                                arith::ConstantIntOp::create(b, loc, 1, 1)),
          false);
      OpBuilder::InsertionGuard ng(b);
      b.setInsertionPointToStart(&ifNot.getThenRegion().front());
      pairStores();
    }
  };
  // Block b (launch order: x fastest) of group g = b / (G cols) takes,
  // within its group, tile b % n and column block (b / n) % cols, n the
  // group's tiles (the last group may be short), of `tilesAll`.
  auto groupOrder = [&](Value linear, Value tilesAll) -> std::pair<Value, Value> {
    Value perGroup = mul(ci(o.groupTiles), cols);
    Value first = mul(arith::DivUIOp::create(b, loc, linear, perGroup),
                      ci(o.groupTiles));
    Value within = arith::RemUIOp::create(b, loc, linear, perGroup);
    Value n = arith::MinUIOp::create(
        b, loc, ci(o.groupTiles), arith::SubIOp::create(b, loc, tilesAll, first));
    return {add(first, arith::RemUIOp::create(b, loc, within, n)),
            arith::DivUIOp::create(b, loc, within, n)};
  };

  // With expertGroups, pair `linear` of `tilesAll` tiles: each expert's
  // tiles a group (its pairs are the C column blocks of its n tiles, from
  // its first tile's C-th pair on, so that tile linear / C is one of them),
  // its column blocks in turn, its tiles fastest. The routing's tiles of an
  // expert are consecutive, tileStep apart, expertTileCount of them.
  auto expertOrder = [&](Value linear,
                         Value tilesAll) -> std::pair<Value, Value> {
    Value lastTile = arith::SubIOp::create(b, loc, tilesAll, ci(1));
    Value at = arith::MinUIOp::create(
        b, loc, arith::DivUIOp::create(b, loc, linear, cols), lastTile);
    Value e = arith::IndexCastOp::create(
        b, loc, b.getIndexType(),
        arith::MaxSIOp::create(
            b, loc, memref::LoadOp::create(b, loc, args.tileExpert, at),
            constI32(b, loc, 0)));
    auto indexAt = [&](Value table, Value i) -> Value {
      return arith::IndexCastOp::create(
          b, loc, b.getIndexType(), memref::LoadOp::create(b, loc, table, i));
    };
    Value expertBegin = indexAt(args.offsets, e);
    Value rowsE =
        arith::SubIOp::create(b, loc, indexAt(args.offsets, add(e, ci(1))),
                              expertBegin);
    // The tile's place among its expert's (at most `at`, so that a table
    // out of step with the offsets cannot take it below tile 0, nor the
    // tile or column block past the last).
    Value place = arith::MinUIOp::create(
        b, loc,
        divu(arith::SubIOp::create(
                 b, loc,
                 arith::MaxSIOp::create(b, loc, indexAt(args.tileRow, at),
                                        expertBegin),
                 expertBegin),
             t.tileStep()),
        at);
    Value first = arith::SubIOp::create(b, loc, at, place);
    // (At least 1: a stale table cannot divide by 0.)
    Value n = arith::MaxUIOp::create(
        b, loc, expertTileCount(b, loc, rowsE, TM, t.tileStep()), ci(1));
    Value within = arith::SubIOp::create(
        b, loc, linear, mul(first, cols));
    return {arith::MinUIOp::create(
                b, loc, add(first, arith::RemUIOp::create(b, loc, within, n)),
                lastTile),
            arith::MinUIOp::create(b, loc,
                                   arith::DivUIOp::create(b, loc, within, n),
                                   arith::SubIOp::create(b, loc, cols, ci(1)))};
  };

  // With multicast: this block's rank in its cluster of two, and a barrier
  // over the cluster's threads (release / acquire).
  Value rank;
  auto clusterSync = [&] {
    NVVM::ClusterArriveOp::create(b, loc, nullptr);
    NVVM::ClusterWaitOp::create(b, loc, nullptr);
  };
  if (o.persistent) {
    // The persistent form: gridDim.x blocks take the (live tile, column
    // block) pairs round-robin (in group order where groupTiles is set, else
    // a column block's tiles in turn) as one stream of K steps, so that the
    // copies for a pair's first steps are in flight while the previous
    // pair's last MMAs run and its epilogue stores.
    // Live tiles: the routing writes them first, then -1s.
    Value table = memref::DimOp::create(b, loc, args.tileExpert, 0);
    Value liveShared = fn.addWorkgroupAttribution(
        MemRefType::get({1}, b.getI32Type(), MemRefLayoutAttrInterface(), wg),
        loc);
    Value i32Zero = constI32(b, loc, 0);
    // With the producer: S `full` mbarriers (the producer's 128 threads'
    // copies of a stage done), then S `empty` ones (the 256 MMA threads done
    // reading it).
    // Their shared address, taken once.
    Value barriersAddr;
    if (o.producer)
      barriersAddr = toI64(memref::ExtractAlignedPointerAsIndexOp::create(
          b, loc,
          fn.addWorkgroupAttribution(
              MemRefType::get({2 * S}, i64, MemRefLayoutAttrInterface(), wg),
              loc)));
    auto barrierAt = [&](Value i) -> Value {
      return LLVM::IntToPtrOp::create(
          b, loc, LLVM::LLVMPointerType::get(ctx, 3),
          Value(arith::AddIOp::create(b, loc, barriersAddr,
                                      toI64(mul(i, ci(8))))));
    };
    auto isFirst = icmp(P::eq, tid, ci(0));
    auto first0 = scf::IfOp::create(b, loc, isFirst, false);
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(&first0.getThenRegion().front());
      memref::StoreOp::create(b, loc, i32Zero, liveShared, ci(0));
      for (int64_t st = 0; o.producer && st < S; ++st) {
        // (With TMA weights, one more: the leader's expect_tx.)
        NVVM::MBarrierInitOp::create(
            b, loc, barrierAt(ci(st)),
            constI32(b, loc, int32_t(kWgmmaProducerThreads +
                                     (o.tmaWeights || o.queue ? 1 : 0))),
            Value());
        // (With multicast, two more: one thread of each MMA warpgroup of
        // the other block of the cluster.)
        NVVM::MBarrierInitOp::create(
            b, loc, barrierAt(ci(S + st)),
            constI32(b, loc, int32_t(kWgmmaThreads + (o.multicast ? 2 : 0))),
            Value());
      }
      // The other block of the cluster arrives on these mbarriers, and its
      // TMA multicast completes bytes on them.
      if (o.multicast)
        NVVM::FenceMbarrierInitOp::create(b, loc);
    }
    gpu::BarrierOp::create(b, loc);
    if (o.multicast)
      clusterSync();
    auto countLoop = scf::ForOp::create(b, loc, tid, table,
                                        ci(wgmmaBlockThreads(o)),
                                        ValueRange{i32Zero});
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(countLoop.getBody());
      Value e = memref::LoadOp::create(b, loc, args.tileExpert,
                                       countLoop.getInductionVar());
      Value live = arith::ExtUIOp::create(
          b, loc, b.getI32Type(),
          arith::CmpIOp::create(b, loc, P::sge, e, i32Zero));
      scf::YieldOp::create(
          b, loc, ValueRange{arith::AddIOp::create(
                      b, loc, countLoop.getRegionIterArgs()[0], live)});
    }
    memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::addi,
                                countLoop.getResult(0), liveShared,
                                ValueRange{ci(0)});
    gpu::BarrierOp::create(b, loc);
    Value liveTiles = arith::IndexCastOp::create(
        b, loc, b.getIndexType(),
        memref::LoadOp::create(b, loc, liveShared, ci(0)));
    // (With kRuns, each pair's K steps in that many runs: items.)
    Value total = mul(mul(liveTiles, cols), ci(o.kRuns));
    // Who takes the pairs in turn: the blocks, or with multicast the
    // clusters (both blocks of one take the same pairs, block `rank` the
    // rank-th 128 rows of each 256-row tile).
    Value blocks = gpu::GridDimOp::create(b, loc, gpu::Dimension::x);
    Value bid = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
    if (o.multicast) {
      rank = remu(bid, 2);
      blocks = divu(blocks, 2);
      bid = divu(bid, 2);
    }
    Value mine = ops.select(
        icmp(P::ult, bid, total),
        arith::DivUIOp::create(
            b, loc,
            ops.add(arith::SubIOp::create(b, loc, total, bid),
                    arith::SubIOp::create(b, loc, blocks, ci(1))),
            blocks),
        ci(0));
    // K steps an item (a pair, or one of its kRuns runs).
    Value steps = ops.divu(ops.divu(K, TK), o.kRuns);
    // The rows, first column and first K step of item `item` (a pair, or
    // with kRuns run item % kRuns of pair item / kRuns).
    struct Item {
      TileRows rows;
      Value col0, kFirst;
    };
    auto itemPairOf = [&](Value item) -> Item {
      Value kFirst;
      if (o.kRuns > 1) {
        kFirst = mul(remu(item, o.kRuns), steps);
        item = divu(item, o.kRuns);
      }
      Value tile, colBlock;
      if (o.expertGroups) {
        std::tie(tile, colBlock) = expertOrder(
            item, arith::MaxUIOp::create(b, loc, liveTiles, ci(1)));
      } else if (o.groupTiles) {
        std::tie(tile, colBlock) = groupOrder(
            item, arith::MaxUIOp::create(b, loc, liveTiles, ci(1)));
      } else {
        Value n = arith::MaxUIOp::create(b, loc, liveTiles, ci(1));
        tile = arith::RemUIOp::create(b, loc, item, n);
        colBlock = arith::DivUIOp::create(b, loc, item, n);
      }
      TileRows rows;
      Value rawE = memref::LoadOp::create(b, loc, args.tileExpert, tile);
      rows.expert = arith::IndexCastOp::create(
          b, loc, b.getIndexType(),
          arith::MaxSIOp::create(b, loc, rawE, i32Zero));
      rows.begin = arith::IndexCastOp::create(
          b, loc, b.getIndexType(),
          memref::LoadOp::create(b, loc, args.tileRow, tile));
      Value expertEnd = arith::IndexCastOp::create(
          b, loc, b.getIndexType(),
          memref::LoadOp::create(b, loc, args.offsets,
                                 add(rows.expert, ci(1))));
      if (o.multicast) {
        // This block's half of the 256-row tile; none (begin = end = the
        // tile's first row, so that row reads stay in bounds) where the
        // expert's rows end in the first half.
        Value half = add(rows.begin, mul(rank, ci(TM)));
        Value none = icmp(P::uge, half, expertEnd);
        Value end = arith::MinUIOp::create(b, loc, add(half, ci(TM)), expertEnd);
        rows.end = ops.select(none, rows.begin, end);
        rows.begin = ops.select(none, rows.begin, half);
      } else if (t.tileStep() != TM) {
        // Tiles tileStep apart but the expert's last, which holds the rest
        // (at most TM rows).
        Value last = icmp(P::ule, arith::SubIOp::create(b, loc, expertEnd,
                                                         rows.begin),
                          ci(TM));
        rows.end =
            ops.select(last, expertEnd, add(rows.begin, ci(t.tileStep())));
      } else {
        rows.end = arith::MinUIOp::create(b, loc, add(rows.begin, ci(TM)),
                                          expertEnd);
      }
      return {rows, mul(colBlock, ci(TN)), kFirst};
    };
    auto pairOf = [&](Value j) {
      return itemPairOf(arith::MinUIOp::create(
          b, loc, add(bid, mul(j, blocks)),
          arith::SubIOp::create(
              b, loc, arith::MaxUIOp::create(b, loc, total, ci(1)), ci(1))));
    };
    auto workOf = [&](Value j) {
      Item it = pairOf(j);
      return sources(it.rows, it.col0, it.kFirst);
    };
    // With the queue: the pair counter's values as the producer's leader
    // took them, pair j in slot j % kRing (at most S + 2 pairs are between
    // the producer's and the MMA warpgroups'), written before the leader's
    // arrival on the pair's first stage.
    constexpr int64_t kRing = kWgmmaQueueRing;
    assert((!o.queue || S + 3 <= kRing) && "more stages than the ring covers");
    Value ring;
    if (o.queue)
      ring = fn.addWorkgroupAttribution(
          MemRefType::get({kRing}, b.getI32Type(), MemRefLayoutAttrInterface(),
                          wg),
          loc);
    if (o.producer) {
      // Warp specialisation: the producer warpgroup (threads 256-383)
      // streams the K steps of the block's pairs into the stages; the two
      // MMA warpgroups consume them. Global step g = j steps + kt is stage
      // g % S, its n = g / S-th fill. The MMA warpgroups wait for fill n of
      // `full` (phase parity n % 2); the producer, before fill n, for the
      // release of fill n - 1 in `empty` (parity (n - 1) % 2: for n = 0 the
      // phase before the first, which counts as complete).
      Value ticks = constI32(b, loc, 0x989680);
      auto stageOf = [&](Value g) { return remu(g, S); };
      auto parityOf = [&](Value g, int64_t flip) -> Value {
        Value p = remu(add(divu(g, S), ci(flip)), 2);
        return arith::IndexCastUIOp::create(b, loc, b.getI32Type(), p);
      };
      // With the queue, both roles loop over the pairs in the ring: pair j's
      // value is read from its slot (j % kRing) after `before(j, slot)` has
      // made it visible, and the loop stops at a value past the last pair.
      // Leaves the insertion point in the body (arguments j and the value),
      // before its yield of j + 1.
      auto whilePairs = [&](function_ref<void(Value, Value)> before) {
        Type index = b.getIndexType();
        auto loop = scf::WhileOp::create(b, loc, TypeRange{index, index},
                                         ValueRange{ci(0)});
        Block *head = b.createBlock(&loop.getBefore(), {}, {index}, {loc});
        Value j = head->getArgument(0), slot = remu(j, kRing);
        before(j, slot);
        Value value = arith::IndexCastUIOp::create(
            b, loc, index, memref::LoadOp::create(b, loc, ring, slot));
        scf::ConditionOp::create(b, loc, icmp(P::ult, value, total),
                                 ValueRange{j, value});
        Block *body =
            b.createBlock(&loop.getAfter(), {}, {index, index}, {loc, loc});
        scf::YieldOp::create(b, loc,
                             ValueRange{add(body->getArgument(0), ci(1))});
        b.setInsertionPoint(body->getTerminator());
        return loop;
      };
      auto roles = scf::IfOp::create(
          b, loc, icmp(P::uge, tid, ci(kWgmmaThreads)),
          /*withElseRegion=*/true);
      {
        OpBuilder::InsertionGuard rg(b);
        b.setInsertionPointToStart(&roles.getThenRegion().front());
        if (tall)
          NVVM::SetMaxRegisterOp::create(
              b, loc, int32_t(kWgmmaTallProducerRegs),
              NVVM::SetMaxRegisterAction::decrease);
        makeChunks(arith::SubIOp::create(b, loc, tid, ci(kWgmmaThreads)),
                   kWgmmaProducerThreads);
        // TMA weights: the producer's first thread (the leader) issues them.
        // The maps were written through the generic proxy (a copy before
        // the launch); the tensormap proxy reads them.
        Value leader;
        SmallVector<Value, 2> maps;
        if (o.tmaWeights || o.queue)
          leader = icmp(P::eq, tid, ci(kWgmmaThreads));
        if (o.tmaWeights) {
          for (Value m : args.wMaps)
            maps.push_back(LLVM::IntToPtrOp::create(
                b, loc, LLVM::LLVMPointerType::get(ctx), m));
          buildIfThen(b, loc, leader, [&] {
            for (Value m : maps) {
              NVVM::FenceProxyAcquireOp::create(b, loc, NVVM::MemScopeKind::GPU,
                                                m, constI32(b, loc, 128));
              NVVM::PrefetchOp::create(b, loc, nullptr, nullptr, m, Value(),
                                       /*tensormap=*/true);
            }
          });
        }
        // The TMA coordinates of weight atom `atom` (of its matrix) at K
        // row k0 of `wk`: (column, K row, expert).
        auto weightCoords = [&](Value atom, Value k0,
                                const Work &wk) -> SmallVector<Value, 3> {
          Type i32 = b.getI32Type();
          auto toI32 = [&](Value v) -> Value {
            return arith::IndexCastOp::create(b, loc, i32, v);
          };
          return {toI32(add(wk.col0, mul(remu(atom, atomsPerMat), ci(64)))),
                  toI32(k0), toI32(wk.expert)};
        };
        // The weight boxes of step kt of `wk` into `stage` (leader only):
        // the stage's B bytes expected on `full`, then a 64-column x 64-row
        // box per atom (its columns past N read as zeros).
        auto issueWeights = [&](Value stage, Value k0, const Work &wk,
                                Value full) {
          NVVM::MBarrierArriveExpectTxOp::create(
              b, loc, TypeRange{}, full, constI32(b, loc, int32_t(bStageBytes)),
              NVVM::MemScopeKind::CTA, /*relaxed=*/false, Value());
          Value stageAddr = arith::AddIOp::create(
              b, loc, bAddr,
              arith::MulIOp::create(
                  b, loc, toI64(stage),
                  arith::ConstantOp::create(b, loc,
                                            b.getI64IntegerAttr(bStageBytes))));
          // With multicast, atoms 2 p + rank (p < atoms / 2) to both blocks
          // of the cluster, at the same shared addresses, completing bytes
          // on the same mbarrier in each (a matrix's atoms are even, so
          // both of a pair are of one matrix).
          Value mask;
          if (o.multicast)
            mask = arith::ConstantOp::create(b, loc, b.getI16IntegerAttr(3));
          // CUTLASS's CacheHintSm90::EVICT_FIRST (what createpolicy
          // .fractional.L2::evict_first 1.0 makes).
          Value policy;
          if (o.evictFirst)
            policy = arith::ConstantOp::create(
                b, loc, b.getI64IntegerAttr(int64_t(0x12F0000000000000)));
          for (int64_t a = 0; a < atoms; a += o.multicast ? 2 : 1) {
            // Atom a of the weights (a % atomsPerMat of matrix a /
            // atomsPerMat), at its slot (with multicast, slots are atoms).
            Value atom = o.multicast ? add(ci(a), rank) : ci(a);
            Value slot = o.multicast
                             ? atom
                             : atomSlot(a / atomsPerMat, ci(a % atomsPerMat));
            // (This CTA's shared memory, as a shared::cluster address.)
            Value dst = LLVM::AddrSpaceCastOp::create(
                b, loc, LLVM::LLVMPointerType::get(ctx, 7),
                LLVM::IntToPtrOp::create(
                    b, loc, LLVM::LLVMPointerType::get(ctx, 3),
                    Value(arith::AddIOp::create(
                        b, loc, stageAddr,
                        toI64(mul(slot, ci(TK * kRowBytes)))))));
            NVVM::CpAsyncBulkTensorGlobalToSharedClusterOp::create(
                b, loc, dst, maps[a / atomsPerMat], weightCoords(atom, k0, wk),
                full, ValueRange{},
                mask, policy, NVVM::TMALoadMode::TILE, /*isCTAOnly=*/false,
                nullptr, Value());
          }
        };
        auto waitEmpty = [&](Value g) {
          NVVM::MBarrierTryWaitParityOp::create(
              b, loc, barrierAt(add(ci(S), stageOf(g))), parityOf(g, 1),
              ticks);
        };
        // The order of a pair's K steps (results/wgmma-k-order-2026-12-04.md,
        // Nsight Compute at base clocks). A tile of more than 128 rows (a
        // tall tile's band multiplied) takes about 1.5x as long a K step
        // as one of at most 128, and takes two of every three steps first
        // (step 3 i + c as its 2 i + c-th, c < 2), the third ones after:
        // with tiles 128 apart, where such a tile is an expert's last and
        // its other tiles, reading the same weight blocks, run at the 128
        // rows' pace, it fell behind them (DeepSeek-V3 at 8192 tokens: the
        // up kernel read 25.7 GB from DRAM against 20.6 with 128-row
        // tiles). The up and down kernels took 0.93-0.97x the time there
        // and at qwen3 8192 and OLMoE 1024 (tiles 192 apart), where the
        // DRAM bytes moved less than the times: what else the order changes
        // was not measured apart. Then, with rotateK, each expert's steps
        // start at step 5 e mod the steps, so that the experts' tiles of a
        // wave read different parts of K at a time: 0.95x at Mixtral and
        // OLMoE 8192 (128-row tiles).
        auto kPosition = [&](Value kt, const Work &wk) -> Value {
          Value pos = kt;
          if (tall && o.bandKOrder) {
            Value band = icmp(P::ugt, arith::SubIOp::create(b, loc, wk.end,
                                                            wk.begin),
                              ci(kWgmmaTileM));
            // n = 3 q + r steps: the first 2 q + r in pairs (3 i, 3 i + 1),
            // then 3 i + 2.
            Value q = divu(steps, 3), r = remu(steps, 3);
            Value first = add(mul(q, ci(2)), r);
            Value early = add(mul(divu(kt, 2), ci(3)), remu(kt, 2));
            Value late = add(
                mul(arith::SubIOp::create(b, loc, kt, first), ci(3)), ci(2));
            pos = ops.select(
                band, ops.select(icmp(P::ult, kt, first), early, late), kt);
          }
          if (!o.rotateK)
            return pos;
          Value start = arith::RemUIOp::create(b, loc, mul(wk.expert, ci(5)),
                                               steps);
          return arith::RemUIOp::create(b, loc, add(pos, start), steps);
        };
        // The first K row of step kt of `wk` (in the order kPosition gives,
        // from its K run's first step).
        auto stepK0 = [&](Value kt, const Work &wk) -> Value {
          Value pos = kPosition(kt, wk);
          return mul(wk.kFirst ? add(wk.kFirst, pos) : pos, ci(TK));
        };
        // Step `ahead` of `wk` into L2 (leader only), where it is one of
        // the pair's steps: a box per weight atom, as issueWeights loads
        // them, with no shared memory or barrier, so it only adds to the
        // DRAM reads in flight.
        auto prefetchWeights = [&](Value ahead, const Work &wk) {
          buildIfThen(b, loc, icmp(P::ult, ahead, steps), [&] {
            Value k0 = stepK0(ahead, wk);
            for (int64_t a = 0; a < atoms; ++a)
              NVVM::CpAsyncBulkTensorPrefetchOp::create(
                  b, loc, maps[a / atomsPerMat], weightCoords(ci(a), k0, wk),
                  ValueRange{}, NVVM::TMALoadMode::TILE, Value());
          });
        };
        // Pair j's K steps (work wk) into the stages.
        auto producePair = [&](Value j, const Work &wk) {
          auto kLoop = scf::ForOp::create(b, loc, ci(0), steps, ci(1));
          OpBuilder::InsertionGuard lg(b);
          b.setInsertionPointToStart(kLoop.getBody());
          Value kt = kLoop.getInductionVar();
          Value k0 = stepK0(kt, wk);
          Value g = add(mul(j, steps), kt);
          waitEmpty(g);
          if (o.tmaWeights)
            buildIfThen(b, loc, leader, [&] {
              issueWeights(stageOf(g), k0, wk, barrierAt(stageOf(g)));
              if (o.l2PrefetchSteps)
                prefetchWeights(add(kt, ci(o.l2PrefetchSteps)), wk);
            });
          else if (o.queue)
            // (The leader's arrival orders its ring write before the MMA
            // warpgroups' reads; cp.async arrivals do not.)
            buildIfThen(b, loc, leader, [&] {
              NVVM::MBarrierArriveOp::create(b, loc, i64,
                                             barrierAt(stageOf(g)), Value());
            });
          issue(stageOf(g), k0, wk, Value(), barrierAt(stageOf(g)));
        };
        if (o.queue) {
          // Pairs from the counter until it passes the last: the leader
          // takes one, the producer warpgroup meets at a named barrier to
          // read it.
          scf::WhileOp loop = whilePairs([&](Value, Value slot) {
            buildIfThen(b, loc, leader, [&] {
              Value taken = memref::AtomicRMWOp::create(
                  b, loc, arith::AtomicRMWKind::addi, constI32(b, loc, 1),
                  args.queue, ValueRange{ci(0)});
              memref::StoreOp::create(b, loc, taken, ring, slot);
            });
            NVVM::BarrierOp::create(b, loc, Type(), constI32(b, loc, 1),
                                    constI32(b, loc, kWgmmaProducerThreads),
                                    nullptr, Value());
          });
          Block *body = b.getInsertionBlock();
          Item it = itemPairOf(body->getArgument(1));
          producePair(body->getArgument(0),
                      sources(it.rows, it.col0, it.kFirst));
          b.setInsertionPointAfter(loop);
          // The end: the stage of the next pair's first step completes,
          // once free, with arrivals and no copies; the MMA warpgroups read
          // the past-the-end value in its ring slot there and stop.
          Value g = mul(loop.getResult(0), steps);
          waitEmpty(g);
          NVVM::MBarrierArriveOp::create(b, loc, i64, barrierAt(stageOf(g)),
                                         Value());
          buildIfThen(b, loc, leader, [&] {
            if (o.tmaWeights)
              NVVM::MBarrierArriveExpectTxOp::create(
                  b, loc, TypeRange{}, barrierAt(stageOf(g)),
                  constI32(b, loc, 0), NVVM::MemScopeKind::CTA,
                  /*relaxed=*/false, Value());
            else
              NVVM::MBarrierArriveOp::create(b, loc, i64,
                                             barrierAt(stageOf(g)), Value());
          });
        } else {
          auto pairs = scf::ForOp::create(b, loc, ci(0), mine, ci(1));
          OpBuilder::InsertionGuard pg(b);
          b.setInsertionPointToStart(pairs.getBody());
          Value j = pairs.getInductionVar();
          producePair(j, workOf(j));
        }
        // Nothing may be in flight into shared memory when the block exits.
        NVVM::CpAsyncCommitGroupOp::create(b, loc);
        NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);
      }
      {
        OpBuilder::InsertionGuard rg(b);
        b.setInsertionPointToStart(&roles.getElseRegion().front());
        if (tall)
          NVVM::SetMaxRegisterOp::create(b, loc, int32_t(kWgmmaTallMmaRegs),
                                         NVVM::SetMaxRegisterAction::increase);
        Value yes = arith::ConstantIntOp::create(b, loc, b.getI1Type(), 1);
        // Stage `st` back to the producer(s): an arrival of every MMA
        // thread on this block's `empty`; with multicast also one of each
        // warpgroup on the other block's (its producer writes here too).
        // (A warpgroup's wgmma groups complete for all its threads.)
        Value remoteRank, remoteLeader;
        if (o.multicast) {
          remoteRank = arith::IndexCastOp::create(
              b, loc, b.getI32Type(), xorI(rank, ci(1)));
          remoteLeader = icmp(P::eq, remu(tid, 128), ci(0));
        }
        auto release = [&](Value st) {
          Value bar = barrierAt(add(ci(S), st));
          NVVM::MBarrierArriveOp::create(b, loc, i64, bar, Value());
          if (o.multicast)
            buildIfThen(b, loc, remoteLeader, [&] {
              Value remote = NVVM::MapaOp::create(
                  b, loc, LLVM::LLVMPointerType::get(ctx, 7), bar, remoteRank);
              NVVM::MBarrierArriveOp::create(b, loc, Type(), remote, Value(),
                                             NVVM::MemScopeKind::CLUSTER);
            });
        };
        auto waitFull = [&](Value g) {
          NVVM::MBarrierTryWaitParityOp::create(
              b, loc, barrierAt(stageOf(g)), parityOf(g, 0), ticks);
        };
        OpBuilder::InsertionGuard pg(b);
        Value j, item;
        if (o.queue) {
          // Pair j's value in the ring once its first stage is full; past
          // the last pair, stop.
          whilePairs([&](Value jb, Value) { waitFull(mul(jb, steps)); });
          j = b.getInsertionBlock()->getArgument(0);
          item = b.getInsertionBlock()->getArgument(1);
        } else {
          auto pairs = scf::ForOp::create(b, loc, ci(0), mine, ci(1));
          b.setInsertionPointToStart(pairs.getBody());
          j = pairs.getInductionVar();
        }
        // (The K steps are the producer's: the stages come in their order.)
        Item it = o.queue ? itemPairOf(item) : pairOf(j);
        TileRows rows = it.rows;
        Value col0 = it.col0;
        Value first = mul(j, steps);
        // A tall tile's band (rows 128-191) is multiplied where the tile
        // has more than 128 rows (an expert's last may not). Not so: a
        // warpgroup's main MMAs under a branch of their own (at its join
        // ptxas serialized the kernel's wgmmas, C7515), the band by a K
        // loop of its own (the pair kernels spilled 1.7 KB); a warpgroup
        // with none of the tile's rows skipping the pair measured 1.11-
        // 1.13x slower (results/wgmma-tall-2026-12-04.md).
        // Swapped, sub-band s where the tile has more than 128 + swapRows s.
        SmallVector<Value, 4> bandHere;
        Value tileRows = arith::SubIOp::create(b, loc, rows.end, rows.begin);
        for (int64_t sb = 0; tall && sb < (swapped ? subBands : 1); ++sb)
          bandHere.push_back(
              icmp(P::ugt, tileRows, ci(kWgmmaTileM + swapRows * sb)));
        auto kLoop = scf::ForOp::create(b, loc, ci(0), steps, ci(1), zeroAccs);
        {
          OpBuilder::InsertionGuard lg(b);
          b.setInsertionPointToStart(kLoop.getBody());
          Value kt = kLoop.getInductionVar();
          Value g = add(first, kt);
          waitFull(g);
          // The producer's cp.async writes (generic proxy) into the view of
          // the wgmma reads (async proxy).
          NVVM::FenceProxyOp::create(
              b, loc, NVVM::ProxyKind::async_shared,
              NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
          SmallVector<Value> accs =
              mmaStep(kLoop.getRegionIterArgs(), stageOf(g), yes, bandHere);
          // One wgmma group is left in flight: step g - 1's are done, so
          // its stage goes back to the producer.
          buildIfThen(b, loc, icmp(P::ugt, kt, ci(0)), [&] {
            release(stageOf(arith::SubIOp::create(b, loc, g, ci(1))));
          });
          scf::YieldOp::create(b, loc, accs);
        }
        auto pre = rowsAhead(rows.begin, rows.end);
        NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 0);
        release(stageOf(add(first, arith::SubIOp::create(b, loc, steps,
                                                        ci(1)))));
        epilogue(kLoop.getResults(), pre, rows.end, col0, rows.begin);
      }
      b.setInsertionPointToEnd(&entry);
      // Neither block of a cluster leaves while the other may still arrive
      // on its mbarriers or write its shared memory.
      if (o.multicast)
        clusterSync();
      gpu::ReturnOp::create(b, loc);
      return fn;
    }
    // Carried as i32 (fewer registers beside the accumulators): an A
    // chunk's source row, or -1 to zero-fill.
    Type i32 = b.getI32Type();
    auto toI32 = [&](Value v) -> Value {
      return arith::IndexCastOp::create(b, loc, i32, v);
    };
    auto toIdx = [&](Value v) -> Value {
      return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
    };
    auto pack = [&](const Work &wk) {
      SmallVector<Value> v{toI32(wk.expert), toI32(wk.begin), toI32(wk.end),
                           toI32(wk.col0)};
      for (size_t i = 0; i < aChunks.size(); ++i)
        v.push_back(arith::SelectOp::create(
            b, loc, icmp(P::ne, wk.aSources[2 * i + 1], ci(0)),
            toI32(wk.aSources[2 * i]), constI32(b, loc, -1)));
      return v;
    };
    auto unpack = [&](ValueRange v) {
      Work wk{toIdx(v[0]), toIdx(v[1]), toIdx(v[2]), toIdx(v[3]), {}};
      for (Value s : v.drop_front(4)) {
        Value ok = arith::CmpIOp::create(b, loc, P::sge, s, i32Zero);
        wk.aSources.push_back(
            toIdx(arith::MaxSIOp::create(b, loc, s, i32Zero)));
        wk.aSources.push_back(ops.select(ok, ci(8), ci(0)));
      }
      return wk;
    };
    Work w0 = workOf(ci(0));
    // Prologue: steps 0 .. S - 3 of the first pair (the plan takes this
    // form only where a pair has at least S - 2 steps).
    Value any = icmp(P::ugt, mine, ci(0));
    for (int64_t st = 0; st < S - 2; ++st)
      issue(ci(st), ci(st * TK), w0, any);
    // Pairs j = 0 .. mine - 1, the j-th's work carried (as i32); its K
    // steps in an inner loop that also issues the first copies of pair
    // j + 1 (its work loaded as pair j starts).
    auto pairs = scf::ForOp::create(b, loc, ci(0), mine, ci(1), pack(w0));
    {
      OpBuilder::InsertionGuard pg(b);
      b.setInsertionPointToStart(pairs.getBody());
      Value j = pairs.getInductionVar();
      ValueRange curVals = pairs.getRegionIterArgs();
      Value nextJ = add(j, ci(1));
      Value nextValid = icmp(P::ult, nextJ, mine);
      SmallVector<Value> nextVals = pack(workOf(nextJ));
      Value firstStep = mul(j, steps);
      auto kLoop = scf::ForOp::create(b, loc, ci(0), steps, ci(1),
                                      ValueRange{zeroAcc});
      {
        OpBuilder::InsertionGuard lg(b);
        b.setInsertionPointToStart(kLoop.getBody());
        Value kt = kLoop.getInductionVar();
        Value g = add(firstStep, kt);
        waitStep();
        Value acc = mmaStep(kLoop.getRegionIterArgs(), remu(g, S),
                            arith::ConstantIntOp::create(b, loc,
                                                         b.getI1Type(), 1))[0];
        // The copies S - 2 steps ahead: this pair's, or the next pair's
        // first ones.
        // (Branches, so that only the last S - 2 steps wait for the next
        // pair's table loads.)
        Value ahead = add(kt, ci(S - 2));
        Value aheadStage = remu(add(g, ci(S - 2)), S);
        auto inThis = scf::IfOp::create(b, loc, icmp(P::ult, ahead, steps),
                                        /*withElseRegion=*/true);
        {
          OpBuilder::InsertionGuard ig(b);
          b.setInsertionPointToStart(&inThis.getThenRegion().front());
          issue(aheadStage, mul(ahead, ci(TK)), unpack(curVals), Value());
          b.setInsertionPointToStart(&inThis.getElseRegion().front());
          issue(aheadStage,
                mul(arith::SubIOp::create(b, loc, ahead, steps), ci(TK)),
                unpack(nextVals), nextValid);
        }
        scf::YieldOp::create(b, loc, acc);
      }
      // The epilogue, the next pair's first copies in flight.
      Work cur = unpack(curVals);
      auto pre = rowsAhead(cur.begin, cur.end);
      NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 0);
      epilogue(kLoop.getResults(), pre, cur.end, cur.col0);
      scf::YieldOp::create(b, loc, nextVals);
    }
    NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 0);
    // Nothing may be in flight into shared memory when the block exits.
    NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);
    b.setInsertionPointToEnd(&entry);
    gpu::ReturnOp::create(b, loc);
    return fn;
  }

  Value tile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value colBlock = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  if (o.groupTiles)
    std::tie(tile, colBlock) = groupOrder(
        add(tile, mul(colBlock, gpu::GridDimOp::create(b, loc,
                                                       gpu::Dimension::x))),
        gpu::GridDimOp::create(b, loc, gpu::Dimension::x));
  TileRows rows = groupedGemmTileRows(b, loc, o, args, tile, TM);
  Work work = sources(rows, mul(colBlock, ci(TN)));

  // Prologue: steps 0 .. S - 3 in flight (past the end, the last step again,
  // unused).
  KSteps ks = blockKSteps(b, loc, o, arith::DivUIOp::create(b, loc, K, ci(TK)));
  Value steps = ks.count;
  Value lastK = arith::SubIOp::create(b, loc, K, ci(TK));
  // K of this block's step i (past the end, the last step again, unused).
  auto kOf = [&](Value i) {
    return arith::MinUIOp::create(b, loc, mul(add(ks.first, i), ci(TK)),
                                  lastK);
  };
  for (int64_t st = 0; st < S - 2; ++st)
    issue(ci(st), kOf(ci(st)), work, Value());
  Value warpgroupRows =
      o.dense ? icmp(P::ult,
                     splitColumns ? rows.begin
                                  : add(rows.begin, mul(warpgroup, ci(64))),
                     rows.end)
              : arith::ConstantIntOp::create(b, loc, b.getI1Type(), 1)
                    .getResult();
  auto kLoop = scf::ForOp::create(b, loc, ci(0), steps, ci(1),
                                  ValueRange{zeroAcc});
  {
    OpBuilder::InsertionGuard lg(b);
    b.setInsertionPointToStart(kLoop.getBody());
    Value kt = kLoop.getInductionVar();
    Value acc = kLoop.getRegionIterArgs()[0];
    waitStep();
    Value ahead = add(kt, ci(S - 2));
    issue(remu(ahead, S), kOf(ahead), work, Value());
    scf::YieldOp::create(b, loc, mmaStep(acc, remu(kt, S), warpgroupRows));
  }
  auto pre = rowsAhead(rows.begin, rows.end);
  NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 0);
  // Nothing may be in flight into shared memory when the block exits.
  NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);
  epilogue(kLoop.getResults(), pre, rows.end, work.col0);
  b.setInsertionPointToEnd(&entry);
  gpu::ReturnOp::create(b, loc);
  return fn;
}
