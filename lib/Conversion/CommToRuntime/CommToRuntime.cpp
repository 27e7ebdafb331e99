//===- CommToRuntime.cpp - Collectives to moert_comm calls -----------------===//
//
// Part of moe-compiler.
//
// The per-rank program of moe-partition communicates through shard
// collectives and the two expert exchanges. They become calls of the
// runtime's C ABI, on tensors, before bufferization:
//
//   %in = bufferization.to_buffer %t {read_only}    (the operand's buffer)
//   %out = memref.alloc()                            (the result's buffer)
//   call @moert_comm_xxx(ptr(%in), ptr(%out), sizes..., axes mask)
//   %r = bufferization.to_tensor %out restrict writable
//
// Pointers pass as i64 (memref.extract_aligned_pointer_as_index), so that
// one declaration serves every shape; the buffers stay alive until the end
// of the block, where ownership-based deallocation frees them. A group is
// the set of ranks that differ only in the grid axes of the mask; the
// runtime takes the grid from the model's signature.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOECOMMTORUNTIME
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {
/// The runtime's code for an element type (moert_dtype in moert.h).
std::optional<int32_t> dtypeCode(Type t) {
  if (t.isF32())
    return 0;
  if (t.isF16())
    return 1;
  if (t.isBF16())
    return 2;
  if (t.isSignlessInteger(32))
    return 5;
  return std::nullopt;
}

int64_t byteWidth(Type t) { return (t.getIntOrFloatBitWidth() + 7) / 8; }

int64_t axesMask(ArrayRef<int16_t> axes) {
  int64_t mask = 0;
  for (int16_t a : axes)
    mask |= int64_t(1) << a;
  return mask;
}

struct Lowering {
  ModuleOp module;
  OpBuilder b;
  Location loc;

  Lowering(ModuleOp module, Operation *at)
      : module(module), b(at), loc(at->getLoc()) {}

  func::FuncOp declare(StringRef name, unsigned numArgs, bool returnsI64) {
    if (auto fn = module.lookupSymbol<func::FuncOp>(name))
      return fn;
    OpBuilder mb(module.getContext());
    mb.setInsertionPointToStart(module.getBody());
    SmallVector<Type> args(numArgs, mb.getI64Type());
    SmallVector<Type> results;
    if (returnsI64)
      results.push_back(mb.getI64Type());
    auto fn = func::FuncOp::create(mb, module.getLoc(), name,
                                   mb.getFunctionType(args, results));
    fn.setPrivate();
    return fn;
  }

  Value i64(int64_t v) {
    return arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(v));
  }

  Value pointer(Value memref) {
    Value index =
        memref::ExtractAlignedPointerAsIndexOp::create(b, loc, memref);
    return arith::IndexCastOp::create(b, loc, b.getI64Type(), index);
  }

  /// The buffer of tensor `t`, read-only.
  Value buffer(Value t) {
    auto type = cast<RankedTensorType>(t.getType());
    auto op = bufferization::ToBufferOp::create(
        b, loc, MemRefType::get(type.getShape(), type.getElementType()), t,
        /*read_only=*/true);
    return op.getResult();
  }

  Value alloc(Type tensorType) {
    auto type = cast<RankedTensorType>(tensorType);
    return memref::AllocOp::create(
        b, loc, MemRefType::get(type.getShape(), type.getElementType()));
  }

  Value tensorOf(Value memref, Type tensorType) {
    return bufferization::ToTensorOp::create(b, loc, tensorType, memref,
                                             /*restrict=*/true,
                                             /*writable=*/true);
  }

  Value call(StringRef name, ArrayRef<Value> args, bool returnsI64 = false) {
    func::FuncOp fn = declare(name, args.size(), returnsI64);
    auto op = func::CallOp::create(b, loc, fn, args);
    return returnsI64 ? op.getResult(0) : Value();
  }

  /// This rank's position in the group of `axes` (an index).
  Value groupRank(ArrayRef<int16_t> axes) {
    Value r = call("moert_comm_group_rank", {i64(axesMask(axes))}, true);
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), r);
  }
};

