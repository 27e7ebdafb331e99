#!/usr/bin/env python3
"""A/B timing of compiled MoE layers: variants interleaved over rounds.

    python3 test/bench/ab_layers.py DIR_A,DIR_B[,...] [--tokens 1]
        [--shapes all] [--rounds 7] [--out FILE.md]

Each DIR holds layers from make-compiled-layers.py (one per shape and token
count). For every layer, each variant is checked against the fp32
reference, captured as a CUDA graph (or, with --eager, called), then timed in `rounds` rounds that
take the variants in turn (the median of 20 replays each, L2 scrubbed
before each replay, as gpu_moe_baselines.py does), so that a drift of the
GPU's clocks over the run falls on all variants alike. Prints, per layer,
each variant's median over the rounds and its spread (min-max), and the
ratio of each variant to the first.
"""
import argparse
import datetime
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_moe_baselines as bench  # noqa: E402
from shapes import ROUTING, SHAPES, shape  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dirs")
    p.add_argument("--tokens", default="1")
    p.add_argument("--shapes", default="all")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default=None)
    p.add_argument("--eager", action="store_true",
                   help="time the layers' calls instead of graph replays")
    args = p.parse_args()
    dirs = args.dirs.split(",")
    names = list(SHAPES) if args.shapes == "all" else args.shapes.split(",")
    bench.cold_l2()
    labels = [os.path.basename(d.rstrip("/")) for d in dirs]
    lines = ["| shape | tokens | " + " | ".join(labels) + " | " +
             " | ".join("%s / %s" % (l, labels[0]) for l in labels[1:]) + " |",
             "|---|---|" + "---|" * (2 * len(labels) - 1)]
    for name in names:
        E, k, d, f, a, gated, shared, coef = shape(name)
        for t in (int(v) for v in args.tokens.split(",")):
            paths = [os.path.join(cdir, "%s-t%d.so" % (name, t)) for cdir in dirs]
            missing = [q for q in paths if not os.path.exists(q)]
            if missing:
                # (A point some variant lacks is left out, not the run.)
                print("skipped %s T=%d: no %s" % (name, t, ", ".join(missing)),
                      flush=True)
                continue
            layer = bench.Layer(E, k, d, f, a, gated, t, shared, coef,
                                ROUTING.get(name))
            ref32, _ = layer.reference(layer.route_f32)
            replays = []
            for cdir, path in zip(dirs, paths):
                compiled = bench.Compiled(path, layer)
                err = bench.rel_error(compiled().clone(), ref32)
                if not err < 2e-2:
                    sys.exit("%s %s T=%d: relative error %.3g vs the fp32 reference"
                             % (cdir, name, t, err))
                replays.append(compiled if args.eager else bench.graphed(compiled))
            times = [[] for _ in dirs]
            for _ in range(args.rounds):
                for i, fn in enumerate(replays):
                    times[i].append(bench.time_ms(fn, warmup=2, repeat=20))
            med = [statistics.median(ts) for ts in times]
            cells = ["%.4f (%.4f-%.4f)" % (m, min(ts), max(ts)) for m, ts in zip(med, times)]
            ratios = ["%.3f" % (m / med[0]) for m in med[1:]]
            lines.append("| %s | %d | %s | %s |" % (name, t, " | ".join(cells), " | ".join(ratios)))
            print(lines[-1], flush=True)
            write(args, lines)
    print()
    print(write(args, lines))


def write(args, lines):
    """The table so far, into --out as well (a run stopped part way keeps
    the points it measured)."""
    text = ("A/B of compiled layers, %s, %s: %s, ms, median over %d "
            "interleaved rounds (min-max); L2 scrubbed before each replay.\n\n"
            % (datetime.date.today().isoformat(), torch.cuda.get_device_name(),
               "eager calls" if args.eager else "CUDA-graph replays", args.rounds)
            + "\n".join(lines) + "\n")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("# " + text)
    return text


if __name__ == "__main__":
    main()
