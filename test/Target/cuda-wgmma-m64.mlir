// 64-row wgmma tiles (wgmma-rows=64): the routing's tiles are 64 rows, both
// MMA warpgroups of a block multiply the same rows, each half of each
// matrix's columns, so every wgmma is m64n128 (a 128-row tile's are
// m64n256), and the shared memory holds 64 A rows a stage.
// RUN: moe-opt %s --moe-cuda-pipeline="path=wgmma wgmma-rows=64 combine=atomic format=isa" | FileCheck %s
// RUN: moe-opt %s --moe-cuda-pipeline="path=wgmma wgmma-rows=128 combine=atomic format=isa" | FileCheck %s --check-prefix=M128
// CHECK-DAG: .entry moe_route_e16_k4_sigmoid_renorm_biasf32_tiles64_finish
// CHECK-DAG: .entry moe_wgmma_pair_silu_bf16_m64_n256_s4_g64_ws_tma_kr_q
// CHECK-DAG: .entry moe_wgmma_scatter_bf16_m64_n256_s4_g64_ws_tma_kr_q
// CHECK-NOT: wgmma.mma_async.sync.aligned.m64n256k16
// CHECK: wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16
// CHECK-NOT: wgmma.mma_async.sync.aligned.m64n256k16
// M128-DAG: .entry moe_route_e16_k4_sigmoid_renorm_biasf32_tiles128_finish
// M128-DAG: .entry moe_wgmma_pair_silu_bf16_n256_s4_g32_ws_tma_kr_q
// M128: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
func.func @layer(%x: tensor<1024x256xbf16>, %router: tensor<256x16xbf16>, %bias: tensor<16xf32>,
                 %w_up: tensor<16x256x256xbf16>, %w_gate: tensor<16x256x256xbf16>,
                 %w_down: tensor<16x256x256xbf16>) -> tensor<1024x256xbf16> {
  %y = moe.layer %x : tensor<1024x256xbf16> router(%router : tensor<256x16xbf16>) router_bias(%bias : tensor<16xf32>) up(%w_up : tensor<16x256x256xbf16>) gate(%w_gate : tensor<16x256x256xbf16>) down(%w_down : tensor<16x256x256xbf16>) {activation = #moe.activation<silu>, renormalize, score_func = #moe.score_func<sigmoid>, top_k = 4 : i64} -> tensor<1024x256xbf16>
  return %y : tensor<1024x256xbf16>
}