LogicalResult needStatic(Operation *op, Type t) {
  auto type = dyn_cast<RankedTensorType>(t);
  if (type && type.hasStaticShape())
    return success();
  return op->emitError("convert-moe-comm-to-runtime: ")
         << "needs static shapes, got " << t;
}

LogicalResult lower(ModuleOp module, Operation *op) {
  Lowering l(module, op);
  for (Type t : op->getOperandTypes())
    if (isa<TensorType>(t) && failed(needStatic(op, t)))
      return failure();
  for (Type t : op->getResultTypes())
    if (isa<TensorType>(t) && failed(needStatic(op, t)))
      return failure();
  auto fail = [&]() {
    return op->emitError("convert-moe-comm-to-runtime: ");
  };

  if (auto index = dyn_cast<shard::ProcessMultiIndexOp>(op)) {
    SmallVector<Value> results;
    for (int16_t axis : index.getAxes())
      results.push_back(l.groupRank({axis}));
    if (results.size() != op->getNumResults())
      return fail() << "process_multi_index needs explicit axes";
    op->replaceAllUsesWith(results);
    op->erase();
    return success();
  }
  if (auto slice = dyn_cast<shard::AllSliceOp>(op)) {
    if (slice.getSliceAxis().getSExtValue() != 0)
      return fail() << "all_slice is supported along dimension 0 only";
    auto type = cast<RankedTensorType>(slice.getResult().getType());
    Value rank = l.groupRank(slice.getGridAxes());
    Value offset = arith::MulIOp::create(
        l.b, l.loc, rank,
        arith::ConstantIndexOp::create(l.b, l.loc, type.getDimSize(0)));
    SmallVector<OpFoldResult> offsets(type.getRank(), l.b.getIndexAttr(0));
    offsets[0] = offset;
    SmallVector<OpFoldResult> sizes, strides(type.getRank(),
                                              l.b.getIndexAttr(1));
    for (int64_t d : type.getShape())
      sizes.push_back(l.b.getIndexAttr(d));
    Value r = tensor::ExtractSliceOp::create(l.b, l.loc, type, slice.getInput(),
                                             offsets, sizes, strides);
    op->replaceAllUsesWith(ValueRange{r});
    op->erase();
    return success();
  }
  if (auto reduce = dyn_cast<shard::AllReduceOp>(op)) {
    if (reduce.getReduction() != shard::ReductionKind::Sum)
      return fail() << "all_reduce supports the sum only";
    auto type = cast<RankedTensorType>(reduce.getResult().getType());
    auto code = dtypeCode(type.getElementType());
    if (!code || type != reduce.getInput().getType())
      return fail() << "all_reduce of " << reduce.getInput().getType()
                    << " to " << type << " is not supported";
    Value in = l.buffer(reduce.getInput()), out = l.alloc(type);
    l.call("moert_comm_all_reduce",
           {l.pointer(in), l.pointer(out), l.i64(type.getNumElements()),
            l.i64(*code), l.i64(axesMask(reduce.getGridAxes()))});
    op->replaceAllUsesWith(ValueRange{l.tensorOf(out, type)});
    op->erase();
    return success();
  }
  if (auto gather = dyn_cast<shard::AllGatherOp>(op)) {
    if (gather.getGatherAxis().getSExtValue() != 0)
      return fail() << "all_gather is supported along dimension 0 only";
    auto inType = cast<RankedTensorType>(gather.getInput().getType());
    auto type = cast<RankedTensorType>(gather.getResult().getType());
    Value in = l.buffer(gather.getInput()), out = l.alloc(type);
    l.call("moert_comm_all_gather",
           {l.pointer(in), l.pointer(out),
            l.i64(inType.getNumElements() * byteWidth(inType.getElementType())),
            l.i64(type.getDimSize(0) / inType.getDimSize(0)),
            l.i64(axesMask(gather.getGridAxes()))});
    op->replaceAllUsesWith(ValueRange{l.tensorOf(out, type)});
    op->erase();
    return success();
  }
  if (auto ex = dyn_cast<DispatchExchangeOp>(op)) {
    auto in = cast<RankedTensorType>(ex.getInput().getType());
    auto out = cast<RankedTensorType>(ex.getResult().getType());
    int64_t experts = ex.getOffsets().getType().getDimSize(0) - 1;
    Value inBuf = l.buffer(ex.getInput()), offBuf = l.buffer(ex.getOffsets());
    Value outBuf = l.alloc(out), outOff = l.alloc(ex.getResultOffsets().getType()),
          counts = l.alloc(ex.getCounts().getType());
    l.call("moert_comm_dispatch",
           {l.pointer(inBuf), l.pointer(offBuf), l.pointer(outBuf),
            l.pointer(outOff), l.pointer(counts),
            l.i64(in.getDimSize(1) * byteWidth(in.getElementType())),
            l.i64(experts), l.i64(out.getDimSize(0)), l.i64(ex.getGroupSize()),
            l.i64(axesMask(ex.getGridAxes()))});
    op->replaceAllUsesWith(
        ValueRange{l.tensorOf(outBuf, out),
                   l.tensorOf(outOff, ex.getResultOffsets().getType()),
                   l.tensorOf(counts, ex.getCounts().getType())});
    op->erase();
    return success();
  }
  if (auto ex = dyn_cast<CombineExchangeOp>(op)) {
    auto in = cast<RankedTensorType>(ex.getInput().getType());
    auto out = cast<RankedTensorType>(ex.getResult().getType());
    int64_t experts = ex.getOffsets().getType().getDimSize(0) - 1;
    Value inBuf = l.buffer(ex.getInput()), counts = l.buffer(ex.getCounts()),
          offBuf = l.buffer(ex.getOffsets()), outBuf = l.alloc(out);
    l.call("moert_comm_combine",
           {l.pointer(inBuf), l.pointer(counts), l.pointer(offBuf),
            l.pointer(outBuf), l.i64(in.getDimSize(0)), l.i64(out.getDimSize(0)),
            l.i64(in.getDimSize(1) * byteWidth(in.getElementType())),
            l.i64(experts), l.i64(ex.getGroupSize()),
            l.i64(axesMask(ex.getGridAxes()))});
    op->replaceAllUsesWith(ValueRange{l.tensorOf(outBuf, out)});
    op->erase();
    return success();
  }
  if (isa<shard::ShardOp, shard::ShardingOp>(op))
    return fail() << "'" << op->getName()
                  << "' is an annotation of an unpartitioned plan: run "
                     "moe-partition first";
  return fail() << "the collective '" << op->getName()
                << "' has no runtime lowering yet";
}

struct ConvertMoECommToRuntimePass
    : mlir::moe::impl::ConvertMoECommToRuntimeBase<
          ConvertMoECommToRuntimePass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<Operation *> ops;
    module.walk([&](Operation *op) {
      if (isa<DispatchExchangeOp, CombineExchangeOp>(op) ||
          (op->getDialect() &&
           op->getDialect()->getNamespace() ==
               shard::ShardDialect::getDialectNamespace() &&
           !isa<shard::GridOp>(op)))
        ops.push_back(op);
    });
    for (Operation *op : ops)
      if (failed(lower(module, op)))
        return signalPassFailure();
    // The symbol has no lowering: its shape stays readable as `moe.grid` on
    // the module (the model entry took it into the signature from @moe_grid,
    // before the pipeline).
    if (auto grid = module.lookupSymbol<shard::GridOp>("moe_grid")) {
      if (!SymbolTable::symbolKnownUseEmpty(grid, module)) {
        grid.emitError("convert-moe-comm-to-runtime: @moe_grid is still "
                       "used after lowering");
        return signalPassFailure();
      }
      module->setAttr("moe.grid", DenseI64ArrayAttr::get(&getContext(),
                                                         grid.getShape()));
      grid.erase();
    }
  }
};
} // namespace
