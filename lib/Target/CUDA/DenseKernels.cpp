//===- DenseKernels.cpp - GPU kernels of the dense transformer parts ------===//
//
// Part of moe-compiler.
//
// Elementwise kernels (embedding, residual add, bias and rounding, cache
// rows, rotary embedding) run one thread per element. RMSNorm runs a block
// per row. Attention of decoding steps runs a thread block cluster per
// (token, sequence, block of query heads sharing a kv head), its blocks
// splitting the keys (flash-decoding's split, with the exact softmax): the
// queries in shared memory, a few lanes per key row for the scores (16-byte
// loads of the head, up to 16 rows a lane in flight, each key vector used
// for every query head of the block), the block's scores in its dynamic
// shared memory (bf16: they are rounded to it), the softmax's maximum and
// sum reduced over the cluster through distributed shared memory, then
// threads over (value columns, keys) summing p v for the heads, the blocks'
// sums added by the cluster. It rounds where the CPU lowering rounds; only
// the order of f32 sums differs.
//
//===----------------------------------------------------------------------===//

#include "moe/Target/CUDA/DenseKernels.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Utils/TensorBuilders.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>
#include <optional>

using namespace mlir;
using namespace mlir::moe;

namespace {
constexpr int64_t kDyn = ShapedType::kDynamic;

MemRefType matrix(Type elt) { return MemRefType::get({kDyn, kDyn}, elt); }
MemRefType vector1(Type elt) { return MemRefType::get({kDyn}, elt); }

/// `f32` rounded to `elt` and back (a no-op for f32).
Value roundF32(OpBuilder &b, Location loc, Value v, Type elt) {
  return elt.isF32() ? v : toF32(b, loc, fromF32(b, loc, v, elt));
}

/// A strided loop `for i = from; i < to; i += step` carrying `inits`.
scf::ForOp loop(OpBuilder &b, Location loc, Value from, Value to, Value step,
                ValueRange inits,
                function_ref<SmallVector<Value>(OpBuilder &, Location, Value,
                                                ValueRange)>
                    body) {
  return scf::ForOp::create(
      b, loc, from, to, step, inits,
      [&](OpBuilder &nb, Location l, Value i, ValueRange carried) {
        scf::YieldOp::create(nb, l, body(nb, l, i, carried));
      });
}

/// Helpers of the reduction kernels (one block of `threads` threads).
struct BlockContext {
  OpBuilder &b;
  Location loc;
  Value tid, lane, warp;
  Value scratch; // f32 [32] in workgroup memory
  int64_t threads;

  Value cst(int64_t v) { return constIndex(b, loc, v); }

  static Value combine(OpBuilder &b, Location loc, Value a, Value c,
                       bool max) {
    return max ? arith::MaximumFOp::create(b, loc, a, c).getResult()
               : arith::AddFOp::create(b, loc, a, c).getResult();
  }

  /// The sum (or max) over the 32 lanes of a warp, in every lane.
  static Value warpReduce(OpBuilder &b, Location loc, Value v, bool max) {
    for (int32_t off = 16; off >= 1; off /= 2) {
      Value other = gpu::ShuffleOp::create(b, loc, v, off, 32,
                                           gpu::ShuffleMode::XOR)
                        .getShuffleResult();
      v = combine(b, loc, v, other, max);
    }
    return v;
  }

  /// The sums (or maxima) of each of `vs` over the block, in every thread,
  /// through the scratch (vs.size() * threads / 32 floats).
  SmallVector<Value> blockReduce(ValueRange vs, bool max) {
    const int64_t warps = threads / 32;
    SmallVector<Value> w;
    for (Value v : vs)
      w.push_back(warpReduce(b, loc, v, max));
    // Earlier readers of the scratch are done before it is overwritten.
    gpu::BarrierOp::create(b, loc);
    Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                        lane, cst(0));
    auto write = scf::IfOp::create(b, loc, first, false);
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(&write.getThenRegion().front());
      for (auto [i, v] : llvm::enumerate(w))
        memref::StoreOp::create(b, loc, v, scratch,
                                ValueRange{arith::AddIOp::create(
                                    b, loc, warp, cst(int64_t(i) * warps))});
    }
    gpu::BarrierOp::create(b, loc);
    SmallVector<Value> r;
    for (int64_t i = 0, e = w.size(); i < e; ++i) {
      Value x =
          memref::LoadOp::create(b, loc, scratch, ValueRange{cst(i * warps)});
      for (int64_t k = 1; k < warps; ++k)
        x = combine(b, loc, x,
                    memref::LoadOp::create(b, loc, scratch,
                                           ValueRange{cst(i * warps + k)}),
                    max);
      r.push_back(x);
    }
    return r;
  }
  Value blockReduce(Value v, bool max) {
    return blockReduce(ValueRange{v}, max).front();
  }
};

/// An f32 buffer of `n` in the block's shared memory, 16-byte aligned: LLVM
/// reads and writes neighbouring elements as 16-byte vectors, which a
/// 4-byte aligned buffer faults on (CUDA_ERROR_MISALIGNED_ADDRESS) wherever
/// the buffers before it leave it off a 16-byte boundary.
Value sharedF32(OpBuilder &b, Location loc, gpu::GPUFuncOp fn, int64_t n) {
  auto space = gpu::AddressSpaceAttr::get(b.getContext(),
                                          gpu::AddressSpace::Workgroup);
  Value v = fn.addWorkgroupAttribution(
      MemRefType::get({n}, b.getF32Type(), MemRefLayoutAttrInterface(), space),
      loc);
  fn.setWorkgroupAttributionAttr(fn.getNumWorkgroupAttributions() - 1,
                                 LLVM::LLVMDialect::getAlignAttrName(),
                                 b.getI64IntegerAttr(16));
  return v;
}

BlockContext blockContext(OpBuilder &b, Location loc, gpu::GPUFuncOp fn,
                          int64_t threads) {
  Value scratch = sharedF32(b, loc, fn, 32);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value c32 = constIndex(b, loc, 32);
  Value lane = arith::RemUIOp::create(b, loc, tid, c32);
  Value warp = arith::DivUIOp::create(b, loc, tid, c32);
  return BlockContext{b, loc, tid, lane, warp, scratch, threads};
}
} // namespace

gpu::GPUFuncOp mlir::moe::buildEmbeddingKernel(OpBuilder &b, Location loc,
                                               gpu::GPUModuleOp module,
                                               StringRef name, Type elt,
                                               bool learnedPositions) {
  // The elementwise helper iterates over its first argument: the output.
  SmallVector<Type> args{matrix(elt), vector1(b.getI32Type()), matrix(elt)};
  if (learnedPositions)
    args.push_back(b.getIndexType());
  return buildElementwiseKernel(
      b, loc, module, name, args,
      [&](OpBuilder &nb, Location l, ValueRange a, Value r, Value c) {
        Value out = a[0], ids = a[1], table = a[2];
        Value id;
        if (learnedPositions) {
          // Row r = s T + t of sequence s is at position positions[s] + t.
          Value t = arith::RemUIOp::create(nb, l, r, a[3]);
          Value s = arith::DivUIOp::create(nb, l, r, a[3]);
          Value p = memref::LoadOp::create(nb, l, ids, ValueRange{s});
          id = arith::AddIOp::create(
              nb, l, p,
              arith::IndexCastOp::create(nb, l, nb.getI32Type(), t));
        } else {
          id = memref::LoadOp::create(nb, l, ids, ValueRange{r});
        }
        Value vocab = arith::IndexCastOp::create(
            nb, l, nb.getI32Type(), memref::DimOp::create(nb, l, table, 0));
        Value zero = constI32(nb, l, 0);
        Value inside = arith::AndIOp::create(
            nb, l,
            arith::CmpIOp::create(nb, l, arith::CmpIPredicate::sge, id, zero),
            arith::CmpIOp::create(nb, l, arith::CmpIPredicate::slt, id, vocab));
        auto pick = scf::IfOp::create(nb, l, TypeRange{elt}, inside, true);
        {
          OpBuilder::InsertionGuard g(nb);
          nb.setInsertionPointToStart(&pick.getThenRegion().front());
          Value row = arith::IndexCastOp::create(nb, l, nb.getIndexType(), id);
          scf::YieldOp::create(
              nb, l,
              ValueRange{memref::LoadOp::create(nb, l, table, ValueRange{row, c})});
          nb.setInsertionPointToStart(&pick.getElseRegion().front());
          scf::YieldOp::create(
              nb, l, ValueRange{arith::ConstantOp::create(
                         nb, l, nb.getFloatAttr(elt, 0.0))});
        }
        memref::StoreOp::create(nb, l, pick.getResult(0), out,
                                ValueRange{r, c});
      });
}

gpu::GPUFuncOp mlir::moe::buildAddKernel(OpBuilder &b, Location loc,
                                         gpu::GPUModuleOp module,
                                         StringRef name, Type elt) {
  SmallVector<Type> args{matrix(elt), matrix(elt), matrix(elt)};
  return buildElementwiseKernel(
      b, loc, module, name, args,
      [&](OpBuilder &nb, Location l, ValueRange a, Value r, Value c) {
        Value x = toF32(nb, l, memref::LoadOp::create(nb, l, a[0], ValueRange{r, c}));
        Value y = toF32(nb, l, memref::LoadOp::create(nb, l, a[1], ValueRange{r, c}));
        memref::StoreOp::create(
            nb, l, fromF32(nb, l, arith::AddFOp::create(nb, l, x, y), elt),
            a[2], ValueRange{r, c});
      });
}

