//===- DecodeKernel.cpp - The one-token MoE layer as one kernel -----------===//
//
// Part of moe-compiler.
//
// At one token the layer's kernels (gating, up GEMV, down GEMV) each stream
// a few tens of MB or less, so their launches, ramps and tails cost about as
// much as the streaming. The decode kernel runs the three as work items of
// one persistent grid: the gating kernel's blocks, then the up GEMV's
// blocks slot by slot, then the down GEMV's, taken in that order from a
// queue (a device global counter). An up item waits until the routing is
// published; a down item waits until every up item of its slot is done
// (counters released after each item's atomics, read with acquire loads).
// Since items are taken in order and an item only waits on items before it,
// every item waited on was taken by a block that is running: the grid needs
// no co-residency guarantee (no cooperative launch) and any grid size is
// correct. The last block to leave sets the counters back to zero for the
// next launch.
//
// A dense stage (shared experts, or PR-MoE's MLP without mixing) runs as one
// more slot with its own GEMVs: its up items right after the gating items,
// its down items before the routed ones. They do not wait for the routing:
// an up item waits only until every gating item has cleared its share of
// the accumulators (the dense up projection adds into them), so the dense
// weights stream while the router's sums and the top-k are decided.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/TensorBuilders.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::moe;

constexpr int64_t kGone = 32, kRouted = 64, kCleared = 96;
/// The dense stage's entry of the `done` counters, and "no slot".
constexpr int64_t kDenseSlot = kDecodeMaxSlots, kNoSlot = kDecodeMaxSlots + 1;

static_assert(kDecodeThreads == kGateThreads,
              "the gating items run on the decode kernel's blocks");

/// Whether the decode kernel publishes its experts packed in one 64-bit
/// word: up to 8 of them, each under 256 (the gating kernel's bound).
static bool packedRouting(const DecodeKernelOptions &o) {
  return o.route.topK <= 8 && o.route.numExperts <= 256;
}

std::string mlir::moe::decodeKernelName(const DecodeKernelOptions &o) {
  // The gating kernel's routing suffix, then the two GEMVs' suffixes.
  std::string gate = gateKernelName(o.route);
  std::string up = gemvKernelName("", o.up), down = gemvKernelName("", o.down);
  std::string name =
      "moe_decode" + gate.substr(StringRef("moe_gate").size()) + "_up" +
      (o.up.pair ? "_pair" : "") + up + "_t" + std::to_string(o.upThreads) +
      "_down" + down + "_t" + std::to_string(o.downThreads);
  if (o.dense)
    name += "_dense" + std::string(o.denseCoef ? "_coef" : "") + "_up" +
            (o.denseUp.pair ? "_pair" : "") + gemvKernelName("", o.denseUp) +
            "_t" + std::to_string(o.denseUpThreads) + "_down" +
            gemvKernelName("", o.denseDown) + "_t" +
            std::to_string(o.denseDownThreads);
  return name;
}

static int64_t ringSlots(const DecodeKernelOptions &o) {
  int64_t slots = std::max(gemvRingSlots(o.up, kDecodeThreads),
                           gemvRingSlots(o.down, kDecodeThreads));
  if (o.dense)
    slots = std::max({slots, gemvRingSlots(o.denseUp, kDecodeThreads),
                      gemvRingSlots(o.denseDown, kDecodeThreads)});
  return slots;
}

int64_t mlir::moe::decodeKernelSharedBytes(const DecodeKernelOptions &o) {
  return ringSlots(o) * 16;
}

std::string mlir::moe::whyNotDecodeKernel(int64_t tokens, int64_t slots,
                                          int64_t experts) {
  if (tokens != 1)
    return "the decode kernel runs one token, got " + std::to_string(tokens);
  if (slots > kDecodeMaxSlots)
    return "the decode kernel takes up to " + std::to_string(kDecodeMaxSlots) +
           " slots, got " + std::to_string(slots);
  return whyNotGateKernel(tokens, experts);
}

