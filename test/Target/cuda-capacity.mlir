// Capacity drops in the fused GPU layer (drop policy position): with the
// split routing (512 tokens), one block of the Capacity part runs between
// select and finish; the select kernel is the dropless one (it counts
// every assignment). It ranks the assignments by match.any.sync and the
// lanes below (popc), each warp's base from a shared table of the groups
// of the warps before it (no turns: no bar.warp.sync), drops those ranked
// past the capacity (ceil(1.0 * 512 * 2 / 16) = 64) and caps the counts
// the finish kernel scans; the combine skips dropped assignments.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --gpu-report --emit=mlir -o %t.mlir 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: FileCheck %s < %t.mlir
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX
// REPORT: remark: the GPU layer's routed experts: wgmma, {{.*}}; each expert keeps its first 64 assignments in priority order

// CHECK: capacity = 64 : i64
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_route_e16_k2_softmax_renorm_tiles128_select blocks in
// CHECK-NEXT: gpu.launch_func {{.*}}@moe_kernels::@moe_route_e16_k2_softmax_renorm_tiles128_capacity_cap64 blocks in ({{.*}}) threads in ({{.*}}) : i64 args
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_route_e16_k2_softmax_renorm_tiles128_finish_cap64 blocks in
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_combine_k2_bf16_drops

// (The PTX is one escaped line: plain PTX checks, in order.)
// PTX: .entry moe_route_e16_k2_softmax_renorm_tiles128_capacity_cap64(
// PTX-SAME: match.any.sync.b32
// PTX-SAME: popc.b32
// PTX-NOT: bar.warp.sync
// PTX-SAME: min.s32 {{[^,]*}}, {{[^,]*}}, 64;
// PTX-SAME: .entry moe_route_e16_k2_softmax_renorm_tiles128_finish_cap64(
// PTX-SAME: .entry moe_combine_k2_bf16_drops(
// PTX-SAME: setp.gt.s32 {{[^,]*}}, {{[^,]*}}, -1;
// PTX-SAME: selp.f32
func.func @layer(
    %x: tensor<512x256xbf16> {moe.input = "x"},
    %router: tensor<256x16xbf16> {moe.weight = "router"},
    %w_up: tensor<16x256x256xbf16> {moe.weight = "w_up"},
    %w_gate: tensor<16x256x256xbf16> {moe.weight = "w_gate"},
    %w_down: tensor<16x256x256xbf16> {moe.weight = "w_down"})
    -> (tensor<512x256xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<512x256xbf16> router(%router : tensor<256x16xbf16>) up(%w_up : tensor<16x256x256xbf16>) gate(%w_gate : tensor<16x256x256xbf16>) down(%w_down : tensor<16x256x256xbf16>) {activation = #moe.activation<silu>, capacity_factor = 1.0 : f64, renormalize, top_k = 2 : i64} -> tensor<512x256xbf16>
  return %y : tensor<512x256xbf16>
}