gpu::GPUFuncOp mlir::moe::buildRoundBiasKernel(OpBuilder &b, Location loc,
                                               gpu::GPUModuleOp module,
                                               StringRef name, Type elt) {
  SmallVector<Type> args{matrix(b.getF32Type()), vector1(elt), matrix(elt)};
  return buildElementwiseKernel(
      b, loc, module, name, args,
      [&](OpBuilder &nb, Location l, ValueRange a, Value r, Value c) {
        Value acc = memref::LoadOp::create(nb, l, a[0], ValueRange{r, c});
        Value bias = toF32(nb, l, memref::LoadOp::create(nb, l, a[1], ValueRange{c}));
        memref::StoreOp::create(
            nb, l, fromF32(nb, l, arith::AddFOp::create(nb, l, acc, bias), elt),
            a[2], ValueRange{r, c});
      });
}

gpu::GPUFuncOp mlir::moe::buildRmsNormKernel(OpBuilder &b, Location loc,
                                             gpu::GPUModuleOp module,
                                             StringRef name, Type elt,
                                             int64_t threads) {
  OpBuilder::InsertionGuard guard(b);
  Type f32 = b.getF32Type();
  SmallVector<Type> args{matrix(elt), vector1(elt), matrix(elt), f32};
  auto fn = createKernelFunc(b, loc, module, name, args, threads);
  Block &entry = fn.getBody().front();
  Value x = entry.getArgument(0), w = entry.getArgument(1),
        out = entry.getArgument(2), eps = entry.getArgument(3);
  BlockContext ctx = blockContext(b, loc, fn, threads);
  Value row = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value cols = memref::DimOp::create(b, loc, x, 1);
  Value step = ctx.cst(threads);
  auto sumSq = loop(b, loc, ctx.tid, cols, step, {constF32(b, loc, 0.0f)},
                    [&](OpBuilder &nb, Location l, Value c, ValueRange acc) {
                      Value v = toF32(nb, l, memref::LoadOp::create(
                                                 nb, l, x, ValueRange{row, c}));
                      Value sq = arith::MulFOp::create(nb, l, v, v);
                      return SmallVector<Value>{
                          arith::AddFOp::create(nb, l, acc[0], sq)};
                    });
  Value total = ctx.blockReduce(sumSq.getResult(0), /*max=*/false);
  Value colsF = arith::UIToFPOp::create(
      b, loc, f32, arith::IndexCastUIOp::create(b, loc, b.getI32Type(), cols));
  Value invCols = arith::DivFOp::create(b, loc, constF32(b, loc, 1.0f), colsF);
  Value inv = math::RsqrtOp::create(
      b, loc,
      arith::AddFOp::create(b, loc, arith::MulFOp::create(b, loc, total, invCols),
                            eps));
  loop(b, loc, ctx.tid, cols, step, {},
       [&](OpBuilder &nb, Location l, Value c, ValueRange) {
         Value v = toF32(nb, l, memref::LoadOp::create(nb, l, x, ValueRange{row, c}));
         Value n = roundF32(nb, l, arith::MulFOp::create(nb, l, v, inv), elt);
         Value wc = toF32(nb, l, memref::LoadOp::create(nb, l, w, ValueRange{c}));
         memref::StoreOp::create(
             nb, l, fromF32(nb, l, arith::MulFOp::create(nb, l, wc, n), elt),
             out, ValueRange{row, c});
         return SmallVector<Value>{};
       });
  gpu::ReturnOp::create(b, loc);
  return fn;
}

gpu::GPUFuncOp mlir::moe::buildLayerNormKernel(OpBuilder &b, Location loc,
                                               gpu::GPUModuleOp module,
                                               StringRef name, Type elt,
                                               int64_t threads, bool bias) {
  OpBuilder::InsertionGuard guard(b);
  Type f32 = b.getF32Type();
  SmallVector<Type> args{matrix(elt), vector1(elt)};
  if (bias)
    args.push_back(vector1(elt));
  args.append({matrix(elt), f32});
  auto fn = createKernelFunc(b, loc, module, name, args, threads);
  Block &entry = fn.getBody().front();
  Value x = entry.getArgument(0), w = entry.getArgument(1),
        bv = bias ? entry.getArgument(2) : Value(),
        out = entry.getArgument(bias ? 3 : 2),
        eps = entry.getArgument(bias ? 4 : 3);
  BlockContext ctx = blockContext(b, loc, fn, threads);
  Value row = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value cols = memref::DimOp::create(b, loc, x, 1);
  Value step = ctx.cst(threads);
  auto at = [&](OpBuilder &nb, Location l, Value c) {
    return toF32(nb, l, memref::LoadOp::create(nb, l, x, ValueRange{row, c}));
  };
  // As the CPU lowering computes it: the mean (the sum times 1/d, 1/d
  // rounded to f32), then the mean squared deviation (two passes: no
  // cancellation), then (x - mean) * rsqrt(var + eps) * w (+ b), rounded
  // once.
  Value colsF = arith::UIToFPOp::create(
      b, loc, f32, arith::IndexCastUIOp::create(b, loc, b.getI32Type(), cols));
  Value invCols = arith::DivFOp::create(b, loc, constF32(b, loc, 1.0f), colsF);
  auto sum = loop(b, loc, ctx.tid, cols, step, {constF32(b, loc, 0.0f)},
                  [&](OpBuilder &nb, Location l, Value c, ValueRange acc) {
                    return SmallVector<Value>{
                        arith::AddFOp::create(nb, l, acc[0], at(nb, l, c))};
                  });
  Value mean = arith::MulFOp::create(
      b, loc, ctx.blockReduce(sum.getResult(0), /*max=*/false), invCols);
  auto sumSq = loop(b, loc, ctx.tid, cols, step, {constF32(b, loc, 0.0f)},
                    [&](OpBuilder &nb, Location l, Value c, ValueRange acc) {
                      Value dev = arith::SubFOp::create(nb, l, at(nb, l, c), mean);
                      Value sq = arith::MulFOp::create(nb, l, dev, dev);
                      return SmallVector<Value>{
                          arith::AddFOp::create(nb, l, acc[0], sq)};
                    });
  Value var = arith::MulFOp::create(
      b, loc, ctx.blockReduce(sumSq.getResult(0), /*max=*/false), invCols);
  Value inv = math::RsqrtOp::create(b, loc, arith::AddFOp::create(b, loc, var, eps));
  loop(b, loc, ctx.tid, cols, step, {},
       [&](OpBuilder &nb, Location l, Value c, ValueRange) {
         Value n = arith::MulFOp::create(
             nb, l, arith::SubFOp::create(nb, l, at(nb, l, c), mean), inv);
         Value v = arith::MulFOp::create(
             nb, l, n,
             toF32(nb, l, memref::LoadOp::create(nb, l, w, ValueRange{c})));
         if (bv)
           v = arith::AddFOp::create(
               nb, l, v,
               toF32(nb, l, memref::LoadOp::create(nb, l, bv, ValueRange{c})));
         memref::StoreOp::create(nb, l, fromF32(nb, l, v, elt), out,
                                 ValueRange{row, c});
         return SmallVector<Value>{};
       });
  gpu::ReturnOp::create(b, loc);
  return fn;
}

namespace {
/// One element of the rotary embedding: column `c` of source row `srcRow`
/// at position `p` (i32) into `dst[dstRow, c]`.
/// Element i (index) of the rotary embedding of a vector of
/// 2 * freqs.size() elements read by `at` (its f32 element at an index) at
/// position `p` (i32), as moe.attention rounds it. With `interleaved`, the
/// pairs are (2j, 2j + 1), de-interleaved first (DeepSeek's layout, as
/// transformers computes it): the result is element i of the de-interleaved,
/// rotated vector.
Value ropeValue(OpBuilder &nb, Location l, Type elt, ArrayRef<float> freqs,
                double factor, function_ref<Value(Value)> at, Value i, Value p,
                bool interleaved = false) {
  int64_t half = int64_t(freqs.size());
  Value halfC = constIndex(nb, l, half);
  auto source = [&](Value k) {
    return ropeSourceIndex(nb, l, k, half, interleaved);
  };
  Value low =
      arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, i, halfC);
  Value j = arith::RemUIOp::create(nb, l, i, halfC);
  Value partner = arith::SelectOp::create(
      nb, l, low, arith::AddIOp::create(nb, l, i, halfC),
      arith::SubIOp::create(nb, l, i, halfC));
  Value other = at(source(partner));
  Value rot = arith::SelectOp::create(
      nb, l, low, arith::NegFOp::create(nb, l, other), other);
  // The inverse frequency of pair j: constants selected by index.
  Value inv = constF32(nb, l, freqs[0]);
  for (int64_t k = 1; k < half; ++k) {
    Value is = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, j,
                                     constIndex(nb, l, k));
    inv = arith::SelectOp::create(nb, l, is, constF32(nb, l, freqs[k]), inv);
  }
  Value angle = arith::MulFOp::create(
      nb, l, arith::SIToFPOp::create(nb, l, nb.getF32Type(), p), inv);
  Value cf = math::CosOp::create(nb, l, angle);
  Value sf = math::SinOp::create(nb, l, angle);
  if (factor != 1.0) {
    Value f = constF32(nb, l, float(factor));
    cf = arith::MulFOp::create(nb, l, cf, f);
    sf = arith::MulFOp::create(nb, l, sf, f);
  }
  Value cr = roundF32(nb, l, cf, elt), sr = roundF32(nb, l, sf, elt);
  Value m1 = roundF32(nb, l, arith::MulFOp::create(nb, l, at(source(i)), cr), elt);
  Value m2 = roundF32(nb, l, arith::MulFOp::create(nb, l, rot, sr), elt);
  return fromF32(nb, l, arith::AddFOp::create(nb, l, m1, m2), elt);
}

