#!/usr/bin/env python3
"""What a head start in L2 is worth to a compiled layer: an upper bound for
prefetching the up kernel's first weights while the routing runs.

    python3 test/bench/l2_headstart.py DIR [--points olmoe-1b-7b:1024,...]
        [--mib 30] [--rounds 5]

For each point, the layer's CUDA graph is timed three ways, interleaved over
rounds (median of 20 replays each): `cold` as the benchmark times it (L2
scrubbed, then the events around the replay); `head` the L2 scrubbed, then
the first K rows of the up (and gate) weights of the experts the up
kernel's first wave takes (one 256-column pair an SM, an expert's column
blocks in turn, one row tile an expert) read into L2 before the first
event, up to --mib MiB; `other` the same bytes of an unrelated buffer read
instead (the same work before the events, nothing of the layer's in L2).
head / other is what the head start is worth at most.
"""
import argparse
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_moe_baselines as bench  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("--points", default="olmoe-1b-7b:128,olmoe-1b-7b:1024,"
                   "qwen3-30b-a3b:128,qwen3-30b-a3b:1024")
    p.add_argument("--mib", type=float, default=30)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    bench.cold_l2()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print("| point | experts | K rows | MiB | cold (ms) | head (ms) | other (ms) | head / other |")
    print("|---|---|---|---|---|---|---|---|")
    for point in args.points.split(","):
        name, t = point.split(":")
        c = bench.compiled_layer(args.dir, name, int(t))
        L = c.layer
        graph = bench.graphed(c)
        mats = [L.w_up] + ([L.w_gate] if L.gated else [])
        cols = max(1, L.f * len(mats) // 256)
        experts = min(L.E, -(-sms // cols))
        row_bytes = experts * L.f * 2 * len(mats)
        rows = int(min(L.d, args.mib * 2**20 // row_bytes))
        slices = [m[:experts, :rows] for m in mats]
        nbytes = sum(s.numel() * 2 for s in slices)
        other = torch.ones(nbytes // 2, dtype=torch.bfloat16, device="cuda")
        sink = torch.zeros(len(slices) + 1, device="cuda")

        def head():
            for i, s in enumerate(slices):
                sink[i] = s.amax()

        def unrelated():
            sink[-1] = other.amax()

        res = {"cold": [], "head": [], "other": []}
        for _ in range(args.rounds):
            res["cold"].append(bench.time_ms(graph))
            res["head"].append(bench.time_ms(graph, before=head))
            res["other"].append(bench.time_ms(graph, before=unrelated))
        m = {k: statistics.median(v) for k, v in res.items()}
        print("| %s | %d | %d | %.1f | %.4f | %.4f | %.4f | %.3f |" % (
            point, experts, rows, nbytes / 2**20, m["cold"], m["head"],
            m["other"], m["head"] / m["other"]), flush=True)


if __name__ == "__main__":
    main()
