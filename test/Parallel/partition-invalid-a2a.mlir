// Refusals of the all-to-all dispatch, which slices the tokens over the
// expert axis: capacity drops would depend on other ranks' tokens, and the
// slices need a static token count.
// RUN: moe-opt %s --split-input-file --moe-plan-parallelism="gpus=2 ep=2 dispatch=all-to-all min-slice=8" --moe-partition -verify-diagnostics -o /dev/null


func.func @capacity(%x: tensor<4x16xf32>, %r: tensor<16x4xf32>, %u: tensor<4x16x32xf32>,
                    %d: tensor<4x32x16xf32>) -> tensor<4x16xf32> {
  // expected-remark@+3 {{moe-plan-parallelism: ep=2}}
  // expected-remark@+2 {{moe-plan-parallelism: dispatch by all-to-all}}
  // expected-error@+1 {{moe-partition: capacity-limited routing (capacity_factor) needs the all-reduce dispatch: with all-to-all its drops would depend on other ranks' tokens}}
  %y = moe.layer %x : tensor<4x16xf32> router(%r : tensor<16x4xf32>) up(%u : tensor<4x16x32xf32>) down(%d : tensor<4x32x16xf32>) {activation = #moe.activation<silu>, capacity_factor = 1.0 : f64, top_k = 2 : i64} -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

func.func @dynamic_tokens(%x: tensor<?x16xf32>, %r: tensor<16x4xf32>, %u: tensor<4x16x32xf32>,
                          %d: tensor<4x32x16xf32>) -> tensor<?x16xf32> {
  // expected-remark@+3 {{moe-plan-parallelism: ep=2}}
  // expected-remark@+2 {{moe-plan-parallelism: dispatch by all-to-all}}
  // expected-error@+1 {{moe-partition: a partitioned layer needs a static token count, got 'tensor<?x16xf32>'}}
  %y = moe.layer %x : tensor<?x16xf32> router(%r : tensor<16x4xf32>) up(%u : tensor<4x16x32xf32>) down(%d : tensor<4x32x16xf32>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