/// The rotary embedding of element `c` of source row `srcRow` (heads of
/// width 2 * freqs.size()) at position `p` (i32) into `dst[dstRow, c]`.
void ropeElement(OpBuilder &nb, Location l, Type elt, ArrayRef<float> freqs,
                 double factor, Value src, Value dst, Value srcRow, Value c,
                 Value p, Value dstRow) {
  Value widthC = constIndex(nb, l, 2 * int64_t(freqs.size()));
  Value i = arith::RemUIOp::create(nb, l, c, widthC);
  Value base = arith::SubIOp::create(nb, l, c, i);
  auto at = [&](Value col) -> Value {
    return toF32(nb, l,
                 memref::LoadOp::create(
                     nb, l, src,
                     ValueRange{srcRow, arith::AddIOp::create(nb, l, base, col)}));
  };
  memref::StoreOp::create(nb, l, ropeValue(nb, l, elt, freqs, factor, at, i, p),
                          dst, ValueRange{dstRow, c});
}

/// Sequence b and row t within it of row r of a batched step of T rows per
/// sequence, and the sequence's position (i32) from `positions`.
struct BatchRow {
  Value seq, t, pos;
};
BatchRow batchRow(OpBuilder &nb, Location l, Value r, Value tokens,
                  Value positions) {
  BatchRow br;
  br.seq = arith::DivUIOp::create(nb, l, r, tokens);
  br.t = arith::RemUIOp::create(nb, l, r, tokens);
  br.pos = memref::LoadOp::create(nb, l, positions, ValueRange{br.seq});
  return br;
}
} // namespace

gpu::GPUFuncOp mlir::moe::buildBatchedRopeKernel(OpBuilder &b, Location loc,
                                                 gpu::GPUModuleOp module,
                                                 StringRef name, Type elt,
                                                 ArrayRef<float> invFreq,
                                                 double factor) {
  Type index = b.getIndexType();
  SmallVector<Type> args{matrix(elt), matrix(elt), vector1(b.getI32Type()),
                         index, index, index};
  SmallVector<float> freqs(invFreq);
  return buildElementwiseKernel(
      b, loc, module, name, args,
      [&, freqs](OpBuilder &nb, Location l, ValueRange a, Value r, Value c) {
        BatchRow br = batchRow(nb, l, r, a[3], a[2]);
        Value p = arith::AddIOp::create(
            nb, l, br.pos,
            arith::IndexCastOp::create(nb, l, nb.getI32Type(), br.t));
        // b * dstRows + t (+ the position when writing a cache).
        Value row = arith::AddIOp::create(
            nb, l, arith::MulIOp::create(nb, l, br.seq, a[4]), br.t);
        Value shift = arith::MulIOp::create(
            nb, l, a[5],
            arith::IndexCastOp::create(nb, l, nb.getIndexType(), br.pos));
        row = arith::AddIOp::create(nb, l, row, shift);
        ropeElement(nb, l, elt, freqs, factor, a[0], a[1], r, c, p, row);
      });
}

gpu::GPUFuncOp mlir::moe::buildBatchedStoreRowsKernel(OpBuilder &b,
                                                      Location loc,
                                                      gpu::GPUModuleOp module,
                                                      StringRef name,
                                                      Type elt) {
  Type index = b.getIndexType();
  SmallVector<Type> args{matrix(elt), matrix(elt), vector1(b.getI32Type()),
                         index, index};
  return buildElementwiseKernel(
      b, loc, module, name, args,
      [&](OpBuilder &nb, Location l, ValueRange a, Value r, Value c) {
        BatchRow br = batchRow(nb, l, r, a[3], a[2]);
        Value row = arith::AddIOp::create(
            nb, l,
            arith::AddIOp::create(nb, l,
                                  arith::MulIOp::create(nb, l, br.seq, a[4]),
                                  br.t),
            arith::IndexCastOp::create(nb, l, nb.getIndexType(), br.pos));
        Value v = memref::LoadOp::create(nb, l, a[0], ValueRange{r, c});
        memref::StoreOp::create(nb, l, v, a[1], ValueRange{row, c});
      });
}

gpu::GPUFuncOp mlir::moe::buildGatherColumnsKernel(OpBuilder &b, Location loc,
                                                   gpu::GPUModuleOp module,
                                                   StringRef name, Type elt) {
  Type index = b.getIndexType();
  SmallVector<Type> args{matrix(elt), matrix(elt), index, index, index};
  return buildElementwiseKernel(
      b, loc, module, name, args,
      [&](OpBuilder &nb, Location l, ValueRange a, Value r, Value c) {
        // src[r, (c / width) * stride + offset + c % width]
        Value col = arith::AddIOp::create(
            nb, l,
            arith::AddIOp::create(
                nb, l,
                arith::MulIOp::create(nb, l,
                                      arith::DivUIOp::create(nb, l, c, a[2]),
                                      a[3]),
                a[4]),
            arith::RemUIOp::create(nb, l, c, a[2]));
        Value v = memref::LoadOp::create(nb, l, a[1], ValueRange{r, col});
        memref::StoreOp::create(nb, l, v, a[0], ValueRange{r, c});
      });
}

gpu::GPUFuncOp mlir::moe::buildMlaHeadsKernel(OpBuilder &b, Location loc,
                                              gpu::GPUModuleOp module,
                                              StringRef name, Type elt,
                                              int64_t nope,
                                              ArrayRef<float> invFreq,
                                              double factor, bool interleaved) {
  Type index = b.getIndexType();
  SmallVector<Type> args{matrix(elt), matrix(elt),  matrix(elt),
                         vector1(b.getI32Type()), index, index, index, index};
  SmallVector<float> freqs(invFreq);
  int64_t width = nope + 2 * int64_t(freqs.size());
  return buildElementwiseKernel(
      b, loc, module, name, args,
      [&, freqs](OpBuilder &nb, Location l, ValueRange a, Value r, Value c) {
        IndexOps ix{nb, l};
        Value head = ix.divu(c, width), i = ix.remu(c, width);
        Value inNope = ix.icmp(arith::CmpIPredicate::ult, i, ix.c(nope));
        auto ifOp = scf::IfOp::create(nb, l, TypeRange{elt}, inNope, true);
        {
          OpBuilder::InsertionGuard g(nb);
          nb.setInsertionPointToStart(&ifOp.getThenRegion().front());
          Value col = ix.add(ix.mul(head, a[4]), i);
          scf::YieldOp::create(
              nb, l,
              ValueRange{memref::LoadOp::create(nb, l, a[1], ValueRange{r, col})});
          nb.setInsertionPointToStart(&ifOp.getElseRegion().front());
          BatchRow br = batchRow(nb, l, r, a[7], a[3]);
          Value p = arith::AddIOp::create(
              nb, l, br.pos,
              arith::IndexCastOp::create(nb, l, nb.getI32Type(), br.t));
          Value base = ix.add(ix.mul(head, a[5]), a[6]);
          auto at = [&](Value k) -> Value {
            return toF32(nb, l, memref::LoadOp::create(
                                    nb, l, a[2], ValueRange{r, ix.add(base, k)}));
          };
          scf::YieldOp::create(
              nb, l,
              ValueRange{ropeValue(nb, l, elt, freqs, factor, at,
                                   arith::SubIOp::create(nb, l, i, ix.c(nope)),
                                   p, interleaved)});
        }
        memref::StoreOp::create(nb, l, ifOp.getResult(0), a[0],
                                ValueRange{r, c});
      });
}

namespace {
/// The attention kernel's thread layouts and shared buffers.
struct AttentionLayout {
  int64_t V;             // elements a vector load
  int64_t lanesPerRow;   // lanes sharing a key row's dot products
  int64_t slots;         // key rows side by side in a warp
  int64_t groups;        // value columns in groups of V
  int64_t groupThreads;  // threads side by side over the groups
  int64_t rowGroups;     // such sets of threads over the keys
  int64_t warpRowGroups; // row groups a warp sums by shuffles (1: none)
  int64_t partialRows;   // rows of p v partial sums in shared memory
  int64_t chunkMax;      // most key rows a block takes
};

AttentionLayout attentionLayout(const AttentionKernelOptions &o) {
  AttentionLayout a;
  a.V = attentionVectorWidth(o);
  // About one vector of the head a lane: a power of two up to 32.
  int64_t per = (o.headDim + a.V - 1) / a.V;
  a.lanesPerRow = 1;
  while (a.lanesPerRow < per && a.lanesPerRow < 32)
    a.lanesPerRow *= 2;
  a.slots = 32 / a.lanesPerRow;
  a.groups = o.valueDim / a.V;
  a.groupThreads = std::min(a.groups, o.threads);
  a.rowGroups = o.threads / a.groupThreads;
  a.warpRowGroups =
      a.groupThreads < 32 && 32 % a.groupThreads == 0 ? 32 / a.groupThreads : 1;
  a.partialRows = a.rowGroups / a.warpRowGroups;
  int64_t split = std::max<int64_t>(o.split, 1);
  a.chunkMax = (o.maxRows + split - 1) / split;
  return a;
}

/// The threads a block of the attention kernel plans for `o`: where a key
/// row takes a whole warp (latent attention's 192-wide heads), a warp has
/// one row in flight at a time, so twice the warps (1.32x at 16 MLA heads,
/// 4k keys, on an H100, against slower grouped-query shapes:
/// `attention-decode-threads-h100-2026-12-07.md`).
int64_t attentionDefaultThreads(const AttentionKernelOptions &o) {
  return attentionLayout(o).lanesPerRow == 32 ? 2 * kAttentionThreads
                                              : kAttentionThreads;
}

/// Bytes of the scores (bf16, G heads' rows) at the start of the dynamic
/// shared memory, 16-byte aligned; the p v partial sums follow.
int64_t attentionScoreBytes(const AttentionKernelOptions &o,
                            const AttentionLayout &a) {
  return (std::max<int64_t>(o.heads, 1) * a.chunkMax * 2 + 15) / 16 * 16;
}
} // namespace

