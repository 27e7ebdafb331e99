// The PTX of the fused layer's kernels (what ptxas receives), for both
// expert paths: the routing kernel reduces with warp shuffles and counts
// with shared-memory atomics; the memory-bound GEMV reads weights with
// 16-byte vector loads; the tensor-core GEMM stages tiles with cp.async,
// loads fragments with ldmatrix (B transposed) and multiplies with bf16
// mma.sync. The Hopper path (wgmma) stages swizzled tiles with cp.async into
// dynamic shared memory, fences them into the async proxy before the
// barrier, multiplies with m64n256k16 warpgroup MMAs (B MN-major:
// imm-trans-b 1) and keeps one group in flight. (128-row tiles asked for:
// this layer's few rows an expert would get 64-row ones, which
// cuda-wgmma-m64.mlir checks.)
// RUN: moe-opt %s --moe-cuda-pipeline="path=mma format=isa" -o %t.mma
// RUN: FileCheck %s --check-prefix=ROUTE < %t.mma
// RUN: FileCheck %s --check-prefix=MMA < %t.mma
// RUN: FileCheck %s --check-prefix=LDM < %t.mma
// RUN: FileCheck %s --check-prefix=CPASYNC < %t.mma
// RUN: moe-opt %s --moe-cuda-pipeline="path=gemv format=isa" | FileCheck %s --check-prefix=GEMV
// RUN: moe-opt %s --moe-cuda-pipeline="path=wgmma wgmma-rows=128 wgmma-persistent=never format=isa" | FileCheck %s --check-prefix=WGMMA
// RUN: moe-opt %s --moe-cuda-pipeline="path=wgmma wgmma-rows=128 wgmma-persistent=producer format=isa" --mlir-print-ir-after=moe-materialize-gpu-experts --mlir-disable-threading -o /dev/null 2>&1 | FileCheck %s --check-prefix=WGLAUNCH

// WGMMA: .target sm_90a
// WGMMA: .entry moe_wgmma_pair_silu_bf16_n256_s4
// WGMMA: cp.async.cg.shared.global
// WGMMA: cp.async.wait_group {{\\09}}1;{{\\0A\\09}}fence.proxy.async.shared::cta;{{\\0A\\09}}bar.sync
// WGMMA: wgmma.fence.sync.aligned
// WGMMA: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {{[{][^}]*}}}, %rd{{[0-9]+}}, %rd{{[0-9]+}}, p, 1,  1, 0,  1;
// WGMMA: wgmma.commit_group.sync.aligned;{{\\0A\\09}}wgmma.wait_group.sync.aligned {{\\09}}1;
// WGMMA: wgmma.wait_group.sync.aligned {{\\09}}0;
// The epilogue's silu with the SFU's approximate exp2 and reciprocal, no
// IEEE division:
// WGMMA: ex2.approx.ftz.f32
// WGMMA: rcp.approx.ftz.f32
// WGMMA-NOT: div.rn.f32
// The down kernel stores weighted bf16 rows (the combine by rows).
// WGMMA: .entry moe_wgmma_weighted_bf16_n256_s4
// WGMMA: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// WGMMA: cvt.rn.bf16x2.f32
// WGMMA: .entry

// A block per (row tile, column block) pair, up to one an SM: 18 pairs
// (64 x 4 rows / 128 + 16 experts row tiles, one column block), of three
// warpgroups (the producer's and two of MMAs; the producer's cp.async form,
// as asked); 4 stages x (128 + 256) rows
// x 128 bytes + 1 KB to align.
// WGLAUNCH: gpu.launch_func  @moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4_ws_q blocks in (%c18, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c384{{[_0-9]*}}, {{.*}} dynamic_shared_memory_size %c197632_i32
// WGLAUNCH: gpu.launch_func  @moe_kernels::@moe_wgmma_weighted_bf16_n256_s4_ws_q blocks in (%c18{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c384{{[_0-9]*}}, {{.*}} dynamic_shared_memory_size %c197632_i32

// The routing's k = 4 rounds: each the warp's best key (as an unsigned
// integer that orders as the float) and the lowest expert id holding it,
// two redux.sync each and no shuffles (sigmoid scores need no softmax sums).
// ROUTE: .entry moe_route_e16_k4_sigmoid_renorm_biasf32_tiles64
// ROUTE-NOT: shfl.sync
// ROUTE-COUNT-4: redux.sync.max.u32
// ROUTE-NOT: shfl.sync
// ROUTE: atom.shared.add.u32
// ROUTE: bar.sync
// MMA: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// LDM: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CPASYNC: cp.async.cg.shared.global
// GEMV: .entry moe_gemv_gather_pair_bf16
// GEMV: ld.global.v4.b32
// GEMV: red.global.add.v4.f32
// GEMV-NOT: mma.sync
func.func @layer(%x: tensor<64x128xbf16>, %router: tensor<128x16xbf16>, %bias: tensor<16xf32>,
                 %w_up: tensor<16x128x128xbf16>, %w_gate: tensor<16x128x128xbf16>,
                 %w_down: tensor<16x128x128xbf16>) -> tensor<64x128xbf16> {
  %y = moe.layer %x : tensor<64x128xbf16> router(%router : tensor<128x16xbf16>) router_bias(%bias : tensor<16xf32>) up(%w_up : tensor<16x128x128xbf16>) gate(%w_gate : tensor<16x128x128xbf16>) down(%w_down : tensor<16x128x128xbf16>) {activation = #moe.activation<silu>, renormalize, score_func = #moe.score_func<sigmoid>, top_k = 4 : i64} -> tensor<64x128xbf16>
  return %y : tensor<64x128xbf16>
}
