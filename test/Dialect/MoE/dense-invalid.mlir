// One case per message of the dense ops' verifiers.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @embedding_width(%ids: tensor<4xi32>, %e: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.embedding' op hidden size d mismatch: table has 8 but result has 16}}
  %h = moe.embedding %ids : tensor<4xi32> table(%e : tensor<10x8xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @embedding_tokens(%ids: tensor<4xi32>, %e: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.embedding' op token count T mismatch: ids has 4 but result has 5}}
  %h = moe.embedding %ids : tensor<4xi32> table(%e : tensor<10x8xf32>) -> tensor<5x8xf32>
  return
}

// -----

func.func @norm_width(%x: tensor<4x8xf32>, %w: tensor<16xf32>) {
  // expected-error @+1 {{'moe.rms_norm' op hidden size d mismatch: input has 8 but weight has 16}}
  %y = moe.rms_norm %x : tensor<4x8xf32> weight(%w : tensor<16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @norm_epsilon(%x: tensor<4x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'moe.rms_norm' op epsilon must be positive, got 0}}
  %y = moe.rms_norm %x : tensor<4x8xf32> weight(%w : tensor<8xf32>) {epsilon = 0.0 : f64} -> tensor<4x8xf32>
  return
}

// -----

func.func @norm_result(%x: tensor<4x8xf32>, %w: tensor<8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op result type 'tensor<4x8xbf16>' must equal the input type 'tensor<4x8xf32>'}}
  %y = moe.layer_norm %x : tensor<4x8xf32> weight(%w : tensor<8xf32>) bias(%b : tensor<8xf32>) -> tensor<4x8xbf16>
  return
}

// -----

func.func @norm_bias(%x: tensor<4x8xf32>, %w: tensor<8xf32>, %b: tensor<8xbf16>) {
  // expected-error @+1 {{'moe.layer_norm' op bias element type 'bf16' differs from input's 'f32'}}
  %y = moe.layer_norm %x : tensor<4x8xf32> weight(%w : tensor<8xf32>) bias(%b : tensor<8xbf16>) -> tensor<4x8xf32>
  return
}

// -----

func.func @attention_heads(%x: tensor<3x16xf32>, %wq: tensor<16x12xf32>, %wk: tensor<16x8xf32>, %wv: tensor<16x8xf32>, %wo: tensor<12x16xf32>, %kc: tensor<8x2x4xf32>, %vc: tensor<8x2x4xf32>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op num_heads (3) must be a positive multiple of num_kv_heads (2)}}
  %y, %k, %v = moe.attention %x : tensor<3x16xf32> q(%wq : tensor<16x12xf32>) k(%wk : tensor<16x8xf32>) v(%wv : tensor<16x8xf32>) o(%wo : tensor<12x16xf32>) cache(%kc : tensor<8x2x4xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<1xi32>) {num_heads = 3 : i64, num_kv_heads = 2 : i64} -> tensor<3x16xf32>, tensor<8x2x4xf32>, tensor<8x2x4xf32>
  return
}

// -----

func.func @attention_width(%x: tensor<3x16xf32>, %wq: tensor<16x12xf32>, %wk: tensor<16x8xf32>, %wv: tensor<16x8xf32>, %wo: tensor<12x16xf32>, %kc: tensor<8x2x4xf32>, %vc: tensor<8x2x4xf32>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op query width H*hd mismatch: w_q has 12, expected 16}}
  %y, %k, %v = moe.attention %x : tensor<3x16xf32> q(%wq : tensor<16x12xf32>) k(%wk : tensor<16x8xf32>) v(%wv : tensor<16x8xf32>) o(%wo : tensor<12x16xf32>) cache(%kc : tensor<8x2x4xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64} -> tensor<3x16xf32>, tensor<8x2x4xf32>, tensor<8x2x4xf32>
  return
}

// -----

func.func @attention_odd_head(%x: tensor<3x6xf32>, %wq: tensor<6x6xf32>, %wk: tensor<6x3xf32>, %wv: tensor<6x3xf32>, %wo: tensor<6x6xf32>, %kc: tensor<8x1x3xf32>, %vc: tensor<8x1x3xf32>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op the head size 3 must be even for the rotary embedding}}
  %y, %k, %v = moe.attention %x : tensor<3x6xf32> q(%wq : tensor<6x6xf32>) k(%wk : tensor<6x3xf32>) v(%wv : tensor<6x3xf32>) o(%wo : tensor<6x6xf32>) cache(%kc : tensor<8x1x3xf32>, %vc : tensor<8x1x3xf32>) position(%pos : tensor<1xi32>) {num_heads = 2 : i64, num_kv_heads = 1 : i64} -> tensor<3x6xf32>, tensor<8x1x3xf32>, tensor<8x1x3xf32>
  return
}