int64_t mlir::moe::attentionVectorWidth(const AttentionKernelOptions &o) {
  for (int64_t v : {8, 4, 2})
    if (o.headDim % v == 0 && o.valueDim % v == 0)
      return v;
  return 1;
}

int64_t
mlir::moe::attentionDynamicSharedBytes(const AttentionKernelOptions &o) {
  AttentionLayout a = attentionLayout(o);
  return attentionScoreBytes(o, a) +
         4 * a.partialRows * std::max<int64_t>(o.heads, 1) * o.valueDim;
}

int64_t mlir::moe::attentionSharedBytes(const AttentionKernelOptions &o) {
  // Static: the queries, two cluster statistics a head, the block
  // reductions' scratch (one a head and warp); each 16-byte aligned
  // (sharedF32).
  int64_t G = std::max<int64_t>(o.heads, 1);
  auto padded = [](int64_t floats) { return (floats + 3) / 4 * 4; };
  return 4 * (padded(G * o.headDim) + padded(2 * G) +
              padded(G * (o.threads / 32))) +
         attentionDynamicSharedBytes(o);
}

int64_t mlir::moe::attentionSplit(AttentionKernelOptions o, int64_t items) {
  for (int64_t c = 1; c <= kAttentionMaxSplit; c *= 2) {
    o.split = c;
    if (attentionSharedBytes(o) > kAttentionSharedLimit)
      continue;
    // Enough blocks for two on each SM, unless the keys would be split
    // into fewer than kAttentionMinKeys rows a block.
    if (c == kAttentionMaxSplit || items * c >= 2 * kPlanSms ||
        (o.maxRows + 2 * c - 1) / (2 * c) < kAttentionMinKeys)
      return c;
  }
  return 0;
}

int64_t mlir::moe::attentionPartialSplit(AttentionKernelOptions o,
                                         int64_t items) {
  o.partials = true;
  int64_t best = 0;
  for (int64_t c = 2 * kAttentionMaxSplit; c <= kAttentionMaxPartialSplit;
       c *= 2) {
    o.split = c;
    if (attentionSharedBytes(o) > kAttentionSharedLimit)
      continue;
    if ((o.maxRows + c - 1) / c < kAttentionMinPartialKeys)
      break;
    best = c;
    // (Two blocks an SM on all but a sixteenth of them: 8 items of 32
    // blocks, 256, took 80 µs at 32k keys where 512 took 99, on an H100.)
    if (items * c * 16 >= 2 * kPlanSms * 15)
      break;
  }
  return best;
}

AttentionKernelOptions mlir::moe::planAttention(AttentionKernelOptions o,
                                                int64_t T, int64_t H, int64_t B,
                                                int64_t heads, int64_t unroll,
                                                int64_t threads,
                                                int64_t split) {
  auto items = [&](int64_t g) { return T * (H / g) * B; };
  auto withHeads = [&](int64_t g, bool partials) {
    AttentionKernelOptions c = o;
    c.heads = g;
    c.threads = threads ? threads : attentionDefaultThreads(c);
    c.unroll = unroll ? unroll : g <= 2 ? 16 : g <= 4 ? 8 : 4;
    c.partials = partials;
    if (split) {
      c.split = split;
      if (attentionSharedBytes(c) > kAttentionSharedLimit)
        c.split = 0;
    } else {
      c.split = partials ? attentionPartialSplit(c, items(g))
                         : attentionSplit(c, items(g));
    }
    return c;
  };
  auto blocks = [&](const AttentionKernelOptions &c) {
    return items(c.heads) * c.split;
  };
  // No split where the items give two blocks an SM; else partial sums
  // through global memory where they give at least a block an SM (on an
  // H100 faster than clusters wherever both were measured:
  // `attention-decode-splits-h100-2026-12-07.md`), else a cluster where it
  // gives two blocks an SM (caches too short for partials); with one head a
  // block (or the heads asked for), whichever gives more blocks.
  auto choose = [&](int64_t g,
                    bool last) -> std::optional<AttentionKernelOptions> {
    if (split) {
      // (With fewer heads a block, a forced split may still fit.)
      AttentionKernelOptions f = withHeads(g, split > kAttentionMaxSplit);
      return f.split || last ? std::optional(f) : std::nullopt;
    }
    AttentionKernelOptions c = withHeads(g, false);
    if (c.split == 1 && blocks(c) >= 2 * kPlanSms)
      return c;
    AttentionKernelOptions p = withHeads(g, true);
    if (p.split && blocks(p) >= kPlanSms)
      return p;
    if (c.split && blocks(c) >= 2 * kPlanSms)
      return c;
    if (last)
      return p.split && blocks(p) > blocks(c) ? p : c.split ? c : p;
    return std::nullopt;
  };
  if (heads)
    return *choose(heads, true);
  // The most heads a block that still fill the GPU.
  for (int64_t g = std::min(o.group, kAttentionMaxHeads); g > 1; --g)
    if (o.group % g == 0)
      if (std::optional<AttentionKernelOptions> c = choose(g, false))
        return *c;
  return *choose(1, true);
}

AttentionKernelOptions mlir::moe::planAttentionMma(AttentionKernelOptions o,
                                                   int64_t T, int64_t H,
                                                   int64_t B, int64_t heads,
                                                   int64_t split) {
  o.heads = heads ? heads : 1;
  // The most heads a block whose output rows fit the tiles they take over.
  for (int64_t g = std::min(o.group, kAttentionMmaRows); !heads && g > 1; --g)
    if (o.group % g == 0) {
      AttentionKernelOptions c = o;
      c.heads = g;
      if (!whyNotAttentionMma(c).empty())
        continue;
      o.heads = g;
      break;
    }
  int64_t items = T * (H / o.heads) * B;
  o.split = split ? split : 1;
  o.partials = o.split > 1;
  if (split || items >= 2 * kPlanSms)
    return o;
  for (int64_t c = 2; c <= kAttentionMaxPartialSplit; c *= 2) {
    if ((o.maxRows + c - 1) / c < kAttentionMinPartialKeys)
      break;
    o.split = c;
    if (items * c * 16 >= 2 * kPlanSms * 15)
      break;
  }
  o.partials = o.split > 1;
  return o;
}

int64_t mlir::moe::attentionMaxRows(const AttentionKernelOptions &o) {
  AttentionKernelOptions none = o;
  none.maxRows = 0;
  none.split = kAttentionMaxPartialSplit;
  none.partials = true;
  none.heads = 1;
  none.threads = attentionDefaultThreads(none);
  // (Whole 16-byte runs of bf16 scores a block.)
  return kAttentionMaxPartialSplit *
         ((kAttentionSharedLimit - attentionSharedBytes(none)) / 16 * 8);
}

