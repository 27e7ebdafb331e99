//===- ExpertKernels.cpp - GPU kernels of the expert FFN -------------------===//
//
// Part of moe-compiler.
//
// The grouped GEMV gives each thread 8 adjacent output columns, read as one
// 16-byte vector per weight row. The reduction dimension is split twice so
// that enough loads are in flight on 132 SMs when few experts are hit:
// across blocks (grid y, partial sums added in f32 by atomics) and across
// the `lanes` lanes of a warp that share the same columns (added by xor
// shuffles, so only one lane in `lanes` issues the atomics). A warp thus
// reads `lanes` rows of 32 / lanes vectors per load. Up to four rows of x
// share each weight load, and `unroll` weight rows per lane are loaded
// before their first use.
//
//===----------------------------------------------------------------------===//

#include "moe/Target/CUDA/ExpertKernels.h"
#include "moe/Dialect/MoE/Utils/TensorBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

gpu::GPUFuncOp mlir::moe::createKernelFunc(OpBuilder &b, Location loc,
                                           gpu::GPUModuleOp module,
                                           StringRef name, TypeRange argTypes,
                                           int64_t knownThreads) {
  b.setInsertionPointToEnd(module.getBody());
  auto fn = gpu::GPUFuncOp::create(
      b, loc, name, FunctionType::get(b.getContext(), argTypes, {}));
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  if (knownThreads)
    fn.setKnownBlockSizeAttr(
        b.getDenseI32ArrayAttr({int32_t(knownThreads), 1, 1}));
  b.setInsertionPointToStart(&fn.getBody().front());
  return fn;
}

std::string mlir::moe::whyNotGemvTuning(const GemvTuning &t) {
  if (t.maxLanes != 0 && t.maxLanes != 1 && t.maxLanes != 2 &&
      t.maxLanes != 4 && t.maxLanes != 8)
    return "GEMV lanes must be 0 (auto), 1, 2, 4 or 8, got " +
           std::to_string(t.maxLanes);
  if (t.unroll != 0 && t.unroll != 4 && t.unroll != 8)
    return "GEMV unroll must be 0 (auto), 4 or 8, got " +
           std::to_string(t.unroll);
  return "";
}

std::string mlir::moe::gemvKernelName(StringRef base, const GemvOptions &o) {
  std::string name = base.str();
  if (o.rowsPerPass != kGemvRowsPerPass)
    name += "_r" + std::to_string(o.rowsPerPass);
  if (o.lanes != 1)
    name += "_l" + std::to_string(o.lanes);
  if (o.unroll != kGemvUnroll)
    name += "_u" + std::to_string(o.unroll);
  if (o.inputActivation)
    name += ("_" + stringifyActivation(*o.inputActivation) +
             (o.inputGated ? "_gated" : "_plain"))
                .str();
  if (o.stageRows)
    name += "_s" + std::to_string(o.stageRows);
  if (o.loadBeforeWait)
    name += "_early";
  if (o.triggerDependents)
    name += "_trigger";
  if (o.oneToken)
    name += "_t1";
  if (o.asyncStages)
    name += "_a" + std::to_string(o.asyncStages);
  return name;
}

SmallVector<Type> mlir::moe::gemvArgTypes(OpBuilder &b, Type elt,
                                           const GemvOptions &opts) {
  int64_t dyn = ShapedType::kDynamic;
  Type f32 = b.getF32Type(), index = b.getIndexType(), i32 = b.getI32Type();
  bool fusedAct = opts.inputActivation.has_value();
  auto xType = MemRefType::get({dyn, dyn}, fusedAct ? f32 : elt);
  auto vecI32 = MemRefType::get({dyn}, i32);
  auto wType = MemRefType::get({dyn, dyn, dyn}, elt);
  auto outType = MemRefType::get({dyn, dyn}, f32);
  SmallVector<Type> argTypes{xType, vecI32, wType, outType, index};
  if (opts.gatherRows || opts.scatter)
    argTypes.push_back(vecI32); // rowToken
  if (opts.scatter)
    argTypes.push_back(MemRefType::get({dyn}, f32)); // rowWeight
  if (opts.indirect)
    argTypes.push_back(vecI32); // hit experts
  if (opts.pair) {
    argTypes.push_back(wType);
    argTypes.push_back(outType);
  }
  if (fusedAct && opts.inputGated)
    argTypes.push_back(xType); // the gate projection
  return argTypes;
}

mlir::moe::GemvArgs mlir::moe::gemvArgs(ValueRange args,
                                        const GemvOptions &opts) {
  GemvArgs a;
  a.x = args[0];
  a.offsets = args[1];
  a.w = args[2];
  a.out = args[3];
  a.kchunk = args[4];
  unsigned next = 5;
  if (opts.gatherRows || opts.scatter)
    a.rowToken = args[next++];
  if (opts.scatter)
    a.rowWeight = args[next++];
  if (opts.indirect)
    a.hit = args[next++];
  if (opts.pair) {
    a.w2 = args[next++];
    a.out2 = args[next++];
  }
  if (opts.inputActivation && opts.inputGated)
    a.xGate = args[next++];
  return a;
}

Value mlir::moe::addGemvStage(OpBuilder &b, Location loc, gpu::GPUFuncOp fn,
                              const GemvOptions &opts) {
  if (!opts.stageRows)
    return Value();
  Value stage = fn.addWorkgroupAttribution(
      MemRefType::get({opts.rowsPerPass, opts.stageRows}, b.getF32Type(),
                      MemRefLayoutAttrInterface(),
                      gpu::AddressSpaceAttr::get(b.getContext(),
                                                 gpu::AddressSpace::Workgroup)),
      loc);
  // 16-byte aligned: LLVM reads consecutive floats of it as vectors (it
  // did at a 4-byte offset beside the decode kernel's other buffers).
  fn.setWorkgroupAttributionAttr(fn.getNumWorkgroupAttributions() - 1,
                                 LLVM::LLVMDialect::getAlignAttrName(),
                                 b.getI64IntegerAttr(16));
  return stage;
}

gpu::GPUFuncOp mlir::moe::buildGroupedGemvKernel(OpBuilder &b, Location loc,
                                                 gpu::GPUModuleOp module,
                                                 StringRef name, Type elt,
                                                 const GemvOptions &opts) {
  OpBuilder::InsertionGuard guard(b);
  assert((!opts.loadBeforeWait || opts.indirect) &&
         "early loads read the slot's expert from hit");
  assert((!opts.stageRows || opts.inputActivation) &&
         "staging is of the activation");
  auto fn = createKernelFunc(b, loc, module, name, gemvArgTypes(b, elt, opts));
  Value stage = addGemvStage(b, loc, fn, opts);
  // At most kGemvMaxThreads threads a block: ptxas then keeps the unrolled
  // loads in flight (without the bound it held two of eight, in 34
  // registers, as if for 1024-thread blocks).
  fn->setAttr(NVVM::NVVMDialect::getMaxntidAttrName(),
              b.getDenseI32ArrayAttr({int32_t(kGemvMaxThreads), 1, 1}));
  Block &entry = fn.getBody().front();
  GemvBlock block;
  block.bx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  block.by = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  block.bz = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  block.bdim = gpu::BlockDimOp::create(b, loc, gpu::Dimension::x);
  block.stage = stage;
  emitGemvBlock(b, loc, elt, opts, gemvArgs(entry.getArguments(), opts),
                block);
  b.setInsertionPointToEnd(&entry);
  gpu::ReturnOp::create(b, loc);
  return fn;
}

