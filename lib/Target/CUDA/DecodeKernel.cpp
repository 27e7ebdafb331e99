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
//===----------------------------------------------------------------------===//

#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::moe;

constexpr int64_t kGone = 32, kRouted = 64;

static_assert(kDecodeThreads == kGateThreads,
              "the gating items run on the decode kernel's blocks");

std::string mlir::moe::decodeKernelName(const DecodeKernelOptions &o) {
  // The gating kernel's routing suffix, then the two GEMVs' suffixes.
  std::string gate = gateKernelName(o.route);
  std::string up = gemvKernelName("", o.up), down = gemvKernelName("", o.down);
  return "moe_decode" + gate.substr(StringRef("moe_gate").size()) + "_up" +
         (o.up.pair ? "_pair" : "") + up + "_t" + std::to_string(o.upThreads) +
         "_down" + down + "_t" + std::to_string(o.downThreads);
}

static int64_t ringSlots(const DecodeKernelOptions &o) {
  return std::max(gemvRingSlots(o.up, kDecodeThreads),
                  gemvRingSlots(o.down, kDecodeThreads));
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
  Type i32 = b.getI32Type(), bf16 = b.getBF16Type();
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

  std::string ticketName = addDeviceGlobal(b, loc, module, name + "_ticket",
                                           gateTicketType(ctx));
  std::string sumsName = addDeviceGlobal(b, loc, module, name + "_logits",
                                         gateSumsType(ctx, o.route));
  // The queue: [0] the next item, [kGone] blocks gone, [kRouted] routed (0
  // or 1), each on its own 128-byte line (the routed flag is polled).
  auto queueType = MemRefType::get({3 * 32}, i32);
  std::string queueName =
      addDeviceGlobal(b, loc, module, name + "_queue", queueType);
  // Up items done, by slot.
  auto doneType = MemRefType::get({kDecodeMaxSlots}, i32);
  std::string doneName =
      addDeviceGlobal(b, loc, module, name + "_done", doneType);

  SmallVector<Type> argTypes = gateArgTypes(b, o.route);
  size_t upFirst = argTypes.size();
  llvm::append_range(argTypes, gemvArgTypes(b, bf16, o.up));
  size_t downFirst = argTypes.size();
  llvm::append_range(argTypes, gemvArgTypes(b, bf16, o.down));
  size_t planFirst = argTypes.size();
  // Router items, up grid x and y, down grid x and y.
  argTypes.append(5, b.getIndexType());

  auto fn = createKernelFunc(b, loc, module, name, argTypes, kDecodeThreads);
  fn->setAttr(NVVM::NVVMDialect::getMaxntidAttrName(),
              b.getDenseI32ArrayAttr({int32_t(kDecodeThreads), 1, 1}));
  // A register bound that keeps kDecodeBlocksPerSm blocks an SM (three or
  // four spilled: 7-50% slower).
  fn->setAttr(NVVM::NVVMDialect::getMinctasmAttrName(),
              b.getI32IntegerAttr(kDecodeBlocksPerSm));
  GateShared gate = addGateShared(b, loc, fn, o.route);
  Value stage = addGemvStage(b, loc, fn, o.down);
  auto workgroup = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  Value itemSlot = fn.addWorkgroupAttribution(
      MemRefType::get({2}, i32, MemRefLayoutAttrInterface(), workgroup), loc);
  // The experts hit, by slot, once the block has seen the routing.
  Value hitShared = fn.addWorkgroupAttribution(
      MemRefType::get({kDecodeMaxSlots}, i32, MemRefLayoutAttrInterface(),
                      workgroup),
      loc);
  ValueRange args = fn.getBody().front().getArguments();
  // The GEMV items' cp.async ring (one for both: an item's copies are all
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
      gemvArgs(args.slice(downFirst, planFirst - downFirst), o.down);
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
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value isFirst = ix.icmp(P::eq, tid, ix.c(0));
  // (By warps: the GEMV blocks' extra threads are whole warps.)
  Value warp = arith::DivUIOp::create(b, loc, tid, ix.c(32));
  Value slots = memref::DimOp::create(b, loc, upArgs.hit, 0);
  Value upMats = ix.c(o.up.pair ? 2 : 1);
  Value upPerMatrix = ix.mul(upX, upY);
  Value upPerSlot = ix.mul(upPerMatrix, upMats);
  Value downPerSlot = ix.mul(downX, downY);
  Value upEnd = ix.add(routerItems, ix.mul(upPerSlot, slots));
  Value total = ix.add(upEnd, ix.mul(downPerSlot, slots));

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
  NVVM::GriddepcontrolOp::create(b, loc, NVVM::GridDepActionKind::wait);
  NVVM::GriddepcontrolOp::create(b, loc,
                                 NVVM::GridDepActionKind::launch_dependents);
  barrier();
  Value first = toIndex(memref::LoadOp::create(b, loc, itemSlot, ix.c(0)));
  Value noSlot = ix.c(kDecodeMaxSlots);
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

  auto isRouter = scf::IfOp::create(
      b, loc, TypeRange{b.getI1Type(), b.getIndexType()},
      ix.icmp(P::ult, item, routerItems), true);
  b.setInsertionPointToStart(&isRouter.getThenRegion().front());
  emitGateBlock(b, loc, fn, o.route, gateArgs, item, routerItems, gate, [&] {
    // The routing is written (by this block's first warp): publish it.
    barrier();
    buildIfThen(b, loc, isFirst,
                [&] { releaseAddI32(b, loc, queue, ix.c(kRouted), c32(1)); });
  });
  scf::YieldOp::create(b, loc, ValueRange{routed, readySlot});

  b.setInsertionPointToStart(&isRouter.getElseRegion().front());
  // A GEMV item: first (once a block) the routing, published by the last
  // gating item; the experts hit into shared memory.
  buildIfThen(b, loc, arith::XOrIOp::create(b, loc, routed, trueV).getResult(),
              [&] {
                waitUntil([&](OpBuilder &wb, Location wl) -> Value {
                  return arith::CmpIOp::create(
                      wb, wl, P::eq,
                      loadAcquireI32(
                          wb, wl, queue,
                          arith::ConstantIndexOp::create(wb, wl, kRouted)),
                      arith::ConstantIntOp::create(wb, wl, i32, 0));
                });
                buildIfThen(b, loc, ix.icmp(P::ult, tid, slots), [&] {
                  memref::StoreOp::create(
                      b, loc, loadI32FromL2(b, loc, upArgs.hit, tid), hitShared,
                      tid);
                });
                barrier();
              });
  auto isUp = scf::IfOp::create(
      b, loc, TypeRange{b.getI1Type(), b.getIndexType()},
      ix.icmp(P::ult, item, upEnd), true);
  scf::YieldOp::create(b, loc, isUp.getResults());

  // An up item: expert slot `slot`, matrix `second`, block (bx, by).
  b.setInsertionPointToStart(&isUp.getThenRegion().front());
  {
    Value u = arith::SubIOp::create(b, loc, item, routerItems);
    Value matrix = arith::DivUIOp::create(b, loc, u, upPerMatrix);
    Value within = arith::RemUIOp::create(b, loc, u, upPerMatrix);
    Value slot = arith::DivUIOp::create(b, loc, matrix, upMats);
    Value second = arith::RemUIOp::create(b, loc, matrix, upMats);
    GemvBlock blk;
    blk.bx = arith::RemUIOp::create(b, loc, within, upX);
    blk.by = arith::DivUIOp::create(b, loc, within, upX);
    blk.bz = ix.add(slot, ix.mul(second, slots));
    blk.bdim = ix.c(o.upThreads);
    if (o.upThreads < kDecodeThreads)
      blk.active = ix.icmp(P::ult, warp, ix.c(o.upThreads / 32));
    blk.expert = memref::LoadOp::create(b, loc, hitShared, slot);
    blk.ring = ring;
    emitGemvBlock(b, loc, bf16, o.up, upArgs, blk);
    // Every thread's atomics are issued; the release orders them before
    // the count (deferring it to the block's next item, so that only the
    // first warp waits for it, measured no different).
    barrier();
    buildIfThen(b, loc, isFirst,
                [&] { releaseAddI32(b, loc, done, slot, c32(1)); });
    scf::YieldOp::create(b, loc, ValueRange{trueV, readySlot});
  }

  // A down item: slot `slot`, block (bx, by).
  b.setInsertionPointToStart(&isUp.getElseRegion().front());
  {
    Value v = arith::SubIOp::create(b, loc, item, upEnd);
    Value slot = arith::DivUIOp::create(b, loc, v, downPerSlot);
    Value within = arith::RemUIOp::create(b, loc, v, downPerSlot);
    Value need = arith::IndexCastOp::create(b, loc, i32, upPerSlot);
    // After the item's first weight loads (they need only the expert).
    auto waitForUp = [&] {
      buildIfThen(b, loc, ix.icmp(P::ne, slot, readySlot), [&] {
        waitUntil([&](OpBuilder &wb, Location wl) -> Value {
          return arith::CmpIOp::create(
              wb, wl, P::slt, loadAcquireI32(wb, wl, done, slot), need);
        });
      });
    };
    GemvBlock blk;
    blk.wait = waitForUp;
    blk.bx = arith::RemUIOp::create(b, loc, within, downX);
    blk.by = arith::DivUIOp::create(b, loc, within, downX);
    blk.bz = slot;
    blk.bdim = ix.c(o.downThreads);
    if (o.downThreads < kDecodeThreads)
      blk.active = ix.icmp(P::ult, warp, ix.c(o.downThreads / 32));
    blk.expert = memref::LoadOp::create(b, loc, hitShared, slot);
    blk.stage = stage;
    blk.ring = ring;
    emitGemvBlock(b, loc, bf16, o.down, downArgs, blk);
    scf::YieldOp::create(b, loc, ValueRange{trueV, slot});
  }

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
          for (int64_t i : {int64_t(0), kGone, kRouted})
            memref::StoreOp::create(b, loc, c32(0), queue, ix.c(i));
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
