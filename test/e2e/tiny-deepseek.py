#!/usr/bin/env python3
"""A tiny random DeepSeek-V3 checkpoint in the Hugging Face format
(config.json, model.safetensors with transformers' names and [out, in]
layouts) and the moe dialect's reference for it in plain Python (f32):
greedy generation token by token with a KV cache. Layer 0 is a dense MLP
(first_k_dense_replace = 1); layer 1 is MoE: sigmoid scores plus the
e_score_correction_bias, group-limited (n_group 2, topk_group 1, groups
scored by their best two), top-2 renormalised and scaled by 2.5, and one
shared expert. Attention is multi-head latent attention (query and
key/value compression, interleaved RoPE).

With --v2, a DeepSeek-V2(-Lite)-style model instead: no query compression
(q_proj), softmax scores with group-limited greedy routing (groups by their
best expert), top-2 without renormalisation, scaled by 2.5.

With --yarn, YaRN-scaled RoPE (factor 4 over 16 original positions, an
attention factor from mscale 1.0 / mscale_all_dim 0.8, the softmax scaled
by mscale_all_dim's square), written as transformers 5 does
(rope_parameters).
Usage: tiny-deepseek.py OUT_DIR PROMPT_IDS NEW_TOKENS [SEED] [--v2] [--yarn]
Writes OUT_DIR/expected.txt ("generated: ...") and
OUT_DIR/expected-logits.safetensors (the logits each token was drawn from)."""
import json
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_util import attend, greedy_generate, param_maker, retry_near_ties, rms_norm, rope as shared_rope, seed_of, tie_gap, yarn  # noqa: E402
from safetensors_util import f32, write  # noqa: E402

V, D, H, LQ, LKV, N, R, VD = 64, 32, 4, 16, 16, 8, 4, 8
FD, E, K, FE, GROUPS, TOPG, SCALE = 48, 8, 2, 16, 2, 1, 2.5
THETA, EPS = 10000.0, 1e-6
QK = N + R


