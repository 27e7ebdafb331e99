#!/usr/bin/env python3
"""The CUDA backend issue's targets against benchmark tables.

    python3 test/bench/targets.py RESULTS.json [MORE.json ...]

Reads the .json that gpu_moe_baselines.py writes beside its table (one or
more runs of the same build) and prints, for every point of the compiled
layers, the share of its floor reached in each run, the target, whether
every run met it, and the smallest speed-up over the PyTorch baselines
(eager and as CUDA graphs, and the tuned Triton fused MoE where the run
timed it: each must exceed 1). The targets (issue 4, for
one H200):
  1 token:          60% of the floor (memory-bound: the experts' bytes);
  16 to 1024:       80% of the floor that binds (memory or tensor cores);
  8192:             60% of the floor that binds (the tensor-core rate on
                    the expert FLOPs, but for ds-moe-128, memory-bound
                    there on an H200);
  every point:      faster than both baselines, eager and as graphs.
gpu_moe_baselines.py appends this table to its own output. Where the runs
also timed decoding steps (several layers of a shape, each with its own
weights, in one CUDA graph: compiled_step, grouped_step), a second table
gives the same targets for a layer inside such a step, against the
grouped_mm baseline's step.
"""
import json
import sys


def target(tokens):
    return 0.60 if tokens == 1 or tokens >= 8192 else 0.80


# The compiled layer's times and the baselines' of one point: the layer
# alone (eager or one graph), or a layer of a decoding step's graph.
COMPILED = {False: ("compiled_eager", "compiled_graph"), True: ("compiled_step",)}
BASELINES = {False: ("loop_eager", "loop_graph", "grouped_eager", "grouped_graph",
                     "fused_eager", "fused_graph"),
             True: ("grouped_step",)}


def compiled_time(row, step=False):
    c = [row.get(k) for k in COMPILED[step]]
    c = [v for v in c if v is not None and v == v]
    return min(c) if c else float("nan")


def share(row, step=False):
    return row["floor_ms"] / compiled_time(row, step)


def slowest_speedup(row, step=False):
    """The compiled layer's smallest speed-up over any baseline measured."""
    c = compiled_time(row, step)
    base = [row[k] for k in BASELINES[step] if k in row and row[k] == row[k]]
    return min(base) / c if base else float("nan")


def table(runs, step=False):
    """Markdown lines for `runs`: a list of parsed results (same points);
    with `step`, of the points timed as layers of a decoding step."""
    lines = ["| shape | tokens | bound | target | " +
             " | ".join("run %d" % (i + 1) for i in range(len(runs))) +
             " | met | slowest speed-up over a baseline |",
             "|---|---|---|---|" + "---|" * len(runs) + "---|---|"]
    missed = 0
    key = COMPILED[step][-1]
    for i, row in enumerate(runs[0]["rows"]):
        if key not in row:
            continue
        rows = [r["rows"][i] for r in runs]
        assert all((r["shape"], r["tokens"]) == (row["shape"], row["tokens"])
                   for r in rows), "the runs' points differ"
        goal = target(row["tokens"])
        shares = [share(r, step) for r in rows]
        speedup = min(slowest_speedup(r, step) for r in rows)
        met = all(s >= goal for s in shares) and speedup > 1
        missed += not met
        lines.append("| %s | %d | %s | %d%% | %s | %s | %.2fx |" % (
            row["shape"], row["tokens"], row["bound"], round(goal * 100),
            " | ".join("%.1f%%" % (100 * s) for s in shares),
            "yes" if met else "**no**", speedup))
    lines += ["", "%d of %d points miss a target." % (
        missed, sum(key in r for r in runs[0]["rows"]))]
    return lines


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    runs = []
    for path in sys.argv[1:]:
        try:
            with open(path) as fh:
                runs.append(json.load(fh))
        except (OSError, ValueError) as e:
            print("targets.py: cannot read %s: %s" % (path, e), file=sys.stderr)
            return 1
    print("\n".join(table(runs)))
    if any("compiled_step" in r for r in runs[0]["rows"]):
        print("\nAs layers of a decoding step's graph (against the grouped_mm step):\n")
        print("\n".join(table(runs, step=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
