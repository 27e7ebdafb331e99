//===- ExpertKernels.cpp - GPU kernels of the expert FFN -------------------===//
//
// Part of moe-compiler.
//
// The grouped GEMV gives each thread 8 adjacent output columns, read as one
// 16-byte vector per weight row, so a warp reads 512 contiguous bytes per
// row. The reduction dimension is split across blocks (grid y) so that enough
// loads are in flight on 132 SMs when few experts are hit, with partial sums
// added in f32 by atomics. Four rows share each weight load, and four weight
// rows are loaded before their first use.
//
//===----------------------------------------------------------------------===//

#include "moe/Target/CUDA/ExpertKernels.h"
#include "moe/Dialect/MoE/Utils/TensorBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

gpu::GPUFuncOp mlir::moe::buildGroupedGemvKernel(OpBuilder &b, Location loc,
                                                 gpu::GPUModuleOp module,
                                                 StringRef name,
                                                 Type elt) {
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  MLIRContext *ctx = b.getContext();
  int64_t dyn = ShapedType::kDynamic;
  Type f32 = b.getF32Type(), index = b.getIndexType();
  auto xType = MemRefType::get({dyn, dyn}, elt);
  auto offType = MemRefType::get({dyn}, b.getI32Type());
  auto wType = MemRefType::get({dyn, dyn, dyn}, elt);
  auto outType = MemRefType::get({dyn, dyn}, f32);
  auto fnType =
      FunctionType::get(ctx, {xType, offType, wType, outType, index}, {});
  auto fn = gpu::GPUFuncOp::create(b, loc, name, fnType);
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  Block &entry = fn.getBody().front();
  b.setInsertionPointToStart(&entry);
  Value x = entry.getArgument(0), offsets = entry.getArgument(1),
        w = entry.getArgument(2), out = entry.getArgument(3),
        kchunk = entry.getArgument(4);

  auto cst = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  const int64_t cols = kGemvColumnsPerThread, rowsPerPass = kGemvRowsPerPass,
                unroll = kGemvUnroll;
  auto vecType = VectorType::get({cols}, elt);
  auto accType = VectorType::get({cols}, f32);

  Value d = memref::DimOp::create(b, loc, w, 1);
  Value m = memref::DimOp::create(b, loc, w, 2);
  Value bx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value by = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value e = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  Value bdim = gpu::BlockDimOp::create(b, loc, gpu::Dimension::x);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value thread = arith::AddIOp::create(
      b, loc, arith::MulIOp::create(b, loc, bx, bdim), tid);
  Value j = arith::MulIOp::create(b, loc, thread, cst(cols));
  Value k0 = arith::MulIOp::create(b, loc, by, kchunk);
  Value k1 = arith::MinUIOp::create(
      b, loc, arith::AddIOp::create(b, loc, k0, kchunk), d);
  auto rowAt = [&](Value i) -> Value {
    Value v = memref::LoadOp::create(b, loc, offsets, i);
    return arith::IndexCastOp::create(b, loc, index, v);
  };
  Value begin = rowAt(e);
  Value end = rowAt(arith::AddIOp::create(b, loc, e, cst(1)));
  Value inside = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, j, m);
  Value work = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, k0, k1);
  Value go = arith::AndIOp::create(b, loc, inside, work);

  auto ifOp = scf::IfOp::create(b, loc, go, /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  Value zero = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(accType, b.getF32FloatAttr(0.0f)));
  auto rowLoop = scf::ForOp::create(b, loc, begin, end, cst(rowsPerPass));
  b.setInsertionPointToStart(rowLoop.getBody());
  Value r0 = rowLoop.getInductionVar();
  // Rows past the expert's end read row r0 again; they are not stored.
  SmallVector<Value> rows{r0}, valid{Value()};
  for (int64_t q = 1; q < rowsPerPass; ++q) {
    Value rq = arith::AddIOp::create(b, loc, r0, cst(q));
    Value ok = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, rq, end);
    rows.push_back(arith::SelectOp::create(b, loc, ok, rq, r0));
    valid.push_back(ok);
  }
  SmallVector<Value> init(rowsPerPass, zero);
  auto kLoop = scf::ForOp::create(
      b, loc, k0, k1, cst(unroll), init,
      [&](OpBuilder &lb, Location l, Value i, ValueRange acc) {
        SmallVector<Value> weights;
        SmallVector<Value> ks;
        for (int64_t u = 0; u < unroll; ++u) {
          Value iu = arith::AddIOp::create(lb, l, i, cst(u));
          ks.push_back(iu);
          Value wv = vector::LoadOp::create(lb, l, vecType, w,
                                            ValueRange{e, iu, j},
                                            /*nontemporal=*/false,
                                            llvm::MaybeAlign(16));
          weights.push_back(arith::ExtFOp::create(lb, l, accType, wv));
        }
        SmallVector<Value> next(acc.begin(), acc.end());
        for (int64_t u = 0; u < unroll; ++u) {
          for (int64_t q = 0; q < rowsPerPass; ++q) {
            Value xs = memref::LoadOp::create(lb, l, x, ValueRange{rows[q], ks[u]});
            Value xf = elt.isF32() ? xs
                                   : arith::ExtFOp::create(lb, l, f32, xs)
                                         .getResult();
            Value xb = vector::BroadcastOp::create(lb, l, accType, xf);
            next[q] = vector::FMAOp::create(lb, l, xb, weights[u], next[q]);
          }
        }
        scf::YieldOp::create(lb, l, next);
      });
  for (int64_t q = 0; q < rowsPerPass; ++q) {
    OpBuilder::InsertionGuard g(b);
    Value rq = arith::AddIOp::create(b, loc, r0, cst(q));
    if (q > 0) {
      auto store = scf::IfOp::create(b, loc, valid[q], false);
      b.setInsertionPointToStart(&store.getThenRegion().front());
    }
    for (int64_t c = 0; c < cols; ++c) {
      Value v = vector::ExtractOp::create(b, loc, kLoop.getResult(q), c);
      Value col = arith::AddIOp::create(b, loc, j, cst(c));
      memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::addf, v, out,
                                  ValueRange{rq, col});
    }
  }
  b.setInsertionPointToEnd(&entry);
  gpu::ReturnOp::create(b, loc);
  return fn;
}

