//===- MoEOps.td - MoE dialect operations ------------------*- tablegen -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_TD
#define MOE_DIALECT_MOE_IR_MOEOPS_TD

include "moe/Dialect/MoE/IR/MoEBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic, traits>;

// Attributes shared by the router and the composite layer.
defvar RouterAttrs = (ins
  I64Attr:$top_k,
  DefaultValuedAttr<MoE_ScoreFuncAttr, "::mlir::moe::ScoreFunc::softmax">:$score_func,
  UnitAttr:$score_after_topk,
  UnitAttr:$renormalize,
  DefaultValuedAttr<F64Attr, "1.0">:$scaling,
  OptionalAttr<F64Attr>:$capacity_factor,
  DefaultValuedAttr<I64Attr, "0">:$min_capacity,
  DefaultValuedAttr<MoE_DropPolicyAttr, "::mlir::moe::DropPolicy::position">:$drop_policy,
  OptionalAttr<I64Attr>:$n_group,
  OptionalAttr<I64Attr>:$topk_group,
  DefaultValuedAttr<MoE_GroupScoreAttr, "::mlir::moe::GroupScore::max">:$group_score
);

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

def MoE_RouterOp : MoE_Op<"router", [Pure, AttrSizedOperandSegments]> {
  let summary = "top-k gating: expert ids and combine weights per token";
  let description = [{
    Routes every token to `top_k` experts. With a `weight` operand ([d, E])
    the input is token activations [T, d] and the logits are `input x weight`
    accumulated in f32; without it the input is the logits [T, E].

    1. scores: `softmax` over the E logits, or `sigmoid` of each logit. With
       `score_after_topk` (softmax only) the selection uses the raw logits and
       the softmax runs over the selected k logits only.
    2. The optional `bias` [E] (DeepSeek-V3's aux-loss-free balancing) is added
       to the scores for the selection only; weights use unbiased scores.
    3. Group-limited routing (`n_group`, `topk_group`): experts form `n_group`
       equal groups, each scored by its best expert (`max`) or the sum of its
       best two (`top2_sum`); only experts of the best `topk_group` groups can
       be selected.
    4. The top `top_k` experts are selected in descending order (ties go to the
       lower expert id). `renormalize` divides the k weights by their sum; the
       result is then multiplied by `scaling`.
    5. With `capacity_factor`, each expert takes at most
       `max(min_capacity, ceil(capacity_factor * T * top_k / E))` assignments;
       the others are dropped (expert id -1, weight 0), chosen by `drop_policy`.
       Without it routing is dropless.

    Example (Mixtral: softmax, top-2, renormalised):

    ```mlir
    %ids, %w = moe.router %x : tensor<16x4096xbf16>
        weight(%wr : tensor<4096x8xbf16>) {renormalize, top_k = 2 : i64}
        -> tensor<16x2xi32>, tensor<16x2xf32>
    ```
  }];
  let arguments = !con((ins MoE_FloatTensor:$input,
                            Optional<MoE_FloatTensor>:$weight,
                            Optional<MoE_FloatTensor>:$bias), RouterAttrs);
  let results = (outs MoE_IndexTensor:$expert_ids, MoE_FloatTensor:$weights);
  let assemblyFormat = [{
    $input `:` type($input)
    (`weight` `(` $weight^ `:` type($weight) `)`)?
    (`bias` `(` $bias^ `:` type($bias) `)`)?
    attr-dict `->` type($expert_ids) `,` type($weights)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    /// Number of experts E (static: it is the last dim of the logits).
    int64_t getNumExperts();
  }];
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

def MoE_DispatchOp : MoE_Op<"dispatch", [Pure]> {
  let summary = "permute tokens into expert-major order";
  let description = [{
    Gathers the token rows of `input` [T, d] into expert-major order: the
    assignments of expert e (in token order) occupy the consecutive rows
    `offsets[e] .. offsets[e+1]` of `permuted` [T*k, d]; rows past
    `offsets[E]` (slots of dropped assignments) are zero. `offsets` [E+1] is
    the exclusive prefix sum of the per-expert counts. `mapping` [T, k] is the
    dense token-to-slot table (DeepSpeed-MoE's dense representation): the row
    of `permuted` that holds assignment (t, j), or -1 when the expert id is
    outside [0, E) (a dropped assignment).

    ```mlir
    %p, %off, %map = moe.dispatch %x : tensor<16x64xf32>, %ids : tensor<16x2xi32>
        {num_experts = 8 : i64}
        -> tensor<32x64xf32>, tensor<9xi32>, tensor<16x2xi32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_IndexTensor:$expert_ids,
                       I64Attr:$num_experts);
  let results = (outs MoE_FloatTensor:$permuted, MoE_IndexTensor:$offsets,
                      MoE_IndexTensor:$mapping);
  let assemblyFormat = [{
    $input `:` type($input) `,` $expert_ids `:` type($expert_ids) attr-dict
    `->` type($permuted) `,` type($offsets) `,` type($mapping)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// ExpertsOp
//===----------------------------------------------------------------------===//

def MoE_ExpertsOp : MoE_Op<"experts", [Pure]> {
  let summary = "grouped expert FFN over expert-major rows";
  let description = [{
    Applies expert e's FFN to rows `offsets[e] .. offsets[e+1]` of `input`
    [N, d]; rows past `offsets[E]` of the result are zero. Weights are stacked
    per expert: `w_up` and `w_gate` [E, d, f], `w_down` [E, f, d].

    - plain:  `y = act(x W_up) W_down`
    - gated:  `y = (act(x W_gate) * (x W_up)) W_down` (SwiGLU with `silu`,
      GeGLU with `gelu`).

    Products accumulate in f32; the hidden activations are rounded to the
    input's element type before the down projection.

    ```mlir
    %y = moe.experts %p : tensor<32x64xbf16> offsets(%off : tensor<9xi32>)
        up(%wu : tensor<8x64x128xbf16>) gate(%wg : tensor<8x64x128xbf16>)
        down(%wd : tensor<8x128x64xbf16>)
        {activation = #moe.activation<silu>} -> tensor<32x64xbf16>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_IndexTensor:$offsets,
                       MoE_FloatTensor:$w_up,
                       Optional<MoE_FloatTensor>:$w_gate,
                       MoE_FloatTensor:$w_down,
                       MoE_ActivationAttr:$activation);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `:` type($input) `offsets` `(` $offsets `:` type($offsets) `)`
    `up` `(` $w_up `:` type($w_up) `)`
    (`gate` `(` $w_gate^ `:` type($w_gate) `)`)?
    `down` `(` $w_down `:` type($w_down) `)`
    attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// MlpOp
//===----------------------------------------------------------------------===//

def MoE_MlpOp : MoE_Op<"mlp", [Pure]> {
  let summary = "dense FFN applied to every token (shared expert, PR-MoE MLP)";
  let description = [{
    The dense counterpart of `moe.experts` for weights `w_up`/`w_gate` [d, f]
    and `w_down` [f, d]: a shared expert (Qwen2-MoE, DeepSeek), the residual
    MLP of PR-MoE, or a dense transformer FFN. Same numerics as
    `moe.experts`.

    ```mlir
    %s = moe.mlp %x : tensor<16x64xf32> up(%u : tensor<64x256xf32>)
        down(%d : tensor<256x64xf32>) {activation = #moe.activation<gelu>}
        -> tensor<16x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_FloatTensor:$w_up,
                       Optional<MoE_FloatTensor>:$w_gate,
                       MoE_FloatTensor:$w_down,
                       MoE_ActivationAttr:$activation);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `:` type($input) `up` `(` $w_up `:` type($w_up) `)`
    (`gate` `(` $w_gate^ `:` type($w_gate) `)`)?
    `down` `(` $w_down `:` type($w_down) `)`
    attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

def MoE_CombineOp : MoE_Op<"combine", [Pure]> {
  let summary = "weighted un-permute of expert outputs, with a fused residual";
  let description = [{
    `result[t] = residual[t] + sum_j weights[t, j] * input[mapping[t, j]]`,
    skipping entries whose mapping is -1 (dropped). The sum accumulates in
    f32. `residual` [T, d] is optional.

    ```mlir
    %y = moe.combine %e : tensor<32x64xf32> mapping(%map : tensor<16x2xi32>)
        weights(%w : tensor<16x2xf32>) residual(%x : tensor<16x64xf32>)
        -> tensor<16x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_IndexTensor:$mapping,
                       MoE_FloatTensor:$weights,
                       Optional<MoE_FloatTensor>:$residual);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `:` type($input) `mapping` `(` $mapping `:` type($mapping) `)`
    `weights` `(` $weights `:` type($weights) `)`
    (`residual` `(` $residual^ `:` type($residual) `)`)?
    attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

def MoE_LayerOp : MoE_Op<"layer", [Pure, AttrSizedOperandSegments]> {
  let summary = "a whole MoE layer: router, experts, shared experts, PR-MoE MLP";
  let description = [{
    The composite MoE FFN of one transformer block, on token activations
    `input` [T, d]. Routing follows `moe.router` (same attributes) with
    `router_weight` [d, E] and an optional `router_bias` [E]; the routed
    experts follow `moe.experts` (`up`, optional `gate`, `down`).

    Optional parts, all with the layer's `activation`:
    - shared experts (Qwen2-MoE, DeepSeek): `shared_up`, optional
      `shared_gate`, `shared_down` as in `moe.mlp`; their output is added,
      scaled by `sigmoid(input x shared_coef)` when `shared_coef` [d, 1] is
      given (Qwen2-MoE's shared-expert gate).
    - the PR-MoE residual MLP: `mlp_up`, `mlp_down` as in `moe.mlp`. Without
      `mlp_coef` its output is added; with `mlp_coef` [d, 2] the two branches
      are mixed as `c0 * moe + c1 * mlp` with
      `c = softmax(input x mlp_coef + mlp_coef_bias)` (DeepSpeed-MoE's
      `use_residual`; its coefficient Linear has the bias [2] by default).

    With `expert_offset` (an index), the routed-expert weights hold only the
    experts [expert_offset, expert_offset + E_local) of the router's E, and
    the result is the contribution of those experts (plus the optional
    parts as given): routing still picks among all E, and assignments to
    other experts contribute nothing (capacity drops too are those of the
    routing over all E). This is one rank's share of an
    expert-parallel layer whose tokens are replicated; the partial results
    of the ranks sum to the layer (`moe-partition`'s all-reduce dispatch).

    `-moe-decompose-layer` rewrites the op into `moe.router`, `moe.dispatch`,
    `moe.experts`, `moe.mlp`, `moe.combine` and linalg.

    ```mlir
    %y = moe.layer %x : tensor<16x64xbf16>
        router(%wr : tensor<64x8xbf16>)
        up(%wu : tensor<8x64x128xbf16>) gate(%wg : tensor<8x64x128xbf16>)
        down(%wd : tensor<8x128x64xbf16>)
        {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64}
        -> tensor<16x64xbf16>
    ```
  }];
  let arguments = !con((ins MoE_FloatTensor:$input,
                            MoE_FloatTensor:$router_weight,
                            Optional<MoE_FloatTensor>:$router_bias,
                            MoE_FloatTensor:$w_up,
                            Optional<MoE_FloatTensor>:$w_gate,
                            MoE_FloatTensor:$w_down,
                            Optional<MoE_FloatTensor>:$shared_up,
                            Optional<MoE_FloatTensor>:$shared_gate,
                            Optional<MoE_FloatTensor>:$shared_down,
                            Optional<MoE_FloatTensor>:$shared_coef,
                            Optional<MoE_FloatTensor>:$mlp_up,
                            Optional<MoE_FloatTensor>:$mlp_down,
                            Optional<MoE_FloatTensor>:$mlp_coef,
                            Optional<MoE_FloatTensor>:$mlp_coef_bias,
                            Optional<Index>:$expert_offset,
                            MoE_ActivationAttr:$activation), RouterAttrs);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `:` type($input)
    `router` `(` $router_weight `:` type($router_weight) `)`
    (`router_bias` `(` $router_bias^ `:` type($router_bias) `)`)?
    `up` `(` $w_up `:` type($w_up) `)`
    (`gate` `(` $w_gate^ `:` type($w_gate) `)`)?
    `down` `(` $w_down `:` type($w_down) `)`
    (`shared_up` `(` $shared_up^ `:` type($shared_up) `)`)?
    (`shared_gate` `(` $shared_gate^ `:` type($shared_gate) `)`)?
    (`shared_down` `(` $shared_down^ `:` type($shared_down) `)`)?
    (`shared_coef` `(` $shared_coef^ `:` type($shared_coef) `)`)?
    (`mlp_up` `(` $mlp_up^ `:` type($mlp_up) `)`)?
    (`mlp_down` `(` $mlp_down^ `:` type($mlp_down) `)`)?
    (`mlp_coef` `(` $mlp_coef^ `:` type($mlp_coef) `)`)?
    (`mlp_coef_bias` `(` $mlp_coef_bias^ `:` type($mlp_coef_bias) `)`)?
    (`expert_offset` `(` $expert_offset^ `)`)?
    attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    /// E: the experts the router picks among.
    int64_t getNumExperts();
    /// The experts whose weights the op holds: E, or E_local with
    /// `expert_offset`.
    int64_t getNumLocalExperts();
  }];
}

//===----------------------------------------------------------------------===//
// Expert-parallel exchange (the all-to-all of dispatch and combine)
//===----------------------------------------------------------------------===//

defvar ExchangeGroupAttrs = (ins FlatSymbolRefAttr:$grid,
                                 DenseI16ArrayAttr:$grid_axes,
                                 I64Attr:$group_size);

def MoE_DispatchExchangeOp : MoE_Op<"dispatch_exchange", [Pure]> {
  let summary = "all-to-all of expert-major rows to the ranks owning the experts";
  let description = [{
    The dispatch all-to-all of expert parallelism, with variable per-expert
    counts. The `group_size` G processes of a group (those that differ only
    in the `grid_axes` coordinates of `grid`, in grid order) each hold `input`
    [N, d] in expert-major order with `offsets` [E+1] (as `moe.dispatch`
    makes them); expert e lives on group member `e / (E/G)`. Each member
    sends the rows of every expert to its owner and receives the rows of its
    own E/G experts: `result` [C, d] in local-expert-major order (for each
    local expert, the rows of member 0, then member 1, ...), with
    `result_offsets` [E/G + 1] and `counts` [G, E/G] (rows received from each
    member for each local expert, which `moe.combine_exchange` needs to send
    the outputs back). Rows past `result_offsets[E/G]` are zero. C is the
    capacity; receiving more rows is a run-time error. Counts are exchanged
    first, then only the rows that exist.

    ```mlir
    %r, %roff, %cnt = moe.dispatch_exchange %p : tensor<32x64xbf16>
        offsets(%off : tensor<9xi32>)
        {grid = @moe_grid, grid_axes = array<i16: 1>, group_size = 2 : i64}
        -> tensor<64x64xbf16>, tensor<5xi32>, tensor<2x4xi32>
    ```
  }];
  let arguments = !con((ins MoE_FloatTensor:$input, MoE_IndexTensor:$offsets),
                       ExchangeGroupAttrs);
  let results = (outs MoE_FloatTensor:$result, MoE_IndexTensor:$result_offsets,
                      MoE_IndexTensor:$counts);
  let assemblyFormat = [{
    $input `:` type($input) `offsets` `(` $offsets `:` type($offsets) `)`
    attr-dict `->` type($result) `,` type($result_offsets) `,` type($counts)
  }];
  let hasVerifier = 1;
}

def MoE_CombineExchangeOp : MoE_Op<"combine_exchange", [Pure]> {
  let summary = "all-to-all of expert outputs back to the ranks that sent the rows";
  let description = [{
    The inverse of `moe.dispatch_exchange`: `input` [C, d] holds the outputs
    of this member's local experts in the order `moe.dispatch_exchange`
    received their rows, `counts` [G, E/G] is that op's `counts`, and
    `offsets` [E+1] the sender-side offsets given to it. The result [N, d] has
    every row back at the place it was sent from; rows past `offsets[E]` are
    zero.

    ```mlir
    %back = moe.combine_exchange %y : tensor<64x64xbf16>
        counts(%cnt : tensor<2x4xi32>) offsets(%off : tensor<9xi32>)
        {grid = @moe_grid, grid_axes = array<i16: 1>, group_size = 2 : i64}
        -> tensor<32x64xbf16>
    ```
  }];
  let arguments = !con((ins MoE_FloatTensor:$input, MoE_IndexTensor:$counts,
                            MoE_IndexTensor:$offsets),
                       ExchangeGroupAttrs);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `:` type($input) `counts` `(` $counts `:` type($counts) `)`
    `offsets` `(` $offsets `:` type($offsets) `)`
    attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Dense transformer parts: token embedding and normalisation
//===----------------------------------------------------------------------===//

def MoE_EmbeddingOp : MoE_Op<"embedding", [Pure]> {
  let summary = "token embedding: rows of a [V, d] table by token id";
  let description = [{
    `result[t] = table[ids[t]]` for `ids` [T] and `table` [V, d]; an id
    outside [0, V) gives a zero row (executables check prompt ids before
    running).

    ```mlir
    %h = moe.embedding %ids : tensor<16xi32> table(%e : tensor<32000x4096xbf16>)
        -> tensor<16x4096xbf16>
    ```
  }];
  let arguments = (ins MoE_IndexTensor:$ids, MoE_FloatTensor:$table);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $ids `:` type($ids) `table` `(` $table `:` type($table) `)` attr-dict
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_RmsNormOp : MoE_Op<"rms_norm", [Pure]> {
  let summary = "RMSNorm over the last dimension (Llama, Mixtral, Qwen, DeepSeek)";
  let description = [{
    For `input` [T, d] and `weight` [d], as Hugging Face transformers computes
    it: in f32, `n = x * rsqrt(mean(x^2) + epsilon)`; `n` is rounded to the
    input's element type, then `result = weight * n`, rounded once more.

    ```mlir
    %y = moe.rms_norm %x : tensor<16x4096xbf16> weight(%w : tensor<4096xbf16>)
        {epsilon = 1.0e-05 : f64} -> tensor<16x4096xbf16>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_FloatTensor:$weight,
                       DefaultValuedAttr<F64Attr, "1.0e-6">:$epsilon);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `:` type($input) `weight` `(` $weight `:` type($weight) `)`
    attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_LayerNormOp : MoE_Op<"layer_norm", [Pure]> {
  let summary = "LayerNorm over the last dimension (GPT, DeepSpeed-MoE)";
  let description = [{
    For `input` [T, d], `weight` and optional `bias` [d], computed in f32
    and rounded once: `result = (x - mean(x)) / sqrt(var(x) + epsilon) *
    weight + bias`, with the biased variance (torch.nn.LayerNorm).

    ```mlir
    %y = moe.layer_norm %x : tensor<16x2048xf32> weight(%w : tensor<2048xf32>)
        bias(%b : tensor<2048xf32>) {epsilon = 1.0e-05 : f64}
        -> tensor<16x2048xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_FloatTensor:$weight,
                       Optional<MoE_FloatTensor>:$bias,
                       DefaultValuedAttr<F64Attr, "1.0e-5">:$epsilon);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `:` type($input) `weight` `(` $weight `:` type($weight) `)`
    (`bias` `(` $bias^ `:` type($bias) `)`)?
    attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_AttentionOp : MoE_Op<"attention", [Pure, AttrSizedOperandSegments]> {
  let summary = "causal self-attention with RoPE, grouped-query heads and a KV cache";
  let description = [{
    The attention block of Llama-style decoders (Mixtral, Qwen, OLMoE), for
    `input` [T, d] holding the tokens at positions `position[0]` ..
    `position[0] + T - 1`:

    1. `q = x Wq` [T, H*hd], `k = x Wk`, `v = x Wv` [T, KV*hd] (f32
       accumulation, plus the optional biases `q_bias`, `k_bias`, `v_bias`
       (Qwen2), rounded to the element type); with `q_norm` / `k_norm`,
       q and k then go through RMSNorm (`qk_norm_epsilon`, the rounding of
       `moe.rms_norm`): each head when the weights are [hd] (Qwen3), the
       whole projection when they are [H*hd] and [KV*hd] (OLMoE);
    2. rotary embedding of q and k (the `rotate_half` form, base
       `rope_theta`): `q*cos + rotate_half(q)*sin`, with cos and sin rounded
       to the element type and every product and sum rounded, as
       transformers computes it. Scaled RoPE (YaRN, linear) gives its
       inverse frequencies, one per rotated pair, in `rope_inv_freq` (in
       place of `1/theta^(2j/hd)`) and multiplies cos and sin by
       `rope_attention_factor` in f32 before rounding; an inverse frequency
       of 0 leaves its pair as it is (all 0: no rotary embedding, as GPT
       models with learned positions have);
    3. the new keys and values are written into the caches [S, KV, hd] at
       their positions (results `key_cache`, `value_cache`);
    4. each of the H query heads attends to cache rows 0 .. its position with
       key/value head `h / (H / KV)`: `scores = (q k^T)` rounded, times
       `1/sqrt(hd)` rounded, softmax in f32 rounded, `p v` rounded;
    5. `result = o Wo` [T, d].

    Encoder-decoder models (T5, Switch Transformers) change step 4:
    `scale` replaces `1/sqrt(hd)` (T5: 1.0); `position_bias` [NB, H] (a
    relative-position bias table, NB buckets) adds `bias[bucket(j - i), h]`
    to the scaled scores (rounded) of the query at position i and the key
    at row j, with T5's buckets (`relative_max_distance`; signed buckets
    when `bidirectional`, else only the past); `bidirectional` drops the
    causal mask (every row below `position + T` is visible: an encoder
    over its whole input at position 0); `key_length` [B] hides the rows
    at and after `key_length[b]` from every query of sequence b (padding).
    Such models have no rotary embedding: `rope_inv_freq` all zero.

    Positions past the cache (`position + T > S`) are the caller's error;
    executables check them before running.

    Batches: with `position` [B], the input holds B sequences of T rows
    each ([B*T, d], sequence b in rows b*T ..), each at its own position
    `position[b]`, and the caches hold B caches of S rows ([B*S, KV, hd],
    sequence b in rows b*S ..). Sequences never attend to each other.

    ```mlir
    %y, %kc, %vc = moe.attention %x : tensor<4x64xbf16>
        q(%wq : tensor<64x64xbf16>) k(%wk : tensor<64x32xbf16>)
        v(%wv : tensor<64x32xbf16>) o(%wo : tensor<64x64xbf16>)
        cache(%k0 : tensor<128x2x16xbf16>, %v0 : tensor<128x2x16xbf16>)
        position(%pos : tensor<1xi32>)
        {num_heads = 4 : i64, num_kv_heads = 2 : i64, rope_theta = 1.0e+06 : f64}
        -> tensor<4x64xbf16>, tensor<128x2x16xbf16>, tensor<128x2x16xbf16>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_FloatTensor:$w_q,
                       MoE_FloatTensor:$w_k, MoE_FloatTensor:$w_v,
                       MoE_FloatTensor:$w_o,
                       Optional<MoE_FloatTensor>:$q_bias,
                       Optional<MoE_FloatTensor>:$k_bias,
                       Optional<MoE_FloatTensor>:$v_bias,
                       Optional<MoE_FloatTensor>:$q_norm,
                       Optional<MoE_FloatTensor>:$k_norm,
                       MoE_FloatTensor:$key_cache_in,
                       MoE_FloatTensor:$value_cache_in,
                       MoE_IndexTensor:$position,
                       Optional<MoE_FloatTensor>:$position_bias,
                       Optional<MoE_IndexTensor>:$key_length,
                       I64Attr:$num_heads,
                       I64Attr:$num_kv_heads,
                       DefaultValuedAttr<F64Attr, "10000.0">:$rope_theta,
                       DefaultValuedAttr<F64Attr, "1.0e-6">:$qk_norm_epsilon,
                       OptionalAttr<DenseF32ArrayAttr>:$rope_inv_freq,
                       DefaultValuedAttr<F64Attr, "1.0">:$rope_attention_factor,
                       OptionalAttr<F64Attr>:$scale,
                       UnitAttr:$bidirectional,
                       OptionalAttr<I64Attr>:$relative_max_distance);
  let results = (outs MoE_FloatTensor:$result, MoE_FloatTensor:$key_cache,
                      MoE_FloatTensor:$value_cache);
  let assemblyFormat = [{
    $input `:` type($input)
    `q` `(` $w_q `:` type($w_q) `)` `k` `(` $w_k `:` type($w_k) `)`
    `v` `(` $w_v `:` type($w_v) `)` `o` `(` $w_o `:` type($w_o) `)`
    (`q_bias` `(` $q_bias^ `:` type($q_bias) `)`)?
    (`k_bias` `(` $k_bias^ `:` type($k_bias) `)`)?
    (`v_bias` `(` $v_bias^ `:` type($v_bias) `)`)?
    (`q_norm` `(` $q_norm^ `:` type($q_norm) `)`)?
    (`k_norm` `(` $k_norm^ `:` type($k_norm) `)`)?
    `cache` `(` $key_cache_in `:` type($key_cache_in) `,`
                $value_cache_in `:` type($value_cache_in) `)`
    `position` `(` $position `:` type($position) `)`
    (`position_bias` `(` $position_bias^ `:` type($position_bias) `)`)?
    (`key_length` `(` $key_length^ `:` type($key_length) `)`)?
    attr-dict `->` type($result) `,` type($key_cache) `,` type($value_cache)
  }];
  let extraClassDeclaration = [{
    /// The score scale: `scale`, else 1/sqrt(head size).
    double getScoreScale();
    /// Whether step 4 differs from causal Llama attention (a bias table,
    /// no causal mask, a key length or another scale).
    bool isEncoderDecoderStyle() {
      return getPositionBias() || getKeyLength() || getBidirectional() ||
             getScale();
    }
  }];
  let hasVerifier = 1;
}

def MoE_CrossAttentionOp : MoE_Op<"cross_attention", [Pure]> {
  let summary = "attention of decoder tokens to an encoder's keys and values";
  let description = [{
    The cross-attention of encoder-decoder models (T5, Switch
    Transformers): `input` [B*T, d] holds B sequences of T rows; `memory_key`
    and `memory_value` [B*S, H, hd] hold each sequence's S encoder rows,
    already projected (`enc Wk`, `enc Wv`, rounded), of which the first
    `length[b]` are real (the rest padding, never attended).

    1. `q = x Wq` [B*T, H*hd] (f32 accumulation, rounded);
    2. each head attends to its sequence's memory rows 0 .. length[b]-1:
       `scores = (q k^T)` rounded, times `scale` rounded, softmax in f32
       rounded, `p v` rounded (no mask, no position bias);
    3. `result = o Wo` [B*T, d].

    ```mlir
    %y = moe.cross_attention %x : tensor<1x32xf32>
        q(%wq : tensor<32x32xf32>) o(%wo : tensor<32x32xf32>)
        memory(%k : tensor<16x4x8xf32>, %v : tensor<16x4x8xf32>)
        length(%len : tensor<1xi32>) {num_heads = 4 : i64, scale = 1.0 : f64}
        -> tensor<1x32xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_FloatTensor:$w_q,
                       MoE_FloatTensor:$w_o, MoE_FloatTensor:$memory_key,
                       MoE_FloatTensor:$memory_value,
                       MoE_IndexTensor:$length, I64Attr:$num_heads,
                       DefaultValuedAttr<F64Attr, "1.0">:$scale);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `:` type($input)
    `q` `(` $w_q `:` type($w_q) `)` `o` `(` $w_o `:` type($w_o) `)`
    `memory` `(` $memory_key `:` type($memory_key) `,`
                 $memory_value `:` type($memory_value) `)`
    `length` `(` $length `:` type($length) `)`
    attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_MlaAttentionOp
    : MoE_Op<"mla_attention", [Pure, AttrSizedOperandSegments]> {
  let summary = "multi-head latent attention (DeepSeek-V2/V3) with a KV cache";
  let description = [{
    DeepSeek's multi-head latent attention for `input` [B*T, d]: B
    sequences (`position` [B]) of T rows each, rows b*T .. of sequence b
    holding its tokens at positions `position[b]` .. `position[b] + T - 1`,
    and caches of B*S rows (rows b*S .. for sequence b), with H heads,
    `nope_dim` + `rope_dim` query/key dimensions and `v_dim` value
    dimensions per head (each sequence as follows):

    1. queries: `x q_a` [T, Lq] through RMSNorm (`q_a_norm`), then `q_b`
       [Lq, H*(nope+rope)]; without `q_a` (no query compression),
       `x q_b` with `q_b` [d, H*(nope+rope)];
    2. `x kv_a` [T, Lkv + rope]: the first Lkv columns through RMSNorm
       (`kv_a_norm`) and `kv_b` [Lkv, H*(nope+v)] give each head's key part
       without position and its value; the last `rope_dim` columns are one
       rotary key part shared by all heads;
    3. rotary embedding (base `rope_theta`, or `rope_inv_freq` and
       `rope_attention_factor` as in `moe.attention`) of the queries' and the
       shared key's last `rope_dim` dimensions; with `interleaved`, the pairs are
       (2j, 2j+1) (DeepSeek's layout, de-interleaved first as transformers
       does), else (j, j + rope_dim/2);
    4. keys [nope | rope] and values enter the caches [S, H, nope+rope] and
       [S, H, v] at their positions;
    5. causal attention of every head as `moe.attention` computes it, with
       scores scaled by `softmax_scale` (1/sqrt(nope+rope) by default);
    6. `result = o w_o` [T, d] with `w_o` [H*v, d].

    Projections accumulate in f32 and round to the element type; the
    RMSNorms use `epsilon` and round as `moe.rms_norm` does.
  }];
  let arguments = (ins MoE_FloatTensor:$input,
                       Optional<MoE_FloatTensor>:$q_a,
                       Optional<MoE_FloatTensor>:$q_a_norm,
                       MoE_FloatTensor:$q_b, MoE_FloatTensor:$kv_a,
                       MoE_FloatTensor:$kv_a_norm, MoE_FloatTensor:$kv_b,
                       MoE_FloatTensor:$w_o,
                       MoE_FloatTensor:$key_cache_in,
                       MoE_FloatTensor:$value_cache_in,
                       MoE_IndexTensor:$position, I64Attr:$num_heads,
                       I64Attr:$nope_dim, I64Attr:$rope_dim, I64Attr:$v_dim,
                       DefaultValuedAttr<F64Attr, "10000.0">:$rope_theta,
                       DefaultValuedAttr<F64Attr, "1.0e-6">:$epsilon,
                       OptionalAttr<F64Attr>:$softmax_scale,
                       UnitAttr:$interleaved,
                       OptionalAttr<DenseF32ArrayAttr>:$rope_inv_freq,
                       DefaultValuedAttr<F64Attr, "1.0">:$rope_attention_factor);
  let results = (outs MoE_FloatTensor:$result, MoE_FloatTensor:$key_cache,
                      MoE_FloatTensor:$value_cache);
  let assemblyFormat = [{
    $input `:` type($input)
    (`q_a` `(` $q_a^ `:` type($q_a) `)`)?
    (`q_a_norm` `(` $q_a_norm^ `:` type($q_a_norm) `)`)?
    `q_b` `(` $q_b `:` type($q_b) `)`
    `kv_a` `(` $kv_a `:` type($kv_a) `)`
    `kv_a_norm` `(` $kv_a_norm `:` type($kv_a_norm) `)`
    `kv_b` `(` $kv_b `:` type($kv_b) `)`
    `o` `(` $w_o `:` type($w_o) `)`
    `cache` `(` $key_cache_in `:` type($key_cache_in) `,`
                $value_cache_in `:` type($value_cache_in) `)`
    `position` `(` $position `:` type($position) `)`
    attr-dict `->` type($result) `,` type($key_cache) `,` type($value_cache)
  }];
  let hasVerifier = 1;
}

#endif // MOE_DIALECT_MOE_IR_MOEOPS_TD
