// Every op round-trips through the custom and the generic form.
// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC

// CHECK-LABEL: func.func @router_mixtral
// CHECK-SAME: (%[[X:.+]]: tensor<16x4096xbf16>, %[[W:.+]]: tensor<4096x8xbf16>)
// CHECK: %[[IDS:.+]], %[[WTS:.+]] = moe.router %[[X]] : tensor<16x4096xbf16> weight(%[[W]] : tensor<4096x8xbf16>) {renormalize, top_k = 2 : i64} -> tensor<16x2xi32>, tensor<16x2xf32>
// CHECK: return %[[IDS]], %[[WTS]]
// GENERIC-LABEL: sym_name = "router_mixtral"
// GENERIC: "moe.router"(%{{.*}}, %{{.*}}) <{{{.*}}operandSegmentSizes = array<i32: 1, 1, 0>, renormalize, {{.*}}top_k = 2 : i64}>
func.func @router_mixtral(%x: tensor<16x4096xbf16>, %w: tensor<4096x8xbf16>) -> (tensor<16x2xi32>, tensor<16x2xf32>) {
  %ids, %wts = moe.router %x : tensor<16x4096xbf16> weight(%w : tensor<4096x8xbf16>) {renormalize, top_k = 2 : i64} -> tensor<16x2xi32>, tensor<16x2xf32>
  return %ids, %wts : tensor<16x2xi32>, tensor<16x2xf32>
}

