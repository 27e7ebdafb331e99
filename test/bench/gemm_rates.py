#!/usr/bin/env python3
"""Dense bf16 matmul rates (cuBLAS through torch.matmul) at the expert
kernels' shapes (GPU machine).

    python3 test/bench/gemm_rates.py [--out FILE.md]

For each standard shape at 8192 tokens, the up (with gate: 2 x ffn
columns) and down projections as one dense GEMM of all the token-expert
rows (M = tokens x top_k, no padding, no routing): what the vendor's GEMM
reaches on the same M, K and N as the grouped expert kernels, beside the
large square GEMM that gpu_moe_baselines.py calls the tensor-core rate.
Times are medians of 20 runs between CUDA events (warm L2: the inputs of
these GEMMs are far beyond it).
"""
import argparse
import datetime
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shapes import SHAPES  # noqa: E402


def rate(m, k, n, repeat=20):
    a = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(k, n, dtype=torch.bfloat16, device="cuda")
    for _ in range(3):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        torch.matmul(a, b)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    ms = times[len(times) // 2]
    return ms, 2.0 * m * k * n / (ms * 1e-3) / 1e12


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    rows = []
    ms, peak = rate(8192, 8192, 8192)
    rows.append(("square", "8192^3", 8192, 8192, 8192, ms, peak))
    for name, (experts, k, d, f, _act, gated) in SHAPES.items():
        m = args.tokens * k
        rows.append((name, "up", m, d, (2 if gated else 1) * f) + rate(m, d, (2 if gated else 1) * f))
        rows.append((name, "down", m, f, d) + rate(m, f, d))
    lines = ["# Dense bf16 GEMM rates at the expert kernels' shapes (%s, %s)" % (
        datetime.date.today().isoformat(), torch.cuda.get_device_name(0)), "",
        "torch.matmul (cuBLAS), M = %d tokens x top_k rows, medians of 20." % args.tokens, "",
        "| shape | matrix | M | K | N | ms | TFLOP/s | / square |", "|---|---|---|---|---|---|---|---|"]
    for name, what, m, k, n, ms, tf in rows:
        lines.append("| %s | %s | %d | %d | %d | %.3f | %.0f | %.3f |" % (name, what, m, k, n, ms, tf, tf / peak))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