gpu::GPUFuncOp
mlir::moe::buildAttentionKernel(OpBuilder &b, Location loc,
                                gpu::GPUModuleOp module, StringRef name,
                                const AttentionKernelOptions &o) {
  OpBuilder::InsertionGuard guard(b);
  MLIRContext *ctx = b.getContext();
  using P = arith::CmpIPredicate;
  Type elt = b.getBF16Type(), f32 = b.getF32Type(), i32 = b.getI32Type(),
       i64 = b.getI64Type();
  const AttentionLayout a = attentionLayout(o);
  // S blocks an item; a cluster of them (C) unless they hand partial sums
  // to the merge kernel.
  const int64_t S = std::max<int64_t>(o.split, 1), C = o.partials ? 1 : S,
                G = std::max<int64_t>(o.heads, 1),
                U = std::max<int64_t>(o.unroll, 1);
  const int64_t V = a.V, NT = o.threads, NW = NT / 32;
  const int64_t hd = o.headDim, vd = o.valueDim;
  SmallVector<Type> args{matrix(elt),     matrix(elt),  matrix(elt),
                         matrix(elt),     vector1(i32), b.getIndexType(),
                         b.getIndexType()};
  if (o.partials)
    args.push_back(vector1(f32));
  auto fn = createKernelFunc(b, loc, module, name, args, NT);
  Block &entry = fn.getBody().front();
  Value q = entry.getArgument(0), keys = entry.getArgument(1),
        values = entry.getArgument(2), out = entry.getArgument(3),
        positions = entry.getArgument(4), tokens = entry.getArgument(5),
        cacheRows = entry.getArgument(6),
        work = o.partials ? entry.getArgument(7) : Value();
  IndexOps ix{b, loc};
  // Static: the G queries, the cluster statistics, the reductions'
  // scratch. Dynamic: the scores (bf16: they are rounded to it), then the
  // p v partial sums.
  Value qs = sharedF32(b, loc, fn, G * hd),
        stats = sharedF32(b, loc, fn, 2 * G),
        red = sharedF32(b, loc, fn, G * NW);
  auto workgroup =
      gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  Value raw = gpu::DynamicSharedMemoryOp::create(
      b, loc,
      MemRefType::get({kDyn}, b.getI8Type(), MemRefLayoutAttrInterface(),
                      workgroup));
  Value scores = memref::ViewOp::create(
      b, loc,
      MemRefType::get({G * a.chunkMax}, elt, MemRefLayoutAttrInterface(),
                      workgroup),
      raw, ix.c(0), ValueRange{});
  Value partial = memref::ViewOp::create(
      b, loc,
      MemRefType::get({a.partialRows * G * vd}, f32,
                      MemRefLayoutAttrInterface(), workgroup),
      raw, ix.c(attentionScoreBytes(o, a)), ValueRange{});
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value lane = ix.remu(tid, 32), warp = ix.divu(tid, 32);
  Value zero = constF32(b, loc, 0.0f);
  auto vecF32 = VectorType::get({V}, f32);
  auto vecElt = VectorType::get({V}, elt);
  Value zeroVec = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(vecF32, b.getF32FloatAttr(0.0f)));
  auto loadVec = [&](OpBuilder &nb, Location l, Value m, ValueRange idx) {
    Value v =
        vector::LoadOp::create(nb, l, vecElt, m, idx,
                               /*nontemporal=*/false, llvm::MaybeAlign(V * 2));
    return arith::ExtFOp::create(nb, l, vecF32, v).getResult();
  };

  // S blocks per item (G query heads of one kv head at one query row of
  // one sequence), a cluster where they meet in shared memory; they take
  // items in turn by the grid's size (the runtime may cap a cluster grid at
  // the clusters the GPU holds at once). Block `rank` of an item's S takes
  // the rank-th run of its keys.
  auto clusterSync = [&] {
    if (C > 1) {
      NVVM::ClusterArriveOp::create(b, loc, nullptr);
      NVVM::ClusterWaitOp::create(b, loc, nullptr);
    }
  };
  // Element `i` of the shared buffer `m` of cluster block `r`.
  auto remote = [&](OpBuilder &nb, Location l, Value m, Value r, Value i) {
    Value base = arith::IndexCastOp::create(
        nb, l, i64, memref::ExtractAlignedPointerAsIndexOp::create(nb, l, m));
    Value addr = arith::AddIOp::create(
        nb, l, base,
        arith::IndexCastOp::create(
            nb, l, i64, arith::MulIOp::create(nb, l, i, constIndex(nb, l, 4))));
    Value local = LLVM::IntToPtrOp::create(
        nb, l, LLVM::LLVMPointerType::get(ctx, 3), addr);
    Value there =
        NVVM::MapaOp::create(nb, l, LLVM::LLVMPointerType::get(ctx, 7), local,
                             arith::IndexCastOp::create(nb, l, i32, r));
    return LLVM::LoadOp::create(nb, l, f32, there).getResult();
  };
  // (The block reductions of the G heads' values go through `red`.)
  BlockContext bc{b, loc, tid, lane, warp, red, NT};
  // The G values `vs` of every block of the cluster combined in rank order
  // (the same values in each), through stats[slot * G ..].
  auto overCluster = [&](SmallVector<Value> vs, int64_t slot, bool max) {
    if (C == 1)
      return vs;
    buildIfThen(b, loc, ix.icmp(P::eq, tid, ix.c(0)), [&] {
      for (int64_t g = 0; g < G; ++g)
        memref::StoreOp::create(b, loc, vs[g], stats,
                                ValueRange{ix.c(slot * G + g)});
    });
    clusterSync();
    SmallVector<Value> r;
    for (int64_t g = 0; g < G; ++g) {
      Value x = remote(b, loc, stats, ix.c(0), ix.c(slot * G + g));
      for (int64_t k = 1; k < C; ++k)
        x = BlockContext::combine(
            b, loc, x, remote(b, loc, stats, ix.c(k), ix.c(slot * G + g)), max);
      r.push_back(x);
    }
    return r;
  };

  AttentionItem it = attentionItemLoop(
      b, loc, out, positions, tokens, cacheRows, vd, G, S, o.group, a.chunkMax);
  Value item = it.item, rank = it.rank, h0 = it.h0, qRow = it.qRow, n = it.n,
        keyBase = it.keyBase, kvHead = it.kvHead;
  // The G heads' queries and outputs are adjacent columns.
  Value qBase = ix.mul(h0, ix.c(hd)), kBase = ix.mul(kvHead, ix.c(hd));
  Value vBase = ix.mul(kvHead, ix.c(vd)), oBase = ix.mul(h0, ix.c(vd));
  Value last = arith::SubIOp::create(b, loc, n, ix.c(1));
  auto scoreAt = [&](OpBuilder &nb, Location l, int64_t g, Value j) {
    IndexOps lx{nb, l};
    return lx.add(j, lx.c(g * a.chunkMax));
  };

  // The queries, in f32.
  loop(b, loc, tid, ix.c(G * hd), ix.c(NT), {},
       [&](OpBuilder &nb, Location l, Value d, ValueRange) {
         Value v = memref::LoadOp::create(
             nb, l, q, ValueRange{qRow, IndexOps{nb, l}.add(qBase, d)});
         memref::StoreOp::create(nb, l, toF32(nb, l, v), qs, ValueRange{d});
         return SmallVector<Value>{};
       });
  gpu::BarrierOp::create(b, loc);

  // Scores: lanesPerRow lanes a key row (lane / slots: its vectors of the
  // head), `slots` rows side by side in a warp, U such rows a lane at once;
  // each key vector meets the G queries.
  Value slot = ix.remu(lane, a.slots), sub = ix.divu(lane, a.slots);
  int64_t warpRows = a.slots * U;
  loop(b, loc, ix.mul(warp, ix.c(warpRows)), n, ix.c(NW * warpRows), {},
       [&](OpBuilder &nb, Location l, Value j0, ValueRange) {
         IndexOps lx{nb, l};
         SmallVector<Value> js, valid, rowsAt;
         for (int64_t u = 0; u < U; ++u) {
           Value j = lx.add(j0, lx.add(slot, lx.c(a.slots * u)));
           valid.push_back(lx.icmp(P::ult, j, n));
           js.push_back(j);
           rowsAt.push_back(lx.add(keyBase, lx.select(valid.back(), j, last)));
         }
         SmallVector<Value> inits(U * G, constF32(nb, l, 0.0f));
         auto dots = loop(
             nb, l, lx.mul(sub, lx.c(V)), lx.c(hd), lx.c(a.lanesPerRow * V),
             inits, [&](OpBuilder &ib, Location il, Value d, ValueRange acc) {
               IndexOps dx{ib, il};
               Value kd = dx.add(kBase, d);
               SmallVector<Value> kv;
               for (int64_t u = 0; u < U; ++u)
                 kv.push_back(loadVec(ib, il, keys, ValueRange{rowsAt[u], kd}));
               SmallVector<Value> next(acc.begin(), acc.end());
               for (int64_t g = 0; g < G; ++g) {
                 Value qv = vector::LoadOp::create(
                     ib, il, vecF32, qs, ValueRange{dx.add(d, dx.c(g * hd))});
                 for (int64_t u = 0; u < U; ++u)
                   next[u * G + g] = vector::ReductionOp::create(
                       ib, il, vector::CombiningKind::ADD,
                       arith::MulFOp::create(ib, il, kv[u], qv),
                       acc[u * G + g]);
               }
               return next;
             });
         for (int64_t u = 0; u < U; ++u) {
           SmallVector<Value> s;
           for (int64_t g = 0; g < G; ++g)
             s.push_back(
                 sumOverLanes(nb, l, dots.getResult(u * G + g), a.slots));
           Value write = arith::AndIOp::create(nb, l, valid[u],
                                               lx.icmp(P::eq, sub, lx.c(0)));
           buildIfThen(nb, l, write, [&] {
             for (int64_t g = 0; g < G; ++g) {
               Value r = roundF32(nb, l, s[g], elt);
               r = arith::MulFOp::create(nb, l, r, constF32(nb, l, o.scale));
               memref::StoreOp::create(nb, l, fromF32(nb, l, r, elt), scores,
                                       ValueRange{scoreAt(nb, l, g, js[u])});
             }
           });
         }
         return SmallVector<Value>{};
       });
  gpu::BarrierOp::create(b, loc);

  // Softmax over the item's rows, a head at a time: the maximum and the
  // sum over the cluster.
  Value ninf = constF32(b, loc, -std::numeric_limits<float>::infinity());
  auto scoreOf = [&](OpBuilder &nb, Location l, int64_t g, Value j) -> Value {
    return toF32(nb, l,
                 memref::LoadOp::create(nb, l, scores,
                                        ValueRange{scoreAt(nb, l, g, j)}));
  };
  // Per head g, `step` folded over this thread's keys j from `init`.
  auto overKeys =
      [&](Value init,
          function_ref<Value(OpBuilder &, Location, int64_t, Value, Value)>
              step) {
        return loop(b, loc, tid, n, ix.c(NT), SmallVector<Value>(G, init),
                    [&](OpBuilder &nb, Location l, Value j, ValueRange acc) {
                      SmallVector<Value> next;
                      for (int64_t g = 0; g < G; ++g)
                        next.push_back(step(nb, l, g, j, acc[g]));
                      return next;
                    });
      };
  auto localMax = overKeys(
      ninf, [&](OpBuilder &nb, Location l, int64_t g, Value j, Value m) {
        return arith::MaximumFOp::create(nb, l, m, scoreOf(nb, l, g, j))
            .getResult();
      });
  SmallVector<Value> rowMax =
      overCluster(bc.blockReduce(localMax.getResults(), /*max=*/true), 0,
                  /*max=*/true);
  auto expOf = [&](OpBuilder &nb, Location l, int64_t g, Value j) -> Value {
    return math::ExpOp::create(
        nb, l, arith::SubFOp::create(nb, l, scoreOf(nb, l, g, j), rowMax[g]));
  };
  auto localSum = overKeys(zero, [&](OpBuilder &nb, Location l, int64_t g,
                                     Value j, Value acc) {
    return arith::AddFOp::create(nb, l, acc, expOf(nb, l, g, j)).getResult();
  });
  SmallVector<Value> rowSum =
      overCluster(bc.blockReduce(localSum.getResults(), /*max=*/false), 1,
                  /*max=*/false);
  // Every thread has read the scores it needs (the reductions' barriers);
  // each now overwrites its own with the probabilities (with partial sums:
  // relative to this block's maximum, and not yet divided by the sum,
  // which the merge kernel does).
  loop(b, loc, tid, n, ix.c(NT), {},
       [&](OpBuilder &nb, Location l, Value j, ValueRange) {
         for (int64_t g = 0; g < G; ++g) {
           Value p = expOf(nb, l, g, j);
           if (!o.partials)
             p = arith::DivFOp::create(nb, l, p, rowSum[g]);
           memref::StoreOp::create(nb, l, fromF32(nb, l, p, elt), scores,
                                   ValueRange{scoreAt(nb, l, g, j)});
         }
         return SmallVector<Value>{};
       });
  gpu::BarrierOp::create(b, loc);

  // p v: thread (c, r) sums column group c over the keys r, r + R, ... (U
  // of them at once) for the G heads; the row groups of a warp add up by
  // shuffles, the first of them stores into partial[row, g, c V ..].
  Value c0 = ix.remu(tid, a.groupThreads), rg = ix.divu(tid, a.groupThreads);
  const int64_t R = a.rowGroups;
  auto columnGroup = [&](OpBuilder &nb, Location l, Value c) {
    IndexOps lx{nb, l};
    Value col = lx.add(vBase, lx.mul(c, lx.c(V)));
    auto acc = loop(
        nb, l, rg, n, lx.c(R * U), SmallVector<Value>(G, zeroVec),
        [&](OpBuilder &ib, Location il, Value j0, ValueRange sums) {
          IndexOps jx{ib, il};
          SmallVector<Value> ok, jc, vs;
          for (int64_t u = 0; u < U; ++u) {
            Value j = jx.add(j0, jx.c(R * u));
            ok.push_back(jx.icmp(P::ult, j, n));
            jc.push_back(jx.select(ok.back(), j, last));
            vs.push_back(loadVec(ib, il, values,
                                 ValueRange{jx.add(keyBase, jc.back()), col}));
          }
          SmallVector<Value> next(sums.begin(), sums.end());
          for (int64_t u = 0; u < U; ++u)
            for (int64_t g = 0; g < G; ++g) {
              Value p = arith::SelectOp::create(ib, il, ok[u],
                                                scoreOf(ib, il, g, jc[u]),
                                                constF32(ib, il, 0.0f));
              next[g] = vector::FMAOp::create(
                  ib, il, vector::BroadcastOp::create(ib, il, vecF32, p), vs[u],
                  next[g]);
            }
          return next;
        });
    SmallVector<Value> sums(acc.getResults());
    if (a.warpRowGroups > 1)
      for (Value &v : sums)
        for (int64_t e = 0; e < V; ++e) {
          Value x = vector::ExtractOp::create(nb, l, v, e);
          v = vector::InsertOp::create(
              nb, l, sumOverLanes(nb, l, x, a.groupThreads), v, e);
        }
    Value first = lx.icmp(P::eq, lx.remu(rg, a.warpRowGroups), lx.c(0));
    buildIfThen(nb, l, first, [&] {
      Value row = lx.mul(lx.divu(rg, a.warpRowGroups), lx.c(G * vd));
      for (int64_t g = 0; g < G; ++g)
        vector::StoreOp::create(
            nb, l, sums[g], partial,
            ValueRange{lx.add(row, lx.add(lx.c(g * vd), lx.mul(c, lx.c(V))))});
    });
  };
  if (a.warpRowGroups > 1) {
    // Every thread has a row group and one column group (the shuffles need
    // the whole warp).
    columnGroup(b, loc, c0);
  } else {
    buildIfThen(b, loc, ix.icmp(P::ult, rg, ix.c(R)), [&] {
      loop(b, loc, c0, ix.c(a.groups), ix.c(a.groupThreads), {},
           [&](OpBuilder &nb, Location l, Value c, ValueRange) {
             columnGroup(nb, l, c);
             return SmallVector<Value>{};
           });
    });
  }
  gpu::BarrierOp::create(b, loc);

  // The block's sums, a thread per (head, column): in partial[0, ..], the
  // output where the block has every key, or with partial sums its entry
  // of `work`: [item, rank] of G * vd sums, then the G maxima and the G
  // sums of the exponentials.
  Value entryBase = o.partials ? ix.mul(ix.add(ix.mul(item, ix.c(S)), rank),
                                        ix.c(attentionPartialFloats(o)))
                               : Value();
  if (o.partials)
    buildIfThen(b, loc, ix.icmp(P::eq, tid, ix.c(0)), [&] {
      for (int64_t g = 0; g < G; ++g) {
        memref::StoreOp::create(
            b, loc, rowMax[g], work,
            ValueRange{ix.add(entryBase, ix.c(G * vd + g))});
        memref::StoreOp::create(
            b, loc, rowSum[g], work,
            ValueRange{ix.add(entryBase, ix.c(G * vd + G + g))});
      }
    });
  loop(b, loc, tid, ix.c(G * vd), ix.c(NT), {},
       [&](OpBuilder &nb, Location l, Value e, ValueRange) {
         IndexOps lx{nb, l};
         Value s = memref::LoadOp::create(nb, l, partial, ValueRange{e});
         for (int64_t r = 1; r < a.partialRows; ++r)
           s = arith::AddFOp::create(
               nb, l, s,
               memref::LoadOp::create(nb, l, partial,
                                      ValueRange{lx.add(e, lx.c(r * G * vd))}));
         if (o.partials)
           memref::StoreOp::create(nb, l, s, work,
                                   ValueRange{lx.add(entryBase, e)});
         else if (C == 1)
           memref::StoreOp::create(nb, l, fromF32(nb, l, s, elt), out,
                                   ValueRange{qRow, lx.add(oBase, e)});
         else
           memref::StoreOp::create(nb, l, s, partial, ValueRange{e});
         return SmallVector<Value>{};
       });
  if (C > 1) {
    // The cluster's sums: block `rank` writes entries rank, rank + C, ...
    clusterSync();
    loop(b, loc, ix.add(rank, ix.mul(tid, ix.c(C))), ix.c(G * vd), ix.c(NT * C),
         {}, [&](OpBuilder &nb, Location l, Value e, ValueRange) {
           Value s = remote(nb, l, partial, constIndex(nb, l, 0), e);
           for (int64_t k = 1; k < C; ++k)
             s = arith::AddFOp::create(
                 nb, l, s, remote(nb, l, partial, constIndex(nb, l, k), e));
           memref::StoreOp::create(
               nb, l, fromF32(nb, l, s, elt), out,
               ValueRange{qRow, IndexOps{nb, l}.add(oBase, e)});
           return SmallVector<Value>{};
         });
    // No block takes its next item (or leaves) while another reads it.
    clusterSync();
  } else {
    gpu::BarrierOp::create(b, loc);
  }
  b.setInsertionPointAfter(it.item.getParentBlock()->getParentOp());
  gpu::ReturnOp::create(b, loc);
  return fn;
}

