// RUN: moe-opt %s -split-input-file -convert-moe-layer-to-gpu-call | FileCheck %s
// RUN: moe-opt %s -split-input-file -convert-moe-layer-to-gpu-call="path=gemv" | FileCheck %s --check-prefix=GEMV
// RUN: moe-opt %s -split-input-file -convert-moe-layer-to-gpu-call="wgmma-min-rows=1000" | FileCheck %s --check-prefix=MMA
// RUN: moe-opt %s -split-input-file -convert-moe-layer-to-gpu-call="path=wgmma wgmma-columns=128 wgmma-stages=6" | FileCheck %s --check-prefix=WG128
// RUN: moe-opt %s -split-input-file -convert-moe-layer-to-gpu-call="wgmma-rows=128" | FileCheck %s --check-prefix=ROWS128
// RUN: moe-opt %s -split-input-file -convert-moe-layer-to-gpu-call="report" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// One token, top-8 of 128: about one row per expert hit, the memory-bound
// GEMV path; the routing options travel to the helper.
// CHECK-LABEL: func.func private @__moe_gpu_layer_0(
// CHECK-SAME: tensor<1x128xbf16> {bufferization.access = "read"}
// CHECK-SAME: -> tensor<1x128xbf16>
// CHECK-SAME: moe.gpu_layer = {activation = #moe.activation<silu>, experts = 128 : i64, gated, mma_warps = 4 : i64, path = "gemv", renormalize, rows_per_expert = 1.000000e+00 : f64, scaling = 1.000000e+00 : f64, tile_m = 64 : i64, top_k = 8 : i64}
// CHECK-LABEL: func.func @decode(
// CHECK: %[[Y:.*]] = call @__moe_gpu_layer_0(%arg0, %arg1, %arg2, %arg3, %arg4)
// CHECK-NOT: moe.layer
// CHECK: return %[[Y]]
func.func @decode(%x: tensor<1x128xbf16>, %r: tensor<128x128xbf16>, %u: tensor<128x128x128xbf16>,
                  %g: tensor<128x128x128xbf16>, %d: tensor<128x128x128xbf16>) -> tensor<1x128xbf16> {
  %y = moe.layer %x : tensor<1x128xbf16> router(%r : tensor<128x128xbf16>) up(%u : tensor<128x128x128xbf16>) gate(%g : tensor<128x128x128xbf16>) down(%d : tensor<128x128x128xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 8 : i64} -> tensor<1x128xbf16>
  return %y : tensor<1x128xbf16>
}

// -----

