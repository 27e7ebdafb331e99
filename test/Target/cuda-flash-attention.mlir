// Attention of a step with many rows per sequence (prefill) on tensor
// cores: FlashAttention-2-style, a block of 4 warps per 64 query rows and
// head (grid ceil(100 / 64) = 2 x 4 heads, 128 threads), Q K^T and P V on
// mma.sync m16n8k16 with bf16 in and f32 accumulation, fragments from
// shared memory with ldmatrix (V transposed), key and value blocks copied
// with cp.async. The shared memory (two 64 x 136 bf16 tiles) does not grow
// with the cache, so a 4096-row cache is fine. A one-row step (decode)
// takes the decoding kernel (clusters splitting the keys); a batched
// prefill has a z slice per sequence; DeepSeek's latent attention (query
// heads of 192, value heads of 128) takes it too. (Run against transformers on an H200 by test/gpu/hf_compare.py
// and test/bench/bench_whole_model.py.)
// REQUIRES: ptxas
// RUN: moe-opt %s -split-input-file --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX
// RUN: moe-opt %s -split-input-file --moe-cuda-pipeline="format=isa" --mlir-print-ir-after=moe-materialize-gpu-experts --mlir-disable-threading -o /dev/null 2>&1 | FileCheck %s --check-prefix=HOST

// PTX-LABEL: .entry moe_flash_attention_batched_bf16_hd128_g2(
// PTX: cp.async.cg.shared.global
// PTX: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX: shfl.sync.bfly.b32
// PTX: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX: cp.async.wait_group

// HOST: gpu.launch_func  @moe_kernels::@moe_flash_attention_batched_bf16_hd128_g2 blocks in (%c2{{[_0-9]*}}, %c4{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128{{[_0-9]*}},
func.func @prefill(%x: tensor<100x256xbf16>, %wq: tensor<256x512xbf16>, %wk: tensor<256x256xbf16>, %wv: tensor<256x256xbf16>, %wo: tensor<512x256xbf16>, %kc: tensor<4096x2x128xbf16>, %vc: tensor<4096x2x128xbf16>, %pos: tensor<1xi32>) -> (tensor<100x256xbf16>, tensor<4096x2x128xbf16>, tensor<4096x2x128xbf16>) {
  %y, %k, %v = moe.attention %x : tensor<100x256xbf16> q(%wq : tensor<256x512xbf16>) k(%wk : tensor<256x256xbf16>) v(%wv : tensor<256x256xbf16>) o(%wo : tensor<512x256xbf16>) cache(%kc : tensor<4096x2x128xbf16>, %vc : tensor<4096x2x128xbf16>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64} -> tensor<100x256xbf16>, tensor<4096x2x128xbf16>, tensor<4096x2x128xbf16>
  return %y, %k, %v : tensor<100x256xbf16>, tensor<4096x2x128xbf16>, tensor<4096x2x128xbf16>
}

// -----

// PTX-LABEL: .entry moe_flash_attention_batched_bf16_hd64_g1(
// PTX: mov.u32 {{.*}}%ctaid.z
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// HOST: gpu.launch_func  @moe_kernels::@moe_flash_attention_batched_bf16_hd64_g1 blocks in (%c1{{[_0-9]*}}, %c2{{[_0-9]*}}, %c2{{[_0-9]*}}) threads in (%c128{{[_0-9]*}},
func.func @batched_prefill(%x: tensor<64x128xbf16>, %wq: tensor<128x128xbf16>, %wk: tensor<128x128xbf16>, %wv: tensor<128x128xbf16>, %wo: tensor<128x128xbf16>, %kc: tensor<128x2x64xbf16>, %vc: tensor<128x2x64xbf16>, %pos: tensor<2xi32>) -> (tensor<64x128xbf16>, tensor<128x2x64xbf16>, tensor<128x2x64xbf16>) {
  %y, %k, %v = moe.attention %x : tensor<64x128xbf16> q(%wq : tensor<128x128xbf16>) k(%wk : tensor<128x128xbf16>) v(%wv : tensor<128x128xbf16>) o(%wo : tensor<128x128xbf16>) cache(%kc : tensor<128x2x64xbf16>, %vc : tensor<128x2x64xbf16>) position(%pos : tensor<2xi32>) {num_heads = 2 : i64, num_kv_heads = 2 : i64} -> tensor<64x128xbf16>, tensor<128x2x64xbf16>, tensor<128x2x64xbf16>
  return %y, %k, %v : tensor<64x128xbf16>, tensor<128x2x64xbf16>, tensor<128x2x64xbf16>
}

// -----

