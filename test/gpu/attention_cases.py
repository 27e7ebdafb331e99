#!/usr/bin/env python3
"""GPU attention (moe.attention, bf16) against a PyTorch reference, for the
kernels of both step shapes: the tensor-core kernel of steps with many rows
per sequence (prefill: partial query tiles, grouped-query heads, head sizes
16 to 128, batches of sequences at different positions, a cache filled to
its last row) and the decoding kernel (clusters of blocks splitting the
keys, or blocks handing partial sums to a merge kernel: long caches, fewer
rows than blocks, several rows a step, odd head sizes, batches with and
without a split, several query heads a block).

  attention_cases.py make DIR   (build machine) writes DIR/<case>/model.mlir
      and case.json, and compiles each with moe-compile --target=cuda;
  attention_cases.py check DIR  (GPU machine) makes fresh random weights,
      inputs and caches (every cache row random: rows at and past a
      sequence's position must be overwritten or masked), runs each
      executable, and compares the output and both caches with a float32
      reference computed with PyTorch from the same bf16 inputs (projections
      rounded to bf16 as the model rounds them). Tolerances: max |error|
      over max |reference| <= 2e-2 for the output, <= 1e-2 for the caches.
      Prints a table last; exits non-zero on any failure."""
import json
import os
import subprocess
import sys

# A model compiled for the GPU runs its CPU code where the GPU cannot be
# used; here that must fail instead of passing on the CPU.
os.environ.setdefault("MOERT_DEVICE", "gpu")

THETA = 10000.0
# name: batch, rows per sequence, positions, hidden, heads, kv heads, head
# size, cache rows per sequence[, moe-compile flags].
# (decode-* cases: the CUDA-core kernel, which the default leaves to one
# query head a kv head; mma-*: the tensor-core one.)
MMA, CORES = ["--gpu-attention-kernel=mma"], ["--gpu-attention-kernel=cores"]
CASES = {
    "flash-gqa-partial-tile": (1, 200, [37], 256, 8, 2, 128, 512),
    "flash-hd64-full-cache": (1, 64, [0], 128, 4, 4, 64, 64),
    "flash-batched-3": (3, 80, [0, 17, 100], 128, 4, 2, 32, 256),
    "flash-hd16-min-rows": (1, 16, [3], 64, 4, 2, 16, 32),
    "flash-long-2048": (1, 2048, [0], 512, 4, 1, 128, 2112),
    "decode-batched-2": (2, 1, [5, 300], 256, 8, 2, 128, 512, CORES),
    "decode-one": (1, 1, [700], 256, 8, 2, 128, 1024, CORES),
    # The decoding kernel's key splits (clusters of 2-8 blocks): a cache
    # past one block's shared memory (20000 rows), fewer rows than blocks
    # (position 0), several rows a sequence below the tensor-core kernel's
    # 16, a head size of 80 (16 lanes a key, half of them idle), 4-byte
    # vectors (head size 6), and enough items (40 sequences) for no split.
    "decode-long-20000": (1, 1, [19990], 256, 8, 2, 128, 20000, CORES),
    "decode-pos-0": (1, 1, [0], 256, 8, 2, 128, 1024, CORES),
    "decode-rows-8-batched": (2, 8, [0, 40], 128, 4, 2, 64, 64, CORES),
    "decode-hd80-gqa4": (1, 1, [3999], 640, 16, 4, 80, 4096, CORES),
    "decode-hd6": (1, 2, [100], 64, 4, 4, 6, 128),
    "decode-batched-40": (40, 1, [(i * 23) % 500 for i in range(40)], 256,
                          8, 2, 64, 512, CORES),
    # Several query heads of a kv head a block (each key and value row read
    # once for them), as the planner picks them and forced: 4 heads in
    # clusters of 8; 2 heads at 3 rows a step of 3 sequences with 3 rows in
    # flight a lane; 8 heads of size 6 (row groups that straddle warps, 5
    # rows in flight); value heads of 256 (32 column groups, no shuffles).
    "decode-heads-4-c8": (1, 1, [3000], 256, 8, 2, 128, 4096,
                          ["--gpu-attention-heads=4",
                           "--gpu-attention-split=8"]),
    "decode-heads-2-rows-3": (3, 3, [0, 7, 60], 256, 8, 2, 64, 128,
                              ["--gpu-attention-heads=2",
                               "--gpu-attention-unroll=3"]),
    "decode-heads-8-hd6": (2, 1, [9, 120], 64, 32, 4, 6, 128,
                           ["--gpu-attention-heads=8",
                            "--gpu-attention-unroll=5"]),
    "decode-heads-2-hd256": (1, 1, [500], 512, 4, 2, 256, 1024,
                             ["--gpu-attention-heads=2"]),
    # Splits past a cluster (partial sums, then the merge kernel), as the
    # planner picks them for one sequence (most of the cases above too) and
    # forced: 64 blocks an item over 11 keys (53 blocks without keys), 1024
    # blocks over sequences at positions 0, 1500 and the cache's last row,
    # 4 heads a block; a cache of 500000 rows, past what clusters of 8
    # hold in shared memory.
    "decode-partials-sparse": (1, 1, [10], 256, 8, 2, 128, 4096,
                               ["--gpu-attention-split=64"]),
    "decode-partials-1024": (3, 1, [0, 1500, 4095], 256, 8, 2, 64, 4096,
                             ["--gpu-attention-split=1024",
                              "--gpu-attention-heads=4"]),
    "decode-partials-500k": (1, 1, [450000], 256, 4, 1, 64, 500000, CORES),
    # The tensor-core decoding kernel (--gpu-attention-kernel=mma): partial
    # sums over 8 blocks (one with keys at position 0), several rows a
    # sequence without a split, 4-way splits of 40 sequences, heads of 80,
    # 8 query heads a kv head, 1024 blocks of a 500000-row cache, and 70
    # sequences of 4 kv heads (no split: the block writes the output rows).
    "mma-decode-one": (1, 1, [700], 256, 8, 2, 128, 1024, MMA),
    "mma-pos-0": (1, 1, [0], 256, 8, 2, 128, 1024, MMA),
    "mma-rows-8-batched": (2, 8, [0, 40], 128, 4, 2, 64, 64, MMA),
    "mma-batched-40": (40, 1, [(i * 23) % 500 for i in range(40)], 256, 8, 2,
                       64, 512, MMA),
    "mma-hd80-gqa4": (1, 1, [3999], 640, 16, 4, 80, 4096, MMA),
    "mma-gqa8-3": (3, 1, [5, 900, 2047], 256, 16, 2, 128, 2048, MMA),
    "mma-500k": (1, 1, [450000], 256, 4, 1, 64, 500000, MMA),
    "mma-nosplit-70": (70, 1, [(i * 7) % 250 for i in range(70)], 128, 8, 4,
                       64, 256, MMA),
    # 256 sequences in one step (compiled in seconds since the CPU code
    # loops over the sequences instead of unrolling them).
    "mma-batched-256": (256, 1, [(i * 37) % 200 for i in range(256)], 128, 8,
                        2, 64, 200, MMA),
    # 16 query heads a kv head (the mma rows g + 8 hold heads too) and 6
    # (not a power of two).
    "mma-gqa16": (1, 1, [1500], 256, 32, 2, 64, 2048, MMA),
    "mma-gqa6": (2, 1, [100, 900], 192, 12, 2, 64, 1024, MMA),
}


