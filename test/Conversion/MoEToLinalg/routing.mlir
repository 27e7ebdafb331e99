// RUN: moe-opt %s -convert-moe-to-linalg -split-input-file | FileCheck %s
// RUN: moe-opt %s -convert-moe-to-linalg -split-input-file | moe-opt -split-input-file -verify-each > /dev/null

// Softmax over all experts as linalg reductions, then the per-token top-k
// selection loop (k rounds, each a scan over E).
// CHECK-LABEL: func.func @router_softmax
// CHECK: %[[LOGITS:.+]] = linalg.matmul ins(%{{.*}}, %{{.*}} : tensor<16x32xbf16>, tensor<32x8xbf16>) outs(%{{.*}} : tensor<16x8xf32>)
// CHECK: %[[MAX:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]{{.*}} ins(%[[LOGITS]] : tensor<16x8xf32>)
// CHECK:   arith.maximumf
// CHECK: %[[SUM:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]{{.*}} ins(%[[LOGITS]], %[[MAX]] : tensor<16x8xf32>, tensor<16xf32>)
// CHECK:   math.exp
// CHECK: %[[SCORES:.+]] = linalg.generic {{.*}} ins(%[[LOGITS]], %[[MAX]], %[[SUM]] :
// CHECK: scf.for %[[T:[a-z0-9_]+]] = {{.*}} -> (tensor<16x2xi32>, tensor<16x2xf32>)
// CHECK:   scf.for %[[J:[a-z0-9_]+]] = {{.*}} -> (tensor<16x2xi32>, tensor<16x2xf32>, f32, index)
// CHECK:     scf.for %[[E:[a-z0-9_]+]] = {{.*}} -> (f32, index)
// CHECK:       tensor.extract %[[SCORES]][%[[T]], %[[E]]]
// CHECK:       arith.cmpf ogt
// CHECK:       arith.cmpf ord
// CHECK:     tensor.insert %{{.*}} into %{{.*}}[%[[T]], %[[J]]] : tensor<16x2xi32>
// Renormalisation: a row sum, then a division.
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK: arith.divf
func.func @router_softmax(%x: tensor<16x32xbf16>, %w: tensor<32x8xbf16>) -> (tensor<16x2xi32>, tensor<16x2xf32>) {
  %i, %wt = moe.router %x : tensor<16x32xbf16> weight(%w : tensor<32x8xbf16>) {renormalize, top_k = 2 : i64} -> tensor<16x2xi32>, tensor<16x2xf32>
  return %i, %wt : tensor<16x2xi32>, tensor<16x2xf32>
}

// -----

