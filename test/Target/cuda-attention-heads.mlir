// The CUDA-core decoding attention's plan (planAttention; asked for with
// attention-kernel=cores or any of its choices below, else the first two
// attentions take tensor cores: cuda-attention-mma.mlir): a block takes several
// query heads of one kv head where that still fills the GPU, so each key
// and value row is read once for them. 16 sequences of 32 heads over 8 kv
// heads: 4 heads a block, 128 items, each sequence's 2048 keys split over
// 16 blocks that hand partial sums to the merge kernel (2048 blocks of 128
// keys; the merge: a block an item's head, 512), 8 key rows a lane in
// flight; the scores (4 x 128 bf16) and the p v partial sums (4 rows x 4
// heads x 128 f32) in 9216 bytes of dynamic shared memory. With
// attention-split=8, clusters of 8 instead, meeting through distributed
// shared memory. 64 sequences with 8 query heads a kv head: 4 heads a
// block (the default's most), no split. A head count that does not divide
// the group is refused by name.
// REQUIRES: ptxas
// RUN: moe-opt %s -split-input-file --moe-cuda-pipeline="format=isa attention-kernel=cores" | FileCheck %s --check-prefix=PTX
// RUN: moe-opt %s -split-input-file --moe-cuda-pipeline="format=isa attention-kernel=cores" --mlir-print-ir-after=moe-materialize-gpu-experts --mlir-disable-threading -o /dev/null 2>&1 | FileCheck %s --check-prefix=HOST
// RUN: not moe-opt %s -split-input-file --moe-cuda-pipeline="format=isa attention-heads=3" -o /dev/null 2>&1 | FileCheck %s --check-prefix=ERR
// RUN: not moe-compile %s --target=cuda --gpu-attention-unroll=17 --emit=mlir 2>&1 | FileCheck %s --check-prefix=UNROLL
// RUN: moe-opt %s -split-input-file --moe-cuda-pipeline="format=isa attention-threads=256" --mlir-print-ir-after=moe-materialize-gpu-experts --mlir-disable-threading -o /dev/null 2>&1 | FileCheck %s --check-prefix=T256
// RUN: not moe-opt %s -split-input-file --moe-cuda-pipeline="format=isa attention-threads=100" -o /dev/null 2>&1 | FileCheck %s --check-prefix=T100
// T256: gpu.launch_func  @moe_kernels::@moe_attention_batched_bf16_hd128_s2048_g4_h4_u8_t256_p16 blocks in {{.*}} threads in (%c256{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) dynamic_shared_memory_size %c17408_i32
// T100: error: attention threads a block must be 128, 256 or 512, got 100
// RUN: not moe-opt %s -split-input-file --moe-cuda-pipeline="format=isa attention-unroll=20" -o /dev/null 2>&1 | FileCheck %s --check-prefix=U20
// RUN: moe-opt %s -split-input-file --moe-cuda-pipeline="format=isa attention-split=8" | FileCheck %s --check-prefix=CLUSTERPTX
// RUN: moe-opt %s -split-input-file --moe-cuda-pipeline="format=isa attention-split=8" --mlir-print-ir-after=moe-materialize-gpu-experts --mlir-disable-threading -o /dev/null 2>&1 | FileCheck %s --check-prefix=SPLIT8
// RUN: not moe-opt %s -split-input-file --moe-cuda-pipeline="format=isa attention-split=12" -o /dev/null 2>&1 | FileCheck %s --check-prefix=SPLIT12
// RUN: not moe-compile %s --target=cuda --gpu-attention-split=2048 --emit=mlir 2>&1 | FileCheck %s --check-prefix=SPLIT2048
// SPLIT12: error: attention split must be a power of two up to 1024, got 12
// SPLIT2048: moe-compile: error: --gpu-attention-split must be 0 (auto) or a power of two up to 1024, got 2048
// U20: error: attention rows in flight a lane must be 1 to 16, got 20
// UNROLL: moe-compile: error: --gpu-attention-unroll must be 0 (auto) or 1 to 16, got 17
// (With 256 threads a block, the p v partial sums are 8 rows: 16384 bytes,
// 17408 with the scores.)

