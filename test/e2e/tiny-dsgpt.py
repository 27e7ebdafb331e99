#!/usr/bin/env python3
"""A tiny random DeepSpeed-MoE GPT checkpoint (Megatron-DeepSpeed names and
config keys, model_type deepspeed_moe_gpt, safetensors) and a plain-Python
reference for it: greedy generation token by token with a KV cache, with
the rounding points of moe-compile's lowering.

The model: word + learned position embeddings; pre-LayerNorm blocks
(weights and biases) with Megatron's fused query_key_value (per head: q, k,
v rows), causal multi-head attention without rotary embedding, no linear
biases (--disable-bias-linear); MoE on every `expert_interval`-th layer
(DeepSpeed gating: top-1, or top-2 renormalised; dropless), GELU experts;
the other layers a dense GELU MLP; final LayerNorm; LM head tied to the
word embeddings.

Usage: tiny-dsgpt.py OUT_DIR DTYPE(f32|bf16) PROMPT_IDS NEW_TOKENS VARIANT [SEED]
VARIANT: "moe" (4 layers, top-2 over 4 experts on layers 1 and 3),
"prmoe" (PR-MoE: 4 and 8 experts, top-1, residual MLP mixed by the
coefficient, with its bias), "mos" (a 2-layer student of "prmoe"'s shape:
top-1, a coefficient without bias).
Writes OUT_DIR/expected.txt ("generated: ...") and
OUT_DIR/expected-logits.safetensors (the logits each token was drawn from)."""
import json
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_util import attend_cached, greedy_generate, linear_rows, param_maker, retry_near_ties, seed_of, tie_gap  # noqa: E402
from safetensors_util import bf16, f32, write  # noqa: E402

V, D, H, F, MAXPOS, EPS = 64, 32, 4, 48, 64, 1e-5
HD = D // H


