// The dense ops round-trip, and their verifiers name what is wrong.
// RUN: moe-opt %s --split-input-file | moe-opt --split-input-file | FileCheck %s
// RUN: moe-opt %s --split-input-file --mlir-print-op-generic | moe-opt | FileCheck %s --check-prefix=LOWER-NOT-NEEDED
// RUN: moe-opt %s --split-input-file --convert-moe-to-linalg | FileCheck %s --check-prefix=LINALG

// CHECK-LABEL: func.func @dense
// CHECK: moe.embedding %{{.*}} : tensor<4xi32> table(%{{.*}} : tensor<10x8xbf16>) -> tensor<4x8xbf16>
// CHECK: moe.rms_norm %{{.*}} : tensor<4x8xbf16> weight(%{{.*}} : tensor<8xbf16>) {epsilon = 1.000000e-05 : f64} -> tensor<4x8xbf16>
// CHECK: moe.layer_norm %{{.*}} : tensor<4x8xbf16> weight(%{{.*}} : tensor<8xbf16>) bias(%{{.*}} : tensor<8xbf16>) -> tensor<4x8xbf16>
// LOWER-NOT-NEEDED: moe.layer_norm
// LINALG-LABEL: func.func @dense
// LINALG-NOT: moe.
// LINALG: tensor.extract
// LINALG: math.rsqrt
// LINALG: math.rsqrt
func.func @dense(%ids: tensor<4xi32>, %e: tensor<10x8xbf16>, %w: tensor<8xbf16>, %b: tensor<8xbf16>) -> (tensor<4x8xbf16>, tensor<4x8xbf16>) {
  %h = moe.embedding %ids : tensor<4xi32> table(%e : tensor<10x8xbf16>) -> tensor<4x8xbf16>
  %y = moe.rms_norm %h : tensor<4x8xbf16> weight(%w : tensor<8xbf16>) {epsilon = 1.0e-5 : f64} -> tensor<4x8xbf16>
  %z = moe.layer_norm %h : tensor<4x8xbf16> weight(%w : tensor<8xbf16>) bias(%b : tensor<8xbf16>) -> tensor<4x8xbf16>
  return %y, %z : tensor<4x8xbf16>, tensor<4x8xbf16>
}

// -----

// CHECK-LABEL: func.func @attention
// CHECK: moe.attention %{{.*}} : tensor<3x16xbf16> q(%{{.*}} : tensor<16x16xbf16>) k(%{{.*}} : tensor<16x8xbf16>) v(%{{.*}} : tensor<16x8xbf16>) o(%{{.*}} : tensor<16x16xbf16>) cache(%{{.*}} : tensor<8x2x4xbf16>, %{{.*}} : tensor<8x2x4xbf16>) position(%{{.*}} : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64, rope_theta = 1.000000e+06 : f64}
// LINALG-LABEL: func.func @attention
// LINALG-NOT: moe.
// LINALG: math.cos
// LINALG: tensor.insert_slice
// LINALG: math.exp
func.func @attention(%x: tensor<3x16xbf16>, %wq: tensor<16x16xbf16>, %wk: tensor<16x8xbf16>, %wv: tensor<16x8xbf16>, %wo: tensor<16x16xbf16>, %kc: tensor<8x2x4xbf16>, %vc: tensor<8x2x4xbf16>, %pos: tensor<1xi32>) -> tensor<3x16xbf16> {
  %y, %k, %v = moe.attention %x : tensor<3x16xbf16> q(%wq : tensor<16x16xbf16>) k(%wk : tensor<16x8xbf16>) v(%wv : tensor<16x8xbf16>) o(%wo : tensor<16x16xbf16>) cache(%kc : tensor<8x2x4xbf16>, %vc : tensor<8x2x4xbf16>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64, rope_theta = 1.0e6 : f64} -> tensor<3x16xbf16>, tensor<8x2x4xbf16>, tensor<8x2x4xbf16>
  return %y : tensor<3x16xbf16>
}

// -----

