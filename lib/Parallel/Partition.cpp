//===- Partition.cpp - The per-rank program of a planned MoE model ---------===//
//
// Part of moe-compiler.
//
// Design notes
// ============
//
// Input: a module planned by moe-plan-parallelism: `shard.grid @moe_grid`
// with axes `data x expert x tensor`, a `shard.shard` of every weight and
// `moe.plan` on every moe.layer. Output: the program every rank runs (SPMD),
// with the communication explicit. A layer moves its tokens one of two ways
// (`dispatch` in moe.plan).
//
// All-reduce (and always when ep = 1): every rank keeps all T tokens and
// one moe.layer on its local weights (its experts via `expert_offset`,
// their ffn slice, the dense parts sliced over the replica); one
// shard.all_reduce over the expert and tensor axes sums the partial
// outputs. The fused GPU layer absorbs that all-reduce (NCCL on the device,
// in f32 before the rounding).
//
// All-to-all:
//
//   x [T, d] (replicated)
//     -> pad to ep * t rows, shard.all_slice over the expert axis -> [t, d]
//     -> router (replicated weights); padding rows get expert id -1
//     -> moe.dispatch (expert-major rows, offsets)
//     -> moe.dispatch_exchange over the expert axis: rows go to the rank
//        owning their expert (counts first, then the rows that exist)
//     -> moe.experts on the local experts (their ffn slice if es > 1)
//     -> moe.combine_exchange: outputs go back where the rows came from
//     -> moe.combine (+ the dense parts, on the local tokens and ffn slice)
//     -> shard.all_reduce over the tensor axis (if es > 1): the partial sums
//        of the ffn slices and of the tensor-sliced dense parts
//     -> shard.all_gather over the expert axis (if ep > 1) -> [T, d]
//
// Ranks of one tensor group (same expert coordinate) hold the same tokens,
// send the same rows and receive the same rows; each computes its ffn slice.
// The data axis adds no communication: every replica runs the whole batch
// (the executable serves one request stream; a server would give replicas
// different requests).
//
// Weights keep their argument positions and names; their types become the
// per-rank slices and `moe.split` records the split axes per dimension
// (the runtime loads that slice of the checkpoint tensor).
//
// The dispatch capacity is the dropless worst case: a rank can receive
// min(k, E/ep) rows per token from each of the ep ranks of its group.
//
// Attention and dense moe.mlp blocks marked by the planner (attention-tp)
// are tensor-sliced: the head (or ffn) slices of their weights, the head
// slices of the KV caches (function arguments and results), and one
// all-reduce of their output.
//
//===----------------------------------------------------------------------===//

