//===- CostModel.h - Cost model of the parallelism planner ------*- C++ -*-===//
//
// Part of moe-compiler.
//
// The numbers behind `moe-plan-parallelism`: weight bytes per GPU, FLOPs,
// HBM bytes read per step and collective volumes over hierarchical links, for
// one plan (data x expert x tensor grid, with a tensor-slicing degree for the
// dense parts). Plain C++ over LLVM ADT, without MLIR IR, so that unit tests
// can call it directly. See lib/Parallel/PlanParallelism.cpp for the design.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PARALLEL_COSTMODEL_H
#define MOE_PARALLEL_COSTMODEL_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"

#include <cstdint>
#include <optional>

namespace mlir::moe {

/// One GPU and its links. Defaults: NVIDIA H200 (141 GB HBM3e at 4.3 TB/s,
/// ~750 TFLOP/s dense bf16), NVLink at 450 GB/s per direction inside a host,
/// one 400 Gb/s NIC (50 GB/s) per GPU between hosts. The latencies are rough
/// per-collective figures for NCCL on small messages; they decide the plans
/// of decode steps with few tokens, where no collective is bandwidth-bound.
/// NVLink: 20 µs, the low end of what two H200s showed for all-reduces of
/// 8 KB to 1 MB (18-41 µs ours, 31-51 µs through torch.distributed;
/// test/bench/results/gpu-ranked-2gpu-2026-11-30.md, gpu-threads-2gpu-*.md).
struct HardwareSpec {
  double memoryBytes = 141e9;
  /// Fraction of each GPU's memory kept free for activations, the KV cache and
  /// workspace; weights may use the rest.
  double reserveFraction = 0.1;
  double hbmBytesPerSecond = 4.3e12;
  double flopsPerSecond = 750e12;
  double nvlinkBytesPerSecond = 450e9;
  double interHostBytesPerSecond = 50e9;
  double nvlinkLatencySeconds = 20e-6;
  double interHostLatencySeconds = 25e-6;
  int64_t gpusPerHost = 8;

  double usableBytes() const { return memoryBytes * (1.0 - reserveFraction); }
};

/// A dense FFN beside the experts (shared experts, PR-MoE's residual MLP).
struct DenseMlpShape {
  int64_t ffn = 0;
  /// 2 (up, down) or 3 (gated: up, gate, down).
  int64_t matrices = 2;
  int64_t elementBytes = 2;

  double bytes(int64_t hidden) const {
    return double(matrices) * double(hidden) * double(ffn) * double(elementBytes);
  }
};

/// The shape of one MoE layer, as the planner sees it.
struct LayerShape {
  int64_t numExperts = 1;
  int64_t topK = 1;
  int64_t hidden = 1;
  int64_t expertFfn = 1;
  /// 2 (up, down) or 3 (gated).
  int64_t expertMatrices = 2;
  int64_t elementBytes = 2;
  llvm::SmallVector<DenseMlpShape, 2> dense;
  /// Weights every GPU keeps whole: router weight and bias, gate vectors.
  int64_t replicatedBytes = 0;
  /// How many identical layers of the real model this one stands for.
  int64_t repeat = 1;
  /// Capacity-limited routing: expert parallelism must use the all-reduce
  /// dispatch (every GPU sees every token, so drops match one GPU's).
  bool capacityLimited = false;

