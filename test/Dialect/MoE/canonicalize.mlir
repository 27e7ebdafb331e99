// RUN: moe-opt %s -canonicalize -split-input-file | FileCheck %s

// capacity = ceil(2.0 * 16 * 2 / 4) = 16 >= T: no assignment can drop.
// CHECK-LABEL: func.func @capacity_never_drops
// CHECK: moe.router %{{.*}} {top_k = 2 : i64}
func.func @capacity_never_drops(%x: tensor<16x4xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>) {
  %i, %w = moe.router %x : tensor<16x4xf32> {top_k = 2 : i64, capacity_factor = 2.0, min_capacity = 2 : i64, drop_policy = #moe.drop_policy<score>} -> tensor<16x2xi32>, tensor<16x2xf32>
  return %i, %w : tensor<16x2xi32>, tensor<16x2xf32>
}

// -----

// min_capacity alone can make the capacity reach T.
// CHECK-LABEL: func.func @min_capacity_covers_all
// CHECK: moe.router %{{.*}} {top_k = 1 : i64}
func.func @min_capacity_covers_all(%x: tensor<4x64xf32>) -> (tensor<4x1xi32>, tensor<4x1xf32>) {
  %i, %w = moe.router %x : tensor<4x64xf32> {top_k = 1 : i64, capacity_factor = 1.0, min_capacity = 4 : i64} -> tensor<4x1xi32>, tensor<4x1xf32>
  return %i, %w : tensor<4x1xi32>, tensor<4x1xf32>
}

// -----

// capacity = ceil(1.0 * 16 * 2 / 4) = 8 < T: drops are possible, keep it.
// CHECK-LABEL: func.func @capacity_can_drop
// CHECK: moe.router %{{.*}} {capacity_factor = 1.000000e+00 : f64, top_k = 2 : i64}
func.func @capacity_can_drop(%x: tensor<16x4xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>) {
  %i, %w = moe.router %x : tensor<16x4xf32> {top_k = 2 : i64, capacity_factor = 1.0} -> tensor<16x2xi32>, tensor<16x2xf32>
  return %i, %w : tensor<16x2xi32>, tensor<16x2xf32>
}

// -----

// With a dynamic token count the capacity cannot be decided.
// CHECK-LABEL: func.func @capacity_dynamic_tokens
// CHECK: capacity_factor = 1.000000e+01 : f64
func.func @capacity_dynamic_tokens(%x: tensor<?x4xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %i, %w = moe.router %x : tensor<?x4xf32> {top_k = 2 : i64, capacity_factor = 10.0} -> tensor<?x2xi32>, tensor<?x2xf32>
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// top_k == E: softmax over the selected experts is softmax over all of them,
// and the weights already sum to one.
// CHECK-LABEL: func.func @all_experts_selected
// CHECK: moe.router %{{.*}} {top_k = 4 : i64}
func.func @all_experts_selected(%x: tensor<8x4xf32>) -> (tensor<8x4xi32>, tensor<8x4xf32>) {
  %i, %w = moe.router %x : tensor<8x4xf32> {top_k = 4 : i64, score_after_topk, renormalize} -> tensor<8x4xi32>, tensor<8x4xf32>
  return %i, %w : tensor<8x4xi32>, tensor<8x4xf32>
}

// -----

// A softmax over the selected k already sums to one.
// CHECK-LABEL: func.func @renormalize_after_topk_softmax
// CHECK: moe.router %{{.*}} {score_after_topk, top_k = 2 : i64}
func.func @renormalize_after_topk_softmax(%x: tensor<8x16xf32>) -> (tensor<8x2xi32>, tensor<8x2xf32>) {
  %i, %w = moe.router %x : tensor<8x16xf32> {top_k = 2 : i64, score_after_topk, renormalize} -> tensor<8x2xi32>, tensor<8x2xf32>
  return %i, %w : tensor<8x2xi32>, tensor<8x2xf32>
}

// -----

// Sigmoid scores do not sum to one: renormalize stays.
// CHECK-LABEL: func.func @sigmoid_keeps_renormalize
// CHECK: moe.router %{{.*}} {renormalize, score_func = #moe.score_func<sigmoid>, top_k = 4 : i64}
func.func @sigmoid_keeps_renormalize(%x: tensor<8x4xf32>) -> (tensor<8x4xi32>, tensor<8x4xf32>) {
  %i, %w = moe.router %x : tensor<8x4xf32> {top_k = 4 : i64, score_func = #moe.score_func<sigmoid>, renormalize} -> tensor<8x4xi32>, tensor<8x4xf32>
  return %i, %w : tensor<8x4xi32>, tensor<8x4xf32>
}

// -----

// Keeping every group is no group limit.
// CHECK-LABEL: func.func @all_groups_kept
// CHECK: moe.router %{{.*}} {score_func = #moe.score_func<sigmoid>, top_k = 8 : i64}
func.func @all_groups_kept(%x: tensor<2x64xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>) {
  %i, %w = moe.router %x : tensor<2x64xf32> {top_k = 8 : i64, score_func = #moe.score_func<sigmoid>, n_group = 8 : i64, topk_group = 8 : i64, group_score = #moe.group_score<top2_sum>} -> tensor<2x8xi32>, tensor<2x8xf32>
  return %i, %w : tensor<2x8xi32>, tensor<2x8xf32>
}

// -----

// CHECK-LABEL: func.func @some_groups_kept
// CHECK: n_group = 8 : i64
// CHECK-SAME: topk_group = 4 : i64
func.func @some_groups_kept(%x: tensor<2x64xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>) {
  %i, %w = moe.router %x : tensor<2x64xf32> {top_k = 8 : i64, score_func = #moe.score_func<sigmoid>, n_group = 8 : i64, topk_group = 4 : i64, group_score = #moe.group_score<top2_sum>} -> tensor<2x8xi32>, tensor<2x8xf32>
  return %i, %w : tensor<2x8xi32>, tensor<2x8xf32>
}

// -----

// The same simplifications apply to the composite layer.
// CHECK-LABEL: func.func @layer_capacity_never_drops
// CHECK: moe.layer {{.*}} {activation = #moe.activation<relu>, top_k = 1 : i64}
func.func @layer_capacity_never_drops(%x: tensor<4x8xf32>, %wr: tensor<8x2xf32>, %wu: tensor<2x8x16xf32>, %wd: tensor<2x16x8xf32>) -> tensor<4x8xf32> {
  %y = moe.layer %x : tensor<4x8xf32> router(%wr : tensor<8x2xf32>) up(%wu : tensor<2x8x16xf32>) down(%wd : tensor<2x16x8xf32>) {activation = #moe.activation<relu>, top_k = 1 : i64, capacity_factor = 2.0} -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// Unused routing is pure and goes away.
// CHECK-LABEL: func.func @dead_router
// CHECK-NOT: moe.router
// CHECK: return
func.func @dead_router(%x: tensor<4x8xf32>) {
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}