#include "moe/Parallel/Passes.h"

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tensor/Utils/Utils.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::moe {
#define GEN_PASS_DEF_PARTITIONPARALLELISM
#include "moe/Parallel/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {
constexpr int16_t kExpertAxis = 1, kTensorAxis = 2;
constexpr StringLiteral kSplitAttr = "moe.split";

struct PartitionParallelismPass
    : mlir::moe::impl::PartitionParallelismBase<PartitionParallelismPass> {
  void runOnOperation() override;

  LogicalResult localizeWeights(ModuleOp module, ArrayRef<int64_t> grid);
  LogicalResult partitionLayer(LayerOp layer, ArrayRef<int64_t> grid,
                               FlatSymbolRefAttr gridRef);
  LogicalResult partitionReplicated(LayerOp layer, ArrayRef<int64_t> grid,
                                    FlatSymbolRefAttr gridRef, int64_t tp);
  LogicalResult partitionAttention(AttentionOp op, ArrayRef<int64_t> grid,
                                   FlatSymbolRefAttr gridRef);
};

InFlightDiagnostic fail(Operation *op) {
  return op->emitError("moe-partition: ");
}

/// Sums `partial` (one rank's share of an op's result) over the ranks of
/// `axes` with one shard.all_reduce placed right after its producer; every
/// other use of `partial` takes the sum.
Value sumOver(Value partial, FlatSymbolRefAttr gridRef,
              ArrayRef<int16_t> axes) {
  OpBuilder b(partial.getContext());
  b.setInsertionPointAfterValue(partial);
  MLIRContext *ctx = b.getContext();
  auto sum = shard::AllReduceOp::create(
      b, partial.getLoc(), partial.getType(), gridRef,
      DenseI16ArrayAttr::get(ctx, axes), partial,
      shard::ReductionKindAttr::get(ctx, shard::ReductionKind::Sum));
  partial.replaceAllUsesExcept(sum.getResult(), sum);
  return sum.getResult();
}

/// Every `shard.shard` of a function argument: the argument takes the slice
/// type, records its split axes and replaces the shard's result.
LogicalResult PartitionParallelismPass::localizeWeights(ModuleOp module,
                                                        ArrayRef<int64_t> grid) {
  SmallVector<shard::ShardOp> shards;
  module.walk([&](shard::ShardOp op) { shards.push_back(op); });
  SmallVector<func::FuncOp> touched;
  for (shard::ShardOp op : shards) {
    auto arg = dyn_cast<BlockArgument>(op.getSrc());
    auto fn = arg ? dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp())
                  : func::FuncOp();
    if (!fn || arg.getOwner() != &fn.getBody().front())
      return fail(op) << "a sharded weight must be an argument of its "
                         "function (the runtime loads its slice)";
    auto sharding = op.getSharding().getDefiningOp<shard::ShardingOp>();
    if (!sharding)
      return fail(op) << "expected the sharding of a shard.sharding op";
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type || !type.hasStaticShape())
      return fail(op) << "a sharded weight needs a static shape, got "
                      << arg.getType();
    SmallVector<int64_t> shape(type.getShape());
    SmallVector<Attribute> split;
    auto axes = sharding.getSplitAxes().getAxes();
    for (int64_t d = 0; d < type.getRank(); ++d) {
      ArrayRef<int16_t> these =
          d < int64_t(axes.size()) ? axes[d].asArrayRef() : ArrayRef<int16_t>{};
      int64_t parts = 1;
      for (int16_t a : these)
        parts *= grid[a];
      if (shape[d] % parts != 0)
        return fail(op) << "dimension " << d << " of " << type
                        << " does not split into " << parts << " parts";
      shape[d] /= parts;
      split.push_back(DenseI16ArrayAttr::get(op.getContext(), these));
    }
    auto splitAttr = ArrayAttr::get(op.getContext(), split);
    unsigned index = arg.getArgNumber();
    if (auto known = fn.getArgAttrOfType<ArrayAttr>(index, kSplitAttr)) {
      if (known != splitAttr)
        return fail(op) << "argument #" << index
                        << " is sharded in two different ways";
    } else {
      for (OpOperand &use : arg.getUses())
        if (!isa<shard::ShardOp>(use.getOwner()))
          return fail(use.getOwner())
                 << "argument #" << index
                 << " is used both sharded and whole";
      fn.setArgAttr(index, kSplitAttr, splitAttr);
      arg.setType(RankedTensorType::get(shape, type.getElementType()));
      if (!llvm::is_contained(touched, fn))
        touched.push_back(fn);
    }
    op.getResult().replaceAllUsesWith(arg);
    op.erase();
  }
  for (func::FuncOp fn : touched)
    fn.setType(FunctionType::get(fn.getContext(),
                                 fn.getBody().front().getArgumentTypes(),
                                 fn.getResultTypes()));
  SmallVector<shard::ShardingOp> dead;
  module.walk([&](shard::ShardingOp op) {
    if (op->use_empty())
      dead.push_back(op);
  });
  for (shard::ShardingOp op : dead)
    op.erase();
  return success();
}