gpu::GPUFuncOp mlir::moe::buildDecodeKernel(OpBuilder &b, Location loc,
                                            gpu::GPUModuleOp module,
                                            StringRef name,
                                            const DecodeKernelOptions &o) {
  OpBuilder::InsertionGuard guard(b);
  MLIRContext *ctx = b.getContext();
  Type i32 = b.getI32Type(), bf16 = b.getBF16Type(), f32 = b.getF32Type();
  assert(o.route.oneToken && "the decode kernel routes one token");
  assert(o.up.coherentLoads && o.down.coherentLoads && o.down.stageRows &&
         "the GEMV items read what other blocks wrote from L2");
  assert(o.up.oneToken && o.down.oneToken && "a row a slot");
  assert(o.down.loadBeforeWait && !o.up.triggerDependents &&
         !o.down.triggerDependents &&
         "down items load before their wait; the kernel has its own trigger");
  assert(o.upThreads <= kDecodeThreads && o.downThreads <= kDecodeThreads &&
         o.upThreads % 32 == 0 && o.downThreads % 32 == 0 &&
         "GEMV blocks of whole warps within the decode block");
  assert((!o.dense ||
          (o.denseUp.coherentLoads && o.denseDown.coherentLoads &&
           o.denseDown.stageRows && o.denseUp.oneToken &&
           o.denseDown.oneToken && o.denseUp.loadBeforeWait &&
           o.denseDown.loadBeforeWait && !o.denseUp.triggerDependents &&
           !o.denseDown.triggerDependents && o.denseUpThreads % 32 == 0 &&
           o.denseDownThreads % 32 == 0 &&
           o.denseUpThreads <= kDecodeThreads &&
           o.denseDownThreads <= kDecodeThreads)) &&
         "the dense slot's GEMVs as the routed ones, both loading before "
         "their waits");

  std::string ticketName = addDeviceGlobal(b, loc, module, name + "_ticket",
                                           gateTicketType(ctx));
  std::string sumsName = addDeviceGlobal(b, loc, module, name + "_logits",
                                         gateSumsType(ctx, o.route));
  // The queue: [0] the next item, [kGone] blocks gone, [kRouted] routed (0
  // or 1), [kCleared] gating items past their clearing, each on its own
  // 128-byte line (the flags are polled).
  auto queueType = MemRefType::get({4 * 32}, i32);
  std::string queueName =
      addDeviceGlobal(b, loc, module, name + "_queue", queueType);
  // Up items done, by slot (the dense slot's at kDenseSlot).
  auto doneType = MemRefType::get({kDecodeMaxSlots + 1}, i32);
  std::string doneName =
      addDeviceGlobal(b, loc, module, name + "_done", doneType);
  // Up to 8 experts (each under 256: a byte) are published as one 64-bit
  // word, the flag and the experts at once: a GEMV block's first item
  // polls it and has its experts, without reading `hit` back from L2
  // after the flag (one round trip less on the path every item waits on).
  // Zero until published: byte k is 1 under 8 experts, and 8 distinct
  // experts are never all zero.
  const bool packed = packedRouting(o);
  auto routingType = MemRefType::get({16}, b.getI64Type());
  std::string routingName;
  if (packed)
    routingName = addDeviceGlobal(b, loc, module, name + "_routing",
                                  routingType);

  SmallVector<Type> argTypes = gateArgTypes(b, o.route);
  size_t upFirst = argTypes.size();
  llvm::append_range(argTypes, gemvArgTypes(b, bf16, o.up));
  size_t downFirst = argTypes.size();
  llvm::append_range(argTypes, gemvArgTypes(b, bf16, o.down));
  size_t denseUpFirst = argTypes.size();
  if (o.dense)
    llvm::append_range(argTypes, gemvArgTypes(b, bf16, o.denseUp));
  size_t denseDownFirst = argTypes.size();
  if (o.dense)
    llvm::append_range(argTypes, gemvArgTypes(b, bf16, o.denseDown));
  size_t coefAt = argTypes.size();
  if (o.denseCoef)
    argTypes.push_back(MemRefType::get({ShapedType::kDynamic}, bf16));
  size_t planFirst = argTypes.size();
  // Router items, up grid x and y, down grid x and y (then the dense
  // stage's).
  argTypes.append(o.dense ? 9 : 5, b.getIndexType());

  auto fn = createKernelFunc(b, loc, module, name, argTypes, kDecodeThreads);
  fn->setAttr(NVVM::NVVMDialect::getMaxntidAttrName(),
              b.getDenseI32ArrayAttr({int32_t(kDecodeThreads), 1, 1}));
  // A register bound that keeps kDecodeBlocksPerSm blocks an SM (three or
  // four spilled: 7-50% slower).
  fn->setAttr(NVVM::NVVMDialect::getMinctasmAttrName(),
              b.getI32IntegerAttr(kDecodeBlocksPerSm));
  GateShared gate = addGateShared(b, loc, fn, o.route);
  // One staging buffer for both down GEMVs (an item's use of it ends at
  // its last barrier): the larger.
  GemvOptions stageOpts = o.down;
  if (o.dense)
    stageOpts.stageRows = std::max(o.down.stageRows, o.denseDown.stageRows);
  Value stage = addGemvStage(b, loc, fn, stageOpts);
  auto workgroup = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  Value itemSlot = fn.addWorkgroupAttribution(
      MemRefType::get({2}, i32, MemRefLayoutAttrInterface(), workgroup), loc);
  // The experts hit, by slot, once the block has seen the routing.
  Value hitShared = fn.addWorkgroupAttribution(
      MemRefType::get({kDecodeMaxSlots}, i32, MemRefLayoutAttrInterface(),
                      workgroup),
      loc);
  // 16-byte aligned: LLVM packs and unpacks the routing word's experts with
  // vector accesses (CUDA_ERROR_MISALIGNED_ADDRESS from 4 experts on
  // without it).
  fn.setWorkgroupAttributionAttr(fn.getNumWorkgroupAttributions() - 1,
                                 LLVM::LLVMDialect::getAlignAttrName(),
                                 b.getI64IntegerAttr(16));
  // The warps' sums of the dense slot's coefficient.
  Value coefRed;
  if (o.denseCoef) {
    coefRed = fn.addWorkgroupAttribution(
        MemRefType::get({1, kDecodeThreads / 32}, f32,
                        MemRefLayoutAttrInterface(), workgroup),
        loc);
    // 16-byte aligned: LLVM reads the warps' sums as vectors (a misaligned
    // shared read beside this kernel's other buffers without it).
    fn.setWorkgroupAttributionAttr(fn.getNumWorkgroupAttributions() - 1,
                                   LLVM::LLVMDialect::getAlignAttrName(),
                                   b.getI64IntegerAttr(16));
  }
  ValueRange args = fn.getBody().front().getArguments();
  // The GEMV items' cp.async ring (one for all: an item's copies are all
  // waited for before the block takes the next).
  Value ring;
  if (int64_t slots = ringSlots(o)) {
    Value raw = gpu::DynamicSharedMemoryOp::create(
        b, loc,
        MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                        MemRefLayoutAttrInterface(), workgroup));
    ring = memref::ViewOp::create(
        b, loc,
        MemRefType::get({slots, kGemvColumnsPerThread}, bf16,
                        MemRefLayoutAttrInterface(), workgroup),
        raw, arith::ConstantIndexOp::create(b, loc, 0), ValueRange{});
  }
  ValueRange gateArgs = args.take_front(upFirst);
  GemvArgs upArgs = gemvArgs(args.slice(upFirst, downFirst - upFirst), o.up);
  GemvArgs downArgs =
      gemvArgs(args.slice(downFirst, denseUpFirst - downFirst), o.down);
  GemvArgs denseUpArgs, denseDownArgs;
  if (o.dense) {
    denseUpArgs = gemvArgs(
        args.slice(denseUpFirst, denseDownFirst - denseUpFirst), o.denseUp);
    denseDownArgs = gemvArgs(args.slice(denseDownFirst, coefAt - denseDownFirst),
                             o.denseDown);
  }
  Value coef = o.denseCoef ? args[coefAt] : Value();
  Value routerItems = args[planFirst], upX = args[planFirst + 1],
        upY = args[planFirst + 2], downX = args[planFirst + 3],
        downY = args[planFirst + 4];

  IndexOps ix{b, loc};
  using P = arith::CmpIPredicate;
  auto c32 = [&](int32_t v) -> Value {
    return arith::ConstantIntOp::create(b, loc, i32, v);
  };
  auto toIndex = [&](Value v) -> Value {
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
  };
  auto barrier = [&] { gpu::BarrierOp::create(b, loc); };

  gate.ticket =
      memref::GetGlobalOp::create(b, loc, gateTicketType(ctx), ticketName);
  gate.sums = memref::GetGlobalOp::create(b, loc,
                                          gateSumsType(ctx, o.route), sumsName);
  Value queue = memref::GetGlobalOp::create(b, loc, queueType, queueName);
  Value done = memref::GetGlobalOp::create(b, loc, doneType, doneName);
  Value routing =
      packed ? memref::GetGlobalOp::create(b, loc, routingType, routingName)
                   .getResult()
             : Value();
  if (packed)
    gate.hitShared = hitShared; // the routing block packs from there
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value isFirst = ix.icmp(P::eq, tid, ix.c(0));
  // (By warps: the GEMV blocks' extra threads are whole warps.)
  Value warp = arith::DivUIOp::create(b, loc, tid, ix.c(32));
  Value slots = memref::DimOp::create(b, loc, upArgs.hit, 0);
  Value upMats = ix.c(o.up.pair ? 2 : 1);
  Value upPerMatrix = ix.mul(upX, upY);
  Value upPerSlot = ix.mul(upPerMatrix, upMats);
  Value downPerSlot = ix.mul(downX, downY);
  // Item ranges: gating [0, routerItems), dense up [routerItems,
  // routedUpFirst), routed up [routedUpFirst, upEnd), dense down [upEnd,
  // routedDownFirst), routed down [routedDownFirst, total).
  Value denseUpX, denseUpPerMatrix, denseUpItems, denseDownX, denseDownItems;
  Value zeroItems = ix.c(0);
  if (o.dense) {
    denseUpX = args[planFirst + 5];
    denseUpPerMatrix = ix.mul(denseUpX, args[planFirst + 6]);
    denseUpItems = ix.mul(denseUpPerMatrix, ix.c(o.denseUp.pair ? 2 : 1));
    denseDownX = args[planFirst + 7];
    denseDownItems = ix.mul(denseDownX, args[planFirst + 8]);
  }
  Value routedUpFirst = ix.add(routerItems, o.dense ? denseUpItems : zeroItems);
  Value upEnd = ix.add(routedUpFirst, ix.mul(upPerSlot, slots));
  Value routedDownFirst = ix.add(upEnd, o.dense ? denseDownItems : zeroItems);
  Value total = ix.add(routedDownFirst, ix.mul(downPerSlot, slots));

  // Thread 0 spins until `notYet` (of an acquire load) is false; then the
  // block's barrier.
  auto waitUntil = [&](function_ref<Value(OpBuilder &, Location)> notYet) {
    buildIfThen(b, loc, isFirst, [&] {
      auto spin = scf::WhileOp::create(b, loc, TypeRange{}, ValueRange{});
      b.createBlock(&spin.getBefore());
      scf::ConditionOp::create(b, loc, notYet(b, loc), ValueRange{});
      b.createBlock(&spin.getAfter());
      scf::YieldOp::create(b, loc);
      b.setInsertionPointAfter(spin);
    });
    barrier();
  };
  // Until the counter at `m`[i] (acquired) reaches `need` (i32).
  auto waitForCount = [&](Value m, Value i, Value need) {
    waitUntil([&](OpBuilder &wb, Location wl) -> Value {
      return arith::CmpIOp::create(wb, wl, P::slt,
                                   loadAcquire(wb, wl, m, i), need);
    });
  };
  // Thread 0 takes an item (the old value of the queue's counter).
  auto takeItem = [&]() -> Value {
    auto take = scf::IfOp::create(b, loc, TypeRange{i32}, isFirst, true);
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(&take.getThenRegion().front());
      scf::YieldOp::create(b, loc,
                           fetchAddI32(b, loc, queue, ix.c(0), c32(1)));
      b.setInsertionPointToStart(&take.getElseRegion().front());
      scf::YieldOp::create(b, loc, c32(0));
    }
    return take.getResult(0);
  };
  auto publish = [&](Value taken, Value slot) {
    buildIfThen(b, loc, isFirst, [&] {
      memref::StoreOp::create(b, loc, taken, itemSlot, slot);
    });
  };

  // The first item is taken before the grid dependency wait (the queue is
  // this kernel's: the launch before last of it ended before the previous
  // kernel passed its own wait). The wait is the kernel's own; the next
  // kernel (the rounding) may launch at once: it waits for this grid.
  publish(takeItem(), ix.c(0));
  // The router's lines into L2 before the wait (RouteKernelOptions::
  // prefetchRouter): the gating items read it first thing after.
  if (o.route.prefetchRouter)
    emitPrefetchL2(b, loc, gateArgs[1], 2, kDecodeThreads);
  NVVM::GriddepcontrolOp::create(b, loc, NVVM::GridDepActionKind::wait);
  NVVM::GriddepcontrolOp::create(b, loc,
                                 NVVM::GridDepActionKind::launch_dependents);
  barrier();
  Value first = toIndex(memref::LoadOp::create(b, loc, itemSlot, ix.c(0)));
  Value noSlot = ix.c(kNoSlot);
  Value falseV = arith::ConstantIntOp::create(b, loc, b.getI1Type(), 0);
  Value trueV = arith::ConstantIntOp::create(b, loc, b.getI1Type(), 1);
  // Loop-carried: the item, the shared slot its successor goes to, whether
  // this block saw the routing published, the slot whose up items it saw
  // done.
  SmallVector<Type> carried{b.getIndexType(), b.getIndexType(), b.getI1Type(),
                            b.getIndexType()};
  auto loop = scf::WhileOp::create(b, loc, carried,
                                   ValueRange{first, ix.c(1), falseV, noSlot});
  {
    Block *before = b.createBlock(&loop.getBefore(), {}, carried,
                                  SmallVector<Location>(4, loc));
    scf::ConditionOp::create(
        b, loc, ix.icmp(P::ult, before->getArgument(0), total),
        before->getArguments());
  }
  Block *body = b.createBlock(&loop.getAfter(), {}, carried,
                              SmallVector<Location>(4, loc));
  Value item = body->getArgument(0), nextSlot = body->getArgument(1),
        routed = body->getArgument(2), readySlot = body->getArgument(3);
  // The next item's index is asked for now and stored when this one ends.
  Value successor = takeItem();
  SmallVector<Type, 2> flags{b.getI1Type(), b.getIndexType()};

  auto isRouter = scf::IfOp::create(b, loc, flags,
                                    ix.icmp(P::ult, item, routerItems), true);
  b.setInsertionPointToStart(&isRouter.getThenRegion().front());
  emitGateBlock(
      b, loc, fn, o.route, gateArgs, item, routerItems, gate,
      [&] {
        // The routing is written (by this block's first warp): publish it.
        barrier();
        buildIfThen(b, loc, isFirst, [&] {
          if (!packed) {
            releaseAddI32(b, loc, queue, ix.c(kRouted), c32(1));
            return;
          }
          Type i64 = b.getI64Type();
          int64_t k = o.route.topK;
          Value word = arith::ConstantIntOp::create(
              b, loc, i64, k < 8 ? int64_t(1) << (8 * k) : 0);
          for (int64_t j = 0; j < k; ++j) {
            Value e = arith::ExtUIOp::create(
                b, loc, i64,
                memref::LoadOp::create(b, loc, hitShared, ix.c(j)));
            word = arith::OrIOp::create(
                b, loc, word,
                arith::ShLIOp::create(
                    b, loc, e, arith::ConstantIntOp::create(b, loc, i64, 8 * j)));
          }
          storeReleaseI64(b, loc, routing, ix.c(0), word);
        });
      },
      [&] {
        // This block's share of the accumulators is clear: count it (the
        // dense slot's up items wait for all gating items').
        if (!o.dense)
          return;
        barrier();
        buildIfThen(b, loc, isFirst, [&] {
          releaseAddI32(b, loc, queue, ix.c(kCleared), c32(1));
        });
      });
  scf::YieldOp::create(b, loc, ValueRange{routed, readySlot});

  b.setInsertionPointToStart(&isRouter.getElseRegion().front());
  // A GEMV item of the routed slots: first (once a block) the routing,
  // published by the last gating item; the experts hit into shared memory.
  Value isDense = falseV;
  if (o.dense)
    isDense = arith::OrIOp::create(
        b, loc, ix.icmp(P::ult, item, routedUpFirst),
        arith::AndIOp::create(b, loc, ix.icmp(P::uge, item, upEnd),
                              ix.icmp(P::ult, item, routedDownFirst)));
  Value mustRoute = arith::AndIOp::create(
      b, loc, arith::XOrIOp::create(b, loc, routed, trueV),
      arith::XOrIOp::create(b, loc, isDense, trueV));
  buildIfThen(b, loc, mustRoute, [&] {
    if (packed) {
      // Thread 0 polls the word and unpacks the experts (slots past the
      // k experts: none).
      buildIfThen(b, loc, isFirst, [&] {
        Type i64 = b.getI64Type();
        Value zero64 = arith::ConstantIntOp::create(b, loc, i64, 0);
        auto spin = scf::WhileOp::create(b, loc, TypeRange{i64},
                                         ValueRange{zero64});
        b.createBlock(&spin.getBefore(), {}, TypeRange{i64}, {loc});
        Value w = loadAcquire(b, loc, routing, ix.c(0));
        scf::ConditionOp::create(
            b, loc, arith::CmpIOp::create(b, loc, P::eq, w, zero64),
            ValueRange{w});
        Block *after =
            b.createBlock(&spin.getAfter(), {}, TypeRange{i64}, {loc});
        scf::YieldOp::create(b, loc, after->getArgument(0));
        b.setInsertionPointAfter(spin);
        Value word = spin.getResult(0);
        for (int64_t j = 0; j < o.route.topK; ++j) {
          Value byte = arith::AndIOp::create(
              b, loc,
              arith::ShRUIOp::create(
                  b, loc, word,
                  arith::ConstantIntOp::create(b, loc, i64, 8 * j)),
              arith::ConstantIntOp::create(b, loc, i64, 255));
          memref::StoreOp::create(b, loc,
                                  arith::TruncIOp::create(b, loc, i32, byte),
                                  hitShared, ix.c(j));
        }
        auto rest = scf::ForOp::create(b, loc, ix.c(o.route.topK), slots,
                                       ix.c(1));
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointToStart(rest.getBody());
        memref::StoreOp::create(b, loc, c32(-1), hitShared,
                                rest.getInductionVar());
      });
      barrier();
      return;
    }
    waitForCount(queue, ix.c(kRouted), c32(1));
    buildIfThen(b, loc, ix.icmp(P::ult, tid, slots), [&] {
      memref::StoreOp::create(b, loc, loadI32FromL2(b, loc, upArgs.hit, tid),
                              hitShared, tid);
    });
    barrier();
  });
  Value routedNow = arith::OrIOp::create(b, loc, routed, mustRoute);
  auto isUp = scf::IfOp::create(b, loc, flags, ix.icmp(P::ult, item, upEnd),
                                true);
  scf::YieldOp::create(b, loc, isUp.getResults());

  // Up item `u` of a GEMV with `x` blocks a grid row and `perMatrix` a
  // matrix: matrix `second` of slot `slot`, block (bx, by).
  auto upBlock = [&](Value u, Value x, Value perMatrix, int64_t mats,
                     Value slotsOfGemv, int64_t threads, Value &slot) {
    Value matrix = arith::DivUIOp::create(b, loc, u, perMatrix);
    Value within = arith::RemUIOp::create(b, loc, u, perMatrix);
    slot = arith::DivUIOp::create(b, loc, matrix, ix.c(mats));
    Value second = arith::RemUIOp::create(b, loc, matrix, ix.c(mats));
    GemvBlock blk;
    blk.bx = arith::RemUIOp::create(b, loc, within, x);
    blk.by = arith::DivUIOp::create(b, loc, within, x);
    blk.bz = ix.add(slot, ix.mul(second, slotsOfGemv));
    blk.bdim = ix.c(threads);
    if (threads < kDecodeThreads)
      blk.active = ix.icmp(P::ult, warp, ix.c(threads / 32));
    blk.ring = ring;
    return blk;
  };
  // Down item `v` of a GEMV with `x` blocks a grid row and `perSlot` a slot.
  auto downBlock = [&](Value v, Value x, Value perSlot, int64_t threads,
                       Value &slot) {
    slot = arith::DivUIOp::create(b, loc, v, perSlot);
    Value within = arith::RemUIOp::create(b, loc, v, perSlot);
    GemvBlock blk;
    blk.bx = arith::RemUIOp::create(b, loc, within, x);
    blk.by = arith::DivUIOp::create(b, loc, within, x);
    blk.bz = slot;
    blk.bdim = ix.c(threads);
    if (threads < kDecodeThreads)
      blk.active = ix.icmp(P::ult, warp, ix.c(threads / 32));
    blk.stage = stage;
    blk.ring = ring;
    return blk;
  };
  // Every thread's atomics are issued; the release orders them before the
  // count (deferring it to the block's next item, so that only the first
  // warp waits for it, measured no different).
  auto countDone = [&](Value slot) {
    barrier();
    buildIfThen(b, loc, isFirst,
                [&] { releaseAddI32(b, loc, done, slot, c32(1)); });
  };
  // Runs `dense` in the then-branch of `cond` (with the dense stage), else
  // `routedItem`; both yield the carried flags.
  auto denseOr = [&](Value cond, function_ref<void()> dense,
                     function_ref<void()> routedItem) {
    if (!o.dense) {
      routedItem();
      return;
    }
    auto split = scf::IfOp::create(b, loc, flags, cond, true);
    scf::YieldOp::create(b, loc, split.getResults());
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(&split.getThenRegion().front());
    dense();
    b.setInsertionPointToStart(&split.getElseRegion().front());
    routedItem();
  };

  // Up items.
  b.setInsertionPointToStart(&isUp.getThenRegion().front());
  denseOr(
      ix.icmp(P::ult, item, routedUpFirst),
      [&] {
        // The dense slot's: its weights first, then the wait for the
        // clearing; the first item also writes the slot's row weight.
        Value u = arith::SubIOp::create(b, loc, item, routerItems);
        Value slot;
        GemvBlock blk = upBlock(u, denseUpX, denseUpPerMatrix,
                                o.denseUp.pair ? 2 : 1, ix.c(1),
                                o.denseUpThreads, slot);
        blk.expert = c32(0);
        auto waitCleared = [&] {
          waitForCount(queue, ix.c(kCleared),
                       arith::IndexCastOp::create(b, loc, i32, routerItems));
        };
        blk.wait = waitCleared;
        emitGemvBlock(b, loc, bf16, o.denseUp, denseUpArgs, blk);
        buildIfThen(b, loc, ix.icmp(P::eq, u, ix.c(0)), [&] {
          Value weight =
              o.denseCoef
                  ? sigmoidF32(b, loc,
                               emitBlockDots(b, loc, coefRed, denseUpArgs.x,
                                             ix.c(0), coef, 1,
                                             kDecodeThreads)[0])
                  : arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1.0f))
                        .getResult();
          buildIfThen(b, loc, isFirst, [&] {
            memref::StoreOp::create(b, loc, weight, denseDownArgs.rowWeight,
                                    ValueRange{ix.c(0)});
          });
        });
        countDone(ix.c(kDenseSlot));
        scf::YieldOp::create(b, loc, ValueRange{routedNow, readySlot});
      },
      [&] {
        // A routed slot's: matrix `second` of slot `slot`, block (bx, by).
        Value u = arith::SubIOp::create(b, loc, item, routedUpFirst);
        Value slot;
        GemvBlock blk = upBlock(u, upX, upPerMatrix, o.up.pair ? 2 : 1, slots,
                                o.upThreads, slot);
        blk.expert = memref::LoadOp::create(b, loc, hitShared, slot);
        emitGemvBlock(b, loc, bf16, o.up, upArgs, blk);
        countDone(slot);
        scf::YieldOp::create(b, loc, ValueRange{routedNow, readySlot});
      });

  // Down items: they issue their first weight loads (which need only the
  // expert), then wait for their slot's up items.
  b.setInsertionPointToStart(&isUp.getElseRegion().front());
  auto waitForUp = [&](Value slot, Value need) {
    buildIfThen(b, loc, ix.icmp(P::ne, slot, readySlot),
                [&] { waitForCount(done, slot, need); });
  };
  denseOr(
      ix.icmp(P::ult, item, routedDownFirst),
      [&] {
        Value v = arith::SubIOp::create(b, loc, item, upEnd);
        Value slot;
        GemvBlock blk =
            downBlock(v, denseDownX, denseDownItems, o.denseDownThreads, slot);
        Value need = arith::IndexCastOp::create(b, loc, i32, denseUpItems);
        auto wait = [&] { waitForUp(ix.c(kDenseSlot), need); };
        blk.wait = wait;
        blk.expert = c32(0);
        emitGemvBlock(b, loc, bf16, o.denseDown, denseDownArgs, blk);
        scf::YieldOp::create(b, loc, ValueRange{routedNow, ix.c(kDenseSlot)});
      },
      [&] {
        Value v = arith::SubIOp::create(b, loc, item, routedDownFirst);
        Value slot;
        GemvBlock blk = downBlock(v, downX, downPerSlot, o.downThreads, slot);
        Value need = arith::IndexCastOp::create(b, loc, i32, upPerSlot);
        auto wait = [&] { waitForUp(slot, need); };
        blk.wait = wait;
        blk.expert = memref::LoadOp::create(b, loc, hitShared, slot);
        emitGemvBlock(b, loc, bf16, o.down, downArgs, blk);
        scf::YieldOp::create(b, loc, ValueRange{routedNow, slot});
      });

  b.setInsertionPointAfter(isRouter);
  publish(successor, nextSlot);
  barrier();
  Value next = toIndex(memref::LoadOp::create(b, loc, itemSlot, nextSlot));
  Value otherSlot = arith::SubIOp::create(b, loc, ix.c(1), nextSlot);
  scf::YieldOp::create(b, loc,
                       ValueRange{next, otherSlot, isRouter.getResult(0),
                                  isRouter.getResult(1)});

  b.setInsertionPointAfter(loop);
  // Gone: the last block sets the counters back for the next launch (every
  // block took its last item before it counts itself gone). (The last
  // block rounding the output here, instead of the rounding kernel after
  // it, measured 2-7% slower: every block then releases its atomics.)
  buildIfThen(b, loc, isFirst, [&] {
    Value gone = fetchAddI32(b, loc, queue, ix.c(kGone), c32(1));
    Value blocks = gpu::GridDimOp::create(b, loc, gpu::Dimension::x);
    buildIfThen(
        b, loc,
        ix.icmp(P::eq, toIndex(gone),
                arith::SubIOp::create(b, loc, blocks, ix.c(1))),
        [&] {
          for (int64_t i : {int64_t(0), kGone, kRouted, kCleared})
            memref::StoreOp::create(b, loc, c32(0), queue, ix.c(i));
          memref::StoreOp::create(b, loc, c32(0), done, ix.c(kDenseSlot));
          if (packed)
            memref::StoreOp::create(
                b, loc, arith::ConstantIntOp::create(b, loc, b.getI64Type(), 0),
                routing, ix.c(0));
          auto clear = scf::ForOp::create(b, loc, ix.c(0), slots, ix.c(1));
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPointToStart(clear.getBody());
          memref::StoreOp::create(b, loc, c32(0), done,
                                  clear.getInductionVar());
        });
  });
  gpu::ReturnOp::create(b, loc);
  return fn;
}
