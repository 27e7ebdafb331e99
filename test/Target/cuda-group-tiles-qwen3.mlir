// A qwen3-sized layer at 1024 tokens (64 rows an expert, one 128-row tile):
// groups of the tiles a wave of the grid covers, up 132 / 6 column blocks
// = 22 (24 MiB of rows would be 48), down 132 / 8 = 16 (was all 128
// tiles: the activations then came from DRAM once per column block,
// results/wgmma-groups-2026-12-03.md); fewer than two tiles an expert, so
// the weights' TMA loads are evict-first.
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s
// CHECK: moe.gpu_plan = {combine = "rows", evict_first, group_tiles = array<i64: 22, 16>, path = "wgmma"
// CHECK: @moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4_g22_ws_tma_ef_q
// CHECK: @moe_kernels::@moe_wgmma_weighted_bf16_n256_s4_g16_ws_tma_ef_q
// RUN: moe-compile %s --target=cuda --gpu-weights-evict-first=never --emit=mlir | FileCheck %s --check-prefix=NEVER
// NEVER: moe.gpu_plan = {combine = "rows", group_tiles = array<i64: 22, 16>, path = "wgmma"
// NEVER-NOT: _ef_q
// At 8192 tokens (512 rows an expert) the planner's 192-row tiles 192 apart,
// where starting each expert's K steps elsewhere measured slower: no
// k_rotate (results/wgmma-k-order-2026-12-04.md).
// The up kernel's groups there: three tiles an expert's share of its 1
// MiB weight blocks is 2 MiB at 6 tiles, under the wave's 22 (4 MiB at 12
// measured 1.005x the time, results/kernel-sol-groups-1024-h100-2026-12-06.md);
// the down kernel's 393 KB blocks leave the wave's 16
// (results/wgmma-group-lag-2026-12-05.md).
// RUN: sed 's/1024x2048/8192x2048/g' %s | moe-compile - --target=cuda --emit=mlir | FileCheck %s --check-prefix=K8192
// K8192-NOT: k_rotate
// K8192: group_tiles = array<i64: 6, 16>
// K8192-SAME: tile = array<i64: 192, 256, 64>
// K8192-NOT: k_rotate
func.func @layer(%x: tensor<1024x2048xbf16> {moe.input = "x"}, %router: tensor<2048x128xbf16> {moe.weight = "router"},
                 %w_up: tensor<128x2048x768xbf16> {moe.weight = "w_up"},
                 %w_gate: tensor<128x2048x768xbf16> {moe.weight = "w_gate"},
                 %w_down: tensor<128x768x2048xbf16> {moe.weight = "w_down"}) -> (tensor<1024x2048xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1024x2048xbf16> router(%router : tensor<2048x128xbf16>) up(%w_up : tensor<128x2048x768xbf16>)
      gate(%w_gate : tensor<128x2048x768xbf16>)
      down(%w_down : tensor<128x768x2048xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 8 : i64} -> tensor<1024x2048xbf16>
  return %y : tensor<1024x2048xbf16>
}
