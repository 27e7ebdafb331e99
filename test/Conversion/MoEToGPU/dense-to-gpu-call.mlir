// -convert-moe-dense-to-gpu-call: the bf16 dense parts of a whole model
// (embedding, RMSNorm, attention with its caches, residual adds, the LM
// head's rounded projection) become calls to GPU helpers marked with their
// kind; the MoE layer is left to -convert-moe-layer-to-gpu-call. An f32
// model, a generic that is no residual add, and a projection not rounded to
// bf16 stay for the CPU lowering.
// RUN: moe-opt %s -split-input-file -convert-moe-dense-to-gpu-call | FileCheck %s
// RUN: moe-opt %s -split-input-file -convert-moe-dense-to-gpu-call="report" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// With `report`, a remark per dense op says where it runs.
// REPORT: remark: 'moe.embedding' runs on the GPU
// REPORT: remark: 'moe.rms_norm' runs on the GPU
// REPORT: remark: 'moe.attention' runs on the GPU
// REPORT: remark: 'moe.rms_norm' runs on the host: the GPU RMSNorm takes bf16 activations and weights
// REPORT: remark: 'moe.attention' runs on the host: the GPU attention splits a row's keys over at most 1024 blocks, each keeping its scores in shared memory: at most 52248576 cache rows (or, on tensor cores, steps of 16 or more rows per sequence and head sizes that are multiples of 16 up to 128)

// CHECK-DAG: func.func private @__moe_gpu_dense_0(tensor<2xi32> {bufferization.access = "read"}, tensor<64x64xbf16> {bufferization.access = "read"}) -> tensor<2x64xbf16> attributes {moe.gpu_dense = "embedding"
// CHECK-DAG: func.func private @[[NORM:__moe_gpu_dense_1]]({{.*}}) -> tensor<2x64xbf16> attributes {moe.gpu_dense = "rms_norm", moe.gpu_dense_attrs = {epsilon = 1.000000e-05 : f64}}
// CHECK-DAG: func.func private @[[ATTN:__moe_gpu_dense_2]]({{.*}}) -> (tensor<2x64xbf16>, tensor<32x2x16xbf16>, tensor<32x2x16xbf16>) attributes {moe.gpu_dense = "attention", moe.gpu_dense_attrs = {num_heads = 4 : i64, num_kv_heads = 2 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0>
// CHECK-DAG: func.func private @[[ADD:__moe_gpu_dense_3]]({{.*}}) -> tensor<2x64xbf16> attributes {moe.gpu_dense = "add"
// CHECK-DAG: func.func private @[[HEAD:__moe_gpu_dense_7]](tensor<2x64xbf16> {bufferization.access = "read"}, tensor<64x64xbf16> {bufferization.access = "read"}) -> tensor<2x64xbf16> attributes {moe.gpu_dense = "matmul"
// CHECK-LABEL: func.func @model(
// CHECK: %[[X:.*]] = call @__moe_gpu_dense_0(%arg0, %arg4)
// CHECK: %[[N:.*]] = call @[[NORM]](%[[X]], %arg5)
// CHECK: %[[A:.*]]:3 = call @[[ATTN]](%[[N]], %arg6, %arg7, %arg8, %arg9, %arg2, %arg3, %arg1)
// CHECK: %[[H:.*]] = call @[[ADD]](%[[X]], %[[A]]#0)
// CHECK: moe.layer
// CHECK: %[[LOGITS:.*]] = call @[[HEAD]](
// CHECK-NOT: linalg.matmul
// CHECK: return %[[LOGITS]], %[[A]]#1, %[[A]]#2
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


// -----

