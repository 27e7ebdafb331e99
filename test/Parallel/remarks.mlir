// Every layer explains its plan in a remark: weights per GPU, and the step
// estimate split into compute, memory and communication.
// RUN: moe-opt %s --moe-plan-parallelism="gpus=8 layers-multiplier=16 objective=throughput tokens=16 ep=8" -verify-diagnostics -o /dev/null
// RUN: moe-opt %s --moe-plan-parallelism="gpus=8 layers-multiplier=16 objective=throughput tokens=16 ep=8" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s

// Mixtral 8x7B (32 layers), 16 tokens per GPU, expert parallelism pinned
// (unpinned, the planner takes es=8, tied with it): one expert per GPU, 128 tokens
// per replica step; the step is the HBM read of one expert plus one
// all-reduce of the 128 tokens' f32 partial outputs (2 MB) inside the host,
// which beats the two all-to-alls (each a 20 us latency): the planner says
// so beside the plan.
// CHECK: remarks.mlir:[[# @LINE + 11]]:9: remark: moe-plan-parallelism: ep=8 es=1 tp=1 dp=1 on 8 GPUs: 352.39 MB of weights per GPU for this layer (11.28 GB for the model); step 110.1 us = max(compute 15.0 us, memory 82.0 us) + communication 28.2 us (per GPU: all-to-all 0 B, all-gather 0 B, all-reduce 3.67 MB)
// CHECK: remarks.mlir:[[# @LINE + 10]]:9: remark: moe-plan-parallelism: dispatch by all-reduce (all-to-all and gathers 41.0 us, one all-reduce of the replica's tokens 28.2 us)
// CHECK: remarks.mlir:[[# @LINE + 15]]:9: remark: moe-plan-parallelism: ep=8 es=1 tp=1 dp=1 on 8 GPUs

func.func @mixtral(%x: tensor<?x4096xbf16>,
    %r0: tensor<4096x8xbf16>, %u0: tensor<8x4096x14336xbf16>,
    %g0: tensor<8x4096x14336xbf16>, %d0: tensor<8x14336x4096xbf16>,
    %r1: tensor<4096x8xbf16>, %u1: tensor<8x4096x14336xbf16>,
    %g1: tensor<8x4096x14336xbf16>, %d1: tensor<8x14336x4096xbf16>) -> tensor<?x4096xbf16> {
  // expected-remark@+2 {{moe-plan-parallelism: dispatch by all-reduce (all-to-all and gathers 41.0 us, one all-reduce of the replica's tokens 28.2 us)}}
  // expected-remark@+1 {{moe-plan-parallelism: ep=8 es=1 tp=1 dp=1 on 8 GPUs: 352.39 MB of weights per GPU for this layer (11.28 GB for the model); step}}
  %y0 = moe.layer %x : tensor<?x4096xbf16> router(%r0 : tensor<4096x8xbf16>)
      up(%u0 : tensor<8x4096x14336xbf16>) gate(%g0 : tensor<8x4096x14336xbf16>)
      down(%d0 : tensor<8x14336x4096xbf16>)
      {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<?x4096xbf16>
  // expected-remark@+2 {{dispatch by all-reduce}}
  // expected-remark@+1 {{= max(compute 15.0 us, memory 82.0 us) + communication 28.2 us}}
  %y1 = moe.layer %y0 : tensor<?x4096xbf16> router(%r1 : tensor<4096x8xbf16>)
      up(%u1 : tensor<8x4096x14336xbf16>) gate(%g1 : tensor<8x4096x14336xbf16>)
      down(%d1 : tensor<8x14336x4096xbf16>)
      {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<?x4096xbf16>
  return %y1 : tensor<?x4096xbf16>
}
