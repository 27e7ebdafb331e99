// The router inside the split routing's select kernel (--gpu-fused-route,
// the pass option fused-route; not the default until measured): each
// block computes its 16 tokens' logits on mma.sync from the router staged
// through dynamic shared memory by cp.async, then routes them; no router
// GEMM kernel, no logits buffer (the finish kernel takes none).
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s --check-prefix=DEFAULT
// DEFAULT: router = "mma", router_split_k = 4 : i64
// DEFAULT: @moe_kernels::@moe_route_e16_k2_softmax_renorm_tiles192_select blocks in
// DEFAULT: @moe_kernels::@moe_route_e16_k2_softmax_renorm_tiles192_finish blocks in
// The plan's stages: the most bytes in flight within 160 KiB, at most the
// K steps there are (8 stages of 64 rows here: 4 steps in flight of 5376
// bytes, 43008 in all).
// RUN: moe-compile %s --target=cuda --gpu-fused-route --emit=mlir | FileCheck %s --check-prefix=FUSED
// FUSED: fused_route
// FUSED-SAME: router = "select", router_stages = array<i64: 8, 64>
// FUSED-NOT: moe_mma_dense
// FUSED: llvm.mlir.constant(43008 : i32)
// FUSED-NOT: moe_mma_dense
// FUSED: @moe_kernels::@moe_route_e16_k2_softmax_renorm_tiles192_select_router_k64 blocks in {{.*}} dynamic_shared_memory_size
// FUSED-NOT: moe_mma_dense
// FUSED: @moe_kernels::@moe_route_e16_k2_softmax_renorm_tiles192_finish blocks
//
// The kernel (its PTX is one line of the output, tabs as \09): 16 B
// copies into the stages (the router's first stages before the grid
// dependency wait, the tokens' after it), B fragments by ldmatrix.trans,
// mma.sync; with one pair of n8 tiles (16 experts) the 16 warps split K
// and add their sums by shared-memory atomics.
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa fused-route=true" | FileCheck %s --check-prefix=PTX
// PTX: .entry moe_route_e16_k2_softmax_renorm_tiles192_select_router_k64(
// PTX-NOT: griddepcontrol.wait
// PTX: cp.async.cg.shared.global [%rd{{[0-9+]+}}], [%rd{{[0-9]+}}], 16, 16;
// PTX: griddepcontrol.wait;
// PTX: cp.async.cg.shared.global [%rd{{[0-9+]+}}], [%rd{{[0-9]+}}], 16, %r{{[0-9]+}};
// PTX: cp.async.wait_group \097;
// PTX: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// PTX: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX: atom.shared.add.f32
// PTX: redux.sync.max.u32
// PTX: atom.global.add.u32
// PTX: .entry moe_route_e16_k2_softmax_renorm_tiles192_finish(
//
// 128 experts: two warps a pair of tiles (every other k16 step each); 224:
// a warp a pair, all of K (plain stores).
// RUN: sed 's/x16xbf16>/x128xbf16>/g;s/tensor<16x/tensor<128x/g' %s | moe-opt --moe-cuda-pipeline="format=isa fused-route=true" | FileCheck %s --check-prefix=E128
// E128: .entry moe_route_e128_k2_softmax_renorm_tiles64_select_router_k64(
// E128: .shared .align 4 .b8 __wg_moe_route_e128_k2_softmax_renorm_tiles64_select_router_k64_0[8192];
// E128: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// E128: atom.shared.add.f32
// E128: .entry moe_route_e128_k2_softmax_renorm_tiles64_finish(
// RUN: sed 's/x16xbf16>/x224xbf16>/g;s/tensor<16x/tensor<224x/g' %s | moe-opt --moe-cuda-pipeline="format=isa fused-route=true" | FileCheck %s --check-prefix=E224
// E224: .entry moe_route_e224_k2_softmax_renorm_tiles64_select_router_k64(
// E224-NOT: atom.shared.add.f32
// E224: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// E224-NOT: atom.shared.add.f32
// E224: st.shared.b32
// E224-NOT: atom.shared.add.f32
// E224: .entry moe_route_e224_k2_softmax_renorm_tiles64_finish(
//
// The router's rows are padded to an odd number of 16-byte units
// (ldmatrix rows in distinct banks): 8 more for an even number of n8
// tiles, 16 for an odd one (120 experts: rows of 136, 17 units; 128 would
// put the 8 rows of a phase in one bank). 8 stages of 64 rows: 8 x (16 x
// 72 + 64 x 136) x 2 bytes.
// RUN: sed 's/x16xbf16>/x120xbf16>/g;s/tensor<16x/tensor<120x/g' %s | moe-compile - --target=cuda --gpu-fused-route --emit=mlir | FileCheck %s --check-prefix=E120
// E120: router_stages = array<i64: 8, 64>
// E120: llvm.mlir.constant(157696 : i32)
//
// Where it does not apply, asked or not, the router GEMM stays: 264
// experts (more than 16 pairs of n8 tiles for the 16 warps), a hidden size
// off the 32-row stages, and 64 tokens (the routing is not split: one
// block).
// RUN: sed 's/x16xbf16>/x264xbf16>/g;s/tensor<16x/tensor<264x/g' %s | moe-compile - --target=cuda --gpu-fused-route --emit=mlir | FileCheck %s --check-prefix=NOT
// RUN: sed 's/x256xbf16/x264xbf16/g;s/<1024x256x/<1024x264x/g;s/16x256x128/16x264x128/g;s/16x128x256/16x128x264/g;s/<256x16x/<264x16x/g' %s | moe-compile - --target=cuda --gpu-fused-route --emit=mlir | FileCheck %s --check-prefix=ODD
// RUN: sed 's/1024x/64x/g' %s | moe-compile - --target=cuda --gpu-fused-route --emit=mlir | FileCheck %s --check-prefix=NOT
// NOT: moe.gpu_plan = {{{.*}}router = "{{(wg)?}}mma"
// NOT-NOT: select_router
// (At hidden 264 the router is a GEMV anyway; the select kernel reads its
// logits.)
// ODD-NOT: select_router
// ODD: _select blocks
// ODD-NOT: select_router
func.func @layer(%x: tensor<1024x256xbf16> {moe.input = "x"}, %router: tensor<256x16xbf16> {moe.weight = "router"},
                 %w_up: tensor<16x256x128xbf16> {moe.weight = "w_up"},
                 %w_gate: tensor<16x256x128xbf16> {moe.weight = "w_gate"},
                 %w_down: tensor<16x128x256xbf16> {moe.weight = "w_down"}) -> (tensor<1024x256xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1024x256xbf16> router(%router : tensor<256x16xbf16>) up(%w_up : tensor<16x256x128xbf16>)
      gate(%w_gate : tensor<16x256x128xbf16>)
      down(%w_down : tensor<16x128x256xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<1024x256xbf16>
  return %y : tensor<1024x256xbf16>
}
