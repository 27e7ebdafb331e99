// Shared experts on the fused GPU layer at one token (cuda-layer-shared.mlir
// has the many-token form).
// REQUIRES: ptxas
// RUN: moe-opt %s -convert-moe-layer-to-gpu-call | FileCheck %s --check-prefix=CALL
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX

// One token of a DeepSeek-shaped layer (a gated shared expert, no
// coefficient): the decode kernel for the routed experts, the shared
// expert's GEMVs after it with every weight 1.
// CALL-LABEL: func.func private @__moe_gpu_layer_0(
// CALL-SAME: shared = {gated, mma_warps = 4 : i64, path = "gemv", rows_per_expert = 1.000000e+00 : f64
// CHECK-LABEL: llvm.func @__moe_gpu_layer_0(
// CHECK: decode_kernel = {{.*}}shared = {{{.*}}path = "gemv", router = "dense", slots = 1 : i64
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_decode_
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_route_dense blocks in
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_gemv_gather_pair_bf16
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_gemv_scatter_bf16
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@round_bf16
// PTX-LABEL: .entry moe_route_dense(
// PTX-NOT: bar.sync
// PTX: ret;
func.func @deepseek_1(%x: tensor<1x256xbf16> {moe.input = "x"},
                      %r: tensor<256x64xbf16> {moe.weight = "router"},
                      %u: tensor<64x256x128xbf16> {moe.weight = "w_up"},
                      %g: tensor<64x256x128xbf16> {moe.weight = "w_gate"},
                      %d: tensor<64x128x256xbf16> {moe.weight = "w_down"},
                      %su: tensor<256x256xbf16> {moe.weight = "shared_up"},
                      %sg: tensor<256x256xbf16> {moe.weight = "shared_gate"},
                      %sd: tensor<256x256xbf16> {moe.weight = "shared_down"})
    -> (tensor<1x256xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1x256xbf16> router(%r : tensor<256x64xbf16>)
      up(%u : tensor<64x256x128xbf16>) gate(%g : tensor<64x256x128xbf16>)
      down(%d : tensor<64x128x256xbf16>)
      shared_up(%su : tensor<256x256xbf16>) shared_gate(%sg : tensor<256x256xbf16>)
      shared_down(%sd : tensor<256x256xbf16>)
      {activation = #moe.activation<silu>, renormalize, top_k = 6 : i64} -> tensor<1x256xbf16>
  return %y : tensor<1x256xbf16>
}
