// PR-MoE's residual MLP at one token: without mixing it runs as the dense
// slot of the routed experts' decode kernel (its row weight 1); with
// mlp_coef its routing kernel scales the complete routed output by c0, so
// that layer keeps the MLP's own kernels after the decode kernel.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s

// The second layer (mixed; its helper comes first in the output): the decode kernel, then the MLP's mixing routing
// kernel and its GEMVs.
// CHECK-LABEL: llvm.func @__moe_gpu_layer_1(
// CHECK-NOT: decode_dense = array
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_decode_e16_k2_softmax_t1_{{[a-z0-9_]*}}_t{{[0-9]+}} blocks in
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_route_dense_mix blocks in
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_gemv_gather_bf16
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_gemv_scatter_bf16
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@round_bf16
// The first layer: the MLP in the decode kernel, no routing kernel of its
// own.
// CHECK-LABEL: llvm.func @__moe_gpu_layer_0(
// CHECK-SAME: decode_dense = array<i64:
// CHECK-SAME: mlp = {{{.*}}in_decode_kernel, path = "gemv", router = "dense"
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_decode_e16_k2_softmax_t1_{{.*}}_dense_up_r1_{{[a-z0-9_]*}}_down_{{[a-z0-9_]*}}_gelu_plain_{{[a-z0-9_]*}} blocks in
// CHECK-NEXT: gpu.launch_func {{.*}}@moe_kernels::@round_bf16
func.func @prmoe_1(%x: tensor<1x128xbf16> {moe.input = "x"},
                   %r: tensor<128x16xbf16> {moe.weight = "router"},
                   %u: tensor<16x128x128xbf16> {moe.weight = "w_up"},
                   %d: tensor<16x128x128xbf16> {moe.weight = "w_down"},
                   %mu: tensor<128x256xbf16> {moe.weight = "mlp_up"},
                   %md: tensor<256x128xbf16> {moe.weight = "mlp_down"},
                   %mc: tensor<128x2xbf16> {moe.weight = "mlp_coef"})
    -> (tensor<1x128xbf16> {moe.output = "y"}) {
  %h = moe.layer %x : tensor<1x128xbf16> router(%r : tensor<128x16xbf16>)
      up(%u : tensor<16x128x128xbf16>) down(%d : tensor<16x128x128xbf16>)
      mlp_up(%mu : tensor<128x256xbf16>) mlp_down(%md : tensor<256x128xbf16>)
      {activation = #moe.activation<gelu>, top_k = 2 : i64} -> tensor<1x128xbf16>
  %y = moe.layer %h : tensor<1x128xbf16> router(%r : tensor<128x16xbf16>)
      up(%u : tensor<16x128x128xbf16>) down(%d : tensor<16x128x128xbf16>)
      mlp_up(%mu : tensor<128x256xbf16>) mlp_down(%md : tensor<256x128xbf16>)
      mlp_coef(%mc : tensor<128x2xbf16>)
      {activation = #moe.activation<gelu>, top_k = 2 : i64} -> tensor<1x128xbf16>
  return %y : tensor<1x128xbf16>
}
