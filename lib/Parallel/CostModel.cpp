//===- CostModel.cpp - Cost model of the parallelism planner ---------------===//
//
// Part of moe-compiler.
//
// Formulas, per layer and for the busiest GPU of one replica of P = expert x
// slicing GPUs processing T tokens with top-k routing over E experts:
//
//   weights   experts / P + dense / tensor + replicated (router, gates)
//   FLOPs     T k / expert rows through 1/slicing of each expert's matrices,
//             plus the dense parts and the router for the tokens of the
//             busiest dense group, ceil(T / (P / tensor)) tokens
//   HBM read  the expected number of distinct experts hit on the busiest GPU
//             (binomial per GPU, maximum over the expert axis) times the bytes
//             of 1/slicing of an expert, plus the dense parts / tensor and the
//             replicated weights
//   comm      replicated tokens (expert slicing alone; expert parallelism
//             with the all-reduce dispatch): one all-reduce of the T x d f32
//             partial outputs over the replica. All-to-all dispatch: the
//             dispatch and combine all-to-alls over the expert axis (each
//             GPU sends its T k / P assignments: parallelism-coordinated,
//             tokens replicated by tensor slicing are sent once); with expert
//             slicing an all-gather of the expert group's rows before the
//             experts and a reduce-scatter of the partial sums after; with
//             tensor-sliced dense parts an all-reduce after them and, with
//             expert parallelism, an all-gather of the combined tokens. The
//             dispatch is the cheaper of the two unless it is fixed, or the
//             routing is capacity-limited (all-reduce).
//
// Step time = max(compute, HBM) + communication. Collectives cost a latency
// per level they cross plus their bytes over NVLink inside a host and over
// the GPU's NIC between hosts (hierarchical algorithms).
//
//===----------------------------------------------------------------------===//

#include "moe/Parallel/CostModel.h"

#include "llvm/ADT/STLExtras.h"

#include <algorithm>
#include <cmath>
#include <tuple>

using namespace mlir::moe;

namespace {

llvm::SmallVector<int64_t> divisors(int64_t n) {
  llvm::SmallVector<int64_t> low, high;
  for (int64_t i = 1; i * i <= n; ++i) {
    if (n % i)
      continue;
    low.push_back(i);
    if (i != n / i)
      high.push_back(n / i);
  }
  low.append(high.rbegin(), high.rend());
  return low;
}

bool hasDense(llvm::ArrayRef<LayerShape> layers) {
  return llvm::any_of(layers,
                      [](const LayerShape &l) { return !l.dense.empty(); });
}

double layerWeightBytesPerGpu(const LayerShape &layer, const Plan &plan) {
  double bytes = layer.expertBytes() / double(plan.gpusPerReplica()) +
                 double(layer.replicatedBytes);
  for (const DenseMlpShape &d : layer.dense)
    bytes += d.bytes(layer.hidden) / double(plan.tensor);
  return bytes;
}

double modelWeightBytesPerGpu(llvm::ArrayRef<LayerShape> layers,
                              const Plan &plan) {
  double bytes = 0;
  for (const LayerShape &l : layers)
    bytes += layerWeightBytesPerGpu(l, plan) * double(l.repeat);
  return bytes;
}

} // namespace

double LayerShape::denseBytes() const {
  double bytes = 0;
  for (const DenseMlpShape &d : dense)
    bytes += d.bytes(hidden);
  return bytes;
}

bool CostModel::isValidGpuCount(int64_t gpus) const {
  return gpus >= 1 && hw.gpusPerHost >= 1 &&
         (gpus <= hw.gpusPerHost || gpus % hw.gpusPerHost == 0);
}

double CostModel::totalWeightBytes(llvm::ArrayRef<LayerShape> layers) {
  double bytes = 0;
  for (const LayerShape &l : layers)
    bytes += l.bytes() * double(l.repeat);
  return bytes;
}

