// REQUIRES: ptxas
// The routed down kernel's pairs in K runs (MmaOptions::kRuns): each (row
// tile, column block) pair's K steps in N runs, each an item of the
// producer form's queue, their sums added by the scatter's f32 atomics (so
// the combine by atomics). The planner takes 2 where experts get two or
// more row tiles, the pairs are under 3 waves of 132 and a run keeps 64 K
// steps: Mixtral-sized at 1024 tokens (256 rows an expert: 16 tiles x 16
// column blocks, 224 K steps), with the K rotation (_kr) that runs keep.
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s --check-prefix=AUTO
// AUTO: moe.gpu_plan = {combine = "atomic", down_k_runs = 2 : i64,
// AUTO: @moe_kernels::@moe_wgmma_scatter_bf16_m192s128_n256_s4_g2_ws_tma_kr_q_k2
// AUTO-NOT: moe_combine
// Asked for 1: no runs, and the combine by rows as before.
// RUN: moe-compile %s --target=cuda --gpu-down-k-runs=1 --emit=mlir | FileCheck %s --check-prefix=ONE
// ONE: moe.gpu_plan = {combine = "rows",
// ONE-NOT: down_k_runs
// ONE: @moe_kernels::@moe_wgmma_weighted_bf16_m192s128_n256_s4_g2_ws_tma_q_v16{{ }}
// Asked for 3: the most up to 3 that divide the 224 K steps, 2.
// RUN: moe-compile %s --target=cuda --gpu-down-k-runs=3 --emit=mlir | FileCheck %s --check-prefix=THREE
// THREE: moe.gpu_plan = {combine = "atomic", down_k_runs = 2 : i64,
// Asked for 7: 7 runs of 32 steps, the kernel named for them; it compiles
// to a cubin.
// RUN: moe-compile %s --target=cuda --gpu-down-k-runs=7 --emit=mlir | FileCheck %s --check-prefix=SEVEN
// SEVEN: moe.gpu_plan = {combine = "atomic", down_k_runs = 7 : i64,
// SEVEN: @moe_kernels::@moe_wgmma_scatter_bf16_m192s128_n256_s4_g2_ws_tma_kr_q_k7
// RUN: moe-compile %s --target=cuda --gpu-down-k-runs=7 -o %t.o
// RUN: test -s %t.o
// 8192 tokens (2048 pairs): none.
// RUN: sed 's/1024x4096/8192x4096/g' %s | moe-compile - --target=cuda --emit=mlir | FileCheck %s --check-prefix=M8192
// M8192: moe.gpu_plan = {combine = "rows",
// M8192-NOT: down_k_runs
// Bad requests: out of range, or with the combine by rows.
// RUN: not moe-compile %s --target=cuda --gpu-down-k-runs=65 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BIG
// BIG: error: down-k-runs must be 0 (auto) or a run count from 1 to 64, got 65
// RUN: not moe-compile %s --target=cuda --gpu-down-k-runs=2 --gpu-combine=rows --emit=mlir 2>&1 | FileCheck %s --check-prefix=ROWS
// ROWS: error: down-k-runs=2 adds the runs' sums by atomics: it needs combine=auto or atomic, got combine=rows
func.func @layer(%x: tensor<1024x4096xbf16> {moe.input = "x"}, %router: tensor<4096x8xbf16> {moe.weight = "router"},
                 %w_up: tensor<8x4096x14336xbf16> {moe.weight = "w_up"},
                 %w_gate: tensor<8x4096x14336xbf16> {moe.weight = "w_gate"},
                 %w_down: tensor<8x14336x4096xbf16> {moe.weight = "w_down"}) -> (tensor<1024x4096xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1024x4096xbf16> router(%router : tensor<4096x8xbf16>) up(%w_up : tensor<8x4096x14336xbf16>)
      gate(%w_gate : tensor<8x4096x14336xbf16>)
      down(%w_down : tensor<8x14336x4096xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<1024x4096xbf16>
  return %y : tensor<1024x4096xbf16>
}
