#!/usr/bin/env python3
"""GPU MoE layer baselines and hardware floors, measured in one run.

    python3 test/bench/gpu_moe_baselines.py [--tokens 1,16,128,1024,8192]
                                            [--shapes all] [--out FILE]

Runs on the GPU machine (PyTorch there). For the standard shapes of
../shared/DESIGN.md, bf16, random weights and inputs and random routing
(softmax top-k of a random router), it times:
  (a) loop: a loop over experts as Hugging Face's Mixtral block does (its
      shapes depend on the routing, so it cannot be captured as a graph: nan);
  (b) grouped: sort by expert + torch._grouped_mm;
each eager and captured as a CUDA graph, and checks both against an fp32
reference on the GPU. It measures the floors in the same run: device copy
bandwidth (bytes read + written) and the dense bf16 matmul rate, and reports
for every point the memory floor (router + experts hit, read once) and the
tensor-core floor (2 * tokens * k * matrices * hidden * ffn FLOPs).

The compiled layers join this table when the CUDA backend produces them.
"""
import argparse
import datetime
import json
import math
import os
import sys

import torch

SHAPES = {  # experts, top-k, hidden, ffn, activation, gated
    "ds-moe-128": (128, 1, 2048, 8192, "gelu", False),
    "mixtral-8x7b": (8, 2, 4096, 14336, "silu", True),
    "qwen3-30b-a3b": (128, 8, 2048, 768, "silu", True),
    "deepseek-v3": (256, 8, 7168, 2048, "silu", True),
    "olmoe-1b-7b": (64, 8, 2048, 1024, "silu", True),
}


def act(name, x):
    return torch.nn.functional.gelu(x) if name == "gelu" else torch.nn.functional.silu(x)


