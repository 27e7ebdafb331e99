//===- MmaKernel.cpp - Grouped expert GEMM on tensor cores ------------------===//
//
// Part of moe-compiler.
//
// The tensor-core path of the expert FFN, for steps where experts have many
// rows. Each block (8 warps) computes a kMmaTileM-row tile of one expert's
// rows (a tile of the table the routing kernel writes) against kMmaTileN
// weight columns (half each of W_up and W_gate for the gated up projection)
// with warp-level mma.sync m16n8k16: bf16 in, f32 accumulate. Warps form a
// 2 x 4 grid; each owns 64 rows x 32 (or 2 x 16) columns, 4 x 4 mma tiles.
//
// Per K step of kMmaTileK, the A rows (gathered by token with `gatherRows`,
// zero-filled past the expert's rows) and the B rows go global -> shared
// with cp.async (16 bytes, L1 bypassed) into one of two stages, so the next
// step's copies are in flight while the current step computes; fragments
// come from shared memory with ldmatrix (x4; B transposed), rows padded by
// 16 bytes so the eight rows of each 8x8 matrix hit distinct banks. The
// nvgpu dialect provides cp.async and ldmatrix; mma.sync is nvvm's, since
// nvgpu.mma.sync does not take bf16 in MLIR 22.
//
// Epilogues:
//  - pair (up and gate in one block): a = bf16(act(x W_gate) * (x W_up));
//  - plain: a = bf16(act(x W_up));
//  - scatter (down): y[rowToken[r]] += rowWeight[r] * (a W_down), f32
//    atomics: the combine step;
//  - weighted (down): o[r] = bf16(rowWeight[r] * (a W_down)), plain stores
//    by row; the combine kernel sums each token's k rows.
//
//===----------------------------------------------------------------------===//

#include "moe/Target/CUDA/ExpertKernels.h"
#include "moe/Dialect/MoE/Utils/TensorBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;

