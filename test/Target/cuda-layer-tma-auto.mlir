// The wgmma producer's weights come by TMA by default for gated layers at
// any rows an expert; for ungated ones where experts get 512 rows or more on
// average (tokens x top-k / experts: 2048 x 2 / 8 here), and by the
// producer's cp.async below that (2040 tokens: 510 rows). (For 128-row
// tiles: 192-row ones, which the planner takes here, always take TMA.)
// RUN: sed 's/2048x128/2040x128/g' %s | moe-compile - --target=cuda --gpu-wgmma-rows=128 --emit=mlir | FileCheck %s --check-prefix=GATED510
// RUN: sed -e '/\/\/ GATE$/d' %s | moe-compile - --target=cuda --gpu-wgmma-rows=128 --emit=mlir | FileCheck %s --check-prefix=PLAIN512
// RUN: sed -e '/\/\/ GATE$/d' -e 's/2048x128/2040x128/g' %s | moe-compile - --target=cuda --gpu-wgmma-rows=128 --emit=mlir | FileCheck %s --check-prefix=PLAIN510
// RUN: sed 's/2048x128/2040x128/g' %s | moe-compile - --target=cuda --gpu-wgmma-rows=128 --gpu-wgmma-persistent=producer --emit=mlir | FileCheck %s --check-prefix=ASKED
// GATED510: moe.gpu_plan = {{{.*}}path = "wgmma", persistent, producer, {{.*}}weights_tma, wide_stores}
// GATED510: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4_ws_tma_kr_q_v16 blocks
// PLAIN512: moe.gpu_plan = {{{.*}}path = "wgmma", persistent, producer, {{.*}}weights_tma, wide_stores}
// PLAIN512: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_plain_silu_bf16_n256_s4_ws_tma_kr_q_v16 blocks
// PLAIN510: moe.gpu_plan = {{{.*}}path = "wgmma", persistent, producer,
// PLAIN510-NOT: weights_tma
// PLAIN510: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_plain_silu_bf16_n256_s4_ws_kr_q_v16 blocks
// ASKED: moe.gpu_plan = {{{.*}}path = "wgmma", persistent, producer,
// ASKED-NOT: weights_tma
// ASKED: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4_ws_kr_q_v16 blocks
func.func @layer(%x: tensor<2048x128xbf16> {moe.input = "x"}, %router: tensor<128x8xbf16> {moe.weight = "router"},
                 %w_up: tensor<8x128x256xbf16> {moe.weight = "w_up"},
                 %w_gate: tensor<8x128x256xbf16> {moe.weight = "w_gate"}, // GATE
                 %w_down: tensor<8x256x128xbf16> {moe.weight = "w_down"}) -> (tensor<2048x128xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<2048x128xbf16> router(%router : tensor<128x8xbf16>) up(%w_up : tensor<8x128x256xbf16>)
      gate(%w_gate : tensor<8x128x256xbf16>) // GATE
      down(%w_down : tensor<8x256x128xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<2048x128xbf16>
  return %y : tensor<2048x128xbf16>
}