void mlir::moe::emitGemvBlock(OpBuilder &b, Location loc, Type elt,
                              const GemvOptions &opts, const GemvArgs &args,
                              const GemvBlock &block) {
  OpBuilder::InsertionGuard guard(b);
  Type f32 = b.getF32Type(), index = b.getIndexType(), i32 = b.getI32Type();
  bool fusedAct = opts.inputActivation.has_value();
  Value x = args.x, offsets = args.offsets, w = args.w, out = args.out,
        kchunk = args.kchunk, rowToken = args.rowToken,
        rowWeight = args.rowWeight, hit = args.hit, w2 = args.w2,
        out2 = args.out2, xGate = args.xGate, stage = block.stage;
  assert((!opts.coherentLoads || !fusedAct || stage) &&
         "coherent loads of the input need the staged activation");
  assert((!opts.oneToken || (opts.indirect && opts.rowsPerPass == 1)) &&
         "one token: a row a slot of hit");

  auto cst = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  // The grid dependency wait is this kernel's own (the programmatic-launch
  // pass leaves kernels that have one): first thing, or after the early
  // loads below.
  auto waitThenTrigger = [&] {
    if (block.wait) {
      block.wait();
      return;
    }
    NVVM::GriddepcontrolOp::create(b, loc, NVVM::GridDepActionKind::wait);
    if (opts.triggerDependents)
      NVVM::GriddepcontrolOp::create(
          b, loc, NVVM::GridDepActionKind::launch_dependents);
  };
  if (opts.triggerDependents && !opts.loadBeforeWait)
    waitThenTrigger();
  auto cmp = [&](arith::CmpIPredicate p, Value l, Value r) -> Value {
    return arith::CmpIOp::create(b, loc, p, l, r);
  };
  // The routing's tables (and the staged input) from L2 where other blocks
  // of the same kernel write them (coherentLoads).
  auto loadIndex = [&](OpBuilder &lb, Location l, Value m, Value i) -> Value {
    Value v = opts.coherentLoads
                  ? loadFromL2(lb, l, m, i)
                  : memref::LoadOp::create(lb, l, m, i).getResult();
    return arith::IndexCastOp::create(lb, l, index, v);
  };
  const int64_t cols = kGemvColumnsPerThread, rowsPerPass = opts.rowsPerPass,
                unroll = opts.unroll, lanes = opts.lanes;
  assert(lanes >= 1 && lanes <= 32 && llvm::isPowerOf2_64(lanes) &&
         "GEMV lanes must be a power of two up to 32");
  auto vecType = VectorType::get({cols}, elt);
  auto accType = VectorType::get({cols}, f32);

  Value d = memref::DimOp::create(b, loc, w, 1);
  Value m = memref::DimOp::create(b, loc, w, 2);
  Value bx = block.bx, by = block.by, bz = block.bz, bdim = block.bdim;
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  // Lane l of a warp owns column group l % (32 / lanes) of the warp's and
  // the rows kl = l / (32 / lanes) (mod lanes) of each step of the K loop.
  Value colsPerWarp = cst(32 / lanes);
  Value lane = arith::RemUIOp::create(b, loc, tid, cst(32));
  Value kl = cst(0);
  Value thread;
  if (lanes == 1) {
    thread = arith::AddIOp::create(
        b, loc, arith::MulIOp::create(b, loc, bx, bdim), tid);
  } else {
    kl = arith::DivUIOp::create(b, loc, lane, colsPerWarp);
    Value warp = arith::DivUIOp::create(b, loc, tid, cst(32));
    Value warpsPerBlock = arith::DivUIOp::create(b, loc, bdim, cst(32));
    Value firstWarp = arith::MulIOp::create(b, loc, bx, warpsPerBlock);
    thread = arith::AddIOp::create(
        b, loc,
        arith::MulIOp::create(
            b, loc, arith::AddIOp::create(b, loc, firstWarp, warp),
            colsPerWarp),
        arith::RemUIOp::create(b, loc, lane, colsPerWarp));
  }
  Value j = arith::MulIOp::create(b, loc, thread, cst(cols));
  Value inColumns = cmp(arith::CmpIPredicate::ult, j, m);
  Value k0 = arith::MulIOp::create(b, loc, by, kchunk);
  Value k1 = arith::MinUIOp::create(
      b, loc, arith::AddIOp::create(b, loc, k0, kchunk), d);
  Value go = cmp(arith::CmpIPredicate::ult, k0, k1);
  Value loadCol = j;
  // With a staged input the block's threads stay together (barriers);
  // those past the last column skip only the K loop.
  Value threadGo;
  if (lanes == 1 && opts.stageRows) {
    threadGo = inColumns;
  } else if (lanes == 1) {
    go = arith::AndIOp::create(b, loc, go, inColumns);
  } else {
    // The lanes of a warp stay together for the shuffles: lanes past the
    // last column read the last column group again and store nothing.
    loadCol = arith::MinUIOp::create(
        b, loc, j, arith::SubIOp::create(b, loc, m, cst(cols)));
  }
  // Threads past the GEMV's block (a bigger block running it): whole warps,
  // kept for the barriers of a staged input, else out of the work.
  if (block.active) {
    if (opts.stageRows)
      threadGo = threadGo ? arith::AndIOp::create(b, loc, threadGo,
                                                  block.active).getResult()
                          : block.active;
    else
      go = arith::AndIOp::create(b, loc, go, block.active);
  }

  // Which expert (and, for pairs, which of the two matrices) this block
  // works on: grid z, or a slot of the list of experts hit.
  Value slot = bz, second;
  if (opts.pair) {
    Value slots = memref::DimOp::create(b, loc, hit, 0);
    second = cmp(arith::CmpIPredicate::uge, bz, slots);
    slot = arith::SelectOp::create(
        b, loc, second, arith::SubIOp::create(b, loc, bz, slots), bz);
    w = arith::SelectOp::create(b, loc, second, w2, w);
    out = arith::SelectOp::create(b, loc, second, out2, out);
  }
  Value e = slot;
  if (opts.indirect) {
    // The caller's, or from L2: read before the wait, hit was written by a
    // kernel before the previous one (complete before that one passed its
    // own wait), never a line this SM's L1 kept from an earlier launch;
    // with coherentLoads, by another block of the same kernel.
    Value raw = block.expert ? block.expert
                : opts.loadBeforeWait || opts.coherentLoads
                    ? loadI32FromL2(b, loc, hit, slot)
                    : memref::LoadOp::create(b, loc, hit, slot).getResult();
    Value valid = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::sge, raw,
        arith::ConstantIntOp::create(b, loc, i32, 0));
    go = arith::AndIOp::create(b, loc, go, valid);
    e = arith::SelectOp::create(b, loc, valid,
                                arith::IndexCastOp::create(b, loc, index, raw),
                                cst(0));
  }

  const int64_t step = unroll * lanes;
  // The weights of rows first, first + lanes, ... (unroll rows) at column
  // col of expert e.
  auto loadWeights = [&](OpBuilder &lb, Location l, Value first, Value col,
                         SmallVectorImpl<Value> &ks, bool here = false) {
    SmallVector<Value> weights;
    for (int64_t u = 0; u < unroll; ++u) {
      Value iu = arith::AddIOp::create(
          lb, l, first, arith::ConstantIndexOp::create(lb, l, u * lanes));
      ks.push_back(iu);
      weights.push_back(
          here ? loadVector16Here(lb, l, vecType, w, ValueRange{e, iu, col})
               : vector::LoadOp::create(
                     lb, l, vecType, w, ValueRange{e, iu, col},
                     /*nontemporal=*/false, llvm::MaybeAlign(16))
                     .getResult());
    }
    return weights;
  };
  // With asyncStages: step n's weights go to the ring's slots
  // ((n mod S) * unroll + u) * threads + tid (threads: the running block's,
  // which may be bigger than the GEMV's), one commit group a step.
  const int64_t S = opts.asyncStages;
  assert((!S || (block.ring && S >= 2)) && "a ring of two or more stages");
  assert((!S || !opts.loadBeforeWait || opts.oneToken) &&
         "steps issued before the wait serve one row pass");
  Value ringThreads =
      S ? gpu::BlockDimOp::create(b, loc, gpu::Dimension::x).getResult()
        : Value();
  auto ringSlot = [&](OpBuilder &lb, Location l, Value n, int64_t u) {
    IndexOps ix{lb, l};
    Value stageSlot = ix.remu(n, S);
    return ix.add(ix.mul(ix.add(ix.mul(stageSlot, ix.c(unroll)), ix.c(u)),
                         ringThreads),
                  tid);
  };
  // Issues step n (its first row `first`) to the ring, if `cond` (null:
  // always); then commits the step's group (empty if not issued).
  auto issueStep = [&](OpBuilder &lb, Location l, Value n, Value first,
                       Value col, Value cond) {
    auto copies = [&] {
      for (int64_t u = 0; u < unroll; ++u)
        asyncCopy16(lb, l, block.ring,
                    ValueRange{ringSlot(lb, l, n, u),
                               arith::ConstantIndexOp::create(lb, l, 0)},
                    w,
                    ValueRange{e,
                               arith::AddIOp::create(
                                   lb, l, first,
                                   arith::ConstantIndexOp::create(
                                       lb, l, u * lanes)),
                               col},
                    arith::ConstantIndexOp::create(lb, l, cols));
    };
    if (cond)
      buildIfThen(lb, l, cond, copies);
    else
      copies();
    NVVM::CpAsyncCommitGroupOp::create(lb, l);
  };
  // The first K step's weights, loaded before the wait (every block: rows
  // k0.. exist since kchunk and K are multiples of the step; the column is
  // kept inside the matrix), used by the first step of every row pass.
  // With asyncStages, the first S - 1 steps (those inside the chunk).
  SmallVector<Value> earlyWeights, earlyKs;
  if (opts.loadBeforeWait && S) {
    IndexOps ix{b, loc};
    Value col = arith::MinUIOp::create(
        b, loc, loadCol, arith::SubIOp::create(b, loc, m, cst(cols)));
    // (Threads past the GEMV's block issue nothing.)
    for (int64_t p = 0; p < S - 1; ++p) {
      Value inChunk = p ? ix.icmp(arith::CmpIPredicate::ule,
                                  ix.add(k0, cst((p + 1) * step)), k1)
                        : Value();
      Value cond = !block.active ? inChunk
                   : inChunk
                       ? arith::AndIOp::create(b, loc, block.active, inChunk)
                             .getResult()
                       : block.active;
      issueStep(b, loc, cst(p), ix.add(ix.add(k0, cst(p * step)), kl), col,
                cond);
    }
    waitThenTrigger();
  } else if (opts.loadBeforeWait) {
    Value col = arith::MinUIOp::create(
        b, loc, loadCol, arith::SubIOp::create(b, loc, m, cst(cols)));
    // (Loads that the compiler keeps before the wait: a plain load used
    // only after it would be sunk past it.)
    earlyWeights = loadWeights(b, loc, arith::AddIOp::create(b, loc, k0, kl),
                               col, earlyKs, /*here=*/true);
    waitThenTrigger();
  }

  auto ifOp = scf::IfOp::create(b, loc, go, /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  Value begin, end;
  if (opts.dense) {
    begin = cst(0);
    end = memref::DimOp::create(b, loc, x, 0);
    e = cst(0);
  } else if (opts.oneToken) {
    begin = slot;
    end = arith::AddIOp::create(b, loc, slot, cst(1));
  } else {
    begin = loadIndex(b, loc, offsets, e);
    end = loadIndex(b, loc, offsets, arith::AddIOp::create(b, loc, e, cst(1)));
  }
  Value zero = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(accType, b.getF32FloatAttr(0.0f)));
  auto rowLoop = scf::ForOp::create(b, loc, begin, end, cst(rowsPerPass));
  b.setInsertionPointToStart(rowLoop.getBody());
  Value r0 = rowLoop.getInductionVar();
  // Rows past the expert's end read row r0 again; they are not stored.
  SmallVector<Value> rows{r0}, valid{Value()};
  for (int64_t q = 1; q < rowsPerPass; ++q) {
    Value rq = arith::AddIOp::create(b, loc, r0, cst(q));
    Value ok = cmp(arith::CmpIPredicate::ult, rq, end);
    rows.push_back(arith::SelectOp::create(b, loc, ok, rq, r0));
    valid.push_back(ok);
  }
  // The input row of each slot: the slot itself, or its token (gather).
  SmallVector<Value> xRows(rows);
  if (opts.gatherRows)
    for (Value &r : xRows)
      r = opts.oneToken ? cst(0) : loadIndex(b, loc, rowToken, r);
  if (opts.stageRows) {
    // stage[q, i] = act(x[row q, k0 + i]) (rounded as the activation
    // kernel stores it), over the block's threads; then a barrier.
    IndexOps ix{b, loc};
    Value len = arith::SubIOp::create(b, loc, k1, k0);
    auto fill =
        scf::ForOp::create(b, loc, tid, ix.mul(len, cst(rowsPerPass)), bdim);
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(fill.getBody());
      Value i = fill.getInductionVar();
      Value q = arith::DivUIOp::create(b, loc, i, len);
      Value kk = arith::RemUIOp::create(b, loc, i, len);
      Value row = xRows[0];
      for (int64_t p = 1; p < rowsPerPass; ++p)
        row = ix.select(ix.icmp(arith::CmpIPredicate::eq, q, cst(p)), xRows[p],
                        row);
      Value k = ix.add(k0, kk);
      auto input = [&](Value m) -> Value {
        if (opts.coherentLoads)
          return loadFromL2(b, loc, m, ValueRange{row, k});
        return memref::LoadOp::create(b, loc, m, ValueRange{row, k});
      };
      Value v = input(x);
      Value gv = xGate ? input(xGate) : Value();
      Value a = expertActivation(b, loc, *opts.inputActivation, v, gv, elt);
      if (!elt.isF32())
        a = arith::ExtFOp::create(b, loc, f32, a);
      memref::StoreOp::create(b, loc, a, stage, ValueRange{q, kk});
    }
    gpu::BarrierOp::create(b, loc);
  }
  // The K loop and the stores of this row pass; with a staged input, only
  // for the threads that have columns (the barrier after it is the
  // block's).
  if (threadGo) {
    Operation *barrierAfter = gpu::BarrierOp::create(b, loc);
    b.setInsertionPoint(barrierAfter);
    auto pass = scf::IfOp::create(b, loc, threadGo, false);
    b.setInsertionPointToStart(&pass.getThenRegion().front());
  } else if (opts.stageRows) {
    Operation *barrierAfter = gpu::BarrierOp::create(b, loc);
    b.setInsertionPoint(barrierAfter);
  }
  // One K step: acc += x[rows, ks] * weights (loaded before their use).
  auto consume =
      [&](OpBuilder &lb, Location l, ArrayRef<Value> ks,
          ArrayRef<Value> weights, ValueRange acc) {
        // All loads first, widened to f32 only where used.
        SmallVector<SmallVector<Value>> xs(unroll), gs(unroll);
        for (int64_t u = 0; u < unroll; ++u)
          for (int64_t q = 0; q < rowsPerPass; ++q) {
            if (stage) {
              xs[u].push_back(memref::LoadOp::create(
                  lb, l, stage,
                  ValueRange{arith::ConstantIndexOp::create(lb, l, q),
                             arith::SubIOp::create(lb, l, ks[u], k0)}));
              continue;
            }
            xs[u].push_back(memref::LoadOp::create(
                lb, l, x, ValueRange{xRows[q], ks[u]}));
            if (xGate)
              gs[u].push_back(memref::LoadOp::create(
                  lb, l, xGate, ValueRange{xRows[q], ks[u]}));
          }
        SmallVector<Value> nextAcc(acc.begin(), acc.end());
        for (int64_t u = 0; u < unroll; ++u) {
          Value wf = arith::ExtFOp::create(lb, l, accType, weights[u]);
          for (int64_t q = 0; q < rowsPerPass; ++q) {
            Value xv = xs[u][q];
            if (fusedAct && !stage)
              xv = expertActivation(lb, l, *opts.inputActivation, xv,
                                    xGate ? gs[u][q] : Value(), elt);
            Value xf = elt.isF32() || stage
                           ? xv
                           : arith::ExtFOp::create(lb, l, f32, xv).getResult();
            Value xb = vector::BroadcastOp::create(lb, l, accType, xf);
            nextAcc[q] = vector::FMAOp::create(lb, l, xb, wf, nextAcc[q]);
          }
        }
        return nextAcc;
      };
  SmallVector<Value> init(rowsPerPass, zero);
  Value kStart = k0;
  if (opts.loadBeforeWait && !S) {
    init = consume(b, loc, earlyKs, earlyWeights, init);
    kStart = arith::AddIOp::create(b, loc, k0, cst(step));
  }
  scf::ForOp kLoop;
  if (S) {
    // Step n: issue step n + S - 1 (if any), wait for step n's group, read
    // its slots back, use them.
    IndexOps ix{b, loc};
    Value steps = arith::DivUIOp::create(
        b, loc, arith::SubIOp::create(b, loc, k1, k0), cst(step));
    auto firstRow = [&](IndexOps &o, Value n) {
      return o.add(o.add(k0, o.mul(n, o.c(step))), kl);
    };
    if (!opts.loadBeforeWait)
      for (int64_t p = 0; p < S - 1; ++p)
        issueStep(b, loc, cst(p), firstRow(ix, cst(p)), loadCol,
                  p ? ix.icmp(arith::CmpIPredicate::ult, cst(p), steps)
                    : Value());
    kLoop = scf::ForOp::create(
        b, loc, cst(0), steps, cst(1), init,
        [&](OpBuilder &lb, Location l, Value n, ValueRange acc) {
          IndexOps lx{lb, l};
          Value ahead = lx.add(n, lx.c(S - 1));
          issueStep(lb, l, ahead, firstRow(lx, ahead), loadCol,
                    lx.icmp(arith::CmpIPredicate::ult, ahead, steps));
          NVVM::CpAsyncWaitGroupOp::create(lb, l, int32_t(S - 1));
          SmallVector<Value> ks, weights;
          for (int64_t u = 0; u < unroll; ++u) {
            ks.push_back(lx.add(firstRow(lx, n), lx.c(u * lanes)));
            weights.push_back(vector::LoadOp::create(
                lb, l, vecType, block.ring,
                ValueRange{ringSlot(lb, l, n, u), lx.c(0)}));
          }
          scf::YieldOp::create(lb, l, consume(lb, l, ks, weights, acc));
        });
  } else {
    // Each step covers unroll * lanes rows: lane kl takes i + u * lanes +
    // kl.
    kLoop = scf::ForOp::create(
        b, loc, kStart, k1, cst(step), init,
        [&](OpBuilder &lb, Location l, Value i, ValueRange acc) {
          SmallVector<Value> ks;
          SmallVector<Value> weights = loadWeights(
              lb, l, arith::AddIOp::create(lb, l, i, kl), loadCol, ks);
          scf::YieldOp::create(lb, l, consume(lb, l, ks, weights, acc));
        });
  }
  // The lanes sharing a column group add their rows' partial sums.
  SmallVector<SmallVector<Value>> sums(rowsPerPass);
  for (int64_t q = 0; q < rowsPerPass; ++q)
    for (int64_t c = 0; c < cols; ++c) {
      Value v = vector::ExtractOp::create(b, loc, kLoop.getResult(q), c);
      sums[q].push_back(sumOverLanes(b, loc, v, 32 / lanes));
    }
  Value storing = inColumns;
  if (lanes > 1)
    storing = arith::AndIOp::create(
        b, loc, storing, cmp(arith::CmpIPredicate::eq, kl, cst(0)));
  auto storeIf = scf::IfOp::create(b, loc, storing, false);
  b.setInsertionPointToStart(&storeIf.getThenRegion().front());
  for (int64_t q = 0; q < rowsPerPass; ++q) {
    OpBuilder::InsertionGuard g(b);
    Value rq = arith::AddIOp::create(b, loc, r0, cst(q));
    if (q > 0) {
      auto store = scf::IfOp::create(b, loc, valid[q], false);
      b.setInsertionPointToStart(&store.getThenRegion().front());
    }
    // Scatter: the slot's result goes, weighted, to its token's row (the
    // combine step fused into the down projection).
    Value outRow = rq, scale;
    if (opts.scatter) {
      outRow = opts.oneToken ? cst(0) : loadIndex(b, loc, rowToken, rq);
      scale = opts.coherentLoads
                  ? loadFromL2(b, loc, rowWeight, rq)
                  : memref::LoadOp::create(b, loc, rowWeight, rq).getResult();
    }
    SmallVector<Value> vals(sums[q]);
    if (scale)
      for (Value &v : vals)
        v = arith::MulFOp::create(b, loc, v, scale);
    // Two 4-wide vector reductions (j is a multiple of 8 columns).
    for (int64_t c = 0; c < cols; c += 4)
      atomicAddF32Vector(b, loc, out, outRow, j,
                         ArrayRef<Value>(vals).slice(c, 4), c);
  }
  // Threads out of the work issued the early steps too: nothing may land
  // in the ring after the block moves on.
  if (S && opts.loadBeforeWait) {
    b.setInsertionPointAfter(ifOp);
    NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);
  }
}

