// moe-translate offers upstream's LLVM IR export; a lowered MoE helper
// function reaches LLVM IR.
// RUN: moe-opt %s -convert-arith-to-llvm -convert-func-to-llvm -reconcile-unrealized-casts | moe-translate --mlir-to-llvmir | FileCheck %s
// RUN: not moe-translate --mlir-to-llvmir %S/Inputs/does-not-exist.mlir 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: moe-translate --help | FileCheck %s --check-prefix=HELP

// CHECK-LABEL: define float @capacity_scale(float %0, float %1)
// CHECK: fmul float %0, %1
// MISSING: cannot open input file
// HELP: --mlir-to-llvmir
func.func @capacity_scale(%a: f32, %b: f32) -> f32 {
  %c = arith.mulf %a, %b : f32
  return %c : f32
}