// 512 tokens, top-2 of 8: 128 rows per expert, the tensor-core path on
// warpgroup MMAs (from 24 rows; mma.sync below) in 192-row tiles (an
// expert's 128 +- 10 rows in one tile, which multiplies 128 rows where it
// has no more: 0.84x the rows 128-row tiles multiply, expected under
// uniform routing); a sigmoid router with an f32 bias, scaling, plain GeLU
// experts. Asked for 128-row tiles (ROWS128), it takes them.
// CHECK-LABEL: func.func private @__moe_gpu_layer_0(
// CHECK-SAME: moe.gpu_layer = {activation = #moe.activation<gelu>, bias, experts = 8 : i64, mma_warps = 4 : i64, path = "wgmma", rows_per_expert = 1.280000e+02 : f64, scaling = 2.500000e+00 : f64, sigmoid, tile_m = 192 : i64, top_k = 2 : i64, wgmma_tile = array<i64: 256, 4, 192>}
// ROWS128-LABEL: rows_per_expert = 1.280000e+02 : f64, scaling = 2.500000e+00 : f64, sigmoid, tile_m = 128 : i64, top_k = 2 : i64, wgmma_tile = array<i64: 256, 4, 128>}
// MMA: path = "mma", rows_per_expert = 1.280000e+02 : f64, scaling = 2.500000e+00 : f64, sigmoid, tile_m = 128 : i64, top_k = 2 : i64}
// WG128: path = "wgmma", rows_per_expert = 1.280000e+02
// WG128-SAME: wgmma_tile = array<i64: 128, 6, 128>
// GEMV-LABEL: func.func private @__moe_gpu_layer_0(
// GEMV-SAME: path = "gemv"
func.func @prefill(%x: tensor<512x128xbf16>, %r: tensor<128x8xbf16>, %b: tensor<8xf32>,
                   %u: tensor<8x128x256xbf16>, %d: tensor<8x256x128xbf16>) -> tensor<512x128xbf16> {
  %y = moe.layer %x : tensor<512x128xbf16> router(%r : tensor<128x8xbf16>) router_bias(%b : tensor<8xf32>) up(%u : tensor<8x128x256xbf16>) down(%d : tensor<8x256x128xbf16>) {activation = #moe.activation<gelu>, score_func = #moe.score_func<sigmoid>, scaling = 2.5 : f64, top_k = 2 : i64} -> tensor<512x128xbf16>
  return %y : tensor<512x128xbf16>
}

// -----

// Sizes that are not multiples of 128 keep the GEMV path even when rows
// are many.
// CHECK-LABEL: func.func private @__moe_gpu_layer_0(
// CHECK-SAME: path = "gemv"
func.func @small(%x: tensor<512x64xbf16>, %r: tensor<64x8xbf16>,
                 %u: tensor<8x64x64xbf16>, %d: tensor<8x64x64xbf16>) -> tensor<512x64xbf16> {
  %y = moe.layer %x : tensor<512x64xbf16> router(%r : tensor<64x8xbf16>) up(%u : tensor<8x64x64xbf16>) down(%d : tensor<8x64x64xbf16>) {activation = #moe.activation<relu>, top_k = 2 : i64} -> tensor<512x64xbf16>
  return %y : tensor<512x64xbf16>
}

// -----

// Layers the fused path does not take stay moe.layer: f32, capacity drops by score,
// more than 1024 experts, an expert count that is not a multiple of 8.
// (Group-limited routing, shared experts and the PR-MoE MLP are fused:
// @grouped below, cuda-layer-shared.mlir, cuda-layer-prmoe.mlir.)
// CHECK-LABEL: func.func @unsupported(
// REPORT: remark: 'moe.layer' is decomposed: the fused GPU layer takes bf16 activations{{$}}
// REPORT: remark: 'moe.layer' is decomposed: the fused GPU layer drops assignments past a capacity by position only (drop_policy score is not supported) (its expert FFN still runs on the GPU)
// REPORT: remark: 'moe.layer' is decomposed: the GPU routing kernel takes at most 1024 experts
// REPORT: remark: 'moe.layer' is decomposed: the fused GPU layer needs experts, hidden and ffn sizes divisible by 8
// REPORT: remark: 'moe.layer' runs fused on the GPU: routed experts on gemv
// CHECK-NOT: __moe_gpu_layer
// CHECK-COUNT-4: moe.layer
func.func @unsupported(%xf: tensor<4x64xf32>, %rf: tensor<64x8xf32>, %uf: tensor<8x64x64xf32>, %df: tensor<8x64x64xf32>,
                       %x: tensor<4x64xbf16>, %r: tensor<64x8xbf16>, %u: tensor<8x64x64xbf16>, %d: tensor<8x64x64xbf16>,
                       %r2k: tensor<64x2048xbf16>, %u2k: tensor<2048x64x64xbf16>, %d2k: tensor<2048x64x64xbf16>,
                       %r4: tensor<64x4xbf16>, %u4: tensor<4x64x64xbf16>, %d4: tensor<4x64x64xbf16>)
    -> (tensor<4x64xf32>, tensor<4x64xbf16>, tensor<4x64xbf16>, tensor<4x64xbf16>) {
  %0 = moe.layer %xf : tensor<4x64xf32> router(%rf : tensor<64x8xf32>) up(%uf : tensor<8x64x64xf32>) down(%df : tensor<8x64x64xf32>) {activation = #moe.activation<relu>, top_k = 2 : i64} -> tensor<4x64xf32>
  %1 = moe.layer %x : tensor<4x64xbf16> router(%r : tensor<64x8xbf16>) up(%u : tensor<8x64x64xbf16>) down(%d : tensor<8x64x64xbf16>) {activation = #moe.activation<relu>, capacity_factor = 1.0 : f64, drop_policy = #moe.drop_policy<score>, top_k = 2 : i64} -> tensor<4x64xbf16>
  %4 = moe.layer %x : tensor<4x64xbf16> router(%r2k : tensor<64x2048xbf16>) up(%u2k : tensor<2048x64x64xbf16>) down(%d2k : tensor<2048x64x64xbf16>) {activation = #moe.activation<relu>, top_k = 2 : i64} -> tensor<4x64xbf16>
  %5 = moe.layer %x : tensor<4x64xbf16> router(%r4 : tensor<64x4xbf16>) up(%u4 : tensor<4x64x64xbf16>) down(%d4 : tensor<4x64x64xbf16>) {activation = #moe.activation<relu>, top_k = 2 : i64} -> tensor<4x64xbf16>
  return %0, %1, %4, %5 : tensor<4x64xf32>, tensor<4x64xbf16>, tensor<4x64xbf16>, tensor<4x64xbf16>
}

// -----

// A capacity (drop policy position, the default): the plan carries the
// capacity the routing drops at, max(min_capacity, ceil(cf T k / E)) =
// ceil(0.5 * 64 * 2 / 8) = 8; with min_capacity 12, 12. One at least T
// (here 64 with min_capacity 64) drops nothing and is left out.
// (The helpers come out last first.)
// CHECK-LABEL: func.func private @__moe_gpu_layer_2(
// CHECK-SAME: moe.gpu_layer = {activation = #moe.activation<relu>, experts = 8 : i64
// CHECK-LABEL: func.func private @__moe_gpu_layer_1(
// CHECK-SAME: moe.gpu_layer = {activation = #moe.activation<relu>, capacity = 12 : i64, experts = 8 : i64
// CHECK-LABEL: func.func private @__moe_gpu_layer_0(
// CHECK-SAME: moe.gpu_layer = {activation = #moe.activation<relu>, capacity = 8 : i64, experts = 8 : i64
// CHECK-LABEL: func.func @capacity(
// CHECK-COUNT-3: call @__moe_gpu_layer_
// CHECK-NOT: moe.layer
// REPORT: remark: 'moe.layer' runs fused on the GPU
// REPORT: remark: 'moe.layer' runs fused on the GPU
// REPORT: remark: 'moe.layer' runs fused on the GPU
func.func @capacity(%x: tensor<64x64xbf16>, %r: tensor<64x8xbf16>, %u: tensor<8x64x64xbf16>, %d: tensor<8x64x64xbf16>)
    -> (tensor<64x64xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>) {
  %0 = moe.layer %x : tensor<64x64xbf16> router(%r : tensor<64x8xbf16>) up(%u : tensor<8x64x64xbf16>) down(%d : tensor<8x64x64xbf16>) {activation = #moe.activation<relu>, capacity_factor = 0.5 : f64, top_k = 2 : i64} -> tensor<64x64xbf16>
  %1 = moe.layer %x : tensor<64x64xbf16> router(%r : tensor<64x8xbf16>) up(%u : tensor<8x64x64xbf16>) down(%d : tensor<8x64x64xbf16>) {activation = #moe.activation<relu>, capacity_factor = 0.5 : f64, min_capacity = 12 : i64, top_k = 2 : i64} -> tensor<64x64xbf16>
  %2 = moe.layer %x : tensor<64x64xbf16> router(%r : tensor<64x8xbf16>) up(%u : tensor<8x64x64xbf16>) down(%d : tensor<8x64x64xbf16>) {activation = #moe.activation<relu>, capacity_factor = 0.5 : f64, min_capacity = 64 : i64, top_k = 2 : i64} -> tensor<64x64xbf16>
  return %0, %1, %2 : tensor<64x64xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>
}

// -----

// Group-limited routing (DeepSeek-V3: sigmoid scores with a bias, groups
// scored by their best two) runs on the fused path; the plan carries it.
// CHECK-LABEL: func.func private @__moe_gpu_layer_0(
// CHECK-SAME: bias, {{.*}}group_top2_sum, {{.*}}n_group = 4 : i64, {{.*}}sigmoid, {{.*}}topk_group = 2 : i64
// CHECK-LABEL: func.func @grouped(
// CHECK: call @__moe_gpu_layer_0(
// CHECK-NOT: moe.layer
func.func @grouped(%x: tensor<4x64xbf16>, %r: tensor<64x16xbf16>, %bias: tensor<16xf32>, %u: tensor<16x64x64xbf16>, %d: tensor<16x64x64xbf16>) -> tensor<4x64xbf16> {
  %y = moe.layer %x : tensor<4x64xbf16> router(%r : tensor<64x16xbf16>) router_bias(%bias : tensor<16xf32>) up(%u : tensor<16x64x64xbf16>) down(%d : tensor<16x64x64xbf16>) {activation = #moe.activation<relu>, score_func = #moe.score_func<sigmoid>, n_group = 4 : i64, topk_group = 2 : i64, group_score = #moe.group_score<top2_sum>, top_k = 4 : i64} -> tensor<4x64xbf16>
  return %y : tensor<4x64xbf16>
}

// -----

// Few rows an expert on many SMs' worth of work: 2 tokens of a qwen3-sized
// layer (top-8 of 128, hidden 2048, ffn 768) hit about 15.5 experts with
// 1.03 rows each, whose up kernel has 15.5 x 6 and down kernel 15.5 x 8
// (tile, column block) pairs: the wgmma path with 64-row tiles (at least 79
// pairs each). Asked for 128-row tiles, the GEMVs (below 1.2 rows).
// CHECK-LABEL: func.func private @__moe_gpu_layer_0(
// CHECK-SAME: path = "wgmma", renormalize, rows_per_expert = 1.03{{[0-9]*}} : f64, scaling = 1.000000e+00 : f64, tile_m = 64 : i64, top_k = 8 : i64, wgmma_tile = array<i64: 256, 4, 64>}
// ROWS128-LABEL: func.func private @__moe_gpu_layer_0(
// ROWS128-SAME: path = "gemv"
func.func @qwen3_2(%x: tensor<2x2048xbf16>, %r: tensor<2048x128xbf16>, %u: tensor<128x2048x768xbf16>,
                   %g: tensor<128x2048x768xbf16>, %d: tensor<128x768x2048xbf16>) -> tensor<2x2048xbf16> {
  %y = moe.layer %x : tensor<2x2048xbf16> router(%r : tensor<2048x128xbf16>) up(%u : tensor<128x2048x768xbf16>) gate(%g : tensor<128x2048x768xbf16>) down(%d : tensor<128x768x2048xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 8 : i64} -> tensor<2x2048xbf16>
  return %y : tensor<2x2048xbf16>
}

// -----

// One token of the same layer: the GEMVs (the decode kernel).
// CHECK-LABEL: func.func private @__moe_gpu_layer_0(
// CHECK-SAME: path = "gemv"
func.func @qwen3_1(%x: tensor<1x2048xbf16>, %r: tensor<2048x128xbf16>, %u: tensor<128x2048x768xbf16>,
                   %g: tensor<128x2048x768xbf16>, %d: tensor<128x768x2048xbf16>) -> tensor<1x2048xbf16> {
  %y = moe.layer %x : tensor<1x2048xbf16> router(%r : tensor<2048x128xbf16>) up(%u : tensor<128x2048x768xbf16>) gate(%g : tensor<128x2048x768xbf16>) down(%d : tensor<128x768x2048xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 8 : i64} -> tensor<1x2048xbf16>
  return %y : tensor<1x2048xbf16>
}

// -----

// 8 tokens of a ds-moe-128-sized layer (top-1 of 128, hidden 2048, ffn
// 8192, ungated): about 7.8 experts hit, 62 down pairs: the GEMVs.
// CHECK-LABEL: func.func private @__moe_gpu_layer_0(
// CHECK-SAME: path = "gemv"
func.func @dsmoe_8(%x: tensor<8x2048xbf16>, %r: tensor<2048x128xbf16>,
                   %u: tensor<128x2048x8192xbf16>, %d: tensor<128x8192x2048xbf16>) -> tensor<8x2048xbf16> {
  %y = moe.layer %x : tensor<8x2048xbf16> router(%r : tensor<2048x128xbf16>) up(%u : tensor<128x2048x8192xbf16>) down(%d : tensor<128x8192x2048xbf16>) {activation = #moe.activation<gelu>, renormalize, top_k = 1 : i64} -> tensor<8x2048xbf16>
  return %y : tensor<8x2048xbf16>
}

// -----

// At 16 tokens (15.1 experts, 121 down pairs) the 64-row wgmma tiles.
// CHECK-LABEL: func.func private @__moe_gpu_layer_0(
// CHECK-SAME: path = "wgmma"
// CHECK-SAME: tile_m = 64 : i64
func.func @dsmoe_16(%x: tensor<16x2048xbf16>, %r: tensor<2048x128xbf16>,
                    %u: tensor<128x2048x8192xbf16>, %d: tensor<128x8192x2048xbf16>) -> tensor<16x2048xbf16> {
  %y = moe.layer %x : tensor<16x2048xbf16> router(%r : tensor<2048x128xbf16>) up(%u : tensor<128x2048x8192xbf16>) down(%d : tensor<128x8192x2048xbf16>) {activation = #moe.activation<gelu>, renormalize, top_k = 1 : i64} -> tensor<16x2048xbf16>
  return %y : tensor<16x2048xbf16>
}

// -----

// 32 rows an expert and more: 128-row tiles (512 tokens of the qwen3-sized
// layer).
// CHECK-LABEL: func.func private @__moe_gpu_layer_0(
// CHECK-SAME: path = "wgmma", renormalize, rows_per_expert = 32.0000{{[0-9]*}} : f64, scaling = 1.000000e+00 : f64, tile_m = 128 : i64, top_k = 8 : i64, wgmma_tile = array<i64: 256, 4, 128>}
func.func @qwen3_512(%x: tensor<512x2048xbf16>, %r: tensor<2048x128xbf16>, %u: tensor<128x2048x768xbf16>,
                     %g: tensor<128x2048x768xbf16>, %d: tensor<128x768x2048xbf16>) -> tensor<512x2048xbf16> {
  %y = moe.layer %x : tensor<512x2048xbf16> router(%r : tensor<2048x128xbf16>) up(%u : tensor<128x2048x768xbf16>) gate(%g : tensor<128x2048x768xbf16>) down(%d : tensor<128x768x2048xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 8 : i64} -> tensor<512x2048xbf16>
  return %y : tensor<512x2048xbf16>
}
