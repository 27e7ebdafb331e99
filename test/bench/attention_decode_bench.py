#!/usr/bin/env python3
"""Attention: the compiler's decoding kernel (and the tensor-core kernel of
a latent-attention prefill) against PyTorch's scaled_dot_product_attention
and the hardware floor, in one run.

  attention_decode_bench.py make DIR [--variant NAME:FLAGS]...   (build
      machine) compiles one model a shape (moe.attention, or
      moe.mla_attention at DeepSeek-V3's head sizes) with moe-compile
      --target=cuda, and each variant (moe-compile flags, comma-separated,
      e.g. `h1u4:--gpu-attention-heads=1,--gpu-attention-unroll=4`) into
      DIR/variants/NAME where its flags apply to the shape;
  attention_decode_bench.py run DIR [--out FILE.md]   (GPU machine) writes
      random weights, caches and positions, and times, under Nsight Compute
      (gpu__time_duration, clocks left alone, caches flushed before each
      kernel: a decoding step reads its cache from HBM), the compiled
      attention kernel and the kernels of PyTorch's
      scaled_dot_product_attention on the same sizes (bf16, grouped-query
      heads without copying the keys where PyTorch has enable_gqa), median
      of 5 calls each (PyTorch's first of 6 left out). The floor is the cache rows the step reads (keys
      and values of every kv head, bf16) at the read rate measured in the
      same run (a 4 GiB f32 sum, gpu_moe_baselines.measure_floors). Where
      the split hands partial sums to a merge kernel, its time is added.
      The variants are timed the same way, beside the planner's kernel. Prints
      a table last: µs, floor share, speed-up over PyTorch, the variants.

The projections, rotary embedding and cache writes of the compiled model are
left out of its time (Nsight Compute's kernel filter takes only the
attention kernel); PyTorch's time covers only its attention call."""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gpu"))

# name: kind, batch, query rows a sequence (1: decoding; more: a prefill
# from position 0, causal), keys a sequence (the last row's position + 1),
# heads, kv heads, query/key head size, value head size, cache rows a
# sequence.
SHAPES = {
    # Llama-3 8B / Mixtral 8x7B attention (32 heads, 8 kv heads, 128).
    "gqa-32x8-4k": ("attention", 1, 1, 4096, 32, 8, 128, 128, 4096),
    "gqa-32x8-32k": ("attention", 1, 1, 32768, 32, 8, 128, 128, 32768),
    "gqa-32x8-128k": ("attention", 1, 1, 131072, 32, 8, 128, 128, 131072),
    "gqa-32x8-b16-2k": ("attention", 16, 1, 2048, 32, 8, 128, 128, 2048),
    # Qwen3-30B-A3B (32 heads, 4 kv heads, 128), a batch of 64.
    "gqa-32x4-b64-1k": ("attention", 64, 1, 1024, 32, 4, 128, 128, 1024),
    # DeepSeek-V3's latent attention, 16 of its 128 heads (a rank of 8):
    # query/key heads of 192, value heads of 128; decoding, and a prefill of
    # 2048 rows (tensor cores).
    "mla-16-4k": ("mla", 1, 1, 4096, 16, 16, 192, 128, 4096),
    "mla-16-prefill-2k": ("mla", 1, 2048, 2048, 16, 16, 192, 128, 2048),
}


def model_text(kind, B, T, H, KV, hd, dv, S):
    if kind == "mla":
        import dense_cases
        return dense_cases.model_text("mla", dict(T=T, S=S, D=2048, H=H, N=hd - 64, R=64,
                                                  V=dv, LQ=1536, LKV=512, inter=True))
    import attention_cases
    return attention_cases.model_text(B, T, 1024, H, KV, hd, S)


def make(root, variants):
    import dense_cases
    for name, (kind, B, T, rows, H, KV, hd, dv, S) in SHAPES.items():
        text = model_text(kind, B, T, H, KV, hd, dv, S)
        dense_cases.compile_all_gpu(os.path.join(root, name), text)
        for v, flags in variants if T < 16 else []:  # (the decoding kernel's)
            dense_cases.compile_all_gpu(os.path.join(root, "variants", v, name),
                                        text, flags, required=False)
    print(f"made {len(SHAPES)} attention shapes in {root}"
          f" ({len(variants)} variants)")