llvm::SmallVector<Plan>
CostModel::candidatePlans(llvm::ArrayRef<LayerShape> layers,
                          int64_t gpus) const {
  llvm::SmallVector<Plan> plans;
  if (gpus < 1)
    return plans;
  bool dense = hasDense(layers);
  auto dividesAll = [&](int64_t n, auto field) {
    return llvm::all_of(layers, [&](const LayerShape &l) {
      return field(l) % n == 0;
    });
  };
  auto slices = [&](int64_t ffn, int64_t n) {
    return ffn % n == 0 && (n == 1 || ffn / n >= minSlice);
  };
  auto denseDivides = [&](int64_t n) {
    return llvm::all_of(layers, [&](const LayerShape &l) {
      return llvm::all_of(l.dense, [&](const DenseMlpShape &d) {
        return slices(d.ffn, n);
      });
    });
  };
  for (int64_t data : divisors(gpus)) {
    int64_t replica = gpus / data;
    for (int64_t expert : divisors(replica)) {
      int64_t slicing = replica / expert;
      if (!dividesAll(expert, [](const LayerShape &l) { return l.numExperts; }) ||
          !llvm::all_of(layers, [&](const LayerShape &l) {
            return slices(l.expertFfn, slicing);
          }))
        continue;
      llvm::SmallVector<int64_t, 3> tensors = {1};
      if (dense) {
        if (slicing > 1)
          tensors.push_back(slicing);
        if (expert > 1)
          tensors.push_back(replica);
      }
      for (int64_t tensor : tensors) {
        if (tensor > 1 && !denseDivides(tensor))
          continue;
        plans.push_back(Plan{data, expert, slicing, tensor});
      }
    }
  }
  return plans;
}

double CostModel::expectedBusiestHits(int64_t localExperts, int64_t groups,
                                      double hitProbability) {
  if (localExperts <= 0 || groups <= 0 || hitProbability <= 0)
    return 0;
  if (hitProbability >= 1)
    return double(localExperts);
  int64_t n = localExperts;
  double logP = std::log(hitProbability), logQ = std::log1p(-hitProbability);
  // E[max] = sum_{x >= 0} P(max > x) = sum_x 1 - F(x)^groups.
  double cdf = 0, expected = 0;
  for (int64_t x = 0; x < n; ++x) {
    double logPmf = std::lgamma(double(n) + 1) - std::lgamma(double(x) + 1) -
                    std::lgamma(double(n - x) + 1) + double(x) * logP +
                    double(n - x) * logQ;
    cdf = std::min(1.0, cdf + std::exp(logPmf));
    double allBelow = cdf <= 0 ? 0 : std::exp(double(groups) * std::log(cdf));
    expected += 1.0 - allBelow;
  }
  return expected;
}

double CostModel::allToAllSeconds(double bytesPerGpu, int64_t ranks,
                                  int64_t peersPerHost) const {
  if (ranks <= 1)
    return 0;
  peersPerHost = std::clamp<int64_t>(peersPerHost, 1, ranks);
  double intra = bytesPerGpu * double(peersPerHost - 1) / double(ranks);
  double inter = bytesPerGpu * double(ranks - peersPerHost) / double(ranks);
  double seconds = 0;
  if (peersPerHost > 1)
    seconds += hw.nvlinkLatencySeconds + intra / hw.nvlinkBytesPerSecond;
  if (ranks > peersPerHost)
    seconds += hw.interHostLatencySeconds + inter / hw.interHostBytesPerSecond;
  return seconds;
}

double CostModel::allGatherSeconds(double bytes, int64_t ranks,
                                   int64_t ranksPerHost) const {
  if (ranks <= 1)
    return 0;
  int64_t g = std::clamp<int64_t>(ranksPerHost, 1, ranks);
  int64_t h = (ranks + g - 1) / g;
  double seconds = 0;
  // Across hosts first, between the GPUs of equal local rank: each receives
  // (h - 1) shares of bytes / ranks; then inside every host the h-fold shares.
  if (h > 1)
    seconds += hw.interHostLatencySeconds +
               double(h - 1) * bytes / double(ranks) / hw.interHostBytesPerSecond;
  if (g > 1)
    seconds += hw.nvlinkLatencySeconds +
               bytes * double(g - 1) / double(g) / hw.nvlinkBytesPerSecond;
  return seconds;
}

