#!/usr/bin/env python3
"""The GPU kernels of a model's dense parts other than moe.attention
(moe.mlp, moe.layer_norm, learned position embeddings, DeepSeek's latent
attention moe.mla_attention; bf16) against a PyTorch
reference, at the sizes of real models and at every path the compiler
picks: dense GEMVs for few rows, tensor-core GEMMs (mma.sync where K is
not a multiple of 64, warpgroup MMAs where it is) from 128 rows.

  dense_cases.py make DIR   (build machine) writes DIR/<case>/model.mlir
      and case.json, and compiles each with moe-compile --target=cuda;
  dense_cases.py check DIR  (GPU machine) makes fresh random weights and
      inputs, runs each executable (which fills its output buffers with NaNs
      before every run), and compares with a float32 reference
      computed with PyTorch from the same bf16 tensors, rounded where the
      model rounds (the up and gate projections stay f32, the activation
      and the down projection are rounded to bf16; LayerNorm in f32,
      rounded once). Tolerance: max |error| over max |reference| <= 1e-2
      (2e-2 for the MLPs: bf16 hidden activations that may round the other
      way, then a sum over the FFN size). Prints a table last; exits
      non-zero on any failure."""
import json
import os
import subprocess
import sys

# A model compiled for the GPU runs its CPU code where the GPU cannot be
# used; here that must fail instead of passing on the CPU.
os.environ.setdefault("MOERT_DEVICE", "gpu")

# name: kind, then its sizes.
CASES = {
    # DeepSpeed-MoE GPT 1.3B's dense MLP (GELU, d 2048, f 8192).
    "mlp-gelu-decode": ("mlp", dict(T=1, D=2048, F=8192, act="gelu")),
    "mlp-gelu-16": ("mlp", dict(T=16, D=2048, F=8192, act="gelu")),
    "mlp-gelu-prefill-wgmma": ("mlp", dict(T=300, D=2048, F=8192, act="gelu")),
    # DeepSeek-V3's dense layers' SwiGLU at a smaller width (d 1024,
    # f 2816), and one whose FFN size is no multiple of 64 (mma.sync for the
    # down projection).
    "mlp-swiglu-decode": ("mlp", dict(T=1, D=1024, F=2816, act="silu", gated=True)),
    "mlp-swiglu-prefill": ("mlp", dict(T=1024, D=1024, F=2816, act="silu", gated=True)),
    "mlp-swiglu-k-mma": ("mlp", dict(T=200, D=512, F=1008, act="silu", gated=True)),
    # Switch Transformers' dense FFN (ReLU), tanh GELU.
    "mlp-relu-8": ("mlp", dict(T=8, D=512, F=2048, act="relu")),
    "mlp-gelu-tanh-130": ("mlp", dict(T=130, D=768, F=3072, act="gelu_tanh")),
    "layernorm-bias-decode": ("layer_norm", dict(T=1, D=2048, bias=True)),
    "layernorm-bias-300": ("layer_norm", dict(T=300, D=4096, bias=True)),
    "layernorm-odd-width": ("layer_norm", dict(T=7, D=1000, bias=False)),
    "position-embedding-batched": ("position", dict(B=3, T=5, D=256, P=2048, pos=[0, 17, 2040])),
    # DeepSeek-V3's latent attention (its head sizes, query and key/value
    # ranks and hidden size; 16 of its 128 heads): a decoding step, and 5
    # rows at once (causal within the step); DeepSeek-V2-Lite's form (no
    # query compression, pairs not interleaved, a given softmax scale).
    "mla-v3-decode": ("mla", dict(T=1, pos=300, S=512, D=2048, H=16, N=128, R=64, V=128,
                                  LQ=1536, LKV=512, inter=True)),
    "mla-v3-decode-4096": ("mla", dict(T=1, pos=4000, S=4096, D=2048, H=16, N=128, R=64, V=128,
                                       LQ=1536, LKV=512, inter=True)),
    "mla-v3-rows-5": ("mla", dict(T=5, pos=100, S=512, D=2048, H=16, N=128, R=64, V=128,
                                  LQ=1536, LKV=512, inter=True)),
    # Many rows a step: the tensor-core kernel with query heads of 192 and
    # value heads of 128 (a partial query tile; keys from a cache at 100).
    "mla-v3-prefill-200": ("mla", dict(T=200, pos=100, S=512, D=2048, H=16, N=128, R=64, V=128,
                                       LQ=1536, LKV=512, inter=True)),
    "mla-v2-lite": ("mla", dict(T=3, pos=0, S=256, D=2048, H=16, N=128, R=64, V=128,
                                LQ=0, LKV=512, inter=False, scale=0.07)),
}