std::string mlir::moe::ffnKernelName(const FfnKernelOptions &o) {
  return ("moe_ffn_bf16_" + stringifyActivation(o.activation) +
          (o.gated ? "_gated" : "_plain") + "_c" + std::to_string(o.columns))
      .str();
}

std::string mlir::moe::whyNotFfnKernel(int64_t d, int64_t f,
                                       int64_t columns) {
  if (columns != 32 && columns != 64 && columns != 128)
    return "fused FFN columns must be 32, 64 or 128, got " +
           std::to_string(columns);
  if (f % columns != 0)
    return "the ffn dimension " + std::to_string(f) +
           " is not a multiple of " + std::to_string(columns) + " columns";
  if (d % kGemvColumnsPerThread != 0)
    return "the hidden size " + std::to_string(d) + " is not a multiple of 8";
  return "";
}

int64_t mlir::moe::planFfnColumns(int64_t f, int64_t slots) {
  for (int64_t c : {64, 128})
    if (f % c == 0 && f / c * slots >= 8 * kPlanSms)
      return c;
  return 0;
}

gpu::GPUFuncOp mlir::moe::buildFusedFfnKernel(OpBuilder &b, Location loc,
                                              gpu::GPUModuleOp module,
                                              StringRef name,
                                              const FfnKernelOptions &o) {
  OpBuilder::InsertionGuard guard(b);
  MLIRContext *ctx = b.getContext();
  int64_t dyn = ShapedType::kDynamic;
  Type f32 = b.getF32Type(), i32 = b.getI32Type(), bf16 = b.getBF16Type();
  auto vecI32 = MemRefType::get({dyn}, i32);
  auto wType = MemRefType::get({dyn, dyn, dyn}, bf16);
  SmallVector<Type> argTypes{MemRefType::get({dyn, dyn}, bf16), vecI32,
                             wType, wType,
                             MemRefType::get({dyn, dyn}, f32), vecI32,
                             MemRefType::get({dyn}, f32), vecI32};
  if (o.gated)
    argTypes.push_back(wType);
  auto fn = createKernelFunc(b, loc, module, name, argTypes, kFfnThreads);
  const int64_t W = o.columns, cols = kGemvColumnsPerThread,
                groups = W / cols, lanesK = kFfnThreads / groups,
                warps = kFfnThreads / 32;
  // Loads in flight a thread: 8 rows of one matrix, 4 of each of two.
  const int64_t unrollUp = o.gated ? 4 : 8, unrollDown = 8;
  auto workgroup = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  auto shared = [&](ArrayRef<int64_t> shape) {
    return fn.addWorkgroupAttribution(
        MemRefType::get(shape, f32, MemRefLayoutAttrInterface(), workgroup),
        loc);
  };
  Value redUp = shared({warps, W});
  Value redGate = o.gated ? shared({warps, W}) : Value();
  Value act = shared({W});
  ValueRange args = fn.getBody().front().getArguments();
  Value x = args[0], offsets = args[1], wUp = args[2], wDown = args[3],
        y = args[4], rowToken = args[5], rowWeight = args[6], hit = args[7];
  Value wGate = o.gated ? args[8] : Value();

  IndexOps ix{b, loc};
  using P = arith::CmpIPredicate;
  Type index = b.getIndexType();
  auto toIndex = [&](Value v) -> Value {
    return arith::IndexCastOp::create(b, loc, index, v);
  };
  auto ifThen = [&](Value cond, function_ref<void()> body) {
    buildIfThen(b, loc, cond, body);
  };
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value bx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value by = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value d = memref::DimOp::create(b, loc, x, 1);
  Value raw = memref::LoadOp::create(b, loc, hit, by);
  Value valid = arith::CmpIOp::create(b, loc, P::sge, raw,
                                      arith::ConstantIntOp::create(b, loc, i32, 0));
  Value e = ix.select(valid, toIndex(raw), ix.c(0));
  Value begin = toIndex(memref::LoadOp::create(b, loc, offsets, e));
  Value end = toIndex(memref::LoadOp::create(b, loc, offsets, ix.add(e, ix.c(1))));
  Value lane = ix.remu(tid, 32), warp = ix.divu(tid, 32);
  Value group = ix.remu(tid, groups), laneK = ix.divu(tid, groups);
  Value c0 = ix.mul(bx, ix.c(W));
  Value j = ix.add(c0, ix.mul(group, ix.c(cols)));
  auto vecType = VectorType::get({cols}, bf16);
  auto accType = VectorType::get({cols}, f32);
  Value zeroAcc = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(accType, b.getF32FloatAttr(0.0f)));
  Value zeroF = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
  auto load16 = [&](OpBuilder &lb, Location l, Value m, ValueRange idx) {
    return vector::LoadOp::create(lb, l, vecType, m, idx,
                                  /*nontemporal=*/false, llvm::MaybeAlign(16))
        .getResult();
  };

  ifThen(arith::AndIOp::create(b, loc, valid, ix.icmp(P::ult, begin, end)), [&] {
    auto rows = scf::ForOp::create(b, loc, begin, end, ix.c(1));
    OpBuilder::InsertionGuard rg(b);
    b.setInsertionPointToStart(rows.getBody());
    Value r = rows.getInductionVar();
    Value token = toIndex(memref::LoadOp::create(b, loc, rowToken, r));

    // Up (and gate): columns j..j+8, rows laneK + lanesK i of all of d.
    SmallVector<Value> init{zeroAcc};
    if (o.gated)
      init.push_back(zeroAcc);
    auto kLoop = scf::ForOp::create(
        b, loc, laneK, d, ix.c(lanesK * unrollUp), init,
        [&](OpBuilder &lb, Location l, Value i, ValueRange acc) {
          IndexOps li{lb, l};
          SmallVector<Value> ks, inside, ups, gates;
          for (int64_t u = 0; u < unrollUp; ++u) {
            Value iu = li.add(i, li.c(u * lanesK));
            inside.push_back(li.icmp(P::ult, iu, d));
            ks.push_back(li.select(inside.back(), iu, laneK));
            ups.push_back(load16(lb, l, wUp, ValueRange{e, ks.back(), j}));
            if (o.gated)
              gates.push_back(load16(lb, l, wGate, ValueRange{e, ks.back(), j}));
          }
          SmallVector<Value> next(acc.begin(), acc.end());
          for (int64_t u = 0; u < unrollUp; ++u) {
            Value xRaw =
                memref::LoadOp::create(lb, l, x, ValueRange{token, ks[u]});
            Value xv = arith::ExtFOp::create(lb, l, f32, xRaw);
            xv = arith::SelectOp::create(lb, l, inside[u], xv, zeroF);
            Value xb = vector::BroadcastOp::create(lb, l, accType, xv);
            next[0] = vector::FMAOp::create(
                lb, l, xb, arith::ExtFOp::create(lb, l, accType, ups[u]),
                next[0]);
            if (o.gated)
              next[1] = vector::FMAOp::create(
                  lb, l, xb, arith::ExtFOp::create(lb, l, accType, gates[u]),
                  next[1]);
          }
          scf::YieldOp::create(lb, l, next);
        });
    // The lanes of a warp with the same columns add by shuffles, the warps
    // through shared memory.
    Value sliceCol = ix.mul(group, ix.c(cols));
    for (unsigned m = 0; m < kLoop.getNumResults(); ++m)
      storeWarpSums(b, loc, kLoop.getResult(m), groups, lane, warp,
                    m == 0 ? redUp : redGate, ValueRange{}, sliceCol);
    gpu::BarrierOp::create(b, loc);
    ifThen(ix.icmp(P::ult, tid, ix.c(W)), [&] {
      Value h = sumOverWarps(b, loc, redUp, warps, ValueRange{tid});
      Value g = o.gated ? sumOverWarps(b, loc, redGate, warps, ValueRange{tid})
                        : Value();
      // The activation rounded to bf16, as moe.experts stores it.
      Value a = arith::ExtFOp::create(
          b, loc, f32, expertActivation(b, loc, o.activation, h, g, bf16));
      memref::StoreOp::create(b, loc, a, act, ValueRange{tid});
    });
    gpu::BarrierOp::create(b, loc);

    // Down: y[token, q..q+8] += weight * sum_rr act[rr] wDown[e, c0 + rr, q..].
    Value weight = memref::LoadOp::create(b, loc, rowWeight, r);
    auto outCols = scf::ForOp::create(b, loc, ix.mul(tid, ix.c(cols)), d,
                                      ix.c(kFfnThreads * cols));
    {
      OpBuilder::InsertionGuard og(b);
      b.setInsertionPointToStart(outCols.getBody());
      Value q = outCols.getInductionVar();
      auto dLoop = scf::ForOp::create(
          b, loc, ix.c(0), ix.c(W), ix.c(unrollDown), ValueRange{zeroAcc},
          [&](OpBuilder &lb, Location l, Value rr, ValueRange acc) {
            IndexOps li{lb, l};
            SmallVector<Value> ws;
            for (int64_t u = 0; u < unrollDown; ++u)
              ws.push_back(load16(
                  lb, l, wDown,
                  ValueRange{e, li.add(c0, li.add(rr, li.c(u))), q}));
            Value next = acc.front();
            for (int64_t u = 0; u < unrollDown; ++u) {
              Value av = memref::LoadOp::create(lb, l, act,
                                                ValueRange{li.add(rr, li.c(u))});
              next = vector::FMAOp::create(
                  lb, l, vector::BroadcastOp::create(lb, l, accType, av),
                  arith::ExtFOp::create(lb, l, accType, ws[u]), next);
            }
            scf::YieldOp::create(lb, l, ValueRange{next});
          });
      SmallVector<Value> vals;
      for (int64_t c = 0; c < cols; ++c)
        vals.push_back(arith::MulFOp::create(
            b, loc,
            vector::ExtractOp::create(b, loc, dLoop.getResult(0), c), weight));
      for (int64_t c = 0; c < cols; c += 4)
        atomicAddF32Vector(b, loc, y, token, q,
                           ArrayRef<Value>(vals).slice(c, 4), c);
    }
    // The shared sums and activations are rewritten by the next row.
    gpu::BarrierOp::create(b, loc);
  });
  gpu::ReturnOp::create(b, loc);
  return fn;
}