def main(retry=0):
    out, dtype, prompt, new, variant = (sys.argv[1], sys.argv[2], sys.argv[3],
                                        int(sys.argv[4]), sys.argv[5])
    seed = seed_of(sys.argv[6] if len(sys.argv) > 6 else None, retry)
    print(f"tiny-dsgpt.py: seed {seed}", file=sys.stderr)
    prompt = [int(p) for p in prompt.split(",")]
    layers, experts, topk, residual = {
        "moe": (4, [4, 4], 2, False),
        "prmoe": (4, [4, 8], 1, True),
        "mos": (2, [8], 1, True),
    }[variant]
    rnd = random.Random(seed)
    elt = bf16 if dtype == "bf16" else f32
    st = "BF16" if dtype == "bf16" else "F32"
    W = {}
    param = param_maker(W, rnd, elt)
    e = "language_model.embedding."
    enc = "language_model.encoder."
    param(e + "word_embeddings.weight", [V, D], 1.0)
    param(e + "position_embeddings.weight", [MAXPOS, D], 0.5)
    moe_of = {}
    for l in range(layers):
        p = f"{enc}layers.{l}."
        for n in ("input_layernorm", "post_attention_layernorm"):
            param(p + n + ".weight", [D], 0.1, 1.0)
            param(p + n + ".bias", [D], 0.1)
        param(p + "self_attention.query_key_value.weight", [3 * D, D])
        param(p + "self_attention.dense.weight", [D, D])
        m = p + "mlp."
        if (l + 1) % 2 == 0:
            n_exp = experts[len(moe_of)]
            moe_of[l] = n_exp
            param(m + "deepspeed_moe.gate.wg.weight", [n_exp, D], 0.5)
            for j in range(n_exp):
                q = m + f"deepspeed_moe.experts.deepspeed_experts.{j}."
                param(q + "dense_h_to_4h.weight", [F, D])
                param(q + "dense_4h_to_h.weight", [D, F])
            if residual:
                param(m + "mlp.dense_h_to_4h.weight", [F, D])
                param(m + "mlp.dense_4h_to_h.weight", [D, F])
                param(m + "coefficient.weight", [2, D], 0.5)
                if variant == "prmoe":  # DeepSpeed's default; the MoS student has none
                    param(m + "coefficient.bias", [2], 0.5)
        else:
            param(m + "dense_h_to_4h.weight", [F, D])
            param(m + "dense_4h_to_h.weight", [D, F])
    param(enc + "final_layernorm.weight", [D], 0.1, 1.0)
    param(enc + "final_layernorm.bias", [D], 0.1)

    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "model.safetensors"),
          {n: (st, W[n][0], W[n][1]) for n in sorted(W)})
    config = {"architectures": ["DeepSpeedMoEGPT"], "model_type": "deepspeed_moe_gpt",
              "hidden_size": D, "ffn_hidden_size": F, "num_layers": layers,
              "num_attention_heads": H, "vocab_size": V,
              "max_position_embeddings": MAXPOS, "layernorm_epsilon": EPS,
              "num_experts": experts if len(experts) > 1 else experts[0],
              "topk": topk, "expert_interval": 2,
              "mlp_type": "residual" if residual else "standard",
              "disable_moe_token_dropping": True, "add_bias_linear": False,
              "hidden_act": "gelu",
              "torch_dtype": {"f32": "float32", "bf16": "bfloat16"}[dtype]}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)

    w = lambda n: W[n][1]  # noqa: E731

    def linear(x, name, rows, in_n, round_out=True):
        """x [in] times the rows `rows` of the [out, in] weight `name`."""
        return linear_rows(w(name), x, rows, in_n, elt, round_out)

    def layer_norm(x, name):
        s = 0.0
        for v in x:
            s = f32(s + v)
        inv_d = f32(1.0 / D)
        mean = f32(s * inv_d)
        ss = 0.0
        for v in x:
            dv = f32(v - mean)
            ss = f32(ss + f32(dv * dv))
        inv = f32(1.0 / math.sqrt(f32(f32(ss * inv_d) + f32(EPS))))
        g, b = w(name + ".weight"), w(name + ".bias")
        return [elt(f32(f32(f32(f32(x[i] - mean) * inv) * g[i]) + b[i])) for i in range(D)]

    def gelu(x):
        return f32(f32(0.5 * x) * f32(1.0 + f32(math.erf(f32(x * f32(1.0 / math.sqrt(2.0)))))))

    def mlp(x, prefix):
        up = linear(x, prefix + "dense_h_to_4h.weight", range(F), D, round_out=False)
        act = [elt(gelu(u)) for u in up]
        return linear(act, prefix + "dense_4h_to_h.weight", range(D), F)

    def softmax(v):
        mx = max(v)
        ex = [f32(math.exp(f32(x - mx))) for x in v]
        tot = 0.0
        for x in ex:
            tot = f32(tot + x)
        return [f32(x / tot) for x in ex]

    caches = [([], []) for _ in range(layers)]

    def step(token, p):
        h = [elt(f32(a + b)) for a, b in
             zip(w(e + "word_embeddings.weight")[token * D:(token + 1) * D],
                 w(e + "position_embeddings.weight")[p * D:(p + 1) * D])]
        for l in range(layers):
            pre = f"{enc}layers.{l}."
            a = layer_norm(h, pre + "input_layernorm")
            qkv = pre + "self_attention.query_key_value.weight"
            rows = lambda part: [hh * 3 * HD + part * HD + j  # noqa: E731
                                 for hh in range(H) for j in range(HD)]
            q = linear(a, qkv, rows(0), D)
            k = linear(a, qkv, rows(1), D)
            v = linear(a, qkv, rows(2), D)
            att = attend_cached(q, k, v, caches[l], H, H, HD, p, elt)
            o = linear(att, pre + "self_attention.dense.weight", range(D), D)
            h = [elt(f32(h[i] + o[i])) for i in range(D)]
            m = layer_norm(h, pre + "post_attention_layernorm")
            mp = pre + "mlp."
            if l not in moe_of:
                y = mlp(m, mp)
            else:
                n_exp = moe_of[l]
                sc = softmax(linear(m, mp + "deepspeed_moe.gate.wg.weight",
                                    range(n_exp), D, round_out=False))
                order = sorted(range(n_exp), key=lambda j: (-sc[j], j))[:topk]
                wsum = 0.0
                for j in order:
                    wsum = f32(wsum + sc[j])
                # As moe.layer decomposes: the residual MLP scaled by c1 =
                # softmax(x Wc + b)[1] (rounded) starts the combine's f32
                # sum, and c0 scales the routing weights.
                acc = [0.0] * D
                c0 = 1.0
                if residual:
                    lg = linear(m, mp + "coefficient.weight", range(2), D, round_out=False)
                    if mp + "coefficient.bias" in W:
                        lg = [f32(lg[i] + w(mp + "coefficient.bias")[i]) for i in range(2)]
                    sig = lambda x: f32(1.0 / f32(1.0 + f32(math.exp(-x))))  # noqa: E731
                    c0, c1 = sig(f32(lg[0] - lg[1])), sig(f32(lg[1] - lg[0]))
                    r = mlp(m, mp + "mlp.")
                    acc = [f32(elt(f32(r[i] * c1))) for i in range(D)]
                for j in order:
                    yj = mlp(m, mp + f"deepspeed_moe.experts.deepspeed_experts.{j}.")
                    wt = f32(sc[j] / wsum) if topk > 1 else sc[j]
                    if residual:
                        wt = f32(wt * c0)
                    acc = [f32(acc[i] + f32(wt * yj[i])) for i in range(D)]
                y = [elt(x) for x in acc]
            h = [elt(f32(h[i] + y[i])) for i in range(D)]
        n = layer_norm(h, enc + "final_layernorm")
        return linear(n, e + "word_embeddings.weight", range(V), D)

    greedy_generate(step, prompt, new, V, out, tie_gap(dtype == "bf16"))


retry_near_ties(main)