// A decoding step of 4 heads over 2 kv heads, 4096 keys: the tensor-core
// decoding kernel takes both query heads of a kv head a block (2 items);
// 32 blocks split each item's keys (64 blocks of 128 keys,
// planAttentionMma) and write their p v sums, maxima and sums of
// exponentials to a work buffer (2 x 32 entries of 2 x 128 + 4 floats),
// no cluster; the merge kernel rescales them to each head's maximum and
// writes the rows. Keys and values go through shared memory by cp.async.
// PTX-LABEL: .entry moe_attention_mma_batched_bf16_hd128_s4096_g2_h2_p32(
// PTX-NOT: barrier.cluster
// PTX-DAG: cp.async.cg.shared.global
// PTX-DAG: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX-DAG: st.global.b32
// PTX-LABEL: .entry moe_attention_merge_bf16_dv128_h2_p32(
// PTX: ex2.approx
// PTX: div.rn.f32
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_mma_batched_bf16_hd128_s4096_g2_h2_p32 blocks in (%c64{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) {{.*}}args({{.*}}, %[[WORK:.*]] : memref<?xf32>)
// HOST-NEXT: memref.cast
// HOST-SAME: memref<16640xf32> to memref<?xf32>
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_merge_bf16_dv128_h2_p32 blocks in (%c4{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128
func.func @decode(%x: tensor<1x256xbf16>, %wq: tensor<256x512xbf16>, %wk: tensor<256x256xbf16>, %wv: tensor<256x256xbf16>, %wo: tensor<512x256xbf16>, %kc: tensor<4096x2x128xbf16>, %vc: tensor<4096x2x128xbf16>, %pos: tensor<1xi32>) -> (tensor<1x256xbf16>, tensor<4096x2x128xbf16>, tensor<4096x2x128xbf16>) {
  %y, %k, %v = moe.attention %x : tensor<1x256xbf16> q(%wq : tensor<256x512xbf16>) k(%wk : tensor<256x256xbf16>) v(%wv : tensor<256x256xbf16>) o(%wo : tensor<512x256xbf16>) cache(%kc : tensor<4096x2x128xbf16>, %vc : tensor<4096x2x128xbf16>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64} -> tensor<1x256xbf16>, tensor<4096x2x128xbf16>, tensor<4096x2x128xbf16>
  return %y, %k, %v : tensor<1x256xbf16>, tensor<4096x2x128xbf16>, tensor<4096x2x128xbf16>
}

// -----

// Latent attention, 64 rows a step: query/key heads of 192 (12 k-steps of
// Q K^T), value heads of 128 (16 output tiles); the query tile goes through
// the key tile's shared memory (64 x 200 and 64 x 136 bf16: 43008 bytes).
// PTX-LABEL: .entry moe_flash_attention_batched_bf16_hd192_dv128_g1_scale{{[0-9A-F]+}}(
// PTX: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// PTX-NOT: .entry moe_attention_batched
// HOST: gpu.launch_func  @moe_kernels::@moe_flash_attention_batched_bf16_hd192_dv128_g1_scale{{[0-9A-F]+}} blocks in (%c1{{[_0-9]*}}, %c2{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128
func.func @mla(%x: tensor<64x256xbf16>, %pos: tensor<1xi32>, %kc: tensor<128x2x192xbf16>, %vc: tensor<128x2x128xbf16>, %qb: tensor<256x384xbf16>, %kva: tensor<256x128xbf16>, %kvan: tensor<64xbf16>, %kvb: tensor<64x512xbf16>, %wo: tensor<256x256xbf16>) -> (tensor<64x256xbf16>, tensor<128x2x192xbf16>, tensor<128x2x128xbf16>) {
  %y, %k, %v = moe.mla_attention %x : tensor<64x256xbf16> q_b(%qb : tensor<256x384xbf16>) kv_a(%kva : tensor<256x128xbf16>) kv_a_norm(%kvan : tensor<64xbf16>) kv_b(%kvb : tensor<64x512xbf16>) o(%wo : tensor<256x256xbf16>) cache(%kc : tensor<128x2x192xbf16>, %vc : tensor<128x2x128xbf16>) position(%pos : tensor<1xi32>) {num_heads = 2 : i64, nope_dim = 128 : i64, rope_dim = 64 : i64, v_dim = 128 : i64, interleaved} -> tensor<64x256xbf16>, tensor<128x2x192xbf16>, tensor<128x2x128xbf16>
  return %y, %k, %v : tensor<64x256xbf16>, tensor<128x2x192xbf16>, tensor<128x2x128xbf16>
}