gpu::GPUFuncOp mlir::moe::buildElementwiseKernel(
    OpBuilder &b, Location loc, gpu::GPUModuleOp module, StringRef name,
    TypeRange argTypes,
    function_ref<void(OpBuilder &, Location, ValueRange, Value, Value)> body) {
  OpBuilder::InsertionGuard guard(b);
  auto fn = moe::createKernelFunc(b, loc, module, name, argTypes);
  Block &entry = fn.getBody().front();
  Value first = entry.getArgument(0);
  Value rows = memref::DimOp::create(b, loc, first, 0);
  Value cols = memref::DimOp::create(b, loc, first, 1);
  Value bx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value bdim = gpu::BlockDimOp::create(b, loc, gpu::Dimension::x);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value linear = arith::AddIOp::create(
      b, loc, arith::MulIOp::create(b, loc, bx, bdim), tid);
  Value total = arith::MulIOp::create(b, loc, rows, cols);
  Value inside =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, linear, total);
  auto ifOp = scf::IfOp::create(b, loc, inside, false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  Value r = arith::DivUIOp::create(b, loc, linear, cols);
  Value c = arith::RemUIOp::create(b, loc, linear, cols);
  body(b, loc, entry.getArguments(), r, c);
  b.setInsertionPointToEnd(&entry);
  gpu::ReturnOp::create(b, loc);
  return fn;
}