void mlir::moe::buildIfThen(OpBuilder &b, Location loc, Value cond,
                            function_ref<void()> body) {
  auto op = scf::IfOp::create(b, loc, cond, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(&op.getThenRegion().front());
  body();
}

Value mlir::moe::sumOverLanes(OpBuilder &b, Location loc, Value v,
                              int64_t from) {
  for (int64_t s = from; s < 32; s *= 2)
    v = arith::AddFOp::create(
        b, loc, v,
        gpu::ShuffleOp::create(b, loc, v, s, 32, gpu::ShuffleMode::XOR)
            .getShuffleResult());
  return v;
}

void mlir::moe::storeWarpSums(OpBuilder &b, Location loc, Value acc,
                              int64_t groups, Value lane, Value warp,
                              Value red, ValueRange prefix, Value col) {
  IndexOps ix{b, loc};
  Value first = ix.icmp(arith::CmpIPredicate::ult, lane, ix.c(groups));
  int64_t n = cast<VectorType>(acc.getType()).getDimSize(0);
  for (int64_t c = 0; c < n; ++c) {
    Value v = sumOverLanes(b, loc, vector::ExtractOp::create(b, loc, acc, c),
                           groups);
    buildIfThen(b, loc, first, [&] {
      SmallVector<Value> at{warp};
      llvm::append_range(at, prefix);
      at.push_back(ix.add(col, ix.c(c)));
      memref::StoreOp::create(b, loc, v, red, at);
    });
  }
}

Value mlir::moe::sumOverWarps(OpBuilder &b, Location loc, Value red,
                              int64_t warps, ValueRange rest) {
  Value sum;
  for (int64_t w = 0; w < warps; ++w) {
    SmallVector<Value> at{constIndex(b, loc, w)};
    llvm::append_range(at, rest);
    Value v = memref::LoadOp::create(b, loc, red, at);
    sum = sum ? arith::AddFOp::create(b, loc, sum, v).getResult() : v;
  }
  return sum;
}

Value IndexOps::c(int64_t v) const { return constIndex(b, loc, v); }
Value IndexOps::add(Value l, Value r) const {
  return arith::AddIOp::create(b, loc, l, r);
}
Value IndexOps::mul(Value l, Value r) const {
  return arith::MulIOp::create(b, loc, l, r);
}
Value IndexOps::divu(Value l, int64_t r) const {
  return arith::DivUIOp::create(b, loc, l, c(r));
}
Value IndexOps::remu(Value l, int64_t r) const {
  return arith::RemUIOp::create(b, loc, l, c(r));
}
Value IndexOps::icmp(arith::CmpIPredicate p, Value l, Value r) const {
  return arith::CmpIOp::create(b, loc, p, l, r);
}
Value IndexOps::select(Value cond, Value t, Value f) const {
  return arith::SelectOp::create(b, loc, cond, t, f);
}

void mlir::moe::mmaSyncBf16(OpBuilder &b, Location loc, ArrayRef<Value> a,
                            ArrayRef<Value> bReg, MutableArrayRef<Value> c) {
  Type f32 = b.getF32Type();
  auto resultType =
      LLVM::LLVMStructType::getLiteral(b.getContext(), {f32, f32, f32, f32});
  std::array<NVVM::MMATypes, 2> ptxTypes{NVVM::MMATypes::bf16,
                                         NVVM::MMATypes::bf16};
  std::array<NVVM::MMALayout, 2> layouts{NVVM::MMALayout::row,
                                         NVVM::MMALayout::col};
  Value d = NVVM::MmaOp::create(b, loc, resultType, a, bReg, c,
                                ArrayRef<int64_t>{16, 8, 16}, std::nullopt,
                                std::nullopt, ptxTypes, layouts);
  for (int64_t i = 0; i < 4; ++i)
    c[i] = LLVM::ExtractValueOp::create(b, loc, d, i);
}

Value mlir::moe::fragmentRegister(OpBuilder &b, Location loc, Value fragment,
                                  int64_t i) {
  Value v = vector::ExtractOp::create(b, loc, fragment, i);
  return vector::ExtractOp::create(
      b, loc,
      vector::BitCastOp::create(b, loc, VectorType::get({1}, b.getI32Type()),
                                v),
      0);
}

Value mlir::moe::asyncCopy16(OpBuilder &b, Location loc, Value dst,
                             ValueRange dstIndices, Value src,
                             ValueRange srcIndices, Value count) {
  return nvgpu::DeviceAsyncCopyOp::create(
      b, loc, nvgpu::DeviceAsyncTokenType::get(b.getContext()), dst,
      dstIndices, src, srcIndices, b.getIndexAttr(8), count, b.getUnitAttr());
}

Value mlir::moe::commitAsyncCopies(OpBuilder &b, Location loc,
                                   ValueRange tokens) {
  return nvgpu::DeviceAsyncCreateGroupOp::create(
      b, loc, nvgpu::DeviceAsyncTokenType::get(b.getContext()), tokens);
}

Value mlir::moe::globalPointer(OpBuilder &b, Location loc, Value addr) {
  MLIRContext *ctx = b.getContext();
  Value generic = LLVM::IntToPtrOp::create(
      b, loc, LLVM::LLVMPointerType::get(ctx),
      arith::IndexCastUIOp::create(b, loc, b.getI64Type(), addr).getResult());
  return LLVM::AddrSpaceCastOp::create(
      b, loc, LLVM::LLVMPointerType::get(ctx, 1), generic);
}

/// The global-memory pointer to m[indices] of an identity-layout memref.
static Value elementPointer(OpBuilder &b, Location loc, Value m,
                            ValueRange indices) {
  auto memType = cast<MemRefType>(m.getType());
  assert(memType.getLayout().isIdentity() && "identity layout");
  Value linear = indices.front();
  for (unsigned i = 1; i < indices.size(); ++i)
    linear = arith::AddIOp::create(
        b, loc,
        arith::MulIOp::create(b, loc, linear,
                              memref::DimOp::create(b, loc, m, i)),
        indices[i]);
  int64_t eltBytes = memType.getElementTypeBitWidth() / 8;
  return globalPointer(
      b, loc,
      arith::AddIOp::create(
          b, loc, memref::ExtractAlignedPointerAsIndexOp::create(b, loc, m),
          arith::MulIOp::create(b, loc, linear,
                                constIndex(b, loc, eltBytes))));
}

/// Inline PTX with side effects (neither LLVM nor ptxas moves it past other
/// side effects); its one result, if `result` is set.
static Value inlinePtx(OpBuilder &b, Location loc, Type result,
                       ValueRange operands, StringRef text,
                       StringRef constraints) {
  auto op = LLVM::InlineAsmOp::create(
      b, loc, result ? TypeRange(result) : TypeRange(), operands, text,
      constraints, /*has_side_effects=*/true, /*is_align_stack=*/false,
      LLVM::tailcallkind::TailCallKind::None, LLVM::AsmDialectAttr(),
      ArrayAttr());
  return result ? op.getResult(0) : Value();
}

Value mlir::moe::loadVector16Here(OpBuilder &b, Location loc, VectorType type,
                                  Value m, ValueRange indices) {
  Value pointer = elementPointer(b, loc, m, indices);
  Type i32 = b.getI32Type();
  auto words =
      LLVM::LLVMStructType::getLiteral(b.getContext(), {i32, i32, i32, i32});
  Value loaded = inlinePtx(b, loc, words, pointer,
                           "ld.global.v4.b32 {$0, $1, $2, $3}, [$4];",
                           "=r,=r,=r,=r,l");
  SmallVector<Value> parts;
  for (int64_t i = 0; i < 4; ++i)
    parts.push_back(LLVM::ExtractValueOp::create(b, loc, loaded, i));
  Value vec =
      vector::FromElementsOp::create(b, loc, VectorType::get({4}, i32), parts);
  return vector::BitCastOp::create(b, loc, type, vec);
}

Value mlir::moe::loadI32FromL2(OpBuilder &b, Location loc, Value in, Value i) {
  return loadFromL2(b, loc, in, i);
}

Value mlir::moe::loadF32FromL2(OpBuilder &b, Location loc, Value in, Value row,
                               Value col) {
  return loadFromL2(b, loc, in, ValueRange{row, col});
}

Value mlir::moe::loadFromL2(OpBuilder &b, Location loc, Value m,
                            ValueRange indices) {
  Type elt = cast<MemRefType>(m.getType()).getElementType();
  assert((elt.isF32() || elt.isInteger(32)) && "a 32-bit element");
  Value p = elementPointer(b, loc, m, indices);
  if (elt.isF32())
    return inlinePtx(b, loc, elt, p, "ld.global.cg.f32 $0, [$1];", "=f,l");
  return inlinePtx(b, loc, elt, p, "ld.global.cg.b32 $0, [$1];", "=r,l");
}

Value mlir::moe::loadAcquire(OpBuilder &b, Location loc, Value m, Value i) {
  Type elt = cast<MemRefType>(m.getType()).getElementType();
  bool wide = elt.isInteger(64);
  assert((wide || elt.isInteger(32)) && "a 32- or 64-bit integer");
  return inlinePtx(b, loc, elt, elementPointer(b, loc, m, i),
                   wide ? "ld.acquire.gpu.global.b64 $0, [$1];"
                        : "ld.acquire.gpu.global.b32 $0, [$1];",
                   wide ? "=l,l" : "=r,l");
}

void mlir::moe::releaseAddI32(OpBuilder &b, Location loc, Value m, Value i,
                              Value v) {
  inlinePtx(b, loc, Type(), ValueRange{elementPointer(b, loc, m, i), v},
            "red.release.gpu.global.add.u32 [$0], $1;", "l,r");
}

void mlir::moe::storeReleaseI64(OpBuilder &b, Location loc, Value m, Value i,
                                Value v) {
  inlinePtx(b, loc, Type(), ValueRange{elementPointer(b, loc, m, i), v},
            "st.release.gpu.global.b64 [$0], $1;", "l,l");
}

Value mlir::moe::fetchAddI32(OpBuilder &b, Location loc, Value m, Value i,
                             Value v) {
  return inlinePtx(b, loc, b.getI32Type(),
                   ValueRange{elementPointer(b, loc, m, i), v},
                   "atom.global.add.u32 $0, [$1], $2;", "=r,l,r");
}

void mlir::moe::atomicAddF32Vector(OpBuilder &b, Location loc, Value out,
                                   Value row, Value col,
                                   ArrayRef<Value> vals, int64_t colOffset) {
  assert((vals.size() == 2 || vals.size() == 4) && "2 or 4 values");
  Value global = elementPointer(b, loc, out, ValueRange{row, col});
  std::string text = "red.global.add.v" + std::to_string(vals.size()) +
                     ".f32 [$0" +
                     (colOffset ? "+" + std::to_string(4 * colOffset) : "") +
                     "], {";
  std::string constraints = "l";
  for (size_t i = 0; i < vals.size(); ++i) {
    text += (i ? ", $" : "$") + std::to_string(i + 1);
    constraints += ",f";
  }
  text += "};";
  SmallVector<Value> operands{global};
  operands.append(vals.begin(), vals.end());
  inlinePtx(b, loc, Type(), operands, text, constraints);
}

SmallVector<Type> mlir::moe::groupedGemmArgTypes(OpBuilder &b,
                                                 const MmaOptions &o) {
  int64_t dyn = ShapedType::kDynamic;
  Type f32 = b.getF32Type(), bf16 = b.getBF16Type();
  auto mat = MemRefType::get({dyn, dyn}, bf16);
  auto w3 = MemRefType::get({dyn, dyn, dyn}, bf16);
  auto vecI32 = MemRefType::get({dyn}, b.getI32Type());
  bool f32Out = o.scatter || o.dense;
  SmallVector<Type> types{mat, w3,
                          f32Out ? MemRefType::get({dyn, dyn}, f32) : mat};
  if (!o.dense)
    types.append({vecI32, vecI32, vecI32, vecI32});
  if (o.scatter || o.weighted)
    types.push_back(MemRefType::get({dyn}, f32));
  if (o.pair)
    types.push_back(w3);
  if (o.tmaWeights)
    types.append(o.pair ? 2 : 1, b.getI64Type());
  if (o.queue)
    types.push_back(vecI32);
  return types;
}

GroupedGemmArgs mlir::moe::groupedGemmArgs(Block &entry, const MmaOptions &o) {
  GroupedGemmArgs a;
  a.x = entry.getArgument(0);
  a.w.push_back(entry.getArgument(1));
  a.out = entry.getArgument(2);
  unsigned next = 3;
  if (!o.dense) {
    a.tileExpert = entry.getArgument(next++);
    a.tileRow = entry.getArgument(next++);
    a.offsets = entry.getArgument(next++);
    a.rowToken = entry.getArgument(next++);
  }
  if (o.scatter || o.weighted)
    a.rowWeight = entry.getArgument(next++);
  if (o.pair)
    a.w.push_back(entry.getArgument(next++));
  for (size_t m = 0; o.tmaWeights && m < a.w.size(); ++m)
    a.wMaps.push_back(entry.getArgument(next++));
  if (o.queue)
    a.queue = entry.getArgument(next++);
  return a;
}

TileRows mlir::moe::groupedGemmTileRows(OpBuilder &b, Location loc,
                                        const MmaOptions &o,
                                        const GroupedGemmArgs &args,
                                        Value tile, int64_t tileM) {
  IndexOps ops{b, loc};
  TileRows t;
  auto toIndex = [&](Value v) -> Value {
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
  };
  if (o.dense) {
    // One matrix, all rows of x: tile t is rows t * tileM ...
    t.expert = ops.c(0);
    t.begin = ops.mul(tile, ops.c(tileM));
    t.end = arith::MinUIOp::create(b, loc, ops.add(t.begin, ops.c(tileM)),
                                   memref::DimOp::create(b, loc, args.x, 0));
    return t;
  }
  Value rawE = memref::LoadOp::create(b, loc, args.tileExpert, tile);
  auto ifLive = scf::IfOp::create(
      b, loc, ops.icmp(arith::CmpIPredicate::sge, rawE, constI32(b, loc, 0)),
      false);
  b.setInsertionPointToStart(&ifLive.getThenRegion().front());
  t.expert = toIndex(rawE);
  t.begin = toIndex(memref::LoadOp::create(b, loc, args.tileRow, tile));
  t.end = arith::MinUIOp::create(
      b, loc, ops.add(t.begin, ops.c(tileM)),
      toIndex(memref::LoadOp::create(b, loc, args.offsets,
                                     ops.add(t.expert, ops.c(1)))));
  return t;
}

CopySource mlir::moe::rowSource(OpBuilder &b, Location loc,
                                const MmaOptions &o,
                                const GroupedGemmArgs &args,
                                const TileRows &rows, Value row) {
  IndexOps ops{b, loc};
  Value slot = ops.add(rows.begin, row);
  Value ok = ops.icmp(arith::CmpIPredicate::ult, slot, rows.end);
  Value safe = ops.select(ok, slot, rows.begin);
  Value index =
      o.gatherRows
          ? arith::IndexCastOp::create(
                b, loc, b.getIndexType(),
                memref::LoadOp::create(b, loc, args.rowToken, safe))
                .getResult()
          : safe;
  return {index, ops.select(ok, ops.c(8), ops.c(0))};
}

CopySource mlir::moe::columnSource(OpBuilder &b, Location loc, Value col,
                                   Value n) {
  IndexOps ops{b, loc};
  Value ok = ops.icmp(arith::CmpIPredicate::ult, col, n);
  return {ops.select(ok, col, ops.c(0)), ops.select(ok, ops.c(8), ops.c(0))};
}

AccumulatorRow mlir::moe::loadAccumulatorRow(OpBuilder &b, Location loc,
                                             const MmaOptions &o,
                                             const GroupedGemmArgs &args,
                                             Value slot) {
  AccumulatorRow row{slot, Value(), Value()};
  if (o.scatter && !o.dense) {
    row.token = arith::IndexCastOp::create(
        b, loc, b.getIndexType(),
        memref::LoadOp::create(b, loc, args.rowToken, slot));
    row.scale = memref::LoadOp::create(b, loc, args.rowWeight, slot);
  }
  if (o.weighted)
    row.scale = memref::LoadOp::create(b, loc, args.rowWeight, slot);
  return row;
}

void mlir::moe::storeAccumulatorPair(OpBuilder &b, Location loc,
                                     const MmaOptions &o, Value out,
                                     const AccumulatorRow &row, Value col,
                                     Value N, ArrayRef<Value> h,
                                     ArrayRef<Value> gate, int64_t colOffset) {
  Type f32 = b.getF32Type();
  OpBuilder::InsertionGuard cg(b);
  Value base = col;
  if (colOffset)
    col = arith::AddIOp::create(
        b, loc, col, arith::ConstantIndexOp::create(b, loc, colOffset));
  if (N) {
    auto inCols = scf::IfOp::create(
        b, loc,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, col, N),
        false);
    b.setInsertionPointToStart(&inCols.getThenRegion().front());
  }
  if (o.dense && o.splitK) {
    atomicAddF32Vector(b, loc, out, row.slot, base, h, colOffset);
    return;
  }
  if (o.dense) {
    vector::StoreOp::create(
        b, loc,
        vector::FromElementsOp::create(b, loc, VectorType::get({2}, f32), h),
        out, ValueRange{row.slot, col}, false, llvm::MaybeAlign(8));
    return;
  }
  if (o.scatter) {
    atomicAddF32Vector(b, loc, out, row.token, base,
                       {arith::MulFOp::create(b, loc, h[0], row.scale),
                        arith::MulFOp::create(b, loc, h[1], row.scale)},
                       colOffset);
    return;
  }
  vector::StoreOp::create(b, loc, accumulatorPairBf16(b, loc, o, row, h, gate),
                          out, ValueRange{row.slot, col}, false,
                          llvm::MaybeAlign(4));
}

