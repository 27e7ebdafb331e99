#!/usr/bin/env python3
"""Writes the GPU benchmark's tables from its results (no PyTorch needed).

    python3 test/bench/report.py RESULTS.json [MORE.json ...] [--out FILE.md]

gpu_moe_baselines.py renders its table with this module and writes the
results to FILE.json after every point, so a run stopped part way (a time
limit on the GPU machine) leaves the points it measured. Given several
results (parts of one table: other shapes or token counts, measured one
after the other), this merges their points in the order of the standard
shapes and token counts and prints the tables; with --out it also writes
FILE.md, FILE.json (the merged points) and FILE.svg. The floors stay each
point's own (measured in its part), and the header names every part's
measured copy bandwidth and matmul rate. A point measured in two parts is
an error: they would be two runs of it, which targets.py compares.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shapes import SHAPES  # noqa: E402


def least(*times):
    """The least of `times` that is not nan (nan where all are)."""
    times = [t for t in times if t == t]
    return min(times) if times else float("nan")


def render(data):
    """The benchmark's text (header line, tables) for `data`: device,
    bandwidth, bf16_flops, l2, l2_bytes, date, compiled, rows, and parts
    (each part's device, bandwidth, bf16_flops) where merged."""
    rows = data["rows"]
    compiled = data.get("compiled", any("compiled_graph" in r for r in rows))
    # Baseline (c), the tuned Triton fused MoE, where the run timed it.
    fused = any("fused_graph" in r for r in rows)
    nan = float("nan")
    lines = ["| shape | tokens | floor (ms) | bound | loop eager | loop graph | grouped eager | grouped graph | "
             + ("fused eager | fused graph | fused config |" if fused else "") + " best / floor |",
             "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if fused else "") + "---|"]
    for r in rows:
        base = [r["loop_eager"], r["loop_graph"], r["grouped_eager"], r["grouped_graph"]]
        cells = ""
        if fused:
            base += [r.get("fused_eager", nan), r.get("fused_graph", nan)]
            cells = " %.3f | %.3f | %s |" % (r.get("fused_eager", nan), r.get("fused_graph", nan),
                                             "/".join(str(v) for v in r.get("fused_config", [])) or "-")
        best = min(v for v in base if v == v)
        lines.append("| %s | %d | %.4f | %s | %.3f | %.3f | %.3f | %.3f |%s %.1fx |"
                     % (r["shape"], r["tokens"], r["floor_ms"], r["bound"], r["loop_eager"],
                        r["loop_graph"], r["grouped_eager"], r["grouped_graph"], cells,
                        best / r["floor_ms"]))
    if fused:
        lines += ["", "fused config: block rows/columns/K, row blocks grouped, warps, stages "
                  "(the fastest of the configurations tried at the point)"]
    variants = sorted({k[:-6] for r in rows for k in r if k.startswith("variant:") and k.endswith("_graph")})
    if variants:
        lines += ["", "Variants (CUDA graph, ms): " + ", ".join(v[8:] for v in variants), "",
                  "| shape | tokens | compiled graph | " + " | ".join(v[8:] for v in variants) + " |",
                  "|---|---|---|" + "---|" * len(variants)]
        for r in rows:
            lines.append("| %s | %d | %.4f | " % (r["shape"], r["tokens"], r.get("compiled_graph", float("nan")))
                         + " | ".join("%.4f" % r.get(v + "_graph", float("nan")) for v in variants) + " |")
        if any(v + "_step" in r for r in rows for v in variants):
            lines += ["", "Variants in decoding steps (ms a layer):", "",
                      "| shape | tokens | compiled step | " + " | ".join(v[8:] for v in variants) + " |",
                      "|---|---|---|" + "---|" * len(variants)]
            for r in rows:
                if "compiled_step" in r:
                    lines.append("| %s | %d | %.4f | " % (r["shape"], r["tokens"], r["compiled_step"])
                                 + " | ".join("%.4f" % r.get(v + "_step", float("nan")) for v in variants)
                                 + " |")
    # The floor with the measured read rate, where the run measured it.
    read = any("read_floor_ms" in r for r in rows)
    if compiled:
        lines += ["", "Compiled (moe-compile --target=cuda): time (ms), time over the floor"
                  + (" (and over the floor at the read rate)" if read else "")
                  + ", speed-up over the best of each baseline (eager or graph)", "",
                  "| shape | tokens | bound | compiled eager | compiled graph | / floor | "
                  + ("/ read floor | " if read else "")
                  + "vs loop | vs grouped eager | vs grouped graph | "
                  + ("vs fused eager | vs fused graph | " if fused else "") + "rel. error |",
                  "|---|---|---|---|---|---|" + ("---|" if read else "") + "---|---|---|"
                  + ("---|---|" if fused else "") + "---|"]
        for r in rows:
            c = min(v for v in (r["compiled_eager"], r["compiled_graph"]) if v == v) \
                if r["compiled_eager"] == r["compiled_eager"] else float("nan")
            cells = (" %.2f | %.2f |" % (r.get("fused_eager", nan) / c, r.get("fused_graph", nan) / c)
                     if fused else "")
            lines.append("| %s | %d | %s | %.4f | %.4f | %.2fx |%s %.2f | %.2f | %.2f |%s %.1e |"
                         % (r["shape"], r["tokens"], r["bound"], r["compiled_eager"], r["compiled_graph"],
                            c / r["floor_ms"],
                            " %.2fx |" % (c / r.get("read_floor_ms", nan)) if read else "",
                            least(r["loop_eager"], r.get("loop_graph", nan)) / c,
                            r["grouped_eager"] / c,
                            r["grouped_graph"] / c, cells, r["compiled_err"]))
    steps = [r for r in rows if "step_layers" in r]
    if steps:
        lines += ["", "Decoding steps: the shape's layer and more of its shape with their own "
                  "weights, back to back in one CUDA graph (L2 scrubbed before the graph); "
                  "time per layer (ms), against the single-layer graphs above", "",
                  "| shape | tokens | layers | floor | grouped graph | grouped step | "
                  "compiled graph | compiled step | step / floor | step vs grouped step |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in steps:
            c = r.get("compiled_step", float("nan"))
            lines.append("| %s | %d | %d | %.4f | %.4f | %.4f | %.4f | %.4f | %.2fx | %.2f |"
                         % (r["shape"], r["tokens"], r["step_layers"], r["floor_ms"],
                            r["grouped_graph"], r["grouped_step"],
                            r.get("compiled_graph", float("nan")), c, c / r["floor_ms"],
                            r["grouped_step"] / c))
    parts = data.get("parts") or [data]
    floors = ["copy bandwidth %.2f TB/s, %sdense bf16 matmul %.0f TFLOP/s%s" %
              (p["bandwidth"] * 1e-12,
               "read rate %.2f TB/s, " % (p["read_bandwidth"] * 1e-12) if p.get("read_bandwidth") else "",
               p["bf16_flops"] * 1e-12,
               " (stopped part way)" if p.get("partial") else "") for p in parts]
    if len(parts) > 1:
        measured = ("measured in %d runs one after the other, each point against its "
                    "own run's floors: %s" % (len(parts), "; ".join(
                        "run %d %s" % (i + 1, f) for i, f in enumerate(floors))))
    else:
        measured = floors[0] + " (measured in this run)"
    l2_size = ("its %.0f MiB" % (data["l2_bytes"] / 2**20)) if data.get("l2_bytes") else "its size"
    meta = ("GPU MoE baselines, %s, %s; %s; bf16, softmax top-k routing "
            "(or the ROUTING of shapes.py: deepseek-v3-layer), times are medians in ms; L2 %s (%s)."
            % (data.get("date", "?"), data["device"], measured, data["l2"],
               "scrubbed by a read of twice %s before each timed run" % l2_size
               if data["l2"] == "cold" else "runs back to back"))
    if compiled:
        # The targets, point by point (targets.py).
        from targets import table as targets_table
        lines += ["", "Targets (1 token 60%, 16 to 1024 tokens 80%, 8192 tokens 60% of the floor "
                  "that binds; faster than every baseline):", ""]
        lines += targets_table([{"rows": rows}])
        if steps:
            lines += ["", "The same targets for the layers inside a decoding step's graph:", ""]
            lines += targets_table([{"rows": rows}], step=True)
    return meta + "\n\n" + "\n".join(lines) + "\n"


def write_json(out, data):
    """The results beside `out` (FILE.md -> FILE.json), replaced whole."""
    path = os.path.splitext(out)[0] + ".json"
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def write(out, data):
    """FILE.md (the text), FILE.json and FILE.svg (the plot)."""
    text = render(data)
    with open(out, "w") as fh:
        fh.write("# " + text)
    write_json(out, data)
    from plot_svg import plot
    with open(os.path.splitext(out)[0] + ".svg", "w") as fh:
        fh.write(plot(data))
    return text


def merge(parts):
    """One table's data from the results of its parts."""
    first = parts[0]
    for p in parts[1:]:
        for key in ("device", "l2"):
            if p.get(key) != first.get(key):
                raise ValueError("the parts differ in %s: %r and %r" % (key, first.get(key), p.get(key)))
    seen = {}
    rows = []
    for i, p in enumerate(parts):
        for r in p["rows"]:
            point = (r["shape"], r["tokens"])
            if point in seen:
                raise ValueError("%s at %d tokens is in parts %d and %d"
                                 % (r["shape"], r["tokens"], seen[point] + 1, i + 1))
            seen[point] = i
            rows.append(r)
    order = {name: i for i, name in enumerate(SHAPES)}
    rows.sort(key=lambda r: (order.get(r["shape"], len(order)), r["shape"], r["tokens"]))
    data = dict(first)
    data["rows"] = rows
    data["compiled"] = any(p.get("compiled", any("compiled_graph" in r for r in p["rows"])) for p in parts)
    if len(parts) > 1:
        data["parts"] = [{"device": p["device"], "bandwidth": p["bandwidth"],
                          "read_bandwidth": p.get("read_bandwidth"),
                          "bf16_flops": p["bf16_flops"], "date": p.get("date"),
                          "partial": p.get("partial", False)} for p in parts]
    else:
        data["partial"] = first.get("partial", False)
    return data


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    parts = []
    for path in args.results:
        try:
            with open(path) as fh:
                parts.append(json.load(fh))
        except (OSError, ValueError) as e:
            sys.exit("report.py: cannot read %s: %s" % (path, e))
        if not parts[-1].get("rows"):
            sys.exit("report.py: %s has no measured points" % path)
    try:
        data = merge(parts)
    except ValueError as e:
        sys.exit("report.py: %s" % e)
    print(write(args.out, data) if args.out else render(data), end="")


if __name__ == "__main__":
    main()
