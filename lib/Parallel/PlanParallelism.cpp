//===- PlanParallelism.cpp - Choose how a MoE model spreads over GPUs ------===//
//
// Part of moe-compiler.
//
// Design notes
// ============
//
// What is decided. The GPUs form one grid `data x expert x tensor`, tensor
// innermost (consecutive devices, so the tensor axis stays inside a host as
// long as it can). The DeepSpeed-MoE inference system's four kinds of
// parallelism map onto it:
//   - expert parallelism `ep` = |expert|: the experts of every layer are split
//     evenly over the expert axis (ep divides every layer's expert count);
//   - expert slicing `es` = |tensor|: every expert's ffn dimension is split
//     over the tensor axis (es divides the expert ffn); this is how more GPUs
//     than experts are used, and it also lowers the latency of small decode
//     steps, where the busiest GPU reads whole experts;
//   - tensor slicing `tp` of the dense parts of each moe.layer (shared
//     experts, the PR-MoE MLP) over the tensor axis (tp = es) or over
//     expert x tensor (tp = ep * es), or none; the other GPUs of a replica run
//     the dense parts data-parallel on their own tokens, as in DeepSpeed-MoE.
//     The attention and dense moe.mlp blocks between the layers are
//     replicated unless `attention-tp` slices them by heads (es or ep * es);
//     the cost model does not weigh them yet;
//   - data parallelism `dp` = |data|: whole-model replicas serving different
//     requests. It adds no communication and is what the throughput objective
//     trades against per-replica latency.
// One plan holds for the whole module: a grid is shared by all layers (the
// shard dialect cannot reshard between grids), so every layer is annotated
// with the same degrees; layers may still differ in shape (PR-MoE).
//
// Cost model (lib/Parallel/CostModel.cpp, unit-tested on its own): per layer
// and for the busiest GPU, weight bytes, FLOPs, HBM bytes read (expected
// distinct experts hit on the busiest GPU), and all-to-all / all-gather /
// all-reduce time over hierarchical links (NVLink inside a host, one NIC per
// GPU between hosts, a latency per collective and level). Step time is
// max(compute, HBM) + communication, summed over layers times
// `layers-multiplier`. Objectives: latency minimises the step time of one
// replica for a batch of `tokens` tokens; throughput maximises the tokens per
// second of all replicas when every GPU brings `tokens` tokens to a step (a
// replica of P GPUs batches P * tokens: its KV cache grows with its GPUs, and
// it reads each expert once for the whole batch; with a fixed batch per
// replica, pure data parallelism would always win and expert parallelism
// would never pay). Expert and tensor slicing keep at least `min-slice` (128)
// ffn columns per GPU: thinner GEMMs do not run near the tensor-core rate,
// which the roofline does not see. Plans
// within 1% of each other count as equal and are broken by preference (more
// ep, less es, less tp, less dp), so that the pinned plans do not flip on
// noise. A plan fits when the weights per GPU stay under
// memory-gb * (1 - memory-reserve); nothing fits -> the pass fails and says
// how many GPUs the model needs (the smallest count, in whole hosts, at which
// some layout fits).
//
// Dispatch. With ep > 1 each layer moves its tokens by all-to-all (tokens
// sliced over the expert axis, exchanged, combined, gathered) or by one
// all-reduce of the replica's tokens (every GPU keeps them all; needs the
// dense parts sliced over the whole replica): `dispatch=auto` takes the
// cheaper by the cost model's collective times (capacity-limited layers
// need the all-reduce), and the plans are ranked with the dispatch each
// would take.
//
// What is written. `shard.grid @moe_grid(shape = DxExT)` with
// `moe.axes = ["data", "expert", "tensor"]` (MLIR 22's grid has no axis names,
// so they go in a discardable attribute); for every weight operand of every
// `moe.layer` a `shard.sharding` (split axes of size 1 are left out, so a
// replicated weight reads `[[]]`) and a `shard.shard` of the value, which the
// layer then uses; and `moe.plan = {dp, ep, es, tp, grid, weight_bytes_per_gpu,
// step_ns}` on the layer (its own bytes and step estimate). Activations are
// not annotated: their layout follows from the plan and is the partitioner's
// business. A remark per layer gives the numbers; `report` prints a table of
// the layers and of the best candidates.
//
// Known simplifications: the model holds only the moe.layer weights (no
// attention, embeddings or LM head yet); routing is assumed uniform for the
// FLOPs and the collective volumes (the expected maximum is used only for the
// experts read); no pipeline parallelism.
//
//===----------------------------------------------------------------------===//

