//===- Passes.td - moe parallelism planning -----------------*- tablegen -*-===//
//
// Part of moe-compiler. Passes that decide how a model spreads over GPUs.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PARALLEL_PASSES_TD
#define MOE_PARALLEL_PASSES_TD

include "mlir/Pass/PassBase.td"

def PlanParallelism : Pass<"moe-plan-parallelism", "ModuleOp"> {
  let summary = "Choose expert / expert-slicing / tensor / data parallelism "
                "for a model's MoE layers and write it as shard annotations";
  let description = [{
    Looks at every `moe.layer` of the module (weights are function arguments
    or other values with static shapes), estimates for every layout of `gpus`
    GPUs the weight bytes per GPU, FLOPs, HBM reads and collective traffic of
    one step (see `moe/Parallel/CostModel.h`), and picks the best layout that
    fits for the `objective`:

    - `expert` parallelism (experts split over a grid axis),
    - expert slicing (each expert's ffn dimension split over the `tensor`
      axis, when there are more GPUs than experts or when it pays for
      latency),
    - tensor slicing of the dense parts (shared experts, PR-MoE MLP) over the
      `tensor` axis or over `expert` x `tensor`,
    - `data` parallelism (whole-model replicas).

    It writes one `shard.grid @moe_grid(shape = D x E x T)`, with the axis
    names in a `moe.axes` attribute (upstream grids have no axis names),
    `shard.sharding` / `shard.shard` annotations on every weight operand of
    every layer, and a `moe.plan` summary on each layer. Each layer gets a
    remark with its numbers; `report` prints a plan table to stdout. A model
    that fits in no layout is refused with the number of GPUs it needs.

    ```mlir
    shard.grid @moe_grid(shape = 1x8x1) {moe.axes = ["data", "expert", "tensor"]}
    %sharding = shard.sharding @moe_grid split_axes = [[1]] : !shard.sharding
    %sharded = shard.shard %wu to %sharding : tensor<8x4096x14336xbf16>
    ```
  }];
  let options = [
    Option<"gpus", "gpus", "int64_t", "1", "total number of GPUs">,
    Option<"gpusPerHost", "gpus-per-host", "int64_t", "8",
           "GPUs per host (NVLink domain)">,
    Option<"memoryGB", "memory-gb", "double", "141",
           "memory per GPU in GB (1e9 bytes); 141 is an H200">,
    Option<"memoryReserve", "memory-reserve", "double", "0.1",
           "fraction of each GPU's memory kept for activations, KV cache and "
           "workspace">,
    Option<"objective", "objective", "std::string", "\"latency\"",
           "latency (time of one step) or throughput (tokens per second of "
           "all replicas)">,
    Option<"tokens", "tokens", "int64_t", "1",
           "tokens per step for the cost model: of one replica for latency, "
           "per GPU for throughput (a replica of P GPUs batches P times as "
           "many)">,
    Option<"minSlice", "min-slice", "int64_t", "128",
           "expert and tensor slicing leave at least this many ffn columns "
           "per GPU">,
    Option<"layersMultiplier", "layers-multiplier", "int64_t", "1",
           "each moe.layer stands for this many identical layers of the "
           "real model (weights and step time are scaled by it)">,
    Option<"hbmGBs", "hbm-gb-s", "double", "4300", "HBM bandwidth in GB/s">,
    Option<"tflops", "tflops", "double", "750",
           "dense tensor-core rate in TFLOP/s for the weights' type">,
    Option<"nvlinkGBs", "nvlink-gb-s", "double", "450",
           "NVLink bandwidth per GPU and direction in GB/s">,
    Option<"interHostGBs", "inter-host-gb-s", "double", "50",
           "network bandwidth per GPU between hosts in GB/s (400 Gb/s)">,
    Option<"nvlinkLatencyUs", "nvlink-latency-us", "double", "20",
           "latency of one collective inside a host, in microseconds">,
    Option<"interHostLatencyUs", "inter-host-latency-us", "double", "25",
           "extra latency of a collective that crosses hosts, in "
           "microseconds">,
    Option<"fixDp", "dp", "int64_t", "0",
           "only consider plans with this many replicas (0: any)">,
    Option<"fixEp", "ep", "int64_t", "0",
           "only consider plans with this expert-parallel degree (0: any)">,
    Option<"fixEs", "es", "int64_t", "0",
           "only consider plans with this expert-slicing degree (0: any)">,
    Option<"fixTp", "tp", "int64_t", "0",
           "only consider plans with this dense tensor-slicing degree (0: "
           "any)">,
    Option<"dispatchMode", "dispatch", "std::string", "\"auto\"",
           "how expert-parallel layers move tokens: all-to-all (dispatch and "
           "combine exchanges), all-reduce (every GPU of a replica holds all "
           "its tokens and computes its experts' share; one all-reduce), or "
           "auto (the cheaper by the cost model)">,
    Option<"attentionTp", "attention-tp", "int64_t", "1",
           "slice the heads of every moe.attention, and the ffn of every "
           "dense moe.mlp block, over this many GPUs of a replica: 1 "
           "(replicated), es (the tensor axis) or ep x es (both axes); the "
           "cost model does not weigh attention yet">,
    Option<"report", "report", "bool", "false",
           "print the plan table to stdout">
  ];
  let dependentDialects = ["::mlir::shard::ShardDialect"];
}

def PartitionParallelism : Pass<"moe-partition", "ModuleOp"> {
  let summary = "Rewrite a planned model into the program of one rank, with "
                "explicit collectives";
  let description = [{
    Takes the output of `moe-plan-parallelism` (`shard.grid @moe_grid`
    `data x expert x tensor`, `shard.shard` of every weight, `moe.plan` on
    every `moe.layer`) and produces the SPMD program every rank runs:

    - weights take their per-rank shapes; each weight argument records its
      split axes in `moe.split` (the runtime loads that slice of the
      checkpoint tensor);
    - the layer's tokens [T, d] (replicated) are sliced over the expert axis
      (`shard.all_slice`; padded to a multiple of ep, the padding rows
      routed nowhere), routed locally, sent to the ranks owning their experts
      (`moe.dispatch_exchange`), run through the local experts (their ffn
      slice when es > 1), sent back (`moe.combine_exchange`) and combined;
    - the partial sums of expert slicing and of the tensor-sliced dense parts
      (shared experts, PR-MoE MLP) meet in one `shard.all_reduce` over the
      tensor axis, and the token slices in one `shard.all_gather` over the
      expert axis, so the layer's result is replicated again.

    Modules without `@moe_grid` are left alone. Refused with a message: a
    weight that is not an argument of the function, dense parts replicated
    while the experts are sliced (tp = 1, es > 1), dense parts sliced over
    the expert axis (tp = ep x es with ep > 1), capacity-limited routing
    (its drops depend on all tokens), a dynamic token count, and an expert
    count that ep does not divide.
  }];
  let dependentDialects = ["::mlir::shard::ShardDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::arith::ArithDialect"];
}

#endif // MOE_PARALLEL_PASSES_TD
