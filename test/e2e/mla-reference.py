#!/usr/bin/env python3
"""Generates a test of moe.mla_attention (DeepSeek's multi-head latent
attention with a KV cache) with reference outputs computed here in plain
Python, rounding where transformers' eager DeepseekV3Attention rounds (f32
arithmetic emulated by rounding after every operation).

Usage: mla-reference.py OUT_DIR DTYPE(f32|bf16) TOKENS POSITION
                        [--no-q-lora] [--rotate-half] [--seed N]
Queries go through q_a, its RMSNorm and q_b unless --no-q-lora (then q_b
alone, [d, H*(nope+rope)]); the rotary pairs are interleaved (DeepSeek-V3)
unless --rotate-half. The caches hold random rows everywhere before the
call. Outputs: "y", "new_key_cache", "new_value_cache" (as f32)."""
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_util import attend, matmul, rope as shared_rope  # noqa: E402
from safetensors_util import bf16, f32, write  # noqa: E402

D, H, LQ, LKV, N, R, V, S, THETA, EPS = 32, 4, 24, 16, 8, 4, 6, 16, 10000.0, 1e-6


def main():
    out, dtype, T, pos = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rest = sys.argv[5:]
    q_lora = "--no-q-lora" not in rest
    interleaved = "--rotate-half" not in rest
    seed = int(rest[rest.index("--seed") + 1]) if "--seed" in rest else random.randrange(1 << 30)
    print(f"mla-reference.py: seed {seed}")
    rnd = random.Random(seed)
    elt = bf16 if dtype == "bf16" else f32
    st = "BF16" if dtype == "bf16" else "F32"
    mt = "bf16" if dtype == "bf16" else "f32"
    g = lambda n, s=1.0, m=0.0: [elt(m + rnd.gauss(0, s)) for _ in range(n)]
    x = g(T * D)
    qk = N + R
    W = {}
    if q_lora:
        W["q_a"] = ([D, LQ], g(D * LQ, 0.3))
        W["q_a_norm"] = ([LQ], g(LQ, 0.1, 1.0))
        W["q_b"] = ([LQ, H * qk], g(LQ * H * qk, 0.3))
    else:
        W["q_b"] = ([D, H * qk], g(D * H * qk, 0.3))
    W["kv_a"] = ([D, LKV + R], g(D * (LKV + R), 0.3))
    W["kv_a_norm"] = ([LKV], g(LKV, 0.1, 1.0))
    W["kv_b"] = ([LKV, H * (N + V)], g(LKV * H * (N + V), 0.3))
    W["o"] = ([H * V, D], g(H * V * D, 0.3))
    kc, vc = g(S * H * qk), g(S * H * V)
    w = lambda n: W[n][1]

    def proj(a, wt, rows, inner, cols):
        return matmul(a, wt, rows, inner, cols, elt)

    def rms(a, rows, n, gamma):
        res = []
        for r in range(rows):
            row = a[r * n:(r + 1) * n]
            ss = 0.0
            for v in row:
                ss = f32(ss + f32(v * v))
            inv = f32(1.0 / math.sqrt(f32(f32(ss * f32(1.0 / n)) + f32(EPS))))
            res += [elt(f32(gamma[i] * elt(f32(row[i] * inv)))) for i in range(n)]
        return res

    def rope(vec, p):
        return shared_rope(vec, p, THETA, interleaved, elt)

    if q_lora:
        q = proj(rms(proj(x, w("q_a"), T, D, LQ), T, LQ, w("q_a_norm")), w("q_b"), T, LQ, H * qk)
    else:
        q = proj(x, w("q_b"), T, D, H * qk)
    kva = proj(x, w("kv_a"), T, D, LKV + R)
    latent = rms([kva[t * (LKV + R) + i] for t in range(T) for i in range(LKV)], T, LKV,
                 w("kv_a_norm"))
    kv = proj(latent, w("kv_b"), T, LKV, H * (N + V))
    kc2, vc2 = list(kc), list(vc)
    qs = []  # [T][H][qk]
    for t in range(T):
        p = pos + t
        kpe = rope(kva[t * (LKV + R) + LKV:(t + 1) * (LKV + R)], p)
        qt = []
        for h in range(H):
            base = (t * H + h) * qk
            qt.append(q[base:base + N] + rope(q[base + N:base + qk], p))
            kvb = (t * H + h) * (N + V)
            kc2[(p * H + h) * qk:(p * H + h + 1) * qk] = kv[kvb:kvb + N] + kpe
            vc2[(p * H + h) * V:(p * H + h + 1) * V] = kv[kvb + N:kvb + N + V]
        qs.append(qt)
    scale = f32(1.0 / math.sqrt(qk))
    attended = []
    for t in range(T):
        for h in range(H):
            attended += attend(qs[t][h], lambda j, d: kc2[(j * H + h) * qk + d],
                               lambda j, d: vc2[(j * H + h) * V + d], pos + t, V, scale, elt)
    y = proj(attended, w("o"), T, H * V, D)
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "weights.safetensors"),
          {n: (st, shape, vals) for n, (shape, vals) in W.items()})
    write(os.path.join(out, "input.safetensors"),
          {"x": (st, [T, D], x), "pos": ("I32", [1], [pos]),
           "key_cache": (st, [S, H, qk], kc), "value_cache": (st, [S, H, V], vc)})
    write(os.path.join(out, "expected.safetensors"),
          {"y": ("F32", [T, D], y), "new_key_cache": ("F32", [S, H, qk], kc2),
           "new_value_cache": ("F32", [S, H, V], vc2)})
    ty = lambda shape: "tensor<" + "x".join(map(str, shape)) + f"x{mt}>"
    kct, vct, xt = ty([S, H, qk]), ty([S, H, V]), ty([T, D])
    args = "".join(f',\n    %{n}: {ty(shape)} {{moe.weight = "{n}"}}' for n, (shape, _) in W.items())
    qa = (f'q_a(%q_a : {ty(W["q_a"][0])}) q_a_norm(%q_a_norm : {ty(W["q_a_norm"][0])}) '
          if q_lora else "")
    attrs = f"num_heads = {H} : i64, nope_dim = {N} : i64, rope_dim = {R} : i64, v_dim = {V} : i64"
    if interleaved:
        attrs += ", interleaved"
    with open(os.path.join(out, "model.mlir"), "w") as f:
        f.write(f"""func.func @mla(%x: {xt} {{moe.input = "x"}},
    %pos: tensor<1xi32> {{moe.input = "pos"}},
    %kc: {kct} {{moe.input = "key_cache"}}, %vc: {vct} {{moe.input = "value_cache"}}{args})
    -> ({xt} {{moe.output = "y"}}, {kct} {{moe.output = "new_key_cache"}}, {vct} {{moe.output = "new_value_cache"}}) {{
  %y, %k, %v = moe.mla_attention %x : {xt} {qa}q_b(%q_b : {ty(W["q_b"][0])}) kv_a(%kv_a : {ty(W["kv_a"][0])}) kv_a_norm(%kv_a_norm : {ty(W["kv_a_norm"][0])}) kv_b(%kv_b : {ty(W["kv_b"][0])}) o(%o : {ty(W["o"][0])}) cache(%kc : {kct}, %vc : {vct}) position(%pos : tensor<1xi32>) {{{attrs}}} -> {xt}, {kct}, {vct}
  return %y, %k, %v : {xt}, {kct}, {vct}
}}
""")


main()