#include "moe/Parallel/CostModel.h"
#include "moe/Parallel/Passes.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <map>
#include <string>

namespace mlir::moe {
#define GEN_PASS_DEF_PLANPARALLELISM
#include "moe/Parallel/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr StringLiteral kGridName = "moe_grid";
constexpr int16_t kExpertAxis = 1, kTensorAxis = 2;

std::string formatBytes(double bytes) {
  std::string s;
  llvm::raw_string_ostream os(s);
  if (bytes >= 1e12)
    os << llvm::format("%.2f TB", bytes / 1e12);
  else if (bytes >= 1e9)
    os << llvm::format("%.2f GB", bytes / 1e9);
  else if (bytes >= 1e6)
    os << llvm::format("%.2f MB", bytes / 1e6);
  else if (bytes >= 1e3)
    os << llvm::format("%.2f KB", bytes / 1e3);
  else
    os << llvm::format("%.0f B", bytes);
  return s;
}

std::string formatTime(double seconds) {
  std::string s;
  llvm::raw_string_ostream os(s);
  if (seconds >= 10e-3)
    os << llvm::format("%.2f ms", seconds * 1e3);
  else
    os << llvm::format("%.1f us", seconds * 1e6);
  return s;
}

/// Operand segments of moe.layer, in ODS order.
enum Segment : unsigned {
  Input = 0,
  RouterWeight,
  RouterBias,
  WUp,
  WGate,
  WDown,
  SharedUp,
  SharedGate,
  SharedDown,
  SharedCoef,
  MlpUp,
  MlpDown,
  MlpCoef,
  MlpCoefBias,
  NumSegments
};

struct PlanParallelismPass
    : mlir::moe::impl::PlanParallelismBase<PlanParallelismPass> {
  using Base::Base;

  void runOnOperation() override;

private:
  LogicalResult checkOptions(ModuleOp module, Objective &objectiveOut);
  FailureOr<LayerShape> shapeOf(LayerOp layer);
  void annotate(ModuleOp module, ArrayRef<LayerOp> layers,
                const PlanCost &cost);
  void printReport(ArrayRef<LayerOp> layers, ArrayRef<LayerShape> shapes,
                   const CostModel &model, ArrayRef<PlanCost> ranked,
                   Objective obj);

  HardwareSpec hardware() const {
    HardwareSpec hw;
    hw.memoryBytes = memoryGB * 1e9;
    hw.reserveFraction = memoryReserve;
    hw.hbmBytesPerSecond = hbmGBs * 1e9;
    hw.flopsPerSecond = tflops * 1e12;
    hw.nvlinkBytesPerSecond = nvlinkGBs * 1e9;
    hw.interHostBytesPerSecond = interHostGBs * 1e9;
    hw.nvlinkLatencySeconds = nvlinkLatencyUs * 1e-6;
    hw.interHostLatencySeconds = interHostLatencyUs * 1e-6;
    hw.gpusPerHost = gpusPerHost;
    return hw;
  }
};

LogicalResult PlanParallelismPass::checkOptions(ModuleOp module,
                                                Objective &objectiveOut) {
  auto fail = [&](const Twine &msg) {
    return module.emitError("moe-plan-parallelism: ") << msg;
  };
  if (gpus < 1)
    return fail("gpus must be at least 1, got " + Twine(gpus));
  if (gpusPerHost < 1)
    return fail("gpus-per-host must be at least 1, got " + Twine(gpusPerHost));
  if (gpus > gpusPerHost && gpus % gpusPerHost != 0)
    return fail("gpus (" + Twine(gpus) + ") must fill whole hosts of " +
                Twine(gpusPerHost) + " GPUs");
  if (!(memoryGB > 0))
    return fail("memory-gb must be positive");
  if (!(memoryReserve >= 0 && memoryReserve < 1))
    return fail("memory-reserve must be in [0, 1)");
  if (!(hbmGBs > 0 && tflops > 0 && nvlinkGBs > 0 && interHostGBs > 0))
    return fail("bandwidths and tflops must be positive");
  if (!(nvlinkLatencyUs >= 0 && interHostLatencyUs >= 0))
    return fail("latencies must not be negative");
  if (minSlice < 1)
    return fail("min-slice must be at least 1, got " + Twine(minSlice));
  if (tokens < 1)
    return fail("tokens must be at least 1, got " + Twine(tokens));
  if (layersMultiplier < 1)
    return fail("layers-multiplier must be at least 1, got " +
                Twine(layersMultiplier));
  if (dispatchMode != "auto" && dispatchMode != "all-to-all" &&
      dispatchMode != "all-reduce")
    return fail("dispatch must be 'auto', 'all-to-all' or 'all-reduce', got '" +
                Twine(dispatchMode) + "'");
  if (objective == "latency")
    objectiveOut = Objective::Latency;
  else if (objective == "throughput")
    objectiveOut = Objective::Throughput;
  else
    return fail("objective must be 'latency' or 'throughput', got '" +
                Twine(objective) + "'");
  return success();
}

FailureOr<LayerShape> PlanParallelismPass::shapeOf(LayerOp layer) {
  auto staticType = [&](Value v, StringRef what) -> FailureOr<RankedTensorType> {
    auto type = dyn_cast<RankedTensorType>(v.getType());
    if (!type || !type.hasStaticShape())
      return layer.emitError("moe-plan-parallelism needs a static shape for ")
             << what << ", got " << v.getType();
    return type;
  };
  auto bytesOf = [](RankedTensorType t) {
    return t.getNumElements() *
           int64_t((t.getElementTypeBitWidth() + 7) / 8);
  };

  LayerShape shape;
  FailureOr<RankedTensorType> up = staticType(layer.getWUp(), "the expert weights");
  if (failed(up))
    return failure();
  shape.numExperts = up->getDimSize(0);
  shape.hidden = up->getDimSize(1);
  shape.expertFfn = up->getDimSize(2);
  shape.expertMatrices = layer.getWGate() ? 3 : 2;
  shape.elementBytes = (up->getElementTypeBitWidth() + 7) / 8;
  shape.topK = int64_t(layer.getTopK());
  shape.repeat = layersMultiplier;
  shape.capacityLimited = bool(layer.getCapacityFactor());

  auto addDense = [&](Value upW, bool gated) -> LogicalResult {
    if (!upW)
      return success();
    FailureOr<RankedTensorType> t = staticType(upW, "the dense weights");
    if (failed(t))
      return failure();
    shape.dense.push_back(DenseMlpShape{t->getDimSize(1), gated ? 3 : 2,
                                       (t->getElementTypeBitWidth() + 7) / 8});
    return success();
  };
  if (failed(addDense(layer.getSharedUp(), bool(layer.getSharedGate()))) ||
      failed(addDense(layer.getMlpUp(), false)))
    return failure();

  for (Value v : {layer.getRouterWeight(), layer.getRouterBias(),
                  layer.getSharedCoef(), layer.getMlpCoef(),
                  layer.getMlpCoefBias()}) {
    if (!v)
      continue;
    FailureOr<RankedTensorType> t = staticType(v, "the router and gate weights");
    if (failed(t))
      return failure();
    shape.replicatedBytes += bytesOf(*t);
  }
  return shape;
}

/// The grid axes a tensor dimension is split over, without axes of size 1.
SmallVector<int16_t> liveAxes(ArrayRef<int16_t> axes, const Plan &plan) {
  SmallVector<int16_t> live;
  for (int16_t a : axes) {
    int64_t size = a == kExpertAxis ? plan.expert
                   : a == kTensorAxis ? plan.slicing
                                      : plan.data;
    if (size > 1)
      live.push_back(a);
  }
  return live;
}

/// Split axes, per tensor dimension, of the weight in `segment`.
SmallVector<SmallVector<int16_t>> splitAxesFor(unsigned segment,
                                               const Plan &plan) {
  SmallVector<int16_t> expert = liveAxes({kExpertAxis}, plan);
  SmallVector<int16_t> slice = liveAxes({kTensorAxis}, plan);
  SmallVector<int16_t> dense;
  if (plan.tensor > 1)
    dense = plan.tensor == plan.slicing
                ? liveAxes({kTensorAxis}, plan)
                : liveAxes({kExpertAxis, kTensorAxis}, plan);
  SmallVector<SmallVector<int16_t>> split;
  switch (segment) {
  case WUp:
  case WGate: // [E, d, f]
    split = {expert, {}, slice};
    break;
  case WDown: // [E, f, d]
    split = {expert, slice};
    break;
  case SharedUp:
  case SharedGate:
  case MlpUp: // [d, f]
    split = {{}, dense};
    break;
  case SharedDown:
  case MlpDown: // [f, d]
    split = {dense};
    break;
  default: // router weight and bias, gate vectors: replicated
    break;
  }
  while (!split.empty() && split.back().empty())
    split.pop_back();
  if (split.empty())
    split.push_back({});
  return split;
}

void PlanParallelismPass::annotate(ModuleOp module, ArrayRef<LayerOp> layers,
                                   const PlanCost &cost) {
  MLIRContext *ctx = &getContext();
  const Plan &plan = cost.plan;
  OpBuilder builder(ctx);

  builder.setInsertionPointToStart(module.getBody());
  auto grid = shard::GridOp::create(builder, module.getLoc(), kGridName,
                                    ArrayRef<int64_t>{plan.data, plan.expert,
                                                      plan.slicing});
  grid->setAttr("moe.axes", builder.getStrArrayAttr({"data", "expert", "tensor"}));
  auto gridRef = FlatSymbolRefAttr::get(ctx, kGridName);

  // One sharding op per (block, split) and one shard op per (value, split);
  // block arguments are annotated at the top of their block, in order.
  using SplitKey = std::pair<Block *, std::string>;
  std::map<SplitKey, Value> shardings;
  std::map<std::pair<void *, std::string>, Value> sharded;
  llvm::DenseMap<Block *, Operation *> lastInBlock;

  auto keyOf = [](ArrayRef<SmallVector<int16_t>> split) {
    std::string key;
    for (const auto &axes : split) {
      key += '[';
      for (int16_t a : axes)
        key += std::to_string(a) + ",";
      key += ']';
    }
    return key;
  };

  auto setInsertionPoint = [&](Value v) -> Block * {
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      Block *block = arg.getOwner();
      auto it = lastInBlock.find(block);
      if (it == lastInBlock.end())
        builder.setInsertionPointToStart(block);
      else
        builder.setInsertionPointAfter(it->second);
      return block;
    }
    builder.setInsertionPointAfter(v.getDefiningOp());
    return nullptr;
  };