void mlir::moe::emitPrefetchL2(OpBuilder &b, Location loc, Value m,
                               int64_t eltBytes, int64_t threadsPerBlock) {
  MLIRContext *ctx = b.getContext();
  IndexOps ix{b, loc};
  auto type = cast<MemRefType>(m.getType());
  assert(type.getLayout().isIdentity() && "an identity-layout memref");
  Value elements = ix.c(1);
  for (int64_t i = 0; i < type.getRank(); ++i)
    elements = ix.mul(elements, memref::DimOp::create(b, loc, m, i));
  Value lines = arith::DivUIOp::create(
      b, loc, ix.add(ix.mul(elements, ix.c(eltBytes)), ix.c(127)),
      ix.c(128));
  Value threads = ix.mul(gpu::GridDimOp::create(b, loc, gpu::Dimension::x),
                         ix.c(threadsPerBlock));
  Value first =
      ix.add(ix.mul(gpu::BlockIdOp::create(b, loc, gpu::Dimension::x),
                    ix.c(threadsPerBlock)),
             gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x));
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, m);
  auto loop = scf::ForOp::create(b, loc, first, lines, threads);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(loop.getBody());
  Value global = globalPointer(
      b, loc, ix.add(base, ix.mul(loop.getInductionVar(), ix.c(128))));
  NVVM::PrefetchOp::create(
      b, loc,
      NVVM::PrefetchCacheLevelAttr::get(ctx, NVVM::PrefetchCacheLevel::L2),
      nullptr, global, Value(), /*tensormap=*/false);
}

Value mlir::moe::expertTileCount(OpBuilder &b, Location loc, Value rows,
                                 int64_t tileRows, int64_t step) {
  auto c = [&](int64_t v) -> Value {
    return arith::ConstantOp::create(b, loc, rows.getType(),
                                     b.getIntegerAttr(rows.getType(), v));
  };
  Value tiles = arith::DivUIOp::create(
      b, loc, arith::AddIOp::create(b, loc, rows, c(tileRows - 1)),
      c(tileRows));
  if (step == tileRows)
    return tiles;
  Value past = arith::DivUIOp::create(
      b, loc,
      arith::AddIOp::create(b, loc, rows, c(step - 1 - (tileRows - step))),
      c(step));
  return arith::SelectOp::create(
      b, loc,
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, rows,
                            c(tileRows)),
      past, tiles);
}

Value mlir::moe::gpuActivation(OpBuilder &b, Location loc, Activation act,
                               Value x) {
  if (act != Activation::silu)
    return applyActivation(b, loc, act, x);
  // x / (1 + 2^(-x log2(e))) with the SFU's approximations (ex2.approx.ftz:
  // relative error about 2^-22; rcp.approx.ftz: 1 ulp), instead of expf and
  // the IEEE division: 6 instructions an element, not about 30 with a slow
  // path, far below bf16's rounding of the result. Large negative x: 2^+inf
  // = inf, rcp(inf) = 0, silu = -0.
  Type f32 = b.getF32Type();
  Value t = arith::MulFOp::create(b, loc, x,
                                  constF32(b, loc, -1.4426950408889634f));
  Value e = LLVM::CallIntrinsicOp::create(
                b, loc, f32, b.getStringAttr("llvm.nvvm.ex2.approx.ftz.f32"),
                ValueRange{t})
                .getResult(0);
  Value d = arith::AddFOp::create(b, loc, constF32(b, loc, 1.0f), e);
  return arith::MulFOp::create(b, loc, x,
                               NVVM::RcpApproxFtzF32Op::create(b, loc, f32, d));
}

Value mlir::moe::expertActivation(OpBuilder &b, Location loc, Activation act,
                                  Value h, Value g, Type elt) {
  Value v = g ? arith::MulFOp::create(b, loc, gpuActivation(b, loc, act, g), h)
                    .getResult()
              : gpuActivation(b, loc, act, h);
  return fromF32(b, loc, v, elt);
}

std::string mlir::moe::expertActivationKernelName(Activation act, bool gated) {
  return ("expert_" + stringifyActivation(act) + (gated ? "_gated" : "_plain"))
      .str();
}