// CHECK-LABEL: func.func @router_deepseek_v3
// CHECK: moe.router %{{.*}} : tensor<4x7168xbf16> weight(%{{.*}} : tensor<7168x256xbf16>) bias(%{{.*}} : tensor<256xf32>)
// CHECK-SAME: group_score = #moe.group_score<top2_sum>
// CHECK-SAME: n_group = 8 : i64
// CHECK-SAME: renormalize
// CHECK-SAME: scaling = 2.500000e+00 : f64
// CHECK-SAME: score_func = #moe.score_func<sigmoid>
// CHECK-SAME: top_k = 8 : i64, topk_group = 4 : i64
func.func @router_deepseek_v3(%x: tensor<4x7168xbf16>, %w: tensor<7168x256xbf16>, %b: tensor<256xf32>) -> (tensor<4x8xi32>, tensor<4x8xf32>) {
  %ids, %wts = moe.router %x : tensor<4x7168xbf16> weight(%w : tensor<7168x256xbf16>) bias(%b : tensor<256xf32>) {top_k = 8 : i64, score_func = #moe.score_func<sigmoid>, renormalize, scaling = 2.5, n_group = 8 : i64, topk_group = 4 : i64, group_score = #moe.group_score<top2_sum>} -> tensor<4x8xi32>, tensor<4x8xf32>
  return %ids, %wts : tensor<4x8xi32>, tensor<4x8xf32>
}

// Precomputed logits, softmax over the selected experts, capacity with drops.
// CHECK-LABEL: func.func @router_logits_capacity
// CHECK: moe.router %{{.*}} : tensor<?x64xf32> {capacity_factor = 1.250000e+00 : f64, drop_policy = #moe.drop_policy<score>, min_capacity = 4 : i64, score_after_topk, top_k = 1 : i64} -> tensor<?x1xi32>, tensor<?x1xf32>
func.func @router_logits_capacity(%logits: tensor<?x64xf32>) -> (tensor<?x1xi32>, tensor<?x1xf32>) {
  %ids, %wts = moe.router %logits : tensor<?x64xf32> {top_k = 1 : i64, score_after_topk, capacity_factor = 1.25, min_capacity = 4 : i64, drop_policy = #moe.drop_policy<score>} -> tensor<?x1xi32>, tensor<?x1xf32>
  return %ids, %wts : tensor<?x1xi32>, tensor<?x1xf32>
}

// CHECK-LABEL: func.func @dispatch
// CHECK: %[[P:.+]], %[[O:.+]], %[[M:.+]] = moe.dispatch %{{.*}} : tensor<16x64xf16>, %{{.*}} : tensor<16x2xi32> {num_experts = 8 : i64} -> tensor<32x64xf16>, tensor<9xi32>, tensor<16x2xi32>
// GENERIC: "moe.dispatch"(%{{.*}}, %{{.*}}) <{num_experts = 8 : i64}>
func.func @dispatch(%x: tensor<16x64xf16>, %ids: tensor<16x2xi32>) -> (tensor<32x64xf16>, tensor<9xi32>, tensor<16x2xi32>) {
  %p, %off, %map = moe.dispatch %x : tensor<16x64xf16>, %ids : tensor<16x2xi32> {num_experts = 8 : i64} -> tensor<32x64xf16>, tensor<9xi32>, tensor<16x2xi32>
  return %p, %off, %map : tensor<32x64xf16>, tensor<9xi32>, tensor<16x2xi32>
}

// CHECK-LABEL: func.func @experts_gated
// CHECK: moe.experts %{{.*}} : tensor<32x64xbf16> offsets(%{{.*}} : tensor<9xi32>) up(%{{.*}} : tensor<8x64x128xbf16>) gate(%{{.*}} : tensor<8x64x128xbf16>) down(%{{.*}} : tensor<8x128x64xbf16>) {activation = #moe.activation<silu>} -> tensor<32x64xbf16>
// GENERIC: "moe.experts"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{activation = #moe.activation<silu>}>
func.func @experts_gated(%p: tensor<32x64xbf16>, %off: tensor<9xi32>, %wu: tensor<8x64x128xbf16>, %wg: tensor<8x64x128xbf16>, %wd: tensor<8x128x64xbf16>) -> tensor<32x64xbf16> {
  %y = moe.experts %p : tensor<32x64xbf16> offsets(%off : tensor<9xi32>) up(%wu : tensor<8x64x128xbf16>) gate(%wg : tensor<8x64x128xbf16>) down(%wd : tensor<8x128x64xbf16>) {activation = #moe.activation<silu>} -> tensor<32x64xbf16>
  return %y : tensor<32x64xbf16>
}

// CHECK-LABEL: func.func @experts_plain
// CHECK: moe.experts %{{.*}} : tensor<16x64xf32> offsets(%{{.*}} : tensor<5xi32>) up(%{{.*}} : tensor<4x64x256xf32>) down(%{{.*}} : tensor<4x256x64xf32>) {activation = #moe.activation<gelu_tanh>} -> tensor<16x64xf32>
func.func @experts_plain(%p: tensor<16x64xf32>, %off: tensor<5xi32>, %wu: tensor<4x64x256xf32>, %wd: tensor<4x256x64xf32>) -> tensor<16x64xf32> {
  %y = moe.experts %p : tensor<16x64xf32> offsets(%off : tensor<5xi32>) up(%wu : tensor<4x64x256xf32>) down(%wd : tensor<4x256x64xf32>) {activation = #moe.activation<gelu_tanh>} -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// CHECK-LABEL: func.func @mlp
// CHECK: moe.mlp %{{.*}} : tensor<16x64xf32> up(%{{.*}} : tensor<64x256xf32>) gate(%{{.*}} : tensor<64x256xf32>) down(%{{.*}} : tensor<256x64xf32>) {activation = #moe.activation<relu>} -> tensor<16x64xf32>
// GENERIC: "moe.mlp"
func.func @mlp(%x: tensor<16x64xf32>, %u: tensor<64x256xf32>, %g: tensor<64x256xf32>, %d: tensor<256x64xf32>) -> tensor<16x64xf32> {
  %y = moe.mlp %x : tensor<16x64xf32> up(%u : tensor<64x256xf32>) gate(%g : tensor<64x256xf32>) down(%d : tensor<256x64xf32>) {activation = #moe.activation<relu>} -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// CHECK-LABEL: func.func @combine
// CHECK: moe.combine %{{.*}} : tensor<32x64xf32> mapping(%{{.*}} : tensor<16x2xi32>) weights(%{{.*}} : tensor<16x2xf32>) residual(%{{.*}} : tensor<16x64xf32>) -> tensor<16x64xf32>
// CHECK: moe.combine %{{.*}} : tensor<32x64xf32> mapping(%{{.*}} : tensor<16x2xi32>) weights(%{{.*}} : tensor<16x2xf32>) -> tensor<16x64xf32>
// GENERIC: "moe.combine"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : (tensor<32x64xf32>, tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x64xf32>) -> tensor<16x64xf32>
func.func @combine(%e: tensor<32x64xf32>, %map: tensor<16x2xi32>, %w: tensor<16x2xf32>, %r: tensor<16x64xf32>) -> (tensor<16x64xf32>, tensor<16x64xf32>) {
  %y = moe.combine %e : tensor<32x64xf32> mapping(%map : tensor<16x2xi32>) weights(%w : tensor<16x2xf32>) residual(%r : tensor<16x64xf32>) -> tensor<16x64xf32>
  %z = moe.combine %e : tensor<32x64xf32> mapping(%map : tensor<16x2xi32>) weights(%w : tensor<16x2xf32>) -> tensor<16x64xf32>
  return %y, %z : tensor<16x64xf32>, tensor<16x64xf32>
}

// Qwen2-MoE: gated shared expert, sigmoid shared gate, softmax top-8 without
// renormalisation.
// CHECK-LABEL: func.func @layer_qwen2
// CHECK: moe.layer %{{.*}} : tensor<16x64xbf16> router(%{{.*}} : tensor<64x16xbf16>) up(%{{.*}} : tensor<16x64x32xbf16>) gate(%{{.*}} : tensor<16x64x32xbf16>) down(%{{.*}} : tensor<16x32x64xbf16>) shared_up(%{{.*}} : tensor<64x128xbf16>) shared_gate(%{{.*}} : tensor<64x128xbf16>) shared_down(%{{.*}} : tensor<128x64xbf16>) shared_coef(%{{.*}} : tensor<64x1xbf16>) {activation = #moe.activation<silu>, top_k = 8 : i64} -> tensor<16x64xbf16>
// GENERIC: "moe.layer"{{.*}}operandSegmentSizes = array<i32: 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0>
func.func @layer_qwen2(%x: tensor<16x64xbf16>, %wr: tensor<64x16xbf16>, %wu: tensor<16x64x32xbf16>, %wg: tensor<16x64x32xbf16>, %wd: tensor<16x32x64xbf16>, %su: tensor<64x128xbf16>, %sg: tensor<64x128xbf16>, %sd: tensor<128x64xbf16>, %sc: tensor<64x1xbf16>) -> tensor<16x64xbf16> {
  %y = moe.layer %x : tensor<16x64xbf16> router(%wr : tensor<64x16xbf16>) up(%wu : tensor<16x64x32xbf16>) gate(%wg : tensor<16x64x32xbf16>) down(%wd : tensor<16x32x64xbf16>) shared_up(%su : tensor<64x128xbf16>) shared_gate(%sg : tensor<64x128xbf16>) shared_down(%sd : tensor<128x64xbf16>) shared_coef(%sc : tensor<64x1xbf16>) {activation = #moe.activation<silu>, top_k = 8 : i64} -> tensor<16x64xbf16>
  return %y : tensor<16x64xbf16>
}

// One rank's share of an expert-parallel layer: 4 of the router's 16
// experts, from expert_offset on.
// CHECK-LABEL: func.func @layer_local_experts
// CHECK-SAME: %[[OFF:[a-z0-9]+]]: index
// CHECK: moe.layer %{{.*}} : tensor<16x64xbf16> router(%{{.*}} : tensor<64x16xbf16>) up(%{{.*}} : tensor<4x64x32xbf16>) down(%{{.*}} : tensor<4x32x64xbf16>) expert_offset(%[[OFF]]) {activation = #moe.activation<gelu>, top_k = 2 : i64} -> tensor<16x64xbf16>
// GENERIC: "moe.layer"{{.*}}operandSegmentSizes = array<i32: 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1>
func.func @layer_local_experts(%x: tensor<16x64xbf16>, %wr: tensor<64x16xbf16>, %wu: tensor<4x64x32xbf16>, %wd: tensor<4x32x64xbf16>, %off: index) -> tensor<16x64xbf16> {
  %y = moe.layer %x : tensor<16x64xbf16> router(%wr : tensor<64x16xbf16>) up(%wu : tensor<4x64x32xbf16>) down(%wd : tensor<4x32x64xbf16>) expert_offset(%off) {activation = #moe.activation<gelu>, top_k = 2 : i64} -> tensor<16x64xbf16>
  return %y : tensor<16x64xbf16>
}

// PR-MoE: top-1 over 32 experts, plain GeLU experts, residual MLP with mixing.
// CHECK-LABEL: func.func @layer_pr_moe
// CHECK: moe.layer %{{.*}} : tensor<8x64xf32> router(%{{.*}} : tensor<64x32xf32>) router_bias(%{{.*}} : tensor<32xf32>) up(%{{.*}} : tensor<32x64x256xf32>) down(%{{.*}} : tensor<32x256x64xf32>) mlp_up(%{{.*}} : tensor<64x256xf32>) mlp_down(%{{.*}} : tensor<256x64xf32>) mlp_coef(%{{.*}} : tensor<64x2xf32>) {activation = #moe.activation<gelu>, capacity_factor = 1.000000e+00 : f64, top_k = 1 : i64} -> tensor<8x64xf32>
// GENERIC: "moe.layer"{{.*}}operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0>
func.func @layer_pr_moe(%x: tensor<8x64xf32>, %wr: tensor<64x32xf32>, %b: tensor<32xf32>, %wu: tensor<32x64x256xf32>, %wd: tensor<32x256x64xf32>, %mu: tensor<64x256xf32>, %md: tensor<256x64xf32>, %mc: tensor<64x2xf32>) -> tensor<8x64xf32> {
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x32xf32>) router_bias(%b : tensor<32xf32>) up(%wu : tensor<32x64x256xf32>) down(%wd : tensor<32x256x64xf32>) mlp_up(%mu : tensor<64x256xf32>) mlp_down(%md : tensor<256x64xf32>) mlp_coef(%mc : tensor<64x2xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64, capacity_factor = 1.0} -> tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}

// Dialect-prefixed attributes (e.g. from shard) are kept.
// CHECK-LABEL: func.func @discardable
// CHECK: moe.mlp {{.*}}{activation = #moe.activation<silu>, test.note = "kept"}
func.func @discardable(%x: tensor<4x8xf32>, %u: tensor<8x16xf32>, %d: tensor<16x8xf32>) -> tensor<4x8xf32> {
  %y = moe.mlp %x : tensor<4x8xf32> up(%u : tensor<8x16xf32>) down(%d : tensor<16x8xf32>) {activation = #moe.activation<silu>, test.note = "kept"} -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
