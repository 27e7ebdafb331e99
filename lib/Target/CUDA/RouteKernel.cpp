//===- RouteKernel.cpp - The gating fusion group as one GPU kernel ---------===//
//
// Part of moe-compiler.
//
// One block of kRouteThreads threads routes every token of a step, so the
// per-expert counts, their prefix sum and the dense mapping table need no
// grid-wide synchronisation: a warp per token (tokens strided over the 32
// warps) computes the scores and selects the top k experts by k rounds of a
// warp-wide arg-max (each lane scans the keys of its E / 32 experts, read
// and scored once into registers, as integers that order as the floats
// do; then two redux.sync: the best key, the lowest id holding it): round
// j takes the best expert strictly after the previous winner in the order
// (score descending, id ascending), which is the router's selection order.
// Counts are shared-memory atomics; the scan is Hillis-Steele over the
// block; the mapping table then puts assignment
// (t, j) at row offsets[e] + its position within expert e. For many tokens
// the same code runs split (RoutePart): select blocks of 16 tokens count in
// shared memory and take an expert's base with one global atomic; finish
// blocks scan the global counts and map their share of the assignments.
//
// The router matmul (logits) is the dense grouped GEMV that runs before it,
// across the whole GPU; or, at decode sizes, the gating kernel does both:
// its blocks add the router's sums over slices of K into a device global,
// and the last of them (a self-resetting ticket) routes with the same code
// (emitRouting) in a block of kGateThreads threads.
//
//===----------------------------------------------------------------------===//

#include "moe/Target/CUDA/ExpertKernels.h"
#include "moe/Dialect/MoE/Utils/TensorBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

#include <algorithm>
#include <limits>

using namespace mlir;
using namespace mlir::moe;

std::string mlir::moe::routeKernelName(const RouteKernelOptions &o) {
  std::string name = "moe_route_e" + std::to_string(o.numExperts) + "_k" +
                     std::to_string(o.topK) +
                     (o.sigmoid ? "_sigmoid" : "_softmax");
  if (o.afterTopk)
    name += "_after";
  if (o.renormalize)
    name += "_renorm";
  if (o.biasType)
    name += o.biasType.isF32() ? "_biasf32" : "_biasbf16";
  if (o.numGroups)
    name += "_g" + std::to_string(o.numGroups) + "of" +
            std::to_string(o.topkGroup) + (o.groupTop2Sum ? "top2" : "max");
  if (o.tileRows)
    name += "_tiles" + std::to_string(o.tileRows);
  if (o.tileStep && o.tileStep != o.tileRows)
    name += "s" + std::to_string(o.tileStep);
  if (o.oneToken)
    name += "_t1";
  if (o.triggerDependents)
    name += "_trigger";
  if (o.prefetchRouter)
    name += "_pf";
  if (o.part == RoutePart::Select)
    name += o.withRouter ? "_select_router_k" + std::to_string(o.routerStageK)
                         : "_select";
  else if (o.part == RoutePart::CapacityCount)
    name += "_capacity_count";
  else if (o.part == RoutePart::Capacity)
    name += "_capacity";
  else if (o.part == RoutePart::Finish)
    name += "_finish";
  if (o.capacity)
    name += "_cap" + std::to_string(o.capacity);
  if (o.scaling != 1.0) {
    // The bit pattern keeps distinct scalings apart in the symbol name.
    uint64_t bits;
    static_assert(sizeof(bits) == sizeof(o.scaling));
    std::memcpy(&bits, &o.scaling, sizeof(bits));
    name += "_s" + llvm::utohexstr(bits);
  }
  return name;
}

/// Whether the routing part of `o` reads logits from an argument (the
/// Capacity and Finish parts read none; the Select part with the router
/// computes its own).
static bool takesLogits(const RouteKernelOptions &o) {
  return (o.part == RoutePart::Whole || o.part == RoutePart::Select) &&
         !o.withRouter;
}

/// buildRouteKernel's argument types, from `logits` (or what replaces it)
/// on.
static SmallVector<Type> routeArgTypes(OpBuilder &b,
                                       const RouteKernelOptions &o) {
  int64_t dyn = ShapedType::kDynamic;
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  auto vecI32 = MemRefType::get({dyn}, i32);
  auto vecF32 = MemRefType::get({dyn}, f32);
  SmallVector<Type> argTypes;
  if (o.withRouter)
    argTypes.append(2, MemRefType::get({dyn, dyn}, b.getBF16Type())); // x, w
  else if (takesLogits(o))
    argTypes.push_back(MemRefType::get({dyn, dyn}, f32)); // logits
  argTypes.append({vecI32,                                // offsets
                   vecI32,                                // rowToken
                   vecF32,                                // rowWeight
                   vecI32,                                // hit
                   vecI32, vecI32, vecF32});              // assignments
  if (o.tileRows) {
    argTypes.push_back(vecI32); // tileExpert
    argTypes.push_back(vecI32); // tileRow
  }
  if (o.biasType)
    argTypes.push_back(MemRefType::get({dyn}, o.biasType));
  if (o.part != RoutePart::Whole)
    argTypes.push_back(vecI32); // per-expert counts in global memory (zeroed)
  if (o.part == RoutePart::CapacityCount || o.part == RoutePart::Capacity)
    argTypes.push_back(vecI32); // each capacity block's counts per expert
  return argTypes;
}

/// The routing buffers among `args`, laid out as routeArgTypes says.
static RouteBuffers routeBuffers(ValueRange args, const RouteKernelOptions &o) {
  RouteBuffers r;
  unsigned next = 0;
  if (o.withRouter)
    next = 2; // x and the router: buildRouteKernel's
  else if (takesLogits(o))
    r.logits = args[next++];
  r.offsets = args[next++];
  r.rowToken = args[next++];
  r.rowWeight = args[next++];
  r.hit = args[next++];
  r.assignExpert = args[next++];
  r.assignPos = args[next++];
  r.assignWeight = args[next++];
  if (o.tileRows) {
    r.tileExpert = args[next++];
    r.tileRow = args[next++];
  }
  if (o.biasType)
    r.bias = args[next++];
  if (o.part != RoutePart::Whole)
    r.globalCounts = args[next++];
  if (o.part == RoutePart::CapacityCount || o.part == RoutePart::Capacity)
    r.blockCounts = args[next++];
  return r;
}

//===----------------------------------------------------------------------===//
// The router inside the select kernel
//===----------------------------------------------------------------------===//

namespace {
/// The router stage's row: E bf16 padded to an odd number of 16-byte
/// units, so that the 8 rows an ldmatrix phase reads fall in distinct
/// banks (8 or 16 more; at least 8: the odd last n8 tile's pair reads the
/// padding as its second tile).
int64_t routerStageRow(int64_t experts) {
  return experts + ((experts / 8) % 2 ? 16 : 8);
}
/// The tokens' stage row: stageK + 8 bf16 (stageK a multiple of 32: an odd
/// number of 16-byte units too).
int64_t tokenStageRow(int64_t stageK) { return stageK + 8; }
/// A stage's bytes: the tokens' stageK columns and the router's stageK rows.
int64_t routerStageBytes(int64_t experts, int64_t stageK) {
  return (kRouteSelectTokens * tokenStageRow(stageK) +
          stageK * routerStageRow(experts)) *
         2;
}
/// The stages of stageK rows that the budget holds (at most
/// kRouterInSelectStages).
int64_t routerStages(int64_t experts, int64_t stageK) {
  return std::min<int64_t>(kRouterInSelectStages,
                           kRouterInSelectSharedBytes /
                               routerStageBytes(experts, stageK));
}
} // namespace

RouterInSelectPlan mlir::moe::planRouterInSelect(int64_t d, int64_t experts) {
  // The most bytes in flight (all stages but the one being read, at most
  // the K steps there are), at least two stages in flight where a larger
  // stage allows it; a larger stage where that ties (fewer barriers).
  RouterInSelectPlan p;
  int64_t best = -1;
  for (int64_t k : {32, 64, 128, 256}) {
    int64_t stages = routerStages(experts, k);
    if (d % k != 0 || (k > 32 && stages < 3))
      continue;
    int64_t inFlight =
        std::min(stages - 1, d / k) * routerStageBytes(experts, k);
    if (inFlight >= best) {
      best = inFlight;
      p.stageK = k;
      p.stages = stages;
    }
  }
  p.sharedBytes = p.stages * routerStageBytes(experts, p.stageK);
  return p;
}

std::string mlir::moe::whyNotRouterInSelect(int64_t d, int64_t experts) {
  if (experts % 8 != 0 || experts > 256)
    return "the select kernel computes the logits of 8 to 256 experts, a "
           "multiple of 8, got " +
           std::to_string(experts);
  if (d % 32 != 0)
    return "the select kernel computes the logits of a hidden size that is "
           "a multiple of 32, got " +
           std::to_string(d);
  if (planRouterInSelect(d, experts).stages < 2)
    return "two stages of the router's 32 rows do not fit " +
           std::to_string(kRouterInSelectSharedBytes / 1024) +
           " KiB of shared memory";
  return "";
}