/// Every rank of a replica holds all its tokens (no token slicing): the
/// layer stays one moe.layer on the local weights (its experts' ffn slice,
/// the local experts with `expert_offset` when ep > 1, the dense parts'
/// slice) and the partial outputs are summed by one all-reduce over the
/// expert and tensor axes. Communication: T x d per layer, whatever the
/// routing; the fused GPU layer runs unchanged on every rank.
LogicalResult PartitionParallelismPass::partitionReplicated(
    LayerOp layer, ArrayRef<int64_t> grid, FlatSymbolRefAttr gridRef,
    int64_t tp) {
  int64_t ep = grid[kExpertAxis], es = grid[kTensorAxis];
  bool dense = layer.getSharedUp() || layer.getMlpUp();
  if (dense && tp != ep * es && ep * es > 1)
    return fail(layer) << "with replicated tokens, the dense parts must be "
                          "sliced over every GPU of the replica (tp="
                       << ep * es << "), got tp=" << tp;
  int64_t numExperts = layer.getNumExperts();
  if (numExperts % ep != 0)
    return fail(layer) << numExperts << " experts do not split over ep=" << ep;
  OpBuilder b(layer);
  Location loc = layer.getLoc();
  MLIRContext *ctx = b.getContext();
  if (ep > 1) {
    // This rank's experts start at its expert coordinate x E / ep.
    Value coord = shard::ProcessMultiIndexOp::create(
                      b, loc, TypeRange{b.getIndexType()}, gridRef,
                      DenseI16ArrayAttr::get(ctx, {kExpertAxis}))
                      .getResult()[0];
    Value first = arith::MulIOp::create(
        b, loc, coord, arith::ConstantIndexOp::create(b, loc, numExperts / ep));
    layer.getExpertOffsetMutable().assign(first);
  }
  SmallVector<int16_t> axes;
  if (ep > 1)
    axes.push_back(kExpertAxis);
  if (es > 1)
    axes.push_back(kTensorAxis);
  if (!axes.empty())
    sumOver(layer.getResult(), gridRef, axes);
  return success();
}

