// The wgmma down kernel's scatter epilogue (combine=atomic), for down
// columns that fill the 256-column block (d = 256): the thread's row tokens
// and weights are loaded before the wait for the last MMAs (their latency
// under it; none loaded after), and a row's vector reductions share one
// address, the column steps as immediate offsets (no address arithmetic
// between them).
// RUN: moe-opt %s --moe-cuda-pipeline="path=wgmma wgmma-rows=128 combine=atomic format=isa" | FileCheck %s
// CHECK: .entry moe_wgmma_scatter_bf16_n256
// CHECK: wgmma.wait_group.sync.aligned {{\\09}}1;
// CHECK: ld.global.s32
// CHECK: ld.global.b32
// CHECK: wgmma.wait_group.sync.aligned {{\\09}}0;
// CHECK-NOT: ld.global
// CHECK: red.global.add.v2.f32 [%rd[[B:[0-9]+]]+32], {{[^\\]*\\0A\\09// end inline asm\\0A\\09mul.rn.f32 \\09[^\\]*\\0A\\09mul.rn.f32 \\09[^\\]*\\0A\\09// begin inline asm\\0A\\09}}red.global.add.v2.f32 [%rd[[B]]+64],
// CHECK: .entry round_bf16
func.func @layer(%x: tensor<64x256xbf16>, %router: tensor<256x16xbf16>, %bias: tensor<16xf32>,
                 %w_up: tensor<16x256x128xbf16>, %w_gate: tensor<16x256x128xbf16>,
                 %w_down: tensor<16x128x256xbf16>) -> tensor<64x256xbf16> {
  %y = moe.layer %x : tensor<64x256xbf16> router(%router : tensor<256x16xbf16>) router_bias(%bias : tensor<16xf32>) up(%w_up : tensor<16x256x128xbf16>) gate(%w_gate : tensor<16x256x128xbf16>) down(%w_down : tensor<16x128x256xbf16>) {activation = #moe.activation<silu>, renormalize, score_func = #moe.score_func<sigmoid>, top_k = 4 : i64} -> tensor<64x256xbf16>
  return %y : tensor<64x256xbf16>
}