/// bf16(scale * h), bf16(act(gate) * h) or bf16(act(h)) of one column.
static Value accumulatorBf16(OpBuilder &b, Location loc, const MmaOptions &o,
                             const AccumulatorRow &row, Value h, Value gate) {
  assert(!o.dense && !o.scatter && "bf16 rows of an expert kernel");
  Value v = o.weighted ? arith::MulFOp::create(b, loc, h, row.scale)
            : o.pair   ? arith::MulFOp::create(
                             b, loc, gpuActivation(b, loc, o.activation, gate), h)
                     : gpuActivation(b, loc, o.activation, h);
  return fromF32(b, loc, v, b.getBF16Type());
}

Value mlir::moe::accumulatorPairBf16(OpBuilder &b, Location loc,
                                     const MmaOptions &o,
                                     const AccumulatorRow &row,
                                     ArrayRef<Value> h, ArrayRef<Value> gate) {
  SmallVector<Value, 2> vals;
  for (int64_t j = 0; j < 2; ++j)
    vals.push_back(
        accumulatorBf16(b, loc, o, row, h[j], o.pair ? gate[j] : Value()));
  return vector::FromElementsOp::create(
      b, loc, VectorType::get({2}, b.getBF16Type()), vals);
}

void mlir::moe::storeAccumulatorElement(OpBuilder &b, Location loc,
                                        const MmaOptions &o, Value out,
                                        const AccumulatorRow &row, Value col,
                                        Value h, Value gate) {
  assert(!o.dense && "an expert kernel's rows");
  if (o.scatter) {
    memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::addf,
                                arith::MulFOp::create(b, loc, h, row.scale),
                                out, ValueRange{row.token, col});
    return;
  }
  memref::StoreOp::create(b, loc, accumulatorBf16(b, loc, o, row, h, gate), out,
                          ValueRange{row.slot, col});
}