def model_text(B, T, D, H, KV, HD, S):
    """A moe.attention step of B sequences of T rows (hidden D, H heads over
    KV kv heads of size HD, S cache rows a sequence) as a model."""
    xt = f"tensor<{B * T}x{D}xbf16>"
    c = f"tensor<{B * S}x{KV}x{HD}xbf16>"
    wq, wk = f"tensor<{D}x{H * HD}xbf16>", f"tensor<{D}x{KV * HD}xbf16>"
    wo = f"tensor<{H * HD}x{D}xbf16>"
    return f"""func.func @attention(%x: {xt} {{moe.input = "x"}},
    %pos: tensor<{B}xi32> {{moe.input = "pos"}},
    %kc: {c} {{moe.input = "key_cache"}}, %vc: {c} {{moe.input = "value_cache"}},
    %wq: {wq} {{moe.weight = "wq"}}, %wk: {wk} {{moe.weight = "wk"}},
    %wv: {wk} {{moe.weight = "wv"}}, %wo: {wo} {{moe.weight = "wo"}})
    -> ({xt} {{moe.output = "y"}}, {c} {{moe.output = "new_key_cache"}}, {c} {{moe.output = "new_value_cache"}}) {{
  %y, %k, %v = moe.attention %x : {xt} q(%wq : {wq}) k(%wk : {wk}) v(%wv : {wk}) o(%wo : {wo}) cache(%kc : {c}, %vc : {c}) position(%pos : tensor<{B}xi32>) {{num_heads = {H} : i64, num_kv_heads = {KV} : i64, rope_theta = {THETA} : f64}} -> {xt}, {c}, {c}
  return %y, %k, %v : {xt}, {c}, {c}
}}
"""


def make(root):
    import dense_cases
    for name, case in CASES.items():
        (B, T, pos, D, H, KV, HD, S), flags = case[:8], list(case[8:9])
        flags = flags[0] if flags else []
        d = os.path.join(root, name)
        # (Every part on the GPU, checked by the compiler's report: a case
        # whose sizes the GPU kernels refuse would test the CPU code.)
        dense_cases.compile_all_gpu(d, model_text(B, T, D, H, KV, HD, S), flags)
        json.dump(dict(B=B, T=T, pos=pos, D=D, H=H, KV=KV, HD=HD, S=S),
                  open(os.path.join(d, "case.json"), "w"))
    print(f"made {len(CASES)} attention cases in {root}")


