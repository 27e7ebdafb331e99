// Capacity drops in the fused GPU layer (drop policy position): with the
// split routing (1024 tokens, 2048 assignments), two parts run between
// select and finish, a block per 1024 assignments in priority order; the
// select kernel is the dropless one (it counts every assignment).
// CapacityCount counts each block's per expert; Capacity starts from the
// counts of the blocks before it, ranks by match.any.sync and the lanes
// below (popc), each warp's base from a shared table of the groups of the
// warps before it (no turns: no bar.warp.sync), drops those ranked past
// the capacity (ceil(1.0 * 1024 * 2 / 16) = 128), and its block 0 caps
// the counts the finish kernel scans; the combine skips dropped
// assignments.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --gpu-report --emit=mlir -o %t.mlir 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: FileCheck %s < %t.mlir
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX
// REPORT: remark: the GPU layer's routed experts: wgmma, {{.*}}; each expert keeps its first 128 assignments in priority order

// CHECK: capacity = 128 : i64
// CHECK: %[[TWO:.*]] = llvm.mlir.constant(2 : index) : i64
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_route_e16_k2_softmax_renorm_{{[a-z0-9_]*}}_select blocks in
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_route_e16_k2_softmax_renorm_{{[a-z0-9_]*}}_capacity_count_cap128 blocks in (%[[TWO]],
// CHECK-NEXT: gpu.launch_func {{.*}}@moe_kernels::@moe_route_e16_k2_softmax_renorm_{{[a-z0-9_]*}}_capacity_cap128 blocks in (%[[TWO]],
// CHECK-NEXT: gpu.launch_func {{.*}}@moe_kernels::@moe_route_e16_k2_softmax_renorm_{{[a-z0-9_]*}}_finish_cap128 blocks in
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_combine_k2_bf16_drops

// (The PTX is one escaped line: plain PTX checks, in order.)
// PTX: .entry moe_route_e16_k2_softmax_renorm_{{[a-z0-9_]*}}_capacity_count_cap128(
// PTX-SAME: atom.shared.add.u32
// PTX-SAME: .entry moe_route_e16_k2_softmax_renorm_{{[a-z0-9_]*}}_capacity_cap128(
// PTX-SAME: match.any.sync.b32
// PTX-SAME: popc.b32
// PTX-NOT: bar.warp.sync
// PTX-SAME: .entry moe_route_e16_k2_softmax_renorm_{{[a-z0-9_]*}}_finish_cap128(
// PTX-SAME: .entry moe_combine_k2_bf16_drops(
// PTX-SAME: setp.gt.s32 {{[^,]*}}, {{[^,]*}}, -1;
// PTX-SAME: selp.f32
func.func @layer(
    %x: tensor<1024x256xbf16> {moe.input = "x"},
    %router: tensor<256x16xbf16> {moe.weight = "router"},
    %w_up: tensor<16x256x256xbf16> {moe.weight = "w_up"},
    %w_gate: tensor<16x256x256xbf16> {moe.weight = "w_gate"},
    %w_down: tensor<16x256x256xbf16> {moe.weight = "w_down"})
    -> (tensor<1024x256xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1024x256xbf16> router(%router : tensor<256x16xbf16>) up(%w_up : tensor<16x256x256xbf16>) gate(%w_gate : tensor<16x256x256xbf16>) down(%w_down : tensor<16x256x256xbf16>) {activation = #moe.activation<silu>, capacity_factor = 1.0 : f64, renormalize, top_k = 2 : i64} -> tensor<1024x256xbf16>
  return %y : tensor<1024x256xbf16>
}