/// The logits of the block's kRouteSelectTokens tokens from `row0` on,
/// x[row0 + i] . w[:, e] for i < 16 (rows past x's end read as zeros), into
/// a workgroup buffer f32 [16, E] that it returns, complete for every thread
/// (a barrier at the end). The block's warps take n8 tiles of experts in
/// pairs (one ldmatrix.x4.trans of the router's stage: two tiles' B
/// fragments; an odd last tile's pair reads the padding as its second
/// tile, never stored) and, where there are fewer pairs than warps, every
/// KP-th k16 step of the pair (KP = 16 / pairs), adding their sums into the
/// buffer by shared-memory atomics. Stages of TK K rows by cp.async in
/// dynamic shared memory (routerStages(E, TK) of them, all but one in
/// flight), as the grouped mma.sync kernel's pipeline.
static Value emitRouterLogits(OpBuilder &b, Location loc, gpu::GPUFuncOp fn,
                              int64_t E, int64_t TK, Value x, Value w,
                              Value row0) {
  MLIRContext *ctx = b.getContext();
  Type bf16 = b.getBF16Type(), f32 = b.getF32Type();
  const int64_t TM = kRouteSelectTokens, S = routerStages(E, TK);
  const int64_t threads = kRouteSelectThreads, warps = threads / 32;
  assert(TM == 16 && "one m16 tile of tokens");
  assert(E % 8 == 0 && S >= 2 && TK % 32 == 0 && "whyNotRouterInSelect");
  const int64_t aStride = tokenStageRow(TK), bStride = routerStageRow(E);
  const int64_t nTiles = E / 8, pairs = (nTiles + 1) / 2;
  assert(pairs <= warps && "a warp per pair of n8 tiles at least");
  const int64_t kParts = warps / pairs;
  auto wg = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  // The stages in dynamic shared memory (its base is 16-byte aligned, as
  // cp.async's 16-byte copies and ldmatrix's rows need; every offset and
  // row stride is a multiple of 16 bytes): the tokens', then the router's.
  Value raw = gpu::DynamicSharedMemoryOp::create(
      b, loc,
      MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                      MemRefLayoutAttrInterface(), wg));
  Value sA = memref::ViewOp::create(
      b, loc,
      MemRefType::get({S, TM, aStride}, bf16, MemRefLayoutAttrInterface(), wg),
      raw, constIndex(b, loc, 0), ValueRange{});
  Value sB = memref::ViewOp::create(
      b, loc,
      MemRefType::get({S, TK, bStride}, bf16, MemRefLayoutAttrInterface(), wg),
      raw, constIndex(b, loc, S * TM * aStride * 2), ValueRange{});
  Value logits = fn.addWorkgroupAttribution(
      MemRefType::get({TM, E}, f32, MemRefLayoutAttrInterface(), wg), loc);

  IndexOps ix{b, loc};
  using P = arith::CmpIPredicate;
  auto ci = [&](int64_t v) { return ix.c(v); };
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value warp = ix.divu(tid, 32), lane = ix.remu(tid, 32);
  Value T = memref::DimOp::create(b, loc, x, 0);
  Value K = memref::DimOp::create(b, loc, x, 1);

  // The sums start at zero (the first stage's barrier orders this before
  // any warp adds into them).
  {
    auto zero = scf::ForOp::create(b, loc, tid, ci(TM * E), ci(threads));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(zero.getBody());
    Value i = zero.getInductionVar();
    memref::StoreOp::create(b, loc, constF32(b, loc, 0.0f), logits,
                            ValueRange{ix.divu(i, E), ix.remu(i, E)});
  }

  // The 16-byte chunks of a stage: the tokens' TM x TK / 8 (threads below
  // that many; rows past T zero-filled from row0, which exists), then the
  // router's TK x E / 8 over all threads.
  const int64_t aChunks = TM * (TK / 8), bChunks = TK * (E / 8);
  assert(aChunks <= threads);
  Value aRow = ix.divu(tid, TK / 8), aCol = ix.mul(ix.remu(tid, TK / 8), ci(8));
  Value aToken = ix.add(row0, aRow);
  Value aInside = ix.icmp(P::ult, aToken, T);
  Value aSource = ix.select(aInside, aToken, row0);
  Value aCount = ix.select(aInside, ci(8), ci(0));
  auto issueTokens = [&](Value stage, Value k0) {
    buildIfThen(b, loc, ix.icmp(P::ult, tid, ci(aChunks)), [&] {
      asyncCopy16(b, loc, sA, {stage, aRow, aCol}, x,
                  {aSource, ix.add(k0, aCol)}, aCount);
    });
  };
  auto issueRouter = [&](Value stage, Value k0) {
    for (int64_t c0 = 0; c0 < bChunks; c0 += threads) {
      auto copy = [&] {
        Value c = ix.add(tid, ci(c0));
        Value row = ix.divu(c, E / 8), col = ix.mul(ix.remu(c, E / 8), ci(8));
        asyncCopy16(b, loc, sB, {stage, row, col}, w, {ix.add(k0, row), col},
                    ci(8));
      };
      if (c0 + threads <= bChunks)
        copy();
      else
        buildIfThen(b, loc, ix.icmp(P::ult, tid, ci(bChunks - c0)), copy);
    }
  };

  // The first S - 1 steps in flight; past the end, the last step again
  // (unused). The router's copies of those steps go out before the grid
  // dependency wait (no kernel before this one writes the router), as a
  // group each, then the tokens' after it: step i's copies are complete
  // with group S - 1 + i either way, so the loop waits as the grouped
  // mma.sync kernel does (S - 1 groups left in flight).
  Value steps = ix.divu(K, TK);
  Value lastK = arith::SubIOp::create(b, loc, K, ci(TK));
  auto kOf = [&](Value i) {
    return arith::MinUIOp::create(b, loc, ix.mul(i, ci(TK)), lastK).getResult();
  };
  for (int64_t st = 0; st < S - 1; ++st) {
    issueRouter(ci(st), kOf(ci(st)));
    NVVM::CpAsyncCommitGroupOp::create(b, loc);
  }
  NVVM::GriddepcontrolOp::create(b, loc, NVVM::GridDepActionKind::wait);
  for (int64_t st = 0; st < S - 1; ++st) {
    issueTokens(ci(st), kOf(ci(st)));
    NVVM::CpAsyncCommitGroupOp::create(b, loc);
  }

  // This warp's pair of n8 tiles and its share of the k16 steps; warps past
  // pairs x kParts only copy.
  Value pair = ix.remu(warp, pairs), kPart = ix.divu(warp, pairs);
  Value computes = ix.icmp(P::ult, warp, ci(pairs * kParts));
  Value n0 = ix.mul(pair, ci(16));
  Value ldRow = ix.remu(lane, 16), ldCol = ix.mul(ix.divu(lane, 16), ci(8));
  Value zeroF = constF32(b, loc, 0.0f);
  auto fragType = VectorType::get({4, 2}, bf16);
  auto reg = [&](Value frag, int64_t i) {
    return fragmentRegister(b, loc, frag, i);
  };
  auto kLoop = scf::ForOp::create(b, loc, ci(0), steps, ci(1),
                                  SmallVector<Value>(8, zeroF));
  {
    OpBuilder::InsertionGuard lg(b);
    b.setInsertionPointToStart(kLoop.getBody());
    Value kt = kLoop.getInductionVar();
    SmallVector<Value> acc(kLoop.getRegionIterArgs());
    Value stage = ix.remu(kt, S);
    Value ahead = ix.add(kt, ci(S - 1));
    issueTokens(ix.remu(ahead, S), kOf(ahead));
    issueRouter(ix.remu(ahead, S), kOf(ahead));
    NVVM::CpAsyncCommitGroupOp::create(b, loc);
    NVVM::CpAsyncWaitGroupOp::create(b, loc, int32_t(S - 1));
    gpu::BarrierOp::create(b, loc);
    for (int64_t ks = 0; ks < TK / 16; ++ks) {
      // k16 step q = kt TK / 16 + ks is this warp's where q % kParts is its
      // part.
      Value mine = computes;
      if (kParts > 1)
        mine = arith::AndIOp::create(
            b, loc, mine,
            ix.icmp(P::eq,
                    ix.remu(ix.add(ix.mul(kt, ci(TK / 16)), ci(ks)), kParts),
                    kPart));
      auto step = scf::IfOp::create(b, loc, TypeRange(ValueRange(acc)), mine,
                                    /*withElseRegion=*/true);
      {
        OpBuilder::InsertionGuard tg(b);
        b.setInsertionPointToStart(&step.getThenRegion().front());
        Value a = nvgpu::LdMatrixOp::create(
            b, loc, fragType, sA,
            ValueRange{stage, ldRow, ix.add(ci(ks * 16), ldCol)},
            /*transpose=*/false, /*numTiles=*/4);
        Value bf = nvgpu::LdMatrixOp::create(
            b, loc, fragType, sB,
            ValueRange{stage, ix.add(ci(ks * 16), ldRow), ix.add(n0, ldCol)},
            /*transpose=*/true, /*numTiles=*/4);
        SmallVector<Value> aRegs{reg(a, 0), reg(a, 1), reg(a, 2), reg(a, 3)};
        SmallVector<Value> next = acc;
        for (int64_t half = 0; half < 2; ++half)
          mmaSyncBf16(b, loc, aRegs, {reg(bf, 2 * half), reg(bf, 2 * half + 1)},
                      MutableArrayRef<Value>(next).slice(4 * half, 4));
        scf::YieldOp::create(b, loc, next);
        b.setInsertionPointToStart(&step.getElseRegion().front());
        scf::YieldOp::create(b, loc, acc);
      }
      acc.assign(step.getResults().begin(), step.getResults().end());
    }
    // The next iteration's copies overwrite the stage read here.
    gpu::BarrierOp::create(b, loc);
    scf::YieldOp::create(b, loc, acc);
  }
  // Nothing may be in flight into shared memory past here.
  NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);

  // Accumulator 4 h + c (tile h of the pair): row g + 8 (c / 2), column
  // n0 + 8 h + tg2 + c % 2; a tile past E (the odd last pair's second) is
  // not stored.
  buildIfThen(b, loc, computes, [&] {
    Value g = ix.divu(lane, 4), tg2 = ix.mul(ix.remu(lane, 4), ci(2));
    for (int64_t half = 0; half < 2; ++half) {
      auto store = [&] {
        for (int64_t c = 0; c < 4; ++c) {
          Value row = ix.add(g, ci(8 * (c / 2)));
          Value col = ix.add(n0, ix.add(ci(8 * half + c % 2), tg2));
          Value v = kLoop.getResult(4 * half + c);
          if (kParts > 1)
            memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::addf, v,
                                        logits, ValueRange{row, col});
          else
            memref::StoreOp::create(b, loc, v, logits, ValueRange{row, col});
        }
      };
      if (half == 1 && nTiles % 2)
        buildIfThen(b, loc, ix.icmp(P::ult, ix.add(n0, ci(8)), ci(E)), store);
      else
        store();
    }
  });
  gpu::BarrierOp::create(b, loc);
  return logits;
}