// f32 parts, a difference (not a residual add) and an unrounded projection
// stay as they are.
// CHECK-LABEL: func.func @cpu_parts(
// CHECK-NOT: call @__moe_gpu_dense
// CHECK: moe.rms_norm
// CHECK: linalg.generic
// CHECK: arith.subf
// CHECK: linalg.matmul
// CHECK-NOT: call @__moe_gpu_dense
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @cpu_parts(%x: tensor<2x64xf32>, %w: tensor<64xf32>, %a: tensor<2x64xbf16>,
                     %b: tensor<2x64xbf16>, %m: tensor<64x64xbf16>) -> (tensor<2x64xf32>, tensor<2x64xbf16>, tensor<2x64xf32>) {
  %n = moe.rms_norm %x : tensor<2x64xf32> weight(%w : tensor<64xf32>) {epsilon = 1.0e-05 : f64} -> tensor<2x64xf32>
  %e = tensor.empty() : tensor<2x64xbf16>
  %d = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%a, %b : tensor<2x64xbf16>, tensor<2x64xbf16>) outs(%e : tensor<2x64xbf16>) {
  ^bb0(%p: bf16, %q: bf16, %o: bf16):
    %pf = arith.extf %p : bf16 to f32
    %qf = arith.extf %q : bf16 to f32
    %s = arith.subf %pf, %qf : f32
    %t = arith.truncf %s : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<2x64xbf16>
  %z = tensor.empty() : tensor<2x64xf32>
  %c0 = arith.constant 0.0 : f32
  %f = linalg.fill ins(%c0 : f32) outs(%z : tensor<2x64xf32>) -> tensor<2x64xf32>
  %mm = linalg.matmul ins(%a, %m : tensor<2x64xbf16>, tensor<64x64xbf16>) outs(%f : tensor<2x64xf32>) -> tensor<2x64xf32>
  return %n, %d, %mm : tensor<2x64xf32>, tensor<2x64xbf16>, tensor<2x64xf32>
}

// -----

// A decoding step (one row) over a cache too long for the scores of a row
// in the shared memory of 1024 blocks (about 52 million rows here) stays on
// the host.
// CHECK-LABEL: func.func @long_cache(
// CHECK-NOT: call @__moe_gpu_dense
// CHECK: moe.attention
func.func @long_cache(%x: tensor<1x64xbf16>, %wq: tensor<64x64xbf16>, %wk: tensor<64x32xbf16>, %wv: tensor<64x32xbf16>, %wo: tensor<64x64xbf16>, %kc: tensor<60000000x2x16xbf16>, %vc: tensor<60000000x2x16xbf16>, %pos: tensor<1xi32>) -> (tensor<1x64xbf16>, tensor<60000000x2x16xbf16>, tensor<60000000x2x16xbf16>) {
  %y, %k, %v = moe.attention %x : tensor<1x64xbf16> q(%wq : tensor<64x64xbf16>) k(%wk : tensor<64x32xbf16>) v(%wv : tensor<64x32xbf16>) o(%wo : tensor<64x64xbf16>) cache(%kc : tensor<60000000x2x16xbf16>, %vc : tensor<60000000x2x16xbf16>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64} -> tensor<1x64xbf16>, tensor<60000000x2x16xbf16>, tensor<60000000x2x16xbf16>
  return %y, %k, %v : tensor<1x64xbf16>, tensor<60000000x2x16xbf16>, tensor<60000000x2x16xbf16>
}

// -----

// A GPT block (DeepSpeed-MoE): learned positions, LayerNorm with its bias,
// a dense GELU MLP; and a gated MLP. The position ids (position[s] + t, as
// the importer computes them) are left for the kernel to compute: no host
// loop remains before the position embedding. An MLP whose FFN size is not
// a multiple of 8 and an f32 LayerNorm stay on the host, named.
// REPORT: remark: 'moe.embedding' runs on the GPU
// REPORT: remark: 'moe.layer_norm' runs on the GPU
// REPORT: remark: 'moe.mlp' runs on the GPU
// REPORT: remark: 'moe.mlp' runs on the GPU
// REPORT: remark: 'moe.mlp' runs on the host: the GPU dense MLP needs hidden and FFN sizes divisible by 8
// REPORT: remark: 'moe.layer_norm' runs on the host: the GPU LayerNorm takes bf16 activations, weights and biases

