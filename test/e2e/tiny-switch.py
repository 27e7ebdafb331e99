#!/usr/bin/env python3
"""A tiny random Switch Transformers checkpoint in the Hugging Face format
(config.json, model.safetensors with transformers' names and [out, in]
layouts) and the moe dialect's reference for it in plain Python (f32): the
encoder over the prompt, then greedy decoding from the decoder start token
with a self-attention cache and cross-attention to the encoder.

Each stack has two blocks: block 0 with a dense FFN (wo(relu(wi x))) and
block 1 with a top-1 MoE FFN (softmax router, the output scaled by the
chosen expert's probability). Attention is T5's: no rotary embedding,
unscaled scores, a relative-position bias table owned by block 0 of each
stack and shared by both blocks (bidirectional buckets in the encoder,
causal ones in the decoder), cross-attention without bias. Layer norms are
RMS norms; the tied LM head scales its input by d_model^-0.5.
With --bf16, the checkpoint only, in bfloat16 (the shapes of
test/gpu/tiny_configs.py's switch_transformers, which make-hf-models.sh
compiles for the GPU comparison with transformers).
With --embed-name=NAME, the tied embedding is stored under NAME instead of
shared.weight (transformers may save it under a stack's embed_tokens).
Usage: tiny-switch.py OUT_DIR PROMPT_IDS NEW_TOKENS [SEED] [--bf16]
                      [--embed-name=NAME]
Writes OUT_DIR/expected.txt ("generated: ...") and
OUT_DIR/expected-logits.safetensors (the logits each token was drawn from)."""
import json
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_util import greedy_generate, linear_rows, param_maker, retry_near_ties, rms_norm, seed_of, tie_gap  # noqa: E402
from safetensors_util import bf16, f32, write  # noqa: E402

V, D, H, DKV, F, E, LAYERS = 64, 32, 4, 8, 48, 4, 2
BUCKETS, MAX_DISTANCE, EPS, START = 8, 16, 1e-6, 0
INNER = H * DKV


def bucket(rel, bidirectional):
    """transformers' _relative_position_bucket for key - query = rel (f32)."""
    nb, b = BUCKETS, 0
    if bidirectional:
        nb //= 2
        if rel > 0:
            b += nb
        rel = abs(rel)
    else:
        rel = -min(rel, 0)
    exact = nb // 2
    if rel < exact:
        return b + rel
    ratio = f32(f32(float(rel)) / f32(float(exact)))
    scaled = f32(f32(f32(math.log(ratio)) / f32(math.log(MAX_DISTANCE / exact))) * f32(nb - exact))
    return b + min(exact + int(scaled), nb - 1)


