// DeepSpeed-MoE's PR-MoE residual MLP on the fused GPU layer: an expert
// stage of one expert (ungated), a row a token, after the routed stage.
// With mlp_coef (+ bias) its routing kernel computes the softmax over the
// two logits x mlp_coef + bias, scales the routed output in place by c0 and
// weights the MLP's rows by c1.
// REQUIRES: ptxas
// RUN: moe-opt %s -convert-moe-layer-to-gpu-call | FileCheck %s --check-prefix=CALL
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX

// CALL-LABEL: func.func private @__moe_gpu_layer_0(
// CALL-SAME: tensor<8x512x256xbf16> {{.*}}, tensor<256x512xbf16> {{.*}}, tensor<512x256xbf16> {{.*}}, tensor<256x2xbf16> {{.*}}, tensor<2xbf16> {{.*}}) -> tensor<64x256xbf16>
// CALL-SAME: mlp = {mix, mix_bias, mma_warps = 4 : i64, path = "{{[a-z]*}}", rows_per_expert = 6.400000e+01 : f64

// CHECK-LABEL: llvm.func @__moe_gpu_layer_0(
// CHECK: mlp = {{{.*}}router = "dense_mix", slots = 1 : i64
// CHECK: gpu.launch_func {{.*}}@moe_route_e8_k1_softmax
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_{{.*}}scatter
// CHECK: gpu.launch_func {{.*}}@moe_route_dense_mix_biasbf16
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_{{.*}}scatter
// CHECK: gpu.launch_func {{.*}}@round_bf16
// CHECK: moe_model_signature("capturable-step\0Adevice-input x BF16 64x256\0Adevice-weight router BF16 256x8\0Adevice-weight w_up BF16 8x256x512\0Adevice-weight w_down BF16 8x512x256\0Adevice-weight mlp_up BF16 256x512\0Adevice-weight mlp_down BF16 512x256\0Adevice-weight mlp_coef BF16 256x2\0Adevice-weight mlp_coef_bias BF16 2\0Adevice-output y BF16 64x256\0A\00")

// Two sums a token over the lanes and warps, the sigmoids of both
// differences, the routed row scaled in place.
// PTX-LABEL: .entry moe_route_dense_mix_biasbf16_tiles128(
// PTX: bar.sync
// PTX: ex2.approx
// PTX: rcp.rn.f32
// PTX: ex2.approx
// PTX: ld.global.b32 {{.*}}mul.rn.f32 {{.*}}st.global.b32
// PTX: ret;
func.func @prmoe(%x: tensor<64x256xbf16> {moe.input = "x"},
                 %r: tensor<256x8xbf16> {moe.weight = "router"},
                 %u: tensor<8x256x512xbf16> {moe.weight = "w_up"},
                 %d: tensor<8x512x256xbf16> {moe.weight = "w_down"},
                 %mu: tensor<256x512xbf16> {moe.weight = "mlp_up"},
                 %md: tensor<512x256xbf16> {moe.weight = "mlp_down"},
                 %mc: tensor<256x2xbf16> {moe.weight = "mlp_coef"},
                 %mb: tensor<2xbf16> {moe.weight = "mlp_coef_bias"})
    -> (tensor<64x256xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<64x256xbf16> router(%r : tensor<256x8xbf16>)
      up(%u : tensor<8x256x512xbf16>) down(%d : tensor<8x512x256xbf16>)
      mlp_up(%mu : tensor<256x512xbf16>) mlp_down(%md : tensor<512x256xbf16>)
      mlp_coef(%mc : tensor<256x2xbf16>) mlp_coef_bias(%mb : tensor<2xbf16>)
      {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<64x256xbf16>
  return %y : tensor<64x256xbf16>
}