// CHECK-DAG: func.func private @[[POS:__moe_gpu_dense_[0-9]+]](tensor<2xi32> {bufferization.access = "read"}, tensor<64x64xbf16> {bufferization.access = "read"}) -> tensor<6x64xbf16> attributes {moe.gpu_dense = "position_embedding"
// CHECK-DAG: func.func private @[[LN:__moe_gpu_dense_[0-9]+]]({{.*}}tensor<6x64xbf16>{{.*}}tensor<64xbf16>{{.*}}tensor<64xbf16>{{.*}}) -> tensor<6x64xbf16> attributes {moe.gpu_dense = "layer_norm", moe.gpu_dense_attrs = {epsilon = 1.000000e-05 : f64}}
// CHECK-DAG: func.func private @[[MLP:__moe_gpu_dense_[0-9]+]]({{.*}}tensor<64x256xbf16>{{.*}}tensor<256x64xbf16>{{.*}}) -> tensor<6x64xbf16> attributes {moe.gpu_dense = "mlp", moe.gpu_dense_attrs = {activation = #moe.activation<gelu>}}
// CHECK-DAG: func.func private @[[GMLP:__moe_gpu_dense_[0-9]+]]({{.*}}tensor<64x128xbf16>{{.*}}tensor<64x128xbf16>{{.*}}tensor<128x64xbf16>{{.*}}) -> tensor<6x64xbf16> attributes {moe.gpu_dense = "mlp", moe.gpu_dense_attrs = {activation = #moe.activation<silu>}}
// CHECK-LABEL: func.func @gpt_block(
// CHECK-NOT: linalg.generic
// CHECK-NOT: tensor.empty
// CHECK: %[[P:.*]] = call @[[POS]](%arg1, %arg3)
// CHECK: %[[N:.*]] = call @[[LN]]({{.*}}, %arg4, %arg5)
// CHECK: %[[M:.*]] = call @[[MLP]](%[[N]], %arg6, %arg7)
// CHECK: call @[[GMLP]](%[[M]], %arg8, %arg9, %arg10)
// CHECK: moe.mlp
// CHECK: moe.layer_norm
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
func.func @gpt_block(%ids: tensor<6xi32>, %pos: tensor<2xi32>, %wte: tensor<64x64xbf16>, %wpe: tensor<64x64xbf16>, %lnw: tensor<64xbf16>, %lnb: tensor<64xbf16>, %up: tensor<64x256xbf16>, %down: tensor<256x64xbf16>, %gup: tensor<64x128xbf16>, %ggate: tensor<64x128xbf16>, %gdown: tensor<128x64xbf16>, %oddup: tensor<64x36xbf16>, %odddown: tensor<36x64xbf16>, %f: tensor<6x64xf32>, %fw: tensor<64xf32>) -> (tensor<6x64xbf16>, tensor<6x64xf32>) {
  %x = moe.embedding %ids : tensor<6xi32> table(%wte : tensor<64x64xbf16>) -> tensor<6x64xbf16>
  %e = tensor.empty() : tensor<2x3xi32>
  %pid = linalg.generic {indexing_maps = [#row, #id], iterator_types = ["parallel", "parallel"]} ins(%pos : tensor<2xi32>) outs(%e : tensor<2x3xi32>) {
  ^bb0(%p: i32, %o: i32):
    %i = linalg.index 1 : index
    %t = arith.index_cast %i : index to i32
    %s = arith.addi %p, %t : i32
    linalg.yield %s : i32
  } -> tensor<2x3xi32>
  %flat = tensor.collapse_shape %pid [[0, 1]] : tensor<2x3xi32> into tensor<6xi32>
  %pe = moe.embedding %flat : tensor<6xi32> table(%wpe : tensor<64x64xbf16>) -> tensor<6x64xbf16>
  %n = moe.layer_norm %pe : tensor<6x64xbf16> weight(%lnw : tensor<64xbf16>) bias(%lnb : tensor<64xbf16>) {epsilon = 1.0e-05 : f64} -> tensor<6x64xbf16>
  %m = moe.mlp %n : tensor<6x64xbf16> up(%up : tensor<64x256xbf16>) down(%down : tensor<256x64xbf16>) {activation = #moe.activation<gelu>} -> tensor<6x64xbf16>
  %g = moe.mlp %m : tensor<6x64xbf16> up(%gup : tensor<64x128xbf16>) gate(%ggate : tensor<64x128xbf16>) down(%gdown : tensor<128x64xbf16>) {activation = #moe.activation<silu>} -> tensor<6x64xbf16>
  %odd = moe.mlp %g : tensor<6x64xbf16> up(%oddup : tensor<64x36xbf16>) down(%odddown : tensor<36x64xbf16>) {activation = #moe.activation<gelu>} -> tensor<6x64xbf16>
  %fn = moe.layer_norm %f : tensor<6x64xf32> weight(%fw : tensor<64xf32>) {epsilon = 1.0e-05 : f64} -> tensor<6x64xf32>
  return %odd, %fn : tensor<6x64xbf16>, tensor<6x64xf32>
}

// -----

// DeepSeek's latent attention: a helper of kind "mla_attention" with the
// op's attributes (its operand segments among them); where a projection's
// width is not a multiple of 8 (here kv_a's 16 + 4) it stays on the host.
// REPORT: remark: 'moe.mla_attention' runs on the GPU
// REPORT: remark: 'moe.mla_attention' runs on the host: the GPU latent attention needs projection sizes divisible by 8
// CHECK-LABEL: func.func private @__moe_gpu_dense_0(
// CHECK-SAME: -> (tensor<2x64xbf16>, tensor<32x4x24xbf16>, tensor<32x4x16xbf16>) attributes {moe.gpu_dense = "mla_attention", moe.gpu_dense_attrs = {epsilon = {{.*}}, interleaved, nope_dim = 16 : i64, num_heads = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1>, rope_attention_factor = 1.000000e+00 : f64, rope_dim = 8 : i64, rope_theta = 1.000000e+04 : f64, v_dim = 16 : i64}}
// CHECK-LABEL: func.func @mla(
// CHECK: call @__moe_gpu_dense_0(%arg0, %arg3, %arg4, %arg5, %arg6, %arg7, %arg8, %arg9, %arg1, %arg2, %arg10)
// CHECK: moe.mla_attention
func.func @mla(%x: tensor<2x64xbf16>, %kc: tensor<32x4x24xbf16>, %vc: tensor<32x4x16xbf16>, %qa: tensor<64x32xbf16>, %qan: tensor<32xbf16>, %qb: tensor<32x96xbf16>, %kva: tensor<64x32xbf16>, %kvan: tensor<24xbf16>, %kvb: tensor<24x128xbf16>, %wo: tensor<64x64xbf16>, %pos: tensor<1xi32>, %kc2: tensor<32x4x12xbf16>, %vc2: tensor<32x4x8xbf16>, %kva2: tensor<64x20xbf16>, %kvan2: tensor<16xbf16>, %kvb2: tensor<16x64xbf16>, %qb2: tensor<64x48xbf16>, %wo2: tensor<32x64xbf16>) -> (tensor<2x64xbf16>, tensor<32x4x24xbf16>, tensor<32x4x16xbf16>, tensor<2x64xbf16>) {
  %y, %k, %v = moe.mla_attention %x : tensor<2x64xbf16> q_a(%qa : tensor<64x32xbf16>) q_a_norm(%qan : tensor<32xbf16>) q_b(%qb : tensor<32x96xbf16>) kv_a(%kva : tensor<64x32xbf16>) kv_a_norm(%kvan : tensor<24xbf16>) kv_b(%kvb : tensor<24x128xbf16>) o(%wo : tensor<64x64xbf16>) cache(%kc : tensor<32x4x24xbf16>, %vc : tensor<32x4x16xbf16>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, nope_dim = 16 : i64, rope_dim = 8 : i64, v_dim = 16 : i64, interleaved} -> tensor<2x64xbf16>, tensor<32x4x24xbf16>, tensor<32x4x16xbf16>
  %y2, %k2, %v2 = moe.mla_attention %x : tensor<2x64xbf16> q_b(%qb2 : tensor<64x48xbf16>) kv_a(%kva2 : tensor<64x20xbf16>) kv_a_norm(%kvan2 : tensor<16xbf16>) kv_b(%kvb2 : tensor<16x64xbf16>) o(%wo2 : tensor<32x64xbf16>) cache(%kc2 : tensor<32x4x12xbf16>, %vc2 : tensor<32x4x8xbf16>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, nope_dim = 8 : i64, rope_dim = 4 : i64, v_dim = 8 : i64} -> tensor<2x64xbf16>, tensor<32x4x12xbf16>, tensor<32x4x8xbf16>
  return %y, %k, %v, %y2 : tensor<2x64xbf16>, tensor<32x4x24xbf16>, tensor<32x4x16xbf16>, tensor<2x64xbf16>
}
