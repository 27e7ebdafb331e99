// The router's tensor-core GEMM split over K (router_split_k in the plan,
// --gpu-router-split-k): the planner's about two blocks an SM (8 row tiles
// of 128 at 1024 tokens: 4 of this layer's 8 K steps), or as asked, at
// most the K steps; 1: the unsplit kernel. Asked for measuring (the 1024-
// token routers split 16-33 ways add each run's [T, E] by f32 atomics).
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s --check-prefix=AUTO
// AUTO: router = "mma", router_split_k = 4 : i64
// AUTO: @moe_kernels::@moe_mma_dense_f32_m128_s2_splitk blocks
// RUN: moe-compile %s --target=cuda --gpu-router-split-k=3 --emit=mlir | FileCheck %s --check-prefix=THREE
// THREE: router = "mma", router_split_k = 3 : i64
// RUN: moe-compile %s --target=cuda --gpu-router-split-k=100 --emit=mlir | FileCheck %s --check-prefix=MANY
// MANY: router = "mma", router_split_k = 8 : i64
// RUN: moe-compile %s --target=cuda --gpu-router-split-k=1 --emit=mlir | FileCheck %s --check-prefix=ONE
// ONE: moe.gpu_plan = {{{.*}}router = "mma", slots
// ONE: @moe_kernels::@moe_mma_dense_f32_m128_s2 blocks
// Under one K step (hidden 8: the router is a GEMV) an asked split is
// moot; it crashed here (a division by zero) until 2026-12-05, found by
// test/fuzz/cuda-compile-sweep.py --run.
// RUN: sed 's/256/8/g' %s | moe-compile - --target=cuda --gpu-router-split-k=2 --emit=mlir | FileCheck %s --check-prefix=TINY
// TINY: moe.gpu_plan = {{{.*}}path = "gemv", router = array<i64:
// RUN: not moe-compile %s --target=cuda --gpu-router-split-k=300 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: error: router-split-k must be 0 (auto) or a split count from 1 to 256, got 300
func.func @layer(%x: tensor<1024x256xbf16> {moe.input = "x"}, %router: tensor<256x16xbf16> {moe.weight = "router"},
                 %w_up: tensor<16x256x128xbf16> {moe.weight = "w_up"},
                 %w_gate: tensor<16x256x128xbf16> {moe.weight = "w_gate"},
                 %w_down: tensor<16x128x256xbf16> {moe.weight = "w_down"}) -> (tensor<1024x256xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1024x256xbf16> router(%router : tensor<256x16xbf16>) up(%w_up : tensor<16x256x128xbf16>)
      gate(%w_gate : tensor<16x256x128xbf16>)
      down(%w_down : tensor<16x128x256xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<1024x256xbf16>
  return %y : tensor<1024x256xbf16>
}
