// RUN: moe-opt %s -convert-moe-to-linalg -canonicalize -split-input-file | FileCheck %s

// A loop over experts; each expert's rows are a slice given by the offsets,
// its weights rank-reduced slices (views), and its result is written in place
// into the matching slice of the zero-filled output.
// CHECK-LABEL: func.func @experts_gated_bf16
// CHECK-SAME: (%[[X:.+]]: tensor<32x64xbf16>, %[[OFF:.+]]: tensor<9xi32>, %[[WU:.+]]: tensor<8x64x128xbf16>, %[[WG:.+]]: tensor<8x64x128xbf16>, %[[WD:.+]]: tensor<8x128x64xbf16>)
// CHECK: %[[ZERO:.+]] = linalg.fill ins(%{{.*}} : bf16) outs(%{{.*}} : tensor<32x64xbf16>)
// CHECK: %[[R:.+]] = scf.for %[[E:.+]] = %c0 to %c8 step %c1 iter_args(%[[ACC:.+]] = %[[ZERO]])
// CHECK:   %[[B:.+]] = tensor.extract %[[OFF]][%[[E]]]
// CHECK:   %[[XE:.+]] = tensor.extract_slice %[[X]][%{{.*}}, 0] [%[[N:.+]], 64] [1, 1] : tensor<32x64xbf16> to tensor<?x64xbf16>
// CHECK:   %[[DEST:.+]] = tensor.extract_slice %[[ACC]][%{{.*}}, 0] [%[[N]], 64] [1, 1]
// CHECK:   %[[WUE:.+]] = tensor.extract_slice %[[WU]][%[[E]], 0, 0] [1, 64, 128] [1, 1, 1] : tensor<8x64x128xbf16> to tensor<64x128xbf16>
// CHECK:   %[[WGE:.+]] = tensor.extract_slice %[[WG]][%[[E]], 0, 0] [1, 64, 128] [1, 1, 1] : tensor<8x64x128xbf16> to tensor<64x128xbf16>
// CHECK:   %[[WDE:.+]] = tensor.extract_slice %[[WD]][%[[E]], 0, 0] [1, 128, 64] [1, 1, 1] : tensor<8x128x64xbf16> to tensor<128x64xbf16>
// CHECK:   %[[H:.+]] = linalg.matmul ins(%[[XE]], %[[WUE]] : tensor<?x64xbf16>, tensor<64x128xbf16>) outs(%{{.*}} : tensor<?x128xf32>)
// CHECK:   %[[G:.+]] = linalg.matmul ins(%[[XE]], %[[WGE]] : tensor<?x64xbf16>, tensor<64x128xbf16>) outs(%{{.*}} : tensor<?x128xf32>)
// CHECK:   %[[A:.+]] = linalg.generic {{.*}} ins(%[[H]], %[[G]] : tensor<?x128xf32>, tensor<?x128xf32>) outs(%{{.*}} : tensor<?x128xbf16>)
// CHECK:   ^bb0(%[[HV:.+]]: f32, %[[GV:.+]]: f32, %{{.*}}: bf16):
// silu(g) = g * sigmoid(g), times h, rounded to bf16.
// CHECK:     math.exp
// CHECK:     %[[SILU:.+]] = arith.mulf %[[GV]], %{{.*}} : f32
// CHECK:     %[[PROD:.+]] = arith.mulf %[[SILU]], %[[HV]] : f32
// CHECK:     arith.truncf %[[PROD]] : f32 to bf16
// CHECK:   %[[Y:.+]] = linalg.matmul ins(%[[A]], %[[WDE]] : tensor<?x128xbf16>, tensor<128x64xbf16>) outs(%{{.*}} : tensor<?x64xf32>)
// CHECK:   %[[YB:.+]] = linalg.generic {{.*}} ins(%[[Y]] : tensor<?x64xf32>) outs(%[[DEST]] : tensor<?x64xbf16>)
// CHECK:   %[[INS:.+]] = tensor.insert_slice %[[YB]] into %[[ACC]]
// CHECK:   scf.yield %[[INS]]
// CHECK: return %[[R]]
func.func @experts_gated_bf16(%p: tensor<32x64xbf16>, %off: tensor<9xi32>, %wu: tensor<8x64x128xbf16>, %wg: tensor<8x64x128xbf16>, %wd: tensor<8x128x64xbf16>) -> tensor<32x64xbf16> {
  %y = moe.experts %p : tensor<32x64xbf16> offsets(%off : tensor<9xi32>) up(%wu : tensor<8x64x128xbf16>) gate(%wg : tensor<8x64x128xbf16>) down(%wd : tensor<8x128x64xbf16>) {activation = #moe.activation<silu>} -> tensor<32x64xbf16>
  return %y : tensor<32x64xbf16>
}

// -----

// f32, plain GeLU (erf): the down projection accumulates straight into the
// output slice, with no rounding generic.
// CHECK-LABEL: func.func @experts_plain_f32
// CHECK: scf.for %{{.*}} iter_args(%[[ACC:.+]] = %{{.*}})
// CHECK:   %[[DEST:.+]] = tensor.extract_slice %[[ACC]]{{.*}} : tensor<16x32xf32> to tensor<?x32xf32>
// CHECK:   linalg.matmul
// CHECK:   linalg.generic
// CHECK:     math.erf
// CHECK-NOT: arith.truncf
// CHECK:   linalg.matmul ins(%{{.*}}, %{{.*}} : tensor<?x48xf32>, tensor<48x32xf32>) outs(%[[DEST]] : tensor<?x32xf32>)
// CHECK:   tensor.insert_slice
func.func @experts_plain_f32(%p: tensor<16x32xf32>, %off: tensor<5xi32>, %wu: tensor<4x32x48xf32>, %wd: tensor<4x48x32xf32>) -> tensor<16x32xf32> {
  %y = moe.experts %p : tensor<16x32xf32> offsets(%off : tensor<5xi32>) up(%wu : tensor<4x32x48xf32>) down(%wd : tensor<4x48x32xf32>) {activation = #moe.activation<gelu>} -> tensor<16x32xf32>
  return %y : tensor<16x32xf32>
}

// -----

// CHECK-LABEL: func.func @mlp_relu_f16
// CHECK-NOT: scf.for
// CHECK: %[[H:.+]] = linalg.matmul ins(%{{.*}}, %{{.*}} : tensor<8x32xf16>, tensor<32x64xf16>) outs(%{{.*}} : tensor<8x64xf32>)
// CHECK: linalg.generic {{.*}} ins(%[[H]] : tensor<8x64xf32>) outs(%{{.*}} : tensor<8x64xf16>)
// CHECK:   arith.maximumf
// CHECK:   arith.truncf %{{.*}} : f32 to f16
// CHECK: linalg.matmul {{.*}} outs(%{{.*}} : tensor<8x32xf32>)
// CHECK: arith.truncf %{{.*}} : f32 to f16
func.func @mlp_relu_f16(%x: tensor<8x32xf16>, %u: tensor<32x64xf16>, %d: tensor<64x32xf16>) -> tensor<8x32xf16> {
  %y = moe.mlp %x : tensor<8x32xf16> up(%u : tensor<32x64xf16>) down(%d : tensor<64x32xf16>) {activation = #moe.activation<relu>} -> tensor<8x32xf16>
  return %y : tensor<8x32xf16>
}

// -----

// GeLU with the tanh approximation.
// CHECK-LABEL: func.func @mlp_gelu_tanh
// CHECK: %[[C:.+]] = arith.constant 4.471500e-02 : f32
// CHECK: linalg.generic
// CHECK:   arith.mulf %{{.*}}, %[[C]] : f32
// CHECK:   math.tanh
func.func @mlp_gelu_tanh(%x: tensor<8x32xf32>, %u: tensor<32x64xf32>, %d: tensor<64x32xf32>) -> tensor<8x32xf32> {
  %y = moe.mlp %x : tensor<8x32xf32> up(%u : tensor<32x64xf32>) down(%d : tensor<64x32xf32>) {activation = #moe.activation<gelu_tanh>} -> tensor<8x32xf32>
  return %y : tensor<8x32xf32>
}