/// The assignment t k + j (assignExpert's token-major order) of priority
/// q = j T + t among `tokens` tokens of k assignments each.
static Value assignmentOfPriority(const IndexOps &ix, Value q, Value tokens,
                                  int64_t k) {
  return ix.add(ix.mul(arith::RemUIOp::create(ix.b, ix.loc, q, tokens), ix.c(k)),
                arith::DivUIOp::create(ix.b, ix.loc, q, tokens));
}

/// Capacity drops (RouteKernelOptions::capacity), run by all `threads`
/// threads of a block: ranks the assignments (assignExpert [T k], token-
/// major) in priority order q = j T + t, every token's first choice (in
/// token order) before any second choice, and counts each expert's in
/// `running` (workgroup i32, at least E, zero on entry; on exit each
/// expert's assignments, dropped ones included). An assignment ranked at or
/// past the capacity is dropped (assignExpert -1, assignWeight 0); the
/// others' assignPos becomes their rank. Chunks of `threads` assignments:
/// the lanes of a warp with the same expert find each other with
/// match.any.sync (an assignment's rank among them: the lanes below it).
/// A warp's base for an expert is `running` plus the groups of the warps
/// before it: with `table` (workgroup i32 [threads / 32, E], zero on
/// entry and exit) each group's leader writes its size there and every
/// lane adds up the rows above its warp's, three barriers a chunk (the
/// Capacity part's blocks); without it the warps that hold assignments
/// take their bases from `running` in turn, a barrier each (one block's
/// routing: at most 64 tokens; more than 256 experts). Either way the
/// ranks follow q whatever the order the experts were selected in. The
/// assignments q in [qBegin, qEnd).
static void emitCapacityDrops(OpBuilder &b, Location loc, int64_t threads,
                              int64_t k, int64_t capacity, Value running,
                              Value table, Value assignExpert, Value assignPos,
                              Value assignWeight, Value qBegin, Value qEnd) {
  Type i32 = b.getI32Type(), index = b.getIndexType();
  IndexOps ix{b, loc};
  using P = arith::CmpIPredicate;
  auto c32 = [&](int32_t v) { return constI32(b, loc, v); };
  auto load = [&](Value m, ValueRange at) -> Value {
    return memref::LoadOp::create(b, loc, m, at);
  };
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value warp = ix.divu(tid, 32);
  Value n = memref::DimOp::create(b, loc, assignExpert, 0);
  Value tokens = ix.divu(n, k);
  auto chunks = scf::ForOp::create(b, loc, qBegin, qEnd, ix.c(threads));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(chunks.getBody());
  Value q = ix.add(chunks.getInductionVar(), tid);
  Value valid = ix.icmp(P::ult, q, qEnd);
  Value a = assignmentOfPriority(ix, ix.select(valid, q, ix.c(0)), tokens, k);
  Value e = ix.select(valid, load(assignExpert, a), c32(-1));
  // Every lane of the warp takes part (the chunks are uniform over the
  // block); lanes past the end match each other on -1 and count nowhere.
  Value same = NVVM::MatchSyncOp::create(b, loc, i32, c32(-1), e,
                                         NVVM::MatchSyncKind::any);
  Value lanesBelow = NVVM::LaneMaskLtOp::create(b, loc, i32);
  Value below = math::CtPopOp::create(
      b, loc, arith::AndIOp::create(b, loc, same, lanesBelow));
  Value group = math::CtPopOp::create(b, loc, same);
  Value leader = ix.icmp(P::eq, below, c32(0));
  Value eSafe =
      arith::IndexCastOp::create(b, loc, index, ix.select(valid, e, c32(0)));
  // The warps that hold assignments (one at 4 tokens of top-2, not the
  // block's 32).
  Value left = arith::SubIOp::create(b, loc, qEnd, chunks.getInductionVar());
  Value holding = arith::MinUIOp::create(b, loc, ix.c(threads / 32),
                                         ix.divu(ix.add(left, ix.c(31)), 32));
  Value base;
  if (table) {
    buildIfThen(b, loc, arith::AndIOp::create(b, loc, valid, leader), [&] {
      memref::StoreOp::create(b, loc, group, table, ValueRange{warp, eSafe});
    });
    gpu::BarrierOp::create(b, loc);
    auto sum = scf::IfOp::create(b, loc, TypeRange{i32}, valid,
                                 /*withElseRegion=*/true);
    b.setInsertionPointToStart(&sum.getThenRegion().front());
    auto above = scf::ForOp::create(b, loc, ix.c(0), warp, ix.c(1),
                                    ValueRange{load(running, eSafe)});
    {
      OpBuilder::InsertionGuard lg(b);
      b.setInsertionPointToStart(above.getBody());
      scf::YieldOp::create(
          b, loc,
          ValueRange{ix.add(above.getRegionIterArgs().front(),
                            load(table, {above.getInductionVar(), eSafe}))});
    }
    scf::YieldOp::create(b, loc, above.getResults());
    b.setInsertionPointToStart(&sum.getElseRegion().front());
    scf::YieldOp::create(b, loc, ValueRange{c32(0)});
    b.setInsertionPointAfter(sum);
    base = sum.getResult(0);
    gpu::BarrierOp::create(b, loc);
    // Each expert's column into its count, and back to zero.
    Value experts = memref::DimOp::create(b, loc, table, 1);
    auto columns = scf::ForOp::create(b, loc, tid, experts, ix.c(threads));
    {
      OpBuilder::InsertionGuard cg(b);
      b.setInsertionPointToStart(columns.getBody());
      Value col = columns.getInductionVar();
      auto rows = scf::ForOp::create(b, loc, ix.c(0), holding, ix.c(1),
                                     ValueRange{c32(0)});
      {
        OpBuilder::InsertionGuard rg(b);
        b.setInsertionPointToStart(rows.getBody());
        Value w = rows.getInductionVar();
        Value got = load(table, {w, col});
        memref::StoreOp::create(b, loc, c32(0), table, ValueRange{w, col});
        scf::YieldOp::create(
            b, loc, ValueRange{ix.add(rows.getRegionIterArgs().front(), got)});
      }
      memref::StoreOp::create(b, loc,
                              ix.add(load(running, col), rows.getResult(0)),
                              running, col);
    }
    gpu::BarrierOp::create(b, loc);
  } else {
    auto turns = scf::ForOp::create(b, loc, ix.c(0), holding, ix.c(1),
                                    ValueRange{c32(0)});
    OpBuilder::InsertionGuard tg(b);
    b.setInsertionPointToStart(turns.getBody());
    Value mine = ix.icmp(P::eq, warp, turns.getInductionVar());
    auto turn = scf::IfOp::create(b, loc, TypeRange{i32}, mine,
                                  /*withElseRegion=*/true);
    b.setInsertionPointToStart(&turn.getThenRegion().front());
    auto read = scf::IfOp::create(b, loc, TypeRange{i32}, valid,
                                  /*withElseRegion=*/true);
    b.setInsertionPointToStart(&read.getThenRegion().front());
    scf::YieldOp::create(b, loc, ValueRange{load(running, eSafe)});
    b.setInsertionPointToStart(&read.getElseRegion().front());
    scf::YieldOp::create(b, loc, ValueRange{c32(0)});
    b.setInsertionPointAfter(read);
    Value got = read.getResult(0);
    // Every lane of the group has read the count before its leader adds.
    NVVM::SyncWarpOp::create(b, loc, c32(-1));
    buildIfThen(b, loc, arith::AndIOp::create(b, loc, valid, leader), [&] {
      memref::StoreOp::create(b, loc, ix.add(got, group), running, eSafe);
    });
    scf::YieldOp::create(b, loc, ValueRange{got});
    b.setInsertionPointToStart(&turn.getElseRegion().front());
    scf::YieldOp::create(b, loc, turns.getRegionIterArgs().front());
    b.setInsertionPointAfter(turn);
    gpu::BarrierOp::create(b, loc);
    scf::YieldOp::create(b, loc, turn.getResults());
    b.setInsertionPointAfter(turns);
    base = turns.getResult(0);
  }
  Value rank = ix.add(base, below);
  buildIfThen(b, loc, valid, [&] {
    auto keep = scf::IfOp::create(b, loc,
                                  ix.icmp(P::slt, rank, c32(capacity)),
                                  /*withElseRegion=*/true);
    b.setInsertionPointToStart(&keep.getThenRegion().front());
    memref::StoreOp::create(b, loc, rank, assignPos, a);
    b.setInsertionPointToStart(&keep.getElseRegion().front());
    memref::StoreOp::create(b, loc, c32(-1), assignExpert, a);
    memref::StoreOp::create(b, loc, constF32(b, loc, 0.0f), assignWeight, a);
  });
}

