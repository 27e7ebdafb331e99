// Shared experts on the fused GPU layer: a second expert stage after the
// routed one, planned for one expert that every token goes to (rows =
// tokens), routed by moe_route_dense (the weight sigmoid(x shared_coef) with
// a coefficient, else 1), adding into the routed stage's f32 output before
// the one rounding. The shared weights live on the device.
// REQUIRES: ptxas
// RUN: moe-opt %s -convert-moe-layer-to-gpu-call | FileCheck %s --check-prefix=CALL
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX
// RUN: moe-compile %s --target=cuda --gpu-path=gemv --emit=mlir | FileCheck %s --check-prefix=GEMV
// RUN: moe-compile %s --target=cuda --gpu-report --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: moe-compile %s --target=cuda --gpu-dense-split-k=never --emit=mlir | FileCheck %s --check-prefix=NOSPLIT
// REPORT: remark: 'moe.layer' runs fused on the GPU: routed experts on wgmma, the shared experts on wgmma
// REPORT: remark: the GPU layer's routed experts: wgmma, tiles of 192 rows x 256 columns, 4 stages, at most 27 tiles, persistent, 16-byte row stores, combined by f32 atomics; the shared experts: wgmma, tiles of 128 rows x 256 columns, 4 stages, at most 5 tiles, persistent, 16-byte row stores, the down kernel split 4 ways over K, combined by f32 atomics{{$}}

// A Qwen2-MoE-shaped layer at 512 tokens: the routed experts (64 rows an
// expert) and the shared expert (512 rows) both on wgmma tiles; the routed
// stage adds into the f32 output (no combine by rows) so that the shared
// stage can add too.
// CALL-LABEL: func.func private @__moe_gpu_layer_0(
// CALL-SAME: tensor<16x128x256xbf16> {{.*}}, tensor<256x512xbf16> {{.*}}, tensor<256x512xbf16> {{.*}}, tensor<512x256xbf16> {{.*}}, tensor<256x1xbf16> {{.*}}) -> tensor<512x256xbf16>
// CALL-SAME: shared = {coef, gated, mma_warps = 4 : i64, path = "wgmma", rows_per_expert = 5.120000e+02 : f64, tile_m = 128 : i64, wgmma_tile = array<i64: 256, 4, 128>}
// CALL: call @__moe_gpu_layer_0(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})

// CHECK-LABEL: llvm.func @__moe_gpu_layer_0(
// The shared stage's down kernel has 4 (tile, column block) pairs: split
// over K in 4 runs (grid z) on the grid form (cp.async, no producer), its
// runs' sums added by the scatter epilogue's f32 atomics; the routed
// stage's keeps the persistent producer form (192-row tiles: 512 x 4 / 16
// = 128 rows an expert, where they multiply 0.84x the rows of 128-row
// tiles).
// CHECK: moe.gpu_plan = {combine = "atomic", {{.*}}path = "wgmma"{{.*}}shared = {combine = "atomic", down_split_k = 4 : i64, {{.*}}path = "wgmma", {{.*}}router = "dense_coef", slots = 1 : i64, {{.*}}tiles = 5 : i64
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_route_
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_pair_
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_scatter_bf16_m192_n256_s4_ws_tma_ef_q blocks
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_route_dense_coef_tiles128
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_pair_
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_scatter_bf16_n256_s4_splitk blocks
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@round_bf16
// NOSPLIT-NOT: down_split_k
// NOSPLIT: gpu.launch_func {{.*}}@moe_kernels::@moe_route_dense_coef_tiles128
// NOSPLIT: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_pair_
// NOSPLIT: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_scatter_bf16_n256_s4_ws_tma_kr_q blocks
// CHECK-NOT: moe_combine
// CHECK: moe_model_signature("capturable-step\0Adevice-input x BF16 512x256\0Adevice-weight router BF16 256x16\0Adevice-weight w_up BF16 16x256x128\0Adevice-weight w_gate BF16 16x256x128\0Adevice-weight w_down BF16 16x128x256\0Adevice-weight shared_up BF16 256x512\0Adevice-weight shared_gate BF16 256x512\0Adevice-weight shared_down BF16 512x256\0Adevice-weight shared_coef BF16 256x1\0Adevice-output y BF16 512x256\0A\00")

// The dense routing kernel: a block a token sums x . coef, then sigmoid.
// PTX-LABEL: .entry moe_route_dense_coef_tiles128(
// PTX: shfl.sync.bfly
// PTX: bar.sync
// PTX: ex2.approx
// The split kernel's K run from its block's z.
// PTX-LABEL: .entry moe_wgmma_scatter_bf16_n256_s4_splitk(
// PTX: %ctaid.z
// PTX: wgmma.mma_async
// PTX: red.global.add.v2.f32

// GEMV-LABEL: llvm.func @__moe_gpu_layer_0(
// GEMV: shared = {decode_overlap = "down", down = array<i64: {{.*}}>, path = "gemv", router = "dense_coef", slots = 1 : i64
// GEMV: gpu.launch_func {{.*}}@moe_route_dense_coef blocks in
// GEMV: gpu.launch_func {{.*}}@moe_gemv_gather_pair_bf16
// GEMV: gpu.launch_func {{.*}}@moe_gemv_scatter_bf16
// GEMV: gpu.launch_func {{.*}}@round_bf16
func.func @qwen2(%x: tensor<512x256xbf16> {moe.input = "x"},
                 %r: tensor<256x16xbf16> {moe.weight = "router"},
                 %u: tensor<16x256x128xbf16> {moe.weight = "w_up"},
                 %g: tensor<16x256x128xbf16> {moe.weight = "w_gate"},
                 %d: tensor<16x128x256xbf16> {moe.weight = "w_down"},
                 %su: tensor<256x512xbf16> {moe.weight = "shared_up"},
                 %sg: tensor<256x512xbf16> {moe.weight = "shared_gate"},
                 %sd: tensor<512x256xbf16> {moe.weight = "shared_down"},
                 %sc: tensor<256x1xbf16> {moe.weight = "shared_coef"})
    -> (tensor<512x256xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<512x256xbf16> router(%r : tensor<256x16xbf16>)
      up(%u : tensor<16x256x128xbf16>) gate(%g : tensor<16x256x128xbf16>)
      down(%d : tensor<16x128x256xbf16>)
      shared_up(%su : tensor<256x512xbf16>) shared_gate(%sg : tensor<256x512xbf16>)
      shared_down(%sd : tensor<512x256xbf16>) shared_coef(%sc : tensor<256x1xbf16>)
      {activation = #moe.activation<silu>, top_k = 4 : i64} -> tensor<512x256xbf16>
  return %y : tensor<512x256xbf16>
}
