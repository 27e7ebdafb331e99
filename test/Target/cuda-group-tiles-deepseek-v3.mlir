// A DeepSeek-V3-sized layer at 8192 tokens (256 rows an expert: the
// planner's 192-row tiles 128 apart, two an expert). The up kernel's
// groups: a wave would take 132 / 16 column blocks = 8 tiles, about 14 MiB
// of weights into L2 between a tile's column blocks; capped at 4 MiB, two
// tiles (an expert's). The down kernel keeps the rule before (4)
// (results/wgmma-group-lag-2026-12-05.md).
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s
// CHECK: moe.gpu_plan = {combine = "atomic", group_tiles = array<i64: 2, 4>, k_rotate = "up", path = "wgmma"
// CHECK-SAME: tile = array<i64: 192, 256, 64>, tile_step = 128 : i64
// CHECK: @moe_kernels::@moe_wgmma_pair_silu_bf16_m192s128_n256_s4_g2_ws_tma_kr_q
// CHECK: @moe_kernels::@moe_wgmma_scatter_bf16_m192s128_n256_s4_g4_ws_tma_q
// RUN: moe-compile %s --target=cuda --gpu-report --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT
// REPORT: remark: the GPU layer's routed experts: wgmma, tiles of 192 rows 128 apart x 256 columns, 4 stages, at most 768 tiles, groups of 2 (up) and 4 (down) row tiles, persistent, 16-byte row stores, combined by f32 atomics{{$}}
// RUN: moe-compile %s --target=cuda --gpu-report --gpu-wgmma-group-tiles=-2 --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT-EXPERT
// REPORT-EXPERT: remark: the GPU layer's routed experts: {{.*}}, each expert's tiles a group, persistent,
// At 1024 tokens (32 rows an expert, one tile) no weight block is shared
// between tiles: the wave's 8 stays.
// RUN: sed 's/8192x7168/1024x7168/g' %s | moe-compile - --target=cuda --emit=mlir | FileCheck %s --check-prefix=T1024
// T1024: group_tiles = array<i64: 8, 4>
func.func @layer(%x: tensor<8192x7168xbf16> {moe.input = "x"}, %router: tensor<7168x256xbf16> {moe.weight = "router"},
                 %w_up: tensor<256x7168x2048xbf16> {moe.weight = "w_up"},
                 %w_gate: tensor<256x7168x2048xbf16> {moe.weight = "w_gate"},
                 %w_down: tensor<256x2048x7168xbf16> {moe.weight = "w_down"}) -> (tensor<8192x7168xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<8192x7168xbf16> router(%router : tensor<7168x256xbf16>) up(%w_up : tensor<256x7168x2048xbf16>)
      gate(%w_gate : tensor<256x7168x2048xbf16>)
      down(%w_down : tensor<256x2048x7168xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 8 : i64} -> tensor<8192x7168xbf16>
  return %y : tensor<8192x7168xbf16>
}
