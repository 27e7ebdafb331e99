// The wgmma blocks' groups of row tiles (group_tiles = up, down in the
// plan): at most the 24 MiB of rows of planWgmmaGroupTiles, at most the
// tiles whose pairs a wave of the grid covers (132 / column blocks), at
// least twice the tiles an expert gets (results/wgmma-groups-2026-12-03.md),
// and where an expert gets two or more tiles at most the tiles whose share
// of their weight blocks comes to 2 MiB, but at least an expert's tiles
// (results/kernel-sol-groups-1024-h100-2026-12-06.md);
// and the weights' TMA loads evict-first where an expert gets fewer than
// two row tiles (results/weights-evict-first-2026-12-03.md).
// Mixtral-sized, 1024 tokens (256 rows an expert; the planner's 192-row
// tiles 128 apart, so groups counted in tiles of 128): up 112 column
// blocks, a wave's 1 tile raised to twice an expert's 2, then capped by
// its 2 MB weight blocks at an expert's 2; down 16 column blocks, a wave's
// 8 capped at the 6 of 24 MiB of rows, then by its 7.3 MB weight blocks
// at an expert's 2 (groups of 4 and 6 measured 1.03x and 1.10x the
// kernels' time, Nsight Compute on an H100); two tiles an
// expert: no evict-first, and each expert's K steps from its own start
// in both kernels (k_rotate); the down kernel's 16 x 16 pairs in two K
// runs each, so the combine by atomics (cuda-down-k-runs.mlir).
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s --check-prefix=M1024
// M1024: moe.gpu_plan = {combine = "atomic", down_k_runs = 2 : i64, group_tiles = array<i64: 2, 2>, k_rotate, path = "wgmma"
// M1024-SAME: tile = array<i64: 192, 256, 64>, tile_step = 128 : i64, tiles = 24 : i64
// M1024-NOT: evict_first
// M1024: @moe_kernels::@moe_wgmma_pair_silu_bf16_m192s128_n256_s4_g2_ws_tma_kr_q
// M1024: @moe_kernels::@moe_wgmma_scatter_bf16_m192s128_n256_s4_g2_ws_tma_kr_q_k2
// The same tiles with the down kernel's pairs whole (no K runs, so the
// combine by rows): the rotation in the up kernel only (k_rotate = "up",
// as DeepSeek-V3 at 8192 tokens); --gpu-wgmma-k-order=both: in the down
// kernel too.
// RUN: moe-compile %s --target=cuda --gpu-down-k-runs=1 --emit=mlir | FileCheck %s --check-prefix=NORUNS
// NORUNS: moe.gpu_plan = {combine = "rows", group_tiles = array<i64: 2, 2>, k_rotate = "up", path = "wgmma"
// NORUNS: @moe_kernels::@moe_wgmma_pair_silu_bf16_m192s128_n256_s4_g2_ws_tma_kr_q
// NORUNS: @moe_kernels::@moe_wgmma_weighted_bf16_m192s128_n256_s4_g2_ws_tma_q
// RUN: moe-compile %s --target=cuda --gpu-down-k-runs=1 --gpu-wgmma-k-order=both --emit=mlir | FileCheck %s --check-prefix=KBOTH
// KBOTH: moe.gpu_plan = {combine = "rows", group_tiles = array<i64: 2, 2>, k_rotate, path = "wgmma"
// KBOTH: @moe_kernels::@moe_wgmma_weighted_bf16_m192s128_n256_s4_g2_ws_tma_kr_q
// Mixtral-sized, 8192 tokens (2048 rows an expert): twice an expert's 16
// tiles is more than the 24 MiB caps (24, 6); the up kernel's 2 MiB of
// weight blocks caps it at 16 (0.993-0.995x its time, 5.66 GB from DRAM
// against 6.67).
// RUN: sed 's/1024x4096/8192x4096/g' %s | moe-compile - --target=cuda --emit=mlir | FileCheck %s --check-prefix=M8192
// M8192: moe.gpu_plan = {combine = "rows", group_tiles = array<i64: 16, 6>, k_rotate, path = "wgmma"
// M8192-NOT: evict_first
// --gpu-wgmma-k-order=never: no rotation (nor the tall tiles' band
// order), said in the layer's attributes; an unknown value is an error.
// RUN: moe-compile %s --target=cuda --gpu-wgmma-k-order=never --emit=mlir | FileCheck %s --check-prefix=KNEVER
// KNEVER: wgmma_k_order = "never"
// KNEVER: moe.gpu_plan = {combine = "atomic", down_k_runs = 2 : i64, group_tiles = array<i64: 2, 2>, path = "wgmma"
// KNEVER: @moe_kernels::@moe_wgmma_pair_silu_bf16_m192s128_n256_s4_g2_ws_tma_q
// band: the band order without the rotation; up: the rotation in the up
// kernel only (the down kernel's name without _kr).
// RUN: moe-compile %s --target=cuda --gpu-wgmma-k-order=band --emit=mlir | FileCheck %s --check-prefix=KBAND
// KBAND: moe.gpu_plan = {combine = "atomic", down_k_runs = 2 : i64, group_tiles = array<i64: 2, 2>, path = "wgmma"
// KBAND: @moe_kernels::@moe_wgmma_pair_silu_bf16_m192s128_n256_s4_g2_ws_tma_q
// KBAND: @moe_kernels::@moe_wgmma_scatter_bf16_m192s128_n256_s4_g2_ws_tma_q_k2
// RUN: moe-compile %s --target=cuda --gpu-wgmma-k-order=up --emit=mlir | FileCheck %s --check-prefix=KUP
// KUP: moe.gpu_plan = {combine = "atomic", down_k_runs = 2 : i64, group_tiles = array<i64: 2, 2>, k_rotate = "up", path = "wgmma"
// KUP: @moe_kernels::@moe_wgmma_pair_silu_bf16_m192s128_n256_s4_g2_ws_tma_kr_q
// KUP: @moe_kernels::@moe_wgmma_scatter_bf16_m192s128_n256_s4_g2_ws_tma_q_k2
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-k-order=sometimes --emit=mlir 2>&1 | FileCheck %s --check-prefix=KBAD
// KBAD: error: wgmma-k-order must be auto, never, band, up or both, got 'sometimes'
// Asked for: both kernels take it.
// RUN: moe-compile %s --target=cuda --gpu-wgmma-group-tiles=3 --emit=mlir | FileCheck %s --check-prefix=ASKED
// ASKED: group_tiles = array<i64: 3, 3>
// -2: each expert's tiles a group (the pairs' order from the tile table
// and the expert offsets; kernel names _ge).
// RUN: moe-compile %s --target=cuda --gpu-wgmma-group-tiles=-2 --emit=mlir | FileCheck %s --check-prefix=EXPERT
// EXPERT: group_tiles = array<i64: -2, -2>
// EXPERT: @moe_kernels::@moe_wgmma_pair_silu_bf16_m192s128_n256_s4_ge_ws_tma_kr_q
// EXPERT: @moe_kernels::@moe_wgmma_scatter_bf16_m192s128_n256_s4_ge_ws_tma_kr_q_k2
// Only the persistent form without clusters takes them; the grid form
// keeps the planner's groups (said in the plan).
// RUN: moe-compile %s --target=cuda --gpu-wgmma-group-tiles=-2 --gpu-wgmma-persistent=never --emit=mlir | FileCheck %s --check-prefix=EXPERTGRID
// EXPERTGRID: group_tiles = array<i64: 2, 2>
// EXPERTGRID-NOT: _ge_
// A qwen3-sized layer: cuda-group-tiles-qwen3.mlir.
func.func @layer(%x: tensor<1024x4096xbf16> {moe.input = "x"}, %router: tensor<4096x8xbf16> {moe.weight = "router"},
                 %w_up: tensor<8x4096x14336xbf16> {moe.weight = "w_up"},
                 %w_gate: tensor<8x4096x14336xbf16> {moe.weight = "w_gate"},
                 %w_down: tensor<8x14336x4096xbf16> {moe.weight = "w_down"}) -> (tensor<1024x4096xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1024x4096xbf16> router(%router : tensor<4096x8xbf16>) up(%w_up : tensor<8x4096x14336xbf16>)
      gate(%w_gate : tensor<8x4096x14336xbf16>)
      down(%w_down : tensor<8x14336x4096xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<1024x4096xbf16>
  return %y : tensor<1024x4096xbf16>
}