gpu::GPUFuncOp mlir::moe::buildExpertActivationKernel(
    OpBuilder &b, Location loc, gpu::GPUModuleOp module, StringRef name,
    Activation act, bool gated, Type elt) {
  int64_t dyn = ShapedType::kDynamic;
  auto f32Type = MemRefType::get({dyn, dyn}, b.getF32Type());
  auto outType = MemRefType::get({dyn, dyn}, elt);
  SmallVector<Type> args{f32Type};
  if (gated)
    args.push_back(f32Type);
  args.push_back(outType);
  return buildElementwiseKernel(
      b, loc, module, name, args,
      [&](OpBuilder &nb, Location l, ValueRange a, Value r, Value c) {
        Value h = memref::LoadOp::create(nb, l, a[0], ValueRange{r, c});
        Value g = gated ? memref::LoadOp::create(nb, l, a[1], ValueRange{r, c})
                              .getResult()
                        : Value();
        memref::StoreOp::create(nb, l, expertActivation(nb, l, act, h, g, elt),
                                a.back(), ValueRange{r, c});
      });
}

/// Whether memref `m`'s base address is a multiple of 16 bytes (i1).
static Value isAligned16(OpBuilder &b, Location loc, Value m) {
  moe::IndexOps ix{b, loc};
  return ix.icmp(
      arith::CmpIPredicate::eq,
      ix.remu(memref::ExtractAlignedPointerAsIndexOp::create(b, loc, m), 16),
      ix.c(0));
}

gpu::GPUFuncOp mlir::moe::buildRoundKernel(OpBuilder &b, Location loc,
                                           gpu::GPUModuleOp module,
                                           StringRef name, Type elt) {
  OpBuilder::InsertionGuard guard(b);
  int64_t dyn = ShapedType::kDynamic;
  Type f32 = b.getF32Type();
  SmallVector<Type> args{MemRefType::get({dyn, dyn}, f32),
                         MemRefType::get({dyn, dyn}, elt)};
  auto fn = moe::createKernelFunc(b, loc, module, name, args);
  Block &entry = fn.getBody().front();
  IndexOps ix{b, loc};
  const int64_t per = kRoundElementsPerThread;
  // Both as flat vectors (identity layouts): no division by the columns.
  SmallVector<ReassociationIndices> flat{{0, 1}};
  Value y = memref::CollapseShapeOp::create(b, loc, entry.getArgument(0), flat);
  Value out =
      memref::CollapseShapeOp::create(b, loc, entry.getArgument(1), flat);
  Value total = memref::DimOp::create(b, loc, y, 0);
  Value thread = ix.add(
      ix.mul(gpu::BlockIdOp::create(b, loc, gpu::Dimension::x),
             gpu::BlockDimOp::create(b, loc, gpu::Dimension::x)),
      gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x));
  Value first = ix.mul(thread, ix.c(per));
  // Whole runs of `per` at 16-byte aligned addresses (both buffers'
  // starts): two 16-byte loads, one store; else element by element.
  auto aligned = [&](Value m) { return isAligned16(b, loc, m); };
  Value whole = arith::AndIOp::create(
      b, loc,
      arith::AndIOp::create(b, loc, aligned(y), aligned(out)),
      ix.icmp(arith::CmpIPredicate::ule, ix.add(first, ix.c(per)), total));
  auto ifOp = scf::IfOp::create(b, loc, whole, /*withElseRegion=*/true);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    Value v = vector::LoadOp::create(b, loc, VectorType::get({per}, f32), y,
                                     first, /*nontemporal=*/false,
                                     llvm::MaybeAlign(16));
    Value r = elt.isF32() ? v
                          : arith::TruncFOp::create(
                                b, loc, VectorType::get({per}, elt), v)
                                .getResult();
    vector::StoreOp::create(b, loc, r, out, first, /*nontemporal=*/false,
                            llvm::MaybeAlign(16));
    b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    auto loop = scf::ForOp::create(
        b, loc, first,
        arith::MinUIOp::create(b, loc, ix.add(first, ix.c(per)), total),
        ix.c(1));
    b.setInsertionPointToStart(loop.getBody());
    Value i = loop.getInductionVar();
    memref::StoreOp::create(
        b, loc, fromF32(b, loc, memref::LoadOp::create(b, loc, y, i), elt),
        out, i);
  }
  b.setInsertionPointToEnd(&entry);
  gpu::ReturnOp::create(b, loc);
  return fn;
}

std::string mlir::moe::combineKernelName(int64_t topK, bool drops) {
  return "moe_combine_k" + std::to_string(topK) + "_bf16" +
         (drops ? "_drops" : "");
}

gpu::GPUFuncOp mlir::moe::buildCombineKernel(OpBuilder &b, Location loc,
                                             gpu::GPUModuleOp module,
                                             StringRef name, int64_t topK,
                                             bool drops) {
  OpBuilder::InsertionGuard guard(b);
  int64_t dyn = ShapedType::kDynamic;
  Type f32 = b.getF32Type(), bf16 = b.getBF16Type();
  auto rowsType = MemRefType::get({dyn, dyn}, bf16);
  auto vecI32 = MemRefType::get({dyn}, b.getI32Type());
  auto fn = moe::createKernelFunc(b, loc, module, name,
                                  {rowsType, vecI32, vecI32, vecI32, rowsType},
                                  kCombineThreads);
  Block &entry = fn.getBody().front();
  Value h = entry.getArgument(0), offsets = entry.getArgument(1),
        assignExpert = entry.getArgument(2), assignPos = entry.getArgument(3),
        out = entry.getArgument(4);
  IndexOps ix{b, loc};
  const int64_t per = kCombineElementsPerThread;
  auto toIndex = [&](Value v) -> Value {
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
  };
  Value token = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value d = memref::DimOp::create(b, loc, out, 1);
  // The token's k rows of h (the same for every thread: broadcast loads).
  // A dropped assignment (expert -1) reads row 0 and adds zeros.
  SmallVector<Value> rows, kept;
  for (int64_t j = 0; j < topK; ++j) {
    Value a = ix.add(ix.mul(token, ix.c(topK)), ix.c(j));
    Value e = memref::LoadOp::create(b, loc, assignExpert, a);
    Value keep;
    if (drops) {
      Value zero = constI32(b, loc, 0);
      keep = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, e, zero);
      e = arith::SelectOp::create(b, loc, keep, e, zero);
    }
    Value row = arith::AddIOp::create(
        b, loc, memref::LoadOp::create(b, loc, offsets, toIndex(e)),
        memref::LoadOp::create(b, loc, assignPos, a));
    if (drops)
      row = arith::SelectOp::create(b, loc, keep, row, constI32(b, loc, 0));
    rows.push_back(toIndex(row));
    kept.push_back(keep);
  }
  // 16-byte accesses need both bases 16-byte aligned and rows of a
  // multiple of `per` elements (uniform over the grid).
  auto aligned = [&](Value m) { return isAligned16(b, loc, m); };
  Value vectors = arith::AndIOp::create(
      b, loc, arith::AndIOp::create(b, loc, aligned(h), aligned(out)),
      ix.icmp(arith::CmpIPredicate::eq, ix.remu(d, per), ix.c(0)));
  auto ifOp = scf::IfOp::create(b, loc, vectors, /*withElseRegion=*/true);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    auto loop = scf::ForOp::create(b, loc, ix.mul(tid, ix.c(per)), d,
                                   ix.c(kCombineThreads * per));
    b.setInsertionPointToStart(loop.getBody());
    Value c = loop.getInductionVar();
    auto f32Vec = VectorType::get({per}, f32);
    auto bf16Vec = VectorType::get({per}, bf16);
    // All k loads first (independent: in flight together), then the sums.
    SmallVector<Value> loaded;
    for (Value row : rows)
      loaded.push_back(vector::LoadOp::create(b, loc, bf16Vec, h,
                                              ValueRange{row, c},
                                              /*nontemporal=*/false,
                                              llvm::MaybeAlign(16)));
    Value acc;
    for (auto [v, keep] : llvm::zip(loaded, kept)) {
      Value x = arith::ExtFOp::create(b, loc, f32Vec, v);
      if (keep)
        x = arith::SelectOp::create(
            b, loc, keep, x,
            arith::ConstantOp::create(
                b, loc, DenseElementsAttr::get(f32Vec, b.getF32FloatAttr(0))));
      acc = acc ? arith::AddFOp::create(b, loc, acc, x).getResult() : x;
    }
    vector::StoreOp::create(b, loc,
                            arith::TruncFOp::create(b, loc, bf16Vec, acc), out,
                            ValueRange{token, c}, /*nontemporal=*/false,
                            llvm::MaybeAlign(16));
    b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    auto scalar = scf::ForOp::create(b, loc, tid, d, ix.c(kCombineThreads));
    b.setInsertionPointToStart(scalar.getBody());
    Value col = scalar.getInductionVar();
    Value sum;
    for (auto [row, keep] : llvm::zip(rows, kept)) {
      Value x = arith::ExtFOp::create(
          b, loc, f32, memref::LoadOp::create(b, loc, h, ValueRange{row, col}).getResult());
      if (keep)
        x = arith::SelectOp::create(b, loc, keep, x, constF32(b, loc, 0.0f));
      sum = sum ? arith::AddFOp::create(b, loc, sum, x).getResult() : x;
    }
    memref::StoreOp::create(b, loc, arith::TruncFOp::create(b, loc, bf16, sum),
                            out, ValueRange{token, col});
  }
  b.setInsertionPointToEnd(&entry);
  gpu::ReturnOp::create(b, loc);
  return fn;
}

