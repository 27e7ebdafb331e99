// One case per verifier message.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @router_rank(%x: tensor<16xf32>, %w: tensor<64x8xf32>) {
  // expected-error @+1 {{'moe.router' op input must have rank 2 [T, d], got 'tensor<16xf32>'}}
  %i, %w2 = moe.router %x : tensor<16xf32> weight(%w : tensor<64x8xf32>) {top_k = 2 : i64} -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @router_logits_rank(%x: tensor<4x8x2xf32>) {
  // expected-error @+1 {{'moe.router' op input must have rank 2 [T, E], got 'tensor<4x8x2xf32>'}}
  %i, %w = moe.router %x : tensor<4x8x2xf32> {top_k = 2 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_weight_rank(%x: tensor<4x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{'moe.router' op weight must have rank 2 [d, E], got 'tensor<64xf32>'}}
  %i, %w2 = moe.router %x : tensor<4x64xf32> weight(%w : tensor<64xf32>) {top_k = 2 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_hidden(%x: tensor<4x64xf32>, %w: tensor<32x8xf32>) {
  // expected-error @+1 {{'moe.router' op hidden size d mismatch: input has 64 but weight has 32}}
  %i, %w2 = moe.router %x : tensor<4x64xf32> weight(%w : tensor<32x8xf32>) {top_k = 2 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_dynamic_experts(%x: tensor<4x?xf32>) {
  // expected-error @+1 {{'moe.router' op the number of experts must be static}}
  %i, %w = moe.router %x : tensor<4x?xf32> {top_k = 2 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_k_zero(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op top_k must be at least 1, got 0}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 0 : i64} -> tensor<4x0xi32>, tensor<4x0xf32>
  return
}

// -----

func.func @router_k_negative(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op top_k must be at least 1, got -3}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = -3 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_k_too_big(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op top_k (9) exceeds the number of experts (8)}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 9 : i64} -> tensor<4x9xi32>, tensor<4x9xf32>
  return
}

// -----

func.func @router_after_topk_sigmoid(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op score_after_topk needs score_func softmax, got sigmoid}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64, score_func = #moe.score_func<sigmoid>, score_after_topk} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_scaling(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op scaling must be positive, got 0}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64, scaling = 0.0} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_capacity_zero(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op capacity_factor must be positive, got 0}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64, capacity_factor = 0.0} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_capacity_negative(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op capacity_factor must be positive, got -1.5}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64, capacity_factor = -1.5} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_min_capacity(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op min_capacity must be non-negative, got -4}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64, capacity_factor = 1.0, min_capacity = -4 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_group_alone(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op n_group and topk_group must be given together}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64, n_group = 4 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_group_divides(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op n_group (3) must divide the number of experts (8)}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64, n_group = 3 : i64, topk_group = 1 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_topk_group_range(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op topk_group (5) must be in [1, n_group=4]}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64, n_group = 4 : i64, topk_group = 5 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_group_too_few(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op top_k (3) exceeds the 2 experts of the topk_group=1 selected groups}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 3 : i64, n_group = 4 : i64, topk_group = 1 : i64} -> tensor<4x3xi32>, tensor<4x3xf32>
  return
}

// -----

func.func @router_top2_sum(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op group_score top2_sum needs at least 2 experts per group, got 1}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64, n_group = 8 : i64, topk_group = 4 : i64, group_score = #moe.group_score<top2_sum>} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_bias_rank(%x: tensor<4x8xf32>, %b: tensor<8x1xf32>) {
  // expected-error @+1 {{'moe.router' op bias must have rank 1 [E], got 'tensor<8x1xf32>'}}
  %i, %w = moe.router %x : tensor<4x8xf32> bias(%b : tensor<8x1xf32>) {top_k = 2 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_bias_size(%x: tensor<4x8xf32>, %b: tensor<7xf32>) {
  // expected-error @+1 {{'moe.router' op number of experts E mismatch: bias has 7, expected 8}}
  %i, %w = moe.router %x : tensor<4x8xf32> bias(%b : tensor<7xf32>) {top_k = 2 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_result_rank(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op expert_ids must have rank 2 [T, top_k], got 'tensor<8xi32>'}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64} -> tensor<8xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_result_tokens(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op token count T mismatch: input has 4 but weights has 5}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64} -> tensor<4x2xi32>, tensor<5x2xf32>
  return
}

// -----

func.func @router_result_k(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op top_k mismatch: expert_ids has 3, expected 2}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64} -> tensor<4x3xi32>, tensor<4x3xf32>
  return
}

