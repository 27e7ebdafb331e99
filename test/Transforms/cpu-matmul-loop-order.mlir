// RUN: moe-opt %s -moe-cpu-matmul-loop-order | FileCheck %s

// CHECK-DAG: #[[A:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[B:.+]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[C:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func.func @mixed_precision
// CHECK-NOT: linalg.matmul
// CHECK: linalg.generic {indexing_maps = [#[[A]], #[[B]], #[[C]]], iterator_types = ["parallel", "reduction", "parallel"]}
// CHECK-SAME: ins(%{{.*}}, %{{.*}} : tensor<?x64xbf16>, tensor<64x128xbf16>) outs(%{{.*}} : tensor<?x128xf32>)
// CHECK: ^bb0(%[[X:.+]]: bf16, %[[W:.+]]: bf16, %[[ACC:.+]]: f32):
// CHECK:   %[[XF:.+]] = arith.extf %[[X]] : bf16 to f32
// CHECK:   %[[WF:.+]] = arith.extf %[[W]] : bf16 to f32
// CHECK:   %[[P:.+]] = arith.mulf %[[XF]], %[[WF]] : f32
// CHECK:   %[[S:.+]] = arith.addf %[[ACC]], %[[P]] : f32
// CHECK:   linalg.yield %[[S]]
func.func @mixed_precision(%a: tensor<?x64xbf16>, %b: tensor<64x128xbf16>, %c: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %r = linalg.matmul ins(%a, %b : tensor<?x64xbf16>, tensor<64x128xbf16>) outs(%c : tensor<?x128xf32>) -> tensor<?x128xf32>
  return %r : tensor<?x128xf32>
}

// A transposed matmul keeps its own form.
// CHECK-LABEL: func.func @transposed_b
// CHECK: linalg.matmul
func.func @transposed_b(%a: tensor<4x8xf32>, %b: tensor<16x8xf32>, %c: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %r = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
       ins(%a, %b : tensor<4x8xf32>, tensor<16x8xf32>) outs(%c : tensor<4x16xf32>) -> tensor<4x16xf32>
  return %r : tensor<4x16xf32>
}
