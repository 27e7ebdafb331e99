// moe-opt behaves like mlir-opt: textual pipelines, IR printing after passes,
// split input files and diagnostics verification.
// RUN: moe-opt %s --pass-pipeline='builtin.module(moe-decompose-layer,canonicalize)' | FileCheck %s
// RUN: moe-opt %s -moe-decompose-layer --mlir-print-ir-after-all -o /dev/null 2>&1 | FileCheck %s --check-prefix=PRINT
// RUN: moe-opt %s -moe-to-linalg-pipeline | FileCheck %s --check-prefix=LINALG

// CHECK-LABEL: func.func @layer
// CHECK: moe.router
// CHECK: moe.combine
// PRINT: // -----// IR Dump After MoEDecomposeLayer (moe-decompose-layer) //----- //
// PRINT: moe.router
// LINALG-LABEL: func.func @layer
// LINALG-NOT: moe.
// LINALG: linalg.matmul
func.func @layer(%x: tensor<4x16xf32>, %wr: tensor<16x4xf32>, %wu: tensor<4x16x32xf32>, %wd: tensor<4x32x16xf32>) -> tensor<4x16xf32> {
  %y = moe.layer %x : tensor<4x16xf32> router(%wr : tensor<16x4xf32>) up(%wu : tensor<4x16x32xf32>) down(%wd : tensor<4x32x16xf32>) {activation = #moe.activation<relu>, top_k = 1 : i64} -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}