LogicalResult PartitionParallelismPass::partitionLayer(
    LayerOp layer, ArrayRef<int64_t> grid, FlatSymbolRefAttr gridRef) {
  int64_t ep = grid[kExpertAxis], es = grid[kTensorAxis];
  auto plan = layer->getAttrOfType<DictionaryAttr>("moe.plan");
  auto tpAttr = plan ? plan.getAs<IntegerAttr>("tp") : IntegerAttr();
  if (!tpAttr)
    return fail(layer) << "the layer has no moe.plan with tp; run "
                          "moe-plan-parallelism first";
  int64_t tp = tpAttr.getInt();
  bool dense = layer.getSharedUp() || layer.getMlpUp();
  if (layer.getExpertOffset())
    return fail(layer) << "the layer is partitioned already (expert_offset)";
  StringRef dispatch = "all-to-all";
  if (auto d = plan.getAs<StringAttr>("dispatch"))
    dispatch = d.getValue();
  if (dispatch != "all-to-all" && dispatch != "all-reduce")
    return fail(layer) << "unknown dispatch '" << dispatch
                       << "' in moe.plan (expected all-to-all or all-reduce)";
  if (ep == 1 || dispatch == "all-reduce")
    return partitionReplicated(layer, grid, gridRef, tp);
  if (dense && es > 1 && tp == 1)
    return fail(layer) << "replicated dense parts (tp=1) beside sliced "
                          "experts (es="
                       << es << ") are not partitioned yet";
  if (dense && ep > 1 && tp > es)
    return fail(layer) << "dense parts sliced over the expert axis (tp=" << tp
                       << " = ep x es) are not partitioned yet";
  if (layer.getCapacityFactor())
    return fail(layer) << "capacity-limited routing (capacity_factor) needs "
                          "the all-reduce dispatch: with all-to-all its drops "
                          "would depend on other ranks' tokens";

  auto xType = cast<RankedTensorType>(layer.getInput().getType());
  int64_t tokens = xType.getDimSize(0), hidden = xType.getDimSize(1);
  if (ShapedType::isDynamic(tokens))
    return fail(layer) << "a partitioned layer needs a static token count, "
                          "got "
                       << xType;
  int64_t numExperts = layer.getNumExperts();
  int64_t k = layer.getTopK();
  Type elt = xType.getElementType();
  int64_t local = llvm::divideCeil(tokens, ep), padded = local * ep;

  OpBuilder b(layer);
  Location loc = layer.getLoc();
  MLIRContext *ctx = b.getContext();
  auto expertAxis = DenseI16ArrayAttr::get(ctx, {kExpertAxis});
  auto tensorAxis = DenseI16ArrayAttr::get(ctx, {kTensorAxis});

  Value x = layer.getInput();
  if (ep > 1) {
    if (padded != tokens) {
      Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(elt));
      x = tensor::createPadHighOp(RankedTensorType::get({padded, hidden}, elt),
                                  x, zero, /*nofold=*/false, loc, b);
    }
    x = shard::AllSliceOp::create(
        b, loc, RankedTensorType::get({local, hidden}, elt), gridRef,
        expertAxis, x, b.getIndexAttr(0));
  }
  auto localLayer = cast<LayerOp>(b.clone(*layer));
  localLayer.getInputMutable().assign(x);
  localLayer.getResult().setType(RankedTensorType::get({local, hidden}, elt));

  DecomposeLayerHooks hooks;
  if (padded != tokens)
    hooks.routes = [&](OpBuilder &nb, Location l, Value ids) -> Value {
      // Rows past the real tokens (the padding of the last slice) go nowhere.
      Value rank = shard::ProcessMultiIndexOp::create(
                       nb, l, TypeRange{nb.getIndexType()}, gridRef, expertAxis)
                       .getResult()[0];
      Value first = arith::MulIOp::create(
          nb, l, rank, arith::ConstantIndexOp::create(nb, l, local));
      auto idsType = cast<RankedTensorType>(ids.getType());
      Value init = tensor::EmptyOp::create(nb, l, idsType.getShape(),
                                           idsType.getElementType());
      AffineMap id = nb.getMultiDimIdentityMap(2);
      auto generic = linalg::GenericOp::create(
          nb, l, idsType, ValueRange{ids}, ValueRange{init},
          ArrayRef<AffineMap>{id, id},
          ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                        utils::IteratorType::parallel},
          [&](OpBuilder &gb, Location gl, ValueRange args) {
            Value row = linalg::IndexOp::create(gb, gl, 0);
            Value global = arith::AddIOp::create(gb, gl, first, row);
            Value real = arith::CmpIOp::create(
                gb, gl, arith::CmpIPredicate::ult, global,
                arith::ConstantIndexOp::create(gb, gl, tokens));
            Value none = arith::ConstantOp::create(
                gb, gl, gb.getIntegerAttr(idsType.getElementType(), -1));
            linalg::YieldOp::create(
                gb, gl, ValueRange{arith::SelectOp::create(gb, gl, real,
                                                           args[0], none)});
          });
      return generic.getResult(0);
    };
  hooks.experts = [&](OpBuilder &nb, Location l, Value permuted, Value offsets,
                      LayerOp op) -> Value {
    if (ep == 1)
      return ExpertsOp::create(nb, l, permuted.getType(), permuted, offsets,
                               op.getWUp(), op.getWGate(), op.getWDown(),
                               op.getActivationAttr());
    int64_t perRank = numExperts / ep;
    int64_t capacity = ep * local * std::min(k, perRank);
    Type i32 = nb.getI32Type();
    auto exchange = DispatchExchangeOp::create(
        nb, l, RankedTensorType::get({capacity, hidden}, elt),
        RankedTensorType::get({perRank + 1}, i32),
        RankedTensorType::get({ep, perRank}, i32), permuted, offsets, gridRef,
        expertAxis, nb.getI64IntegerAttr(ep));
    Value out = ExpertsOp::create(
        nb, l, exchange.getResult().getType(), exchange.getResult(),
        exchange.getResultOffsets(), op.getWUp(), op.getWGate(), op.getWDown(),
        op.getActivationAttr());
    return CombineExchangeOp::create(nb, l, permuted.getType(), out,
                                     exchange.getCounts(), offsets, gridRef,
                                     expertAxis, nb.getI64IntegerAttr(ep));
  };
  if (ep > 1 && numExperts % ep != 0)
    return fail(layer) << numExperts << " experts do not split over ep=" << ep;

  Value y = decomposeLayer(b, localLayer, hooks);
  localLayer.erase();
  if (es > 1)
    y = shard::AllReduceOp::create(b, loc, y.getType(), gridRef, tensorAxis, y,
                                   shard::ReductionKindAttr::get(
                                       ctx, shard::ReductionKind::Sum));
  if (ep > 1) {
    y = shard::AllGatherOp::create(
        b, loc, RankedTensorType::get({padded, hidden}, elt), gridRef,
        expertAxis, y, b.getIndexAttr(0));
    if (padded != tokens)
      y = tensor::ExtractSliceOp::create(
          b, loc, xType, y, ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(tokens), b.getIndexAttr(hidden)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
  }
  layer.getResult().replaceAllUsesWith(y);
  layer.erase();
  return success();
}