double CostModel::allReduceSeconds(double bytes, int64_t ranks,
                                   int64_t ranksPerHost) const {
  if (ranks <= 1)
    return 0;
  // Reduce-scatter then all-gather: twice the bytes, one latency per level
  // (NCCL pipelines the two halves).
  double once = allGatherSeconds(bytes, ranks, ranksPerHost);
  int64_t g = std::clamp<int64_t>(ranksPerHost, 1, ranks);
  double latency = (g > 1 ? hw.nvlinkLatencySeconds : 0) +
                   (ranks > g ? hw.interHostLatencySeconds : 0);
  return 2 * once - latency;
}

LayerCost CostModel::estimateLayer(const LayerShape &layer, const Plan &plan,
                                   int64_t replicaTokens) const {
  LayerCost c;
  const double t = double(replicaTokens);
  const int64_t experts = std::max<int64_t>(layer.numExperts, 1);
  const double k = double(std::min(layer.topK, experts));
  const double d = double(layer.hidden);
  const double b = double(layer.elementBytes);
  const int64_t ep = plan.expert, es = plan.slicing, tp = plan.tensor;
  const int64_t replica = plan.gpusPerReplica();
  const int64_t perHost = hw.gpusPerHost;

  c.weightBytesPerGpu = layerWeightBytesPerGpu(layer, plan);

  // Routed experts: the expert group's rows, 1/es of every matrix.
  double rowsPerGroup = t * k / double(ep);
  c.flopsPerGpu = rowsPerGroup * 2.0 * double(layer.expertMatrices) * d *
                  double(layer.expertFfn) / double(es);
  double pHit = 1.0 - std::pow(1.0 - k / double(experts), t);
  double hits = expectedBusiestHits(experts / ep, ep, pHit);
  c.hbmBytesPerGpu = hits * layer.bytesPerExpert() / double(es);

  // Dense parts and the router, on the busiest dense group.
  double denseGroups = double(replica / tp);
  double groupTokens = std::ceil(t / denseGroups);
  for (const DenseMlpShape &m : layer.dense) {
    c.flopsPerGpu += groupTokens * 2.0 * double(m.matrices) * d *
                     double(m.ffn) / double(tp);
    c.hbmBytesPerGpu += m.bytes(layer.hidden) / double(tp);
  }
  c.flopsPerGpu += groupTokens * 2.0 * d * double(experts);
  c.hbmBytesPerGpu += double(layer.replicatedBytes);

  // Collectives. Replicated tokens: every GPU of the replica runs the layer
  // on all of them with its experts (and its slices), and one all-reduce
  // sums the f32 partial outputs. The partitioner does this for expert
  // slicing alone, and for expert parallelism with the all-reduce dispatch;
  // it needs the dense parts sliced over the whole replica.
  bool replicatedOk = layer.dense.empty() || tp == replica;
  LayerCost viaAllReduce, viaAllToAll;
  if (replica > 1 && replicatedOk) {
    double bytes = t * d * 4.0;
    viaAllReduce.allReduceBytes =
        2 * bytes * double(replica - 1) / double(replica);
    viaAllReduce.commSeconds = allReduceSeconds(
        bytes, replica, std::min<int64_t>(replica, perHost));
  }
  // All-to-all dispatch and combine (each GPU sends its T k / P
  // assignments), with expert slicing an all-gather of the group's rows and
  // a reduce-scatter of the partial sums, with tensor-sliced dense parts an
  // all-reduce and an all-gather of the combined tokens.
  if (ep > 1) {
    double sent = t * k / double(replica) * d * b;
    int64_t peers = std::min<int64_t>(ep, std::max<int64_t>(1, perHost / es));
    viaAllToAll.allToAllBytes = 2 * sent;
    viaAllToAll.commSeconds += 2 * allToAllSeconds(sent, ep, peers);
  }
  if (es > 1) {
    double rows = std::min(t, rowsPerGroup);
    double bytes = rows * d * b;
    int64_t ranksPerHost = std::min<int64_t>(es, perHost);
    viaAllToAll.allGatherBytes += 2 * bytes * double(es - 1) / double(es);
    viaAllToAll.commSeconds += 2 * allGatherSeconds(bytes, es, ranksPerHost);
  }
  if (tp > 1) {
    double bytes = groupTokens * d * b;
    int64_t ranksPerHost = std::min<int64_t>(tp, perHost);
    viaAllToAll.allReduceBytes += 2 * bytes * double(tp - 1) / double(tp);
    viaAllToAll.commSeconds += allReduceSeconds(bytes, tp, ranksPerHost);
    if (ep > 1) {
      viaAllToAll.allGatherBytes += bytes * double(tp - 1) / double(tp);
      viaAllToAll.commSeconds += allGatherSeconds(bytes, tp, ranksPerHost);
    }
  }
  bool allReduce = false;
  if (replica > 1 && replicatedOk) {
    if (ep == 1 || dispatch == Dispatch::AllReduce)
      allReduce = true;
    else if (dispatch == Dispatch::Auto)
      allReduce = layer.capacityLimited ||
                  viaAllReduce.commSeconds < viaAllToAll.commSeconds;
  }
  if (ep > 1) {
    c.allToAllPathSeconds = viaAllToAll.commSeconds;
    c.allReducePathSeconds = replicatedOk ? viaAllReduce.commSeconds : -1;
  }
  // What moe-partition refuses (the checks of Partition.cpp's
  // partitionLayer and partitionReplicated): replicated tokens beside dense parts not
  // sliced over the whole replica; with all-to-all, dense parts replicated
  // beside sliced experts or sliced over the expert axis, and
  // capacity-limited routing.
  if (replica > 1) {
    bool dense = !layer.dense.empty();
    if (allReduce)
      c.partitionable = replicatedOk;
    else if (ep == 1)
      c.partitionable = false;
    else
      c.partitionable = !(dense && es > 1 && tp == 1) &&
                        !(dense && tp > es) && !layer.capacityLimited;
  }
  // With replicated tokens every GPU routes all of them.
  if (allReduce)
    c.flopsPerGpu += (t - groupTokens) * 2.0 * d * double(experts);
  const LayerCost &comm = allReduce ? viaAllReduce : viaAllToAll;
  c.allReduceDispatch = allReduce;
  c.allToAllBytes = comm.allToAllBytes;
  c.allGatherBytes = comm.allGatherBytes;
  c.allReduceBytes = comm.allReduceBytes;
  c.commSeconds = comm.commSeconds;

  c.computeSeconds = c.flopsPerGpu / hw.flopsPerSecond;
  c.memorySeconds = c.hbmBytesPerGpu / hw.hbmBytesPerSecond;
  return c;
}

