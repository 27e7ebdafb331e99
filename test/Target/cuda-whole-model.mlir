// moe-compile --target=cuda on a whole model (one Mixtral-style layer of an
// imported checkpoint, 2-token steps): every part runs on the GPU. The KV
// caches and the logits are device buffers of the signature; every
// activation between the helpers is a gpu.alloc, so the host code of a step
// is calls to helpers that only launch kernels. The PTX has the dense
// kernels: attention reduces with warp shuffles and barriers, the
// projections read 16-byte vectors.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --emit=mlir -o %t.mlir --mlir-print-ir-after=moe-materialize-gpu-experts --mlir-disable-threading 2> %t.ir
// RUN: FileCheck %s --check-prefix=SIG < %t.mlir
// RUN: FileCheck %s --check-prefix=HOST < %t.ir
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX
// RUN: moe-compile %s --target=cuda --gpu-report --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// The step only queues GPU work (the positions are uploaded, no host code
// reads them): "capturable-step", and the generator replays it as a CUDA
// graph.
// REPORT: remark: a call of the model only queues GPU work: a generator replays its steps as a CUDA graph
// SIG: moe_model_signature("capturable-step\0Ainput ids I32 2\0Ainput pos I32 1\0Adevice-input past_key.0 BF16 32x2x16\0Adevice-input past_value.0 BF16 32x2x16
// SIG-SAME: device-weight model.layers.0.self_attn.q_proj.weight BF16 64x64 transpose
// SIG-SAME: device-output logits BF16 2x64\0Adevice-output key.0 BF16 32x2x16\0Adevice-output value.0 BF16 32x2x16

// HOST: IR Dump After MoEMaterializeGpuExperts
// HOST: IR Dump After MoEMaterializeGpuExperts
// HOST: func.func @model(
// HOST-NOT: memref.alloc
// HOST: %[[X:.*]] = gpu.alloc () : memref<2x64xbf16>
// HOST: call @__moe_gpu_dense_0(%arg0, %arg4, %[[X]])
// HOST: call @__moe_gpu_dense_2({{.*}}, %arg2, %arg3, %arg1, %{{.*}}, %arg18, %arg19)
// HOST: call @__moe_gpu_layer_0(
// HOST: call @__moe_gpu_dense_7(%{{.*}}, %arg16, %arg17)
// HOST-NOT: memref.alloc
// HOST-NOT: memref.copy
// HOST: gpu.dealloc %[[X]]
// HOST: return

