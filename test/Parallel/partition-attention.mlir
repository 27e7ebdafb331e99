// Tensor-sliced attention (attention-tp): the planner shards the query,
// key and value columns and the output rows; moe-partition narrows the
// head counts and the caches (arguments and results) and sums the output
// projections over the slicing axes.
// RUN: moe-opt %s --moe-plan-parallelism="gpus=2 ep=2 attention-tp=2 min-slice=8" --moe-partition 2>/dev/null | FileCheck %s
// RUN: moe-opt %s --moe-plan-parallelism="gpus=4 ep=2 es=2 attention-tp=2 min-slice=8" --moe-partition 2>/dev/null | FileCheck %s --check-prefix=TENSOR

// CHECK-LABEL: func.func @block
// CHECK-SAME: %[[KC:[a-z0-9]+]]: tensor<8x1x4xf32>
// CHECK-SAME: tensor<16x8xf32> {moe.split = [array<i16>, array<i16: 1>]}
// CHECK-SAME: tensor<8x16xf32> {moe.split = [array<i16: 1>, array<i16>]}
// CHECK-SAME: -> (tensor<2x16xf32>, tensor<8x1x4xf32>, tensor<8x1x4xf32>)
// CHECK: %[[Y:.+]], %{{.+}}, %{{.+}} = moe.attention {{.*}} cache(%[[KC]] : tensor<8x1x4xf32>, {{.*}} {num_heads = 2 : i64, num_kv_heads = 1 : i64}
// CHECK: shard.all_reduce %[[Y]] on @moe_grid grid_axes = [1] : tensor<2x16xf32> -> tensor<2x16xf32>
// attention-tp = es: the heads split over the tensor axis only.
// TENSOR: moe.attention {{.*}} {num_heads = 2 : i64, num_kv_heads = 1 : i64}
// TENSOR: shard.all_reduce {{.*}} grid_axes = [2]
func.func @block(%x: tensor<2x16xf32>, %pos: tensor<1xi32>, %kc: tensor<8x2x4xf32>, %vc: tensor<8x2x4xf32>,
                 %wq: tensor<16x16xf32>, %wk: tensor<16x8xf32>, %wv: tensor<16x8xf32>, %wo: tensor<16x16xf32>,
                 %r: tensor<16x4xf32>, %u: tensor<4x16x32xf32>, %d: tensor<4x32x16xf32>)
    -> (tensor<2x16xf32>, tensor<8x2x4xf32>, tensor<8x2x4xf32>) {
  %a, %k, %v = moe.attention %x : tensor<2x16xf32> q(%wq : tensor<16x16xf32>) k(%wk : tensor<16x8xf32>) v(%wv : tensor<16x8xf32>) o(%wo : tensor<16x16xf32>) cache(%kc : tensor<8x2x4xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64} -> tensor<2x16xf32>, tensor<8x2x4xf32>, tensor<8x2x4xf32>
  %y = moe.layer %a : tensor<2x16xf32> router(%r : tensor<16x4xf32>) up(%u : tensor<4x16x32xf32>) down(%d : tensor<4x32x16xf32>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<2x16xf32>
  return %y, %k, %v : tensor<2x16xf32>, tensor<8x2x4xf32>, tensor<8x2x4xf32>
}
