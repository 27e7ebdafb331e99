// The dense ops round-trip, and their verifiers name what is wrong.
// RUN: moe-opt %s --split-input-file | moe-opt --split-input-file | FileCheck %s
// RUN: moe-opt %s --split-input-file --mlir-print-op-generic | moe-opt | FileCheck %s --check-prefix=LOWER-NOT-NEEDED
// RUN: moe-opt %s --split-input-file --convert-moe-to-linalg | FileCheck %s --check-prefix=LINALG

// CHECK-LABEL: func.func @dense
// CHECK: moe.embedding %{{.*}} : tensor<4xi32> table(%{{.*}} : tensor<10x8xbf16>) -> tensor<4x8xbf16>
// CHECK: moe.rms_norm %{{.*}} : tensor<4x8xbf16> weight(%{{.*}} : tensor<8xbf16>) {epsilon = 1.000000e-05 : f64} -> tensor<4x8xbf16>
// CHECK: moe.layer_norm %{{.*}} : tensor<4x8xbf16> weight(%{{.*}} : tensor<8xbf16>) bias(%{{.*}} : tensor<8xbf16>) -> tensor<4x8xbf16>
// LOWER-NOT-NEEDED: moe.layer_norm
// LINALG-LABEL: func.func @dense
// LINALG-NOT: moe.
// LINALG: tensor.extract
// LINALG: math.rsqrt
// LINALG: math.rsqrt
func.func @dense(%ids: tensor<4xi32>, %e: tensor<10x8xbf16>, %w: tensor<8xbf16>, %b: tensor<8xbf16>) -> (tensor<4x8xbf16>, tensor<4x8xbf16>) {
  %h = moe.embedding %ids : tensor<4xi32> table(%e : tensor<10x8xbf16>) -> tensor<4x8xbf16>
  %y = moe.rms_norm %h : tensor<4x8xbf16> weight(%w : tensor<8xbf16>) {epsilon = 1.0e-5 : f64} -> tensor<4x8xbf16>
  %z = moe.layer_norm %h : tensor<4x8xbf16> weight(%w : tensor<8xbf16>) bias(%b : tensor<8xbf16>) -> tensor<4x8xbf16>
  return %y, %z : tensor<4x8xbf16>, tensor<4x8xbf16>
}