// -----

func.func @router_ids_type(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{result #0 must be ranked tensor of 32-bit signless integer values, but got 'tensor<4x2xi64>'}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64} -> tensor<4x2xi64>, tensor<4x2xf32>
  return
}

// -----

func.func @router_input_dtype(%x: tensor<4x8xf64>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of bfloat16 type or 16-bit float or 32-bit float values, but got 'tensor<4x8xf64>'}}
  %i, %w = moe.router %x : tensor<4x8xf64> {top_k = 2 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_misspelt_attribute(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op unknown attribute 'renormalise' (known: capacity_factor, drop_policy, group_score, min_capacity, n_group, renormalize, scaling, score_after_topk, score_func, top_k, topk_group)}}
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64, renormalise} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_missing_top_k(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.router' op requires attribute 'top_k'}}
  %i, %w = moe.router %x : tensor<4x8xf32> {topk = 2 : i64} -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @dispatch_rank(%x: tensor<16x64xf32>, %ids: tensor<16xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expert_ids must have rank 2 [T, k], got 'tensor<16xi32>'}}
  %p, %o, %m = moe.dispatch %x : tensor<16x64xf32>, %ids : tensor<16xi32> {num_experts = 8 : i64} -> tensor<16x64xf32>, tensor<9xi32>, tensor<16x1xi32>
  return
}

// -----

func.func @dispatch_experts(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op num_experts must be at least 1, got 0}}
  %p, %o, %m = moe.dispatch %x : tensor<16x64xf32>, %ids : tensor<16x2xi32> {num_experts = 0 : i64} -> tensor<32x64xf32>, tensor<1xi32>, tensor<16x2xi32>
  return
}

// -----

func.func @dispatch_tokens(%x: tensor<16x64xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op token count T mismatch: input has 16 but expert_ids has 8}}
  %p, %o, %m = moe.dispatch %x : tensor<16x64xf32>, %ids : tensor<8x2xi32> {num_experts = 8 : i64} -> tensor<32x64xf32>, tensor<9xi32>, tensor<8x2xi32>
  return
}

// -----

func.func @dispatch_hidden(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op hidden size d mismatch: input has 64 but permuted has 32}}
  %p, %o, %m = moe.dispatch %x : tensor<16x64xf32>, %ids : tensor<16x2xi32> {num_experts = 8 : i64} -> tensor<32x32xf32>, tensor<9xi32>, tensor<16x2xi32>
  return
}

// -----

func.func @dispatch_offsets(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op offsets size E+1 mismatch: offsets has 8, expected 9}}
  %p, %o, %m = moe.dispatch %x : tensor<16x64xf32>, %ids : tensor<16x2xi32> {num_experts = 8 : i64} -> tensor<32x64xf32>, tensor<8xi32>, tensor<16x2xi32>
  return
}

// -----

func.func @dispatch_dtype(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op permuted element type 'bf16' differs from input's 'f32'}}
  %p, %o, %m = moe.dispatch %x : tensor<16x64xf32>, %ids : tensor<16x2xi32> {num_experts = 8 : i64} -> tensor<32x64xbf16>, tensor<9xi32>, tensor<16x2xi32>
  return
}

// -----

func.func @dispatch_mapping(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op mapping must have the shape of expert_ids 'tensor<16x2xi32>', got 'tensor<16x1xi32>'}}
  %p, %o, %m = moe.dispatch %x : tensor<16x64xf32>, %ids : tensor<16x2xi32> {num_experts = 8 : i64} -> tensor<32x64xf32>, tensor<9xi32>, tensor<16x1xi32>
  return
}

// -----

func.func @dispatch_slots(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op slot count T*k mismatch: permuted has 16, expected 32}}
  %p, %o, %m = moe.dispatch %x : tensor<16x64xf32>, %ids : tensor<16x2xi32> {num_experts = 8 : i64} -> tensor<16x64xf32>, tensor<9xi32>, tensor<16x2xi32>
  return
}

// -----

