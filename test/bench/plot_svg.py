#!/usr/bin/env python3
"""Draws the GPU benchmark (gpu_moe_baselines.py's JSON) as an SVG, with no
plotting library: one panel per shape, time over the floor (log scale)
against tokens, for the compiled layer and the baselines.

    python3 test/bench/plot_svg.py RESULTS.json [OUT.svg]
"""
import json
import math
import sys

SERIES = (  # key, label, colour
    ("compiled_graph", "compiled (graph)", "#d62728"),
    ("fused_graph", "Triton fused MoE, tuned (graph)", "#2ca02c"),
    ("grouped_graph", "sort + grouped_mm (graph)", "#1f77b4"),
    ("grouped_eager", "sort + grouped_mm (eager)", "#9ecae1"),
    ("loop_eager", "loop over experts (eager)", "#7f7f7f"),
)


def plot(data, width=1100, panel_h=260):
    rows = data["rows"]
    shapes = []
    for r in rows:
        if r["shape"] not in shapes:
            shapes.append(r["shape"])
    cols = 3
    nrows = (len(shapes) + cols - 1) // cols
    pw, ph = width // cols, panel_h
    height = nrows * ph + 60
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="18" font-size="14">%s: time / floor (log) vs tokens; floor = max(bytes / %.2f TB/s, FLOPs / %.0f TFLOP/s)</text>'
           % (data.get("device", "GPU"), data["bandwidth"] * 1e-12, data["bf16_flops"] * 1e-12)]
    ymin, ymax = 1.0, 1000.0
    for i, shape in enumerate(shapes):
        x0, y0 = (i % cols) * pw + 50, (i // cols) * ph + 40
        w, h = pw - 70, ph - 60
        pts = [r for r in rows if r["shape"] == shape]
        toks = [r["tokens"] for r in pts]
        lx = lambda t: x0 + w * (math.log(t) - math.log(min(toks))) / max(1e-9, math.log(max(toks)) - math.log(min(toks)))
        ly = lambda v: y0 + h - h * (math.log(v) - math.log(ymin)) / (math.log(ymax) - math.log(ymin))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#ccc"/>' % (x0, y0, w, h))
        out.append('<text x="%d" y="%d" font-size="12">%s</text>' % (x0 + 4, y0 + 14, shape))
        for v in (1, 10, 100, 1000):
            out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>' % (x0, x0 + w, ly(v), ly(v)))
            out.append('<text x="%d" y="%.1f" text-anchor="end">%gx</text>' % (x0 - 4, ly(v) + 4, v))
        for t in toks:
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (lx(t), y0 + h + 14, t))
        for key, _, colour in SERIES:
            line = [(lx(r["tokens"]), ly(min(ymax, max(ymin, r[key] / r["floor_ms"]))))
                    for r in pts if key in r and r[key] == r[key]]
            if len(line) > 1:
                out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                           % (colour, " ".join("%.1f,%.1f" % p for p in line)))
            for p in line:
                out.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>' % (p[0], p[1], colour))
    lx0 = 10
    for _, label, colour in SERIES:
        out.append('<rect x="%d" y="%d" width="12" height="3" fill="%s"/>' % (lx0, height - 14, colour))
        out.append('<text x="%d" y="%d">%s</text>' % (lx0 + 16, height - 10, label))
        lx0 += 215
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    data = json.load(open(sys.argv[1]))
    text = plot(data)
    if len(sys.argv) > 2:
        open(sys.argv[2], "w").write(text)
    else:
        sys.stdout.write(text)