std::string mlir::moe::denseRouteKernelName(const DenseRouteOptions &o) {
  std::string name = "moe_route_dense";
  if (o.coef)
    name += "_coef";
  if (o.mix)
    name += "_mix";
  if (o.mixBiasType)
    name += o.mixBiasType.isF32() ? "_biasf32" : "_biasbf16";
  if (o.tileRows)
    name += "_tiles" + std::to_string(o.tileRows);
  return name;
}

SmallVector<Value> mlir::moe::emitBlockDots(OpBuilder &b, Location loc,
                                            Value red, Value x, Value t,
                                            Value c, int64_t sums,
                                            int64_t threads) {
  constexpr int64_t kUnroll = 8;
  Type f32 = b.getF32Type();
  IndexOps ix{b, loc};
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value d = memref::DimOp::create(b, loc, x, 1);
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
  auto loop = scf::ForOp::create(b, loc, ix.mul(tid, ix.c(kUnroll)), d,
                                 ix.c(threads * kUnroll),
                                 SmallVector<Value>(sums, zero));
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(loop.getBody());
    Value i0 = loop.getInductionVar();
    // All loads of the step first (in flight together), then the sums.
    SmallVector<Value> in, xs;
    SmallVector<SmallVector<Value>> cs(sums);
    for (int64_t u = 0; u < kUnroll; ++u) {
      Value i = ix.add(i0, ix.c(u));
      // Past d: 0 x 0 (d is a multiple of 8 on this path, but stay safe).
      in.push_back(ix.icmp(arith::CmpIPredicate::ult, i, d));
      Value safe = ix.select(in.back(), i, ix.c(0));
      xs.push_back(memref::LoadOp::create(b, loc, x, ValueRange{t, safe}));
      for (int64_t j = 0; j < sums; ++j)
        cs[j].push_back(
            sums > 1
                ? memref::LoadOp::create(b, loc, c, ValueRange{safe, ix.c(j)})
                : memref::LoadOp::create(b, loc, c, ValueRange{safe}));
    }
    SmallVector<Value> acc(loop.getRegionIterArgs());
    for (int64_t u = 0; u < kUnroll; ++u) {
      Value xv = arith::ExtFOp::create(b, loc, f32, xs[u]);
      for (int64_t j = 0; j < sums; ++j) {
        Value cv = arith::SelectOp::create(
            b, loc, in[u], arith::ExtFOp::create(b, loc, f32, cs[j][u]), zero);
        acc[j] = arith::AddFOp::create(b, loc, acc[j],
                                       arith::MulFOp::create(b, loc, xv, cv));
      }
    }
    scf::YieldOp::create(b, loc, acc);
  }
  const int64_t warps = threads / 32;
  Value lane = ix.remu(tid, 32), warp = ix.divu(tid, 32);
  Value isLane0 = ix.icmp(arith::CmpIPredicate::eq, lane, ix.c(0));
  for (int64_t j = 0; j < sums; ++j) {
    Value sum = sumOverLanes(b, loc, loop.getResult(j), 1);
    buildIfThen(b, loc, isLane0, [&] {
      memref::StoreOp::create(b, loc, sum, red, ValueRange{ix.c(j), warp});
    });
  }
  gpu::BarrierOp::create(b, loc);
  // Every thread adds the warps' sums (broadcast reads of shared memory).
  SmallVector<Value> total;
  for (int64_t j = 0; j < sums; ++j) {
    Value v = memref::LoadOp::create(b, loc, red, ValueRange{ix.c(j), ix.c(0)});
    for (int64_t w = 1; w < warps; ++w)
      v = arith::AddFOp::create(
          b, loc, v,
          memref::LoadOp::create(b, loc, red, ValueRange{ix.c(j), ix.c(w)}));
    total.push_back(v);
  }
  return total;
}

gpu::GPUFuncOp mlir::moe::buildDenseRouteKernel(OpBuilder &b, Location loc,
                                                gpu::GPUModuleOp module,
                                                StringRef name,
                                                const DenseRouteOptions &o) {
  assert(!(o.coef && o.mix) && "one weight source");
  OpBuilder::InsertionGuard guard(b);
  int64_t dyn = ShapedType::kDynamic;
  Type i32 = b.getI32Type(), f32 = b.getF32Type(), bf16 = b.getBF16Type();
  auto vecI32 = MemRefType::get({dyn}, i32);
  SmallVector<Type> argTypes{MemRefType::get({dyn, dyn}, bf16)};
  if (o.coef)
    argTypes.push_back(MemRefType::get({dyn}, bf16));
  if (o.mix) {
    argTypes.push_back(MemRefType::get({dyn, dyn}, bf16));
    if (o.mixBiasType)
      argTypes.push_back(MemRefType::get({dyn}, o.mixBiasType));
    argTypes.push_back(MemRefType::get({dyn, dyn}, f32));
  }
  argTypes.append({vecI32, vecI32, MemRefType::get({dyn}, f32), vecI32});
  if (o.tileRows)
    argTypes.append({vecI32, vecI32});
  auto fn = moe::createKernelFunc(b, loc, module, name, argTypes,
                                  kDenseRouteThreads);
  Block &entry = fn.getBody().front();
  unsigned next = 0;
  Value x = entry.getArgument(next++);
  Value c = o.coef || o.mix ? entry.getArgument(next++) : Value();
  Value mixBias = o.mixBiasType ? entry.getArgument(next++) : Value();
  Value y = o.mix ? entry.getArgument(next++) : Value();
  Value offsets = entry.getArgument(next++),
        rowToken = entry.getArgument(next++),
        rowWeight = entry.getArgument(next++), hit = entry.getArgument(next++);
  Value tileExpert = o.tileRows ? entry.getArgument(next++) : Value();
  Value tileRow = o.tileRows ? entry.getArgument(next++) : Value();
  IndexOps ix{b, loc};
  auto i32c = [&](int64_t v) -> Value {
    return arith::ConstantIntOp::create(b, loc, i32, v);
  };
  auto toI32 = [&](Value v) -> Value {
    return arith::IndexCastOp::create(b, loc, i32, v);
  };
  auto f32c = [&](float v) -> Value {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  };
  Value bid = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value T = memref::DimOp::create(b, loc, rowToken, 0);
  Value isFirstBlock = ix.icmp(arith::CmpIPredicate::eq, bid, ix.c(0));
  // The table of the one expert: rows [0, T), its tiles, then -1.
  buildIfThen(b, loc, isFirstBlock, [&] {
    buildIfThen(b, loc, ix.icmp(arith::CmpIPredicate::eq, tid, ix.c(0)), [&] {
      memref::StoreOp::create(b, loc, i32c(0), offsets, ValueRange{ix.c(0)});
      memref::StoreOp::create(b, loc, toI32(T), offsets, ValueRange{ix.c(1)});
      memref::StoreOp::create(b, loc, i32c(0), hit, ValueRange{ix.c(0)});
    });
    if (!o.tileRows)
      return;
    auto loop = scf::ForOp::create(b, loc, tid,
                                   memref::DimOp::create(b, loc, tileExpert, 0),
                                   ix.c(kDenseRouteThreads));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(loop.getBody());
    Value i = loop.getInductionVar();
    Value row = ix.mul(i, ix.c(o.tileRows));
    Value live = ix.icmp(arith::CmpIPredicate::ult, row, T);
    memref::StoreOp::create(
        b, loc, arith::SelectOp::create(b, loc, live, i32c(0), i32c(-1)),
        tileExpert, ValueRange{i});
    memref::StoreOp::create(b, loc, toI32(row), tileRow, ValueRange{i});
  });
  if (!c) {
    Value t = ix.add(ix.mul(bid, ix.c(kDenseRouteThreads)), tid);
    buildIfThen(b, loc, ix.icmp(arith::CmpIPredicate::ult, t, T), [&] {
      memref::StoreOp::create(b, loc, toI32(t), rowToken, ValueRange{t});
      memref::StoreOp::create(b, loc, f32c(1.0f), rowWeight, ValueRange{t});
    });
    gpu::ReturnOp::create(b, loc);
    return fn;
  }
  // A block a token: the dot products x[t] . coef (one, or the mixing's
  // two).
  const int64_t sums = o.mix ? 2 : 1;
  Value t = bid;
  Value red = fn.addWorkgroupAttribution(
      MemRefType::get({sums, kDenseRouteThreads / 32}, f32,
                      MemRefLayoutAttrInterface(),
                      gpu::AddressSpaceAttr::get(
                          b.getContext(), gpu::AddressSpace::Workgroup)),
      loc);
  // (LLVM may read the warps' sums as vectors: 16-byte aligned.)
  fn.setWorkgroupAttributionAttr(fn.getNumWorkgroupAttributions() - 1,
                                 LLVM::LLVMDialect::getAlignAttrName(),
                                 b.getI64IntegerAttr(16));
  SmallVector<Value> total =
      emitBlockDots(b, loc, red, x, t, c, sums, kDenseRouteThreads);
  for (int64_t j = 0; j < sums; ++j) {
    Value v = total[j];
    if (mixBias) {
      Value bj = memref::LoadOp::create(b, loc, mixBias, ValueRange{ix.c(j)});
      if (!o.mixBiasType.isF32())
        bj = arith::ExtFOp::create(b, loc, f32, bj);
      v = arith::AddFOp::create(b, loc, v, bj);
    }
    total[j] = v;
  }
  // Softmax over the two logits: c1 = sigmoid(l1 - l0), c0 = sigmoid(l0 - l1).
  Value weight =
      o.mix ? sigmoidF32(b, loc, arith::SubFOp::create(b, loc, total[1], total[0]))
            : sigmoidF32(b, loc, total[0]);
  buildIfThen(b, loc, ix.icmp(arith::CmpIPredicate::eq, tid, ix.c(0)), [&] {
    memref::StoreOp::create(b, loc, weight, rowWeight, ValueRange{t});
    memref::StoreOp::create(b, loc, toI32(t), rowToken, ValueRange{t});
  });
  if (o.mix) {
    // The routed experts' share: y[t] *= c0.
    Value c0 =
        sigmoidF32(b, loc, arith::SubFOp::create(b, loc, total[0], total[1]));
    auto scale = scf::ForOp::create(b, loc, tid,
                                    memref::DimOp::create(b, loc, y, 1),
                                    ix.c(kDenseRouteThreads));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(scale.getBody());
    Value col = scale.getInductionVar();
    Value v = memref::LoadOp::create(b, loc, y, ValueRange{t, col});
    memref::StoreOp::create(b, loc, arith::MulFOp::create(b, loc, v, c0), y,
                            ValueRange{t, col});
  }
  gpu::ReturnOp::create(b, loc);
  return fn;
}