  double bytesPerExpert() const {
    return double(expertMatrices) * double(hidden) * double(expertFfn) *
           double(elementBytes);
  }
  double expertBytes() const { return double(numExperts) * bytesPerExpert(); }
  double denseBytes() const;
  /// All weights of one instance of the layer.
  double bytes() const {
    return expertBytes() + denseBytes() + double(replicatedBytes);
  }
};

enum class Objective { Latency, Throughput };

/// How expert parallelism moves tokens: all-to-all dispatch and combine, or
/// every GPU of the replica routing all tokens to its own experts and one
/// all-reduce of the partial outputs; `Auto` takes the cheaper per layer.
enum class Dispatch { Auto, AllToAll, AllReduce };

/// A parallel layout. The GPUs form a grid data x expert x tensor (tensor
/// innermost, so that it stays inside a host as long as it can):
///  - `data` replicas of the whole model, each serving its own tokens;
///  - `expert` parallelism: experts split over the expert axis;
///  - `slicing`: each expert's ffn dimension split over the tensor axis
///    (DeepSpeed-MoE's expert slicing);
///  - `tensor`: tensor-slicing degree of the dense parts inside one replica,
///    1, `slicing` (the tensor axis) or `expert * slicing` (both axes); the
///    replica's other GPUs run the dense parts data-parallel.
struct Plan {
  int64_t data = 1;
  int64_t expert = 1;
  int64_t slicing = 1;
  int64_t tensor = 1;

  int64_t gpus() const { return data * expert * slicing; }
  int64_t gpusPerReplica() const { return expert * slicing; }
  bool operator==(const Plan &o) const {
    return data == o.data && expert == o.expert && slicing == o.slicing &&
           tensor == o.tensor;
  }
};

/// Estimates for one instance of a layer under a plan, for the busiest GPU.
struct LayerCost {
  double weightBytesPerGpu = 0;
  double flopsPerGpu = 0;
  double hbmBytesPerGpu = 0;
  /// Bytes each GPU sends in the dispatch and combine all-to-alls together.
  double allToAllBytes = 0;
  /// Bytes each GPU moves in all-gathers and reduce-scatters (expert slicing,
  /// and the all-gather after the combine when dense parts are tensor-sliced).
  double allGatherBytes = 0;
  /// Bytes each GPU moves in the all-reduce after tensor-sliced dense parts.
  double allReduceBytes = 0;
  double computeSeconds = 0;
  double memorySeconds = 0;
  double commSeconds = 0;
  /// Replicated tokens and one all-reduce of the partial outputs (always
  /// with expert slicing alone; the dispatch chosen with expert
  /// parallelism), else all-to-all dispatch and combine.
  bool allReduceDispatch = false;
  /// With expert parallelism: the communication of either dispatch (a
  /// negative figure where it cannot be used).
  double allToAllPathSeconds = -1, allReducePathSeconds = -1;
  /// Whether moe-partition can lay the layer out this way (e.g. replicated
  /// tokens need the dense parts sliced over the whole replica).
  bool partitionable = true;

  /// Compute and HBM reads overlap (roofline); the collectives sit between
  /// dependent steps (dispatch, experts, combine) and do not.
  double stepSeconds() const {
    return (computeSeconds > memorySeconds ? computeSeconds : memorySeconds) +
           commSeconds;
  }
};

/// Estimates for a whole model (every layer times its `repeat`).
struct PlanCost {
  Plan plan;
  /// Per layer instance, in the order of the shapes.
  llvm::SmallVector<LayerCost> layers;
  double weightBytesPerGpu = 0;
  double computeSeconds = 0;
  double memorySeconds = 0;
  double commSeconds = 0;
  /// Sum of the layers' step times: one forward step of one replica.
  double stepSeconds = 0;
  /// Tokens one replica processes per step (see CostModel::replicaTokens).
  int64_t replicaTokens = 0;
  /// All replicas together.
  double tokensPerSecond = 0;
  bool fits = false;
  /// Every layer is partitionable (LayerCost::partitionable).
  bool partitionable = true;
};

class CostModel {
public:
  /// `tokens`: tokens per step, see replicaTokens(). Expert slicing and
  /// tensor slicing leave at least `minSlice` ffn columns on every GPU (below
  /// that the GEMMs are too thin to run near the tensor-core rate).
  CostModel(HardwareSpec hw, int64_t tokens, int64_t minSlice = 1,
            Dispatch dispatch = Dispatch::Auto)
      : hw(hw), tokens(tokens), minSlice(minSlice), dispatch(dispatch) {}

  const HardwareSpec &hardware() const { return hw; }
  int64_t tokensPerStep() const { return tokens; }

