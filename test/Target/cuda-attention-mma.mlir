// The decoding attention on tensor cores (--gpu-attention-kernel=mma,
// buildAttentionMmaKernel), on the three attentions of
// cuda-attention-heads.mlir: every query head of a kv head in one block
// (the rows of one mma.sync), 4 warps splitting each 64-key tile that
// cp.async brings into shared memory, ldmatrix (.trans for the values).
// 16 sequences of 32 heads over 8 kv heads: 4 heads a block, 128 items,
// keys split over 2 blocks (256 blocks: two an SM on 15/16 of 132 SMs)
// with partial sums and the merge; 64 sequences of 8 heads a kv head: 8
// heads a block, 2 blocks an item; 16 latent-attention heads (192/128):
// one head a block, 16 blocks an item. Choices of the CUDA-core kernel
// beside it, and unknown kernels, are refused by name.
// REQUIRES: ptxas
// RUN: moe-opt %S/cuda-attention-heads.mlir -split-input-file --moe-cuda-pipeline="format=isa attention-kernel=mma" | FileCheck %s --check-prefix=PTX
// RUN: moe-opt %S/cuda-attention-heads.mlir -split-input-file --moe-cuda-pipeline="format=isa attention-kernel=mma" --mlir-print-ir-after=moe-materialize-gpu-experts --mlir-disable-threading -o /dev/null 2>&1 | FileCheck %s --check-prefix=HOST
// RUN: moe-opt %S/cuda-attention-heads.mlir -split-input-file --moe-cuda-pipeline="format=isa attention-kernel=mma attention-split=8" --mlir-print-ir-after=moe-materialize-gpu-experts --mlir-disable-threading -o /dev/null 2>&1 | FileCheck %s --check-prefix=SPLIT8
// RUN: not moe-opt %S/cuda-attention-heads.mlir -split-input-file --moe-cuda-pipeline="format=isa attention-kernel=mma attention-unroll=4" -o /dev/null 2>&1 | FileCheck %s --check-prefix=CORES
// RUN: not moe-opt %S/cuda-attention-heads.mlir -split-input-file --moe-cuda-pipeline="format=isa attention-kernel=fast" -o /dev/null 2>&1 | FileCheck %s --check-prefix=KIND
// RUN: not moe-compile %S/cuda-attention-heads.mlir --target=cuda --gpu-attention-kernel=x --emit=mlir 2>&1 | FileCheck %s --check-prefix=FLAG
// (A model without a decoding attention rejects the typo as well.)
// RUN: not moe-opt %S/cuda-chained-layers.mlir --moe-cuda-pipeline="format=isa attention-kernel=fast" -o /dev/null 2>&1 | FileCheck %s --check-prefix=KIND
// RUN: moe-opt %S/cuda-attention-heads.mlir -split-input-file --moe-cuda-pipeline="format=isa" --mlir-print-ir-after=moe-materialize-gpu-experts --mlir-disable-threading -o /dev/null 2>&1 | FileCheck %s --check-prefix=AUTO

// PTX-LABEL: .entry moe_attention_mma_batched_bf16_hd128_s2048_g4_h4_p2(
// PTX-DAG: cp.async.cg.shared.global
// PTX-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// PTX-DAG: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// PTX-DAG: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX-LABEL: .entry moe_attention_merge_bf16_dv128_h4_p2(
// PTX-LABEL: .entry moe_attention_mma_batched_bf16_hd128_s1024_g8_h8_p2(
// PTX-LABEL: .entry moe_attention_mma_batched_bf16_hd192_dv128_s4096_g1_h1_p16_scale{{[0-9A-F]+}}(
// PTX-DAG: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32

// HOST: gpu.launch_func  @moe_kernels::@moe_attention_mma_batched_bf16_hd128_s2048_g4_h4_p2 blocks in (%c256{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}})  args(
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_merge_bf16_dv128_h4_p2 blocks in (%c512{{[_0-9]*}},
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_mma_batched_bf16_hd128_s1024_g8_h8_p2 blocks in (%c512{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_merge_bf16_dv128_h8_p2 blocks in (%c2048{{[_0-9]*}},
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_mma_batched_bf16_hd192_dv128_s4096_g1_h1_p16_scale{{[0-9A-F]+}} blocks in (%c256{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128
// HOST: gpu.launch_func  @moe_kernels::@moe_attention_merge_bf16_dv128_h1_p16 blocks in (%c16{{[_0-9]*}},

// A split asked for: partial sums over 8 blocks (no cluster).
// SPLIT8: gpu.launch_func  @moe_kernels::@moe_attention_mma_batched_bf16_hd128_s2048_g4_h4_p8 blocks in (%c1024{{[_0-9]*}},
// SPLIT8: gpu.launch_func  @moe_kernels::@moe_attention_merge_bf16_dv128_h4_p8
// CORES: error: attention unroll and threads are choices of the CUDA-core kernel, not of the tensor-core one
// KIND: error: attention kernel must be auto, mma or cores, got 'fast'
// FLAG: moe-compile: error: --gpu-attention-kernel must be auto, mma or cores, got 'x'
// auto: tensor cores where a block gets 2 or more query heads; latent
// attention's one head a block stays on the CUDA-core kernel.
// AUTO: gpu.launch_func  @moe_kernels::@moe_attention_mma_batched_bf16_hd128_s2048_g4_h4_p2
// AUTO: gpu.launch_func  @moe_kernels::@moe_attention_mma_batched_bf16_hd128_s1024_g8_h8_p2
// AUTO: gpu.launch_func  @moe_kernels::@moe_attention_batched_bf16_hd192_dv128_s4096_g1_h1_u16_t256_p16