gpu::GPUFuncOp mlir::moe::buildLocalizeExpertsKernel(OpBuilder &b,
                                                     Location loc,
                                                     gpu::GPUModuleOp module,
                                                     StringRef name,
                                                     bool tiles) {
  OpBuilder::InsertionGuard guard(b);
  int64_t dyn = ShapedType::kDynamic;
  Type i32 = b.getI32Type(), index = b.getIndexType();
  auto vec = MemRefType::get({dyn}, i32);
  SmallVector<Type> argTypes{vec, vec, vec};
  if (tiles)
    argTypes.push_back(vec);
  argTypes.push_back(index);
  auto fn = moe::createKernelFunc(b, loc, module, name, argTypes);
  Block &entry = fn.getBody().front();
  Value offsets = entry.getArgument(0), localOffsets = entry.getArgument(1),
        hit = entry.getArgument(2);
  Value tileExpert = tiles ? entry.getArgument(3) : Value();
  Value first = entry.getArgument(tiles ? 4 : 3);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value step = gpu::BlockDimOp::create(b, loc, gpu::Dimension::x);
  Value local = arith::SubIOp::create(
      b, loc, memref::DimOp::create(b, loc, localOffsets, 0),
      arith::ConstantIndexOp::create(b, loc, 1));
  Value firstI32 = arith::IndexCastOp::create(b, loc, i32, first);
  Value localI32 = arith::IndexCastOp::create(b, loc, i32, local);
  auto forEach = [&](Value size, function_ref<void(Value)> body) {
    auto loop = scf::ForOp::create(b, loc, tid, size, step);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(loop.getBody());
    body(loop.getInductionVar());
  };
  // The local experts' row offsets (global rows of the mapping table).
  forEach(memref::DimOp::create(b, loc, localOffsets, 0), [&](Value i) {
    Value v = memref::LoadOp::create(
        b, loc, offsets, ValueRange{arith::AddIOp::create(b, loc, first, i)});
    memref::StoreOp::create(b, loc, v, localOffsets, ValueRange{i});
  });
  // Expert ids of the hit list and the tile table: local, or -1 (skipped).
  auto rebase = [&](Value table) {
    forEach(memref::DimOp::create(b, loc, table, 0), [&](Value i) {
      Value e = memref::LoadOp::create(b, loc, table, ValueRange{i});
      Value l = arith::SubIOp::create(b, loc, e, firstI32);
      Value zero = arith::ConstantIntOp::create(b, loc, i32, 0);
      Value inRange = arith::AndIOp::create(
          b, loc,
          arith::AndIOp::create(
              b, loc,
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, e, zero),
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, l, zero)),
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, l, localI32));
      Value none = arith::ConstantIntOp::create(b, loc, i32, -1);
      memref::StoreOp::create(b, loc,
                              arith::SelectOp::create(b, loc, inRange, l, none),
                              table, ValueRange{i});
    });
  };
  rebase(hit);
  if (tiles)
    rebase(tileExpert);
  gpu::ReturnOp::create(b, loc);
  return fn;
}

shard::AllReduceOp mlir::moe::gpuLayerSum(LayerOp layer) {
  if (!layer->hasOneUse())
    return {};
  auto reduce = dyn_cast<shard::AllReduceOp>(*layer->getUsers().begin());
  if (!reduce || reduce.getReduction() != shard::ReductionKind::Sum ||
      reduce.getType() != layer.getType())
    return {};
  return reduce;
}

std::optional<int64_t> mlir::moe::gpuLayerCapacity(LayerOp op) {
  std::optional<llvm::APFloat> cf = op.getCapacityFactor();
  auto type = cast<RankedTensorType>(op.getType());
  if (!cf || !type.hasStaticShape())
    return std::nullopt;
  int64_t tokens = type.getDimSize(0);
  double capacity = routingCapacity(
      cf->convertToDouble(), tokens, op.getTopKAttr().getInt(),
      op.getNumExperts(), op.getMinCapacityAttr().getInt());
  if (capacity >= double(tokens))
    return std::nullopt;
  return int64_t(capacity);
}

std::string mlir::moe::whyNotGpuLayer(LayerOp op) {
  auto type = cast<RankedTensorType>(op.getType());
  if (!type.getElementType().isBF16())
    return "the fused GPU layer takes bf16 activations";
  for (Type t : op->getOperandTypes())
    if (auto shaped = dyn_cast<RankedTensorType>(t); shaped && !shaped.hasStaticShape())
      return "the fused GPU layer needs static shapes";
  for (Value v : {op.getInput(), op.getRouterWeight(), op.getWUp(),
                  op.getWGate(), op.getWDown(), op.getSharedUp(),
                  op.getSharedGate(), op.getSharedDown(), op.getSharedCoef(),
                  op.getMlpUp(), op.getMlpDown(), op.getMlpCoef()})
    if (v && !cast<RankedTensorType>(v.getType()).getElementType().isBF16())
      return "the fused GPU layer takes bf16 weights";
  if (op.getCapacityFactor() && op.getDropPolicy() != DropPolicy::position)
    return "the fused GPU layer drops assignments past a capacity by "
           "position only (drop_policy score is not supported)";
  int64_t experts = op.getNumExperts();
  int64_t k = op.getTopKAttr().getInt();
  auto up = cast<RankedTensorType>(op.getWUp().getType());
  int64_t d = up.getDimSize(1), f = up.getDimSize(2);
  if (experts > kRouteThreads)
    return "the GPU routing kernel takes at most " +
           std::to_string(kRouteThreads) + " experts";
  if (k > 32)
    return "the GPU routing kernel takes top_k <= 32";
  // Group limits: the verifier ensures n_group divides E and top_k fits the
  // kept groups' experts, so every routing slot finds an expert.
  if (experts % kGemvColumnsPerThread || d % kGemvColumnsPerThread ||
      f % kGemvColumnsPerThread)
    return "the fused GPU layer needs experts, hidden and ffn sizes "
           "divisible by 8";
  // The shared experts and the PR-MoE MLP run as expert stages of one
  // expert each.
  if (Value sharedUp = op.getSharedUp())
    if (cast<RankedTensorType>(sharedUp.getType()).getDimSize(1) %
        kGemvColumnsPerThread)
      return "the fused GPU layer needs a shared-expert size divisible by 8";
  if (Value mlpUp = op.getMlpUp())
    if (cast<RankedTensorType>(mlpUp.getType()).getDimSize(1) %
        kGemvColumnsPerThread)
      return "the fused GPU layer needs a PR-MoE MLP size divisible by 8";
  if (Value bias = op.getMlpCoefBias()) {
    Type bt = cast<RankedTensorType>(bias.getType()).getElementType();
    if (!bt.isBF16() && !bt.isF32())
      return "the fused GPU layer takes a bf16 or f32 mlp_coef_bias";
  }
  if (Value bias = op.getRouterBias()) {
    Type bt = cast<RankedTensorType>(bias.getType()).getElementType();
    if (!bt.isBF16() && !bt.isF32())
      return "the GPU routing kernel takes a bf16 or f32 bias";
  }
  return "";
}