// -----

func.func @attention_bias(%x: tensor<3x16xf32>, %wq: tensor<16x16xf32>, %wk: tensor<16x8xf32>, %wv: tensor<16x8xf32>, %wo: tensor<16x16xf32>, %qb: tensor<8xf32>, %kc: tensor<8x2x4xf32>, %vc: tensor<8x2x4xf32>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op q_bias size mismatch: q_bias has 8, expected 16}}
  %y, %k, %v = moe.attention %x : tensor<3x16xf32> q(%wq : tensor<16x16xf32>) k(%wk : tensor<16x8xf32>) v(%wv : tensor<16x8xf32>) o(%wo : tensor<16x16xf32>) q_bias(%qb : tensor<8xf32>) cache(%kc : tensor<8x2x4xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64} -> tensor<3x16xf32>, tensor<8x2x4xf32>, tensor<8x2x4xf32>
  return
}

// -----

func.func @attention_norms(%x: tensor<3x16xf32>, %wq: tensor<16x16xf32>, %wk: tensor<16x8xf32>, %wv: tensor<16x8xf32>, %wo: tensor<16x16xf32>, %qn: tensor<4xf32>, %kc: tensor<8x2x4xf32>, %vc: tensor<8x2x4xf32>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op q_norm and k_norm come together}}
  %y, %k, %v = moe.attention %x : tensor<3x16xf32> q(%wq : tensor<16x16xf32>) k(%wk : tensor<16x8xf32>) v(%wv : tensor<16x8xf32>) o(%wo : tensor<16x16xf32>) q_norm(%qn : tensor<4xf32>) cache(%kc : tensor<8x2x4xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64} -> tensor<3x16xf32>, tensor<8x2x4xf32>, tensor<8x2x4xf32>
  return
}

// -----

func.func @mla_value_cache(%x: tensor<3x16xf32>, %qb: tensor<16x12xf32>, %kva: tensor<16x10xf32>, %kvan: tensor<8xf32>, %kvb: tensor<8x16xf32>, %wo: tensor<8x16xf32>, %kc: tensor<8x2x6xf32>, %vc: tensor<8x2x6xf32>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'moe.mla_attention' op value cache width v mismatch: value_cache_in has 6, expected 4}}
  %y, %k, %v = moe.mla_attention %x : tensor<3x16xf32> q_b(%qb : tensor<16x12xf32>) kv_a(%kva : tensor<16x10xf32>) kv_a_norm(%kvan : tensor<8xf32>) kv_b(%kvb : tensor<8x16xf32>) o(%wo : tensor<8x16xf32>) cache(%kc : tensor<8x2x6xf32>, %vc : tensor<8x2x6xf32>) position(%pos : tensor<1xi32>) {num_heads = 2 : i64, nope_dim = 4 : i64, rope_dim = 2 : i64, v_dim = 4 : i64} -> tensor<3x16xf32>, tensor<8x2x6xf32>, tensor<8x2x6xf32>
  return
}

// -----

func.func @mla_batch_rows(%x: tensor<3x16xf32>, %qb: tensor<16x12xf32>, %kva: tensor<16x10xf32>, %kvan: tensor<8xf32>, %kvb: tensor<8x16xf32>, %wo: tensor<8x16xf32>, %kc: tensor<8x2x6xf32>, %vc: tensor<8x2x4xf32>, %pos: tensor<2xi32>) {
  // expected-error @+1 {{'moe.mla_attention' op input rows (3) must split evenly into the 2 sequences of the position}}
  %y, %k, %v = moe.mla_attention %x : tensor<3x16xf32> q_b(%qb : tensor<16x12xf32>) kv_a(%kva : tensor<16x10xf32>) kv_a_norm(%kvan : tensor<8xf32>) kv_b(%kvb : tensor<8x16xf32>) o(%wo : tensor<8x16xf32>) cache(%kc : tensor<8x2x6xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<2xi32>) {num_heads = 2 : i64, nope_dim = 4 : i64, rope_dim = 2 : i64, v_dim = 4 : i64} -> tensor<3x16xf32>, tensor<8x2x6xf32>, tensor<8x2x4xf32>
  return
}

