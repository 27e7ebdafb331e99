#!/usr/bin/env python3
"""A/B of compiled layers' kernel times under Nsight Compute (GPU machine).

    python3 test/bench/ab_kernels.py DIR_A,DIR_B[,...] SHAPE:TOKENS[,...]
        [--rounds 2] [--out FILE.md] [--dram] [--limits] [--clocks base|none]

For each layer and variant (DIR/SHAPE-tTOKENS.so from
make-compiled-layers.py), runs profile_layer.py under `ncu` with the
clocks locked to base (Nsight Compute's default), which also checks the
output against the fp32 reference, and takes the duration of each kernel
of the second of its two runs. Rounds take the variants in turn. Prints per
layer each variant's kernel sum (the median over rounds), the expert
kernels' (is_expert) and the ratios to the first
variant; then each kernel's time. Locked clocks take away the drift of the
boost clock under power that spreads graph replays by 10-15% at 8192
tokens (results/routing-select-2026-12-04.md); launch gaps are not in it.
--dram also takes each kernel's DRAM bytes read and L2 hit rate (more
passes of each kernel under the profiler; the times stay one pass's).
--limits takes how close each kernel comes to the GPU's limits (DRAM
bytes read and written, DRAM, L2 and SM throughput and the tensor pipe's
active cycles, wgmma and mma.sync both, as shares of the peak over the
kernel's time) and prints a table of them per layer and variant (with one
DIR, a layer's kernels against the limits). --clocks none leaves the
clocks alone (as the benchmark runs; the default locks them to base).
"""
import argparse
import collections
import csv
import datetime
import io
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


DRAM_METRICS = ["dram__bytes_read.sum", "lts__t_sector_hit_rate.pct"]
# --limits: (metric, column), the shares of the peak over the kernel's time.
LIMIT_METRICS = [
    ("dram__throughput.avg.pct_of_peak_sustained_elapsed", "DRAM %"),
    ("lts__throughput.avg.pct_of_peak_sustained_elapsed", "L2 %"),
    ("sm__throughput.avg.pct_of_peak_sustained_elapsed", "SM %"),
    ("sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed",
     "tensor %"),
]