  auto shardOperand = [&](OpOperand &operand,
                          ArrayRef<SmallVector<int16_t>> split) {
    Value value = operand.get();
    std::string key = keyOf(split);
    auto found = sharded.find({value.getAsOpaquePointer(), key});
    if (found != sharded.end()) {
      operand.set(found->second);
      return;
    }
    Block *block = setInsertionPoint(value);
    Value sharding;
    auto known = block ? shardings.find({block, key}) : shardings.end();
    if (known != shardings.end()) {
      sharding = known->second;
    } else {
      SmallVector<shard::GridAxesAttr> axes;
      for (const auto &a : split)
        axes.push_back(DenseI16ArrayAttr::get(ctx, a));
      auto op = shard::ShardingOp::create(builder, value.getLoc(), gridRef,
                                          axes);
      sharding = op.getResult();
      if (block) {
        shardings[{block, key}] = sharding;
        lastInBlock[block] = op;
      }
    }
    auto shardOp =
        shard::ShardOp::create(builder, value.getLoc(), value, sharding);
    if (block)
      lastInBlock[block] = shardOp;
    sharded[{value.getAsOpaquePointer(), key}] = shardOp.getResult();
    operand.set(shardOp.getResult());
  };
  for (LayerOp layer : layers) {
    for (unsigned segment = RouterWeight; segment < NumSegments; ++segment) {
      auto [start, length] = layer.getODSOperandIndexAndLength(segment);
      if (length == 0)
        continue;
      shardOperand(layer->getOpOperand(start), splitAxesFor(segment, plan));
    }
  }

