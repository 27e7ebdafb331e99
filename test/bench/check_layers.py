#!/usr/bin/env python3
"""Runs compiled MoE layers again and again on the GPU machine and checks
every output: for races and stale state that one run does not show.

    python3 test/bench/check_layers.py DIR SHAPE:TOKENS[,SHAPE:TOKENS...]
        [--repeat 10] [--graph]

All layers are loaded in one process (as ab_layers.py and the benchmark
do). Each run's output buffer is poisoned (NaN) first; after every run the
stream is synchronized (so a fault names its run) and the output compared
with the fp32 reference (2e-2), and with the first run's output (the
layers are deterministic up to the order of float atomics: 1e-2). With
--graph the runs are replays of one captured CUDA graph, with the
benchmark's L2 scrub between them. Under compute-sanitizer, set
PYTORCH_NO_CUDA_MEMORY_CACHING=1 so that every tensor is its own
allocation. Prints one line a layer; exits non-zero at the first failure.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import gpu_moe_baselines as bench  # noqa: E402
from shapes import SHAPES  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("layers")
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--graph", action="store_true")
    args = p.parse_args()
    bench.cold_l2()
    failed = 0
    for item in args.layers.split(","):
        name, tokens = item.split(":")
        tokens = int(tokens)
        layer = bench.Layer(*SHAPES[name], tokens)
        ref, _ = layer.reference(layer.route_f32)
        compiled = bench.Compiled(os.path.join(args.dir, "%s-t%d.so" % (name, tokens)), layer)
        run = compiled
        if args.graph:
            compiled()
            run = bench.graphed(compiled)
        first, worst, drift = None, 0.0, 0.0
        for i in range(args.repeat):
            compiled.out.fill_(float("nan"))
            if args.graph:
                bench.scrub_l2()
            try:
                run()
                torch.cuda.synchronize()
            except Exception as e:  # a fault: name the run, stop
                sys.exit("%s %s T=%d run %d: %s" % (args.dir, name, tokens, i, e))
            out = compiled.out.clone()
            err = bench.rel_error(out, ref)
            worst = max(worst, err)
            if first is None:
                first = out.float()
            else:
                drift = max(drift, bench.rel_error(out, first))
            if not err < 2e-2 or not drift < 1e-2:
                failed += 1
                print("FAIL %s T=%d run %d: error %.3g, vs run 0 %.3g" % (name, tokens, i, err, drift), flush=True)
                break
        print("%s T=%d: %d %s runs, worst error %.3g, most vs run 0 %.3g"
              % (name, tokens, args.repeat, "graph" if args.graph else "eager", worst, drift), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