def main(retry=0):
    v2 = "--v2" in sys.argv
    yarn_rope = "--yarn" in sys.argv
    args = [a for a in sys.argv if a not in ("--v2", "--yarn")]
    out, prompt, new = args[1], args[2], int(args[3])
    seed = seed_of(args[4] if len(args) > 4 else None, retry)
    print(f"tiny-deepseek.py: seed {seed}", file=sys.stderr)
    prompt = [int(p) for p in prompt.split(",")]
    rnd = random.Random(seed)
    W = {}

    param = param_maker(W, rnd, f32)

    param("model.embed_tokens.weight", [V, D], 1.0)
    for l in range(2):
        p = f"model.layers.{l}."
        a = p + "self_attn."
        param(p + "input_layernorm.weight", [D], 0.1, 1.0)
        param(p + "post_attention_layernorm.weight", [D], 0.1, 1.0)
        if v2:
            param(a + "q_proj.weight", [H * QK, D])
        else:
            param(a + "q_a_proj.weight", [LQ, D])
            param(a + "q_a_layernorm.weight", [LQ], 0.1, 1.0)
            param(a + "q_b_proj.weight", [H * QK, LQ], 0.3)
        param(a + "kv_a_proj_with_mqa.weight", [LKV + R, D])
        param(a + "kv_a_layernorm.weight", [LKV], 0.1, 1.0)
        param(a + "kv_b_proj.weight", [H * (N + VD), LKV], 0.3)
        param(a + "o_proj.weight", [D, H * VD])
        if l == 0:
            for n in ["gate_proj", "up_proj"]:
                param(p + f"mlp.{n}.weight", [FD, D])
            param(p + "mlp.down_proj.weight", [D, FD])
        else:
            param(p + "mlp.gate.weight", [E, D], 0.5)
            if not v2:
                param(p + "mlp.gate.e_score_correction_bias", [E], 0.1)
            for e in range(E):
                q = p + f"mlp.experts.{e}."
                param(q + "gate_proj.weight", [FE, D])
                param(q + "up_proj.weight", [FE, D])
                param(q + "down_proj.weight", [D, FE])
            q = p + "mlp.shared_experts."
            param(q + "gate_proj.weight", [FE, D])
            param(q + "up_proj.weight", [FE, D])
            param(q + "down_proj.weight", [D, FE])
    param("model.norm.weight", [D], 0.1, 1.0)
    param("lm_head.weight", [V, D], 0.5)
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "model.safetensors"),
          {n: ("F32", s, v) for n, (s, v) in W.items()})
    config = {"architectures": ["DeepseekV2ForCausalLM" if v2 else "DeepseekV3ForCausalLM"],
              "model_type": "deepseek_v2" if v2 else "deepseek_v3",
              "hidden_size": D, "intermediate_size": FD, "moe_intermediate_size": FE,
              "num_hidden_layers": 2, "num_attention_heads": H, "num_key_value_heads": H,
              "q_lora_rank": LQ, "kv_lora_rank": LKV, "qk_nope_head_dim": N,
              "qk_rope_head_dim": R, "v_head_dim": VD, "head_dim": R,
              "n_routed_experts": E, "num_experts_per_tok": K, "n_shared_experts": 1,
              "n_group": GROUPS, "topk_group": TOPG, "routed_scaling_factor": SCALE,
              "norm_topk_prob": True, "first_k_dense_replace": 1, "topk_method": "noaux_tc",
              "scoring_func": "sigmoid", "hidden_act": "silu", "rms_norm_eps": EPS,
              "rope_theta": THETA, "rope_scaling": None, "rope_interleave": True,
              "attention_bias": False, "vocab_size": V, "max_position_embeddings": 64,
              "tie_word_embeddings": False, "torch_dtype": "float32"}
    inv_freq, rope_factor, softmax_mscale = None, 1.0, 1.0
    if yarn_rope:
        # transformers 5's layout: base and scaling in rope_parameters.
        yarn_args = dict(factor=4.0, original=16, beta_fast=32.0, beta_slow=1.0,
                         mscale=1.0, mscale_all_dim=0.8)
        inv_freq, rope_factor, softmax_mscale = yarn(R, THETA, **yarn_args)
        del config["rope_theta"], config["rope_scaling"]
        config["rope_parameters"] = {
            "rope_type": "yarn", "rope_theta": THETA, "factor": 4.0,
            "original_max_position_embeddings": 16, "beta_fast": 32, "beta_slow": 1,
            "mscale": 1.0, "mscale_all_dim": 0.8}
    if v2:
        config.update({"q_lora_rank": None, "topk_method": "group_limited_greedy",
                       "scoring_func": "softmax", "norm_topk_prob": False})
        del config["rope_interleave"]
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)

    w = lambda n: W[n][1]

    def linear(x, name, out_n, in_n):
        m = w(name)
        y = []
        for o in range(out_n):
            acc = 0.0
            for i in range(in_n):
                acc = f32(acc + f32(x[i] * m[o * in_n + i]))
            y.append(acc)
        return y

    def rms(x, name):
        return rms_norm(x, w(name), EPS, f32)

    def rope(vec, p):
        return shared_rope(vec, p, THETA, True, f32, inv_freq, rope_factor)

    def silu(g):
        return f32(g * f32(1.0 / f32(1.0 + f32(math.exp(-g)))))

    def mlp(x, prefix, f):
        up = linear(x, prefix + "up_proj.weight", f, D)
        gt = linear(x, prefix + "gate_proj.weight", f, D)
        act = [f32(silu(gt[i]) * up[i]) for i in range(f)]
        return linear(act, prefix + "down_proj.weight", D, f)

    caches = [([], []) for _ in range(2)]

    def attention(x, l, p):
        a = f"model.layers.{l}.self_attn."
        if v2:
            q = linear(x, a + "q_proj.weight", H * QK, D)
        else:
            q = linear(rms(linear(x, a + "q_a_proj.weight", LQ, D), a + "q_a_layernorm.weight"),
                       a + "q_b_proj.weight", H * QK, LQ)
        kva = linear(x, a + "kv_a_proj_with_mqa.weight", LKV + R, D)
        kv = linear(rms(kva[:LKV], a + "kv_a_layernorm.weight"), a + "kv_b_proj.weight",
                    H * (N + VD), LKV)
        kpe = rope(kva[LKV:], p)
        keys, values = caches[l]
        keys.append([kv[h * (N + VD):h * (N + VD) + N] + kpe for h in range(H)])
        values.append([kv[h * (N + VD) + N:(h + 1) * (N + VD)] for h in range(H)])
        scale = f32(1.0 / math.sqrt(QK) * softmax_mscale * softmax_mscale)
        att = []
        for h in range(H):
            qh = q[h * QK:h * QK + N] + rope(q[h * QK + N:(h + 1) * QK], p)
            att += attend(qh, lambda j, d: keys[j][h][d], lambda j, d: values[j][h][d],
                          p, VD, scale, f32)
        return linear(att, a + "o_proj.weight", D, H * VD)

    def moe_v2(x):
        """Softmax scores; groups by their best expert; top-2 greedy among
        the kept groups, weights not renormalised, times the scaling."""
        p = "model.layers.1.mlp."
        logits = linear(x, p + "gate.weight", E, D)
        mx = max(logits)
        ex = [f32(math.exp(f32(v - mx))) for v in logits]
        tot = 0.0
        for e in ex:
            tot = f32(tot + e)
        sc = [f32(e / tot) for e in ex]
        per = E // GROUPS
        gscore = [max(sc[g * per:(g + 1) * per]) for g in range(GROUPS)]
        keep = sorted(range(GROUPS), key=lambda g: (-gscore[g], g))[:TOPG]
        cand = [e for e in range(E) if e // per in keep]
        order = sorted(cand, key=lambda e: (-sc[e], e))[:K]
        acc = [0.0] * D
        for e in order:
            y = mlp(x, p + f"experts.{e}.", FE)
            wt = f32(sc[e] * SCALE)
            acc = [f32(acc[i] + f32(wt * y[i])) for i in range(D)]
        shared = mlp(x, p + "shared_experts.", FE)
        return [f32(acc[i] + shared[i]) for i in range(D)]

    def moe(x):
        if v2:
            return moe_v2(x)
        p = "model.layers.1.mlp."
        logits = linear(x, p + "gate.weight", E, D)
        sc = [f32(1.0 / f32(1.0 + f32(math.exp(-v)))) for v in logits]
        bias = w(p + "gate.e_score_correction_bias")
        choice = [f32(sc[e] + bias[e]) for e in range(E)]
        per = E // GROUPS
        gscore = []
        for g in range(GROUPS):
            best = sorted(choice[g * per:(g + 1) * per], reverse=True)[:2]
            gscore.append(f32(best[0] + best[1]))
        keep = sorted(range(GROUPS), key=lambda g: (-gscore[g], g))[:TOPG]
        cand = [e for e in range(E) if e // per in keep]
        order = sorted(cand, key=lambda e: (-choice[e], e))[:K]
        wsum = 0.0
        for e in order:
            wsum = f32(wsum + sc[e])
        acc = [0.0] * D
        for e in order:
            y = mlp(x, p + f"experts.{e}.", FE)
            wt = f32(f32(sc[e] / wsum) * SCALE)
            acc = [f32(acc[i] + f32(wt * y[i])) for i in range(D)]
        shared = mlp(x, p + "shared_experts.", FE)
        return [f32(acc[i] + shared[i]) for i in range(D)]

    def step(token, p):
        h = list(w("model.embed_tokens.weight")[token * D:(token + 1) * D])
        for l in range(2):
            pre = f"model.layers.{l}."
            o = attention(rms(h, pre + "input_layernorm.weight"), l, p)
            h = [f32(h[i] + o[i]) for i in range(D)]
            m = rms(h, pre + "post_attention_layernorm.weight")
            y = mlp(m, pre + "mlp.", FD) if l == 0 else moe(m)
            h = [f32(h[i] + y[i]) for i in range(D)]
        return linear(rms(h, "model.norm.weight"), "lm_head.weight", V, D)

    greedy_generate(step, prompt, new, V, out, tie_gap(False))


retry_near_ties(main)