void mlir::moe::buildColumnChecked(OpBuilder &b, Location loc, Value whole,
                                   Value n,
                                   function_ref<void(Value)> stores) {
  auto ifOp = scf::IfOp::create(b, loc, whole, /*withElseRegion=*/true);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  stores(Value());
  b.setInsertionPointToStart(&ifOp.getElseRegion().front());
  stores(n);
}

KSteps mlir::moe::blockKSteps(OpBuilder &b, Location loc, const MmaOptions &o,
                              Value steps) {
  IndexOps ix{b, loc};
  if (!o.splitK)
    return {ix.c(0), steps};
  Value z = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  Value nz = gpu::GridDimOp::create(b, loc, gpu::Dimension::z);
  Value run = arith::CeilDivUIOp::create(b, loc, steps, nz);
  Value first = arith::MinUIOp::create(b, loc, ix.mul(z, run), steps);
  Value count = arith::MinUIOp::create(
      b, loc, run, arith::SubIOp::create(b, loc, steps, first));
  return {first, count};
}

int64_t mlir::moe::planSplitK(int64_t blocks, int64_t steps) {
  if (2 * blocks >= kPlanSms)
    return 1;
  int64_t want = (2 * kPlanSms + blocks - 1) / blocks;
  return std::max<int64_t>(1, std::min(want, steps / 2));
}

