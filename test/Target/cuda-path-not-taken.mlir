// REQUIRES: ptxas
// A tensor-core path asked for (--gpu-path=mma or wgmma) where the layer's
// sizes cannot take it (hidden and ffn sizes must be multiples of 128): the
// layer still compiles, on the GEMV path, and a warning says so, so that a
// test or benchmark asking for wgmma tiles does not pass on the GEMVs
// unnoticed (three GPU e2e cases did, until 2026-12-06).
// RUN: moe-compile %s --target=cuda --gpu-path=wgmma --gpu-report --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=WGMMA
// WGMMA: warning: the wgmma path was asked for (--gpu-path), but the hidden size (320) and ffn size (256) of the routed experts must be multiples of 128: they run on the GEMV path
// WGMMA: remark: 'moe.layer' runs fused on the GPU: routed experts on gemv
// RUN: moe-compile %s --target=cuda --gpu-path=mma --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=MMA
// MMA: warning: the mma path was asked for (--gpu-path)
// The paths chosen by the planner, or the GEMVs asked for: no warning.
// RUN: moe-compile %s --target=cuda --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=QUIET --allow-empty
// RUN: moe-compile %s --target=cuda --gpu-path=gemv --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=QUIET --allow-empty
// QUIET-NOT: warning
func.func @layer(
    %x: tensor<1100x320xbf16> {moe.input = "x"},
    %router: tensor<320x8xbf16> {moe.weight = "router"},
    %w_up: tensor<8x320x256xbf16> {moe.weight = "w_up"},
    %w_gate: tensor<8x320x256xbf16> {moe.weight = "w_gate"},
    %w_down: tensor<8x256x320xbf16> {moe.weight = "w_down"})
    -> (tensor<1100x320xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1100x320xbf16> router(%router : tensor<320x8xbf16>) up(%w_up : tensor<8x320x256xbf16>) gate(%w_gate : tensor<8x320x256xbf16>) down(%w_down : tensor<8x256x320xbf16>) {activation = #moe.activation<silu>, top_k = 2 : i64, renormalize} -> tensor<1100x320xbf16>
  return %y : tensor<1100x320xbf16>
}