  // Tensor-sliced attention: every GPU of the slicing group keeps its share
  // of the heads (query, key and value columns, output rows; biases and
  // whole-projection norms with them; per-head norms whole). moe-partition
  // narrows the heads and the caches and sums the output projections.
  // (Multi-head latent attention stays replicated.)
  if (attentionTp > 1) {
    SmallVector<int16_t> axes =
        attentionTp == plan.slicing
            ? liveAxes({kTensorAxis}, plan)
            : liveAxes({kExpertAxis, kTensorAxis}, plan);
    SmallVector<SmallVector<int16_t>> cols{{}, axes}, rows{axes};
    module.walk([&](AttentionOp op) {
      shardOperand(op.getWQMutable(), cols);
      shardOperand(op.getWKMutable(), cols);
      shardOperand(op.getWVMutable(), cols);
      shardOperand(op.getWOMutable(), rows);
      auto optional = [&](MutableOperandRange range,
                          ArrayRef<SmallVector<int16_t>> split) {
        for (OpOperand &operand : range)
          shardOperand(operand, split);
      };
      optional(op.getQBiasMutable(), rows);
      optional(op.getKBiasMutable(), rows);
      optional(op.getVBiasMutable(), rows);
      int64_t hd = cast<RankedTensorType>(op.getKeyCacheIn().getType())
                       .getDimSize(2);
      // Per-head norms ([hd]) stay whole; whole-projection norms split.
      if (Value qn = op.getQNorm();
          qn && cast<RankedTensorType>(qn.getType()).getDimSize(0) != hd) {
        optional(op.getQNormMutable(), rows);
        optional(op.getKNormMutable(), rows);
      }
      op->setAttr("moe.attention_axes", DenseI16ArrayAttr::get(ctx, axes));
    });
    // Dense MLP blocks (moe.mlp between the attention blocks: DeepSeek's
    // first layers, Qwen's mlp_only_layers) slice their ffn the same way.
    module.walk([&](MlpOp op) {
      shardOperand(op.getWUpMutable(), cols);
      for (OpOperand &gate : op.getWGateMutable())
        shardOperand(gate, cols);
      shardOperand(op.getWDownMutable(), rows);
      op->setAttr("moe.mlp_axes", DenseI16ArrayAttr::get(ctx, axes));
    });
  }