def model_text(kind, c):
    b = "bf16"
    if kind == "mlp":
        T, D, F = c["T"], c["D"], c["F"]
        x, wu, wd = f"tensor<{T}x{D}x{b}>", f"tensor<{D}x{F}x{b}>", f"tensor<{F}x{D}x{b}>"
        gate_arg = f', %wg: {wu} {{moe.weight = "wg"}}' if c.get("gated") else ""
        gate = f" gate(%wg : {wu})" if c.get("gated") else ""
        return f"""func.func @mlp(%x: {x} {{moe.input = "x"}}, %wu: {wu} {{moe.weight = "wu"}}{gate_arg},
    %wd: {wd} {{moe.weight = "wd"}}) -> ({x} {{moe.output = "y"}}) {{
  %y = moe.mlp %x : {x} up(%wu : {wu}){gate} down(%wd : {wd}) {{activation = #moe.activation<{c["act"]}>}} -> {x}
  return %y : {x}
}}
"""
    if kind == "layer_norm":
        T, D = c["T"], c["D"]
        x, w = f"tensor<{T}x{D}x{b}>", f"tensor<{D}x{b}>"
        bias_arg = f', %b: {w} {{moe.weight = "b"}}' if c["bias"] else ""
        bias = f" bias(%b : {w})" if c["bias"] else ""
        return f"""func.func @norm(%x: {x} {{moe.input = "x"}}, %w: {w} {{moe.weight = "w"}}{bias_arg})
    -> ({x} {{moe.output = "y"}}) {{
  %y = moe.layer_norm %x : {x} weight(%w : {w}){bias} {{epsilon = 1.0e-05 : f64}} -> {x}
  return %y : {x}
}}
"""
    if kind == "mla":
        T, S, D, H, N, R, V = (c[k] for k in ("T", "S", "D", "H", "N", "R", "V"))
        LQ, LKV = c["LQ"], c["LKV"]
        x = f"tensor<{T}x{D}x{b}>"
        kc, vc = f"tensor<{S}x{H}x{N + R}x{b}>", f"tensor<{S}x{H}x{V}x{b}>"
        qb = f"tensor<{LQ or D}x{H * (N + R)}x{b}>"
        kva, kvb = f"tensor<{D}x{LKV + R}x{b}>", f"tensor<{LKV}x{H * (N + V)}x{b}>"
        wo = f"tensor<{H * V}x{D}x{b}>"
        qa_args = (f', %qa: tensor<{D}x{LQ}x{b}> {{moe.weight = "qa"}}, '
                   f'%qan: tensor<{LQ}x{b}> {{moe.weight = "qan"}}') if LQ else ""
        qa = f" q_a(%qa : tensor<{D}x{LQ}x{b}>) q_a_norm(%qan : tensor<{LQ}x{b}>)" if LQ else ""
        attrs = f"num_heads = {H} : i64, nope_dim = {N} : i64, rope_dim = {R} : i64, v_dim = {V} : i64"
        if c["inter"]:
            attrs += ", interleaved"
        if "scale" in c:
            attrs += f", softmax_scale = {c['scale']} : f64"
        return f"""func.func @mla(%x: {x} {{moe.input = "x"}}, %pos: tensor<1xi32> {{moe.input = "pos"}},
    %kc: {kc} {{moe.input = "key_cache"}}, %vc: {vc} {{moe.input = "value_cache"}}{qa_args},
    %qb: {qb} {{moe.weight = "qb"}}, %kva: {kva} {{moe.weight = "kva"}},
    %kvan: tensor<{LKV}x{b}> {{moe.weight = "kvan"}}, %kvb: {kvb} {{moe.weight = "kvb"}},
    %wo: {wo} {{moe.weight = "wo"}})
    -> ({x} {{moe.output = "y"}}, {kc} {{moe.output = "new_key_cache"}}, {vc} {{moe.output = "new_value_cache"}}) {{
  %y, %k, %v = moe.mla_attention %x : {x}{qa} q_b(%qb : {qb}) kv_a(%kva : {kva}) kv_a_norm(%kvan : tensor<{LKV}x{b}>) kv_b(%kvb : {kvb}) o(%wo : {wo}) cache(%kc : {kc}, %vc : {vc}) position(%pos : tensor<1xi32>) {{{attrs}}} -> {x}, {kc}, {vc}
  return %y, %k, %v : {x}, {kc}, {vc}
}}
"""
    # Learned positions, as the GPT importer builds them.
    B, T, D, P = c["B"], c["T"], c["D"], c["P"]
    t = f"tensor<{P}x{D}x{b}>"
    return f"""#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
func.func @positions(%pos: tensor<{B}xi32> {{moe.input = "pos"}}, %table: {t} {{moe.weight = "table"}})
    -> (tensor<{B * T}x{D}x{b}> {{moe.output = "y"}}) {{
  %e = tensor.empty() : tensor<{B}x{T}xi32>
  %ids = linalg.generic {{indexing_maps = [#row, #id], iterator_types = ["parallel", "parallel"]}} ins(%pos : tensor<{B}xi32>) outs(%e : tensor<{B}x{T}xi32>) {{
  ^bb0(%p: i32, %o: i32):
    %i = linalg.index 1 : index
    %ti = arith.index_cast %i : index to i32
    %s = arith.addi %p, %ti : i32
    linalg.yield %s : i32
  }} -> tensor<{B}x{T}xi32>
  %flat = tensor.collapse_shape %ids [[0, 1]] : tensor<{B}x{T}xi32> into tensor<{B * T}xi32>
  %y = moe.embedding %flat : tensor<{B * T}xi32> table(%table : {t}) -> tensor<{B * T}x{D}x{b}>
  return %y : tensor<{B * T}x{D}x{b}>
}}
"""


