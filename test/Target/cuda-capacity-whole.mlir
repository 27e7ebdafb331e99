// Capacity drops where one block routes every token: the gating kernel
// (4 tokens: its last block ranks and drops) or, without it, the whole
// routing kernel; capacity ceil(0.5 * 4 * 2 / 8) = 1.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX
// RUN: moe-compile %s --target=cuda --gpu-fused-gate=never --emit=mlir | FileCheck %s --check-prefix=WHOLE
// CHECK: capacity = 1 : i64
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_gate_e8_k2_softmax_renorm_pf_cap1
// PTX: .entry moe_gate_e8_k2_softmax_renorm_pf_cap1(
// PTX-SAME: match.any.sync.b32
// PTX-SAME: bar.warp.sync
// PTX-SAME: min.s32 {{[^,]*}}, {{[^,]*}}, 1;
// WHOLE: gpu.launch_func {{.*}}@moe_kernels::@moe_route_e8_k2_softmax_renorm_cap1 blocks in
func.func @layer(
    %x: tensor<4x64xbf16> {moe.input = "x"},
    %router: tensor<64x8xbf16> {moe.weight = "router"},
    %w_up: tensor<8x64x64xbf16> {moe.weight = "w_up"},
    %w_gate: tensor<8x64x64xbf16> {moe.weight = "w_gate"},
    %w_down: tensor<8x64x64xbf16> {moe.weight = "w_down"})
    -> (tensor<4x64xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<4x64xbf16> router(%router : tensor<64x8xbf16>) up(%w_up : tensor<8x64x64xbf16>) gate(%w_gate : tensor<8x64x64xbf16>) down(%w_down : tensor<8x64x64xbf16>) {activation = #moe.activation<silu>, capacity_factor = 0.5 : f64, renormalize, top_k = 2 : i64} -> tensor<4x64xbf16>
  return %y : tensor<4x64xbf16>
}