AttentionItem mlir::moe::attentionItemLoop(OpBuilder &b, Location loc,
                                           Value out, Value positions,
                                           Value tokens, Value cacheRows,
                                           int64_t valueDim, int64_t G,
                                           int64_t S, int64_t group,
                                           int64_t chunkMax) {
  IndexOps ix{b, loc};
  AttentionItem r;
  Value bx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value gx = gpu::GridDimOp::create(b, loc, gpu::Dimension::x);
  r.rank = S > 1 ? ix.remu(bx, S) : ix.c(0);
  Value headBlocks =
      ix.divu(ix.divu(memref::DimOp::create(b, loc, out, 1), valueDim), G);
  Value seqs = memref::DimOp::create(b, loc, positions, 0);
  Value items = ix.mul(ix.mul(tokens, headBlocks), seqs);
  auto loop = scf::ForOp::create(b, loc, ix.divu(bx, S), items, ix.divu(gx, S));
  b.setInsertionPointToStart(loop.getBody());
  Value item = r.item = loop.getInductionVar(), rank = r.rank;
  r.t = arith::RemUIOp::create(b, loc, item, tokens);
  Value sh = arith::DivUIOp::create(b, loc, item, tokens);
  r.h0 = ix.mul(arith::RemUIOp::create(b, loc, sh, headBlocks), ix.c(G));
  r.seq = arith::DivUIOp::create(b, loc, sh, headBlocks);
  // Sequence seq's rows of the queries (seq*T + t) and of the caches (from
  // seq*S), at its own position.
  r.qRow = ix.add(ix.mul(r.seq, tokens), r.t);
  Value pos = arith::IndexCastOp::create(
      b, loc, b.getIndexType(),
      memref::LoadOp::create(b, loc, positions, ValueRange{r.seq}));
  r.rows = ix.add(ix.add(pos, r.t), ix.c(1));
  Value chunk = S > 1 ? ix.divu(ix.add(r.rows, ix.c(S - 1)), S) : r.rows;
  r.lo = ix.mul(rank, chunk);
  r.n =
      ix.select(ix.icmp(arith::CmpIPredicate::ult, r.lo, r.rows),
                arith::MinUIOp::create(
                    b, loc, arith::SubIOp::create(b, loc, r.rows, r.lo), chunk),
                ix.c(0));
  if (chunkMax)
    r.n = arith::MinUIOp::create(b, loc, r.n, ix.c(chunkMax));
  r.cacheBase = ix.mul(r.seq, cacheRows);
  r.keyBase = ix.add(r.cacheBase, r.lo);
  r.kvHead = ix.divu(r.h0, group);
  return r;
}