PlanCost CostModel::estimate(llvm::ArrayRef<LayerShape> layers,
                             const Plan &plan, Objective objective) const {
  PlanCost cost;
  cost.plan = plan;
  cost.replicaTokens = replicaTokens(plan, objective);
  for (const LayerShape &l : layers) {
    LayerCost c = estimateLayer(l, plan, cost.replicaTokens);
    double r = double(l.repeat);
    cost.weightBytesPerGpu += c.weightBytesPerGpu * r;
    cost.computeSeconds += c.computeSeconds * r;
    cost.memorySeconds += c.memorySeconds * r;
    cost.commSeconds += c.commSeconds * r;
    cost.stepSeconds += c.stepSeconds() * r;
    cost.partitionable &= c.partitionable;
    cost.layers.push_back(c);
  }
  cost.fits = cost.weightBytesPerGpu <= hw.usableBytes();
  cost.tokensPerSecond = cost.stepSeconds > 0
                             ? double(plan.data) * double(cost.replicaTokens) /
                                   cost.stepSeconds
                             : 0;
  return cost;
}

double CostModel::score(const PlanCost &cost, Objective objective) {
  if (objective == Objective::Latency)
    return cost.stepSeconds;
  return cost.tokensPerSecond > 0 ? 1.0 / cost.tokensPerSecond : 0;
}

