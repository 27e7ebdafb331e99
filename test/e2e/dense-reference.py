#!/usr/bin/env python3
"""Generates a test of the dense transformer parts (moe.embedding,
moe.rms_norm, moe.layer_norm) with its reference outputs, computed here in
plain Python with f32 rounding after every operation (and bf16 rounding
where the ops round), the way transformers computes them.

Usage: dense-reference.py OUT_DIR DTYPE(f32|bf16) [SEED]
Writes OUT_DIR/model.mlir, weights.safetensors, input.safetensors and
expected.safetensors (outputs "y" = rms_norm(embed(ids)), "z" =
layer_norm(embed(ids)), both as f32). Token ids include two out of range,
which embed to zero rows."""
import json
import math
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_util import bf16, f32, read, write  # noqa: E402

T, V, D = 9, 50, 48
EPS = 1e-5


def main():
    out, dtype = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else random.randrange(1 << 30)
    print(f"dense-reference.py: seed {seed}")
    rnd = random.Random(seed)
    elt = bf16 if dtype == "bf16" else f32
    st = "BF16" if dtype == "bf16" else "F32"
    mlir_t = "bf16" if dtype == "bf16" else "f32"
    table = [elt(rnd.gauss(0, 1)) for _ in range(V * D)]
    norm_w = [elt(1 + 0.1 * rnd.gauss(0, 1)) for _ in range(D)]
    ln_w = [elt(1 + 0.1 * rnd.gauss(0, 1)) for _ in range(D)]
    ln_b = [elt(0.1 * rnd.gauss(0, 1)) for _ in range(D)]
    ids = [rnd.randrange(V) for _ in range(T - 2)] + [V, -1]
    rnd.shuffle(ids)
    y, z = [], []
    for t in ids:
        h = table[t * D:(t + 1) * D] if 0 <= t < V else [0.0] * D
        # RMSNorm: f32 statistics, normalised value rounded, times weight.
        ss = 0.0
        for v in h:
            ss = f32(ss + f32(v * v))
        inv = f32(1.0 / math.sqrt(f32(f32(ss * f32(1.0 / D)) + f32(EPS))))
        y += [elt(f32(norm_w[i] * elt(f32(h[i] * inv)))) for i in range(D)]
        # LayerNorm: mean, then the biased variance, one rounding.
        s = 0.0
        for v in h:
            s = f32(s + v)
        mean = f32(s * f32(1.0 / D))
        sq = 0.0
        for v in h:
            dv = f32(v - mean)
            sq = f32(sq + f32(dv * dv))
        inv = f32(1.0 / math.sqrt(f32(f32(sq * f32(1.0 / D)) + f32(EPS))))
        z += [elt(f32(f32(f32(f32(h[i] - mean) * inv) * ln_w[i]) + ln_b[i])) for i in range(D)]
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "weights.safetensors"),
          {"embed": (st, [V, D], table), "norm": (st, [D], norm_w),
           "ln_w": (st, [D], ln_w), "ln_b": (st, [D], ln_b)})
    write(os.path.join(out, "input.safetensors"), {"ids": ("I32", [T], ids)})
    write(os.path.join(out, "expected.safetensors"),
          {"y": ("F32", [T, D], y), "z": ("F32", [T, D], z)})
    ty = f"tensor<{T}x{D}x{mlir_t}>"
    with open(os.path.join(out, "model.mlir"), "w") as f:
        f.write(f"""func.func @dense(%ids: tensor<{T}xi32> {{moe.input = "ids"}},
    %table: tensor<{V}x{D}x{mlir_t}> {{moe.weight = "embed"}},
    %w: tensor<{D}x{mlir_t}> {{moe.weight = "norm"}},
    %lw: tensor<{D}x{mlir_t}> {{moe.weight = "ln_w"}},
    %lb: tensor<{D}x{mlir_t}> {{moe.weight = "ln_b"}})
    -> ({ty} {{moe.output = "y"}}, {ty} {{moe.output = "z"}}) {{
  %h = moe.embedding %ids : tensor<{T}xi32> table(%table : tensor<{V}x{D}x{mlir_t}>) -> {ty}
  %y = moe.rms_norm %h : {ty} weight(%w : tensor<{D}x{mlir_t}>) {{epsilon = 1.0e-05 : f64}} -> {ty}
  %z = moe.layer_norm %h : {ty} weight(%lw : tensor<{D}x{mlir_t}>) bias(%lb : tensor<{D}x{mlir_t}>) {{epsilon = 1.0e-05 : f64}} -> {ty}
  return %y, %z : {ty}, {ty}
}}
""")


main()