int64_t mlir::moe::attentionPartialFloats(const AttentionKernelOptions &o) {
  int64_t G = std::max<int64_t>(o.heads, 1);
  return G * o.valueDim + 2 * G;
}

gpu::GPUFuncOp
mlir::moe::buildAttentionMergeKernel(OpBuilder &b, Location loc,
                                     gpu::GPUModuleOp module, StringRef name,
                                     const AttentionKernelOptions &o) {
  OpBuilder::InsertionGuard guard(b);
  Type elt = b.getBF16Type(), f32 = b.getF32Type();
  const int64_t S = o.split, G = std::max<int64_t>(o.heads, 1), vd = o.valueDim,
                W = attentionPartialFloats(o);
  const int64_t NT = kAttentionMergeThreads;
  auto fn = createKernelFunc(b, loc, module, name,
                             {vector1(f32), matrix(elt), b.getIndexType()}, NT);
  Block &entry = fn.getBody().front();
  Value work = entry.getArgument(0), out = entry.getArgument(1),
        tokens = entry.getArgument(2);
  IndexOps ix{b, loc};
  Value red = sharedF32(b, loc, fn, NT / 32);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  BlockContext bc{b, loc, tid, ix.remu(tid, 32), ix.divu(tid, 32), red, NT};
  // Block (item, g): head h0 + g of the attention kernel's item, whose S
  // entries start at item * S * W.
  Value bx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value item = ix.divu(bx, G), g = ix.remu(bx, G);
  Value headBlocks =
      ix.divu(ix.divu(memref::DimOp::create(b, loc, out, 1), vd), G);
  Value t = arith::RemUIOp::create(b, loc, item, tokens),
        sh = arith::DivUIOp::create(b, loc, item, tokens);
  Value qRow =
      ix.add(ix.mul(arith::DivUIOp::create(b, loc, sh, headBlocks), tokens), t);
  Value oBase = ix.mul(
      ix.add(ix.mul(arith::RemUIOp::create(b, loc, sh, headBlocks), ix.c(G)),
             g),
      ix.c(vd));
  Value base = ix.mul(item, ix.c(S * W));
  auto at = [&](OpBuilder &nb, Location l, Value s, Value off) -> Value {
    IndexOps lx{nb, l};
    return memref::LoadOp::create(
        nb, l, work, ValueRange{lx.add(base, lx.add(lx.mul(s, lx.c(W)), off))});
  };
  Value maxOff = ix.add(ix.c(G * vd), g), sumOff = ix.add(maxOff, ix.c(G));
  // The item's maximum over its blocks, then the sum of their exponentials
  // rescaled to it (a block without keys has maximum -inf and sum 0).
  auto localMax =
      loop(b, loc, tid, ix.c(S), ix.c(NT),
           {constF32(b, loc, -std::numeric_limits<float>::infinity())},
           [&](OpBuilder &nb, Location l, Value s, ValueRange acc) {
             return SmallVector<Value>{arith::MaximumFOp::create(
                 nb, l, acc[0], at(nb, l, s, maxOff))};
           });
  Value m = bc.blockReduce(localMax.getResult(0), /*max=*/true);
  // Each block's weight exp(m_s - m), once, into shared memory (the block
  // reduction's barriers publish them).
  Value weights = sharedF32(b, loc, fn, S);
  auto localSum =
      loop(b, loc, tid, ix.c(S), ix.c(NT), {constF32(b, loc, 0.0f)},
           [&](OpBuilder &nb, Location l, Value s, ValueRange acc) {
             Value w = math::ExpOp::create(
                 nb, l, arith::SubFOp::create(nb, l, at(nb, l, s, maxOff), m));
             memref::StoreOp::create(nb, l, w, weights, ValueRange{s});
             return SmallVector<Value>{
                 math::FmaOp::create(nb, l, w, at(nb, l, s, sumOff), acc[0])};
           });
  Value sum = bc.blockReduce(localSum.getResult(0), /*max=*/false);
  // A thread per column: the blocks' p v sums rescaled, over the sum, in
  // block order; kAttentionMergeLoads blocks' sums loaded at once (S is a power
  // of two of at least 2).
  const int64_t L = std::min<int64_t>(S, kAttentionMergeLoads);
  loop(b, loc, tid, ix.c(vd), ix.c(NT), {},
       [&](OpBuilder &nb, Location l, Value c, ValueRange) {
         IndexOps lx{nb, l};
         Value col = lx.add(lx.mul(g, lx.c(vd)), c);
         auto acc =
             loop(nb, l, lx.c(0), lx.c(S), lx.c(L), {constF32(nb, l, 0.0f)},
                  [&](OpBuilder &ib, Location il, Value s0, ValueRange a) {
                    IndexOps jx{ib, il};
                    SmallVector<Value> pv;
                    for (int64_t u = 0; u < L; ++u)
                      pv.push_back(at(ib, il, jx.add(s0, jx.c(u)), col));
                    Value r = a[0];
                    for (int64_t u = 0; u < L; ++u)
                      r = math::FmaOp::create(
                          ib, il,
                          memref::LoadOp::create(
                              ib, il, weights, ValueRange{jx.add(s0, jx.c(u))}),
                          pv[u], r);
                    return SmallVector<Value>{r};
                  });
         Value r = arith::DivFOp::create(nb, l, acc.getResult(0), sum);
         memref::StoreOp::create(nb, l, fromF32(nb, l, r, elt), out,
                                 ValueRange{qRow, lx.add(oBase, c)});
         return SmallVector<Value>{};
       });
  gpu::ReturnOp::create(b, loc);
  return fn;
}

//===----------------------------------------------------------------------===//
// Which dense parts run on the GPU
//===----------------------------------------------------------------------===//

namespace {
bool isStaticBF16(Type t) {
  auto shaped = dyn_cast<RankedTensorType>(t);
  return shaped && shaped.hasStaticShape() && shaped.getElementType().isBF16();
}

/// Whether `v` is extf(block argument `arg`).
bool isExtOf(Value v, Value arg) {
  auto ext = v.getDefiningOp<arith::ExtFOp>();
  return ext && ext.getIn() == arg;
}
} // namespace

bool mlir::moe::isResidualAdd(linalg::GenericOp op) {
  if (op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1 ||
      op->getNumResults() != 1 || !op.hasPureTensorSemantics())
    return false;
  for (Value v : op->getOperands())
    if (!isStaticBF16(v.getType()) ||
        cast<RankedTensorType>(v.getType()).getRank() != 2)
      return false;
  if (!llvm::all_of(op.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }) ||
      op.getNumReductionLoops() != 0)
    return false;
  Block &body = op.getRegion().front();
  if (body.getOperations().size() != 5)
    return false;
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto trunc = yield.getValues()[0].getDefiningOp<arith::TruncFOp>();
  if (!trunc)
    return false;
  auto add = trunc.getIn().getDefiningOp<arith::AddFOp>();
  if (!add || !add.getType().isF32())
    return false;
  Value a = body.getArgument(0), b = body.getArgument(1);
  return (isExtOf(add.getLhs(), a) && isExtOf(add.getRhs(), b)) ||
         (isExtOf(add.getLhs(), b) && isExtOf(add.getRhs(), a));
}

linalg::MatmulOp mlir::moe::gpuMatmulOf(linalg::GenericOp round) {
  if (round.getNumDpsInputs() != 1 || round.getNumDpsInits() != 1 ||
      round->getNumResults() != 1 || !round.hasPureTensorSemantics() ||
      !llvm::all_of(round.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }))
    return {};
  Block &body = round.getRegion().front();
  if (body.getOperations().size() != 2)
    return {};
  auto trunc = body.front().getNumOperands() == 1
                   ? dyn_cast<arith::TruncFOp>(body.front())
                   : arith::TruncFOp();
  if (!trunc || trunc.getIn() != body.getArgument(0) ||
      !isStaticBF16(round->getResult(0).getType()))
    return {};
  auto matmul = round.getDpsInputs()[0].getDefiningOp<linalg::MatmulOp>();
  if (!matmul || !matmul->hasOneUse() || !matmul.hasPureTensorSemantics() ||
      matmul.getNumDpsInputs() != 2)
    return {};
  // linalg.matmul with its default maps (no transposes or broadcasts).
  if (matmul.getIndexingMapsArray() !=
      matmul.getDefaultIndexingMaps(matmul.getContext()))
    return {};
  Value a = matmul.getDpsInputs()[0], w = matmul.getDpsInputs()[1];
  if (!isStaticBF16(a.getType()) || !isStaticBF16(w.getType()))
    return {};
  auto fill = matmul.getDpsInits()[0].getDefiningOp<linalg::FillOp>();
  if (!fill)
    return {};
  auto zero = fill.getInputs()[0].getDefiningOp<arith::ConstantOp>();
  auto value = zero ? dyn_cast<FloatAttr>(zero.getValue()) : FloatAttr();
  if (!value || !value.getValue().isZero() ||
      !cast<RankedTensorType>(matmul->getResult(0).getType())
           .getElementType()
           .isF32())
    return {};
  int64_t k = cast<RankedTensorType>(w.getType()).getDimSize(0),
          n = cast<RankedTensorType>(w.getType()).getDimSize(1);
  if (n % kGemvColumnsPerThread || k % kGemvUnroll)
    return {};
  return matmul;
}