/// The split routing's capacity parts, a block per kRouteThreads
/// assignments in priority order (q = j T + t): CapacityCount writes each
/// block's assignments per expert into blockCounts [block, E]; Capacity
/// starts each block's counts at the sum of the blocks' before it, ranks and
/// drops its assignments (emitCapacityDrops, with the table), and block 0
/// writes min(total, capacity) into the global counts Finish scans.
static void emitCapacityPart(OpBuilder &b, Location loc, gpu::GPUFuncOp fn,
                             const RouteKernelOptions &o, int64_t threads,
                             const RouteBuffers &r) {
  assert(o.capacity > 0 && o.numExperts <= threads &&
         "a capacity, a thread per expert");
  Type i32 = b.getI32Type(), index = b.getIndexType();
  IndexOps ix{b, loc};
  using P = arith::CmpIPredicate;
  auto c32 = [&](int32_t v) { return constI32(b, loc, v); };
  auto workgroup = gpu::AddressSpaceAttr::get(b.getContext(),
                                              gpu::AddressSpace::Workgroup);
  const int64_t E = o.numExperts, warps = threads / 32;
  Value running = fn.addWorkgroupAttribution(
      MemRefType::get({E}, i32, MemRefLayoutAttrInterface(), workgroup), loc);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value block = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value expert = ix.icmp(P::ult, tid, ix.c(E));
  Value n = memref::DimOp::create(b, loc, r.assignExpert, 0);
  Value qBegin = ix.mul(block, ix.c(threads));
  Value qEnd = arith::MinUIOp::create(b, loc, n, ix.add(qBegin, ix.c(threads)));
  // blockCounts[block' E + e] summed over block' in [from, to).
  auto sumBlocks = [&](Value e, Value from, Value to) -> Value {
    auto loop =
        scf::ForOp::create(b, loc, from, to, ix.c(1), ValueRange{c32(0)});
    OpBuilder::InsertionGuard lg(b);
    b.setInsertionPointToStart(loop.getBody());
    Value at = ix.add(ix.mul(loop.getInductionVar(), ix.c(E)), e);
    scf::YieldOp::create(
        b, loc,
        ValueRange{ix.add(loop.getRegionIterArgs().front(),
                          memref::LoadOp::create(b, loc, r.blockCounts, at))});
    return loop.getResult(0);
  };
  if (o.part == RoutePart::CapacityCount) {
    buildIfThen(b, loc, expert, [&] {
      memref::StoreOp::create(b, loc, c32(0), running, tid);
    });
    gpu::BarrierOp::create(b, loc);
    Value q = ix.add(qBegin, tid);
    buildIfThen(b, loc, ix.icmp(P::ult, q, qEnd), [&] {
      Value a = assignmentOfPriority(ix, q, ix.divu(n, o.topK), o.topK);
      Value e = arith::IndexCastOp::create(
          b, loc, index, memref::LoadOp::create(b, loc, r.assignExpert, a));
      memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::addi, c32(1),
                                  running, e);
    });
    gpu::BarrierOp::create(b, loc);
    buildIfThen(b, loc, expert, [&] {
      memref::StoreOp::create(b, loc,
                              memref::LoadOp::create(b, loc, running, tid),
                              r.blockCounts,
                              ix.add(ix.mul(block, ix.c(E)), tid));
    });
    return;
  }
  // The warps' groups a table in shared memory, up to 32 KiB of it (256
  // experts); more experts take turns instead.
  Value table =
      warps * E * 4 <= 32 * 1024
          ? fn.addWorkgroupAttribution(MemRefType::get({warps, E}, i32,
                                                       MemRefLayoutAttrInterface(),
                                                       workgroup),
                                       loc)
          : Value();
  buildIfThen(b, loc, expert, [&] {
    memref::StoreOp::create(b, loc, sumBlocks(tid, ix.c(0), block), running,
                            tid);
    for (int64_t w = 0; table && w < warps; ++w)
      memref::StoreOp::create(b, loc, c32(0), table, ValueRange{ix.c(w), tid});
    // Block 0: every block's, capped, for Finish.
    buildIfThen(b, loc, ix.icmp(P::eq, block, ix.c(0)), [&] {
      Value blocks = gpu::GridDimOp::create(b, loc, gpu::Dimension::x);
      memref::StoreOp::create(
          b, loc,
          arith::MinSIOp::create(b, loc, sumBlocks(tid, ix.c(0), blocks),
                                 c32(int32_t(o.capacity))),
          r.globalCounts, ix.mul(tid, ix.c(kRouteCountStride)));
    });
  });
  gpu::BarrierOp::create(b, loc);
  emitCapacityDrops(b, loc, threads, o.topK, o.capacity, running, table,
                    r.assignExpert, r.assignPos, r.assignWeight, qBegin, qEnd);
}

gpu::GPUFuncOp mlir::moe::buildRouteKernel(OpBuilder &b, Location loc,
                                           gpu::GPUModuleOp module,
                                           StringRef name,
                                           const RouteKernelOptions &o) {
  OpBuilder::InsertionGuard guard(b);
  const int64_t threads =
      o.part == RoutePart::Select ? kRouteSelectThreads : kRouteThreads;
  auto fn = createKernelFunc(b, loc, module, name, routeArgTypes(b, o), threads);
  ValueRange args = fn.getBody().front().getArguments();
  RouteBuffers buffers = routeBuffers(args, o);
  if (o.withRouter) {
    assert(o.part == RoutePart::Select && "the router runs in Select blocks");
    Value x = args[0], w = args[1];
    Value row0 = arith::MulIOp::create(
        b, loc, gpu::BlockIdOp::create(b, loc, gpu::Dimension::x),
        constIndex(b, loc, kRouteSelectTokens));
    buffers.logits = emitRouterLogits(b, loc, fn, o.numExperts,
                                      o.routerStageK, x, w, row0);
    buffers.tokens = memref::DimOp::create(b, loc, x, 0);
    buffers.logitsRow0 = row0;
  }
  if (o.part == RoutePart::CapacityCount || o.part == RoutePart::Capacity)
    emitCapacityPart(b, loc, fn, o, threads, buffers);
  else
    emitRouting(b, loc, fn, o, threads, buffers);
  gpu::ReturnOp::create(b, loc);
  return fn;
}

//===----------------------------------------------------------------------===//
// The gating kernel: router matmul + routing
//===----------------------------------------------------------------------===//

namespace {
/// Column groups of 8 experts, and the threads of a block on K.
int64_t gateColumnGroups(int64_t experts) { return experts / 8; }
int64_t gateRowLanes(int64_t experts) {
  return kGateThreads / gateColumnGroups(experts);
}
/// K rows a block's threads load in one step of the K loop.
int64_t gateStepRows(int64_t experts) {
  return gateRowLanes(experts) * kGateUnroll;
}
} // namespace

GatePlan mlir::moe::planGate(int64_t d, int64_t experts) {
  // A step of the K loop a thread (its loads all in flight at once) over
  // at most 128 blocks; more steps a thread where the router is larger.
  int64_t step = gateStepRows(experts);
  int64_t steps = (d + step - 1) / step;
  int64_t stepsPerBlock = (steps + 127) / 128;
  GatePlan p;
  p.kchunk = stepsPerBlock * step;
  p.blocks = (d + p.kchunk - 1) / p.kchunk;
  return p;
}

std::string mlir::moe::whyNotGateKernel(int64_t tokens, int64_t experts) {
  // A thread per expert for the routing, E / 8 column groups for the sums.
  if (experts % 8 != 0 || experts > kGateThreads ||
      kGateThreads % gateColumnGroups(experts) != 0)
    return "the gating kernel takes 8, 16, ..., 256 experts (E / 8 dividing " +
           std::to_string(kGateThreads) + "), got " + std::to_string(experts);
  if (tokens > kGateMaxTokens)
    return "the gating kernel routes at most " +
           std::to_string(kGateMaxTokens) + " tokens, got " +
           std::to_string(tokens);
  return "";
}

std::string mlir::moe::gateKernelName(const RouteKernelOptions &o) {
  std::string route = routeKernelName(o);
  return "moe_gate" + route.substr(StringRef("moe_route").size());
}

gpu::GPUFuncOp mlir::moe::buildGateKernel(OpBuilder &b, Location loc,
                                          gpu::GPUModuleOp module,
                                          StringRef name,
                                          const RouteKernelOptions &o) {
  assert(o.part == RoutePart::Whole && "the gating kernel routes whole");
  OpBuilder::InsertionGuard guard(b);
  MLIRContext *ctx = b.getContext();
  // Two device globals of the kernel, zero when the module loads and set
  // back to zero by the last block of each launch: the ticket (blocks done)
  // and the logits the blocks add their partial sums into.
  std::string ticketName = addDeviceGlobal(b, loc, module, name + "_ticket",
                                           gateTicketType(ctx));
  std::string sumsName = addDeviceGlobal(b, loc, module, name + "_logits",
                                         gateSumsType(ctx, o));
  auto fn = createKernelFunc(b, loc, module, name, gateArgTypes(b, o),
                             kGateThreads);
  GateShared shared = addGateShared(b, loc, fn, o);
  if (o.prefetchRouter)
    emitPrefetchL2(b, loc, fn.getArgument(1), 2, kGateThreads);
  // (The programmatic-launch pass leaves a kernel that has its wait.)
  if (o.triggerDependents || o.prefetchRouter)
    NVVM::GriddepcontrolOp::create(b, loc, NVVM::GridDepActionKind::wait);
  if (o.triggerDependents)
    NVVM::GriddepcontrolOp::create(b, loc,
                                   NVVM::GridDepActionKind::launch_dependents);
  shared.ticket =
      memref::GetGlobalOp::create(b, loc, gateTicketType(ctx), ticketName);
  shared.sums =
      memref::GetGlobalOp::create(b, loc, gateSumsType(ctx, o), sumsName);
  emitGateBlock(b, loc, fn, o, fn.getBody().front().getArguments(),
                gpu::BlockIdOp::create(b, loc, gpu::Dimension::x),
                gpu::GridDimOp::create(b, loc, gpu::Dimension::x), shared,
                [] {});
  gpu::ReturnOp::create(b, loc);
  return fn;
}