  for (auto [constLayer, c] : llvm::zip(layers, cost.layers)) {
    LayerOp layer = constLayer;
    // Expert parallelism moves tokens by all-to-all or by one all-reduce
    // of the replica's tokens: the cost model's choice for this layer.
    std::string dispatch;
    if (plan.expert > 1)
      dispatch = c.allReduceDispatch ? "all-reduce" : "all-to-all";
    NamedAttrList summary;
    summary.append("dp", builder.getI64IntegerAttr(plan.data));
    summary.append("ep", builder.getI64IntegerAttr(plan.expert));
    summary.append("es", builder.getI64IntegerAttr(plan.slicing));
    summary.append("tp", builder.getI64IntegerAttr(plan.tensor));
    summary.append("grid", gridRef);
    if (!dispatch.empty())
      summary.append("dispatch", builder.getStringAttr(dispatch));
    summary.append("weight_bytes_per_gpu",
                   builder.getI64IntegerAttr(int64_t(c.weightBytesPerGpu)));
    summary.append("step_ns",
                   builder.getI64IntegerAttr(int64_t(std::llround(c.stepSeconds() * 1e9))));
    layer->setAttr("moe.plan", summary.getDictionary(ctx));

    layer.emitRemark() << "moe-plan-parallelism: ep=" << plan.expert
                       << " es=" << plan.slicing << " tp=" << plan.tensor
                       << " dp=" << plan.data << " on " << plan.gpus()
                       << " GPUs: " << formatBytes(c.weightBytesPerGpu)
                       << " of weights per GPU for this layer ("
                       << formatBytes(cost.weightBytesPerGpu)
                       << " for the model); step "
                       << formatTime(c.stepSeconds()) << " = max(compute "
                       << formatTime(c.computeSeconds) << ", memory "
                       << formatTime(c.memorySeconds) << ") + communication "
                       << formatTime(c.commSeconds) << " (per GPU: all-to-all "
                       << formatBytes(c.allToAllBytes) << ", all-gather "
                       << formatBytes(c.allGatherBytes) << ", all-reduce "
                       << formatBytes(c.allReduceBytes) << ")";
    if (!dispatch.empty()) {
      InFlightDiagnostic remark = layer.emitRemark();
      remark << "moe-plan-parallelism: dispatch by " << dispatch
             << " (all-to-all and gathers "
             << formatTime(c.allToAllPathSeconds)
             << ", one all-reduce of the replica's tokens ";
      if (c.allReducePathSeconds >= 0)
        remark << formatTime(c.allReducePathSeconds) << ")";
      else
        remark << "not possible: the dense parts are not sliced over the "
                  "whole replica)";
    }
  }
}