func.func @experts_up_rank(%p: tensor<32x64xf32>, %off: tensor<9xi32>, %wu: tensor<64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.experts' op w_up must have rank 3 [E, d, f], got 'tensor<64x128xf32>'}}
  %y = moe.experts %p : tensor<32x64xf32> offsets(%off : tensor<9xi32>) up(%wu : tensor<64x128xf32>) down(%wd : tensor<8x128x64xf32>) {activation = #moe.activation<relu>} -> tensor<32x64xf32>
  return
}

// -----

func.func @experts_hidden(%p: tensor<32x64xf32>, %off: tensor<9xi32>, %wu: tensor<8x32x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.experts' op hidden size d mismatch: input has 64 but w_up has 32}}
  %y = moe.experts %p : tensor<32x64xf32> offsets(%off : tensor<9xi32>) up(%wu : tensor<8x32x128xf32>) down(%wd : tensor<8x128x64xf32>) {activation = #moe.activation<relu>} -> tensor<32x64xf32>
  return
}

// -----

func.func @experts_down_hidden(%p: tensor<32x64xf32>, %off: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x32xf32>) {
  // expected-error @+1 {{'moe.experts' op hidden size d mismatch: input has 64 but w_down has 32}}
  %y = moe.experts %p : tensor<32x64xf32> offsets(%off : tensor<9xi32>) up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x32xf32>) {activation = #moe.activation<relu>} -> tensor<32x64xf32>
  return
}

// -----

func.func @experts_ffn(%p: tensor<32x64xf32>, %off: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x96x64xf32>) {
  // expected-error @+1 {{'moe.experts' op ffn size f mismatch: w_up has 128 but w_down has 96}}
  %y = moe.experts %p : tensor<32x64xf32> offsets(%off : tensor<9xi32>) up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x96x64xf32>) {activation = #moe.activation<relu>} -> tensor<32x64xf32>
  return
}

// -----

func.func @experts_count(%p: tensor<32x64xf32>, %off: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<4x128x64xf32>) {
  // expected-error @+1 {{'moe.experts' op number of experts E mismatch: w_up has 8 but w_down has 4}}
  %y = moe.experts %p : tensor<32x64xf32> offsets(%off : tensor<9xi32>) up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<4x128x64xf32>) {activation = #moe.activation<relu>} -> tensor<32x64xf32>
  return
}

// -----

func.func @experts_gate_shape(%p: tensor<32x64xf32>, %off: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x64xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.experts' op w_gate must have the shape of w_up 'tensor<8x64x128xf32>', got 'tensor<8x64x64xf32>'}}
  %y = moe.experts %p : tensor<32x64xf32> offsets(%off : tensor<9xi32>) up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x64xf32>) down(%wd : tensor<8x128x64xf32>) {activation = #moe.activation<silu>} -> tensor<32x64xf32>
  return
}

// -----

func.func @experts_gate_dtype(%p: tensor<32x64xf32>, %off: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf16>, %wd: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.experts' op w_gate element type 'f16' differs from input's 'f32'}}
  %y = moe.experts %p : tensor<32x64xf32> offsets(%off : tensor<9xi32>) up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf16>) down(%wd : tensor<8x128x64xf32>) {activation = #moe.activation<silu>} -> tensor<32x64xf32>
  return
}

// -----

func.func @experts_offsets(%p: tensor<32x64xf32>, %off: tensor<8xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.experts' op offsets size E+1 mismatch: offsets has 8, expected 9}}
  %y = moe.experts %p : tensor<32x64xf32> offsets(%off : tensor<8xi32>) up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) {activation = #moe.activation<relu>} -> tensor<32x64xf32>
  return
}

// -----

func.func @experts_result(%p: tensor<32x64xf32>, %off: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.experts' op result type 'tensor<16x64xf32>' must equal the input type 'tensor<32x64xf32>'}}
  %y = moe.experts %p : tensor<32x64xf32> offsets(%off : tensor<9xi32>) up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) {activation = #moe.activation<relu>} -> tensor<16x64xf32>
  return
}

// -----

func.func @experts_unknown_activation(%p: tensor<32x64xf32>, %off: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @+2 {{expected ::mlir::moe::Activation to be one of: relu, gelu, gelu_tanh, silu}}
  // expected-error @+1 {{failed to parse MoE_ActivationAttr parameter 'value'}}
  %y = moe.experts %p : tensor<32x64xf32> offsets(%off : tensor<9xi32>) up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) {activation = #moe.activation<swish>} -> tensor<32x64xf32>
  return
}

// -----

