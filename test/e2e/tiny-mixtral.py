#!/usr/bin/env python3
"""A tiny random Mixtral checkpoint in the Hugging Face format (config.json,
two safetensors shards and their index, transformers' tensor names and
[out, in] Linear layouts), and the moe dialect's reference for it: greedy
generation token by token with a KV cache, in plain Python with the
rounding points of moe-compile's lowering (f32 accumulation, the model's
dtype where the ops round).

Usage: tiny-mixtral.py OUT_DIR DTYPE(f32|bf16) PROMPT_IDS NEW_TOKENS [SEED]
Writes the checkpoint into OUT_DIR, and OUT_DIR/expected.txt with the line
"generated: ..." and OUT_DIR/expected-logits.safetensors with the logits
each generated token was drawn from (f32)."""
import json
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_util import attend_cached, greedy_generate, linear_rows, param_maker, retry_near_ties, rms_norm, seed_of, tie_gap  # noqa: E402
from safetensors_util import bf16, f32, read, write  # noqa: E402

V, D, LAYERS, H, KV, HD, E, K, F = 64, 32, 2, 4, 2, 8, 4, 2, 48
THETA, EPS = 10000.0, 1e-5


def main(retry=0):
    out, dtype, prompt, new = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    seed = seed_of(sys.argv[5] if len(sys.argv) > 5 else None, retry)
    print(f"tiny-mixtral.py: seed {seed}", file=sys.stderr)
    prompt = [int(p) for p in prompt.split(",")]
    rnd = random.Random(seed)
    elt = bf16 if dtype == "bf16" else f32
    st = "BF16" if dtype == "bf16" else "F32"
    W = {}

    param = param_maker(W, rnd, elt)

    param("model.embed_tokens.weight", [V, D], 1.0)
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        param(p + "input_layernorm.weight", [D], 0.1, 1.0)
        param(p + "post_attention_layernorm.weight", [D], 0.1, 1.0)
        param(p + "self_attn.q_proj.weight", [H * HD, D])
        param(p + "self_attn.k_proj.weight", [KV * HD, D])
        param(p + "self_attn.v_proj.weight", [KV * HD, D])
        param(p + "self_attn.o_proj.weight", [D, H * HD])
        param(p + "block_sparse_moe.gate.weight", [E, D], 0.5)
        for e in range(E):
            q = p + f"block_sparse_moe.experts.{e}."
            param(q + "w1.weight", [F, D])
            param(q + "w3.weight", [F, D])
            param(q + "w2.weight", [D, F])
    param("model.norm.weight", [D], 0.1, 1.0)
    param("lm_head.weight", [V, D], 0.5)

    os.makedirs(out, exist_ok=True)
    names = sorted(W)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half],
              "model-00002-of-00002.safetensors": names[half:]}
    weight_map = {}
    for shard, members in shards.items():
        write(os.path.join(out, shard), {n: (st, W[n][0], W[n][1]) for n in members})
        weight_map.update({n: shard for n in members})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    config = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
              "hidden_size": D, "intermediate_size": F, "num_hidden_layers": LAYERS,
              "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": HD,
              "num_local_experts": E, "num_experts_per_tok": K, "hidden_act": "silu",
              "rms_norm_eps": EPS, "rope_theta": THETA, "vocab_size": V,
              "max_position_embeddings": 64, "tie_word_embeddings": False,
              "torch_dtype": {"f32": "float32", "bf16": "bfloat16"}[dtype]}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)

    w = lambda n: W[n][1]

    def linear(x, name, out_n, in_n, round_out=True):
        """x [in] times the HF weight [out, in] transposed, f32 in order."""
        return linear_rows(w(name), x, range(out_n), in_n, elt, round_out)

    def rms(x, name):
        return rms_norm(x, w(name), EPS, elt)

    caches = [([], []) for _ in range(LAYERS)]  # per layer: keys, values [pos][KV*HD]
    half_hd = HD // 2

    def rope(vec, heads, p):
        outv = list(vec)
        for h in range(heads):
            for i in range(HD):
                j = i % half_hd
                inv = f32(1.0 / f32(THETA ** f32(f32(2.0 * j) / HD)))
                ang = f32(float(p) * inv)
                c, s = elt(f32(math.cos(ang))), elt(f32(math.sin(ang)))
                other = vec[h * HD + (i + half_hd if i < half_hd else i - half_hd)]
                rot = -other if i < half_hd else other
                outv[h * HD + i] = elt(f32(elt(f32(vec[h * HD + i] * c)) + elt(f32(rot * s))))
        return outv

    def silu(g):
        return f32(g * f32(1.0 / f32(1.0 + f32(math.exp(-g)))))

    def step(token, p):
        h = list(w("model.embed_tokens.weight")[token * D:(token + 1) * D])
        for l in range(LAYERS):
            pre = f"model.layers.{l}."
            a = rms(h, pre + "input_layernorm.weight")
            q = rope(linear(a, pre + "self_attn.q_proj.weight", H * HD, D), H, p)
            k = rope(linear(a, pre + "self_attn.k_proj.weight", KV * HD, D), KV, p)
            v = linear(a, pre + "self_attn.v_proj.weight", KV * HD, D)
            att = attend_cached(q, k, v, caches[l], H, KV, HD, p, elt)
            o = linear(att, pre + "self_attn.o_proj.weight", D, H * HD)
            h = [elt(f32(h[i] + o[i])) for i in range(D)]
            m = rms(h, pre + "post_attention_layernorm.weight")
            # The MoE layer: softmax over all experts, top-2 renormalised.
            logits = linear(m, pre + "block_sparse_moe.gate.weight", E, D, round_out=False)
            mx = max(logits)
            ex = [f32(math.exp(f32(x - mx))) for x in logits]
            tot = 0.0
            for e in ex:
                tot = f32(tot + e)
            sc = [f32(e / tot) for e in ex]
            order = sorted(range(E), key=lambda e: (-sc[e], e))[:K]
            wsum = 0.0
            for e in order:
                wsum = f32(wsum + sc[e])
            acc = [0.0] * D
            for e in order:
                q2 = pre + f"block_sparse_moe.experts.{e}."
                up = linear(m, q2 + "w3.weight", F, D, round_out=False)
                gt = linear(m, q2 + "w1.weight", F, D, round_out=False)
                act = [elt(f32(silu(gt[i]) * up[i])) for i in range(F)]
                y = linear(act, q2 + "w2.weight", D, F)
                wt = f32(sc[e] / wsum)
                acc = [f32(acc[i] + f32(wt * y[i])) for i in range(D)]
            moe = [elt(v) for v in acc]
            h = [elt(f32(h[i] + moe[i])) for i in range(D)]
        n = rms(h, "model.norm.weight")
        return linear(n, "lm_head.weight", V, D)

    greedy_generate(step, prompt, new, V, out, tie_gap(dtype == "bf16"))


retry_near_ties(main)
