// RUN: moe-opt %s -moe-decompose-layer -split-input-file | FileCheck %s
// The decomposed IR verifies and round-trips.
// RUN: moe-opt %s -moe-decompose-layer -split-input-file | moe-opt -split-input-file -verify-each > /dev/null

// Switch-style top-1, plain GeLU experts, dropless.
// CHECK-LABEL: func.func @top1
// CHECK-SAME: (%[[X:.+]]: tensor<8x64xf32>, %[[WR:.+]]: tensor<64x4xf32>, %[[WU:.+]]: tensor<4x64x128xf32>, %[[WD:.+]]: tensor<4x128x64xf32>)
// CHECK: %[[IDS:.+]], %[[W:.+]] = moe.router %[[X]] : tensor<8x64xf32> weight(%[[WR]] : tensor<64x4xf32>) {top_k = 1 : i64} -> tensor<8x1xi32>, tensor<8x1xf32>
// CHECK: %[[P:.+]], %[[OFF:.+]], %[[MAP:.+]] = moe.dispatch %[[X]] : tensor<8x64xf32>, %[[IDS]] : tensor<8x1xi32> {num_experts = 4 : i64} -> tensor<8x64xf32>, tensor<5xi32>, tensor<8x1xi32>
// CHECK: %[[E:.+]] = moe.experts %[[P]] : tensor<8x64xf32> offsets(%[[OFF]] : tensor<5xi32>) up(%[[WU]] : tensor<4x64x128xf32>) down(%[[WD]] : tensor<4x128x64xf32>) {activation = #moe.activation<gelu>} -> tensor<8x64xf32>
// CHECK: %[[Y:.+]] = moe.combine %[[E]] : tensor<8x64xf32> mapping(%[[MAP]] : tensor<8x1xi32>) weights(%[[W]] : tensor<8x1xf32>) -> tensor<8x64xf32>
// CHECK: return %[[Y]]
// CHECK-NOT: moe.layer
func.func @top1(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>) -> tensor<8x64xf32> {
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}

// -----

