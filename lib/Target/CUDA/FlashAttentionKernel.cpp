//===- FlashAttentionKernel.cpp - Causal attention on tensor cores --------===//
//
// Part of moe-compiler.
//
// The attention of steps with many query rows per sequence (prefill), in the
// manner of FlashAttention-2: a block of 4 warps takes 64 query rows of one
// head (each warp 16 rows) and walks the keys in blocks of 64, keeping a
// running row maximum and sum (online softmax) so no row of scores is ever
// stored. Per key block:
//   S = Q K^T     mma.sync m16n8k16 (bf16 in, f32 accumulate); Q's fragments
//                 stay in registers for the whole walk, K's come from shared
//                 memory with ldmatrix;
//   scale, causal mask (key j of query row t is kept when j <= pos + t),
//   m' = max(m, rowmax S), P = exp(S - m'), l = l exp(m - m') + rowsum P,
//   O = O exp(m - m') + P V   (P rounded to bf16 straight from the S
//                 accumulators into A fragments; V's fragments with
//                 ldmatrix.trans);
// then O / l rounded to bf16. K and V blocks go global -> shared with
// cp.async (16 bytes, zero-filled past the cache): the next block's keys
// are in flight during this block's softmax and P V, its values during the
// next S. Blocks take query tiles from the last (the most keys) down.
//
// Rounding differs from moe.attention's eager definition (which rounds the
// scores and the normalised probabilities to bf16): here the scores stay in
// f32 and the unnormalised probabilities are rounded, as FlashAttention and
// transformers' SDPA path do.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/TensorBuilders.h"
#include "moe/Target/CUDA/DenseKernels.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;