def compile_all_gpu(d, text, flags=(), required=True):
    """Writes `text` to d/model.mlir and compiles it for the GPU (with
    moe-compile's `flags`) into d/model; the report says where each part
    runs: all must be on the GPU. Returns whether it compiled (exits where it
    did not and is `required`)."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.mlir"), "w") as f:
        f.write(text)
    r = subprocess.run(["build/bin/moe-compile", os.path.join(d, "model.mlir"),
                        "--target=cuda", "--cpu=x86-64-v3", "--gpu-report",
                        "-o", os.path.join(d, "model")] + list(flags),
                       capture_output=True, text=True)
    if r.returncode != 0 or "runs on the host" in r.stderr:
        if required:
            raise SystemExit(f"{d}: {r.stderr[-2000:]}")
        print(f"{d}: not compiled: {r.stderr.strip().splitlines()[-1:]}")
        return False
    return True


def make(root):
    for name, (kind, c) in CASES.items():
        d = os.path.join(root, name)
        compile_all_gpu(d, model_text(kind, c))
        json.dump(dict(kind=kind, **c), open(os.path.join(d, "case.json"), "w"))
    print(f"made {len(CASES)} dense cases in {root}")


def mla_reference(c, g, f, weights, inputs):
    """moe.mla_attention's float32 reference with its rounding points (the
    op's description in MoEOps.td), on the GPU; fills `weights` and
    `inputs`. Returns (y, {cache name: new cache})."""
    import torch
    bf = torch.bfloat16
    T, S, D, H, N, R, V = (c[k] for k in ("T", "S", "D", "H", "N", "R", "V"))
    LQ, LKV, pos = c["LQ"], c["LKV"], c["pos"]
    rb = lambda t: t.to(bf).float()  # noqa: E731
    inputs["x"] = g(T, D)
    inputs["pos"] = torch.tensor([pos], dtype=torch.int32)
    inputs["key_cache"], inputs["value_cache"] = g(S, H, N + R), g(S, H, V)
    if LQ:
        weights["qa"], weights["qan"] = g(D, LQ, scale=D ** -0.5), g(LQ, scale=0.2) + 1
    weights["qb"] = g(LQ or D, H * (N + R), scale=(LQ or D) ** -0.5)
    weights["kva"] = g(D, LKV + R, scale=D ** -0.5)
    weights["kvan"] = g(LKV, scale=0.2) + 1
    weights["kvb"] = g(LKV, H * (N + V), scale=LKV ** -0.5)
    weights["wo"] = g(H * V, D, scale=(H * V) ** -0.5)
    W = {k: f(v) for k, v in weights.items()}
    x = f(inputs["x"])

    def rms(t, w):  # moe.rms_norm: the normed row rounded, then times w
        inv = torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6)
        return rb(w * rb(t * inv))

    q = rb((rms(rb(x @ W["qa"]), W["qan"]) if LQ else x) @ W["qb"]).view(T, H, N + R)
    kva = rb(x @ W["kva"])
    kv = rb(rms(kva[:, :LKV], W["kvan"]) @ W["kvb"]).view(T, H, N + V)
    inv = 1.0 / (10000.0 ** (torch.arange(0, R, 2, dtype=torch.int64).float() / R))
    ang = (torch.arange(T).float() + pos)[:, None] * inv[None, :]
    cos = rb(torch.cat([ang.cos(), ang.cos()], -1)).to("cuda")[:, None, :]
    sin = rb(torch.cat([ang.sin(), ang.sin()], -1)).to("cuda")[:, None, :]

    def rope(a):  # [T, n, R]
        if c["inter"]:
            a = a.view(T, a.shape[1], R // 2, 2).transpose(-1, -2).reshape(T, a.shape[1], R)
        rot = torch.cat([-a[..., R // 2:], a[..., :R // 2]], -1)
        return rb(rb(a * cos) + rb(rot * sin))

    qf = torch.cat([q[..., :N], rope(q[..., N:])], -1)
    kf = torch.cat([kv[..., :N], rope(kva[:, None, LKV:]).expand(T, H, R)], -1)
    keys, vals = f(inputs["key_cache"]).clone(), f(inputs["value_cache"]).clone()
    keys[pos:pos + T], vals[pos:pos + T] = kf, kv[..., N:]
    n = pos + T
    scale = c.get("scale", (N + R) ** -0.5)
    s = rb(torch.einsum("thd,jhd->htj", qf, keys[:n]))
    s = rb(s * scale)
    mask = torch.arange(n, device="cuda")[None, :] > (torch.arange(T, device="cuda") + pos)[:, None]
    p = rb(s.masked_fill(mask[None], float("-inf")).softmax(-1))
    o = rb(torch.einsum("htj,jhd->thd", p, vals[:n])).reshape(T, H * V)
    return rb(o @ W["wo"]), {"new_key_cache": keys, "new_value_cache": vals}


def check(root):
    import time
    import torch
    import torch.nn.functional as fn
    from safetensors.torch import load_file, save_file

    seed = int(time.time() * 1000) % (1 << 31)
    torch.manual_seed(seed)
    print(f"dense_cases.py: seed {seed}")
    bf, dev = torch.bfloat16, "cuda"
    rows, failed = [], 0
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.exists(os.path.join(d, "case.json")):
            continue
        c = json.load(open(os.path.join(d, "case.json")))
        kind = c["kind"]
        g = lambda *s, scale=1.0: (torch.randn(*s) * scale).to(bf)  # noqa: E731
        f = lambda t: t.to(dev, torch.float32)  # noqa: E731
        weights, inputs = {}, {}
        if kind == "mlp":
            T, D, F = c["T"], c["D"], c["F"]
            inputs["x"] = g(T, D)
            weights["wu"] = g(D, F, scale=D ** -0.5)
            weights["wd"] = g(F, D, scale=F ** -0.5)
            if c.get("gated"):
                weights["wg"] = g(D, F, scale=D ** -0.5)
            act = {"gelu": fn.gelu, "relu": torch.relu, "silu": fn.silu,
                   "gelu_tanh": lambda v: fn.gelu(v, approximate="tanh")}[c["act"]]
            h = f(inputs["x"]) @ f(weights["wu"])
            a = act(f(inputs["x"]) @ f(weights["wg"])) * h if c.get("gated") else act(h)
            ref = f((f(a.to(bf)) @ f(weights["wd"])).to(bf))
            tol = 2e-2
        elif kind == "layer_norm":
            T, D = c["T"], c["D"]
            # Rows with an offset: the mean must be subtracted.
            inputs["x"] = (torch.randn(T, D) * 2 + torch.randn(T, 1) * 3).to(bf)
            weights["w"] = g(D, scale=0.5)
            x = f(inputs["x"])
            y = (x - x.mean(-1, keepdim=True)) * torch.rsqrt(
                x.var(-1, unbiased=False, keepdim=True) + 1e-5) * f(weights["w"])
            if c["bias"]:
                weights["b"] = g(D, scale=0.5)
                y = y + f(weights["b"])
            ref = f(y.to(bf))
            tol = 1e-2
        elif kind == "mla":
            ref, tol = mla_reference(c, g, f, weights, inputs), 2e-2
        else:
            B, T, D, P = c["B"], c["T"], c["D"], c["P"]
            weights["table"] = g(P, D)
            inputs["pos"] = torch.tensor(c["pos"], dtype=torch.int32)
            ids = (torch.tensor(c["pos"])[:, None] + torch.arange(T)[None, :]).reshape(-1)
            ref = f(weights["table"][ids])
            tol = 0.0
        save_file(weights, os.path.join(d, "weights.safetensors"))
        save_file(inputs, os.path.join(d, "input.safetensors"))
        out = os.path.join(d, "out.safetensors")
        if os.path.exists(out):
            os.remove(out)
        r = subprocess.run([os.path.join(d, "model"), "--weights",
                            os.path.join(d, "weights.safetensors"), "--input",
                            os.path.join(d, "input.safetensors"), "--output", out,
                            "--repeat", "3"], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0 or not os.path.exists(out):
            print(r.stdout[-2000:], r.stderr[-2000:])
            rows.append((name, "FAIL (exit %d)" % r.returncode, "-", "-"))
            failed += 1
            continue
        outs = load_file(out)
        if kind == "mla":
            # The caches, within 1e-2 of their scale, beside the output.
            ref, caches = ref
            for key, want in caches.items():
                e = ((f(outs[key]).reshape(want.shape) - want).abs().max()
                     / want.abs().max()).item()
                if not e <= 1e-2:
                    print(f"{name}: {key} off by {e:.2e} of its scale")
                    tol = -1.0
        got = f(outs["y"]).reshape(ref.shape)
        err = ((got - ref).abs().max() / ref.abs().max()).item()
        ok = err <= tol  # NaN fails too
        failed += not ok
        rows.append((name, "PASS" if ok else "FAIL", f"{err:.2e}", f"{tol:g}"))
    print("\n| case | result | max err / max ref | tolerance |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        raise SystemExit(__doc__)
    sys.exit(make(sys.argv[2]) if sys.argv[1] == "make" else check(sys.argv[2]))
