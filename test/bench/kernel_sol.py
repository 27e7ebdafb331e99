#!/usr/bin/env python3
"""Runs on the GPU machine: how close each kernel of a compiled layer comes
to the GPU's limits, from Nsight Compute's counters.

    python3 test/bench/kernel_sol.py DIR SHAPE:TOKENS[,SHAPE:TOKENS...]
        [--kernel REGEX] [--clocks none|base] [--out FILE.md]

For each layer (DIR/SHAPE-tTOKENS.so from make-compiled-layers.py) it
profiles one call's kernels (the third call, caches flushed before each
kernel; clocks left alone, or with --clocks base at the GPU's base clocks,
steadier between variants) and prints a row per kernel: its time, the DRAM
bytes it read and wrote and their rate, the DRAM, L2 and SM throughput and
the tensor pipe's active cycles (wgmma and mma.sync both count there), each
as a share of the GPU's peak over the kernel's time; then the kernels'
time summed (launch gaps not counted). A memory-bound kernel
near its floor shows DRAM near 90%; a compute-bound one its tensor pipe.
"""
import argparse
import csv
import io
import os
import subprocess
import sys

METRICS = {
    "gpu__time_duration.sum": "time",
    "dram__bytes_read.sum": "read",
    "dram__bytes_write.sum": "written",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed": "DRAM %",
    "lts__throughput.avg.pct_of_peak_sustained_elapsed": "L2 %",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed": "SM %",
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed":
        "tensor %",
}


def child(cdir, name, tokens):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gpu_moe_baselines as bench
    import torch
    compiled = bench.compiled_layer(cdir, name, tokens)
    torch.cuda.synchronize()
    # The third call, in the NVTX range that ncu profiles (--nvtx-include).
    for i in range(3):
        if i == 2:
            torch.cuda.nvtx.range_push("profiled")
        compiled()
        torch.cuda.synchronize()
        if i == 2:
            torch.cuda.nvtx.range_pop()


def number(s):
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return None


def profile(cdir, name, tokens, kernel, clocks):
    cmd = ["ncu", "--clock-control", clocks, "--csv", "--page", "raw",
           "--nvtx", "--nvtx-include", "profiled/",
           "--metrics", ",".join(METRICS)]
    if kernel:
        cmd += ["--kernel-name", "regex:" + kernel]
    cmd += [sys.executable, os.path.abspath(__file__), cdir,
            "%s:%d" % (name, tokens), "--child"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=500)
    if r.returncode != 0 or '"ID"' not in r.stdout:
        print(r.stdout[-3000:], r.stderr[-3000:])
        sys.exit("ncu failed (%d) at %s:%d" % (r.returncode, name, tokens))
    rows = list(csv.DictReader(io.StringIO(r.stdout[r.stdout.index('"ID"'):])))
    units = rows[0]
    out = []
    for row in rows[1:]:
        vals = {}
        for m in METRICS:
            v = number(row.get(m, ""))
            unit = units.get(m, "")
            if v is not None and m == "gpu__time_duration.sum":
                v *= {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}.get(unit, 1e-3)
            if v is not None and m.startswith("dram__bytes"):
                v *= {"byte": 1e-6, "Kbyte": 1e-3, "Mbyte": 1.0,
                      "Gbyte": 1e3}.get(unit, 1e-6)
            vals[m] = v
        out.append((row.get("Kernel Name", "?"), vals))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("layers")
    p.add_argument("--kernel", default=None,
                   help="only the kernels whose name matches this regex")
    p.add_argument("--clocks", default="none", choices=["none", "base"])
    p.add_argument("--out", default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    points = []
    for item in args.layers.split(","):
        name, _, tokens = item.partition(":")
        if not tokens.isdigit():
            sys.exit("kernel_sol.py: expected SHAPE:TOKENS, got '%s'" % item)
        points.append((name, int(tokens)))
    if args.child:
        child(args.dir, *points[0])
        return
    import torch
    lines = ["# Kernels against the GPU's limits (Nsight Compute), %s, %s, "
             "clocks: %s" % (torch.cuda.get_device_name(), args.dir,
                             args.clocks), "",
             "| layer | kernel | time (us) | read (MB) | written (MB) | "
             "GB/s | " + " | ".join(list(METRICS.values())[3:]) + " |",
             "|---" * (6 + len(METRICS) - 3) + "|"]
    for name, tokens in points:
        rows = profile(args.dir, name, tokens, args.kernel, args.clocks)
        total = sum(v["gpu__time_duration.sum"] or 0 for _, v in rows)
        for kname, v in rows:
            t = v["gpu__time_duration.sum"]
            rw = (v["dram__bytes_read.sum"] or 0) + (v["dram__bytes_write.sum"] or 0)
            cells = ["%.1f" % t if t else "?",
                     "%.1f" % (v["dram__bytes_read.sum"] or 0),
                     "%.1f" % (v["dram__bytes_write.sum"] or 0),
                     "%.0f" % (1e3 * rw / t) if t else "?"]
            cells += ["%.1f" % v[m] if v[m] is not None else "-"
                      for m in list(METRICS)[3:]]
            lines.append("| %s-t%d | `%s` | %s |" % (name, tokens, kname[:60],
                                                     " | ".join(cells)))
        lines.append("| %s-t%d | all %d kernels | %.1f |%s" % (
            name, tokens, len(rows), total, " |" * (3 + len(METRICS) - 3)))
    out = "\n".join(lines) + "\n"
    print(out)
    if args.out:
        open(args.out, "w").write(out)


if __name__ == "__main__":
    main()