void PlanParallelismPass::printReport(ArrayRef<LayerOp> layers,
                                      ArrayRef<LayerShape> shapes,
                                      const CostModel &model,
                                      ArrayRef<PlanCost> ranked,
                                      Objective obj) {
  llvm::raw_ostream &os = llvm::outs();
  const HardwareSpec &hw = model.hardware();
  const PlanCost &best = ranked.front();
  const Plan &p = best.plan;
  os << "moe-plan-parallelism: " << gpus << " GPUs (" << gpusPerHost
     << " per host), " << formatBytes(hw.memoryBytes) << " per GPU ("
     << formatBytes(hw.usableBytes()) << " for weights), objective "
     << objective << ", tokens per step: " << tokens
     << (obj == Objective::Latency ? " per replica" : " per GPU") << "\n";
  os << "model: " << layers.size() << " moe.layer x " << layersMultiplier
     << " = " << int64_t(layers.size()) * layersMultiplier << " layers, "
     << formatBytes(CostModel::totalWeightBytes(shapes)) << " of weights\n";
  os << "plan: dp=" << p.data << " ep=" << p.expert << " es=" << p.slicing
     << " tp=" << p.tensor << " on @" << kGridName << "(shape = " << p.data
     << "x" << p.expert << "x" << p.slicing << ") [data, expert, tensor]\n";
  os << llvm::format("%6s %8s %6s %7s %7s %10s %12s %11s %11s %11s %11s\n",
                     "layer", "experts", "top-k", "hidden", "ffn", "dense-ffn",
                     "weights/GPU", "compute", "memory", "comm", "step");
  for (size_t i = 0; i < shapes.size(); ++i) {
    const LayerShape &s = shapes[i];
    const LayerCost &c = best.layers[i];
    int64_t denseFfn = 0;
    for (const DenseMlpShape &d : s.dense)
      denseFfn += d.ffn;
    os << llvm::format("%6zu %8lld %6lld %7lld %7lld %10lld %12s %11s %11s "
                       "%11s %11s\n",
                       i, (long long)s.numExperts, (long long)s.topK,
                       (long long)s.hidden, (long long)s.expertFfn,
                       (long long)denseFfn,
                       formatBytes(c.weightBytesPerGpu).c_str(),
                       formatTime(c.computeSeconds).c_str(),
                       formatTime(c.memorySeconds).c_str(),
                       formatTime(c.commSeconds).c_str(),
                       formatTime(c.stepSeconds()).c_str());
  }
  os << llvm::format("%6s %8s %6s %7s %7s %10s %12s %11s %11s %11s %11s\n",
                     "model", "", "", "", "", "",
                     formatBytes(best.weightBytesPerGpu).c_str(),
                     formatTime(best.computeSeconds).c_str(),
                     formatTime(best.memorySeconds).c_str(),
                     formatTime(best.commSeconds).c_str(),
                     formatTime(best.stepSeconds).c_str());
  os << llvm::format("replica batch: %lld tokens; throughput: %.0f tokens/s "
                     "over %lld replicas\n",
                     (long long)best.replicaTokens, best.tokensPerSecond,
                     (long long)p.data);
  size_t shown = std::min<size_t>(ranked.size(), 6);
  os << "candidates that fit and partition (best " << shown << " of "
     << ranked.size() << "):\n";
  os << llvm::format("%6s %4s %4s %4s %4s %12s %11s %12s\n", "rank", "dp",
                     "ep", "es", "tp", "weights/GPU", "step", "tokens/s");
  for (size_t i = 0; i < shown; ++i) {
    const PlanCost &c = ranked[i];
    os << llvm::format("%6zu %4lld %4lld %4lld %4lld %12s %11s %12.0f\n",
                       i + 1, (long long)c.plan.data, (long long)c.plan.expert,
                       (long long)c.plan.slicing, (long long)c.plan.tensor,
                       formatBytes(c.weightBytesPerGpu).c_str(),
                       formatTime(c.stepSeconds).c_str(), c.tokensPerSecond);
  }
  os.flush();
}