def main(retry=0):
    half = "--bf16" in sys.argv
    embed_name = next((a.split("=", 1)[1] for a in sys.argv
                       if a.startswith("--embed-name=")), "shared.weight")
    args = [a for a in sys.argv if a != "--bf16" and not a.startswith("--embed-name=")]
    out, prompt, new = args[1], args[2], int(args[3])
    seed = seed_of(args[4] if len(args) > 4 else None, retry)
    print(f"tiny-switch.py: seed {seed}", file=sys.stderr)
    prompt = [int(p) for p in prompt.split(",")]
    rnd = random.Random(seed)
    W = {}
    param = param_maker(W, rnd, bf16 if half else f32)

    param("shared.weight", [V, D], 1.0)
    for stack in ("encoder", "decoder"):
        param(f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
              [BUCKETS, H], 0.5)
        for i in range(LAYERS):
            p = f"{stack}.block.{i}.layer."
            attns = [("0", "SelfAttention")]
            if stack == "decoder":
                attns.append(("1", "EncDecAttention"))
            for idx, kind in attns:
                param(f"{p}{idx}.layer_norm.weight", [D], 0.1, 1.0)
                for n in "qkv":
                    param(f"{p}{idx}.{kind}.{n}.weight", [INNER, D])
                param(f"{p}{idx}.{kind}.o.weight", [D, INNER])
            ff = "2" if stack == "decoder" else "1"
            param(f"{p}{ff}.layer_norm.weight", [D], 0.1, 1.0)
            if i == 0:
                param(f"{p}{ff}.mlp.wi.weight", [F, D])
                param(f"{p}{ff}.mlp.wo.weight", [D, F])
            else:
                param(f"{p}{ff}.mlp.router.classifier.weight", [E, D], 0.5)
                for e in range(E):
                    param(f"{p}{ff}.mlp.experts.expert_{e}.wi.weight", [F, D])
                    param(f"{p}{ff}.mlp.experts.expert_{e}.wo.weight", [D, F])
        param(f"{stack}.final_layer_norm.weight", [D], 0.1, 1.0)

    os.makedirs(out, exist_ok=True)
    stored = {embed_name if n == "shared.weight" else n: W[n] for n in W}
    write(os.path.join(out, "model.safetensors"),
          {n: ("BF16" if half else "F32", stored[n][0], stored[n][1])
           for n in sorted(stored)})
    config = {"architectures": ["SwitchTransformersForConditionalGeneration"],
              "model_type": "switch_transformers", "vocab_size": V, "d_model": D,
              "d_kv": DKV, "d_ff": F, "num_heads": H, "num_layers": LAYERS,
              "num_decoder_layers": LAYERS, "num_experts": E, "expert_capacity": 64,
              "encoder_sparse_step": 2, "decoder_sparse_step": 2,
              "relative_attention_num_buckets": BUCKETS,
              "relative_attention_max_distance": MAX_DISTANCE,
              "layer_norm_epsilon": EPS, "dense_act_fn": "relu",
              "decoder_start_token_id": START, "pad_token_id": 0, "eos_token_id": 1,
              "tie_word_embeddings": True, "is_encoder_decoder": True,
              "dtype": "bfloat16" if half else "float32"}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    if half:
        return

    w = lambda n: W[n][1]

    def linear(x, name, out_n, in_n):
        return linear_rows(w(name), x, range(out_n), in_n, f32)

    def rms(x, name):
        return rms_norm(x, w(name), EPS, f32)

    def attend(q, keys, values, visible, bias):
        """Each head of q over rows `visible` of keys/values [row][INNER];
        bias(h, j) is added to the unscaled score."""
        res = []
        for h in range(H):
            sl = slice(h * DKV, (h + 1) * DKV)
            scores = []
            for j in visible:
                acc = 0.0
                for a, b in zip(q[sl], keys[j][sl]):
                    acc = f32(acc + f32(a * b))
                scores.append(f32(acc + bias(h, j)))
            m = max(scores)
            es = [f32(math.exp(f32(s - m))) for s in scores]
            tot = 0.0
            for e in es:
                tot = f32(tot + e)
            p = [f32(e / tot) for e in es]
            for d in range(DKV):
                acc = 0.0
                for pj, j in zip(p, visible):
                    acc = f32(acc + f32(pj * values[j][h * DKV + d]))
                res.append(acc)
        return res

    def ffn(x, p, sparse):
        if not sparse:
            up = linear(x, p + "mlp.wi.weight", F, D)
            return linear([max(u, 0.0) for u in up], p + "mlp.wo.weight", D, F)
        logits = linear(x, p + "mlp.router.classifier.weight", E, D)
        mx = max(logits)
        ex = [f32(math.exp(f32(v - mx))) for v in logits]
        tot = 0.0
        for e in ex:
            tot = f32(tot + e)
        probs = [f32(e / tot) for e in ex]
        best = max(range(E), key=lambda e: (probs[e], -e))
        q = p + f"mlp.experts.expert_{best}."
        up = linear(x, q + "wi.weight", F, D)
        y = linear([max(u, 0.0) for u in up], q + "wo.weight", D, F)
        return [f32(probs[best] * v) for v in y]

    add = lambda a, b: [f32(x + y) for x, y in zip(a, b)]

    # The encoder over the whole prompt.
    P = len(prompt)
    xs = [list(w("shared.weight")[t * D:(t + 1) * D]) for t in prompt]
    enc_bias = w("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
    for i in range(LAYERS):
        p = f"encoder.block.{i}.layer."
        hs = [rms(x, p + "0.layer_norm.weight") for x in xs]
        a = p + "0.SelfAttention."
        qs = [linear(h, a + "q.weight", INNER, D) for h in hs]
        ks = [linear(h, a + "k.weight", INNER, D) for h in hs]
        vs = [linear(h, a + "v.weight", INNER, D) for h in hs]
        for t in range(P):
            att = attend(qs[t], ks, vs, range(P),
                         lambda h, j: enc_bias[bucket(j - t, True) * H + h])
            xs[t] = add(xs[t], linear(att, a + "o.weight", D, INNER))
        xs = [add(x, ffn(rms(x, p + "1.layer_norm.weight"), p + "1.", i == 1)) for x in xs]
    enc = [rms(x, "encoder.final_layer_norm.weight") for x in xs]
    cross = []
    for i in range(LAYERS):
        c = f"decoder.block.{i}.layer.1.EncDecAttention."
        cross.append(([linear(x, c + "k.weight", INNER, D) for x in enc],
                      [linear(x, c + "v.weight", INNER, D) for x in enc]))

    dec_bias = w("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
    caches = [([], []) for _ in range(LAYERS)]

    def step(token, pos):
        x = list(w("shared.weight")[token * D:(token + 1) * D])
        for i in range(LAYERS):
            p = f"decoder.block.{i}.layer."
            h = rms(x, p + "0.layer_norm.weight")
            a = p + "0.SelfAttention."
            keys, values = caches[i]
            keys.append(linear(h, a + "k.weight", INNER, D))
            values.append(linear(h, a + "v.weight", INNER, D))
            q = linear(h, a + "q.weight", INNER, D)
            att = attend(q, keys, values, range(pos + 1),
                         lambda hh, j: dec_bias[bucket(j - pos, False) * H + hh])
            x = add(x, linear(att, a + "o.weight", D, INNER))
            h = rms(x, p + "1.layer_norm.weight")
            c = p + "1.EncDecAttention."
            att = attend(linear(h, c + "q.weight", INNER, D), cross[i][0], cross[i][1],
                         range(P), lambda hh, j: 0.0)
            x = add(x, linear(att, c + "o.weight", D, INNER))
            x = add(x, ffn(rms(x, p + "2.layer_norm.weight"), p + "2.", i == 1))
        n = rms(x, "decoder.final_layer_norm.weight")
        n = [f32(v * f32(1.0 / math.sqrt(D))) for v in n]
        return linear(n, "shared.weight", V, D)

    # The decoder's own prompt is its start token.
    greedy_generate(step, [START], new, V, out, tie_gap(half))


retry_near_ties(main)