namespace {
/// The arithmetic and fragment pieces the tensor-core attention kernels
/// share.
struct AttentionMath {
  OpBuilder &b;
  Location loc;
  Value fadd(Value l, Value r) const {
    return arith::AddFOp::create(b, loc, l, r);
  }
  Value fmul(Value l, Value r) const {
    return arith::MulFOp::create(b, loc, l, r);
  }
  Value fmax(Value l, Value r) const {
    return arith::MaximumFOp::create(b, loc, l, r);
  }
  Value fsub(Value l, Value r) const {
    return arith::SubFOp::create(b, loc, l, r);
  }
  Value exp(Value v) const { return math::ExpOp::create(b, loc, v); }
  /// The sum (or max) over the 4 lanes of a quad (the lanes holding one
  /// row of an mma accumulator).
  Value quad(Value v, bool max) const {
    for (int32_t off : {1, 2}) {
      Value other =
          gpu::ShuffleOp::create(b, loc, v, off, 32, gpu::ShuffleMode::XOR)
              .getShuffleResult();
      v = max ? fmax(v, other) : fadd(v, other);
    }
    return v;
  }
  void mma(ArrayRef<Value> a, ArrayRef<Value> bReg,
           MutableArrayRef<Value> c) const {
    mmaSyncBf16(b, loc, a, bReg, c);
  }
  /// Register i (two bf16) of an ldmatrix fragment.
  Value reg(Value frag, int64_t i) const {
    return fragmentRegister(b, loc, frag, i);
  }
  /// A's fragments for rows row0 .. row0 + 15 of the [rows, HD] tile `tile`
  /// (ldmatrix x4 over each 16 columns): HD / 16 of 4 registers.
  SmallVector<SmallVector<Value, 4>> rowFragments(IndexOps &ops, Type fragType,
                                                  Value tile, Value lane,
                                                  Value row0,
                                                  int64_t HD) const {
    SmallVector<SmallVector<Value, 4>> frags;
    for (int64_t ks = 0; ks < HD / 16; ++ks) {
      Value f = nvgpu::LdMatrixOp::create(
          b, loc, fragType, tile,
          ValueRange{
              row0 ? ops.add(row0, ops.remu(lane, 16)) : ops.remu(lane, 16),
              ops.add(ops.c(ks * 16), ops.mul(ops.divu(lane, 16), ops.c(8)))},
          /*transpose=*/false, /*numTiles=*/4);
      frags.push_back({reg(f, 0), reg(f, 1), reg(f, 2), reg(f, 3)});
    }
    return frags;
  }
  /// S += Q K^T for the 16 keys key0 .. key0 + 15 of `sK` (rows) and the
  /// head dimensions 16 ks .. 16 ks + 15: one ldmatrix x4 of K and two MMAs
  /// into `s`'s 8 accumulators (the n8 tiles of keys key0 and key0 + 8).
  void scoreStep(IndexOps &ops, Type fragType, Value sK, Value lane, Value key0,
                 int64_t ks, ArrayRef<Value> q,
                 MutableArrayRef<Value> s) const {
    Value f = nvgpu::LdMatrixOp::create(
        b, loc, fragType, sK,
        ValueRange{
            ops.add(key0, ops.add(ops.remu(lane, 8),
                                  ops.mul(ops.divu(lane, 16), ops.c(8)))),
            ops.add(ops.c(ks * 16),
                    ops.mul(ops.remu(ops.divu(lane, 8), 2), ops.c(8)))},
        /*transpose=*/false, /*numTiles=*/4);
    for (int64_t half = 0; half < 2; ++half) {
      SmallVector<Value, 2> bReg{reg(f, 2 * half), reg(f, 2 * half + 1)};
      mma(q, bReg, s.slice(half * 4, 4));
    }
  }
  /// O += P V for P's 16 keys (the A fragment `p`) and the rows key0 ..
  /// key0 + 15 of `sV`: per pair of the `OT` n8 output tiles an
  /// ldmatrix.trans x4 of V and two MMAs into `acc`.
  void valueStep(IndexOps &ops, Type fragType, Value sV, Value lane, Value key0,
                 int64_t OT, ArrayRef<Value> p,
                 MutableArrayRef<Value> acc) const {
    for (int64_t np = 0; np < OT; np += 2) {
      Value f = nvgpu::LdMatrixOp::create(
          b, loc, fragType, sV,
          ValueRange{
              ops.add(key0, ops.remu(lane, 16)),
              ops.add(ops.c(np * 8), ops.mul(ops.divu(lane, 16), ops.c(8)))},
          /*transpose=*/true, /*numTiles=*/4);
      for (int64_t half = 0; half < 2; ++half) {
        SmallVector<Value, 2> bReg{reg(f, 2 * half), reg(f, 2 * half + 1)};
        mma(p, bReg, acc.slice((np + half) * 4, 4));
      }
    }
  }
  /// Two f32 as one register of two bf16 (the lower column first).
  Value pack(Value lo, Value hi) const {
    Type bf16 = b.getBF16Type();
    Value v = vector::FromElementsOp::create(
        b, loc, VectorType::get({2}, bf16),
        ValueRange{fromF32(b, loc, lo, bf16), fromF32(b, loc, hi, bf16)});
    return vector::ExtractOp::create(
        b, loc,
        vector::BitCastOp::create(b, loc, VectorType::get({1}, b.getI32Type()),
                                  v),
        0);
  }
};

/// The values an online-softmax loop over key blocks carries: `accs`
/// output accumulators (mma C fragments), then the maxima and the sums of
/// this thread's two rows (g and g + 8).
struct SoftmaxCarry {
  SmallVector<Value> acc;
  Value m[2], l[2];
  /// From a loop's iteration arguments or results.
  SoftmaxCarry(ValueRange v, int64_t accs)
      : acc(v.begin(), v.begin() + accs), m{v[accs], v[accs + 1]},
        l{v[accs + 2], v[accs + 3]} {}
  SoftmaxCarry(ArrayRef<Value> acc, ArrayRef<Value> m, ArrayRef<Value> l)
      : acc(acc), m{m[0], m[1]}, l{l[0], l[1]} {}
  SmallVector<Value> values() const {
    SmallVector<Value> v(acc);
    v.append({m[0], m[1], l[0], l[1]});
    return v;
  }
};

/// The loop over key blocks 0 .. n of an online softmax, carrying `accs`
/// accumulators from `zero`, the row maxima from `mStart` and the sums from
/// `zero`; `body(kb, carried)` builds an iteration and returns the next
/// values. Returns the last ones (after the loop, where `b` is left).
SoftmaxCarry
buildSoftmaxLoop(OpBuilder &b, Location loc, Value n, int64_t accs,
                 Value mStart, Value zero,
                 function_ref<SoftmaxCarry(Value, const SoftmaxCarry &)> body) {
  IndexOps ops{b, loc};
  SmallVector<Value> init(accs, zero);
  init.append({mStart, mStart, zero, zero});
  auto loop = scf::ForOp::create(b, loc, ops.c(0), n, ops.c(1), init);
  {
    OpBuilder::InsertionGuard lg(b);
    b.setInsertionPointToStart(loop.getBody());
    SoftmaxCarry next = body(loop.getInductionVar(),
                             SoftmaxCarry(loop.getRegionIterArgs(), accs));
    scf::YieldOp::create(b, loc, next.values());
  }
  return SoftmaxCarry(loop.getResults(), accs);
}
} // namespace

std::string mlir::moe::whyNotFlashAttention(const AttentionKernelOptions &o) {
  if (o.valueDim % 16 != 0 || o.valueDim > kFlashMaxHeadDim)
    return "the value head size is not a multiple of 16 up to " +
           std::to_string(kFlashMaxHeadDim);
  if (o.headDim % 16 != 0 || o.headDim > kFlashMaxKeyDim)
    return "the query head size is not a multiple of 16 up to " +
           std::to_string(kFlashMaxKeyDim);
  return "";
}