// DeepSeek-V3's multi-head latent attention: query rank 12, key/value rank
// 8, 4 + 2 query/key and 4 value dimensions per head.
// CHECK-LABEL: func.func @mla
// CHECK: moe.mla_attention %{{.*}} : tensor<3x16xbf16> q_a(%{{.*}} : tensor<16x12xbf16>) q_a_norm(%{{.*}} : tensor<12xbf16>) q_b(%{{.*}} : tensor<12x12xbf16>) kv_a(%{{.*}} : tensor<16x10xbf16>) kv_a_norm(%{{.*}} : tensor<8xbf16>) kv_b(%{{.*}} : tensor<8x16xbf16>) o(%{{.*}} : tensor<8x16xbf16>) cache(%{{.*}} : tensor<8x2x6xbf16>, %{{.*}} : tensor<8x2x4xbf16>) position(%{{.*}} : tensor<1xi32>) {interleaved, nope_dim = 4 : i64, num_heads = 2 : i64, rope_dim = 2 : i64, v_dim = 4 : i64}
// LINALG-LABEL: func.func @mla
// LINALG-NOT: moe.
// LINALG: math.rsqrt
// LINALG: math.cos
// LINALG: tensor.insert_slice
// LINALG: math.exp
func.func @mla(%x: tensor<3x16xbf16>, %qa: tensor<16x12xbf16>, %qan: tensor<12xbf16>, %qb: tensor<12x12xbf16>, %kva: tensor<16x10xbf16>, %kvan: tensor<8xbf16>, %kvb: tensor<8x16xbf16>, %wo: tensor<8x16xbf16>, %kc: tensor<8x2x6xbf16>, %vc: tensor<8x2x4xbf16>, %pos: tensor<1xi32>) -> tensor<3x16xbf16> {
  %y, %k, %v = moe.mla_attention %x : tensor<3x16xbf16> q_a(%qa : tensor<16x12xbf16>) q_a_norm(%qan : tensor<12xbf16>) q_b(%qb : tensor<12x12xbf16>) kv_a(%kva : tensor<16x10xbf16>) kv_a_norm(%kvan : tensor<8xbf16>) kv_b(%kvb : tensor<8x16xbf16>) o(%wo : tensor<8x16xbf16>) cache(%kc : tensor<8x2x6xbf16>, %vc : tensor<8x2x4xbf16>) position(%pos : tensor<1xi32>) {num_heads = 2 : i64, nope_dim = 4 : i64, rope_dim = 2 : i64, v_dim = 4 : i64, interleaved} -> tensor<3x16xbf16>, tensor<8x2x6xbf16>, tensor<8x2x4xbf16>
  return %y : tensor<3x16xbf16>
}

// -----

// T5 attention (encoder-decoder models): a relative-position bias table,
// no causal mask, padded keys hidden, unscaled scores; its bucket table is
// a constant of the lowering.
// CHECK-LABEL: func.func @t5_attention
// CHECK: moe.attention {{.*}} position(%{{.*}} : tensor<1xi32>) position_bias(%{{.*}} : tensor<8x4xf32>) key_length(%{{.*}} : tensor<1xi32>) {bidirectional, num_heads = 4 : i64, num_kv_heads = 4 : i64, relative_max_distance = 16 : i64
// CHECK-SAME: scale = 1.000000e+00 : f64
// LINALG-LABEL: func.func @t5_attention
// LINALG-NOT: moe.
// LINALG: arith.constant dense<[{{.*}}]> : tensor<15xi32>
// LINALG: math.exp
func.func @t5_attention(%x: tensor<8x32xf32>, %w: tensor<32x32xf32>, %kc: tensor<8x4x8xf32>, %vc: tensor<8x4x8xf32>, %pos: tensor<1xi32>, %bias: tensor<8x4xf32>, %len: tensor<1xi32>) -> tensor<8x32xf32> {
  %y, %k, %v = moe.attention %x : tensor<8x32xf32> q(%w : tensor<32x32xf32>) k(%w : tensor<32x32xf32>) v(%w : tensor<32x32xf32>) o(%w : tensor<32x32xf32>) cache(%kc : tensor<8x4x8xf32>, %vc : tensor<8x4x8xf32>) position(%pos : tensor<1xi32>) position_bias(%bias : tensor<8x4xf32>) key_length(%len : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 4 : i64, bidirectional, relative_max_distance = 16 : i64, scale = 1.0 : f64, rope_inv_freq = array<f32: 0.0, 0.0, 0.0, 0.0>} -> tensor<8x32xf32>, tensor<8x4x8xf32>, tensor<8x4x8xf32>
  return %y : tensor<8x32xf32>
}

// -----

// CHECK-LABEL: func.func @cross_attention
// CHECK: moe.cross_attention %{{.*}} : tensor<2x32xbf16> q(%{{.*}} : tensor<32x32xbf16>) o(%{{.*}} : tensor<32x32xbf16>) memory(%{{.*}} : tensor<16x4x8xbf16>, %{{.*}} : tensor<16x4x8xbf16>) length(%{{.*}} : tensor<2xi32>) {num_heads = 4 : i64} -> tensor<2x32xbf16>
// LINALG-LABEL: func.func @cross_attention
// LINALG-NOT: moe.
// LINALG: math.exp
// LINALG: math.exp
func.func @cross_attention(%x: tensor<2x32xbf16>, %wq: tensor<32x32xbf16>, %wo: tensor<32x32xbf16>, %k: tensor<16x4x8xbf16>, %v: tensor<16x4x8xbf16>, %len: tensor<2xi32>) -> tensor<2x32xbf16> {
  %y = moe.cross_attention %x : tensor<2x32xbf16> q(%wq : tensor<32x32xbf16>) o(%wo : tensor<32x32xbf16>) memory(%k : tensor<16x4x8xbf16>, %v : tensor<16x4x8xbf16>) length(%len : tensor<2xi32>) {num_heads = 4 : i64} -> tensor<2x32xbf16>
  return %y : tensor<2x32xbf16>
}