void PlanParallelismPass::runOnOperation() {
  ModuleOp module = getOperation();
  Objective obj;
  if (failed(checkOptions(module, obj)))
    return signalPassFailure();

  SmallVector<LayerOp> layers;
  module.walk([&](LayerOp op) { layers.push_back(op); });
  if (layers.empty())
    return;
  if (SymbolTable::lookupSymbolIn(module, kGridName)) {
    module.emitError("moe-plan-parallelism: the module already has a @")
        << kGridName << "; it has been planned before";
    return signalPassFailure();
  }

  SmallVector<LayerShape> shapes;
  for (LayerOp layer : layers) {
    FailureOr<LayerShape> shape = shapeOf(layer);
    if (failed(shape))
      return signalPassFailure();
    shapes.push_back(*shape);
  }

  Dispatch policy = dispatchMode == "all-to-all"   ? Dispatch::AllToAll
                    : dispatchMode == "all-reduce" ? Dispatch::AllReduce
                                                   : Dispatch::Auto;
  CostModel model(hardware(), tokens, minSlice, policy);
  // dp/ep/es/tp pin parts of the plan (tests, or a user who knows better);
  // a pinned layout that moe-partition refuses goes on to its message.
  bool anyPin = fixDp || fixEp || fixEs || fixTp;
  SmallVector<PlanCost> ranked =
      model.rankPlans(shapes, gpus, obj, /*partitionableOnly=*/!anyPin);
  auto pinned = [&](const Plan &p) {
    return (fixDp == 0 || p.data == fixDp) && (fixEp == 0 || p.expert == fixEp) &&
           (fixEs == 0 || p.slicing == fixEs) && (fixTp == 0 || p.tensor == fixTp);
  };
  if (anyPin) {
    if (llvm::none_of(model.candidatePlans(shapes, gpus), pinned)) {
      module.emitError("moe-plan-parallelism: no layout of ")
          << int64_t(gpus) << " GPUs has dp=" << int64_t(fixDp)
          << " ep=" << int64_t(fixEp) << " es=" << int64_t(fixEs)
          << " tp=" << int64_t(fixTp)
          << " (0: any; ep must divide the experts, es and tp the ffn "
             "dimensions in slices of at least min-slice columns)";
      return signalPassFailure();
    }
    llvm::erase_if(ranked, [&](const PlanCost &c) { return !pinned(c.plan); });
  }
  if (ranked.empty()) {
    double total = CostModel::totalWeightBytes(shapes);
    int64_t needed = model.minimumGpus(shapes);
    InFlightDiagnostic diag = module.emitError("moe-plan-parallelism: ");
    diag << "the model needs " << formatBytes(total) << " of weights ("
         << layers.size() << " moe.layer x " << int64_t(layersMultiplier)
         << "); at " << formatBytes(model.hardware().memoryBytes)
         << " per GPU (" << formatBytes(model.hardware().usableBytes())
         << " for weights) it needs at least ";
    if (needed > 0)
      diag << needed << " GPUs";
    else
      diag << "more GPUs than can be planned";
    diag << ", got " << int64_t(gpus);
    return signalPassFailure();
  }

  const Plan &best = ranked.front().plan;
  if (attentionTp != 1) {
    if (attentionTp != best.slicing && attentionTp != best.expert * best.slicing) {
      module.emitError("moe-plan-parallelism: attention-tp must be 1, es (")
          << best.slicing << ") or ep x es (" << best.expert * best.slicing
          << ") of the chosen plan, got " << int64_t(attentionTp);
      return signalPassFailure();
    }
    WalkResult bad = module.walk([&](AttentionOp op) {
      if (op.getNumHeads() % attentionTp != 0 ||
          op.getNumKvHeads() % attentionTp != 0) {
        op.emitError("moe-plan-parallelism: attention-tp=")
            << int64_t(attentionTp) << " must divide the " << op.getNumHeads()
            << " query and " << op.getNumKvHeads() << " key/value heads";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (bad.wasInterrupted())
      return signalPassFailure();
    bad = module.walk([&](MlpOp op) {
      int64_t f = cast<RankedTensorType>(op.getWUp().getType()).getDimSize(1);
      if (f % attentionTp != 0) {
        op.emitError("moe-plan-parallelism: attention-tp=")
            << int64_t(attentionTp) << " must divide the dense MLP's ffn " << f;
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (bad.wasInterrupted())
      return signalPassFailure();
  }
  annotate(module, layers, ranked.front());
  if (report)
    printReport(layers, shapes, model, ranked, obj);
}

} // namespace
