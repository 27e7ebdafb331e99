#!/usr/bin/env python3
"""CPU layer benchmark: compiled moe layers against a loop-over-experts C++
baseline, with the memory-bandwidth floor measured in the same run.

    python3 test/bench/cpu_layer_bench.py [--build build] [--out FILE]
                                          [--tokens 1,16,128] [--repeat 20]

Shapes are the standard ones of ../shared/DESIGN.md with hidden and expert
ffn sizes divided by 8 (same experts, top-k and activation), bf16, random
weights and inputs (moe-testgen). Both sides are single-threaded. The floor is
the bytes of the router and of the experts actually hit, over the machine's
measured copy bandwidth. Prints a table and writes it (markdown) to --out.
"""
import argparse
import datetime
import json
import os
import platform
import re
import struct
import subprocess
import sys

SHAPES = [  # name, experts, top-k, hidden, ffn, activation, gated
    ("ds-moe-128/8", 128, 1, 256, 1024, "gelu", False),
    ("mixtral-8x7b/8", 8, 2, 512, 1792, "silu", True),
    ("qwen3-30b-a3b/8", 128, 8, 256, 96, "silu", True),
    ("deepseek-v3/8", 256, 8, 896, 256, "silu", True),
    ("olmoe-1b-7b/8", 64, 8, 256, 128, "silu", True),
]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("bench: %s failed:\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def median_us(text):
    return float(re.search(r"latency: median ([0-9.]+) us", text).group(1))


def read_ids(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    begin, end = header["ids"]["data_offsets"]
    return struct.unpack("<%di" % ((end - begin) // 4), data[begin:end])


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default="build")
    p.add_argument("--out", default=None)
    p.add_argument("--tokens", default="1,16,128")
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    bin_dir = os.path.join(args.build, "bin")
    work = os.path.join(args.build, "bench")
    tokens = [int(t) for t in args.tokens.split(",")]
    bw = float(re.search(r"([0-9.e+]+) GB/s",
                         run([os.path.join(bin_dir, "moe-cpu-baseline"),
                              "--bandwidth"])).group(1)) * 1e9

    rows = []
    for name, experts, k, hidden, ffn, act, gated in SHAPES:
        for t in tokens:
            d = os.path.join(work, "%s-T%d" % (name.replace("/", "_"), t))
            os.makedirs(d, exist_ok=True)
            opts = ["--tokens", str(t), "--hidden", str(hidden), "--ffn",
                    str(ffn), "--experts", str(experts), "--top-k", str(k),
                    "--activation", act, "--dtype", "bf16"]
            if not gated:
                opts.append("--plain")
            run([os.path.join(bin_dir, "moe-testgen"), "gen", "--out", d,
                 "--seed", "1"] + opts)
            run([os.path.join(bin_dir, "moe-compile"),
                 os.path.join(d, "model.mlir"), "-o", os.path.join(d, "model")])
            ours = median_us(run([os.path.join(d, "model"), "--weights",
                                  os.path.join(d, "weights.safetensors"),
                                  "--input", os.path.join(d, "input.safetensors"),
                                  "--output", os.path.join(d, "y.safetensors"),
                                  "--repeat", str(args.repeat)]))
            run([os.path.join(bin_dir, "moe-testgen"), "compare", "--expected",
                 os.path.join(d, "expected.safetensors"), "--actual",
                 os.path.join(d, "y.safetensors"), "--dtype", "bf16"])
            base = median_us(run([os.path.join(bin_dir, "moe-cpu-baseline"), d,
                                  "--repeat", str(args.repeat)] + opts))
            hit = len({e for e in read_ids(os.path.join(d, "expected.safetensors"))
                       if e >= 0})
            mats = 3 if gated else 2
            bytes_hit = 2 * (hidden * experts + hit * mats * hidden * ffn)
            floor_us = bytes_hit / bw * 1e6
            flops = 2.0 * t * k * mats * hidden * ffn
            rows.append((name, t, ours, base, base / ours, floor_us,
                         ours / floor_us, flops / (ours * 1e-6) * 1e-9))

    head = ("| shape | tokens | compiled (us) | baseline (us) | speed-up | "
            "memory floor (us) | compiled / floor | compiled GFLOP/s |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append("| %s | %d | %.1f | %.1f | %.2fx | %.1f | %.1fx | %.2f |" % r)
    meta = ("CPU layer benchmark, %s, %s (1 thread), copy bandwidth %.1f GB/s; "
            "bf16, hidden and ffn of the standard shapes divided by 8."
            % (datetime.date.today().isoformat(), cpu_name(), bw * 1e-9))
    text = meta + "\n\n" + "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write("# " + text)


if __name__ == "__main__":
    main()
