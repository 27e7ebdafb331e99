#!/usr/bin/env python3
"""Runs on the GPU machine: where one kernel of a compiled layer spends its
warps' time, by instruction, from Nsight Compute's warp-state sampling.

    python3 test/bench/kernel_stalls.py DIR SHAPE TOKENS KERNEL_REGEX
        [--top 40] [--out FILE.md]

Runs the layer DIR/SHAPE-tTOKENS.so (from make-compiled-layers.py) a few
times under `ncu --section SourceCounters --warp-sampling-interval 0` (the
densest sampling; caches flushed before the profiled launch), profiling one
launch of the first kernel whose name matches KERNEL_REGEX; then prints the
SASS instructions holding the most warp samples (all samples, and those
where the warp did not issue), each with its share of the kernel's samples,
and the samples by stall reason over the whole kernel.
"""
import argparse
import csv
import io
import os
import subprocess
import sys


def child(cdir, name, tokens):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gpu_moe_baselines as bench
    import torch
    compiled = bench.compiled_layer(cdir, name, tokens)
    for _ in range(4):
        compiled()
    torch.cuda.synchronize()


def number(s):
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("shape")
    p.add_argument("tokens", type=int)
    p.add_argument("kernel")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--out", default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.dir, args.shape, args.tokens)
        return
    rep = "/tmp/kernel_stalls"
    cmd = ["ncu", "-f", "-o", rep, "--section", "SourceCounters",
           "--section", "WarpStateStats", "--warp-sampling-interval", "0",
           "--kernel-name", "regex:" + args.kernel, "--launch-skip", "2",
           "--launch-count", "1", sys.executable, os.path.abspath(__file__),
           args.dir, args.shape, str(args.tokens), args.kernel, "--child"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=500)
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
        sys.exit("ncu failed (%d)" % r.returncode)
    r = subprocess.run(["ncu", "--import", rep + ".ncu-rep", "--page", "source",
                        "--csv", "--print-source", "sass"],
                       capture_output=True, text=True, timeout=300)
    text = r.stdout
    start = text.find('"')
    rows = list(csv.reader(io.StringIO(text[start:])))
    # A "Kernel Name" row comes before the header.
    while rows and not any(h.strip() == "Source" for h in rows[0]):
        rows.pop(0)
    if not rows:
        sys.exit("no source page:\n" + text[-2000:] + r.stderr[-2000:])
    rows = [[c.strip() for c in r] for r in rows]
    head = rows[0]
    lines = ["Warp samples of %s in %s-t%d (%s), by SASS instruction" %
             (args.kernel, args.shape, args.tokens, args.dir), "",
             ""]

    def col(*words):
        for i, h in enumerate(head):
            if all(w.lower() in h.lower() for w in words):
                return i
        return None
    src = col("source")
    addr = col("address")
    every = col("warp stall sampling", "all")
    idle = col("warp stall sampling", "not")
    if src is None or every is None:
        lines.append("(no source or sampling column found; first rows:)")
        lines += [", ".join(r) for r in rows[1:10]]
    else:
        body = [r for r in rows[1:] if len(r) > max(src, every)]
        total = sum(number(r[every]) for r in body) or 1.0
        body.sort(key=lambda r: -number(r[every]))
        reasons = [i for i, h in enumerate(head)
                   if h.startswith("stall_") and "Not Issued" not in h]
        lines += ["%d samples in all" % total, "",
                  "| # | address | share | not issued | main reasons | instruction |",
                  "|---|---|---|---|---|---|"]
        for i, r in enumerate(body[:args.top]):
            top = sorted(((number(r[j]), head[j][6:]) for j in reasons
                          if j < len(r)), reverse=True)[:2]
            lines.append("| %d | %s | %.1f%% | %s | %s | `%s` |" % (
                i + 1, r[addr][-5:] if addr is not None else "",
                100 * number(r[every]) / total,
                "%.1f%%" % (100 * number(r[idle]) / total) if idle is not None else "",
                ", ".join("%s %.0f%%" % (n, 100 * v / max(1, number(r[every])))
                          for v, n in top if v),
                r[src].replace("|", "\\|")))
    # Stall reasons over the kernel (the WarpStateStats section).
    r = subprocess.run(["ncu", "--import", rep + ".ncu-rep", "--page", "details",
                        "--section", "WarpStateStats", "--csv"],
                       capture_output=True, text=True, timeout=300)
    lines += ["", "Warp state statistics:", "", "```", r.stdout[-4000:], "```"]
    out = "\n".join(lines) + "\n"
    print(out)
    if args.out:
        open(args.out, "w").write(out)


if __name__ == "__main__":
    main()
