// Plans moe-partition refuses, each with its reason (the all-to-all
// dispatch's refusals are in partition-invalid-a2a.mlir).
// RUN: moe-opt %s --split-input-file --moe-plan-parallelism="gpus=2 es=2 tp=1 min-slice=8" --moe-partition -verify-diagnostics -o /dev/null

func.func @replicated_dense(%x: tensor<4x16xf32>, %r: tensor<16x4xf32>, %u: tensor<4x16x32xf32>,
                            %d: tensor<4x32x16xf32>, %su: tensor<16x32xf32>, %sd: tensor<32x16xf32>) -> tensor<4x16xf32> {
  // expected-remark@+2 {{moe-plan-parallelism}}
  // expected-error@+1 {{moe-partition: with replicated tokens, the dense parts must be sliced over every GPU of the replica (tp=2), got tp=1}}
  %y = moe.layer %x : tensor<4x16xf32> router(%r : tensor<16x4xf32>) up(%u : tensor<4x16x32xf32>) down(%d : tensor<4x32x16xf32>) shared_up(%su : tensor<16x32xf32>) shared_down(%sd : tensor<32x16xf32>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

func.func @constant_weight(%x: tensor<4x16xf32>, %r: tensor<16x4xf32>, %d: tensor<4x32x16xf32>) -> tensor<4x16xf32> {
  // expected-error@+1 {{moe-partition: a sharded weight must be an argument of its function (the runtime loads its slice)}}
  %u = arith.constant dense<1.0> : tensor<4x16x32xf32>
  // expected-remark@+1 {{moe-plan-parallelism}}
  %y = moe.layer %x : tensor<4x16xf32> router(%r : tensor<16x4xf32>) up(%u : tensor<4x16x32xf32>) down(%d : tensor<4x32x16xf32>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}