def kernel_times(d, name, tokens, dram=False, limits=False, clocks="base"):
    """Kernel name -> microseconds of the layer's second run; with dram,
    also kernel name -> (DRAM GB read, L2 hit %); with limits, also kernel
    name -> (MB read, MB written over its launches, then LIMIT_METRICS'
    shares of its last launch)."""
    metrics = ["gpu__time_duration.sum"]
    if dram or limits:
        metrics += DRAM_METRICS
    if limits:
        metrics += ["dram__bytes_write.sum"] + [m for m, _ in LIMIT_METRICS]
    cmd = ["ncu", "--clock-control", clocks, "--kernel-name",
           "regex:^(moe_|round_)", "--metrics",
           ",".join(metrics), "--csv", "--page", "raw", sys.executable, os.path.join(HERE, "profile_layer.py"),
           name, str(tokens), d]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-2000:] + r.stderr[-2000:])
        raise SystemExit(f"ncu on {d} {name} {tokens} failed ({r.returncode})")
    text = r.stdout[r.stdout.index('"ID"'):]
    rows = [row for row in csv.DictReader(io.StringIO(text))
            if row.get("ID", "").isdigit()]
    unit = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}
    header = next(csv.DictReader(io.StringIO(text)))
    scale = unit.get(header.get("gpu__time_duration.sum", "nsecond"), 1e-3)
    # Two runs of the layer: the second half of its launches.
    rows = rows[len(rows) // 2:]
    bytes_unit = {"byte": 1e-9, "Kbyte": 1e-6, "Mbyte": 1e-3, "Gbyte": 1.0}

    def value(row, metric):
        return float(row[metric].replace(",", ""))

    def gbytes(row, metric):
        return bytes_unit.get(header.get(metric, "byte"), 1e-9) * value(row, metric)
    out = collections.OrderedDict()
    mem = collections.OrderedDict()
    lim = collections.OrderedDict()
    for row in rows:
        t = scale * value(row, "gpu__time_duration.sum")
        k = row["Kernel Name"]
        out[k] = out.get(k, 0.0) + t
        if dram or limits:
            gb = gbytes(row, "dram__bytes_read.sum")
            hit = value(row, "lts__t_sector_hit_rate.pct")
            mem[k] = (mem.get(k, (0.0, hit))[0] + gb, hit)
        if limits:
            before = lim.get(k, (0.0, 0.0))
            lim[k] = (before[0] + 1e3 * gb,
                      before[1] + 1e3 * gbytes(row, "dram__bytes_write.sum")) + \
                tuple(value(row, m) for m, _ in LIMIT_METRICS)
    if limits:
        return out, mem, lim
    return (out, mem) if dram else out


def is_expert(k):
    """The expert kernels: the tensor-core paths' up and down kernels (not
    the routers' dense ones), the GEMVs, the fused FFN and decode kernels."""
    return k.startswith(("moe_wgmma_pair", "moe_wgmma_plain",
                         "moe_wgmma_scatter", "moe_wgmma_weighted",
                         "moe_mma_pair", "moe_mma_plain", "moe_mma_scatter",
                         "moe_mma_weighted", "moe_gemv_gather",
                         "moe_gemv_scatter", "moe_ffn", "moe_decode"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dirs")
    p.add_argument("layers")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=None)
    p.add_argument("--dram", action="store_true")
    p.add_argument("--limits", action="store_true")
    p.add_argument("--clocks", default="base", choices=["base", "none"])
    args = p.parse_args()
    dirs = args.dirs.split(",")
    layers = [(s.split(":")[0], int(s.split(":")[1]))
              for s in args.layers.split(",")]
    res, mems, lims = {}, {}, {}
    for name, tokens in layers:
        for r in range(args.rounds):
            for d in dirs:
                got = kernel_times(d, name, tokens, args.dram, args.limits,
                                   args.clocks)
                if args.limits:
                    got, mems[(name, tokens, d)], lims[(name, tokens, d)] = got
                elif args.dram:
                    got, mems[(name, tokens, d)] = got
                res.setdefault((name, tokens, d), []).append(got)
    labels = [os.path.basename(d.rstrip("/")) for d in dirs]
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name",
                          "--format=csv,noheader"], capture_output=True,
                         text=True).stdout.strip().splitlines()[0]
    clocks = "base clocks" if args.clocks == "base" else "clocks left alone"
    lines = [f"Kernel times under Nsight Compute ({clocks}), "
             f"{datetime.date.today()}, {gpu}: us, median over "
             f"{args.rounds} rounds; the second of two runs of each layer.",
             "",
             "| shape | tokens | " + " | ".join(
                 f"{l} all | {l} experts" for l in labels) + " | " +
             " | ".join(f"{l} / {labels[0]} (all, experts)"
                        for l in labels[1:]) + " |",
             "|---|---|" + "---|---|" * len(labels) +
             "---|" * (len(labels) - 1)]
    detail = []
    for name, tokens in layers:
        sums, experts = [], []
        for d in dirs:
            runs = res[(name, tokens, d)]
            sums.append(statistics.median(sum(r.values()) for r in runs))
            experts.append(statistics.median(
                sum(t for k, t in r.items() if is_expert(k)) for r in runs))
            detail.append(f"{name} {tokens} {os.path.basename(d)}: " + ", ".join(
                f"{k} {statistics.median(r.get(k, 0.0) for r in runs):.1f}"
                for k in runs[0]))
            if args.dram:
                detail.append(f"{name} {tokens} {os.path.basename(d)} DRAM "
                              "GB read, L2 hit % (last round): " + ", ".join(
                                  f"{k} {gb:.2f} GB {hit:.1f}%" for k, (gb, hit)
                                  in mems[(name, tokens, d)].items()))
        lines.append(f"| {name} | {tokens} | " + " | ".join(
            f"{s:.1f} | {e:.1f}" for s, e in zip(sums, experts)) + " | " +
            " | ".join(f"{s / sums[0]:.3f}, {e / experts[0]:.3f}"
                       for s, e in zip(sums[1:], experts[1:])) + " |")
    if args.limits:
        detail += ["", "Each kernel against the GPU's limits (last round): "
                   "time (us, median over the rounds), DRAM MB read and "
                   "written, their rate, shares of the peak.", "",
                   "| layer | variant | kernel | us | MB read | MB written | "
                   "GB/s | " + " | ".join(c for _, c in LIMIT_METRICS) + " |",
                   "|---" * (7 + len(LIMIT_METRICS)) + "|"]
        for name, tokens in layers:
            for d, label in zip(dirs, labels):
                runs = res[(name, tokens, d)]
                for k, v in lims[(name, tokens, d)].items():
                    t = statistics.median(r.get(k, 0.0) for r in runs)
                    rate = 1e3 * (v[0] + v[1]) / t if t else 0.0
                    detail.append(
                        f"| {name}-t{tokens} | {label} | `{k[:60]}` | {t:.1f} | "
                        f"{v[0]:.1f} | {v[1]:.1f} | {rate:.0f} | " +
                        " | ".join(f"{x:.1f}" for x in v[2:]) + " |")
    text = "\n".join(lines + [""] + detail) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