def ncu_times(cmd, kernel=None, from_start=True):
    """(name, µs) of the kernels Nsight Compute profiles in `cmd`, in launch
    order: those whose name matches the regex `kernel`, or (from_start
    False) those between the program's cudaProfilerStart and Stop."""
    import csv
    import io
    args = ["ncu", "--clock-control", "none", "--cache-control", "all",
            "--metrics", "gpu__time_duration.sum", "--csv", "--page", "raw"]
    if kernel:
        args += ["-k", f"regex:{kernel}"]
    if not from_start:
        args += ["--profile-from-start", "off"]
    r = subprocess.run(args + cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or '"ID"' not in r.stdout:
        raise RuntimeError(f"ncu failed ({r.returncode}): {r.stdout[-1500:]} {r.stderr[-1500:]}")
    rows = list(csv.DictReader(io.StringIO(r.stdout[r.stdout.index('"ID"'):])))
    scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0,
             "ms": 1e3, "msecond": 1e3}
    unit = scale[rows[0]["gpu__time_duration.sum"]]
    out = []
    for row in rows[1:]:
        out.append((row["Kernel Name"], unit * float(row["gpu__time_duration.sum"].replace(",", ""))))
    return out


TORCH_CASE = r"""
import sys, torch
import torch.nn.functional as F
B, T, rows, H, KV, hd, dv = map(int, sys.argv[1:8])
g = lambda *s: torch.randn(*s, device="cuda", dtype=torch.bfloat16)
q, k, v = g(B, H, T, hd), g(B, KV, rows, hd), g(B, KV, rows, dv)
kw = {"is_causal": T > 1}  # (a prefill from position 0: T == rows)
if KV != H:
    try:
        F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        kw["enable_gqa"] = True
    except TypeError:  # older PyTorch: the keys repeated, outside the range
        k, v = (t.repeat_interleave(H // KV, dim=1) for t in (k, v))
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStart()
for i in range(6):
    o = F.scaled_dot_product_attention(q, k, v, **kw)
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStop()
print(kw)
"""


def per_call(times, calls):
    """Sums the kernel durations of `calls` equal calls (launch order) and
    returns each call's total."""
    if not times or len(times) % calls:
        raise RuntimeError(f"{len(times)} kernels for {calls} calls")
    n = len(times) // calls
    return [sum(t for _, t in times[i * n:(i + 1) * n]) for i in range(calls)], \
        sorted({k for k, _ in times})