  /// The batch of one replica per step. For latency, `tokens` (the step whose
  /// time is minimised). For throughput, `tokens` per GPU of the replica: a
  /// serving system fills each GPU's free memory (KV cache) with requests, so
  /// a replica of more GPUs runs a larger batch and reads its experts once
  /// for all of it.
  int64_t replicaTokens(const Plan &plan, Objective objective) const {
    return objective == Objective::Latency ? tokens
                                           : tokens * plan.gpusPerReplica();
  }

  /// Whether `gpus` can form a grid of whole hosts (or part of one host).
  bool isValidGpuCount(int64_t gpus) const;

  /// All weights of the model, every layer times its `repeat`.
  static double totalWeightBytes(llvm::ArrayRef<LayerShape> layers);

  /// Every layout of `gpus` GPUs that divides the experts, the expert ffn and
  /// the dense ffns of every layer evenly, into slices of at least `minSlice`
  /// columns, fitting or not.
  llvm::SmallVector<Plan> candidatePlans(llvm::ArrayRef<LayerShape> layers,
                                         int64_t gpus) const;

  /// One layer when a replica processes `replicaTokens` tokens per step.
  LayerCost estimateLayer(const LayerShape &layer, const Plan &plan,
                          int64_t replicaTokens) const;
  PlanCost estimate(llvm::ArrayRef<LayerShape> layers, const Plan &plan,
                    Objective objective) const;

  /// Lower is better: the step time for latency, seconds per token of all
  /// replicas together (1 / tokensPerSecond) for throughput.
  static double score(const PlanCost &cost, Objective objective);

  /// Candidates that fit and that moe-partition can lay out, best first. Plans whose scores are within 1% are
  /// ordered by preference: more expert parallelism and less expert slicing
  /// (the reverse where every layer keeps its tokens replicated: measured
  /// faster), less tensor slicing, fewer replicas; so equal costs give
  /// stable plans.
  /// With `partitionableOnly` false, layouts moe-partition refuses are ranked
  /// too (after the others), so that a user's pinned layout reaches the
  /// partitioner and its message.
  llvm::SmallVector<PlanCost> rankPlans(llvm::ArrayRef<LayerShape> layers,
                                        int64_t gpus, Objective objective,
                                        bool partitionableOnly = true) const;

  /// The best plan that fits, if any.
  std::optional<PlanCost> choose(llvm::ArrayRef<LayerShape> layers,
                                 int64_t gpus, Objective objective) const;

  /// The smallest valid GPU count at which some plan fits, searching up to
  /// `limit`; 0 when there is none.
  int64_t minimumGpus(llvm::ArrayRef<LayerShape> layers,
                      int64_t limit = int64_t(1) << 20) const;

  /// Expected maximum over `groups` GPUs of the number of distinct experts a
  /// step touches on one GPU, each GPU holding `localExperts` experts and each
  /// expert hit with probability `hitProbability` independently.
  static double expectedBusiestHits(int64_t localExperts, int64_t groups,
                                    double hitProbability);

  /// All-to-all in which every one of `ranks` GPUs sends `bytesPerGpu` in
  /// total (its own share included), `peersPerHost` of the ranks sharing a
  /// host. Hierarchical: inside the host first, then across hosts.
  double allToAllSeconds(double bytesPerGpu, int64_t ranks,
                         int64_t peersPerHost) const;

  /// All-gather (or reduce-scatter) of `bytes` in total over `ranks` GPUs,
  /// `ranksPerHost` of them per host: hierarchical ring, inside the host over
  /// NVLink, across hosts over each GPU's NIC.
  double allGatherSeconds(double bytes, int64_t ranks,
                          int64_t ranksPerHost) const;

  /// All-reduce of `bytes`: a reduce-scatter then an all-gather.
  double allReduceSeconds(double bytes, int64_t ranks,
                          int64_t ranksPerHost) const;

private:
  HardwareSpec hw;
  int64_t tokens;
  int64_t minSlice;
  Dispatch dispatch;
};

} // namespace mlir::moe

#endif // MOE_PARALLEL_COSTMODEL_H