func.func @mlp_rank(%x: tensor<16x64xf32>, %u: tensor<8x64x256xf32>, %d: tensor<256x64xf32>) {
  // expected-error @+1 {{'moe.mlp' op w_up must have rank 2 [d, f], got 'tensor<8x64x256xf32>'}}
  %y = moe.mlp %x : tensor<16x64xf32> up(%u : tensor<8x64x256xf32>) down(%d : tensor<256x64xf32>) {activation = #moe.activation<gelu>} -> tensor<16x64xf32>
  return
}

// -----

func.func @mlp_result(%x: tensor<16x64xf32>, %u: tensor<64x256xf32>, %d: tensor<256x64xf32>) {
  // expected-error @+1 {{'moe.mlp' op result type 'tensor<16x64xbf16>' must equal the input type 'tensor<16x64xf32>'}}
  %y = moe.mlp %x : tensor<16x64xf32> up(%u : tensor<64x256xf32>) down(%d : tensor<256x64xf32>) {activation = #moe.activation<gelu>} -> tensor<16x64xbf16>
  return
}

// -----

func.func @combine_weights(%e: tensor<32x64xf32>, %m: tensor<16x2xi32>, %w: tensor<16x1xf32>) {
  // expected-error @+1 {{'moe.combine' op top_k mismatch: mapping has 2 but weights has 1}}
  %y = moe.combine %e : tensor<32x64xf32> mapping(%m : tensor<16x2xi32>) weights(%w : tensor<16x1xf32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @combine_tokens(%e: tensor<32x64xf32>, %m: tensor<16x2xi32>, %w: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine' op token count T mismatch: mapping has 16 but result has 8}}
  %y = moe.combine %e : tensor<32x64xf32> mapping(%m : tensor<16x2xi32>) weights(%w : tensor<16x2xf32>) -> tensor<8x64xf32>
  return
}

// -----

func.func @combine_hidden(%e: tensor<32x64xf32>, %m: tensor<16x2xi32>, %w: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine' op hidden size d mismatch: input has 64 but result has 32}}
  %y = moe.combine %e : tensor<32x64xf32> mapping(%m : tensor<16x2xi32>) weights(%w : tensor<16x2xf32>) -> tensor<16x32xf32>
  return
}

// -----

func.func @combine_dtype(%e: tensor<32x64xf32>, %m: tensor<16x2xi32>, %w: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine' op result element type 'f16' differs from input's 'f32'}}
  %y = moe.combine %e : tensor<32x64xf32> mapping(%m : tensor<16x2xi32>) weights(%w : tensor<16x2xf32>) -> tensor<16x64xf16>
  return
}

// -----

func.func @combine_mapping_rank(%e: tensor<32x64xf32>, %m: tensor<32xi32>, %w: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine' op mapping must have rank 2 [T, k], got 'tensor<32xi32>'}}
  %y = moe.combine %e : tensor<32x64xf32> mapping(%m : tensor<32xi32>) weights(%w : tensor<16x2xf32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @combine_residual(%e: tensor<32x64xf32>, %m: tensor<16x2xi32>, %w: tensor<16x2xf32>, %r: tensor<16x64xbf16>) {
  // expected-error @+1 {{'moe.combine' op residual type 'tensor<16x64xbf16>' must equal the result type 'tensor<16x64xf32>'}}
  %y = moe.combine %e : tensor<32x64xf32> mapping(%m : tensor<16x2xi32>) weights(%w : tensor<16x2xf32>) residual(%r : tensor<16x64xbf16>) -> tensor<16x64xf32>
  return
}

// -----

func.func @layer_router_hidden(%x: tensor<8x64xf32>, %wr: tensor<32x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>) {
  // expected-error @+1 {{'moe.layer' op hidden size d mismatch: input has 64 but router_weight has 32}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<32x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_experts_count(%x: tensor<8x64xf32>, %wr: tensor<64x8xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>) {
  // expected-error @+1 {{'moe.layer' op number of experts E mismatch: w_up has 4, expected 8}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x8xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_local_experts_count(%x: tensor<8x64xf32>, %wr: tensor<64x8xf32>, %wu: tensor<3x64x128xf32>, %wd: tensor<3x128x64xf32>, %off: index) {
  // expected-error @+1 {{'moe.layer' op with expert_offset, w_up's 3 local experts must divide the router's 8}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x8xf32>) up(%wu : tensor<3x64x128xf32>) down(%wd : tensor<3x128x64xf32>) expert_offset(%off) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_k(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>) {
  // expected-error @+1 {{'moe.layer' op top_k (5) exceeds the number of experts (4)}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) {activation = #moe.activation<gelu>, top_k = 5 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_router_bias(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %b: tensor<8xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>) {
  // expected-error @+1 {{'moe.layer' op number of experts E mismatch: router_bias has 8, expected 4}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) router_bias(%b : tensor<8xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_shared_pair(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>, %su: tensor<64x128xf32>) {
  // expected-error @+1 {{'moe.layer' op shared_up and shared_down must be given together}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) shared_up(%su : tensor<64x128xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_shared_coef_alone(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>, %sc: tensor<64x1xf32>) {
  // expected-error @+1 {{'moe.layer' op shared_gate and shared_coef need shared_up and shared_down}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) shared_coef(%sc : tensor<64x1xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_shared_shape(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>, %su: tensor<64x128xf32>, %sd: tensor<256x64xf32>) {
  // expected-error @+1 {{'moe.layer' op ffn size f mismatch: shared_up has 128 but shared_down has 256}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) shared_up(%su : tensor<64x128xf32>) shared_down(%sd : tensor<256x64xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_shared_coef_width(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>, %su: tensor<64x128xf32>, %sd: tensor<128x64xf32>, %sc: tensor<64x2xf32>) {
  // expected-error @+1 {{'moe.layer' op gate width mismatch: shared_coef has 2, expected 1}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) shared_up(%su : tensor<64x128xf32>) shared_down(%sd : tensor<128x64xf32>) shared_coef(%sc : tensor<64x2xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_shared_coef_rank(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>, %su: tensor<64x128xf32>, %sd: tensor<128x64xf32>, %sc: tensor<64xf32>) {
  // expected-error @+1 {{'moe.layer' op shared_coef must have rank 2 [d, 1], got 'tensor<64xf32>'}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) shared_up(%su : tensor<64x128xf32>) shared_down(%sd : tensor<128x64xf32>) shared_coef(%sc : tensor<64xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_mlp_pair(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>, %md: tensor<128x64xf32>) {
  // expected-error @+1 {{'moe.layer' op mlp_up and mlp_down must be given together}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) mlp_down(%md : tensor<128x64xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_mlp_coef_alone(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>, %mc: tensor<64x2xf32>) {
  // expected-error @+1 {{'moe.layer' op mlp_coef needs mlp_up and mlp_down}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) mlp_coef(%mc : tensor<64x2xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_mlp_coef_width(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>, %mu: tensor<64x128xf32>, %md: tensor<128x64xf32>, %mc: tensor<64x3xf32>) {
  // expected-error @+1 {{'moe.layer' op mixing width mismatch: mlp_coef has 3, expected 2}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) mlp_up(%mu : tensor<64x128xf32>) mlp_down(%md : tensor<128x64xf32>) mlp_coef(%mc : tensor<64x3xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_mlp_coef_hidden(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>, %mu: tensor<64x128xf32>, %md: tensor<128x64xf32>, %mc: tensor<32x2xf32>) {
  // expected-error @+1 {{'moe.layer' op hidden size d mismatch: input has 64 but mlp_coef has 32}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) mlp_up(%mu : tensor<64x128xf32>) mlp_down(%md : tensor<128x64xf32>) mlp_coef(%mc : tensor<32x2xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_mlp_coef_bias_alone(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>, %mu: tensor<64x128xf32>, %md: tensor<128x64xf32>, %mb: tensor<2xf32>) {
  // expected-error @+1 {{'moe.layer' op mlp_coef_bias needs mlp_coef}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) mlp_up(%mu : tensor<64x128xf32>) mlp_down(%md : tensor<128x64xf32>) mlp_coef_bias(%mb : tensor<2xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_mlp_coef_bias_width(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>, %mu: tensor<64x128xf32>, %md: tensor<128x64xf32>, %mc: tensor<64x2xf32>, %mb: tensor<3xf32>) {
  // expected-error @+1 {{'moe.layer' op mixing width mismatch: mlp_coef_bias has 3, expected 2}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) mlp_up(%mu : tensor<64x128xf32>) mlp_down(%md : tensor<128x64xf32>) mlp_coef(%mc : tensor<64x2xf32>) mlp_coef_bias(%mb : tensor<3xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return
}

// -----

func.func @layer_result(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>) {
  // expected-error @+1 {{'moe.layer' op result type 'tensor<8x64xbf16>' must equal the input type 'tensor<8x64xf32>'}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xbf16>
  return
}

// -----

func.func @layer_unknown_attribute(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>) {
  // expected-error @+1 {{'moe.layer' op unknown attribute 'num_shared_experts'}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64, num_shared_experts = 2 : i64} -> tensor<8x64xf32>
  return
}
