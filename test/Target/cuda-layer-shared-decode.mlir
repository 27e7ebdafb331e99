// Shared experts on the fused GPU layer at one token (cuda-layer-shared.mlir
// has the many-token form).
// REQUIRES: ptxas
// RUN: moe-opt %s -convert-moe-layer-to-gpu-call | FileCheck %s --check-prefix=CALL
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s
// RUN: moe-compile %s --target=cuda --emit=mlir --gpu-decode-dense=never | FileCheck %s --check-prefix=APART
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX

// One token of a DeepSeek-shaped layer (a gated shared expert, no
// coefficient): the shared expert's GEMVs run as items of the routed
// experts' decode kernel, which then takes their arguments after the routed
// GEMVs'. Its items are planned as a share of the decode kernel's GEMVs
// (8 up items: 4 K splits of each matrix; 16 down items), not as launches
// of their own (32 up items, 2 lanes), and its up items take all 256
// threads of the decode kernel's blocks (8 lanes a column group where
// their launch would take 128 threads of 4 lanes, the same 64 rows an
// item); no routing kernel of its own, no GEMV kernels after it.
// CALL-LABEL: func.func private @__moe_gpu_layer_0(
// CALL-SAME: shared = {gated, mma_warps = 4 : i64, path = "gemv", rows_per_expert = 1.000000e+00 : f64
// CHECK-LABEL: llvm.func @__moe_gpu_layer_0(
// CHECK-SAME: decode_dense = array<i64: 8, 16>, decode_kernel =
// CHECK-SAME: shared = {down = {{.*}}, in_decode_kernel, path = "gemv", router = "dense", slots = 1 : i64
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_decode_{{.*}}_dense_up_pair_r1_l8_u8_early_t1_t256_down_{{[a-z0-9_]*}}_silu_gated_s16_early_t1_t64 blocks in
// CHECK-NEXT: gpu.launch_func {{.*}}@moe_kernels::@round_bf16
// CHECK-NOT: gpu.launch_func
// With the dense stage apart: the decode kernel, then the shared expert's
// routing kernel and GEMVs with every weight 1.
// APART-LABEL: llvm.func @__moe_gpu_layer_0(
// APART-NOT: decode_dense = array
// APART: gpu.launch_func {{.*}}@moe_kernels::@moe_decode_{{[a-z0-9_]*}}_t64 blocks in
// APART: gpu.launch_func {{.*}}@moe_kernels::@moe_route_dense blocks in
// APART: gpu.launch_func {{.*}}@moe_kernels::@moe_gemv_gather_pair_bf16
// APART: gpu.launch_func {{.*}}@moe_kernels::@moe_gemv_scatter_bf16
// APART: gpu.launch_func {{.*}}@moe_kernels::@round_bf16
// The decode kernel with the dense slot: every item's atomics go to L2
// (red), the dense up items' clearing count and the routed items' routing
// flag are polled with acquire loads and raised with release atomics.
// PTX-LABEL: .entry moe_decode_e64_k6_
// PTX-DAG: ld.acquire.gpu
// PTX-DAG: red.release.gpu.global.add.u32
// PTX-DAG: griddepcontrol.wait
// PTX: ret;
func.func @deepseek_1(%x: tensor<1x256xbf16> {moe.input = "x"},
                      %r: tensor<256x64xbf16> {moe.weight = "router"},
                      %u: tensor<64x256x128xbf16> {moe.weight = "w_up"},
                      %g: tensor<64x256x128xbf16> {moe.weight = "w_gate"},
                      %d: tensor<64x128x256xbf16> {moe.weight = "w_down"},
                      %su: tensor<256x256xbf16> {moe.weight = "shared_up"},
                      %sg: tensor<256x256xbf16> {moe.weight = "shared_gate"},
                      %sd: tensor<256x256xbf16> {moe.weight = "shared_down"})
    -> (tensor<1x256xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1x256xbf16> router(%r : tensor<256x64xbf16>)
      up(%u : tensor<64x256x128xbf16>) gate(%g : tensor<64x256x128xbf16>)
      down(%d : tensor<64x128x256xbf16>)
      shared_up(%su : tensor<256x256xbf16>) shared_gate(%sg : tensor<256x256xbf16>)
      shared_down(%sd : tensor<256x256xbf16>)
      {activation = #moe.activation<silu>, renormalize, top_k = 6 : i64} -> tensor<1x256xbf16>
  return %y : tensor<1x256xbf16>
}