std::string mlir::moe::mmaKernelName(const MmaOptions &o) {
  std::string name =
      o.dense     ? "moe_mma_dense_f32"
      : o.scatter ? "moe_mma_scatter_bf16"
      : o.weighted ? "moe_mma_weighted_bf16"
                  : ("moe_mma_" + Twine(o.pair ? "pair_" : "plain_") +
                     stringifyActivation(o.activation) + "_bf16")
                        .str();
  return name + "_m" + std::to_string(o.tileM) + "_s" +
         std::to_string(o.stages) + (o.warps == 8 ? "" : "_w4") +
         (o.splitK ? "_splitk" : "");
}

int64_t mlir::moe::mmaColumnsPerMatrix(const MmaOptions &o) {
  return o.pair ? kMmaTileN / 2 : kMmaTileN;
}

gpu::GPUFuncOp mlir::moe::buildGroupedMmaKernel(OpBuilder &b, Location loc,
                                                gpu::GPUModuleOp module,
                                                StringRef name,
                                                const MmaOptions &o) {
  OpBuilder::InsertionGuard guard(b);
  MLIRContext *ctx = b.getContext();
  Type bf16 = b.getBF16Type();
  SmallVector<Type> argTypes = groupedGemmArgTypes(b, o);
  assert(o.warps == 4 || o.warps == 8);
  const int64_t threads = 32 * o.warps;
  auto fn = createKernelFunc(b, loc, module, name, argTypes, threads);

  assert((o.tileM == 64 || o.tileM == 128) && o.stages >= 2 && o.stages <= 4);
  const int64_t TM = o.tileM, TK = kMmaTileK, S = o.stages;
  const int64_t numMats = o.pair ? 2 : 1;
  const int64_t TN = mmaColumnsPerMatrix(o); // columns per matrix
  const int64_t warpCols = o.warps / 2;      // warps are 2 x warpCols
  const int64_t WN = TN / warpCols;          // columns per warp per matrix
  const int64_t NI = WN / 8;                 // n8 tiles per warp per matrix
  const int64_t MI = TM / 32;                // m16 tiles per warp (TM/2 rows)
  const int64_t aStride = TK + 8, bStride = TN + 8; // padded rows
  auto wg = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  auto stageType = [&](int64_t rows, int64_t cols) {
    return MemRefType::get({S, rows, cols}, bf16, MemRefLayoutAttrInterface(),
                           wg);
  };
  Value sA = fn.addWorkgroupAttribution(stageType(TM, aStride), loc);
  SmallVector<Value> sB{fn.addWorkgroupAttribution(stageType(TK, bStride), loc)};
  if (o.pair)
    sB.push_back(fn.addWorkgroupAttribution(stageType(TK, bStride), loc));
  Block &entry = fn.getBody().front();
  b.setInsertionPointToStart(&entry);
  GroupedGemmArgs args = groupedGemmArgs(entry, o);
  Value x = args.x, out = args.out;
  ArrayRef<Value> w = args.w;

  IndexOps ops{b, loc};
  auto ci = [&](int64_t v) { return ops.c(v); };
  using P = arith::CmpIPredicate;
  auto icmp = [&](P p, Value l, Value r) { return ops.icmp(p, l, r); };
  auto add = [&](Value l, Value r) { return ops.add(l, r); };
  auto mul = [&](Value l, Value r) { return ops.mul(l, r); };
  auto divu = [&](Value l, int64_t r) { return ops.divu(l, r); };
  auto remu = [&](Value l, int64_t r) { return ops.remu(l, r); };
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value tile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value col0 = mul(gpu::BlockIdOp::create(b, loc, gpu::Dimension::x), ci(TN));
  TileRows rows = groupedGemmTileRows(b, loc, o, args, tile, TM);
  Value e = rows.expert, rowBegin = rows.begin, rowEnd = rows.end;
  Value K = memref::DimOp::create(b, loc, w[0], 1);
  // Columns past N (not a multiple of the tile: the router's experts) are
  // zero-filled and not stored.
  Value N = memref::DimOp::create(b, loc, w[0], 2);

  // The 16-byte chunks each thread copies per K step: A has TM rows x TK/8
  // chunks, each B TK rows x TN/8 chunks.
  struct Chunk {
    Value row, col, src, count; // tile row and column; A: source row, 8 or 0
  };
  SmallVector<Chunk> aChunks, bChunks;
  for (int64_t c = 0; c < TM * (TK / 8) / threads; ++c) {
    Value v = add(tid, ci(c * threads));
    Chunk ch;
    ch.row = divu(v, TK / 8);
    ch.col = mul(remu(v, TK / 8), ci(8));
    CopySource src = rowSource(b, loc, o, args, rows, ch.row);
    ch.src = src.index;
    ch.count = src.count;
    aChunks.push_back(ch);
  }
  for (int64_t c = 0; c < TK * (TN / 8) / threads; ++c) {
    Value v = add(tid, ci(c * threads));
    Chunk ch;
    ch.row = divu(v, TN / 8);
    ch.col = mul(remu(v, TN / 8), ci(8));
    CopySource src = columnSource(b, loc, add(col0, ch.col), N);
    ch.src = src.index;
    ch.count = src.count;
    bChunks.push_back(ch);
  }
  // Issues the copies of the K step at k0 into `stage`, as one group.
  auto issue = [&](Value stage, Value k0) {
    SmallVector<Value> tokens;
    for (const Chunk &ch : aChunks)
      tokens.push_back(asyncCopy16(b, loc, sA, {stage, ch.row, ch.col}, x,
                                   {ch.src, add(k0, ch.col)}, ch.count));
    for (int64_t m = 0; m < numMats; ++m)
      for (const Chunk &ch : bChunks)
        tokens.push_back(asyncCopy16(b, loc, sB[m], {stage, ch.row, ch.col},
                                     w[m], {e, add(k0, ch.row), ch.src},
                                     ch.count));
    return commitAsyncCopies(b, loc, tokens);
  };

  // Warp tile and lane roles.
  Value warp = divu(tid, 32), lane = remu(tid, 32);
  Value wm = mul(divu(warp, warpCols), ci(TM / 2));
  Value wn = mul(remu(warp, warpCols), ci(WN));
  Value g = divu(lane, 4);
  Value tg2 = mul(remu(lane, 4), ci(2));
  Value ldRow = remu(lane, 16);             // ldmatrix: this lane's row
  Value ldCol = mul(divu(lane, 16), ci(8)); // and 8-column half

  Value zeroF = constF32(b, loc, 0.0f);
  // Accumulators: 4 f32 per mma tile [mat][mi][ni] (c0..c3 of the PTX
  // fragment: rows g, g, g+8, g+8; columns tg2, tg2+1, tg2, tg2+1).
  const int64_t numAcc = numMats * MI * NI * 4;
  auto accIndex = [&](int64_t m, int64_t mi, int64_t ni, int64_t c) {
    return ((m * MI + mi) * NI + ni) * 4 + c;
  };

  // Prologue: the first S - 1 steps in flight (past the end, the last step
  // again, unused).
  KSteps ks = blockKSteps(b, loc, o, arith::DivUIOp::create(b, loc, K, ci(TK)));
  Value steps = ks.count;
  Value lastK = arith::SubIOp::create(b, loc, K, ci(TK));
  // K of this block's step i (past the end, the last step again, unused).
  auto kOf = [&](Value i) {
    return arith::MinUIOp::create(b, loc, mul(add(ks.first, i), ci(TK)),
                                  lastK);
  };
  Value lastGroup;
  for (int64_t st = 0; st < S - 1; ++st)
    lastGroup = issue(ci(st), kOf(ci(st)));
  auto kLoop = scf::ForOp::create(b, loc, ci(0), steps, ci(1),
                                  SmallVector<Value>(numAcc, zeroF));
  {
    OpBuilder::InsertionGuard lg(b);
    b.setInsertionPointToStart(kLoop.getBody());
    Value kt = kLoop.getInductionVar();
    SmallVector<Value> acc(kLoop.getRegionIterArgs());
    Value stage = remu(kt, S);
    // Step kt + S - 1's copies into the stage read at kt - 1 (past the
    // end, the last step again, unused), then wait for step kt's.
    Value ahead = add(kt, ci(S - 1));
    Value group = issue(remu(ahead, S), kOf(ahead));
    nvgpu::DeviceAsyncWaitOp::create(b, loc, group,
                                     b.getI32IntegerAttr(int32_t(S - 1)));
    gpu::BarrierOp::create(b, loc);

    auto fragType = VectorType::get({4, 2}, bf16);
    auto reg = [&](Value frag, int64_t i) {
      return fragmentRegister(b, loc, frag, i);
    };
    for (int64_t ks = 0; ks < TK; ks += 16) {
      SmallVector<SmallVector<Value, 4>> aFrag;
      for (int64_t mi = 0; mi < MI; ++mi) {
        Value f = nvgpu::LdMatrixOp::create(
            b, loc, fragType, sA,
            ValueRange{stage, add(wm, add(ci(mi * 16), ldRow)),
                       add(ci(ks), ldCol)},
            /*transpose=*/false, /*numTiles=*/4);
        aFrag.push_back({reg(f, 0), reg(f, 1), reg(f, 2), reg(f, 3)});
      }
      for (int64_t m = 0; m < numMats; ++m)
        for (int64_t np = 0; np < NI; np += 2) {
          // Two n8 tiles: b0, b1 of tile np, then of tile np + 1.
          Value f = nvgpu::LdMatrixOp::create(
              b, loc, fragType, sB[m],
              ValueRange{stage, add(ci(ks), ldRow),
                         add(wn, add(ci(np * 8), ldCol))},
              /*transpose=*/true, /*numTiles=*/4);
          for (int64_t half = 0; half < 2; ++half) {
            SmallVector<Value, 2> bFrag{reg(f, 2 * half), reg(f, 2 * half + 1)};
            int64_t ni = np + half;
            for (int64_t mi = 0; mi < MI; ++mi) {
              // The 4 accumulators of tile (m, mi, ni) are adjacent.
              mmaSyncBf16(b, loc, aFrag[mi], bFrag,
                          MutableArrayRef<Value>(acc).slice(
                              accIndex(m, mi, ni, 0), 4));
            }
          }
        }
    }
    // The next iteration's copies overwrite the stage read here.
    gpu::BarrierOp::create(b, loc);
    scf::YieldOp::create(b, loc, acc);
  }
  // Nothing may be in flight into shared memory when the block exits.
  nvgpu::DeviceAsyncWaitOp::create(b, loc, lastGroup, b.getI32IntegerAttr(0));

  // Epilogue: c[i*2+j] of tile (mi, ni) is row wm + 16 mi + g + 8 i, column
  // wn + 8 ni + tg2 + j. Column checks only in a column block that N ends
  // in (unchecked, the stores of a row share one address computation).
  buildColumnChecked(b, loc, icmp(P::ule, add(col0, ci(TN)), N), N,
                     [&](Value cols) {
  for (int64_t mi = 0; mi < MI; ++mi)
    for (int64_t i = 0; i < 2; ++i) {
      Value r = add(wm, add(ci(mi * 16 + i * 8), g));
      Value slot = add(rowBegin, r);
      auto inRows = scf::IfOp::create(b, loc, icmp(P::ult, slot, rowEnd), false);
      OpBuilder::InsertionGuard eg(b);
      b.setInsertionPointToStart(&inRows.getThenRegion().front());
      AccumulatorRow row = loadAccumulatorRow(b, loc, o, args, slot);
      Value col = add(col0, add(wn, tg2));
      for (int64_t ni = 0; ni < NI; ++ni) {
        auto acc = [&](int64_t m, int64_t j) {
          return kLoop.getResult(accIndex(m, mi, ni, i * 2 + j));
        };
        SmallVector<Value, 2> gate;
        if (o.pair)
          gate = {acc(1, 0), acc(1, 1)};
        storeAccumulatorPair(b, loc, o, out, row, col, cols,
                             {acc(0, 0), acc(0, 1)}, gate, ni * 8);
      }
    }
  });
  b.setInsertionPointToEnd(&entry);
  gpu::ReturnOp::create(b, loc);
  return fn;
}