Value mlir::moe::learnedPositionsOf(EmbeddingOp emb) {
  // ids = collapse_shape(generic(position) { position[s] + index(1) }).
  auto collapse = emb.getIds().getDefiningOp<tensor::CollapseShapeOp>();
  auto generic = collapse
                     ? collapse.getSrc().getDefiningOp<linalg::GenericOp>()
                     : linalg::GenericOp();
  if (!generic || generic.getNumDpsInputs() != 1 ||
      generic.getNumDpsInits() != 1 || generic.getNumLoops() != 2 ||
      generic.getNumReductionLoops() != 0)
    return {};
  Value position = generic.getDpsInputs()[0];
  auto posType = dyn_cast<RankedTensorType>(position.getType());
  auto idsType = dyn_cast<RankedTensorType>(generic->getResult(0).getType());
  if (!posType || !idsType || posType.getRank() != 1 ||
      !posType.getElementType().isInteger(32) || !idsType.hasStaticShape() ||
      idsType.getDimSize(0) != posType.getDimSize(0))
    return {};
  MLIRContext *ctx = emb.getContext();
  SmallVector<AffineMap> maps = generic.getIndexingMapsArray();
  if (maps[0] != AffineMap::get(2, 0, getAffineDimExpr(0, ctx), ctx) ||
      !maps[1].isIdentity())
    return {};
  Block &body = generic.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getOperand(0).getDefiningOp<arith::AddIOp>();
  if (!add)
    return {};
  auto isT = [](Value v) {
    auto cast = v.getDefiningOp<arith::IndexCastOp>();
    auto index = cast ? cast.getIn().getDefiningOp<linalg::IndexOp>()
                      : linalg::IndexOp();
    return index && index.getDim() == 1;
  };
  Value pos = body.getArgument(0);
  if (!((add.getLhs() == pos && isT(add.getRhs())) ||
        (add.getRhs() == pos && isT(add.getLhs()))))
    return {};
  return position;
}

std::string mlir::moe::whyNotGpuDense(Operation *op) {
  for (Type t : op->getOperandTypes())
    if (auto shaped = dyn_cast<RankedTensorType>(t);
        shaped && !shaped.hasStaticShape())
      return "the GPU dense parts need static shapes";
  if (auto emb = dyn_cast<EmbeddingOp>(op)) {
    if (!isStaticBF16(emb.getTable().getType()))
      return "the GPU embedding takes a bf16 table";
    return "";
  }
  if (auto norm = dyn_cast<RmsNormOp>(op)) {
    if (!isStaticBF16(norm.getInput().getType()) ||
        !isStaticBF16(norm.getWeight().getType()))
      return "the GPU RMSNorm takes bf16 activations and weights";
    return "";
  }
  if (isa<LayerNormOp>(op)) {
    for (Value v : op->getOperands())
      if (!isStaticBF16(v.getType()))
        return "the GPU LayerNorm takes bf16 activations, weights and biases";
    return "";
  }
  if (auto mlp = dyn_cast<MlpOp>(op)) {
    for (Value v : op->getOperands())
      if (!isStaticBF16(v.getType()))
        return "the GPU dense MLP takes bf16 activations and weights";
    auto up = cast<RankedTensorType>(mlp.getWUp().getType());
    int64_t d = up.getDimSize(0), f = up.getDimSize(1);
    // Both projections are dense GEMVs or GEMMs (denseMatmulF32): columns
    // in groups of 8, K in runs of 4.
    if (d % kGemvColumnsPerThread || f % kGemvColumnsPerThread)
      return "the GPU dense MLP needs hidden and FFN sizes divisible by 8";
    return "";
  }
  if (auto attn = dyn_cast<AttentionOp>(op)) {
    if (attn.isEncoderDecoderStyle())
      return "no GPU kernel yet for encoder-decoder (T5) attention: a "
             "relative position bias, no causal mask, padded keys or another "
             "scale";
    for (Value v : attn->getOperands())
      if (v != attn.getPosition() && !isStaticBF16(v.getType()))
        return "the GPU attention takes bf16 activations, weights and caches";
    auto x = cast<RankedTensorType>(attn.getInput().getType());
    auto cache = cast<RankedTensorType>(attn.getKeyCacheIn().getType());
    int64_t d = x.getDimSize(1), hd = cache.getDimSize(2),
            H = attn.getNumHeads(), KV = attn.getNumKvHeads();
    if (hd % 2)
      return "the GPU attention needs an even head dimension";
    for (int64_t m : {d, H * hd, KV * hd})
      if (m % kGemvColumnsPerThread)
        return "the GPU attention needs hidden and projection sizes "
               "divisible by 8";
    AttentionKernelOptions o;
    o.headDim = hd;
    o.valueDim = hd;
    o.maxRows = cache.getDimSize(0);
    int64_t B = cast<RankedTensorType>(attn.getPosition().getType())
                    .getDimSize(0);
    if (usesFlashAttention(o, x.getDimSize(0) / B))
      return "";
    if (o.maxRows > attentionMaxRows(o))
      return "the GPU attention splits a row's keys over at most " +
             std::to_string(kAttentionMaxPartialSplit) +
             " blocks, each keeping its scores in shared memory: at most " +
             std::to_string(attentionMaxRows(o)) +
             " cache rows (or, on tensor cores, steps of " +
             std::to_string(kFlashMinRows) +
             " or more rows per sequence and head sizes that are multiples "
             "of 16 up to " +
             std::to_string(kFlashMaxHeadDim) + ")";
    return "";
  }
  if (auto mla = dyn_cast<MlaAttentionOp>(op)) {
    for (Value v : mla->getOperands())
      if (v != mla.getPosition() && !isStaticBF16(v.getType()))
        return "the GPU latent attention takes bf16 activations, weights and "
               "caches";
    // Every projection is a dense GEMV or GEMM: outputs in groups of 8
    // columns, inputs in runs of 4.
    for (Value w : {mla.getQA(), mla.getQB(), mla.getKvA(), mla.getKvB(),
                    mla.getWO()}) {
      if (!w)
        continue;
      auto t = cast<RankedTensorType>(w.getType());
      if (t.getDimSize(0) % kGemvUnroll || t.getDimSize(1) % kGemvColumnsPerThread)
        return "the GPU latent attention needs projection sizes divisible "
               "by 8";
    }
    AttentionKernelOptions o;
    o.headDim = mla.getNopeDim() + mla.getRopeDim();
    o.valueDim = mla.getVDim();
    int64_t B =
        cast<RankedTensorType>(mla.getPosition().getType()).getDimSize(0);
    int64_t rows =
        cast<RankedTensorType>(mla.getInput().getType()).getDimSize(0);
    o.maxRows =
        cast<RankedTensorType>(mla.getKeyCacheIn().getType()).getDimSize(0) / B;
    if (usesFlashAttention(o, rows / B))
      return "";
    if (o.maxRows > attentionMaxRows(o))
      return "the GPU latent attention keeps a row's scores in shared "
             "memory: at most " +
             std::to_string(attentionMaxRows(o)) + " cache rows";
    return "";
  }
  if (auto generic = dyn_cast<linalg::GenericOp>(op)) {
    if (isResidualAdd(generic) || gpuMatmulOf(generic))
      return "";
    return "not a residual add or a rounded bf16 projection";
  }
  return "no GPU kernels for it yet";
}

bool mlir::moe::isGpuDenseOperand(OpOperand &use) {
  Operation *user = use.getOwner();
  if (auto attn = dyn_cast<AttentionOp>(user))
    return use.get() != attn.getPosition() && whyNotGpuDense(attn).empty();
  if (auto mla = dyn_cast<MlaAttentionOp>(user))
    return use.get() != mla.getPosition() && whyNotGpuDense(mla).empty();
  if (auto emb = dyn_cast<EmbeddingOp>(user))
    return use.get() == emb.getTable() && whyNotGpuDense(emb).empty();
  if (isa<RmsNormOp, LayerNormOp, MlpOp>(user))
    return whyNotGpuDense(user).empty();
  if (auto generic = dyn_cast<linalg::GenericOp>(user))
    return isResidualAdd(generic);
  if (auto matmul = dyn_cast<linalg::MatmulOp>(user)) {
    if (!matmul->hasOneUse() || use.getOperandNumber() >= 2)
      return false;
    auto round = dyn_cast<linalg::GenericOp>(*matmul->getUsers().begin());
    return round && gpuMatmulOf(round) == matmul;
  }
  return false;
}