// Mixtral-style top-2 SwiGLU, renormalised.
// CHECK-LABEL: func.func @top2
// CHECK: moe.router %{{.*}} weight(%{{.*}} : tensor<64x8xbf16>) {renormalize, top_k = 2 : i64} -> tensor<16x2xi32>, tensor<16x2xf32>
// CHECK: moe.dispatch {{.*}} -> tensor<32x64xbf16>, tensor<9xi32>, tensor<16x2xi32>
// CHECK: moe.experts {{.*}} gate(%{{.*}} : tensor<8x64x96xbf16>) {{.*}}{activation = #moe.activation<silu>}
// CHECK: moe.combine {{.*}}weights(%{{.*}} : tensor<16x2xf32>) -> tensor<16x64xbf16>
func.func @top2(%x: tensor<16x64xbf16>, %wr: tensor<64x8xbf16>, %wu: tensor<8x64x96xbf16>, %wg: tensor<8x64x96xbf16>, %wd: tensor<8x96x64xbf16>) -> tensor<16x64xbf16> {
  %y = moe.layer %x : tensor<16x64xbf16> router(%wr : tensor<64x8xbf16>) up(%wu : tensor<8x64x96xbf16>) gate(%wg : tensor<8x64x96xbf16>) down(%wd : tensor<8x96x64xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<16x64xbf16>
  return %y : tensor<16x64xbf16>
}

// -----

// DeepSeek-V3-style top-8: sigmoid, score bias, group-limited, scaled; the
// shared experts (no gate coefficient) become the combine's residual.
// CHECK-LABEL: func.func @top8_deepseek
// CHECK: %{{.*}}, %{{.*}} = moe.router %{{.*}} weight(%{{.*}} : tensor<32x64xf16>) bias(%{{.*}} : tensor<64xf32>) {group_score = #moe.group_score<top2_sum>, n_group = 8 : i64, renormalize, scaling = 2.500000e+00 : f64, score_func = #moe.score_func<sigmoid>, top_k = 8 : i64, topk_group = 4 : i64} -> tensor<4x8xi32>, tensor<4x8xf32>
// CHECK: moe.dispatch {{.*}} -> tensor<32x32xf16>, tensor<65xi32>, tensor<4x8xi32>
// CHECK: %[[E:.+]] = moe.experts
// CHECK: %[[S:.+]] = moe.mlp %{{.*}} : tensor<4x32xf16> up(%{{.*}} : tensor<32x64xf16>) gate(%{{.*}} : tensor<32x64xf16>) down(%{{.*}} : tensor<64x32xf16>) {activation = #moe.activation<silu>}
// CHECK-NOT: linalg.generic
// CHECK: moe.combine %[[E]] : {{.*}} residual(%[[S]] : tensor<4x32xf16>)
func.func @top8_deepseek(%x: tensor<4x32xf16>, %wr: tensor<32x64xf16>, %b: tensor<64xf32>, %wu: tensor<64x32x16xf16>, %wg: tensor<64x32x16xf16>, %wd: tensor<64x16x32xf16>, %su: tensor<32x64xf16>, %sg: tensor<32x64xf16>, %sd: tensor<64x32xf16>) -> tensor<4x32xf16> {
  %y = moe.layer %x : tensor<4x32xf16> router(%wr : tensor<32x64xf16>) router_bias(%b : tensor<64xf32>) up(%wu : tensor<64x32x16xf16>) gate(%wg : tensor<64x32x16xf16>) down(%wd : tensor<64x16x32xf16>) shared_up(%su : tensor<32x64xf16>) shared_gate(%sg : tensor<32x64xf16>) shared_down(%sd : tensor<64x32xf16>) {activation = #moe.activation<silu>, top_k = 8 : i64, score_func = #moe.score_func<sigmoid>, renormalize, scaling = 2.5, n_group = 8 : i64, topk_group = 4 : i64, group_score = #moe.group_score<top2_sum>} -> tensor<4x32xf16>
  return %y : tensor<4x32xf16>
}

// -----

// Qwen2-MoE shared expert with its sigmoid gate: x Ws in f32, then the shared
// output is scaled by sigmoid of it.
// CHECK-LABEL: func.func @shared_gated
// CHECK: %[[E:.+]] = moe.experts
// CHECK: %[[S:.+]] = moe.mlp %[[X:.+]] : tensor<16x64xbf16> up
// CHECK: %[[FILL:.+]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<16x1xf32>)
// CHECK: %[[G:.+]] = linalg.matmul ins(%{{.*}}, %{{.*}} : tensor<16x64xbf16>, tensor<64x1xbf16>) outs(%[[FILL]] : tensor<16x1xf32>)
// CHECK: %[[SCALED:.+]] = linalg.generic {{.*}} ins(%[[S]], %[[G]] : tensor<16x64xbf16>, tensor<16x1xf32>)
// CHECK: math.exp
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: moe.combine %[[E]] : {{.*}} residual(%[[SCALED]] : tensor<16x64xbf16>)
func.func @shared_gated(%x: tensor<16x64xbf16>, %wr: tensor<64x16xbf16>, %wu: tensor<16x64x32xbf16>, %wg: tensor<16x64x32xbf16>, %wd: tensor<16x32x64xbf16>, %su: tensor<64x128xbf16>, %sg: tensor<64x128xbf16>, %sd: tensor<128x64xbf16>, %sc: tensor<64x1xbf16>) -> tensor<16x64xbf16> {
  %y = moe.layer %x : tensor<16x64xbf16> router(%wr : tensor<64x16xbf16>) up(%wu : tensor<16x64x32xbf16>) gate(%wg : tensor<16x64x32xbf16>) down(%wd : tensor<16x32x64xbf16>) shared_up(%su : tensor<64x128xbf16>) shared_gate(%sg : tensor<64x128xbf16>) shared_down(%sd : tensor<128x64xbf16>) shared_coef(%sc : tensor<64x1xbf16>) {activation = #moe.activation<silu>, top_k = 8 : i64} -> tensor<16x64xbf16>
  return %y : tensor<16x64xbf16>
}

// -----

// PR-MoE: top-1 plus the residual MLP, mixed with c = softmax(x Wc): c0 scales
// the routing weights and c1 the MLP output.
// CHECK-LABEL: func.func @pr_moe_residual
// CHECK: %[[IDS:.+]], %[[W:.+]] = moe.router
// CHECK: %[[E:.+]] = moe.experts
// CHECK: %[[M:.+]] = moe.mlp %{{.*}} : tensor<8x64xf32> up(%{{.*}} : tensor<64x256xf32>) down(%{{.*}} : tensor<256x64xf32>) {activation = #moe.activation<gelu>}
// CHECK: %[[C:.+]] = linalg.matmul {{.*}} outs(%{{.*}} : tensor<8x2xf32>)
// CHECK: %[[W2:.+]] = linalg.generic {indexing_maps = [#[[ID:.+]], #[[C0:.+]], #[[C1:.+]], #[[ID]]], {{.*}} ins(%[[W]], %[[C]], %[[C]] : tensor<8x1xf32>, tensor<8x2xf32>, tensor<8x2xf32>)
// CHECK: %[[M2:.+]] = linalg.generic {{.*}} ins(%[[M]], %[[C]], %[[C]] :
// CHECK: moe.combine %[[E]] : tensor<8x64xf32> mapping(%{{.*}} : tensor<8x1xi32>) weights(%[[W2]] : tensor<8x1xf32>) residual(%[[M2]] : tensor<8x64xf32>)
func.func @pr_moe_residual(%x: tensor<8x64xf32>, %wr: tensor<64x32xf32>, %wu: tensor<32x64x256xf32>, %wd: tensor<32x256x64xf32>, %mu: tensor<64x256xf32>, %md: tensor<256x64xf32>, %mc: tensor<64x2xf32>) -> tensor<8x64xf32> {
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x32xf32>) up(%wu : tensor<32x64x256xf32>) down(%wd : tensor<32x256x64xf32>) mlp_up(%mu : tensor<64x256xf32>) mlp_down(%md : tensor<256x64xf32>) mlp_coef(%mc : tensor<64x2xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}

// -----

// With DeepSpeed's coefficient bias: added to the mixing logits in f32
// before they mix.
// CHECK-LABEL: func.func @pr_moe_coef_bias
// CHECK: %[[C:.+]] = linalg.matmul {{.*}} outs(%{{.*}} : tensor<8x2xf32>)
// CHECK: %[[CB:.+]] = linalg.generic {{.*}} ins(%[[C]], %{{.*}} : tensor<8x2xf32>, tensor<2xf32>)
// CHECK: arith.addf
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %[[CB]], %[[CB]] : tensor<8x1xf32>, tensor<8x2xf32>, tensor<8x2xf32>)
func.func @pr_moe_coef_bias(%x: tensor<8x64xf32>, %wr: tensor<64x32xf32>, %wu: tensor<32x64x256xf32>, %wd: tensor<32x256x64xf32>, %mu: tensor<64x256xf32>, %md: tensor<256x64xf32>, %mc: tensor<64x2xf32>, %mb: tensor<2xf32>) -> tensor<8x64xf32> {
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x32xf32>) up(%wu : tensor<32x64x256xf32>) down(%wd : tensor<32x256x64xf32>) mlp_up(%mu : tensor<64x256xf32>) mlp_down(%md : tensor<256x64xf32>) mlp_coef(%mc : tensor<64x2xf32>) mlp_coef_bias(%mb : tensor<2xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}

// -----

// Residual MLP without mixing and a shared expert: their sum is the residual.
// CHECK-LABEL: func.func @residual_and_shared
// CHECK: %[[M:.+]] = moe.mlp
// CHECK: %[[S:.+]] = moe.mlp
// CHECK: %[[SUM:.+]] = linalg.generic {{.*}} ins(%[[M]], %[[S]] : tensor<8x64xf32>, tensor<8x64xf32>)
// CHECK: arith.addf
// CHECK: moe.combine {{.*}} residual(%[[SUM]] : tensor<8x64xf32>)
func.func @residual_and_shared(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x32xf32>, %wd: tensor<4x32x64xf32>, %su: tensor<64x32xf32>, %sd: tensor<32x64xf32>, %mu: tensor<64x32xf32>, %md: tensor<32x64xf32>) -> tensor<8x64xf32> {
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x32xf32>) down(%wd : tensor<4x32x64xf32>) shared_up(%su : tensor<64x32xf32>) shared_down(%sd : tensor<32x64xf32>) mlp_up(%mu : tensor<64x32xf32>) mlp_down(%md : tensor<32x64xf32>) {activation = #moe.activation<relu>, top_k = 2 : i64} -> tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}

// -----

// Capacity with drops: the router carries the capacity and drop policy.
// CHECK-LABEL: func.func @capacity_drops
// CHECK: moe.router {{.*}} {capacity_factor = 1.250000e+00 : f64, drop_policy = #moe.drop_policy<score>, min_capacity = 2 : i64, top_k = 2 : i64}
// CHECK: moe.dispatch {{.*}} -> tensor<64x64xf32>, tensor<9xi32>, tensor<32x2xi32>
func.func @capacity_drops(%x: tensor<32x64xf32>, %wr: tensor<64x8xf32>, %wu: tensor<8x64x32xf32>, %wd: tensor<8x32x64xf32>) -> tensor<32x64xf32> {
  %y = moe.layer %x : tensor<32x64xf32> router(%wr : tensor<64x8xf32>) up(%wu : tensor<8x64x32xf32>) down(%wd : tensor<8x32x64xf32>) {activation = #moe.activation<relu>, top_k = 2 : i64, capacity_factor = 1.25, min_capacity = 2 : i64, drop_policy = #moe.drop_policy<score>} -> tensor<32x64xf32>
  return %y : tensor<32x64xf32>
}

// -----

// Dropless with a dynamic token count: the slot count is dynamic too.
// CHECK-LABEL: func.func @dropless_dynamic
// CHECK: moe.router {{.*}} -> tensor<?x2xi32>, tensor<?x2xf32>
// CHECK: moe.dispatch {{.*}} -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x2xi32>
// CHECK: moe.experts {{.*}} -> tensor<?x64xf32>
// CHECK: tensor.dim %{{.*}}, %c0
// CHECK: tensor.empty(%{{.*}}) : tensor<?x1xf32>
// CHECK: moe.combine {{.*}} -> tensor<?x64xf32>
func.func @dropless_dynamic(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>, %wu: tensor<8x64x32xf32>, %wd: tensor<8x32x64xf32>, %su: tensor<64x32xf32>, %sd: tensor<32x64xf32>, %sc: tensor<64x1xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x : tensor<?x64xf32> router(%wr : tensor<64x8xf32>) up(%wu : tensor<8x64x32xf32>) down(%wd : tensor<8x32x64xf32>) shared_up(%su : tensor<64x32xf32>) shared_down(%sd : tensor<32x64xf32>) shared_coef(%sc : tensor<64x1xf32>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// One rank's experts of an expert-parallel layer: routing over all 8
// experts, then ids outside [offset, offset + 2) become -1 and the others
// local; dispatch sorts rows for the 2 local experts only.
// CHECK-LABEL: func.func @local_experts
// CHECK-SAME: %[[OFF:[a-z0-9]+]]: index
// CHECK: %[[IDS:.+]], %{{.+}} = moe.router %{{.*}} weight(%{{.*}} : tensor<64x8xf32>) {top_k = 2 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
// CHECK: %[[LOCAL:.+]] = linalg.generic {{.*}} ins(%[[IDS]] : tensor<4x2xi32>)
// CHECK: arith.index_cast %[[OFF]] : index to i32
// CHECK: arith.select
// CHECK: moe.dispatch %{{.*}}, %[[LOCAL]] : tensor<4x2xi32> {num_experts = 2 : i64} -> tensor<8x64xf32>, tensor<3xi32>, tensor<4x2xi32>
// CHECK: moe.experts {{.*}} up(%{{.*}} : tensor<2x64x32xf32>)
func.func @local_experts(%x: tensor<4x64xf32>, %wr: tensor<64x8xf32>, %wu: tensor<2x64x32xf32>, %wd: tensor<2x32x64xf32>, %off: index) -> tensor<4x64xf32> {
  %y = moe.layer %x : tensor<4x64xf32> router(%wr : tensor<64x8xf32>) up(%wu : tensor<2x64x32xf32>) down(%wd : tensor<2x32x64xf32>) expert_offset(%off) {activation = #moe.activation<gelu>, top_k = 2 : i64} -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}