llvm::SmallVector<PlanCost>
CostModel::rankPlans(llvm::ArrayRef<LayerShape> layers, int64_t gpus,
                     Objective objective, bool partitionableOnly) const {
  llvm::SmallVector<PlanCost> fitting;
  for (const Plan &p : candidatePlans(layers, gpus)) {
    PlanCost c = estimate(layers, p, objective);
    if (c.fits && (c.partitionable || !partitionableOnly))
      fitting.push_back(std::move(c));
  }
  auto key = [&](const PlanCost &c) {
    return std::make_tuple(score(c, objective), -c.plan.expert,
                           c.plan.slicing, c.plan.tensor, c.plan.data);
  };
  llvm::sort(fitting, [&](const PlanCost &a, const PlanCost &b) {
    return key(a) < key(b);
  });
  // Plans within 1% of the best remaining one count as equal: order them by
  // preference, not by noise in the estimates.
  // More expert parallelism first; but where every layer keeps the tokens
  // replicated (all-reduce dispatch), more expert slicing first: measured on
  // two H200s, es=2 was as fast as or faster than ep=2 with the all-reduce
  // at every size tried (192 vs 224 us, 601 vs 732 us for a Mixtral-8x7B
  // layer at 1 and 64 tokens; test/bench/results/gpu-ranked-2gpu-2026-11-30.md),
  // which the model, blind to the busiest GPU's extra rows, calls a tie.
  auto preference = [](const PlanCost &c) {
    bool replicated = llvm::all_of(
        c.layers, [](const LayerCost &l) { return l.allReduceDispatch; });
    return std::make_tuple(replicated ? c.plan.expert : -c.plan.expert,
                           replicated ? -c.plan.slicing : c.plan.slicing,
                           c.plan.tensor, c.plan.data);
  };
  llvm::SmallVector<PlanCost> ranked;
  size_t i = 0;
  while (i < fitting.size()) {
    double limit = score(fitting[i], objective) * 1.01;
    size_t j = i;
    while (j < fitting.size() && score(fitting[j], objective) <= limit)
      ++j;
    std::stable_sort(fitting.begin() + i, fitting.begin() + j,
                     [&](const PlanCost &a, const PlanCost &b) {
                       return preference(a) < preference(b);
                     });
    for (; i < j; ++i)
      ranked.push_back(fitting[i]);
  }
  std::stable_partition(ranked.begin(), ranked.end(),
                        [](const PlanCost &c) { return c.partitionable; });
  return ranked;
}

std::optional<PlanCost> CostModel::choose(llvm::ArrayRef<LayerShape> layers,
                                          int64_t gpus,
                                          Objective objective) const {
  llvm::SmallVector<PlanCost> ranked = rankPlans(layers, gpus, objective);
  if (ranked.empty())
    return std::nullopt;
  return ranked.front();
}

int64_t CostModel::minimumGpus(llvm::ArrayRef<LayerShape> layers,
                               int64_t limit) const {
  double usable = hw.usableBytes();
  if (usable <= 0)
    return 0;
  double lower = std::ceil(totalWeightBytes(layers) / usable);
  int64_t n = std::max<int64_t>(1, int64_t(std::min<double>(lower, double(limit) + 1)));
  for (; n <= limit; ++n) {
    if (!isValidGpuCount(n)) {
      // Round up to the next whole host.
      n = (n + hw.gpusPerHost - 1) / hw.gpusPerHost * hw.gpusPerHost - 1;
      continue;
    }
    for (const Plan &p : candidatePlans(layers, n))
      if (p.data == 1 && modelWeightBytesPerGpu(layers, p) <= usable)
        return n;
  }
  return 0;
}