// PTX-DAG: .entry moe_embedding_bf16
// PTX-DAG: .entry moe_rms_norm_bf16
// PTX-DAG: .entry moe_add_bf16
// PTX-DAG: .entry moe_store_rows_batched_bf16
// PTX-DAG: .entry moe_rope_batched_bf16_
// PTX-DAG: .entry moe_gemv_dense_bf16_r2
// PTX-DAG: ld.global.v4.b32
// PTX-DAG: .entry moe_attention_mma_batched_bf16_hd16_s32_g2_h2(
// PTX-DAG: mma.sync.aligned.m16n8k16
// PTX-DAG: shfl.sync.bfly.b32
// PTX-DAG: bar.sync
#map = affine_map<(d0, d1) -> (d0, d1)>
module {
  func.func @model(%arg0: tensor<2xi32> {moe.input = "ids"}, %arg1: tensor<1xi32> {moe.input = "pos"}, %arg2: tensor<32x2x16xbf16> {moe.input = "past_key.0"}, %arg3: tensor<32x2x16xbf16> {moe.input = "past_value.0"}, %arg4: tensor<64x64xbf16> {moe.weight = "model.embed_tokens.weight"}, %arg5: tensor<64xbf16> {moe.weight = "model.layers.0.input_layernorm.weight"}, %arg6: tensor<64x64xbf16> {moe.transpose, moe.weight = "model.layers.0.self_attn.q_proj.weight"}, %arg7: tensor<64x32xbf16> {moe.transpose, moe.weight = "model.layers.0.self_attn.k_proj.weight"}, %arg8: tensor<64x32xbf16> {moe.transpose, moe.weight = "model.layers.0.self_attn.v_proj.weight"}, %arg9: tensor<64x64xbf16> {moe.transpose, moe.weight = "model.layers.0.self_attn.o_proj.weight"}, %arg10: tensor<64xbf16> {moe.weight = "model.layers.0.post_attention_layernorm.weight"}, %arg11: tensor<64x8xbf16> {moe.transpose, moe.weight = "model.layers.0.block_sparse_moe.gate.weight"}, %arg12: tensor<8x64x64xbf16> {moe.stack = "transpose", moe.weight = "model.layers.0.block_sparse_moe.experts.*.w3.weight"}, %arg13: tensor<8x64x64xbf16> {moe.stack = "transpose", moe.weight = "model.layers.0.block_sparse_moe.experts.*.w1.weight"}, %arg14: tensor<8x64x64xbf16> {moe.stack = "transpose", moe.weight = "model.layers.0.block_sparse_moe.experts.*.w2.weight"}, %arg15: tensor<64xbf16> {moe.weight = "model.norm.weight"}, %arg16: tensor<64x64xbf16> {moe.transpose, moe.weight = "lm_head.weight"}) -> (tensor<2x64xbf16> {moe.output = "logits"}, tensor<32x2x16xbf16> {moe.output = "key.0"}, tensor<32x2x16xbf16> {moe.output = "value.0"}) {
    %0 = moe.embedding %arg0 : tensor<2xi32> table(%arg4 : tensor<64x64xbf16>) -> tensor<2x64xbf16>
    %1 = moe.rms_norm %0 : tensor<2x64xbf16> weight(%arg5 : tensor<64xbf16>) {epsilon = 1.000000e-05 : f64} -> tensor<2x64xbf16>
    %result, %key_cache, %value_cache = moe.attention %1 : tensor<2x64xbf16> q(%arg6 : tensor<64x64xbf16>) k(%arg7 : tensor<64x32xbf16>) v(%arg8 : tensor<64x32xbf16>) o(%arg9 : tensor<64x64xbf16>) cache(%arg2 : tensor<32x2x16xbf16>, %arg3 : tensor<32x2x16xbf16>) position(%arg1 : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64, qk_norm_epsilon = 1.000000e-05 : f64} -> tensor<2x64xbf16>, tensor<32x2x16xbf16>, tensor<32x2x16xbf16>
    %2 = tensor.empty() : tensor<2x64xbf16>
    %3 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel"]} ins(%0, %result : tensor<2x64xbf16>, tensor<2x64xbf16>) outs(%2 : tensor<2x64xbf16>) {
    ^bb0(%in: bf16, %in_0: bf16, %out: bf16):
      %14 = arith.extf %in_0 : bf16 to f32
      %15 = arith.extf %in : bf16 to f32
      %16 = arith.addf %15, %14 : f32
      %17 = arith.truncf %16 : f32 to bf16
      linalg.yield %17 : bf16
    } -> tensor<2x64xbf16>
    %4 = moe.rms_norm %3 : tensor<2x64xbf16> weight(%arg10 : tensor<64xbf16>) {epsilon = 1.000000e-05 : f64} -> tensor<2x64xbf16>
    %5 = moe.layer %4 : tensor<2x64xbf16> router(%arg11 : tensor<64x8xbf16>) up(%arg12 : tensor<8x64x64xbf16>) gate(%arg13 : tensor<8x64x64xbf16>) down(%arg14 : tensor<8x64x64xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<2x64xbf16>
    %6 = tensor.empty() : tensor<2x64xbf16>
    %7 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel"]} ins(%3, %5 : tensor<2x64xbf16>, tensor<2x64xbf16>) outs(%6 : tensor<2x64xbf16>) {
    ^bb0(%in: bf16, %in_0: bf16, %out: bf16):
      %14 = arith.extf %in_0 : bf16 to f32
      %15 = arith.extf %in : bf16 to f32
      %16 = arith.addf %15, %14 : f32
      %17 = arith.truncf %16 : f32 to bf16
      linalg.yield %17 : bf16
    } -> tensor<2x64xbf16>
    %8 = moe.rms_norm %7 : tensor<2x64xbf16> weight(%arg15 : tensor<64xbf16>) {epsilon = 1.000000e-05 : f64} -> tensor<2x64xbf16>
    %9 = tensor.empty() : tensor<2x64xf32>
    %cst = arith.constant 0.000000e+00 : f32
    %10 = linalg.fill ins(%cst : f32) outs(%9 : tensor<2x64xf32>) -> tensor<2x64xf32>
    %11 = linalg.matmul ins(%8, %arg16 : tensor<2x64xbf16>, tensor<64x64xbf16>) outs(%10 : tensor<2x64xf32>) -> tensor<2x64xf32>
    %12 = tensor.empty() : tensor<2x64xbf16>
    %13 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%11 : tensor<2x64xf32>) outs(%12 : tensor<2x64xbf16>) {
    ^bb0(%in: f32, %out: bf16):
      %14 = arith.truncf %in : f32 to bf16
      linalg.yield %14 : bf16
    } -> tensor<2x64xbf16>
    return %13, %key_cache, %value_cache : tensor<2x64xbf16>, tensor<32x2x16xbf16>, tensor<32x2x16xbf16>
  }
}

