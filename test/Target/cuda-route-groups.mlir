// Group-limited routing on the fused GPU layer (DeepSeek-V3's: sigmoid
// scores with a bias, 8 groups of 32 experts scored by their best two, the
// best 4 groups kept) at one token, in the decode kernel, with a shared
// expert as its dense slot; the groups' best two keys meet over the warp by
// shuffles of (max, min) pairs.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX
// RUN: moe-compile %s --target=cuda --gpu-decode-kernel=never --emit=mlir | FileCheck %s --check-prefix=GATE

// CHECK: moe.gpu_plan = {decode_dense = {{.*}}shared = {{{.*}}in_decode_kernel, path = "gemv", router = "dense"
// CHECK: gpu.launch_func {{.*}}@moe_decode_e256_k8_sigmoid_renorm_biasf32_g8of4top2_t1_{{.*}}_dense_
// CHECK-NEXT: gpu.launch_func {{.*}}@round_bf16
// GATE: gpu.launch_func {{.*}}@moe_gate_e256_k8_sigmoid_renorm_biasf32_g8of4top2_t1_trigger
// PTX-LABEL: .entry moe_decode_e256_k8_sigmoid_renorm_biasf32_g8of4top2_t1_
// PTX-COUNT-8: min.NaN.f32
// PTX: shfl.sync.bfly
func.func @deepseek_v3_1(%x: tensor<1x256xbf16> {moe.input = "x"},
                         %r: tensor<256x256xbf16> {moe.weight = "router"},
                         %bias: tensor<256xf32> {moe.weight = "router_bias"},
                         %u: tensor<256x256x128xbf16> {moe.weight = "w_up"},
                         %g: tensor<256x256x128xbf16> {moe.weight = "w_gate"},
                         %d: tensor<256x128x256xbf16> {moe.weight = "w_down"},
                         %su: tensor<256x128xbf16> {moe.weight = "shared_up"},
                         %sg: tensor<256x128xbf16> {moe.weight = "shared_gate"},
                         %sd: tensor<128x256xbf16> {moe.weight = "shared_down"})
    -> (tensor<1x256xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1x256xbf16> router(%r : tensor<256x256xbf16>)
      router_bias(%bias : tensor<256xf32>)
      up(%u : tensor<256x256x128xbf16>) gate(%g : tensor<256x256x128xbf16>)
      down(%d : tensor<256x128x256xbf16>)
      shared_up(%su : tensor<256x128xbf16>) shared_gate(%sg : tensor<256x128xbf16>)
      shared_down(%sd : tensor<128x256xbf16>)
      {activation = #moe.activation<silu>, score_func = #moe.score_func<sigmoid>,
       n_group = 8 : i64, topk_group = 4 : i64,
       group_score = #moe.group_score<top2_sum>, renormalize, top_k = 8 : i64}
      -> tensor<1x256xbf16>
  return %y : tensor<1x256xbf16>
}
