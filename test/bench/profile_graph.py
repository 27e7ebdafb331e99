"""Runs on the GPU machine: where a compiled MoE layer's time goes as the
benchmark runs it (a CUDA graph replayed with L2 scrubbed before each
replay, the GPU's own clocks), from the kernels' device timestamps
(torch.profiler, CUPTI):

    python3 test/bench/profile_graph.py DIR SHAPE:TOKENS[,SHAPE:TOKENS...]
        [--replays 10] [--out FILE.md] [--fused BM/BN/BK/GM/WARPS/STAGES]

For each layer (DIR/SHAPE-tTOKENS.so from make-compiled-layers.py), checked
against the fp32 reference first, it prints the median over the replays of
each kernel's time, of the gaps between consecutive kernels, and of the
span from the first kernel's start to the last one's end, beside the
replay's CUDA-event time (what gpu_moe_baselines.py reports): the part of
that time no kernel of the layer covers is the launch of the graph.

With --fused the same for the benchmark's baseline (c) instead (the Triton
fused MoE of triton_moe.py, in the block configuration given, e.g. the one
the benchmark chose at the point; DIR is then not read)."""
import argparse
import os
import statistics
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_moe_baselines as bench  # noqa: E402
from shapes import ROUTING, shape  # noqa: E402


IDLE_US = 100.0


def replays_of(prof, scrub):
    """The layer's kernels of each replay, in order, as (name, start us,
    duration us), from the device kernel events of one profile of scrubs
    and replays, each replay waited for: a replay is a cluster of kernels
    with no idle gap of IDLE_US (the host's wait between them), less the
    scrub's kernels. (The layer's first kernel may start while the scrub
    runs: the programmatic launch reaches across the graph's start.)"""
    events = [e for e in prof.events()
              if e.device_type == torch.autograd.DeviceType.CUDA]
    events.sort(key=lambda e: e.time_range.start)
    runs, end = [], None
    for e in events:
        if end is None or e.time_range.start - end > IDLE_US:
            runs.append([])
        end = max(end or 0, e.time_range.end)
        if e.name not in scrub:
            runs[-1].append((e.name, e.time_range.start, e.time_range.elapsed_us()))
    return [r for r in runs if r]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("layers")
    p.add_argument("--replays", type=int, default=10)
    p.add_argument("--out", default=None)
    p.add_argument("--fused", default=None,
                   help="time the Triton fused-MoE baseline in this block "
                        "configuration (BM/BN/BK/GM/WARPS/STAGES) instead")
    args = p.parse_args()
    if args.fused and (len(args.fused.split("/")) != 6
                       or not all(v.isdigit() for v in args.fused.split("/"))):
        p.error("--fused takes six numbers BM/BN/BK/GM/WARPS/STAGES, got %r" % args.fused)
    if args.fused:
        import triton_moe
    bench.cold_l2()
    what = ("the Triton fused-MoE baseline (blocks %s)" % args.fused if args.fused
            else "compiled layers")
    lines = ["Kernel timeline of %s in CUDA graphs (%s, L2 scrubbed "
             "before each replay, medians of %d replays; us)"
             % (what, torch.cuda.get_device_name(), args.replays)]
    failed = 0
    for item in args.layers.split(","):
        name, tokens = item.split(":")
        tokens = int(tokens)
        torch.manual_seed(0)
        E, k, d, f, a, gated, shared, coef = shape(name)
        layer = bench.Layer(E, k, d, f, a, gated, tokens, shared, coef, ROUTING.get(name))
        if args.fused:
            # The baselines' routing (bf16 logits), as the benchmark checks it.
            ref, _ = layer.reference()
            compiled = triton_moe.FusedMoE(layer)
            compiled.config = tuple(int(v) for v in args.fused.split("/"))
        else:
            ref, _ = layer.reference(layer.route_f32)
            compiled = bench.Compiled(os.path.join(args.dir, "%s-t%d.so" % (name, tokens)), layer)
        err = bench.rel_error(compiled().clone(), ref)
        if not err < 2e-2:
            print("%s %d: relative error %.2e: FAIL" % (name, tokens, err))
            failed += 1
            continue
        replay = bench.graphed(compiled)
        event_ms = bench.time_ms(replay)
        # The scrub's kernel names, from a profile of the scrub alone.
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            bench.scrub_l2()
            torch.cuda.synchronize()
        scrub = {e.name for e in prof.events()
                 if e.device_type == torch.autograd.DeviceType.CUDA}
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(args.replays):
                bench.scrub_l2()
                replay()
                torch.cuda.synchronize()
                time.sleep(1e-3)  # an idle gap between replays
        runs = replays_of(prof, scrub)
        counts = {len(r) for r in runs}
        if len(runs) != args.replays or len(counts) != 1:
            print("%s %d: replays differ in their kernels (%s)" % (name, tokens, sorted(counts)))
            failed += 1
            continue
        n = counts.pop()
        lines += ["", "%s, %d tokens: event time %.1f us, kernels' span %.1f us "
                  "(relative error %.1e)" % (
                      name, tokens, event_ms * 1e3,
                      statistics.median(r[-1][1] + r[-1][2] - r[0][1] for r in runs), err),
                  "", "| kernel | time | gap before |", "|---|---|---|"]
        for i in range(n):
            gap = statistics.median(r[i][1] - (r[i - 1][1] + r[i - 1][2]) for r in runs) if i else 0.0
            lines.append("| %s | %.1f | %.1f |" % (runs[0][i][0][:60], statistics.median(r[i][2] for r in runs), gap))
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