gpu::GPUFuncOp
mlir::moe::buildFlashAttentionKernel(OpBuilder &b, Location loc,
                                     gpu::GPUModuleOp module, StringRef name,
                                     const AttentionKernelOptions &o) {
  assert(whyNotFlashAttention(o).empty() && "unsupported flash attention");
  OpBuilder::InsertionGuard guard(b);
  MLIRContext *ctx = b.getContext();
  const int64_t dyn = ShapedType::kDynamic;
  Type i32 = b.getI32Type(), bf16 = b.getBF16Type(), index = b.getIndexType();
  auto mat = MemRefType::get({dyn, dyn}, bf16);
  SmallVector<Type> args{mat,   mat,  mat, mat, MemRefType::get({dyn}, i32),
                         index, index};
  const int64_t threads = 32 * kFlashWarps;
  auto fn = createKernelFunc(b, loc, module, name, args, threads);

  // Query/key heads of HD, value heads of VD (DeepSeek's latent attention:
  // 192 and 128).
  const int64_t HD = o.headDim, VD = o.valueDim, BM = kFlashRows,
                BN = kFlashKeys;
  static_assert(kFlashRows == kFlashKeys && kFlashRows == 16 * kFlashWarps,
                "a warp per 16 query rows; query and key tiles share a copy");
  // Padded rows: ldmatrix rows in distinct banks.
  auto wg = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  auto tileType = [&](int64_t width) {
    return MemRefType::get({BN, width + 8}, bf16, MemRefLayoutAttrInterface(),
                           wg);
  };
  Value sK = fn.addWorkgroupAttribution(tileType(HD), loc);
  Value sV = fn.addWorkgroupAttribution(tileType(VD), loc);
  Block &entry = fn.getBody().front();
  b.setInsertionPointToStart(&entry);
  Value q = entry.getArgument(0), keys = entry.getArgument(1),
        values = entry.getArgument(2), out = entry.getArgument(3);

  IndexOps ops{b, loc};
  AttentionMath am{b, loc};
  using P = arith::CmpIPredicate;

  // Which rows and keys: query tile x of sequence z, head y.
  Value tileX = arith::SubIOp::create(
      b, loc,
      arith::SubIOp::create(b, loc,
                            gpu::GridDimOp::create(b, loc, gpu::Dimension::x),
                            gpu::BlockIdOp::create(b, loc, gpu::Dimension::x)),
      ops.c(1));
  Value h = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value t0 = ops.mul(tileX, ops.c(BM));
  Value seq = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  Value T = entry.getArgument(5), S = entry.getArgument(6);
  Value pos = arith::IndexCastOp::create(
      b, loc, index,
      memref::LoadOp::create(b, loc, entry.getArgument(4), ValueRange{seq}));
  Value qBase = ops.mul(seq, T), cacheBase = ops.mul(seq, S);
  Value qCol0 = ops.mul(h, ops.c(HD)), oCol0 = ops.mul(h, ops.c(VD));
  Value kCol0 = ops.mul(ops.divu(h, o.group), ops.c(HD));
  Value vCol0 = ops.mul(ops.divu(h, o.group), ops.c(VD));
  // Keys 0 .. pos + the tile's last row: ceil(that / BN) key blocks.
  Value rowsHere = arith::MinUIOp::create(
      b, loc, arith::SubIOp::create(b, loc, T, t0), ops.c(BM));
  Value keysEnd = ops.add(pos, ops.add(t0, rowsHere));
  Value blocks = ops.divu(ops.add(keysEnd, ops.c(BN - 1)), BN);

  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value warp = ops.divu(tid, 32), lane = ops.remu(tid, 32);
  Value g = ops.divu(lane, 4), tg2 = ops.mul(ops.remu(lane, 4), ops.c(2));

  // A tile of 64 rows x `width` columns: width / 16 chunks of 16 bytes per
  // thread.
  auto copyTile = [&](Value dst, Value src, Value firstRow, Value limit,
                      Value srcRowBase, Value col0, int64_t width) {
    const int64_t chunksPerRow = width / 8;
    SmallVector<Value> tokens;
    for (int64_t c = 0; c < BN * chunksPerRow / threads; ++c) {
      Value v = ops.add(tid, ops.c(c * threads));
      Value row = ops.divu(v, chunksPerRow);
      Value col = ops.mul(ops.remu(v, chunksPerRow), ops.c(8));
      Value ok = ops.icmp(P::ult, ops.add(firstRow, row), limit);
      Value srcRow =
          ops.add(srcRowBase, ops.select(ok, ops.add(firstRow, row), ops.c(0)));
      Value srcCol = ops.add(col0, col);
      Value count = ops.select(ok, ops.c(8), ops.c(0));
      tokens.push_back(
          asyncCopy16(b, loc, dst, {row, col}, src, {srcRow, srcCol}, count));
    }
    return commitAsyncCopies(b, loc, tokens);
  };
  auto waitGroups = [&](Value token, int32_t pending) {
    nvgpu::DeviceAsyncWaitOp::create(b, loc, token,
                                     b.getI32IntegerAttr(pending));
  };
  // Key rows from keysEnd on (masked for every query of the tile) are
  // zero-filled, not read: the block after the last reads nothing.
  Value keyLimit = arith::MinUIOp::create(b, loc, keysEnd, S);
  auto copyKeys = [&](Value block) {
    return copyTile(sK, keys, ops.mul(block, ops.c(BN)), keyLimit, cacheBase,
                    kCol0, HD);
  };
  auto copyValues = [&](Value block) {
    return copyTile(sV, values, ops.mul(block, ops.c(BN)), keyLimit, cacheBase,
                    vCol0, VD);
  };

  auto fragType = VectorType::get({4, 2}, bf16);
  auto v2bf16 = VectorType::get({2}, bf16);

  // The query tile, through sK: each warp keeps its 16 rows as A fragments
  // (HD / 16 of 4 registers).
  Value qGroup = copyTile(sK, q, t0, T, qBase, qCol0, HD);
  waitGroups(qGroup, 0);
  gpu::BarrierOp::create(b, loc);
  Value warpRow0 = ops.mul(warp, ops.c(16));
  SmallVector<SmallVector<Value, 4>> qFrag =
      am.rowFragments(ops, fragType, sK, lane, warpRow0, HD);
  gpu::BarrierOp::create(b, loc);
  copyKeys(ops.c(0));
  copyValues(ops.c(0));

  // This thread's rows (g and g + 8 of the warp's 16), as positions.
  Value rowA = ops.add(t0, ops.add(warpRow0, g));
  Value rowB = ops.add(rowA, ops.c(8));
  Value lastKeyA = ops.add(pos, rowA), lastKeyB = ops.add(pos, rowB);

  const int64_t NT = BN / 8; // n8 tiles of scores per key block
  const int64_t OT = VD / 8; // n8 tiles of the output
  Value ninf = constF32(b, loc, -std::numeric_limits<float>::infinity());
  Value zero = constF32(b, loc, 0.0f);
  Value scale = constF32(b, loc, o.scale);
  // (The sums l are this thread's partial ones.)
  SoftmaxCarry sums = buildSoftmaxLoop(
      b, loc, blocks, OT * 4, ninf, zero,
      [&](Value kb, const SoftmaxCarry &carried) {
        SmallVector<Value> acc = carried.acc;
        const Value *mOld = carried.m, *lOld = carried.l;
        // (After the last block: zero-byte copies, which read nothing.)
        Value next = ops.add(kb, ops.c(1));

        // This block's keys are in (its values may still be in flight).
        waitGroups(qGroup, 1);
        gpu::BarrierOp::create(b, loc);
        SmallVector<Value> s(NT * 4, zero);
        for (int64_t ks = 0; ks < HD / 16; ++ks)
          for (int64_t np = 0; np < NT; np += 2)
            am.scoreStep(ops, fragType, sK, lane, ops.c(np * 8), ks, qFrag[ks],
                         MutableArrayRef<Value>(s).slice(np * 4, 8));
        // Every warp is done with sK: the next block's keys may come in.
        gpu::BarrierOp::create(b, loc);
        copyKeys(next);

        // Scale, mask, online softmax. s[ni*4 + c]: row g + 8 (c / 2), key
        // kb*BN + ni*8 + tg2 + c % 2.
        Value key0 = ops.add(ops.mul(kb, ops.c(BN)), tg2);
        Value mNew[2], alpha[2];
        for (int64_t r = 0; r < 2; ++r) {
          Value last = r ? lastKeyB : lastKeyA;
          Value mx = ninf;
          for (int64_t ni = 0; ni < NT; ++ni)
            for (int64_t c = 0; c < 2; ++c) {
              Value &v = s[ni * 4 + r * 2 + c];
              Value key = ops.add(key0, ops.c(ni * 8 + c));
              v = ops.select(ops.icmp(P::ule, key, last), am.fmul(v, scale),
                             ninf);
              mx = am.fmax(mx, v);
            }
          mNew[r] = am.fmax(mOld[r], am.quad(mx, /*max=*/true));
          alpha[r] = am.exp(am.fsub(mOld[r], mNew[r]));
        }
        Value lNew[2] = {am.fmul(lOld[0], alpha[0]),
                         am.fmul(lOld[1], alpha[1])};
        for (int64_t ni = 0; ni < NT; ++ni)
          for (int64_t c = 0; c < 4; ++c) {
            Value &v = s[ni * 4 + c];
            v = am.exp(am.fsub(v, mNew[c / 2]));
            lNew[c / 2] = am.fadd(lNew[c / 2], v);
          }
        for (int64_t ot = 0; ot < OT; ++ot)
          for (int64_t c = 0; c < 4; ++c)
            acc[ot * 4 + c] = am.fmul(acc[ot * 4 + c], alpha[c / 2]);

        // This block's values are in (the next keys may still be in flight).
        waitGroups(qGroup, 1);
        gpu::BarrierOp::create(b, loc);
        for (int64_t kc = 0; kc < BN / 16; ++kc) {
          // P's 16 keys kc*16 .. +15 as an A fragment: score tiles 2kc, 2kc+1.
          const Value *t = &s[2 * kc * 4];
          SmallVector<Value, 4> a{am.pack(t[0], t[1]), am.pack(t[2], t[3]),
                                  am.pack(t[4], t[5]), am.pack(t[6], t[7])};
          am.valueStep(ops, fragType, sV, lane, ops.c(kc * 16), OT, a, acc);
        }
        gpu::BarrierOp::create(b, loc);
        copyValues(next);
        return SoftmaxCarry(acc, mNew, lNew);
      });
  // Nothing may be in flight into shared memory when the block exits.
  waitGroups(qGroup, 0);

  // O / l, rounded, rows below T only (the quad sums before the branch:
  // every lane of the warp takes part in a shuffle).
  Value lSum[2] = {am.quad(sums.l[0], /*max=*/false),
                   am.quad(sums.l[1], /*max=*/false)};
  for (int64_t r = 0; r < 2; ++r) {
    Value row = r ? rowB : rowA;
    auto inRows = scf::IfOp::create(b, loc, ops.icmp(P::ult, row, T), false);
    OpBuilder::InsertionGuard eg(b);
    b.setInsertionPointToStart(&inRows.getThenRegion().front());
    Value inv = arith::DivFOp::create(b, loc, constF32(b, loc, 1.0f), lSum[r]);
    Value outRow = ops.add(qBase, row);
    for (int64_t ot = 0; ot < OT; ++ot) {
      Value pair = vector::FromElementsOp::create(
          b, loc, v2bf16,
          ValueRange{
              fromF32(b, loc, am.fmul(sums.acc[ot * 4 + 2 * r], inv), bf16),
              fromF32(b, loc, am.fmul(sums.acc[ot * 4 + 2 * r + 1], inv),
                      bf16)});
      vector::StoreOp::create(
          b, loc, pair, out,
          ValueRange{outRow, ops.add(oCol0, ops.add(ops.c(ot * 8), tg2))},
          false, llvm::MaybeAlign(4));
    }
  }
  b.setInsertionPointToEnd(&entry);
  gpu::ReturnOp::create(b, loc);
  return fn;
}