def run(root, out_md):
    import torch
    from safetensors.torch import save_file
    sys.path.insert(0, HERE)
    from gpu_moe_baselines import measure_floors

    seed = int(time.time() * 1000) % (1 << 31)
    torch.manual_seed(seed)
    copy_bw, read_bw, flops_rate = measure_floors()
    gpu = torch.cuda.get_device_name(0)
    lines = [f"# Decoding attention, {time.strftime('%Y-%m-%d')}, {gpu}", "",
             f"Copy bandwidth {copy_bw / 1e12:.2f} TB/s, read rate {read_bw / 1e12:.2f} TB/s, "
             f"dense bf16 matmul {flops_rate / 1e12:.0f} TFLOP/s (measured in this run); "
             f"seed {seed}. Kernel times from Nsight Compute "
             "(caches flushed before each kernel, clocks not locked), median of 5 calls. "
             "Floor: the keys and values read at the read rate, or the causal "
             "attention's FLOPs at the matmul rate, whichever is longer.", "",
             "| shape | batch | query rows | keys | heads/kv | head q,v | cache MB read | GFLOP | floor µs | compiled µs | floor share | PyTorch µs | speed-up | compiled kernel | PyTorch kernels | variants µs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    vroot = os.path.join(root, "variants")
    variants = sorted(os.listdir(vroot)) if os.path.isdir(vroot) else []
    torch_py = os.path.join(root, "torch_case.py")
    open(torch_py, "w").write(TORCH_CASE)
    bf = torch.bfloat16
    failures = 0
    for name, (kind, B, T, rows, H, KV, hd, dv, S) in SHAPES.items():
        d = os.path.join(root, name)
        g = lambda *s, scale=1.0: (torch.randn(*s) * scale).to(bf)  # noqa: E731
        if kind == "mla":
            D, LQ, LKV = 2048, 1536, 512
            w = {"qa": g(D, LQ, scale=D ** -0.5), "qan": g(LQ), "qb": g(LQ, H * hd, scale=LQ ** -0.5),
                 "kva": g(D, LKV + 64, scale=D ** -0.5), "kvan": g(LKV),
                 "kvb": g(LKV, H * (hd - 64 + dv), scale=LKV ** -0.5), "wo": g(H * dv, D, scale=(H * dv) ** -0.5)}
            inp = {"x": g(T, D), "pos": torch.tensor([rows - T], dtype=torch.int32),
                   "key_cache": g(S, H, hd), "value_cache": g(S, H, dv)}
        else:
            D = 1024
            w = {"wq": g(D, H * hd, scale=D ** -0.5), "wk": g(D, KV * hd, scale=D ** -0.5),
                 "wv": g(D, KV * hd, scale=D ** -0.5), "wo": g(H * hd, D, scale=(H * hd) ** -0.5)}
            inp = {"x": g(B * T, D), "pos": torch.full((B,), rows - T, dtype=torch.int32),
                   "key_cache": g(B * S, KV, hd), "value_cache": g(B * S, KV, dv)}
        save_file(w, os.path.join(d, "weights.safetensors"))
        save_file(inp, os.path.join(d, "input.safetensors"))
        bytes_read = B * rows * KV * (hd + dv) * 2
        # Query row t (at position rows - T + t) attends to rows - T + t + 1 keys.
        pairs = T * (rows - T) + T * (T + 1) // 2
        flops = 2 * B * H * (hd + dv) * pairs
        floor_us = max(bytes_read / read_bw, flops / flops_rate) * 1e6
        row = [name, str(B), str(T), str(rows), f"{H}/{KV}", f"{hd},{dv}",
               f"{bytes_read / 1e6:.1f}", f"{flops / 1e9:.1f}", f"{floor_us:.1f}"]
        def timed(md):
            """(µs, kernel name) of the attention of the model in `md` on
            this shape's weights and inputs: the median of the last 5 calls
            of each of its kernels (the attention kernel, and the merge
            after it where the keys' split hands over partial sums),
            added."""
            exe = [os.path.join(md, "model"), "--weights", os.path.join(d, "weights.safetensors"),
                   "--input", os.path.join(d, "input.safetensors"),
                   "--output", os.path.join(md, "out.safetensors"), "--repeat", "5"]
            times = ncu_times(exe, kernel="moe_(flash_)?attention")
            names = list(dict.fromkeys(k.split("(")[0] for k, _ in times))
            total = sum(statistics.median([t for k, t in times if k.split("(")[0] == n][-5:])
                        for n in names)
            main = [n for n in names if "merge" not in n][-1]
            return total, main + (" + merge" if len(names) > 1 else "")

        try:
            ours_us, ours_name = timed(d)
            theirs_times = ncu_times([sys.executable, torch_py, str(B), str(T), str(rows),
                                      str(H), str(KV), str(hd), str(dv)], from_start=False)
            calls, names = per_call(theirs_times, 6)
            theirs_us = statistics.median(calls[1:])
            vs = []
            for v in variants:
                vd = os.path.join(vroot, v, name)
                if os.path.exists(os.path.join(vd, "model")):
                    t, kname = timed(vd)
                    vs.append(f"{v} {t:.1f} ({kname.split('_bf16_')[-1][:48]})")
            row += [f"{ours_us:.1f}", f"{floor_us / ours_us:.1%}", f"{theirs_us:.1f}",
                    f"{theirs_us / ours_us:.2f}x", ours_name[:72],
                    ", ".join(n.split("(")[0][:50] for n in names), "; ".join(vs) or "-"]
        except Exception as e:  # noqa: BLE001  (the row says why)
            failures += 1
            # (The row keeps 200 characters; the log gets the whole error.)
            print(f"{name}: {e}", flush=True)
            row += ["FAILED", "-", "-", "-", str(e)[:200].replace("|", "/").replace("\n", " "), "-", "-"]
        lines.append("| " + " | ".join(row) + " |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if out_md:
        open(out_md, "w").write(text)
    print(text)
    print(f"{len(SHAPES) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("make", "run"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "make":
        args = sys.argv[3:]
        variants = []
        while args:
            if args[0] != "--variant" or len(args) < 2 or ":" not in args[1]:
                raise SystemExit(__doc__)
            v, flags = args[1].split(":", 1)
            variants.append((v, flags.split(",")))
            args = args[2:]
        make(sys.argv[2], variants)
    else:
        out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else None
        sys.exit(run(sys.argv[2], out))
