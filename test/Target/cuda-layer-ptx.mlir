// The PTX of the fused layer's kernels (what ptxas receives), for both
// expert paths: the routing kernel reduces with warp shuffles and counts
// with shared-memory atomics; the memory-bound GEMV reads weights with
// 16-byte vector loads; the tensor-core GEMM stages tiles with cp.async,
// loads fragments with ldmatrix (B transposed) and multiplies with bf16
// mma.sync.
// RUN: moe-opt %s --moe-cuda-pipeline="path=mma format=isa" -o %t.mma
// RUN: FileCheck %s --check-prefix=ROUTE < %t.mma
// RUN: FileCheck %s --check-prefix=MMA < %t.mma
// RUN: FileCheck %s --check-prefix=LDM < %t.mma
// RUN: FileCheck %s --check-prefix=CPASYNC < %t.mma
// RUN: moe-opt %s --moe-cuda-pipeline="path=gemv format=isa" | FileCheck %s --check-prefix=GEMV

// ROUTE: .entry moe_route_e16_k4_sigmoid_renorm_biasf32_tiles64
// ROUTE: shfl.sync.bfly.b32
// ROUTE: atom.shared.add.u32
// ROUTE: bar.sync
// MMA: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// LDM: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CPASYNC: cp.async.cg.shared.global
// GEMV: .entry moe_gemv_gather_pair_bf16
// GEMV: ld.global.v4.b32
// GEMV-NOT: mma.sync
func.func @layer(%x: tensor<64x128xbf16>, %router: tensor<128x16xbf16>, %bias: tensor<16xf32>,
                 %w_up: tensor<16x128x128xbf16>, %w_gate: tensor<16x128x128xbf16>,
                 %w_down: tensor<16x128x128xbf16>) -> tensor<64x128xbf16> {
  %y = moe.layer %x : tensor<64x128xbf16> router(%router : tensor<128x16xbf16>) router_bias(%bias : tensor<16xf32>) up(%w_up : tensor<16x128x128xbf16>) gate(%w_gate : tensor<16x128x128xbf16>) down(%w_down : tensor<16x128x128xbf16>) {activation = #moe.activation<silu>, renormalize, score_func = #moe.score_func<sigmoid>, top_k = 4 : i64} -> tensor<64x128xbf16>
  return %y : tensor<64x128xbf16>
}
