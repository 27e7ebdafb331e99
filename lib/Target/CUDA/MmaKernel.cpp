//===- MmaKernel.cpp - Grouped expert GEMM on tensor cores ------------------===//
//
// Part of moe-compiler.
//
// The tensor-core path of the expert FFN, for steps where experts have many
// rows: each block computes a kMmaTileM x kMmaTileN tile of one expert's
// rows (a tile of the table the routing kernel writes) with warp-level
// mma.sync m16n8k16 (bf16 in, f32 accumulate; nvvm.mma.sync, as the nvgpu
// dialect's mma.sync does not take bf16 in MLIR 22).
// 4 warps in a 2 x 2 grid, each a 32 x 32 sub-tile (2 x 4 mma tiles). Per
// K step of kMmaTileK: the A rows (gathered by token with `gatherRows`) and
// the B tile go through shared memory, B stored transposed so that each
// fragment register is two k-consecutive values; the next step's global
// loads are issued before the current step's mma (register prefetch).
//
// Epilogues:
//  - pair (up and gate in one block): a = bf16(act(x W_gate) * (x W_up));
//  - plain: a = bf16(act(x W_up));
//  - scatter (down): y[rowToken[r]] += rowWeight[r] * (a W_down), f32
//    atomics: the combine step.
//
//===----------------------------------------------------------------------===//

#include "moe/Target/CUDA/ExpertKernels.h"
#include "moe/Dialect/MoE/Utils/TensorBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;

std::string mlir::moe::mmaKernelName(const MmaOptions &o) {
  if (o.scatter)
    return "moe_mma_scatter_bf16";
  return ("moe_mma_" + Twine(o.pair ? "pair_" : "plain_") +
          stringifyActivation(o.activation) + "_bf16")
      .str();
}