namespace {
/// A kernel over the elements of [N, C] buffers: `body(b, loc, r, c)` runs
/// for every element, one thread each (linear index over blocks x threads).
gpu::GPUFuncOp elementKernel(
    OpBuilder &b, Location loc, gpu::GPUModuleOp module, StringRef name,
    TypeRange argTypes,
    function_ref<void(OpBuilder &, Location, ValueRange, Value, Value)> body) {
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  auto fn = gpu::GPUFuncOp::create(
      b, loc, name, FunctionType::get(b.getContext(), argTypes, {}));
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  Block &entry = fn.getBody().front();
  b.setInsertionPointToStart(&entry);
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
} // namespace

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
  return elementKernel(
      b, loc, module, name, args,
      [&](OpBuilder &nb, Location l, ValueRange a, Value r, Value c) {
        Value h = memref::LoadOp::create(nb, l, a[0], ValueRange{r, c});
        Value v;
        if (gated) {
          Value g = memref::LoadOp::create(nb, l, a[1], ValueRange{r, c});
          v = arith::MulFOp::create(nb, l, applyActivation(nb, l, act, g), h);
        } else {
          v = applyActivation(nb, l, act, h);
        }
        memref::StoreOp::create(nb, l, fromF32(nb, l, v, elt), a.back(),
                                ValueRange{r, c});
      });
}

gpu::GPUFuncOp mlir::moe::buildRoundKernel(OpBuilder &b, Location loc,
                                           gpu::GPUModuleOp module,
                                           StringRef name, Type elt) {
  int64_t dyn = ShapedType::kDynamic;
  SmallVector<Type> args{MemRefType::get({dyn, dyn}, b.getF32Type()),
                         MemRefType::get({dyn, dyn}, elt)};
  return elementKernel(
      b, loc, module, name, args,
      [&](OpBuilder &nb, Location l, ValueRange a, Value r, Value c) {
        Value y = memref::LoadOp::create(nb, l, a[0], ValueRange{r, c});
        memref::StoreOp::create(nb, l, fromF32(nb, l, y, elt), a[1],
                                ValueRange{r, c});
      });
}