std::string mlir::moe::whyNotAttentionMma(const AttentionKernelOptions &o) {
  if (o.headDim % 16 != 0 || o.valueDim % 16 != 0)
    return "head sizes not multiples of 16";
  if (attentionMmaSharedBytes(o) > kAttentionMmaSharedLimit)
    return "a key and a value tile of " + std::to_string(kFlashKeys) +
           " rows do not fit " + std::to_string(kAttentionMmaSharedLimit) +
           " bytes of shared memory";
  if (o.heads < 1 || o.heads > kAttentionMmaRows || o.group % o.heads)
    return "heads a block must divide the group, up to " +
           std::to_string(kAttentionMmaRows);
  // (The warps' output rows take over the key and value tiles.)
  if (kFlashWarps * o.heads * o.valueDim * 4 >
      kFlashKeys * (o.headDim + o.valueDim + 16) * 2)
    return "the warps' output rows do not fit the key and value tiles";
  return "";
}

int64_t mlir::moe::attentionMmaSharedBytes(const AttentionKernelOptions &o) {
  // Key and value tiles of kFlashKeys padded rows (bf16), then the warps'
  // row maxima and sums (f32).
  return kFlashKeys * (o.headDim + 8) * 2 + kFlashKeys * (o.valueDim + 8) * 2 +
         2 * kFlashWarps * kAttentionMmaRows * 4;
}