// -----

func.func @mla_q_norm(%x: tensor<3x16xf32>, %qa: tensor<16x12xf32>, %qb: tensor<12x12xf32>, %kva: tensor<16x10xf32>, %kvan: tensor<8xf32>, %kvb: tensor<8x16xf32>, %wo: tensor<8x16xf32>, %kc: tensor<8x2x6xf32>, %vc: tensor<8x2x4xf32>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'moe.mla_attention' op q_a and q_a_norm come together}}
  %y, %k, %v = moe.mla_attention %x : tensor<3x16xf32> q_a(%qa : tensor<16x12xf32>) q_b(%qb : tensor<12x12xf32>) kv_a(%kva : tensor<16x10xf32>) kv_a_norm(%kvan : tensor<8xf32>) kv_b(%kvb : tensor<8x16xf32>) o(%wo : tensor<8x16xf32>) cache(%kc : tensor<8x2x6xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<1xi32>) {num_heads = 2 : i64, nope_dim = 4 : i64, rope_dim = 2 : i64, v_dim = 4 : i64} -> tensor<3x16xf32>, tensor<8x2x6xf32>, tensor<8x2x4xf32>
  return
}

// -----

func.func @attention_rope_freqs(%x: tensor<3x16xf32>, %wq: tensor<16x16xf32>, %wk: tensor<16x8xf32>, %wv: tensor<16x8xf32>, %wo: tensor<16x16xf32>, %kc: tensor<8x2x4xf32>, %vc: tensor<8x2x4xf32>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op rope_inv_freq needs 2 inverse frequencies (one per rotated pair), got 3}}
  %y, %k, %v = moe.attention %x : tensor<3x16xf32> q(%wq : tensor<16x16xf32>) k(%wk : tensor<16x8xf32>) v(%wv : tensor<16x8xf32>) o(%wo : tensor<16x16xf32>) cache(%kc : tensor<8x2x4xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64, rope_inv_freq = array<f32: 1.0, 0.5, 0.25>} -> tensor<3x16xf32>, tensor<8x2x4xf32>, tensor<8x2x4xf32>
  return
}

// -----

func.func @mla_rope_factor(%x: tensor<3x16xf32>, %qb: tensor<16x12xf32>, %kva: tensor<16x10xf32>, %kvan: tensor<8xf32>, %kvb: tensor<8x16xf32>, %wo: tensor<8x16xf32>, %kc: tensor<8x2x6xf32>, %vc: tensor<8x2x4xf32>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'moe.mla_attention' op rope_attention_factor must be positive, got 0}}
  %y, %k, %v = moe.mla_attention %x : tensor<3x16xf32> q_b(%qb : tensor<16x12xf32>) kv_a(%kva : tensor<16x10xf32>) kv_a_norm(%kvan : tensor<8xf32>) kv_b(%kvb : tensor<8x16xf32>) o(%wo : tensor<8x16xf32>) cache(%kc : tensor<8x2x6xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<1xi32>) {num_heads = 2 : i64, nope_dim = 4 : i64, rope_dim = 2 : i64, v_dim = 4 : i64, rope_attention_factor = 0.0 : f64} -> tensor<3x16xf32>, tensor<8x2x6xf32>, tensor<8x2x4xf32>
  return
}

// -----

func.func @attention_batch_rows(%x: tensor<3x16xf32>, %wq: tensor<16x16xf32>, %wk: tensor<16x8xf32>, %wv: tensor<16x8xf32>, %wo: tensor<16x16xf32>, %kc: tensor<8x2x4xf32>, %vc: tensor<8x2x4xf32>, %pos: tensor<2xi32>) {
  // expected-error @+1 {{'moe.attention' op input rows (3) must split evenly into the 2 sequences of the position}}
  %y, %k, %v = moe.attention %x : tensor<3x16xf32> q(%wq : tensor<16x16xf32>) k(%wk : tensor<16x8xf32>) v(%wv : tensor<16x8xf32>) o(%wo : tensor<16x16xf32>) cache(%kc : tensor<8x2x4xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<2xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64} -> tensor<3x16xf32>, tensor<8x2x4xf32>, tensor<8x2x4xf32>
  return
}