/// Tensor-sliced attention (`moe.attention_axes`, from the planner): the
/// weights are this rank's head slices already (localizeWeights); here the
/// head counts and the caches (function arguments and results) narrow to
/// the local heads, and one all-reduce sums the output projections.
LogicalResult PartitionParallelismPass::partitionAttention(
    AttentionOp op, ArrayRef<int64_t> grid, FlatSymbolRefAttr gridRef) {
  auto axes = op->getAttrOfType<DenseI16ArrayAttr>("moe.attention_axes");
  op->removeAttr("moe.attention_axes");
  int64_t parts = 1;
  for (int16_t a : axes.asArrayRef())
    parts *= grid[a];
  if (parts == 1)
    return success();
  int64_t heads = op.getNumHeads(), kvHeads = op.getNumKvHeads();
  if (heads % parts != 0 || kvHeads % parts != 0)
    return fail(op) << parts << " head slices do not divide " << heads
                    << " query and " << kvHeads << " key/value heads";
  auto cacheType = cast<RankedTensorType>(op.getKeyCacheIn().getType());
  auto local = RankedTensorType::get(
      {cacheType.getDimSize(0), kvHeads / parts, cacheType.getDimSize(2)},
      cacheType.getElementType());
  for (Value cache : {op.getKeyCacheIn(), op.getValueCacheIn()}) {
    auto arg = dyn_cast<BlockArgument>(cache);
    if (!arg || !isa<func::FuncOp>(arg.getOwner()->getParentOp()) ||
        !arg.hasOneUse())
      return fail(op) << "a sliced attention's caches must be arguments of "
                         "its function used by it alone";
    arg.setType(local);
  }
  op.setNumHeads(heads / parts);
  op.setNumKvHeads(kvHeads / parts);
  op.getKeyCache().setType(local);
  op.getValueCache().setType(local);
  sumOver(op.getResult(), gridRef, axes.asArrayRef());
  return success();
}

void PartitionParallelismPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto grid = module.lookupSymbol<shard::GridOp>("moe_grid");
  if (!grid)
    return;
  ArrayRef<int64_t> shape = grid.getShape();
  if (shape.size() != 3 || ShapedType::isDynamicShape(shape)) {
    fail(grid) << "expected the planner's static grid data x expert x tensor";
    return signalPassFailure();
  }
  SmallVector<LayerOp> layers;
  module.walk([&](LayerOp op) { layers.push_back(op); });
  if (failed(localizeWeights(module, shape)))
    return signalPassFailure();
  auto gridRef = FlatSymbolRefAttr::get(grid.getSymNameAttr());
  for (LayerOp layer : layers)
    if (failed(partitionLayer(layer, shape, gridRef)))
      return signalPassFailure();
  SmallVector<AttentionOp> attentions;
  module.walk([&](AttentionOp op) {
    if (op->hasAttr("moe.attention_axes"))
      attentions.push_back(op);
  });
  for (AttentionOp op : attentions)
    if (failed(partitionAttention(op, shape, gridRef)))
      return signalPassFailure();
  // Sliced dense MLP blocks: the ffn slices' partial outputs are summed.
  SmallVector<MlpOp> mlps;
  module.walk([&](MlpOp op) {
    if (op->hasAttr("moe.mlp_axes"))
      mlps.push_back(op);
  });
  for (MlpOp op : mlps) {
    auto axes = op->getAttrOfType<DenseI16ArrayAttr>("moe.mlp_axes");
    op->removeAttr("moe.mlp_axes");
    sumOver(op.getResult(), gridRef, axes.asArrayRef());
  }
  // Functions whose caches narrowed return them narrowed too.
  module.walk([&](func::FuncOp fn) {
    if (fn.isExternal())
      return;
    auto ret = cast<func::ReturnOp>(fn.getBody().back().getTerminator());
    fn.setType(FunctionType::get(fn.getContext(),
                                 fn.getBody().front().getArgumentTypes(),
                                 ret.getOperandTypes()));
  });
}
} // namespace
