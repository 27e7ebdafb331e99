"""The tiny model configs that make-tiny-checkpoint.py (build machine) and
hf_compare.py (GPU machine, through transformers) share."""
COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, hidden_act="silu", rms_norm_eps=1e-5,
              rope_theta=10000.0, vocab_size=64, max_position_embeddings=64,
              tie_word_embeddings=False)
CONFIGS = {
    "mixtral": dict(COMMON, intermediate_size=48, num_local_experts=4,
                    num_experts_per_tok=2, sliding_window=None),
    "qwen2_moe": dict(COMMON, intermediate_size=64, moe_intermediate_size=48,
                      shared_expert_intermediate_size=64, num_experts=4,
                      num_experts_per_tok=2, norm_topk_prob=False,
                      decoder_sparse_step=1, mlp_only_layers=[],
                      use_sliding_window=False),
    "olmoe": dict(COMMON, intermediate_size=48, num_experts=4,
                  num_experts_per_tok=2, norm_topk_prob=False, clip_qkv=None),
    "qwen3_moe": dict(COMMON, head_dim=8, intermediate_size=64,
                      moe_intermediate_size=48, num_experts=4,
                      num_experts_per_tok=2, norm_topk_prob=True,
                      decoder_sparse_step=1, mlp_only_layers=[],
                      use_sliding_window=False, attention_bias=False),
}

# Variants with dense MLP layers among the MoE layers: layer 0 in
# mlp_only_layers, and a decoder_sparse_step of 2 (MoE on layers 1 and 3).
CONFIGS["qwen2_moe_dense"] = dict(CONFIGS["qwen2_moe"], mlp_only_layers=[0])
CONFIGS["qwen3_moe_dense"] = dict(CONFIGS["qwen3_moe"], num_hidden_layers=4,
                                  decoder_sparse_step=2)
# DeepSeek-V3: multi-head latent attention, a dense first layer, group-
# limited sigmoid routing with a shared expert (as test/e2e/tiny-deepseek.py).
CONFIGS["deepseek_v3"] = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=4, hidden_act="silu", rms_norm_eps=1e-6,
    rope_theta=10000.0, vocab_size=64, max_position_embeddings=64,
    tie_word_embeddings=False, intermediate_size=48, moe_intermediate_size=16,
    q_lora_rank=16, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4,
    v_head_dim=8, head_dim=4, n_routed_experts=8, num_experts_per_tok=2,
    n_shared_experts=1, n_group=2, topk_group=1, routed_scaling_factor=2.5,
    norm_topk_prob=True, first_k_dense_replace=1, topk_method="noaux_tc",
    scoring_func="sigmoid", rope_scaling=None, rope_interleave=True,
    attention_bias=False)
# DeepSeek-V2(-Lite) style: no query compression, softmax scores, group-
# limited greedy routing (groups by their best expert), weights scaled
# without renormalisation.
CONFIGS["deepseek_v2"] = {k: v for k, v in CONFIGS["deepseek_v3"].items()
                          if k != "rope_interleave"}
CONFIGS["deepseek_v2"].update(q_lora_rank=None, topk_method="group_limited_greedy",
                              scoring_func="softmax", norm_topk_prob=False)
# Sizes divisible by 8 (kv_lora_rank + rope, every projection): the latent
# attention runs on the GPU too, so a step is GPU work only (a CUDA graph).
CONFIGS["deepseek_v3_e8"] = dict(
    CONFIGS["deepseek_v3"], hidden_size=64, intermediate_size=64,
    moe_intermediate_size=32, q_lora_rank=32, kv_lora_rank=24,
    qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, head_dim=8)
CONFIGS["deepseek_v2_e8"] = dict(
    CONFIGS["deepseek_v2"], hidden_size=64, intermediate_size=64,
    moe_intermediate_size=32, kv_lora_rank=24, qk_nope_head_dim=16,
    qk_rope_head_dim=8, v_head_dim=16, head_dim=8)
# YaRN-scaled RoPE (factor 4 over 16 original positions; the 8 + 12 tokens
# of hf_compare.py pass them), as real DeepSeek-V3 and long-context Qwen3
# checkpoints have it: DeepSeek's with an attention factor from mscale /
# mscale_all_dim and its softmax scaled by mscale_all_dim's square.
CONFIGS["deepseek_v3_yarn"] = dict(CONFIGS["deepseek_v3"], rope_scaling=dict(
    type="yarn", factor=4.0, original_max_position_embeddings=16, beta_fast=32,
    beta_slow=1, mscale=1.0, mscale_all_dim=0.8))
CONFIGS["deepseek_v3_yarn_e8"] = dict(CONFIGS["deepseek_v3_e8"],
                                     rope_scaling=CONFIGS["deepseek_v3_yarn"]["rope_scaling"])
CONFIGS["qwen3_moe_yarn"] = dict(CONFIGS["qwen3_moe"], rope_scaling=dict(
    rope_type="yarn", factor=4.0, original_max_position_embeddings=16))
# Eight experts and sizes divisible by 8: the MoE layers take the fused GPU
# layer, so a CUDA step keeps every activation on the device; head_dim 16
# with grouped-query heads.
CONFIGS["mixtral_e8"] = dict(CONFIGS["mixtral"], hidden_size=64,
                             num_attention_heads=4, num_key_value_heads=2,
                             intermediate_size=64, num_local_experts=8)
# Sizes the Hopper expert path takes (multiples of 128): built for steps of
# 128 rows with --gpu-path=wgmma (32 rows per expert: 128-row tiles mostly
# zero-filled) and of 512 rows, where the compiler picks wgmma itself.
CONFIGS["mixtral_wg"] = dict(CONFIGS["mixtral"], hidden_size=128,
                             num_attention_heads=4, num_key_value_heads=2,
                             intermediate_size=256, num_local_experts=8)
# An LM head tied to the token embedding (one checkpoint tensor, two
# weights of the compiled model).
CONFIGS["qwen3_moe_tied"] = dict(CONFIGS["qwen3_moe"], tie_word_embeddings=True)
# Switch Transformers (encoder-decoder): two blocks per stack, block 1 a
# top-1 MoE (num_sparse_*_layers 1 of 2: sparse step 2), T5 attention with
# 8 relative-position buckets up to distance 16 (the 8-token prompt and 12
# new tokens reach the logarithmic buckets), the LM head tied to the
# embedding. The checkpoint that make-hf-models.sh compiles is
# test/e2e/tiny-switch.py's, of the same shapes.
CONFIGS["switch_transformers"] = dict(
    vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_heads=4, num_layers=2,
    num_decoder_layers=2, num_sparse_encoder_layers=1,
    num_sparse_decoder_layers=1, num_experts=4, expert_capacity=64,
    relative_attention_num_buckets=8, relative_attention_max_distance=16,
    layer_norm_epsilon=1e-6, dense_act_fn="relu", decoder_start_token_id=0,
    tie_word_embeddings=True, router_jitter_noise=0.0, dropout_rate=0.0,
    pad_token_id=0, eos_token_id=1)
# The transformers model type of each config.
MODEL_TYPE = {name: name.replace("_dense", "").replace("_yarn", "").replace("_e8", "")
              .replace("_tied", "").replace("_wg", "") for name in CONFIGS}