gpu::GPUFuncOp mlir::moe::buildGroupedMmaKernel(OpBuilder &b, Location loc,
                                                gpu::GPUModuleOp module,
                                                StringRef name,
                                                const MmaOptions &o) {
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  MLIRContext *ctx = b.getContext();
  int64_t dyn = ShapedType::kDynamic;
  Type f32 = b.getF32Type(), i32 = b.getI32Type(), bf16 = b.getBF16Type(),
       index = b.getIndexType();
  auto mat = MemRefType::get({dyn, dyn}, bf16);
  auto w3 = MemRefType::get({dyn, dyn, dyn}, bf16);
  auto vecI32 = MemRefType::get({dyn}, i32);
  // (x, w, out, tileExpert, tileRow, offsets, rowToken[, rowWeight][, w2])
  SmallVector<Type> argTypes{mat, w3,
                             o.scatter ? MemRefType::get({dyn, dyn}, f32) : mat,
                             vecI32, vecI32, vecI32, vecI32};
  if (o.scatter)
    argTypes.push_back(MemRefType::get({dyn}, f32));
  if (o.pair)
    argTypes.push_back(w3);
  auto fn = gpu::GPUFuncOp::create(b, loc, name,
                                   FunctionType::get(ctx, argTypes, {}));
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  // Launched with exactly this block: ptxas fits the registers to it.
  fn.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(128), 1, 1}));
  const int64_t TM = kMmaTileM, TN = kMmaTileN, TK = kMmaTileK;
  const int64_t stride = TK + 8; // padded rows: fewer bank conflicts
  auto wg = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  auto tileType = [&](int64_t rows) {
    return MemRefType::get({rows, stride}, bf16, MemRefLayoutAttrInterface(),
                           wg);
  };
  Value sA = fn.addWorkgroupAttribution(tileType(TM), loc);
  Value sB = fn.addWorkgroupAttribution(tileType(TN), loc);
  Value sB2 = o.pair ? fn.addWorkgroupAttribution(tileType(TN), loc) : Value();
  Block &entry = fn.getBody().front();
  b.setInsertionPointToStart(&entry);
  Value x = entry.getArgument(0), w = entry.getArgument(1),
        out = entry.getArgument(2), tileExpert = entry.getArgument(3),
        tileRow = entry.getArgument(4), offsets = entry.getArgument(5),
        rowToken = entry.getArgument(6);
  unsigned next = 7;
  Value rowWeight = o.scatter ? entry.getArgument(next++) : Value();
  Value w2 = o.pair ? entry.getArgument(next++) : Value();

  auto ci = [&](int64_t v) { return constIndex(b, loc, v); };
  using P = arith::CmpIPredicate;
  auto icmp = [&](P p, Value l, Value r) -> Value {
    return arith::CmpIOp::create(b, loc, p, l, r);
  };
  auto add = [&](Value l, Value r) -> Value {
    return arith::AddIOp::create(b, loc, l, r);
  };
  auto mul = [&](Value l, Value r) -> Value {
    return arith::MulIOp::create(b, loc, l, r);
  };
  auto toIndex = [&](Value v) -> Value {
    return arith::IndexCastOp::create(b, loc, index, v);
  };
  auto v8 = VectorType::get({8}, bf16);
  auto v2 = VectorType::get({2}, bf16);

  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value tile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value col0 = mul(gpu::BlockIdOp::create(b, loc, gpu::Dimension::x), ci(TN));
  Value rawE = memref::LoadOp::create(b, loc, tileExpert, tile);
  Value live = icmp(P::sge, rawE, constI32(b, loc, 0));
  auto ifLive = scf::IfOp::create(b, loc, live, false);
  b.setInsertionPointToStart(&ifLive.getThenRegion().front());
  Value e = toIndex(rawE);
  Value rowBegin = toIndex(memref::LoadOp::create(b, loc, tileRow, tile));
  Value rowEnd = arith::MinUIOp::create(
      b, loc, add(rowBegin, ci(TM)),
      toIndex(memref::LoadOp::create(b, loc, offsets, add(e, ci(1)))));
  Value K = memref::DimOp::create(b, loc, w, 1);

  // Global -> register loads of one K step: two A vectors and two B vectors
  // (per matrix) a thread. A: 64 rows x 4 vectors of 8; B: 32 k x 8 vectors.
  Value zeroV8 = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(v8, b.getZeroAttr(bf16)));
  // Per part: the A vector's row in the tile, its source row in x (the
  // token's row when gathering), whether the row exists, its k; B's k, n.
  SmallVector<Value> aDst, aSrc, aOk, aK, bK, bN;
  for (int64_t part = 0; part < 2; ++part) {
    Value v = add(tid, ci(part * 128));
    Value r = arith::DivUIOp::create(b, loc, v, ci(TK / 8));
    Value slot = add(rowBegin, r);
    Value ok = icmp(P::ult, slot, rowEnd);
    Value safe = arith::SelectOp::create(b, loc, ok, slot, rowBegin);
    aDst.push_back(r);
    aSrc.push_back(o.gatherRows ? toIndex(memref::LoadOp::create(
                                      b, loc, rowToken, safe))
                                : safe);
    aOk.push_back(ok);
    aK.push_back(mul(arith::RemUIOp::create(b, loc, v, ci(TK / 8)), ci(8)));
    bK.push_back(arith::DivUIOp::create(b, loc, v, ci(TN / 8)));
    bN.push_back(mul(arith::RemUIOp::create(b, loc, v, ci(TN / 8)), ci(8)));
  }
  auto loadStep = [&](Value k0) {
    SmallVector<Value> regs;
    for (int64_t part = 0; part < 2; ++part) {
      Value ld = vector::LoadOp::create(b, loc, v8, x,
                                        ValueRange{aSrc[part], add(k0, aK[part])},
                                        false, llvm::MaybeAlign(16));
      regs.push_back(arith::SelectOp::create(b, loc, aOk[part], ld, zeroV8));
    }
    for (Value mat : {w, w2}) {
      if (!mat)
        continue;
      for (int64_t part = 0; part < 2; ++part)
        regs.push_back(vector::LoadOp::create(
            b, loc, v8, mat, ValueRange{e, add(k0, bK[part]), add(col0, bN[part])},
            false, llvm::MaybeAlign(16)));
    }
    return regs;
  };
  auto storeStep = [&](ValueRange regs) {
    for (int64_t part = 0; part < 2; ++part)
      vector::StoreOp::create(b, loc, regs[part], sA,
                              ValueRange{aDst[part], aK[part]}, false,
                              llvm::MaybeAlign(16));
    unsigned r = 2;
    for (Value tileB : {sB, sB2}) {
      if (!tileB)
        continue;
      for (int64_t part = 0; part < 2; ++part, ++r)
        for (int64_t i = 0; i < 8; ++i) {
          Value v = vector::ExtractOp::create(b, loc, regs[r], i);
          memref::StoreOp::create(b, loc, v, tileB,
                                  ValueRange{add(bN[part], ci(i)), bK[part]});
        }
    }
  };

  // Warp and lane coordinates of the mma fragments.
  Value warp = arith::DivUIOp::create(b, loc, tid, ci(32));
  Value lane = arith::RemUIOp::create(b, loc, tid, ci(32));
  Value wm = mul(arith::DivUIOp::create(b, loc, warp, ci(2)), ci(32));
  Value wn = mul(arith::RemUIOp::create(b, loc, warp, ci(2)), ci(32));
  Value g = arith::DivUIOp::create(b, loc, lane, ci(4));
  Value tg2 = mul(arith::RemUIOp::create(b, loc, lane, ci(4)), ci(2));
  Value zeroF = constF32(b, loc, 0.0f);
  int64_t numMats = o.pair ? 2 : 1;
  // Accumulators: 4 f32 per mma tile [mat][mi][ni] (c0..c3 of the PTX
  // fragment: rows g, g, g+8, g+8; columns tg2, tg2+1, tg2, tg2+1).
  int64_t numAcc = numMats * 2 * 4 * 4;
  auto accIndex = [](int64_t m, int64_t mi, int64_t ni, int64_t c) {
    return ((m * 2 + mi) * 4 + ni) * 4 + c;
  };

  SmallVector<Value> init(numAcc, zeroF);
  SmallVector<Value> first = loadStep(ci(0));
  init.append(first.begin(), first.end());
  auto kLoop = scf::ForOp::create(b, loc, ci(0), K, ci(TK), init);
  {
    OpBuilder::InsertionGuard lg(b);
    b.setInsertionPointToStart(kLoop.getBody());
    Value k0 = kLoop.getInductionVar();
    auto iter = kLoop.getRegionIterArgs();
    SmallVector<Value> acc(iter.begin(), iter.begin() + numAcc);
    SmallVector<Value> regs(iter.begin() + numAcc, iter.end());
    gpu::BarrierOp::create(b, loc);
    storeStep(regs);
    gpu::BarrierOp::create(b, loc);
    // Prefetch the next step (the last step reloads itself, unused).
    Value nextK = arith::MinUIOp::create(b, loc, add(k0, ci(TK)),
                                         arith::SubIOp::create(b, loc, K, ci(TK)));
    SmallVector<Value> nextRegs = loadStep(nextK);
    auto v1i32 = VectorType::get({1}, i32);
    // Two k-consecutive bf16 of a tile row as one 32-bit fragment register.
    auto frag = [&](Value tileMem, Value row, Value k) -> Value {
      Value pair = vector::LoadOp::create(b, loc, v2, tileMem, ValueRange{row, k},
                                          false, llvm::MaybeAlign(4));
      return vector::ExtractOp::create(
          b, loc, vector::BitCastOp::create(b, loc, v1i32, pair), 0);
    };
    auto resultType = LLVM::LLVMStructType::getLiteral(ctx, {f32, f32, f32, f32});
    std::array<NVVM::MMATypes, 2> ptxTypes{NVVM::MMATypes::bf16,
                                           NVVM::MMATypes::bf16};
    std::array<NVVM::MMALayout, 2> layouts{NVVM::MMALayout::row,
                                           NVVM::MMALayout::col};
    for (int64_t ks = 0; ks < TK; ks += 16) {
      Value kLo = add(ci(ks), tg2), kHi = add(ci(ks + 8), tg2);
      SmallVector<SmallVector<Value, 4>> aFrag;
      for (int64_t mi = 0; mi < 2; ++mi) {
        Value r0 = add(wm, add(ci(mi * 16), g));
        Value r8 = add(r0, ci(8));
        aFrag.push_back({frag(sA, r0, kLo), frag(sA, r8, kLo),
                         frag(sA, r0, kHi), frag(sA, r8, kHi)});
      }
      for (int64_t m = 0; m < numMats; ++m) {
        Value tileB = m == 0 ? sB : sB2;
        for (int64_t ni = 0; ni < 4; ++ni) {
          Value n = add(wn, add(ci(ni * 8), g));
          SmallVector<Value, 2> bFrag{frag(tileB, n, kLo), frag(tileB, n, kHi)};
          for (int64_t mi = 0; mi < 2; ++mi) {
            SmallVector<Value, 4> c;
            for (int64_t q = 0; q < 4; ++q)
              c.push_back(acc[accIndex(m, mi, ni, q)]);
            Value d = NVVM::MmaOp::create(b, loc, resultType, aFrag[mi], bFrag,
                                          c, ArrayRef<int64_t>{16, 8, 16},
                                          std::nullopt, std::nullopt, ptxTypes,
                                          layouts);
            for (int64_t q = 0; q < 4; ++q)
              acc[accIndex(m, mi, ni, q)] =
                  LLVM::ExtractValueOp::create(b, loc, d, q);
          }
        }
      }
    }
    SmallVector<Value> yields(acc);
    yields.append(nextRegs.begin(), nextRegs.end());
    scf::YieldOp::create(b, loc, yields);
  }

  // Epilogue: c[i][j] of tile (mi, ni) is row wm + 16 mi + g + 8 i, column
  // wn + 8 ni + tg2 + j.
  for (int64_t mi = 0; mi < 2; ++mi)
    for (int64_t i = 0; i < 2; ++i) {
      Value r = add(wm, add(ci(mi * 16 + i * 8), g));
      Value slot = add(rowBegin, r);
      auto inRows = scf::IfOp::create(b, loc, icmp(P::ult, slot, rowEnd), false);
      OpBuilder::InsertionGuard eg(b);
      b.setInsertionPointToStart(&inRows.getThenRegion().front());
      Value token, scale;
      if (o.scatter) {
        token = toIndex(memref::LoadOp::create(b, loc, rowToken, slot));
        scale = memref::LoadOp::create(b, loc, rowWeight, slot);
      }
      for (int64_t ni = 0; ni < 4; ++ni) {
        Value col = add(col0, add(wn, add(ci(ni * 8), tg2)));
        SmallVector<Value> vals;
        for (int64_t j = 0; j < 2; ++j) {
          Value h = kLoop.getResult(accIndex(0, mi, ni, i * 2 + j));
          if (o.scatter) {
            memref::AtomicRMWOp::create(
                b, loc, arith::AtomicRMWKind::addf,
                arith::MulFOp::create(b, loc, h, scale), out,
                ValueRange{token, add(col, ci(j))});
            continue;
          }
          Value v;
          if (o.pair) {
            Value gt = kLoop.getResult(accIndex(1, mi, ni, i * 2 + j));
            v = arith::MulFOp::create(
                b, loc, applyActivation(b, loc, o.activation, gt), h);
          } else {
            v = applyActivation(b, loc, o.activation, h);
          }
          vals.push_back(fromF32(b, loc, v, bf16));
        }
        if (!o.scatter) {
          Value pairV = vector::FromElementsOp::create(b, loc, v2, vals);
          vector::StoreOp::create(b, loc, pairV, out, ValueRange{slot, col},
                                  false, llvm::MaybeAlign(4));
        }
      }
    }
  b.setInsertionPointToEnd(&entry);
  gpu::ReturnOp::create(b, loc);
  return fn;
}