// -----

func.func @attention_batch_cache(%x: tensor<6x16xf32>, %wq: tensor<16x16xf32>, %wk: tensor<16x8xf32>, %wv: tensor<16x8xf32>, %wo: tensor<16x16xf32>, %kc: tensor<8x2x4xf32>, %vc: tensor<8x2x4xf32>, %pos: tensor<3xi32>) {
  // expected-error @+1 {{'moe.attention' op cache rows (8) must split evenly into the 3 sequences of the position}}
  %y, %k, %v = moe.attention %x : tensor<6x16xf32> q(%wq : tensor<16x16xf32>) k(%wk : tensor<16x8xf32>) v(%wv : tensor<16x8xf32>) o(%wo : tensor<16x16xf32>) cache(%kc : tensor<8x2x4xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<3xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64} -> tensor<6x16xf32>, tensor<8x2x4xf32>, tensor<8x2x4xf32>
  return
}

// -----

func.func @attention_no_sequence(%x: tensor<6x16xf32>, %wq: tensor<16x16xf32>, %wk: tensor<16x8xf32>, %wv: tensor<16x8xf32>, %wo: tensor<16x16xf32>, %kc: tensor<8x2x4xf32>, %vc: tensor<8x2x4xf32>, %pos: tensor<0xi32>) {
  // expected-error @+1 {{'moe.attention' op position needs one entry per sequence, got 'tensor<0xi32>'}}
  %y, %k, %v = moe.attention %x : tensor<6x16xf32> q(%wq : tensor<16x16xf32>) k(%wk : tensor<16x8xf32>) v(%wv : tensor<16x8xf32>) o(%wo : tensor<16x16xf32>) cache(%kc : tensor<8x2x4xf32>, %vc : tensor<8x2x4xf32>) position(%pos : tensor<0xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64} -> tensor<6x16xf32>, tensor<8x2x4xf32>, tensor<8x2x4xf32>
  return
}

// -----

func.func @t5_bias_heads(%x: tensor<8x32xf32>, %w: tensor<32x32xf32>, %kc: tensor<8x4x8xf32>, %pos: tensor<1xi32>, %bias: tensor<8x3xf32>) {
  // expected-error @+1 {{'moe.attention' op position bias heads mismatch: position_bias has 3, expected 4}}
  %y, %k, %v = moe.attention %x : tensor<8x32xf32> q(%w : tensor<32x32xf32>) k(%w : tensor<32x32xf32>) v(%w : tensor<32x32xf32>) o(%w : tensor<32x32xf32>) cache(%kc : tensor<8x4x8xf32>, %kc : tensor<8x4x8xf32>) position(%pos : tensor<1xi32>) position_bias(%bias : tensor<8x3xf32>) {num_heads = 4 : i64, num_kv_heads = 4 : i64, relative_max_distance = 16 : i64} -> tensor<8x32xf32>, tensor<8x4x8xf32>, tensor<8x4x8xf32>
  return
}

// -----

func.func @t5_max_distance(%x: tensor<8x32xf32>, %w: tensor<32x32xf32>, %kc: tensor<8x4x8xf32>, %pos: tensor<1xi32>, %bias: tensor<8x4xf32>) {
  // expected-error @+1 {{'moe.attention' op position_bias needs relative_max_distance above its 2 exact buckets}}
  %y, %k, %v = moe.attention %x : tensor<8x32xf32> q(%w : tensor<32x32xf32>) k(%w : tensor<32x32xf32>) v(%w : tensor<32x32xf32>) o(%w : tensor<32x32xf32>) cache(%kc : tensor<8x4x8xf32>, %kc : tensor<8x4x8xf32>) position(%pos : tensor<1xi32>) position_bias(%bias : tensor<8x4xf32>) {num_heads = 4 : i64, num_kv_heads = 4 : i64, bidirectional} -> tensor<8x32xf32>, tensor<8x4x8xf32>, tensor<8x4x8xf32>
  return
}

// -----