def time_ms(fn, warmup=3, repeat=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def graphed(fn):
    """fn captured as a CUDA graph; returns a replay function."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def measure_floors():
    n = 4 << 30  # 4 GiB, far beyond the 60 MB L2
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    ms = time_ms(lambda: b.copy_(a), warmup=2, repeat=10)
    bandwidth = 2 * n / (ms * 1e-3)
    del a, b
    m = 8192
    x = torch.randn(m, m, dtype=torch.bfloat16, device="cuda")
    y = torch.randn(m, m, dtype=torch.bfloat16, device="cuda")
    ms = time_ms(lambda: x @ y, warmup=3, repeat=10)
    flops = 2 * m ** 3 / (ms * 1e-3)
    return bandwidth, flops


class Layer:
    def __init__(self, experts, k, hidden, ffn, activation, gated, tokens):
        g = torch.Generator(device="cuda").manual_seed(tokens * 7 + experts)
        self.k, self.act, self.gated = k, activation, gated
        self.E, self.d, self.f = experts, hidden, ffn

        def rand(*shape, scale):
            return (torch.rand(*shape, device="cuda", generator=g) * 2 - 1).mul_(scale).to(torch.bfloat16)

        self.x = rand(tokens, hidden, scale=1.0)
        self.router = rand(hidden, experts, scale=4 / math.sqrt(hidden))
        self.w_up = rand(experts, hidden, ffn, scale=1 / math.sqrt(hidden))
        self.w_gate = rand(experts, hidden, ffn, scale=1 / math.sqrt(hidden)) if gated else None
        self.w_down = rand(experts, ffn, hidden, scale=1 / math.sqrt(ffn))

    def route(self, x):
        scores = torch.softmax((x @ self.router).float(), dim=-1)
        w, ids = torch.topk(scores, self.k, dim=-1)
        return w / w.sum(-1, keepdim=True), ids

    def ffn(self, e, xe):
        h = xe @ self.w_up[e]
        h = act(self.act, xe @ self.w_gate[e]) * h if self.gated else act(self.act, h)
        return h @ self.w_down[e]

    def loop(self):
        """(a) Hugging Face Mixtral style: a loop over the experts."""
        x = self.x
        w, ids = self.route(x)
        out = torch.zeros_like(x)
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        mask = torch.nn.functional.one_hot(ids, self.E).permute(2, 1, 0)
        for e in range(self.E):
            j, t = torch.where(mask[e])
            y = self.ffn(e, x[t]).float() * w[t, j, None]
            out.index_add_(0, t, y)
        return out.to(x.dtype)

    def grouped(self):
        """(b) sort by expert + torch._grouped_mm over all experts at once."""
        x = self.x
        w, ids = self.route(x)
        flat = ids.reshape(-1)
        order = torch.argsort(flat, stable=True)
        # scatter_add rather than bincount, which synchronizes with the host
        # and so cannot be captured in a CUDA graph.
        counts = torch.zeros(self.E, dtype=torch.int32, device=x.device)
        counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
        offs = torch.cumsum(counts, 0, dtype=torch.int32)
        xs = x[order // self.k]
        h = torch._grouped_mm(xs, self.w_up, offs=offs)
        if self.gated:
            h = act(self.act, torch._grouped_mm(xs, self.w_gate, offs=offs)) * h
        else:
            h = act(self.act, h)
        y = torch._grouped_mm(h, self.w_down, offs=offs)
        y = y.float() * w.reshape(-1)[order, None]
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        out.index_add_(0, order // self.k, y)
        return out.to(x.dtype)

    def reference(self):
        # The same routing as the implementations (routing is discrete: a
        # near-tie decided differently would swap a whole expert), then the
        # experts in fp32.
        w, ids = self.route(self.x)
        x = self.x.float()
        out = torch.zeros_like(x)
        for e in range(self.E):
            t, j = torch.where(ids == e)
            if t.numel() == 0:
                continue
            xe = x[t]
            h = xe @ self.w_up[e].float()
            h = act(self.act, xe @ self.w_gate[e].float()) * h if self.gated else act(self.act, h)
            out.index_add_(0, t, (h @ self.w_down[e].float()) * w[t, j, None])
        return out, ids

    def bytes_and_flops(self, ids):
        hit = torch.unique(ids).numel()
        mats = 3 if self.gated else 2
        nbytes = 2 * (self.d * self.E + hit * mats * self.d * self.f
                      + 2 * self.x.numel())
        flops = 2 * self.x.shape[0] * self.k * mats * self.d * self.f
        return nbytes, flops


def rel_error(out, ref):
    return (torch.linalg.norm(out.float() - ref) / torch.linalg.norm(ref)).item()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", default="1,16,128,1024,8192")
    p.add_argument("--shapes", default="all")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    names = list(SHAPES) if args.shapes == "all" else args.shapes.split(",")
    tokens = [int(t) for t in args.tokens.split(",")]
    torch.manual_seed(0)
    bandwidth, peak = measure_floors()
    dev = torch.cuda.get_device_name()
    print("%s: copy bandwidth %.2f TB/s, bf16 matmul %.0f TFLOP/s"
          % (dev, bandwidth * 1e-12, peak * 1e-12), flush=True)

    rows = []
    for name in names:
        E, k, d, f, a, gated = SHAPES[name]
        for t in tokens:
            layer = Layer(E, k, d, f, a, gated, t)
            ref, ids = layer.reference()
            nbytes, flops = layer.bytes_and_flops(ids)
            floor = max(nbytes / bandwidth, flops / peak) * 1e3  # ms
            bound = "memory" if nbytes / bandwidth > flops / peak else "compute"
            result = {"shape": name, "tokens": t, "floor_ms": floor, "bound": bound}
            for label, fn in (("loop", layer.loop), ("grouped", layer.grouped)):
                err = rel_error(fn(), ref)
                if not err < 2e-2:
                    sys.exit("%s %s T=%d: relative error %.3g vs the fp32 reference"
                             % (label, name, t, err))
                result[label + "_err"] = err
                result[label + "_eager"] = time_ms(fn)
                if label == "loop":  # torch.where: shapes depend on routing
                    result["loop_graph"] = float("nan")
                    continue
                try:
                    result[label + "_graph"] = time_ms(graphed(fn))
                except RuntimeError as e:  # the loop has data-dependent shapes
                    torch.cuda.synchronize()
                    result[label + "_graph"] = float("nan")
                    if label != "loop":
                        print("  %s %s T=%d: not capturable (%s)" % (label, name, t, str(e)[:80]))
            rows.append(result)
            print("%-14s T=%-5d floor %.4f ms (%s)  loop %.3f/%.3f  grouped %.3f/%.3f ms"
                  % (name, t, floor, bound, result["loop_eager"], result["loop_graph"],
                     result["grouped_eager"], result["grouped_graph"]), flush=True)
            del layer
            torch.cuda.empty_cache()

    lines = ["| shape | tokens | floor (ms) | bound | loop eager | loop graph | grouped eager | grouped graph | best / floor |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        best = min(v for v in (r["loop_eager"], r["loop_graph"], r["grouped_eager"], r["grouped_graph"]) if v == v)
        lines.append("| %s | %d | %.4f | %s | %.3f | %.3f | %.3f | %.3f | %.1fx |"
                     % (r["shape"], r["tokens"], r["floor_ms"], r["bound"], r["loop_eager"],
                        r["loop_graph"], r["grouped_eager"], r["grouped_graph"], best / r["floor_ms"]))
    meta = ("GPU MoE baselines, %s, %s; copy bandwidth %.2f TB/s, dense bf16 matmul %.0f TFLOP/s "
            "(measured in this run); bf16, softmax top-k routing, times are medians in ms."
            % (datetime.date.today().isoformat(), dev, bandwidth * 1e-12, peak * 1e-12))
    text = meta + "\n\n" + "\n".join(lines) + "\n"
    print()
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("# " + text)
        with open(os.path.splitext(args.out)[0] + ".json", "w") as fh:
            json.dump({"device": dev, "bandwidth": bandwidth, "bf16_flops": peak, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
