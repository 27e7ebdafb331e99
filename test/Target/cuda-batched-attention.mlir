// Batched attention (two sequences per step, each at its own position) on
// the GPU: the rotary embedding, the cache rows and the attention read each
// sequence's position on the device, and the attention's blocks take the
// (row, head, sequence) items by the grid's size: the tensor-core decoding
// kernel, both query heads of a kv head a block. (Run against transformers
// by test/gpu/hf_compare.py: mixtral_e8-cuda-b2-bf16.)
// REQUIRES: ptxas
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX
// RUN: moe-opt %s --convert-moe-dense-to-gpu-call | FileCheck %s --check-prefix=CALL

// PTX-DAG: .entry moe_attention_mma_batched_bf16_hd16_s32_g2_h2(
// PTX-DAG: mma.sync.aligned.m16n8k16
// PTX-DAG: .entry moe_rope_batched_bf16_
// PTX-DAG: .entry moe_store_rows_batched_bf16
// PTX-DAG: mov.u32 {{.*}}%nctaid.x
// PTX-DAG: shfl.sync.bfly.b32

// CALL-NOT: moe.attention
// CALL: call @__moe_gpu_dense
module {
  func.func @batched(%x: tensor<4x64xbf16>, %wq: tensor<64x64xbf16>, %wk: tensor<64x32xbf16>, %wv: tensor<64x32xbf16>, %wo: tensor<64x64xbf16>, %kc: tensor<64x2x16xbf16>, %vc: tensor<64x2x16xbf16>, %pos: tensor<2xi32>) -> (tensor<4x64xbf16>, tensor<64x2x16xbf16>, tensor<64x2x16xbf16>) {
    %y, %k, %v = moe.attention %x : tensor<4x64xbf16> q(%wq : tensor<64x64xbf16>) k(%wk : tensor<64x32xbf16>) v(%wv : tensor<64x32xbf16>) o(%wo : tensor<64x64xbf16>) cache(%kc : tensor<64x2x16xbf16>, %vc : tensor<64x2x16xbf16>) position(%pos : tensor<2xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64} -> tensor<4x64xbf16>, tensor<64x2x16xbf16>, tensor<64x2x16xbf16>
    return %y, %k, %v : tensor<4x64xbf16>, tensor<64x2x16xbf16>, tensor<64x2x16xbf16>
  }
}