std::string mlir::moe::addDeviceGlobal(OpBuilder &b, Location loc,
                                       gpu::GPUModuleOp module,
                                       const Twine &name, MemRefType type) {
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(module.getBody());
  std::string global = name.str();
  memref::GlobalOp::create(
      b, loc, global, b.getStringAttr("private"), type,
      DenseElementsAttr::get(
          RankedTensorType::get(type.getShape(), type.getElementType()),
          b.getZeroAttr(type.getElementType())),
      /*constant=*/false, /*alignment=*/IntegerAttr());
  return global;
}

SmallVector<Type> mlir::moe::gateArgTypes(OpBuilder &b,
                                          const RouteKernelOptions &o) {
  int64_t dyn = ShapedType::kDynamic;
  Type bf16 = b.getBF16Type();
  SmallVector<Type> argTypes{MemRefType::get({dyn, dyn}, bf16), // x
                             MemRefType::get({dyn, dyn}, bf16), // router
                             MemRefType::get({dyn}, b.getF32Type()), // clear
                             b.getIndexType()};                 // kchunk
  llvm::append_range(argTypes, routeArgTypes(b, o));
  return argTypes;
}

MemRefType mlir::moe::gateTicketType(MLIRContext *ctx) {
  return MemRefType::get({1}, IntegerType::get(ctx, 32));
}

MemRefType mlir::moe::gateSumsType(MLIRContext *ctx,
                                   const RouteKernelOptions &o) {
  return MemRefType::get({kGateMaxTokens * o.numExperts},
                         Float32Type::get(ctx));
}

mlir::moe::GateShared mlir::moe::addGateShared(OpBuilder &b, Location loc,
                                    gpu::GPUFuncOp fn,
                                    const RouteKernelOptions &o) {
  auto workgroup =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  GateShared s;
  s.red = fn.addWorkgroupAttribution(
      MemRefType::get({kGateThreads / 32, kGateRows, o.numExperts},
                      b.getF32Type(), MemRefLayoutAttrInterface(), workgroup),
      loc);
  s.isLast = fn.addWorkgroupAttribution(
      MemRefType::get({1}, b.getI1Type(), MemRefLayoutAttrInterface(),
                      workgroup),
      loc);
  return s;
}

void mlir::moe::emitGateBlock(OpBuilder &b, Location loc, gpu::GPUFuncOp fn,
                              const RouteKernelOptions &o, ValueRange args,
                              Value bx, Value blocks, const GateShared &shared,
                              function_ref<void()> afterRouting,
                              function_ref<void()> afterClear) {
  OpBuilder::InsertionGuard guard(b);
  int64_t dyn = ShapedType::kDynamic;
  Type f32 = b.getF32Type(), i32 = b.getI32Type(), bf16 = b.getBF16Type();
  const int64_t E = o.numExperts, groups = gateColumnGroups(E),
                lanesK = gateRowLanes(E), unroll = kGateUnroll,
                rowsPerPass = kGateRows, warps = kGateThreads / 32;
  Value red = shared.red, isLast = shared.isLast, ticket = shared.ticket,
        sums = shared.sums;
  Value x = args[0], w = args[1], clear = args[2], kchunk = args[3];
  RouteBuffers route = routeBuffers(args.drop_front(4), o);
  route.hitShared = shared.hitShared;

  IndexOps ix{b, loc};
  using P = arith::CmpIPredicate;
  auto ifThen = [&](Value cond, function_ref<void()> body) {
    buildIfThen(b, loc, cond, body);
  };
  auto loopFrom = [&](Value lb, Value ub, Value step,
                      function_ref<void(Value)> body) {
    auto loop = scf::ForOp::create(b, loc, lb, ub, step);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(loop.getBody());
    body(loop.getInductionVar());
  };

  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value tokens = memref::DimOp::create(b, loc, x, 0);
  Value d = memref::DimOp::create(b, loc, x, 1);

  // The layer's accumulators (the expert GEMVs add into them with atomics)
  // start at zero: four floats a thread over the grid.
  {
    auto vec4 = VectorType::get({4}, f32);
    Value zeros = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vec4, b.getF32FloatAttr(0.0f)));
    Value first = ix.mul(ix.add(ix.mul(bx, ix.c(kGateThreads)), tid), ix.c(4));
    Value stride = ix.mul(blocks, ix.c(kGateThreads * 4));
    loopFrom(first, memref::DimOp::create(b, loc, clear, 0), stride,
             [&](Value i) {
               vector::StoreOp::create(b, loc, zeros, clear, ValueRange{i});
             });
  }
  if (afterClear)
    afterClear();

  // The router's partial sums over this block's rows [k0, k1): thread t
  // owns experts 8 (t % groups) .. + 8 and the rows k0 + t / groups +
  // lanesK i; the lanes of a warp with the same experts add by shuffles,
  // the warps through shared memory.
  Value lane = ix.remu(tid, 32), warp = ix.divu(tid, 32);
  Value group = ix.remu(tid, groups), laneK = ix.divu(tid, groups);
  Value j = ix.mul(group, ix.c(8));
  Value k0 = ix.mul(bx, kchunk);
  Value k1 = arith::MinUIOp::create(b, loc, ix.add(k0, kchunk), d);
  auto vecType = VectorType::get({8}, bf16);
  auto accType = VectorType::get({8}, f32);
  Value zeroAcc = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(accType, b.getF32FloatAttr(0.0f)));
  loopFrom(ix.c(0), tokens, ix.c(rowsPerPass), [&](Value t0) {
    SmallVector<Value> xRows;
    for (int64_t q = 0; q < rowsPerPass; ++q) {
      Value tq = ix.add(t0, ix.c(q));
      xRows.push_back(ix.select(ix.icmp(P::ult, tq, tokens), tq, t0));
    }
    SmallVector<Value> init(rowsPerPass, zeroAcc);
    auto kLoop = scf::ForOp::create(
        b, loc, ix.add(k0, laneK), k1, ix.c(lanesK * unroll), init,
        [&](OpBuilder &lb, Location l, Value i, ValueRange acc) {
          IndexOps li{lb, l};
          // Rows past k1 read row k0 again and count with x = 0.
          SmallVector<Value> ws, ks, inside;
          for (int64_t u = 0; u < unroll; ++u) {
            Value iu = li.add(i, li.c(u * lanesK));
            inside.push_back(li.icmp(P::ult, iu, k1));
            ks.push_back(li.select(inside.back(), iu, k0));
            ws.push_back(vector::LoadOp::create(
                lb, l, vecType, w, ValueRange{ks.back(), j},
                /*nontemporal=*/false, llvm::MaybeAlign(16)));
          }
          SmallVector<Value> next(acc.begin(), acc.end());
          for (int64_t u = 0; u < unroll; ++u) {
            Value wf = arith::ExtFOp::create(lb, l, accType, ws[u]);
            for (int64_t q = 0; q < rowsPerPass; ++q) {
              Value xv = memref::LoadOp::create(lb, l, x,
                                                ValueRange{xRows[q], ks[u]});
              Value xf = arith::SelectOp::create(
                  lb, l, inside[u], arith::ExtFOp::create(lb, l, f32, xv),
                  arith::ConstantOp::create(lb, l, lb.getF32FloatAttr(0.0f)));
              Value xb = vector::BroadcastOp::create(lb, l, accType, xf);
              next[q] = vector::FMAOp::create(lb, l, xb, wf, next[q]);
            }
          }
          scf::YieldOp::create(lb, l, next);
        });
    // Lanes lane, lane + groups, ... of a warp share their experts.
    for (int64_t q = 0; q < rowsPerPass; ++q)
      storeWarpSums(b, loc, kLoop.getResult(q), groups, lane, warp, red,
                    ValueRange{ix.c(q)}, j);
    gpu::BarrierOp::create(b, loc);
    loopFrom(tid, ix.c(rowsPerPass * E), ix.c(kGateThreads), [&](Value i) {
      Value q = ix.divu(i, E), e = ix.remu(i, E);
      Value sum = sumOverWarps(b, loc, red, warps, ValueRange{q, e});
      Value t = ix.add(t0, q);
      ifThen(ix.icmp(P::ult, t, tokens), [&] {
        memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::addf, sum,
                                    sums, ValueRange{ix.add(ix.mul(t, ix.c(E)), e)});
      });
    });
    gpu::BarrierOp::create(b, loc);
  });

  // The ticket: every thread's atomics are at the GPU (membar) before
  // thread 0 counts the block done; the last block goes on.
  NVVM::MembarOp::create(b, loc, NVVM::MemScopeKind::GPU);
  gpu::BarrierOp::create(b, loc);
  ifThen(ix.icmp(P::eq, tid, ix.c(0)), [&] {
    Value old = memref::AtomicRMWOp::create(
        b, loc, arith::AtomicRMWKind::addi,
        arith::ConstantIntOp::create(b, loc, i32, 1), ticket,
        ValueRange{ix.c(0)});
    Value last = ix.icmp(
        P::eq, arith::IndexCastOp::create(b, loc, b.getIndexType(), old),
        arith::SubIOp::create(b, loc, blocks, ix.c(1)));
    memref::StoreOp::create(b, loc, last, isLast, ValueRange{ix.c(0)});
  });
  gpu::BarrierOp::create(b, loc);
  Value mine = memref::LoadOp::create(b, loc, isLast, ValueRange{ix.c(0)});
  ifThen(mine, [&] {
    NVVM::MembarOp::create(b, loc, NVVM::MemScopeKind::GPU);
    // Every block has taken its ticket: back to zero for the next launch.
    ifThen(ix.icmp(P::eq, tid, ix.c(0)), [&] {
      memref::StoreOp::create(b, loc,
                              arith::ConstantIntOp::create(b, loc, i32, 0),
                              ticket, ValueRange{ix.c(0)});
    });
    // The logits, from L2, to the routing's buffer; their sums back to
    // zero for the next launch.
    Value sumsRows = memref::CastOp::create(
        b, loc, MemRefType::get({dyn, dyn}, f32),
        memref::ExpandShapeOp::create(
            b, loc, MemRefType::get({kGateMaxTokens, E}, f32), sums,
            ArrayRef<ReassociationIndices>{{0, 1}}));
    // One token: the routing reads them from shared memory (the warps'
    // sums are done with it), not back from the buffer it just wrote (an
    // L2 round trip on the path every expert item waits on).
    // (red[0, 0:1, :] as a [1, E] memref.)
    Value sharedLogits;
    if (o.oneToken) {
      SmallVector<int64_t> offsets{0, 0, 0}, sizes{1, 1, E}, strides{1, 1, 1};
      auto rowType = memref::SubViewOp::inferRankReducedResultType(
          {1, E}, cast<MemRefType>(red.getType()), offsets, sizes, strides);
      sharedLogits = memref::SubViewOp::create(b, loc, rowType, red, offsets,
                                               sizes, strides);
    }
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
    loopFrom(tid, ix.mul(tokens, ix.c(E)), ix.c(kGateThreads), [&](Value i) {
      Value t = ix.divu(i, E), e = ix.remu(i, E);
      Value v = loadF32FromL2(b, loc, sumsRows, t, e);
      memref::StoreOp::create(b, loc, v, route.logits, ValueRange{t, e});
      if (sharedLogits)
        memref::StoreOp::create(b, loc, v, sharedLogits, ValueRange{t, e});
      memref::StoreOp::create(b, loc, zero, sums, ValueRange{i});
    });
    gpu::BarrierOp::create(b, loc);
    RouteBuffers routing = route;
    if (sharedLogits)
      routing.logits = sharedLogits;
    emitRouting(b, loc, fn, o, kGateThreads, routing);
    afterRouting();
  });
}

