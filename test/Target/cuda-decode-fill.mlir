// The decode kernel's GEMV items take all 256 threads of its blocks. One
// token of a qwen3-shaped layer (128 experts, top 8, hidden 2048, ffn
// 768): the up GEMV's own launch (--gpu-decode-kernel=never) has blocks of
// 192 threads (96 column groups of 8 columns, 2 lanes each, 64 K rows a
// block: 98 KB of weights); in the decode kernel (blocks of 256 threads)
// that left 2 of 8 warps without loads for the whole up phase. There the
// up items split the columns in 3 (32 groups, 8 lanes each: 256 threads)
// over 192 K rows, the same 98 KB an item: up = (blocks x 3, splits 11,
// threads 256, kchunk 192, lanes 8, unroll 8), 3 x 11 x 16 = 528 items.
// The down GEMV already takes 256 threads and is unchanged.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s
// RUN: moe-compile %s --target=cuda --emit=mlir --gpu-decode-kernel=never | FileCheck %s --check-prefix=CHAIN
// --gpu-report says the plan in words.
// RUN: moe-compile %s --target=cuda --gpu-report --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: moe-compile %s --target=cuda --gpu-report --gpu-decode-kernel=never --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT-CHAIN
// REPORT: remark: the GPU layer's routed experts: grouped GEMVs in one persistent decode kernel with the gating{{$}}
// REPORT-CHAIN: remark: the GPU layer's routed experts: grouped GEMVs{{$}}
// CHECK: moe.gpu_plan = {decode_kernel = array<i64: 264, 32, 528, 384, 0>, down = array<i64: 4, 12, 256, 64, 4, 8>, gate = array<i64: 32, 256, 64>, path = "gemv", slots = 8 : i64, stage_down = 64 : i64, up = array<i64: 3, 11, 256, 192, 8, 8>}
// CHECK: gpu.launch_func {{.*}}@moe_kernels::@moe_decode_e128_k8_softmax_renorm_t1_pf_up_pair_r1_l8_u8_t1_t256_down_r1_l4_u8_silu_gated_s64_early_t1_t256 blocks in
// CHAIN: moe.gpu_plan = {decode_overlap = "chain", down = array<i64: 4, 12, 256, 64, 4, 8>, gate = array<i64: 32, 256, 64>, path = "gemv", slots = 8 : i64, stage_down = 64 : i64, up = array<i64: 1, 32, 192, 64, 2, 8>}
// CHAIN: gpu.launch_func {{.*}}@moe_kernels::@moe_gemv_gather_pair_bf16_r1_l2_u8{{[a-z0-9_]*}} blocks in
func.func @layer(%x: tensor<1x2048xbf16> {moe.input = "x"},
                 %router: tensor<2048x128xbf16> {moe.weight = "router"},
                 %w_up: tensor<128x2048x768xbf16> {moe.weight = "w_up"},
                 %w_gate: tensor<128x2048x768xbf16> {moe.weight = "w_gate"},
                 %w_down: tensor<128x768x2048xbf16> {moe.weight = "w_down"})
    -> (tensor<1x2048xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1x2048xbf16> router(%router : tensor<2048x128xbf16>) up(%w_up : tensor<128x2048x768xbf16>) gate(%w_gate : tensor<128x2048x768xbf16>) down(%w_down : tensor<128x768x2048xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 8 : i64} -> tensor<1x2048xbf16>
  return %y : tensor<1x2048xbf16>
}