// Sigmoid scores; the bias only enters the selection scores; group scores
// [T, G] are the sum of each group's best two; scaling multiplies the result.
// CHECK-LABEL: func.func @router_deepseek
// CHECK: %[[LOGITS:.+]] = linalg.matmul
// CHECK: %[[SCORES:.+]] = linalg.generic {{.*}} ins(%[[LOGITS]] : tensor<4x64xf32>)
// CHECK:   math.exp
// CHECK: %[[SEL:.+]] = linalg.generic {{.*}} ins(%[[SCORES]], %{{.*}} : tensor<4x64xf32>, tensor<64xf32>)
// CHECK:   arith.addf
// CHECK: %[[GROUPS:.+]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<4x8xf32>)
// CHECK:   scf.for
// CHECK:     tensor.extract %[[SEL]]
// CHECK:   arith.addf
// CHECK: scf.for
// CHECK:   scf.for {{.*}} -> (f32, index)
// CHECK:     tensor.extract %[[GROUPS]]
// CHECK:   scf.for
// CHECK:     tensor.extract %[[SEL]]
// CHECK:     arith.divui
// CHECK:     tensor.extract %[[GROUPS]]
// The weights come from the unbiased scores.
// CHECK:     tensor.extract %[[SCORES]]
// CHECK: arith.constant 2.500000e+00 : f32
func.func @router_deepseek(%x: tensor<4x32xbf16>, %w: tensor<32x64xbf16>, %b: tensor<64xf32>) -> (tensor<4x8xi32>, tensor<4x8xf32>) {
  %i, %wt = moe.router %x : tensor<4x32xbf16> weight(%w : tensor<32x64xbf16>) bias(%b : tensor<64xf32>) {top_k = 8 : i64, score_func = #moe.score_func<sigmoid>, renormalize, scaling = 2.5, n_group = 8 : i64, topk_group = 4 : i64, group_score = #moe.group_score<top2_sum>} -> tensor<4x8xi32>, tensor<4x8xf32>
  return %i, %wt : tensor<4x8xi32>, tensor<4x8xf32>
}

// -----

// Softmax over the selected logits: the selection reads the raw logits (the
// input here) and the softmax runs on the [T, k] weights afterwards.
// CHECK-LABEL: func.func @router_after_topk_capacity
// CHECK: %[[LOGITS:.+]] = linalg.generic {{.*}} ins(%{{.*}} : tensor<8x4xf32>)
// CHECK: scf.for
// CHECK:   tensor.extract %[[LOGITS]]
// CHECK: linalg.generic {{.*}}"reduction"
// CHECK:   arith.maximumf
// Capacity: ceil(T * 1.25 * 1 / 4), at least min_capacity, then the
// position policy: choices in rank-major, token-minor order.
// CHECK: arith.constant 3.125000e-01 : f64
// CHECK: math.ceil
// CHECK: arith.maxsi
// CHECK: scf.for {{.*}} -> (tensor<8x1xi32>, tensor<8x1xf32>, tensor<4xi32>)
// CHECK:   scf.for {{.*}} -> (tensor<8x1xi32>, tensor<8x1xf32>, tensor<4xi32>)
// CHECK:     arith.cmpi slt
func.func @router_after_topk_capacity(%l: tensor<8x4xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>) {
  %i, %wt = moe.router %l : tensor<8x4xf32> {top_k = 1 : i64, score_after_topk, capacity_factor = 1.25, min_capacity = 2 : i64} -> tensor<8x1xi32>, tensor<8x1xf32>
  return %i, %wt : tensor<8x1xi32>, tensor<8x1xf32>
}

// -----

// The score drop policy ranks every assignment against the others.
// CHECK-LABEL: func.func @router_drop_by_score
// CHECK: scf.for {{.*}} -> (tensor<8x2xi32>, tensor<8x2xf32>)
// CHECK:   scf.for {{.*}} -> (i32)
// CHECK:     arith.cmpi eq
func.func @router_drop_by_score(%l: tensor<8x4xf32>) -> (tensor<8x2xi32>, tensor<8x2xf32>) {
  %i, %wt = moe.router %l : tensor<8x4xf32> {top_k = 2 : i64, capacity_factor = 1.0, drop_policy = #moe.drop_policy<score>} -> tensor<8x2xi32>, tensor<8x2xf32>
  return %i, %wt : tensor<8x2xi32>, tensor<8x2xf32>
}

// -----

// Dispatch: counts, prefix sums (with the cursors beside them), slot
// assignment in token order, and a gather generic for the rows.
// CHECK-LABEL: func.func @dispatch
// CHECK: %[[COUNTS:.+]] = scf.for {{.*}} -> (tensor<8xi32>)
// CHECK:   scf.for {{.*}} -> (tensor<8xi32>)
// CHECK-DAG:     arith.cmpi sge
// CHECK-DAG:     arith.cmpi slt
// CHECK: %[[PREFIX:[0-9]+]]:3 = scf.for {{.*}} -> (tensor<9xi32>, tensor<8xi32>, i32)
// CHECK:   tensor.extract %[[COUNTS]]
// CHECK: %[[SLOTS:[0-9]+]]:3 = scf.for {{.*}} iter_args(%{{.*}} = %[[PREFIX]]#1, {{.*}}) -> (tensor<8xi32>, tensor<16x2xi32>, tensor<33xi32>)
// CHECK: %[[ROWS:.+]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<32x64xf32>)
// CHECK:   linalg.index 0
// CHECK:   tensor.extract %[[SLOTS]]#2
// CHECK:   arith.select
// CHECK: return %[[ROWS]], %[[PREFIX]]#0, %[[SLOTS]]#1 : tensor<32x64xf32>, tensor<9xi32>, tensor<16x2xi32>
func.func @dispatch(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>) -> (tensor<32x64xf32>, tensor<9xi32>, tensor<16x2xi32>) {
  %p, %off, %map = moe.dispatch %x : tensor<16x64xf32>, %ids : tensor<16x2xi32> {num_experts = 8 : i64} -> tensor<32x64xf32>, tensor<9xi32>, tensor<16x2xi32>
  return %p, %off, %map : tensor<32x64xf32>, tensor<9xi32>, tensor<16x2xi32>
}

// -----

// Combine: one generic over [T, d] starting from the residual; the k
// expert rows are gathered through the mapping and summed in f32.
// CHECK-LABEL: func.func @combine
// CHECK-SAME: (%[[E:.+]]: tensor<32x64xbf16>, %[[MAP:.+]]: tensor<16x2xi32>, %[[W:.+]]: tensor<16x2xf32>, %[[R:.+]]: tensor<16x64xbf16>)
// CHECK: linalg.generic {{.*}} ins(%[[R]] : tensor<16x64xbf16>) outs(%{{.*}} : tensor<16x64xbf16>)
// CHECK: ^bb0(%[[RV:.+]]: bf16, %{{.*}}: bf16):
// CHECK:   %[[INIT:.+]] = arith.extf %[[RV]] : bf16 to f32
// CHECK:   scf.for {{.*}} iter_args(%{{.*}} = %[[INIT]]) -> (f32)
// CHECK:     tensor.extract %[[MAP]]
// CHECK:     tensor.extract %[[W]]
// CHECK:     tensor.extract %[[E]]
// CHECK:     arith.mulf
// CHECK:     arith.select
// CHECK:     arith.addf
// CHECK:   arith.truncf %{{.*}} : f32 to bf16
func.func @combine(%e: tensor<32x64xbf16>, %map: tensor<16x2xi32>, %w: tensor<16x2xf32>, %r: tensor<16x64xbf16>) -> tensor<16x64xbf16> {
  %y = moe.combine %e : tensor<32x64xbf16> mapping(%map : tensor<16x2xi32>) weights(%w : tensor<16x2xf32>) residual(%r : tensor<16x64xbf16>) -> tensor<16x64xbf16>
  return %y : tensor<16x64xbf16>
}

// -----

// Dynamic token counts flow through as tensor.dim.
// CHECK-LABEL: func.func @dispatch_dynamic
// CHECK: tensor.dim %{{.*}}, %c0
// CHECK: arith.muli
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<?x64xf32>)
func.func @dispatch_dynamic(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>) -> (tensor<?x64xf32>, tensor<9xi32>, tensor<?x2xi32>) {
  %p, %off, %map = moe.dispatch %x : tensor<?x64xf32>, %ids : tensor<?x2xi32> {num_experts = 8 : i64} -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x2xi32>
  return %p, %off, %map : tensor<?x64xf32>, tensor<9xi32>, tensor<?x2xi32>
}
