// A layer whose gating kernel has nothing to clear: tensor-core (mma.sync)
// experts that combine by rows (no f32 output to accumulate), no GEMV
// projections, no pair counters, routing by the gating kernel. Its buffer
// to clear is then an empty one; moe-compile crashed here (a launch with
// no buffer) until 2026-12-04. Found by test/fuzz/cuda-compile-sweep.py.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --emit=mlir -o - | FileCheck %s

// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_gate_e16_k8_softmax_tiles64
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_mma_plain_gelu_bf16_m64
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_mma_weighted_bf16_m64
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_combine_k8_bf16
func.func @layer(
    %x: tensor<3x384xbf16> {moe.input = "x"},
    %router: tensor<384x16xbf16> {moe.weight = "router"},
    %w_up: tensor<16x384x128xbf16> {moe.weight = "w_up"},
    %w_down: tensor<16x128x384xbf16> {moe.weight = "w_down"})
    -> (tensor<3x384xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<3x384xbf16> router(%router : tensor<384x16xbf16>) up(%w_up : tensor<16x384x128xbf16>) down(%w_down : tensor<16x128x384xbf16>) {activation = #moe.activation<gelu>, top_k = 8 : i64} -> tensor<3x384xbf16>
  return %y : tensor<3x384xbf16>
}
