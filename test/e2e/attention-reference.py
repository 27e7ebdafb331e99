#!/usr/bin/env python3
"""Generates a test of moe.attention (causal, grouped-query heads, rotary
embedding, KV cache) with reference outputs computed here in plain Python,
rounding where transformers' eager Llama/Mixtral attention rounds (f32
arithmetic emulated by rounding after every operation).

Usage: attention-reference.py OUT_DIR DTYPE(f32|bf16) TOKENS POSITION [SEED]
The caches hold random rows everywhere before the call (rows at and after
POSITION must be overwritten or masked). Outputs: "y", "new_key_cache",
"new_value_cache" (as f32)."""
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_util import attend, matmul  # noqa: E402
from safetensors_util import bf16, f32, read, write  # noqa: E402

D, H, KV, HD, S, THETA = 32, 4, 2, 8, 16, 10000.0


def main():
    out, dtype, T, pos = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else random.randrange(1 << 30)
    print(f"attention-reference.py: seed {seed}")
    rnd = random.Random(seed)
    elt = bf16 if dtype == "bf16" else f32
    st = "BF16" if dtype == "bf16" else "F32"
    mt = "bf16" if dtype == "bf16" else "f32"
    g = lambda n, s=1.0: [elt(rnd.gauss(0, s)) for _ in range(n)]
    x = g(T * D)
    wq, wk, wv = g(D * H * HD, 0.3), g(D * KV * HD, 0.3), g(D * KV * HD, 0.3)
    wo = g(H * HD * D, 0.3)
    kc, vc = g(S * KV * HD), g(S * KV * HD)

    def proj(a, w, rows, inner, cols):
        return matmul(a, w, rows, inner, cols, elt)

    q = proj(x, wq, T, D, H * HD)
    k = proj(x, wk, T, D, KV * HD)
    v = proj(x, wv, T, D, KV * HD)
    half = HD // 2

    def rope(a, n):
        out = list(a)
        for t in range(T):
            p = pos + t
            for h in range(n):
                base = (t * n + h) * HD
                for i in range(HD):
                    j = i % half
                    inv = f32(1.0 / f32(THETA ** f32(f32(2.0 * j) / HD)))
                    ang = f32(float(p) * inv)
                    c, s = elt(f32(math.cos(ang))), elt(f32(math.sin(ang)))
                    other = a[base + (i + half if i < half else i - half)]
                    rot = -other if i < half else other
                    out[base + i] = elt(f32(elt(f32(a[base + i] * c)) + elt(f32(rot * s))))
        return out

    q, k = rope(q, H), rope(k, KV)
    kc2, vc2 = list(kc), list(vc)
    for t in range(T):
        kc2[(pos + t) * KV * HD:(pos + t + 1) * KV * HD] = k[t * KV * HD:(t + 1) * KV * HD]
        vc2[(pos + t) * KV * HD:(pos + t + 1) * KV * HD] = v[t * KV * HD:(t + 1) * KV * HD]
    scale = f32(1.0 / math.sqrt(HD))
    attended = []
    for t in range(T):
        for h in range(H):
            kvh = h // (H // KV)
            attended += attend(q[(t * H + h) * HD:(t * H + h + 1) * HD],
                               lambda j, d: kc2[(j * KV + kvh) * HD + d],
                               lambda j, d: vc2[(j * KV + kvh) * HD + d], pos + t, HD, scale, elt)
    y = proj(attended, wo, T, H * HD, D)
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "weights.safetensors"),
          {"wq": (st, [D, H * HD], wq), "wk": (st, [D, KV * HD], wk),
           "wv": (st, [D, KV * HD], wv), "wo": (st, [H * HD, D], wo)})
    write(os.path.join(out, "input.safetensors"),
          {"x": (st, [T, D], x), "pos": ("I32", [1], [pos]),
           "key_cache": (st, [S, KV, HD], kc), "value_cache": (st, [S, KV, HD], vc)})
    write(os.path.join(out, "expected.safetensors"),
          {"y": ("F32", [T, D], y), "new_key_cache": ("F32", [S, KV, HD], kc2),
           "new_value_cache": ("F32", [S, KV, HD], vc2)})
    c = f"tensor<{S}x{KV}x{HD}x{mt}>"
    xt = f"tensor<{T}x{D}x{mt}>"
    with open(os.path.join(out, "model.mlir"), "w") as f:
        f.write(f"""func.func @attention(%x: {xt} {{moe.input = "x"}},
    %pos: tensor<1xi32> {{moe.input = "pos"}},
    %kc: {c} {{moe.input = "key_cache"}}, %vc: {c} {{moe.input = "value_cache"}},
    %wq: tensor<{D}x{H * HD}x{mt}> {{moe.weight = "wq"}},
    %wk: tensor<{D}x{KV * HD}x{mt}> {{moe.weight = "wk"}},
    %wv: tensor<{D}x{KV * HD}x{mt}> {{moe.weight = "wv"}},
    %wo: tensor<{H * HD}x{D}x{mt}> {{moe.weight = "wo"}})
    -> ({xt} {{moe.output = "y"}}, {c} {{moe.output = "new_key_cache"}}, {c} {{moe.output = "new_value_cache"}}) {{
  %y, %k, %v = moe.attention %x : {xt} q(%wq : tensor<{D}x{H * HD}x{mt}>) k(%wk : tensor<{D}x{KV * HD}x{mt}>) v(%wv : tensor<{D}x{KV * HD}x{mt}>) o(%wo : tensor<{H * HD}x{D}x{mt}>) cache(%kc : {c}, %vc : {c}) position(%pos : tensor<1xi32>) {{num_heads = {H} : i64, num_kv_heads = {KV} : i64, rope_theta = {THETA} : f64}} -> {xt}, {c}, {c}
  return %y, %k, %v : {xt}, {c}, {c}
}}
""")


main()