func.func @t5_distance_without_bias(%x: tensor<8x32xf32>, %w: tensor<32x32xf32>, %kc: tensor<8x4x8xf32>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op relative_max_distance needs a position_bias}}
  %y, %k, %v = moe.attention %x : tensor<8x32xf32> q(%w : tensor<32x32xf32>) k(%w : tensor<32x32xf32>) v(%w : tensor<32x32xf32>) o(%w : tensor<32x32xf32>) cache(%kc : tensor<8x4x8xf32>, %kc : tensor<8x4x8xf32>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 4 : i64, relative_max_distance = 16 : i64} -> tensor<8x32xf32>, tensor<8x4x8xf32>, tensor<8x4x8xf32>
  return
}

// -----

func.func @t5_key_length(%x: tensor<8x32xf32>, %w: tensor<32x32xf32>, %kc: tensor<8x4x8xf32>, %pos: tensor<1xi32>, %len: tensor<2xi32>) {
  // expected-error @+1 {{'moe.attention' op key_length size mismatch: key_length has 2, expected 1}}
  %y, %k, %v = moe.attention %x : tensor<8x32xf32> q(%w : tensor<32x32xf32>) k(%w : tensor<32x32xf32>) v(%w : tensor<32x32xf32>) o(%w : tensor<32x32xf32>) cache(%kc : tensor<8x4x8xf32>, %kc : tensor<8x4x8xf32>) position(%pos : tensor<1xi32>) key_length(%len : tensor<2xi32>) {num_heads = 4 : i64, num_kv_heads = 4 : i64} -> tensor<8x32xf32>, tensor<8x4x8xf32>, tensor<8x4x8xf32>
  return
}

// -----

func.func @t5_scale(%x: tensor<8x32xf32>, %w: tensor<32x32xf32>, %kc: tensor<8x4x8xf32>, %pos: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op scale must be positive and finite, got 0}}
  %y, %k, %v = moe.attention %x : tensor<8x32xf32> q(%w : tensor<32x32xf32>) k(%w : tensor<32x32xf32>) v(%w : tensor<32x32xf32>) o(%w : tensor<32x32xf32>) cache(%kc : tensor<8x4x8xf32>, %kc : tensor<8x4x8xf32>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 4 : i64, scale = 0.0 : f64} -> tensor<8x32xf32>, tensor<8x4x8xf32>, tensor<8x4x8xf32>
  return
}

// -----

func.func @cross_memory_heads(%x: tensor<2x32xf32>, %w: tensor<32x32xf32>, %k: tensor<16x2x16xf32>, %len: tensor<1xi32>) {
  // expected-error @+1 {{'moe.cross_attention' op memory heads mismatch: memory_key has 2, expected 4}}
  %y = moe.cross_attention %x : tensor<2x32xf32> q(%w : tensor<32x32xf32>) o(%w : tensor<32x32xf32>) memory(%k : tensor<16x2x16xf32>, %k : tensor<16x2x16xf32>) length(%len : tensor<1xi32>) {num_heads = 4 : i64} -> tensor<2x32xf32>
  return
}

// -----

func.func @cross_batches(%x: tensor<3x32xf32>, %w: tensor<32x32xf32>, %k: tensor<16x4x8xf32>, %len: tensor<2xi32>) {
  // expected-error @+1 {{'moe.cross_attention' op input rows (3) and memory rows (16) must split evenly into the 2 sequences of the length}}
  %y = moe.cross_attention %x : tensor<3x32xf32> q(%w : tensor<32x32xf32>) o(%w : tensor<32x32xf32>) memory(%k : tensor<16x4x8xf32>, %k : tensor<16x4x8xf32>) length(%len : tensor<2xi32>) {num_heads = 4 : i64} -> tensor<3x32xf32>
  return
}

// -----

func.func @cross_value_type(%x: tensor<2x32xf32>, %w: tensor<32x32xf32>, %k: tensor<16x4x8xf32>, %v: tensor<8x4x8xf32>, %len: tensor<1xi32>) {
  // expected-error @+1 {{'moe.cross_attention' op memory_value 'tensor<8x4x8xf32>' must have memory_key's type 'tensor<16x4x8xf32>'}}
  %y = moe.cross_attention %x : tensor<2x32xf32> q(%w : tensor<32x32xf32>) o(%w : tensor<32x32xf32>) memory(%k : tensor<16x4x8xf32>, %v : tensor<8x4x8xf32>) length(%len : tensor<1xi32>) {num_heads = 4 : i64} -> tensor<2x32xf32>
  return
}