gpu::GPUFuncOp
mlir::moe::buildAttentionMmaKernel(OpBuilder &b, Location loc,
                                   gpu::GPUModuleOp module, StringRef name,
                                   const AttentionKernelOptions &o) {
  assert(whyNotAttentionMma(o).empty() && "unsupported decoding attention");
  OpBuilder::InsertionGuard guard(b);
  MLIRContext *ctx = b.getContext();
  const int64_t dyn = ShapedType::kDynamic;
  Type i32 = b.getI32Type(), bf16 = b.getBF16Type(), f32 = b.getF32Type(),
       index = b.getIndexType();
  auto mat = MemRefType::get({dyn, dyn}, bf16);
  SmallVector<Type> args{mat,   mat,  mat, mat, MemRefType::get({dyn}, i32),
                         index, index};
  if (o.partials)
    args.push_back(MemRefType::get({dyn}, f32));
  const int64_t W = kFlashWarps, NT = 32 * W, BN = kFlashKeys;
  auto fn = createKernelFunc(b, loc, module, name, args, NT);
  const int64_t HD = o.headDim, VD = o.valueDim, G = o.heads,
                S = std::max<int64_t>(o.split, 1), R = kAttentionMmaRows;
  // One buffer for the key and value tiles, which the warps' output rows
  // (f32) take over once the keys are done.
  auto wg = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  const int64_t kBytes = BN * (HD + 8) * 2, vBytes = BN * (VD + 8) * 2;
  Value raw = fn.addWorkgroupAttribution(
      MemRefType::get({kBytes + vBytes}, b.getI8Type(),
                      MemRefLayoutAttrInterface(), wg),
      loc);
  fn.setWorkgroupAttributionAttr(fn.getNumWorkgroupAttributions() - 1,
                                 LLVM::LLVMDialect::getAlignAttrName(),
                                 b.getI64IntegerAttr(16));
  Value stats = fn.addWorkgroupAttribution(
      MemRefType::get({2 * W * R}, f32, MemRefLayoutAttrInterface(), wg), loc);
  Block &entry = fn.getBody().front();
  b.setInsertionPointToStart(&entry);
  IndexOps ops{b, loc};
  AttentionMath am{b, loc};
  auto view = [&](ArrayRef<int64_t> shape, Type t, int64_t offset) -> Value {
    return memref::ViewOp::create(
        b, loc, MemRefType::get(shape, t, MemRefLayoutAttrInterface(), wg), raw,
        ops.c(offset), ValueRange{});
  };
  Value sK = view({BN, HD + 8}, bf16, 0), sV = view({BN, VD + 8}, bf16, kBytes),
        sO = view({W * G * VD}, f32, 0);
  Value q = entry.getArgument(0), keys = entry.getArgument(1),
        values = entry.getArgument(2), out = entry.getArgument(3),
        positions = entry.getArgument(4), tokens = entry.getArgument(5),
        cacheRows = entry.getArgument(6),
        work = o.partials ? entry.getArgument(7) : Value();

  using P = arith::CmpIPredicate;
  auto fragType = VectorType::get({4, 2}, bf16);
  auto v8bf16 = VectorType::get({8}, bf16);

  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value warp = ops.divu(tid, 32), lane = ops.remu(tid, 32);
  Value g4 = ops.divu(lane, 4), tg2 = ops.mul(ops.remu(lane, 4), ops.c(2));
  // Blocks take items (G query heads of one kv head at one query row of
  // one sequence) in turn; block `rank` of an item's S the rank-th run of
  // its keys.
  AttentionItem it = attentionItemLoop(b, loc, out, positions, tokens,
                                       cacheRows, VD, G, S, o.group);
  Value item = it.item, rank = it.rank;
  Value h0 = it.h0, qRow = it.qRow, n = it.n, cacheBase = it.cacheBase,
        keyBase = it.keyBase, kvHead = it.kvHead;
  Value kCol0 = ops.mul(kvHead, ops.c(HD)), vCol0 = ops.mul(kvHead, ops.c(VD));
  Value tiles = ops.divu(ops.add(n, ops.c(BN - 1)), BN);

  // The G queries as rows 0 .. G - 1 of a 16-row A operand (rows past G
  // zero), through the key tile; every warp keeps all of them.
  scf::ForOp qLoop =
      scf::ForOp::create(b, loc, tid, ops.c(R * HD / 8), ops.c(NT));
  {
    OpBuilder::InsertionGuard lg(b);
    b.setInsertionPointToStart(qLoop.getBody());
    Value v = qLoop.getInductionVar();
    Value r = ops.divu(v, HD / 8), c = ops.mul(ops.remu(v, HD / 8), ops.c(8));
    auto ifOp = scf::IfOp::create(b, loc, TypeRange{v8bf16},
                                  ops.icmp(P::ult, r, ops.c(G)), true);
    {
      OpBuilder::InsertionGuard ig(b);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
      Value col = ops.add(ops.mul(ops.add(h0, r), ops.c(HD)), c);
      scf::YieldOp::create(b, loc,
                           ValueRange{vector::LoadOp::create(
                               b, loc, v8bf16, q, ValueRange{qRow, col}, false,
                               llvm::MaybeAlign(16))});
      b.setInsertionPointToStart(&ifOp.getElseRegion().front());
      scf::YieldOp::create(
          b, loc,
          ValueRange{arith::ConstantOp::create(
              b, loc, DenseElementsAttr::get(v8bf16, b.getZeroAttr(bf16)))});
    }
    vector::StoreOp::create(b, loc, ifOp.getResult(0), sK, ValueRange{r, c});
  }
  gpu::BarrierOp::create(b, loc);
  SmallVector<SmallVector<Value, 4>> qFrag =
      am.rowFragments(ops, fragType, sK, lane, /*row0=*/nullptr, HD);
  gpu::BarrierOp::create(b, loc);

  // Tiles of BN keys in shared memory (cp.async, zero-filled past the
  // block's keys); warp w takes keys 16 w .. 16 w + 15 of each.
  auto copyTile = [&](Value dst, Value src, Value tile, Value col0,
                      int64_t width) {
    const int64_t chunksPerRow = width / 8;
    Value firstRow = ops.mul(tile, ops.c(BN));
    SmallVector<Value> tokensOut;
    for (int64_t c = 0; c < BN * chunksPerRow / NT; ++c) {
      Value v = ops.add(tid, ops.c(c * NT));
      Value row = ops.divu(v, chunksPerRow);
      Value col = ops.mul(ops.remu(v, chunksPerRow), ops.c(8));
      Value ok = ops.icmp(P::ult, ops.add(firstRow, row), n);
      // (Rows past the block's keys read nothing, from the sequence's
      // first cache row: lo may lie past its cache.)
      Value srcRow =
          ops.select(ok, ops.add(keyBase, ops.add(firstRow, row)), cacheBase);
      tokensOut.push_back(asyncCopy16(b, loc, dst, {row, col}, src,
                                      {srcRow, ops.add(col0, col)},
                                      ops.select(ok, ops.c(8), ops.c(0))));
    }
    return commitAsyncCopies(b, loc, tokensOut);
  };
  auto waitGroups = [&](Value token, int32_t pending) {
    nvgpu::DeviceAsyncWaitOp::create(b, loc, token,
                                     b.getI32IntegerAttr(pending));
  };
  Value group = copyTile(sK, keys, ops.c(0), kCol0, HD);
  copyTile(sV, values, ops.c(0), vCol0, VD);

  const int64_t OT = VD / 8;
  // (A finite start: a warp whose keys are all masked keeps weight 0.)
  Value none = constF32(b, loc, -1e30f);
  Value ninf = constF32(b, loc, -std::numeric_limits<float>::infinity());
  Value zero = constF32(b, loc, 0.0f);
  Value scale = constF32(b, loc, o.scale);
  Value warpKey0 = ops.mul(warp, ops.c(16));
  SoftmaxCarry sums = buildSoftmaxLoop(
      b, loc, tiles, OT * 4, none, zero,
      [&](Value kb, const SoftmaxCarry &carried) {
        SmallVector<Value> acc = carried.acc;
        const Value *mOld = carried.m, *lOld = carried.l;
        // (After the last tile: zero-byte copies, which read nothing.)
        Value next = ops.add(kb, ops.c(1));
        waitGroups(group, 1);
        gpu::BarrierOp::create(b, loc);
        // S = Q K^T over this warp's 16 keys: two n8 tiles.
        SmallVector<Value> s(8, zero);
        for (int64_t ks = 0; ks < HD / 16; ++ks)
          am.scoreStep(ops, fragType, sK, lane, warpKey0, ks, qFrag[ks], s);
        gpu::BarrierOp::create(b, loc);
        copyTile(sK, keys, next, kCol0, HD);

        // Scale, mask (keys of the block from n on), online softmax: s[ni*4 +
        // c] is row g4 + 8 (c / 2), key kb*BN + 16 warp + ni*8 + tg2 + c % 2.
        Value key0 = ops.add(ops.mul(kb, ops.c(BN)), ops.add(warpKey0, tg2));
        Value mNew[2], alpha[2];
        for (int64_t r = 0; r < 2; ++r) {
          Value mx = ninf;
          for (int64_t ni = 0; ni < 2; ++ni)
            for (int64_t c = 0; c < 2; ++c) {
              Value &v = s[ni * 4 + r * 2 + c];
              Value key = ops.add(key0, ops.c(ni * 8 + c));
              v = ops.select(ops.icmp(P::ult, key, n), am.fmul(v, scale), ninf);
              mx = am.fmax(mx, v);
            }
          mNew[r] = am.fmax(mOld[r], am.quad(mx, /*max=*/true));
          alpha[r] = am.exp(am.fsub(mOld[r], mNew[r]));
        }
        Value lNew[2] = {am.fmul(lOld[0], alpha[0]),
                         am.fmul(lOld[1], alpha[1])};
        for (int64_t c = 0; c < 8; ++c) {
          Value &v = s[c];
          v = am.exp(am.fsub(v, mNew[(c % 4) / 2]));
          lNew[(c % 4) / 2] = am.fadd(lNew[(c % 4) / 2], v);
        }
        for (int64_t ot = 0; ot < OT; ++ot)
          for (int64_t c = 0; c < 4; ++c)
            acc[ot * 4 + c] = am.fmul(acc[ot * 4 + c], alpha[c / 2]);

        waitGroups(group, 1);
        gpu::BarrierOp::create(b, loc);
        // O += P V: P's 16 keys as one A fragment, V's with ldmatrix.trans.
        SmallVector<Value, 4> a{am.pack(s[0], s[1]), am.pack(s[2], s[3]),
                                am.pack(s[4], s[5]), am.pack(s[6], s[7])};
        am.valueStep(ops, fragType, sV, lane, warpKey0, OT, a, acc);
        gpu::BarrierOp::create(b, loc);
        copyTile(sV, values, next, vCol0, VD);
        return SoftmaxCarry(acc, mNew, lNew);
      });
  waitGroups(group, 0);
  gpu::BarrierOp::create(b, loc);

  // The warps' rows meet: each warp's maximum and sum a row into `stats`,
  // its output rows (rescaled to the block's maximum) into sO[warp, row].
  Value lSum[2] = {am.quad(sums.l[0], /*max=*/false),
                   am.quad(sums.l[1], /*max=*/false)};
  for (int64_t r = 0; r < 2; ++r) {
    Value row = ops.add(g4, ops.c(8 * r));
    buildIfThen(b, loc, ops.icmp(P::eq, ops.remu(lane, 4), ops.c(0)), [&] {
      Value at = ops.add(ops.mul(warp, ops.c(R)), row);
      memref::StoreOp::create(b, loc, sums.m[r], stats, ValueRange{at});
      memref::StoreOp::create(b, loc, lSum[r], stats,
                              ValueRange{ops.add(at, ops.c(W * R))});
    });
  }
  gpu::BarrierOp::create(b, loc);
  auto statAt = [&](int64_t w, Value row, bool sum) -> Value {
    return memref::LoadOp::create(
        b, loc, stats,
        ValueRange{ops.add(ops.c((sum ? W * R : 0) + w * R), row)});
  };
  auto rowMax = [&](Value row) {
    Value m = statAt(0, row, false);
    for (int64_t w = 1; w < W; ++w)
      m = am.fmax(m, statAt(w, row, false));
    return m;
  };
  for (int64_t r = 0; r < 2; ++r) {
    if (8 * r >= G)
      continue;
    Value row = ops.add(g4, ops.c(8 * r));
    buildIfThen(b, loc, ops.icmp(P::ult, row, ops.c(G)), [&] {
      Value m = sums.m[r];
      Value wgt = am.exp(am.fsub(m, rowMax(row)));
      for (int64_t ot = 0; ot < OT; ++ot)
        for (int64_t c = 0; c < 2; ++c) {
          Value e =
              ops.add(ops.mul(ops.add(ops.mul(warp, ops.c(G)), row), ops.c(VD)),
                      ops.add(ops.c(ot * 8 + c), tg2));
          memref::StoreOp::create(b, loc,
                                  am.fmul(sums.acc[ot * 4 + 2 * r + c], wgt),
                                  sO, ValueRange{e});
        }
    });
  }
  gpu::BarrierOp::create(b, loc);
  // A thread per (row, column): the warps' sums; the block's entry of
  // `work` (sums relative to its maximum, the maximum, the sum of
  // exponentials), or the output row.
  Value entryBase = o.partials ? ops.mul(ops.add(ops.mul(item, ops.c(S)), rank),
                                         ops.c(attentionPartialFloats(o)))
                               : Value();
  scf::ForOp outLoop =
      scf::ForOp::create(b, loc, tid, ops.c(G * VD), ops.c(NT));
  {
    OpBuilder::InsertionGuard lg(b);
    b.setInsertionPointToStart(outLoop.getBody());
    Value e = outLoop.getInductionVar();
    Value row = ops.divu(e, VD), col = ops.remu(e, VD);
    Value M = rowMax(row);
    Value sumO = zero, sumL = zero;
    for (int64_t w = 0; w < W; ++w) {
      sumO = am.fadd(
          sumO, memref::LoadOp::create(
                    b, loc, sO, ValueRange{ops.add(ops.c(w * G * VD), e)}));
      sumL = am.fadd(sumL, am.fmul(am.exp(am.fsub(statAt(w, row, false), M)),
                                   statAt(w, row, true)));
    }
    if (o.partials) {
      memref::StoreOp::create(b, loc, sumO, work,
                              ValueRange{ops.add(entryBase, e)});
      buildIfThen(b, loc, ops.icmp(P::eq, col, ops.c(0)), [&] {
        memref::StoreOp::create(
            b, loc, M, work,
            ValueRange{ops.add(entryBase, ops.add(ops.c(G * VD), row))});
        memref::StoreOp::create(
            b, loc, sumL, work,
            ValueRange{ops.add(entryBase, ops.add(ops.c(G * VD + G), row))});
      });
    } else {
      memref::StoreOp::create(
          b, loc,
          fromF32(b, loc, arith::DivFOp::create(b, loc, sumO, sumL), bf16), out,
          ValueRange{qRow, ops.add(ops.mul(h0, ops.c(VD)), e)});
    }
  }
  // sO is the next item's key tile.
  gpu::BarrierOp::create(b, loc);
  b.setInsertionPointAfter(it.item.getParentBlock()->getParentOp());
  gpu::ReturnOp::create(b, loc);
  return fn;
}
