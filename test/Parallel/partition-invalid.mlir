// Plans moe-partition refuses, each with its reason.
// RUN: moe-opt %s --split-input-file --moe-plan-parallelism="gpus=2 es=2 tp=1 min-slice=8" --moe-partition -verify-diagnostics -o /dev/null

func.func @replicated_dense(%x: tensor<4x16xf32>, %r: tensor<16x4xf32>, %u: tensor<4x16x32xf32>,
                            %d: tensor<4x32x16xf32>, %su: tensor<16x32xf32>, %sd: tensor<32x16xf32>) -> tensor<4x16xf32> {
  // expected-remark@+2 {{moe-plan-parallelism: ep=1 es=2 tp=1 dp=1}}
  // expected-error@+1 {{moe-partition: replicated dense parts (tp=1) beside sliced experts (es=2) are not partitioned yet}}
  %y = moe.layer %x : tensor<4x16xf32> router(%r : tensor<16x4xf32>) up(%u : tensor<4x16x32xf32>) down(%d : tensor<4x32x16xf32>) shared_up(%su : tensor<16x32xf32>) shared_down(%sd : tensor<32x16xf32>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

func.func @capacity(%x: tensor<4x16xf32>, %r: tensor<16x4xf32>, %u: tensor<4x16x32xf32>,
                    %d: tensor<4x32x16xf32>) -> tensor<4x16xf32> {
  // expected-remark@+2 {{moe-plan-parallelism}}
  // expected-error@+1 {{moe-partition: capacity-limited routing (capacity_factor) is not partitioned yet: its drops depend on all tokens}}
  %y = moe.layer %x : tensor<4x16xf32> router(%r : tensor<16x4xf32>) up(%u : tensor<4x16x32xf32>) down(%d : tensor<4x32x16xf32>) {activation = #moe.activation<silu>, capacity_factor = 1.0 : f64, top_k = 2 : i64} -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

func.func @dynamic_tokens(%x: tensor<?x16xf32>, %r: tensor<16x4xf32>, %u: tensor<4x16x32xf32>,
                          %d: tensor<4x32x16xf32>) -> tensor<?x16xf32> {
  // expected-remark@+2 {{moe-plan-parallelism}}
  // expected-error@+1 {{moe-partition: a partitioned layer needs a static token count, got 'tensor<?x16xf32>'}}
  %y = moe.layer %x : tensor<?x16xf32> router(%r : tensor<16x4xf32>) up(%u : tensor<4x16x32xf32>) down(%d : tensor<4x32x16xf32>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @constant_weight(%x: tensor<4x16xf32>, %r: tensor<16x4xf32>, %d: tensor<4x32x16xf32>) -> tensor<4x16xf32> {
  // expected-error@+1 {{moe-partition: a sharded weight must be an argument of its function (the runtime loads its slice)}}
  %u = arith.constant dense<1.0> : tensor<4x16x32xf32>
  // expected-remark@+1 {{moe-plan-parallelism}}
  %y = moe.layer %x : tensor<4x16xf32> router(%r : tensor<16x4xf32>) up(%u : tensor<4x16x32xf32>) down(%d : tensor<4x32x16xf32>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}