void mlir::moe::emitRouting(OpBuilder &b, Location loc, gpu::GPUFuncOp fn,
                            const RouteKernelOptions &o, int64_t threads,
                            const RouteBuffers &r) {
  MLIRContext *ctx = b.getContext();
  Type i32 = b.getI32Type(), index = b.getIndexType();
  bool select = o.part == RoutePart::Select, finish = o.part == RoutePart::Finish;
  assert(o.part != RoutePart::Capacity && o.part != RoutePart::CapacityCount &&
         "the capacity parts route nothing");
  assert((!select || !o.capacity) &&
         "the select part counts every assignment; Capacity drops");
  assert((select || o.numExperts <= threads) &&
         "a routing block has a thread per expert");
  Value counts, scanA, scanB, scanC;
  assert((!o.oneToken || (o.part == RoutePart::Whole && !o.tileRows &&
                          !o.capacity)) &&
         "one-token routing writes no tile table and drops nothing");
  if (!select && !o.oneToken) {
    OpBuilder::InsertionGuard g(b);
    auto shared = MemRefType::get(
        {threads}, i32, MemRefLayoutAttrInterface(),
        gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup));
    counts = fn.addWorkgroupAttribution(shared, loc);
    scanA = fn.addWorkgroupAttribution(shared, loc);
    scanB = fn.addWorkgroupAttribution(shared, loc);
    scanC = o.tileRows ? fn.addWorkgroupAttribution(shared, loc) : Value();
  }
  Value logits = r.logits, offsets = r.offsets, rowToken = r.rowToken,
        rowWeight = r.rowWeight, hit = r.hit, assignExpert = r.assignExpert,
        assignPos = r.assignPos, assignWeight = r.assignWeight,
        tileExpert = r.tileExpert, tileRow = r.tileRow, bias = r.bias,
        globalCounts = r.globalCounts;
  // The select kernel's blocks count their assignments in shared memory
  // (an assignment's position within its expert is first this block's),
  // then take each expert's base in the global counts with one atomic
  // (counts kRouteCountStride apart: one 128-byte line each, so the
  // blocks' atomics spread over the L2 instead of queueing on E / 32
  // lines, as one atomic per assignment did).
  if (select) {
    OpBuilder::InsertionGuard g(b);
    counts = fn.addWorkgroupAttribution(
        MemRefType::get({o.numExperts}, i32, MemRefLayoutAttrInterface(),
                        gpu::AddressSpaceAttr::get(
                            ctx, gpu::AddressSpace::Workgroup)),
        loc);
  }

  const int64_t E = o.numExperts, k = o.topK;
  auto ci = [&](int64_t v) { return constIndex(b, loc, v); };
  auto c32 = [&](int32_t v) { return constI32(b, loc, v); };
  auto cf = [&](float v) { return constF32(b, loc, v); };
  using P = arith::CmpIPredicate;
  using FP = arith::CmpFPredicate;
  auto icmp = [&](P p, Value l, Value r) -> Value {
    return arith::CmpIOp::create(b, loc, p, l, r);
  };
  auto fcmp = [&](FP p, Value l, Value r) -> Value {
    return arith::CmpFOp::create(b, loc, p, l, r);
  };
  auto sel = [&](Value c, Value t, Value f) -> Value {
    return arith::SelectOp::create(b, loc, c, t, f);
  };
  auto orI = [&](Value l, Value r) -> Value {
    return arith::OrIOp::create(b, loc, l, r);
  };
  auto andI = [&](Value l, Value r) -> Value {
    return arith::AndIOp::create(b, loc, l, r);
  };
  auto toIndex = [&](Value v) -> Value {
    return arith::IndexCastOp::create(b, loc, index, v);
  };
  auto toI32 = [&](Value v) -> Value {
    return arith::IndexCastOp::create(b, loc, i32, v);
  };
  auto ifThen = [&](Value cond, function_ref<void()> body) {
    buildIfThen(b, loc, cond, body);
  };
  auto barrier = [&] { gpu::BarrierOp::create(b, loc); };
  auto shuffle = [&](Value v, int32_t offset) -> Value {
    return gpu::ShuffleOp::create(b, loc, v, offset, 32, gpu::ShuffleMode::XOR)
        .getShuffleResult();
  };

  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(b, loc, tid, ci(32));
  Value warp = arith::DivUIOp::create(b, loc, tid, ci(32));
  // (The finish part routes no token: it takes the select part's.)
  Value tokens = r.tokens   ? r.tokens
                 : finish ? Value()
                          : memref::DimOp::create(b, loc, logits, 0).getResult();
  Value numExperts = ci(E);

  // Experts strided over the block's threads (the select kernel's block
  // may have fewer threads than experts).
  auto forExperts = [&](function_ref<void(Value)> body) {
    auto loop = scf::ForOp::create(b, loc, tid, numExperts, ci(threads));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(loop.getBody());
    body(loop.getInductionVar());
  };
  auto globalCount = [&](Value e) -> Value {
    return arith::MulIOp::create(b, loc, e, ci(kRouteCountStride));
  };
  if (!o.oneToken) {
    // The counts start at zero, or at what the select kernel counted.
    forExperts([&](Value e) {
      Value c =
          finish ? memref::LoadOp::create(b, loc, globalCounts, globalCount(e))
                       .getResult()
                 : c32(0);
      memref::StoreOp::create(b, loc, c, counts, e);
    });
    barrier();
  }

  // --- Routing: a warp per token (tokens strided over every warp of the
  // grid). ---
  Value firstWarp = warp, warpStride = ci(threads / 32);
  if (select) {
    Value bx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
    Value gx = gpu::GridDimOp::create(b, loc, gpu::Dimension::x);
    firstWarp = arith::AddIOp::create(
        b, loc, arith::MulIOp::create(b, loc, bx, ci(threads / 32)), warp);
    warpStride = arith::MulIOp::create(b, loc, gx, ci(threads / 32));
  }
  // The finish kernel takes the routing from the select kernel.
  if (!finish) {
    auto tokenLoop = scf::ForOp::create(b, loc, firstWarp, tokens, warpStride);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(tokenLoop.getBody());
    Value t = tokenLoop.getInductionVar();
    Value logitsRow =
        r.logitsRow0 ? arith::SubIOp::create(b, loc, t, r.logitsRow0).getResult()
                     : t;
    auto logit = [&](Value e) -> Value {
      return memref::LoadOp::create(b, loc, logits, ValueRange{logitsRow, e});
    };
    bool softmaxFirst = !o.sigmoid && !o.afterTopk;
    // This lane's experts e = lane + 32 i, their logits read once into
    // registers (-inf past E): the softmax and the k selection rounds
    // below scan registers, in the order a lane-strided loop would.
    const int64_t per = (E + 31) / 32;
    const float negInf = -std::numeric_limits<float>::infinity();
    // `valid` is null where every lane's expert exists; `safe` is expert 0
    // for the lanes past E (their loads stay in bounds).
    SmallVector<Value> mine, valid, safe, expertIds;
    for (int64_t i = 0; i < per; ++i) {
      Value e = arith::AddIOp::create(b, loc, lane, ci(32 * i));
      Value ok = (i + 1) * 32 <= E ? Value() : icmp(P::ult, e, numExperts);
      safe.push_back(ok ? sel(ok, e, ci(0)) : e);
      Value l = logit(safe.back());
      mine.push_back(ok ? sel(ok, l, cf(negInf)) : l);
      valid.push_back(ok);
      expertIds.push_back(toI32(e));
    }
    auto warpReduce = [&](Value acc,
                          function_ref<Value(Value, Value)> combine) -> Value {
      for (int32_t off = 16; off >= 1; off /= 2)
        acc = combine(acc, shuffle(acc, off));
      return acc;
    };
    Value rowMax, rowSum;
    if (softmaxFirst) {
      auto maxOf = [&](Value l, Value r) -> Value {
        return arith::MaximumFOp::create(b, loc, l, r);
      };
      auto addOf = [&](Value l, Value r) -> Value {
        return arith::AddFOp::create(b, loc, l, r);
      };
      Value m = cf(negInf);
      for (Value l : mine)
        m = maxOf(m, l);
      rowMax = warpReduce(m, maxOf);
      Value sum = cf(0.0f);
      for (int64_t i = 0; i < per; ++i) {
        Value next = addOf(
            sum, math::ExpOp::create(
                     b, loc, arith::SubFOp::create(b, loc, mine[i], rowMax)));
        sum = valid[i] ? sel(valid[i], next, sum) : next;
      }
      rowSum = warpReduce(sum, addOf);
    }
    // The router's score of a logit (what the weights use) and the key the
    // selection ranks (score + bias).
    auto scoreOf = [&](Value l) -> Value {
      if (softmaxFirst)
        return arith::DivFOp::create(
            b, loc,
            math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, l, rowMax)),
            rowSum);
      if (o.sigmoid)
        return sigmoidF32(b, loc, l);
      return l; // softmax over the selected logits comes after the top k
    };
    auto score = [&](Value e) -> Value { return scoreOf(logit(e)); };
    SmallVector<Value> keys;
    for (int64_t i = 0; i < per; ++i) {
      Value v = scoreOf(mine[i]);
      if (bias)
        v = arith::AddFOp::create(
            b, loc, v,
            toF32(b, loc, memref::LoadOp::create(b, loc, bias, safe[i])));
      keys.push_back(valid[i] ? sel(valid[i], v, cf(negInf)) : v);
    }
    if (o.numGroups) {
      // Group-limited routing: groups of G consecutive experts, each scored
      // by its best key (or the sum of its best two); only the experts of
      // the topkGroup best groups (ties to the lower group) stay eligible.
      // As moe.router's lowering: the top two of a group are the two
      // largest keys, equal ones included.
      const int64_t G = E / o.numGroups;
      SmallVector<Value> groupOf;
      for (int64_t i = 0; i < per; ++i)
        groupOf.push_back(arith::DivUIOp::create(
            b, loc, arith::AddIOp::create(b, loc, lane, ci(32 * i)), ci(G)));
      auto maxOf = [&](Value l, Value r) -> Value {
        return arith::MaximumFOp::create(b, loc, l, r);
      };
      auto minOf = [&](Value l, Value r) -> Value {
        return arith::MinimumFOp::create(b, loc, l, r);
      };
      SmallVector<Value> groupScore;
      for (int64_t g = 0; g < o.numGroups; ++g) {
        // This lane's best two keys in group g, then the warp's.
        Value t1 = cf(negInf), t2 = cf(negInf);
        for (int64_t i = 0; i < per; ++i) {
          Value v = sel(icmp(P::eq, groupOf[i], ci(g)), keys[i], cf(negInf));
          t2 = maxOf(t2, minOf(t1, v));
          t1 = maxOf(t1, v);
        }
        for (int32_t off = 16; off >= 1; off /= 2) {
          Value o1 = shuffle(t1, off), o2 = shuffle(t2, off);
          Value n2 = maxOf(minOf(t1, o1), maxOf(t2, o2));
          t1 = maxOf(t1, o1);
          t2 = n2;
        }
        groupScore.push_back(
            o.groupTop2Sum ? arith::AddFOp::create(b, loc, t1, t2).getResult()
                           : t1);
      }
      // Group g is kept where fewer than topkGroup groups rank before it.
      SmallVector<Value> kept;
      for (int64_t g = 0; g < o.numGroups; ++g) {
        Value before = c32(0);
        for (int64_t h = 0; h < o.numGroups; ++h) {
          if (h == g)
            continue;
          Value ahead = h < g ? fcmp(FP::OGE, groupScore[h], groupScore[g])
                              : fcmp(FP::OGT, groupScore[h], groupScore[g]);
          before = arith::AddIOp::create(
              b, loc, before, arith::ExtUIOp::create(b, loc, i32, ahead));
        }
        kept.push_back(icmp(P::slt, before, c32(int32_t(o.topkGroup))));
      }
      for (int64_t i = 0; i < per; ++i) {
        Value ok = arith::ConstantIntOp::create(b, loc, b.getI1Type(), 0);
        for (int64_t g = 0; g < o.numGroups; ++g)
          ok = orI(ok, andI(icmp(P::eq, groupOf[i], ci(g)), kept[g]));
        keys[i] = sel(ok, keys[i], cf(negInf));
      }
    }

    // The k rounds rank the keys as unsigned integers that order as the
    // floats do (sign bit flipped for positives, every bit for negatives;
    // -0 made +0 first, as the float compare has them equal), so that a
    // round's warp-wide arg-max is two redux.sync instructions (the best
    // key, then the lowest expert id holding it) instead of five shuffle
    // steps of a key and an id each (the select kernel at qwen3's 8192
    // tokens: 14.4 us with the shuffles, 10.6 with redux.sync).
    SmallVector<Value> ordered;
    for (Value v : keys) {
      Value bits = arith::BitcastOp::create(
          b, loc, i32, arith::AddFOp::create(b, loc, v, cf(0.0f)));
      Value negative = icmp(P::slt, bits, c32(0));
      ordered.push_back(sel(
          negative, arith::XOrIOp::create(b, loc, bits, c32(-1)),
          arith::XOrIOp::create(b, loc, bits,
                                c32(std::numeric_limits<int32_t>::min()))));
    }
    auto redux = [&](Value v, NVVM::ReduxKind kind) -> Value {
      return NVVM::ReduxOp::create(b, loc, i32, v,
                                   NVVM::ReduxKindAttr::get(ctx, kind),
                                   c32(-1));
    };
    Value prevK, prevI;
    SmallVector<Value> ids, wts;
    ids.reserve(k);
    wts.reserve(k);
    for (int64_t j = 0; j < k; ++j) {
      // This lane's best key strictly after the previous winner in the
      // order (key descending, id ascending); 0 (below every key, -inf's
      // included) where it has none. Experts past E hold -inf keys and ids
      // >= E: never taken.
      Value bk = c32(0), bi = c32(std::numeric_limits<int32_t>::max());
      for (int64_t i = 0; i < per; ++i) {
        Value v = ordered[i], ei = expertIds[i];
        Value eligible =
            j == 0 ? Value()
                   : orI(icmp(P::ult, v, prevK),
                         andI(icmp(P::eq, v, prevK), icmp(P::sgt, ei, prevI)));
        // A lane's experts ascend with i: the first of equal keys wins.
        Value take = icmp(P::ugt, v, bk);
        if (eligible)
          take = andI(eligible, take);
        bk = sel(take, v, bk);
        bi = sel(take, ei, bi);
      }
      Value best = redux(bk, NVVM::ReduxKind::UMAX);
      Value winner = redux(sel(icmp(P::eq, bk, best), bi,
                               c32(std::numeric_limits<int32_t>::max())),
                           NVVM::ReduxKind::MIN);
      ids.push_back(winner);
      wts.push_back(score(toIndex(winner)));
      prevK = best;
      prevI = winner;
    }
    if (o.afterTopk) {
      Value mx = wts.front();
      for (int64_t j = 1; j < k; ++j)
        mx = arith::MaximumFOp::create(b, loc, mx, wts[j]);
      Value sum = cf(0.0f);
      for (Value &w : wts) {
        w = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, w, mx));
        sum = arith::AddFOp::create(b, loc, sum, w);
      }
      for (Value &w : wts)
        w = arith::DivFOp::create(b, loc, w, sum);
    }
    if (o.renormalize) {
      Value sum = cf(0.0f);
      for (Value w : wts)
        sum = arith::AddFOp::create(b, loc, sum, w);
      for (Value &w : wts)
        w = arith::DivFOp::create(b, loc, w, sum);
    }
    if (o.scaling != 1.0)
      for (Value &w : wts)
        w = arith::MulFOp::create(b, loc, w, cf(float(o.scaling)));
    // Lane j records assignment (t, j).
    Value myE = ids.front(), myW = wts.front();
    for (int64_t j = 1; j < k; ++j) {
      Value isJ = icmp(P::eq, lane, ci(j));
      myE = sel(isJ, ids[j], myE);
      myW = sel(isJ, wts[j], myW);
    }
    if (o.oneToken) {
      // Every lane holds the k distinct ids (the selection rounds leave
      // them in all lanes): the number of them below an expert is its row
      // (and its slot of hit), the number below e is offsets[e].
      auto below = [&](Value e) -> Value {
        Value n = c32(0);
        for (Value id : ids)
          n = arith::AddIOp::create(
              b, loc, n,
              arith::ExtUIOp::create(b, loc, i32, icmp(P::slt, id, e)));
        return n;
      };
      ifThen(icmp(P::ult, lane, ci(k)), [&] {
        Value row = toIndex(below(myE));
        memref::StoreOp::create(b, loc, toI32(t), rowToken, row);
        memref::StoreOp::create(b, loc, myW, rowWeight, row);
        memref::StoreOp::create(b, loc, myE, hit, row);
        if (r.hitShared)
          memref::StoreOp::create(b, loc, myE, r.hitShared, row);
        memref::StoreOp::create(b, loc, myE, assignExpert, lane);
        memref::StoreOp::create(b, loc, c32(0), assignPos, lane);
        memref::StoreOp::create(b, loc, myW, assignWeight, lane);
      });
      for (int64_t m = 0; m * 32 <= E; ++m) {
        Value e = arith::AddIOp::create(b, loc, lane, ci(32 * m));
        ifThen(icmp(P::ule, e, numExperts), [&] {
          memref::StoreOp::create(b, loc, below(toI32(e)), offsets, e);
        });
      }
      // Slots past the k experts hit (none where hit has k slots).
      Value slots = memref::DimOp::create(b, loc, hit, 0);
      auto rest = scf::ForOp::create(
          b, loc, arith::AddIOp::create(b, loc, lane, ci(k)), slots, ci(32));
      OpBuilder::InsertionGuard rg(b);
      b.setInsertionPointToStart(rest.getBody());
      memref::StoreOp::create(b, loc, c32(-1), hit, rest.getInductionVar());
    } else ifThen(icmp(P::ult, lane, ci(k)), [&] {
      // (With a capacity, the whole routing ranks them below instead.)
      Value pos = o.capacity ? Value()
                             : memref::AtomicRMWOp::create(
                                   b, loc, arith::AtomicRMWKind::addi, c32(1),
                                   counts, toIndex(myE))
                                   .getResult();
      Value a = arith::AddIOp::create(
          b, loc, arith::MulIOp::create(b, loc, t, ci(k)), lane);
      memref::StoreOp::create(b, loc, myE, assignExpert, a);
      if (pos)
        memref::StoreOp::create(b, loc, pos, assignPos, a);
      memref::StoreOp::create(b, loc, myW, assignWeight, a);
    });
  }
  if (o.oneToken)
    return;
  barrier();
  if (o.capacity && !select && !finish) {
    // Rank and drop in priority order, then cap the counts.
    emitCapacityDrops(b, loc, threads, k, o.capacity, counts, Value(),
                      assignExpert, assignPos, assignWeight, ci(0),
                      memref::DimOp::create(b, loc, assignExpert, 0));
    forExperts([&](Value e) {
      memref::StoreOp::create(
          b, loc,
          arith::MinSIOp::create(b, loc,
                                 memref::LoadOp::create(b, loc, counts, e),
                                 c32(int32_t(o.capacity))),
          counts, e);
    });
    barrier();
  }
  if (select) {
    // This block's base within each expert it hit, then its assignments'
    // positions moved there (each lane rereads what it stored above).
    forExperts([&](Value e) {
      Value c = memref::LoadOp::create(b, loc, counts, e);
      ifThen(icmp(P::sgt, c, c32(0)), [&] {
        Value base = memref::AtomicRMWOp::create(
            b, loc, arith::AtomicRMWKind::addi, c, globalCounts,
            globalCount(e));
        memref::StoreOp::create(b, loc, base, counts, e);
      });
    });
    barrier();
    auto again = scf::ForOp::create(b, loc, firstWarp, tokens, warpStride);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(again.getBody());
    ifThen(icmp(P::ult, lane, ci(k)), [&] {
      Value a = arith::AddIOp::create(
          b, loc, arith::MulIOp::create(b, loc, again.getInductionVar(), ci(k)),
          lane);
      Value e = toIndex(memref::LoadOp::create(b, loc, assignExpert, a));
      memref::StoreOp::create(
          b, loc,
          arith::AddIOp::create(b, loc,
                                memref::LoadOp::create(b, loc, assignPos, a),
                                memref::LoadOp::create(b, loc, counts, e)),
          assignPos, a);
    });
    return;
  }

  // --- Offsets and the list of experts hit: inclusive scans of the counts
  // and of (count > 0). ---
  Value inRange = icmp(P::ult, tid, numExperts);
  Value safeTid = sel(inRange, tid, ci(0));
  Value count =
      sel(inRange, memref::LoadOp::create(b, loc, counts, safeTid), c32(0));
  Value flag = arith::ExtUIOp::create(b, loc, i32,
                                      icmp(P::sgt, count, c32(0)));
  // Row tiles of the tensor-core path per expert (expertTileCount).
  Value tilesOf;
  int64_t step = o.tileStep ? o.tileStep : o.tileRows;
  if (o.tileRows)
    tilesOf = expertTileCount(b, loc, count, o.tileRows, step);
  memref::StoreOp::create(b, loc, count, scanA, tid);
  memref::StoreOp::create(b, loc, flag, scanB, tid);
  if (o.tileRows)
    memref::StoreOp::create(b, loc, tilesOf, scanC, tid);
  barrier();
  for (int64_t step = 1; step < E; step *= 2) {
    Value has = icmp(P::uge, tid, ci(step));
    Value from = sel(has, arith::SubIOp::create(b, loc, tid, ci(step)), ci(0));
    Value a = sel(has, memref::LoadOp::create(b, loc, scanA, from), c32(0));
    Value f = sel(has, memref::LoadOp::create(b, loc, scanB, from), c32(0));
    Value c = o.tileRows
                  ? sel(has, memref::LoadOp::create(b, loc, scanC, from), c32(0))
                  : Value();
    barrier();
    if (o.tileRows)
      memref::StoreOp::create(
          b, loc,
          arith::AddIOp::create(b, loc,
                                memref::LoadOp::create(b, loc, scanC, tid), c),
          scanC, tid);
    memref::StoreOp::create(
        b, loc,
        arith::AddIOp::create(b, loc,
                              memref::LoadOp::create(b, loc, scanA, tid), a),
        scanA, tid);
    memref::StoreOp::create(
        b, loc,
        arith::AddIOp::create(b, loc,
                              memref::LoadOp::create(b, loc, scanB, tid), f),
        scanB, tid);
    barrier();
  }
  Value nhit = toIndex(memref::LoadOp::create(b, loc, scanB, ci(E - 1)));
  Value slots = memref::DimOp::create(b, loc, hit, 0);
  // The finish kernel's blocks each scan the counts and map their share of
  // the assignments; the first also writes the tables below.
  Value bx = finish ? gpu::BlockIdOp::create(b, loc, gpu::Dimension::x)
                          .getResult()
                    : ci(0);
  Value leader = icmp(P::eq, bx, ci(0));
  ifThen(inRange, [&] {
    Value excl = arith::SubIOp::create(
        b, loc, memref::LoadOp::create(b, loc, scanA, tid), count);
    memref::StoreOp::create(b, loc, excl, counts, tid);
    ifThen(leader, [&] {
      memref::StoreOp::create(b, loc, excl, offsets, tid);
      ifThen(icmp(P::sgt, count, c32(0)), [&] {
        Value s = arith::SubIOp::create(
            b, loc, toIndex(memref::LoadOp::create(b, loc, scanB, tid)),
            ci(1));
        memref::StoreOp::create(b, loc, toI32(tid), hit, s);
      });
    });
  });
  ifThen(andI(leader, icmp(P::eq, tid, ci(0))), [&] {
    memref::StoreOp::create(b, loc,
                            memref::LoadOp::create(b, loc, scanA, ci(E - 1)),
                            offsets, ci(E));
  });
  if (o.tileRows) ifThen(leader, [&] {
    // The tile table: expert e's tiles start at its exclusive tile offset;
    // entries past the last tile are -1.
    ifThen(inRange, [&] {
      Value last = toIndex(memref::LoadOp::create(b, loc, scanC, tid));
      Value firstTile = arith::SubIOp::create(b, loc, last, toIndex(tilesOf));
      Value rowStart = arith::SubIOp::create(
          b, loc, memref::LoadOp::create(b, loc, scanA, tid), count);
      auto loop = scf::ForOp::create(b, loc, firstTile, last, ci(1));
      OpBuilder::InsertionGuard lg(b);
      b.setInsertionPointToStart(loop.getBody());
      Value i = loop.getInductionVar();
      Value within = arith::SubIOp::create(b, loc, i, firstTile);
      memref::StoreOp::create(b, loc, toI32(tid), tileExpert, i);
      memref::StoreOp::create(
          b, loc,
          arith::AddIOp::create(
              b, loc, rowStart,
              toI32(arith::MulIOp::create(b, loc, within, ci(step)))),
          tileRow, i);
    });
    Value totalTiles = toIndex(memref::LoadOp::create(b, loc, scanC, ci(E - 1)));
    Value tableSize = memref::DimOp::create(b, loc, tileExpert, 0);
    auto fill = scf::ForOp::create(b, loc, arith::AddIOp::create(b, loc, totalTiles, tid),
                                   tableSize, ci(threads));
    OpBuilder::InsertionGuard fg(b);
    b.setInsertionPointToStart(fill.getBody());
    memref::StoreOp::create(b, loc, c32(-1), tileExpert, fill.getInductionVar());
  });
  ifThen(andI(leader, andI(icmp(P::uge, tid, nhit), icmp(P::ult, tid, slots))),
         [&] { memref::StoreOp::create(b, loc, c32(-1), hit, tid); });
  barrier();

  // --- The mapping table: row of each assignment, its token and weight
  // (strided over the finish kernel's blocks). ---
  Value assignments = memref::DimOp::create(b, loc, assignExpert, 0);
  Value mapStride = ci(threads), mapFirst = tid;
  if (finish) {
    mapStride = arith::MulIOp::create(
        b, loc, gpu::GridDimOp::create(b, loc, gpu::Dimension::x), mapStride);
    mapFirst = arith::AddIOp::create(b, loc, tid,
                                     arith::MulIOp::create(b, loc, bx,
                                                           ci(threads)));
  }
  auto mapLoop =
      scf::ForOp::create(b, loc, mapFirst, assignments, mapStride);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(mapLoop.getBody());
    Value a = mapLoop.getInductionVar();
    Value expert = memref::LoadOp::create(b, loc, assignExpert, a);
    auto map = [&] {
      Value e = toIndex(expert);
      Value row = toIndex(arith::AddIOp::create(
          b, loc, memref::LoadOp::create(b, loc, counts, e),
          memref::LoadOp::create(b, loc, assignPos, a)));
      Value token = arith::DivUIOp::create(b, loc, a, ci(k));
      memref::StoreOp::create(b, loc, toI32(token), rowToken, row);
      memref::StoreOp::create(
          b, loc, memref::LoadOp::create(b, loc, assignWeight, a), rowWeight,
          row);
    };
    // A dropped assignment has no row.
    if (o.capacity)
      ifThen(icmp(P::sge, expert, c32(0)), map);
    else
      map();
  }
}
