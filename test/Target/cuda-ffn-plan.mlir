// The expert FFN as one kernel where the few-rows path has many column
// slices: 16 tokens of a ds-moe-128 layer (128 experts, top 1, hidden 2048,
// ffn 8192, GeLU) hit about 15 experts with about one row each; 128 slices
// of 64 columns for each of the 16 slots = 2048 blocks (at least 8 an SM).
// The plan is (slices, slots, threads, columns). --gpu-ffn-columns=-1 keeps
// the up and down GEMVs; 16 tokens take the router GEMV and the routing
// kernel (the gating kernel only up to 4 tokens). Past one token only the
// up GEMV lets the down GEMV launch early (decode_overlap = "down").
// Left to the planner, this layer takes 64-row wgmma tiles (the auto run: 121
// (tile, column block) pairs in its down kernel, measured 0.89x the time
// of the FFN kernel), so the memory-bound path is asked for.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --gpu-path=gemv --emit=mlir | FileCheck %s
// RUN: moe-compile %s --target=cuda --gpu-path=gemv --gpu-ffn-columns=-1 --emit=mlir | FileCheck %s --check-prefix=GEMV
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s --check-prefix=AUTO

// CHECK: moe.gpu_plan = {ffn = array<i64: 128, 16, 256, 64>, path = "gemv", router = "wgmma", router_split_k = 16 : i64, slots = 16 : i64}
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_wgmma_dense_f32_n128_s6_splitk blocks in
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_route_e128_k1_softmax_renorm blocks in
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_ffn_bf16_gelu_plain_c64 blocks in
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@round_bf16 blocks in
// CHECK-NOT: gpu.launch_func

// AUTO: moe.gpu_plan = {combine = "rows", evict_first, group_tiles = array<i64: 4, 16>, path = "wgmma", persistent, producer, queue, router = "wgmma", router_split_k = 16 : i64, slots = 16 : i64, stages = 4 : i64, tile = array<i64: 64, 256, 64>, tiles = 17 : i64, weights_tma}
// AUTO: @moe_kernels::@moe_wgmma_plain_gelu_bf16_m64_n256_s4_g4_ws_tma_ef_q
// AUTO: @moe_kernels::@moe_wgmma_weighted_bf16_m64_n256_s4_g16_ws_tma_ef_q
// AUTO: @moe_kernels::@moe_combine_k1_bf16

// GEMV: moe.gpu_plan = {decode_overlap = "down", down = array<i64: {{.*}}>, path = "gemv", router = "wgmma", router_split_k = 16 : i64, slots = 16 : i64, stage_down = 256 : i64, up = array<i64: {{.*}}>}
// GEMV: @moe_kernels::@moe_gemv_gather_bf16_r1_u8_trigger
// GEMV: @moe_kernels::@moe_gemv_scatter_bf16_r1_u8_gelu_plain_s256_early blocks in

func.func @layer(%x: tensor<16x2048xbf16> {moe.input = "x"}, %router: tensor<2048x128xbf16> {moe.weight = "router"}, %w_up: tensor<128x2048x8192xbf16> {moe.weight = "w_up"}, %w_down: tensor<128x8192x2048xbf16> {moe.weight = "w_down"}) -> (tensor<16x2048xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<16x2048xbf16> router(%router : tensor<2048x128xbf16>) up(%w_up : tensor<128x2048x8192xbf16>) down(%w_down : tensor<128x8192x2048xbf16>) {activation = #moe.activation<gelu>, renormalize, top_k = 1 : i64} -> tensor<16x2048xbf16>
  return %y : tensor<16x2048xbf16>
}