def check(root):
    import time
    import torch
    from safetensors.torch import load_file, save_file

    seed = int(time.time() * 1000) % (1 << 31)
    torch.manual_seed(seed)
    print(f"attention_cases.py: seed {seed}")
    rows, failed = [], 0
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.exists(os.path.join(d, "case.json")):
            continue
        cs = json.load(open(os.path.join(d, "case.json")))
        B, T, pos, D, H, KV, HD, S = (cs[k] for k in
                                      ("B", "T", "pos", "D", "H", "KV", "HD", "S"))
        bf = torch.bfloat16
        g = lambda *s, scale=1.0: (torch.randn(*s) * scale).to(bf)  # noqa: E731
        x = g(B * T, D)
        wq, wk = g(D, H * HD, scale=D ** -0.5), g(D, KV * HD, scale=D ** -0.5)
        wv, wo = g(D, KV * HD, scale=D ** -0.5), g(H * HD, D, scale=(H * HD) ** -0.5)
        kc, vc = g(B * S, KV, HD), g(B * S, KV, HD)
        save_file({"wq": wq, "wk": wk, "wv": wv, "wo": wo},
                  os.path.join(d, "weights.safetensors"))
        save_file({"x": x, "pos": torch.tensor(pos, dtype=torch.int32),
                   "key_cache": kc, "value_cache": vc},
                  os.path.join(d, "input.safetensors"))
        out = os.path.join(d, "out.safetensors")
        if os.path.exists(out):
            os.remove(out)
        r = subprocess.run([os.path.join(d, "model"), "--weights",
                            os.path.join(d, "weights.safetensors"), "--input",
                            os.path.join(d, "input.safetensors"), "--output", out,
                            "--repeat", "1"], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout[-2000:], r.stderr[-2000:])
            rows.append((name, "FAIL (exit %d)" % r.returncode, "-", "-", "-"))
            failed += 1
            continue
        got = load_file(out)

        # The reference, on the GPU in float32.
        dev = "cuda"
        f = lambda t: t.to(dev, torch.float32)  # noqa: E731
        q = f((f(x) @ f(wq)).to(bf)).view(B, T, H, HD)
        k = f((f(x) @ f(wk)).to(bf)).view(B, T, KV, HD)
        v = f((f(x) @ f(wv)).to(bf)).view(B, T, KV, HD)
        inv = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.int64).float() / HD))
        inv = inv.to(dev)

        def rope(a, p0):
            p = torch.arange(T, device=dev, dtype=torch.float32) + p0
            ang = p[:, None] * inv[None, :]
            cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None, :]
            sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None, :]
            rot = torch.cat([-a[..., HD // 2:], a[..., :HD // 2]], -1)
            return a * cos + rot * sin

        kc2, vc2 = f(kc).view(B, S, KV, HD).clone(), f(vc).view(B, S, KV, HD).clone()
        ys = []
        for b in range(B):
            qb, kb = rope(q[b], pos[b]), rope(k[b], pos[b])
            kc2[b, pos[b]:pos[b] + T] = kb.to(bf).float()
            vc2[b, pos[b]:pos[b] + T] = v[b]
            n = pos[b] + T
            keys = kc2[b, :n].repeat_interleave(H // KV, dim=1)  # [n, H, HD]
            vals = vc2[b, :n].repeat_interleave(H // KV, dim=1)
            s = torch.einsum("thd,jhd->htj", qb.to(bf).float(), keys) / HD ** 0.5
            mask = (torch.arange(n, device=dev)[None, :] >
                    (torch.arange(T, device=dev) + pos[b])[:, None])
            s = s.masked_fill(mask[None], float("-inf"))
            o = torch.einsum("htj,jhd->thd", s.softmax(-1), vals).reshape(T, H * HD)
            ys.append(f((o.to(bf).float() @ f(wo)).to(bf)))
        ref = {"y": torch.cat(ys), "new_key_cache": kc2.view(B * S, KV, HD),
               "new_value_cache": vc2.view(B * S, KV, HD)}
        errs = []
        for key, tol in (("y", 2e-2), ("new_key_cache", 1e-2), ("new_value_cache", 1e-2)):
            a, e = f(got[key]).reshape(ref[key].shape), ref[key]
            err = ((a - e).abs().max() / e.abs().max()).item()
            errs.append(err)
            if not err <= tol:  # NaN fails too
                failed += 1
        ok = errs[0] <= 2e-2 and errs[1] <= 1e-2 and errs[2] <= 1e-2
        rows.append((name, "PASS" if ok else "FAIL", f"{errs[0]:.2e}",
                     f"{errs[1]:.2e}", f"{errs[2]:.2e}"))
    print("\n| case | result | y err | key cache err | value cache err |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"{len(rows) - sum(1 for r in rows if r[1] != 'PASS')} passed, "
          f"{sum(1 for r in rows if r[1] != 'PASS')} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        raise SystemExit(__doc__)
    sys.exit(make(sys.argv[2]) if sys.argv[1] == "make" else check(sys.argv[2]))
