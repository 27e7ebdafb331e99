// Collectives the runtime lowering refuses, named.
// RUN: moe-opt %s --split-input-file --convert-moe-comm-to-runtime -verify-diagnostics -o /dev/null


shard.grid @g(shape = 2)
func.func @max(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error@+1 {{convert-moe-comm-to-runtime: all_reduce supports the sum only}}
  %m = shard.all_reduce %x on @g grid_axes = [0] reduction = max : tensor<4xf32> -> tensor<4xf32>
  return %m : tensor<4xf32>
}

// -----

shard.grid @g(shape = 2)
func.func @columns(%x: tensor<4x8xf32>) -> tensor<4x16xf32> {
  // expected-error@+1 {{convert-moe-comm-to-runtime: all_gather is supported along dimension 0 only}}
  %m = shard.all_gather %x on @g grid_axes = [0] gather_axis = 1 : tensor<4x8xf32> -> tensor<4x16xf32>
  return %m : tensor<4x16xf32>
}

// -----

shard.grid @g(shape = 2)
func.func @unplanned(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error@+1 {{convert-moe-comm-to-runtime: the collective 'shard.broadcast' has no runtime lowering yet}}
  %m = shard.broadcast %x on @g grid_axes = [0] root = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %m : tensor<4x8xf32>
}