// PTX-LABEL: .entry moe_attention_batched_bf16_hd128_s2048_g4_h4_u8_p16(
// PTX-DAG: ld.global.v4.b32
// PTX-NOT: mapa.shared::cluster
// PTX-LABEL: .entry moe_attention_merge_bf16_dv128_h4_p16(
// (The merge takes each block's weight exp(m_s - m) once, into shared
// memory, and loads a column's sums of 8 blocks at once: entries of 2080
// bytes.)
// PTX: ex2.approx
// PTX-NOT: ex2.approx
// PTX: ld.global.b32 {{[^;]*}}+14560];\0A\09ld.shared.v4.b32
// CLUSTERPTX-LABEL: .entry moe_attention_batched_bf16_hd128_s2048_g4_h4_u8_c8(
// CLUSTERPTX-DAG: ld.global.v4.b32
// CLUSTERPTX-DAG: mapa.shared::cluster
// CLUSTERPTX-DAG: barrier.cluster.wait
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_batched_bf16_hd128_s2048_g4_h4_u8_p16 blocks in (%c2048{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) dynamic_shared_memory_size %c9216_i32
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_merge_bf16_dv128_h4_p16 blocks in (%c512{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128
// SPLIT8: gpu.launch_func  @moe_kernels::@moe_attention_batched_bf16_hd128_s2048_g4_h4_u8_c8 clusters in (%c8{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) blocks in (%c1024{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}})
// ERR: error: attention heads a block (3) must divide the query heads of a kv head (4)
func.func @batched(%x: tensor<16x256xbf16>, %wq: tensor<256x4096xbf16>, %wk: tensor<256x1024xbf16>, %wv: tensor<256x1024xbf16>, %wo: tensor<4096x256xbf16>, %kc: tensor<32768x8x128xbf16>, %vc: tensor<32768x8x128xbf16>, %pos: tensor<16xi32>) -> (tensor<16x256xbf16>, tensor<32768x8x128xbf16>, tensor<32768x8x128xbf16>) {
  %y, %k, %v = moe.attention %x : tensor<16x256xbf16> q(%wq : tensor<256x4096xbf16>) k(%wk : tensor<256x1024xbf16>) v(%wv : tensor<256x1024xbf16>) o(%wo : tensor<4096x256xbf16>) cache(%kc : tensor<32768x8x128xbf16>, %vc : tensor<32768x8x128xbf16>) position(%pos : tensor<16xi32>) {num_heads = 32 : i64, num_kv_heads = 8 : i64} -> tensor<16x256xbf16>, tensor<32768x8x128xbf16>, tensor<32768x8x128xbf16>
  return %y, %k, %v : tensor<16x256xbf16>, tensor<32768x8x128xbf16>, tensor<32768x8x128xbf16>
}

// -----

// PTX-LABEL: .entry moe_attention_batched_bf16_hd128_s1024_g8_h4_u8(
// PTX-NOT: barrier.cluster
// PTX: .entry
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_batched_bf16_hd128_s1024_g8_h4_u8 blocks in (%c512{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) dynamic_shared_memory_size %c16384_i32
func.func @group8(%x: tensor<64x256xbf16>, %wq: tensor<256x4096xbf16>, %wk: tensor<256x512xbf16>, %wv: tensor<256x512xbf16>, %wo: tensor<4096x256xbf16>, %kc: tensor<65536x4x128xbf16>, %vc: tensor<65536x4x128xbf16>, %pos: tensor<64xi32>) -> (tensor<64x256xbf16>, tensor<65536x4x128xbf16>, tensor<65536x4x128xbf16>) {
  %y, %k, %v = moe.attention %x : tensor<64x256xbf16> q(%wq : tensor<256x4096xbf16>) k(%wk : tensor<256x512xbf16>) v(%wv : tensor<256x512xbf16>) o(%wo : tensor<4096x256xbf16>) cache(%kc : tensor<65536x4x128xbf16>, %vc : tensor<65536x4x128xbf16>) position(%pos : tensor<64xi32>) {num_heads = 32 : i64, num_kv_heads = 4 : i64} -> tensor<64x256xbf16>, tensor<65536x4x128xbf16>, tensor<65536x4x128xbf16>
  return %y, %k, %v : tensor<64x256xbf16>, tensor<65536x4x128xbf16>, tensor<65536x4x128xbf16>
}

// -----

// Latent attention's heads of 192: a key row takes a whole warp's lanes, so
// the plan doubles the threads a block (one head a block: the group is 1).
// Clusters of 8 would give 128 blocks: instead 16 blocks an item with
// partial sums (256 blocks of 256 keys), then the merge, a block a head.
// With attention-split=8 the cluster again.
// PTX-LABEL: .entry moe_attention_batched_bf16_hd192_dv128_s4096_g1_h1_u16_t256_p16_scale{{[0-9A-F]+}}(
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_batched_bf16_hd192_dv128_s4096_g1_h1_u16_t256_p16_scale{{[0-9A-F]+}} blocks in (%c256{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c256{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}})
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_merge_bf16_dv128_h1_p16 blocks in (%c16{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128
// SPLIT8: gpu.launch_func  @moe_kernels::@moe_attention_batched_bf16_hd192_dv128_s4096_g1_h1_u16_t256_c8_scale{{[0-9A-F]+}} clusters in (%c8{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) blocks in (%c128{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}})
// SPLIT8-NOT: moe_attention_merge
func.func @mla(%x: tensor<1x256xbf16>, %pos: tensor<1xi32>, %kc: tensor<4096x16x192xbf16>, %vc: tensor<4096x16x128xbf16>, %qb: tensor<256x3072xbf16>, %kva: tensor<256x128xbf16>, %kvan: tensor<64xbf16>, %kvb: tensor<64x4096xbf16>, %wo: tensor<2048x256xbf16>) -> (tensor<1x256xbf16>, tensor<4096x16x192xbf16>, tensor<4096x16x128xbf16>) {
  %y, %k, %v = moe.mla_attention %x : tensor<1x256xbf16> q_b(%qb : tensor<256x3072xbf16>) kv_a(%kva : tensor<256x128xbf16>) kv_a_norm(%kvan : tensor<64xbf16>) kv_b(%kvb : tensor<64x4096xbf16>) o(%wo : tensor<2048x256xbf16>) cache(%kc : tensor<4096x16x192xbf16>, %vc : tensor<4096x16x128xbf16>) position(%pos : tensor<1xi32>) {num_heads = 16 : i64, nope_dim = 128 : i64, rope_dim = 64 : i64, v_dim = 128 : i64, interleaved} -> tensor<1x256xbf16>, tensor<4096x16x192xbf16>, tensor<4096x16x128xbf16>
  return %y, %k, %v : tensor<1x256xbf16>, tensor<4096x16x192xbf16>, tensor<4096x16x128xbf16>
}
