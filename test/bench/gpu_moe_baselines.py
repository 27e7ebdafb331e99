#!/usr/bin/env python3
"""GPU MoE layer baselines, the compiled layers and the hardware floors, in one run.

    python3 test/bench/gpu_moe_baselines.py [--tokens 1,16,128,1024,8192]
                                            [--shapes all] [--out FILE]
                                            [--compiled DIR] [--no-fused]

Runs on the GPU machine (PyTorch there). For the standard shapes of
../shared/DESIGN.md, bf16, random weights and inputs and random routing
(softmax top-k of a random router), it times:
  (a) loop: a loop over experts as Hugging Face's Mixtral block does. Its
      shapes depend on the routing (torch.where), so as a CUDA graph it is
      the loop made capturable: every expert over all tokens, each row
      weighted by the expert's routing weight (0 where the token did not
      pick it); static shapes, E / k times the expert FLOPs and every
      expert's weights read, as a loop with no data-dependent shapes must;
  (b) grouped: sort by expert + torch._grouped_mm;
  (c) fused: vLLM's and SGLang's fused-MoE form in Triton (triton_moe.py:
      tokens aligned to blocks by expert, one grouped GEMM kernel for gate
      and up, one for down with the routing weights, a sum of each token's
      k rows), its block sizes tuned at every point (the fastest of 18
      configurations);
each eager and captured as a CUDA graph, and checks them against an fp32
reference on the GPU. It measures the floors in the same run: device copy
bandwidth (bytes read + written) and the dense bf16 matmul rate, and reports
for every point the memory floor (router + experts hit, read once) and the
tensor-core floor (2 * tokens * k * matrices * hidden * ffn FLOPs). It also
measures the read rate (a 4 GiB sum, which only reads) and reports each
point's floor with it (read_floor_ms): on an H200 a kernel that only reads
its weights streams faster than a copy, so there the copy floor is not the
reads' floor; the issue's targets keep the copy floor.

With --compiled DIR (made on the build machine by make-compiled-layers.py),
each point also runs the layer compiled by moe-compile --target=cuda
(DIR/<shape>-t<tokens>.so, loaded with ctypes and bound to the same device
tensors), eager and captured as a CUDA graph, checked against the fp32
reference with the compiler's routing (f32 logits), output poisoned first.

At the --step-tokens counts (1 and 16 by default) it also times decoding
steps: the point's layer and up to --step-layers - 1 more of its shape,
each with its own weights (within --step-budget-gib), back to back in one
CUDA graph, as a model's decoding step runs its layers; the time per layer
of the grouped_mm baseline and of the compiled layer (every layer's output
checked, also after a replay of the step's graph). One layer per graph,
as the main table times it, pays the graph's launch and the events around
it (an empty kernel: 5.1-5.8 us, results/decode-floor-2026-12-04.md) on
every layer; a step pays them once.

With --out FILE.md it writes FILE.md, FILE.json and FILE.svg (a plot) at the
end, and FILE.json also after every point: report.py renders the points of a
run stopped part way, or merges the parts of a table measured in several
runs (other shapes or token counts).

--shapes may also name the layers with shared experts of shapes.py
(SHARED_SHAPES, not in "all"): their shared FFN (scaled by its sigmoid gate
where it has one) is added in both baselines (in bf16, as transformers'
Qwen2-MoE block does), in the fp32 reference and in both floors; where
shapes.py gives a layer its own ROUTING (DeepSeek-V3's group-limited
sigmoid routing with a bias), both baselines and the reference route so.
"""
import argparse
import ctypes
import datetime
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402
from shapes import ROUTING, SHAPES, shape  # noqa: E402
try:
    import triton_moe  # noqa: E402  (baseline (c); needs Triton)
except ImportError as e:
    triton_moe = None
    TRITON_MISSING = str(e)


def act(name, x):
    return torch.nn.functional.gelu(x) if name == "gelu" else torch.nn.functional.silu(x)


# Read (never written, so no dirty lines are written back inside the timed
# region) before every timed repeat when the L2 is to start cold: twice the
# L2, so that no weight of the previous repeat is still there, as in a
# model where the other layers' weights pass through L2 between two runs of
# a layer. None: the repeats run back to back (a warm L2).
L2_SCRUB = None


def cold_l2():
    """Makes every timed repeat from here on start with a cold L2."""
    global L2_SCRUB
    l2_bytes = torch.cuda.get_device_properties(0).L2_cache_size
    L2_SCRUB = torch.ones(2 * l2_bytes // 4, dtype=torch.float32, device="cuda")


def scrub_l2():
    if L2_SCRUB is not None:
        L2_SCRUB.max()


def time_ms(fn, warmup=3, repeat=20, before=None):
    """The median of `repeat` timed calls of fn, the L2 scrubbed before
    each (and then `before` called, outside the events, if given)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        scrub_l2()
        if before is not None:
            before()
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
    """fn captured as a CUDA graph; returns a replay function, which keeps
    fn (and so the buffers the graph writes, e.g. a Compiled's output) alive:
    a graph that outlives them writes freed memory, and once
    torch.cuda.graph's empty_cache hands that back to the driver, faults
    (ab_layers.py dropped its first variant's Compiled: an illegal address
    at the Mixtral 8192 combine kernel's output stores, 2026-12-03)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()

    def replay():
        graph.replay()
    replay.keep = (graph, fn)
    return replay


def measure_floors():
    """The copy bandwidth (bytes read + written by a 4 GiB copy), the read
    rate (bytes of a 4 GiB f32 sum: a kernel that only reads, as the expert
    weights are read, streams faster than a copy on an H200) and the dense
    bf16 matmul rate."""
    n = 4 << 30  # 4 GiB, far beyond the 60 MB L2
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    ms = time_ms(lambda: b.copy_(a), warmup=2, repeat=10)
    bandwidth = 2 * n / (ms * 1e-3)
    del b
    # Bytes 0-63: every f32 of the view finite (its exponent byte < 64).
    a.random_(0, 64)
    f32 = a.view(torch.float32)
    ms = time_ms(lambda: f32.sum(), warmup=2, repeat=10)
    read_bandwidth = n / (ms * 1e-3)
    del a, f32
    m = 8192
    x = torch.randn(m, m, dtype=torch.bfloat16, device="cuda")
    y = torch.randn(m, m, dtype=torch.bfloat16, device="cuda")
    ms = time_ms(lambda: x @ y, warmup=3, repeat=10)
    flops = 2 * m ** 3 / (ms * 1e-3)
    return bandwidth, read_bandwidth, flops


class Layer:
    def __init__(self, experts, k, hidden, ffn, activation, gated, tokens,
                 shared=0, coef=False, routing=None, seed=0):
        g = torch.Generator(device="cuda").manual_seed(tokens * 7 + experts + 1000003 * seed)
        self.k, self.act, self.gated = k, activation, gated
        self.E, self.d, self.f = experts, hidden, ffn
        self.shared, self.coef = shared, coef
        self.routing = routing or {}

        def rand(*shape, scale):
            return (torch.rand(*shape, device="cuda", generator=g) * 2 - 1).mul_(scale).to(torch.bfloat16)

        self.x = rand(tokens, hidden, scale=1.0)
        self.router = rand(hidden, experts, scale=4 / math.sqrt(hidden))
        self.bias = None
        if self.routing.get("bias"):
            self.bias = rand(experts, scale=0.3).float()
        self.w_up = rand(experts, hidden, ffn, scale=1 / math.sqrt(hidden))
        self.w_gate = rand(experts, hidden, ffn, scale=1 / math.sqrt(hidden)) if gated else None
        self.w_down = rand(experts, ffn, hidden, scale=1 / math.sqrt(ffn))
        # Shared experts: a dense FFN of width `shared` on every token,
        # scaled by sigmoid(x s_coef) with `coef` (Qwen2-MoE).
        self.s_up = self.s_gate = self.s_down = self.s_coef = None
        if shared:
            self.s_up = rand(hidden, shared, scale=1 / math.sqrt(hidden))
            self.s_gate = rand(hidden, shared, scale=1 / math.sqrt(hidden)) if gated else None
            self.s_down = rand(shared, hidden, scale=1 / math.sqrt(shared))
            if coef:
                self.s_coef = rand(hidden, 1, scale=1 / math.sqrt(hidden))

    def shared_out(self, x, f32=False):
        """The shared experts' output (f32 [T, d]), or None: in bf16 as
        transformers' Qwen2MoeSparseMoeBlock does, or in f32."""
        if not self.shared:
            return None
        cast = (lambda t: t.float()) if f32 else (lambda t: t)
        x = cast(x)
        h = x @ cast(self.s_up)
        h = act(self.act, x @ cast(self.s_gate)) * h if self.gated else act(self.act, h)
        y = (h @ cast(self.s_down)).float()
        if self.coef:
            y = y * torch.sigmoid((x @ cast(self.s_coef)).float())
        return y

    def select(self, logits):
        """Top k of f32 logits [T, E]: softmax with renormalisation, or the
        shape's ROUTING (DeepSeek-V3: sigmoid, bias for the selection,
        group limits, renormalised, scaled)."""
        r = self.routing
        if not r:
            scores = torch.softmax(logits, dim=-1)
            w, ids = torch.topk(scores, self.k, dim=-1)
            return w / w.sum(-1, keepdim=True), ids
        scores = torch.sigmoid(logits) if r.get("sigmoid") else torch.softmax(logits, dim=-1)
        keys = scores + self.bias if self.bias is not None else scores
        if r.get("groups"):
            n, kept = r["groups"]
            grouped = keys.view(keys.shape[0], n, -1)
            gs = (grouped.topk(2, dim=-1).values.sum(-1) if r.get("top2")
                  else grouped.max(-1).values)
            mask = torch.zeros_like(gs, dtype=torch.bool)
            mask.scatter_(1, gs.topk(kept, dim=-1).indices, True)
            keys = keys.masked_fill(~mask.repeat_interleave(grouped.shape[-1], dim=1),
                                    float("-inf"))
        ids = keys.topk(self.k, dim=-1).indices
        w = scores.gather(1, ids)
        w = w / w.sum(-1, keepdim=True)
        return w * r.get("scaling", 1.0), ids

    def route(self, x):
        return self.select((x @ self.router).float())

    def ffn(self, e, xe):
        h = xe @ self.w_up[e]
        h = act(self.act, xe @ self.w_gate[e]) * h if self.gated else act(self.act, h)
        return h @ self.w_down[e]

    def loop(self):
        """(a) Hugging Face Mixtral style: a loop over the experts."""
        x = self.x
        w, ids = self.route(x)
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        mask = torch.nn.functional.one_hot(ids, self.E).permute(2, 1, 0)
        for e in range(self.E):
            j, t = torch.where(mask[e])
            y = self.ffn(e, x[t]).float() * w[t, j, None]
            out.index_add_(0, t, y)
        if self.shared:
            out += self.shared_out(x)
        return out.to(x.dtype)

    def loop_static(self):
        """(a) with static shapes, so that a CUDA graph can capture it: the
        same loop over the experts, each over every token, its rows weighted
        by the expert's routing weight (0 where the token did not pick it)."""
        x = self.x
        w, ids = self.route(x)
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for e in range(self.E):
            we = (w * (ids == e)).sum(-1, keepdim=True)
            out.add_(self.ffn(e, x).float() * we)
        if self.shared:
            out += self.shared_out(x)
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
        if self.shared:
            out += self.shared_out(x)
        return out.to(x.dtype)

    def route_f32(self, x):
        """moe.router's numerics: logits accumulated in f32, not rounded."""
        return self.select(x.float() @ self.router.float())

    def reference(self, route=None):
        # The same routing as the implementations (routing is discrete: a
        # near-tie decided differently would swap a whole expert), then the
        # experts in fp32.
        w, ids = (route or self.route)(self.x)
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
        if self.shared:
            out += self.shared_out(self.x, f32=True)
        return out, ids

    def weight_bytes(self):
        mats = 3 if self.gated else 2
        return 2 * (self.d * self.E + self.E * mats * self.d * self.f)

    def bytes_and_flops(self, ids):
        hit = torch.unique(ids).numel()
        mats = 3 if self.gated else 2
        nbytes = 2 * (self.d * self.E + hit * mats * self.d * self.f
                      + 2 * self.x.numel())
        flops = 2 * self.x.shape[0] * self.k * mats * self.d * self.f
        if self.shared:
            nbytes += 2 * self.d * (mats * self.shared + (1 if self.coef else 0))
            flops += 2 * self.x.shape[0] * mats * self.d * self.shared
        return nbytes, flops


class Compiled:
    """A layer compiled by moe-compile --emit=shared, bound to device tensors."""

    def __init__(self, path, layer):
        self.layer = layer
        self.lib = ctypes.CDLL(os.path.abspath(path))
        sig = ctypes.cast(ctypes.addressof(ctypes.c_char.in_dll(self.lib, "moe_model_signature")),
                          ctypes.c_char_p).value.decode()
        self.lib.moert_cuda_set_stream.argtypes = [ctypes.c_void_p]
        self.lib.moe_model_run.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        tensors = {"x": layer.x, "router": layer.router,
                   "router_bias": layer.bias, "w_up": layer.w_up,
                   "w_gate": layer.w_gate, "w_down": layer.w_down,
                   "shared_up": layer.s_up, "shared_gate": layer.s_gate,
                   "shared_down": layer.s_down, "shared_coef": layer.s_coef}
        self.out = torch.full_like(layer.x, float("nan"))  # poisoned
        ptrs = []
        for line in sig.splitlines():
            if line == "capturable-step":  # a flag line, not a buffer
                continue
            kind, name, dtype, shape = line.split()
            if not kind.startswith("device-"):
                sys.exit("%s: buffer '%s' is not on the GPU (%s)" % (path, name, kind))
            t = self.out if kind == "device-output" else tensors[name]
            want = {torch.bfloat16: "BF16", torch.float32: "F32"}.get(t.dtype)
            if "x".join(str(v) for v in t.shape) != shape or dtype != want:
                sys.exit("%s: buffer '%s' is %s %s, the layer has %s" % (path, name, dtype, shape, tuple(t.shape)))
            ptrs.append(t.data_ptr())
        self.ptrs = (ctypes.c_void_p * len(ptrs))(*ptrs)

    def __call__(self):
        self.lib.moert_cuda_set_stream(ctypes.c_void_p(torch.cuda.current_stream().cuda_stream))
        self.lib.moe_model_run(self.ptrs)
        return self.out


def compiled_layer(cdir, name, tokens):
    """The layer cdir/NAME-tTOKENS.so (make-compiled-layers.py) bound to a
    fresh Layer of its shape (random weights, inputs and routing)."""
    E, k, d, f, a, gated, shared, coef = shape(name)
    layer = Layer(E, k, d, f, a, gated, tokens, shared, coef,
                  ROUTING.get(name))
    return Compiled(os.path.join(cdir, "%s-t%d.so" % (name, tokens)), layer)


def rel_error(out, ref):
    return (torch.linalg.norm(out.float() - ref) / torch.linalg.norm(ref)).item()


def variant_key(i, cdir):
    """The result key of the i-th --compiled directory."""
    return "compiled" if i == 0 else "variant:" + os.path.basename(cdir.rstrip("/"))


def step_layers(layer, make, most, budget):
    """`layer` and further layers of its shape with their own weights, as a
    model's decoding step runs them one after the other: at most `most`
    layers, at least two, the extra ones' weights within `budget` bytes and
    half the GPU's free memory."""
    free, _ = torch.cuda.mem_get_info()
    extra = int(min(budget, free // 2) // layer.weight_bytes())
    return [layer] + [make(j) for j in range(1, max(2, min(most, 1 + extra)))]


def measure_step(layers, sos, result):
    """Time per layer of `layers` run back to back in one CUDA graph (the
    L2 scrubbed before the graph, not between its layers, whose weights
    differ): the grouped_mm baseline (grouped_step) and each compiled
    layer of `sos` ({key: path}; key_step), each layer's output checked
    against its fp32 reference, eagerly and after a replay of the step's
    graph with the outputs poisoned first."""
    n = len(layers)
    result["step_layers"] = n
    result["grouped_step"] = time_ms(graphed(lambda: [l.grouped() for l in layers])) / n
    refs = [l.reference(l.route_f32)[0] for l in layers] if sos else []
    for key, so in sos.items():
        comps = [Compiled(so, l) for l in layers]
        errs = []
        for c, ref32 in zip(comps, refs):
            out = c().clone()
            torch.cuda.synchronize()
            errs.append(rel_error(out, ref32))
        step = graphed(lambda: [c() for c in comps])
        for c in comps:
            c.out.fill_(float("nan"))
        step()
        torch.cuda.synchronize()
        errs += [rel_error(c.out, ref32) for c, ref32 in zip(comps, refs)]
        # The worst (a nan, from a poisoned output left unwritten, first).
        err = next((e for e in errs if e != e), max(errs))
        result[key + "_step_err"] = err
        if not err < 2e-2:
            print("  %s step of %d layers: relative error %.3g vs the fp32 reference: FAIL"
                  % (key, n, err), flush=True)
            result[key + "_step"] = float("nan")
            continue
        result[key + "_step"] = time_ms(step) / n
        del step, comps


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", default="1,16,128,1024,8192")
    p.add_argument("--shapes", default="all")
    p.add_argument("--out", default=None)
    p.add_argument("--compiled", default=None,
                   help="directory of layers from make-compiled-layers.py; "
                        "more directories after commas are variants "
                        "(e.g. a forced expert path), timed as graphs")
    p.add_argument("--step-tokens", default="1,16",
                   help="token counts also timed as a decoding step: "
                        "--step-layers layers of the shape, each with its own "
                        "weights, in one CUDA graph (time per layer); empty: none")
    p.add_argument("--step-layers", type=int, default=8)
    p.add_argument("--step-budget-gib", type=float, default=48,
                   help="most GiB of extra weights for a step's layers (at "
                        "least two layers run)")
    p.add_argument("--l2", default="cold", choices=["cold", "warm"],
                   help="cold (default): L2 scrubbed by a read of twice its "
                        "size before each timed run; warm: runs back to back")
    p.add_argument("--no-fused", dest="fused", action="store_false",
                   help="leave out baseline (c), the tuned Triton fused MoE")
    args = p.parse_args()
    if args.fused and triton_moe is None:
        sys.exit("baseline (c) needs Triton (%s); --no-fused leaves it out" % TRITON_MISSING)
    l2_bytes = torch.cuda.get_device_properties(0).L2_cache_size
    if args.l2 == "cold":
        cold_l2()
    names = list(SHAPES) if args.shapes == "all" else args.shapes.split(",")
    tokens = [int(t) for t in args.tokens.split(",")]
    step_tokens = {int(t) for t in args.step_tokens.split(",") if t}
    # The first compiled directory must hold every point asked for (the
    # others, variants, may leave some out): said before anything runs.
    if args.compiled:
        first = args.compiled.split(",")[0]
        missing = ["%s-t%d.so" % (n, t) for n in names for t in tokens
                   if not os.path.exists(os.path.join(first, "%s-t%d.so" % (n, t)))]
        if missing:
            sys.exit("gpu_moe_baselines.py: %s has no compiled layer for %d of the "
                     "points asked (%s); make them with make-compiled-layers.py "
                     "--out %s, or ask --tokens/--shapes for fewer"
                     % (first, len(missing), ", ".join(missing), first))
    torch.manual_seed(0)
    bandwidth, read_bandwidth, peak = measure_floors()
    dev = torch.cuda.get_device_name()
    print("%s: copy bandwidth %.2f TB/s, read rate %.2f TB/s, bf16 matmul %.0f TFLOP/s, L2 %.0f MiB (%s)"
          % (dev, bandwidth * 1e-12, read_bandwidth * 1e-12, peak * 1e-12, l2_bytes / 2**20, args.l2),
          flush=True)

    rows = []
    data = {"device": dev, "bandwidth": bandwidth, "read_bandwidth": read_bandwidth,
            "bf16_flops": peak, "l2": args.l2,
            "l2_bytes": l2_bytes, "date": datetime.date.today().isoformat(),
            "compiled": bool(args.compiled), "partial": True, "rows": rows}
    for name in names:
        E, k, d, f, a, gated, shared, coef = shape(name)
        for t in tokens:
            layer = Layer(E, k, d, f, a, gated, t, shared, coef, ROUTING.get(name))
            ref, ids = layer.reference()
            nbytes, flops = layer.bytes_and_flops(ids)
            def floor_ms(rate):  # the bytes at `rate` or the FLOPs, ms
                return max(nbytes / rate, flops / peak) * 1e3
            floor = floor_ms(bandwidth)
            bound = "memory" if nbytes / bandwidth > flops / peak else "compute"
            # With the read rate for the bytes: what a kernel that only reads
            # the weights could reach (the targets keep the copy floor).
            result = {"shape": name, "tokens": t, "floor_ms": floor, "bound": bound,
                      "read_floor_ms": floor_ms(read_bandwidth)}
            # The loop's graph is its static-shape form (torch.where's
            # shapes depend on the routing, so the eager loop has no graph).
            for label, fn, static in (("loop", layer.loop, layer.loop_static),
                                      ("grouped", layer.grouped, layer.grouped)):
                for form, run in (("eager", fn), ("graph", static)):
                    if form == "graph" and run is fn:
                        continue  # one form, checked once
                    err = rel_error(run(), ref)
                    if not err < 2e-2:
                        sys.exit("%s %s %s T=%d: relative error %.3g vs the fp32 reference"
                                 % (label, form, name, t, err))
                    result[label + ("_err" if form == "eager" else "_graph_err")] = err
                result[label + "_eager"] = time_ms(fn)
                try:
                    replay = graphed(static)
                    # A slow graph (the static loop of DeepSeek-V3 at 8192
                    # tokens: every expert over every token) in fewer replays.
                    start = time.perf_counter()
                    replay()
                    torch.cuda.synchronize()
                    slow = time.perf_counter() - start > 0.02
                    result[label + "_graph"] = (time_ms(replay, warmup=1, repeat=5) if slow
                                                else time_ms(replay))
                except RuntimeError as e:
                    torch.cuda.synchronize()
                    result[label + "_graph"] = float("nan")
                    print("  %s %s T=%d: not capturable (%s)" % (label, name, t, str(e)[:80]))
            if triton_moe is not None and args.fused:
                fused = triton_moe.FusedMoE(layer)
                tried = fused.tune(time_ms, graphed)
                err = rel_error(fused(), ref)
                if not err < 2e-2:
                    sys.exit("fused %s T=%d: relative error %.3g vs the fp32 reference (config %s)"
                             % (name, t, err, fused.config))
                result["fused_err"] = err
                result["fused_config"] = list(fused.config)
                result["fused_tried"] = len(tried)
                result["fused_eager"] = time_ms(fused)
                result["fused_graph"] = time_ms(graphed(fused))
                del fused
                torch.cuda.empty_cache()
            dirs = args.compiled.split(",") if args.compiled else []
            for i, cdir in enumerate(dirs):
                key = variant_key(i, cdir)
                so = os.path.join(cdir, "%s-t%d.so" % (name, t))
                if not os.path.exists(so):
                    continue
                compiled = Compiled(so, layer)
                out = compiled().clone()
                torch.cuda.synchronize()
                ref32, _ = layer.reference(layer.route_f32)
                err = rel_error(out, ref32)
                result[key + "_err"] = err
                if not err < 2e-2:
                    print("  %s %s T=%d: relative error %.3g vs the fp32 reference: FAIL"
                          % (key, name, t, err), flush=True)
                    result[key + "_eager"] = result[key + "_graph"] = float("nan")
                else:
                    slow = time_ms(compiled, warmup=1, repeat=1) > 50
                    reps = dict(warmup=1, repeat=3) if slow else {}
                    if i == 0:
                        result[key + "_eager"] = time_ms(compiled, **reps)
                    result[key + "_graph"] = time_ms(graphed(compiled), **reps)
                    if i == 0:
                        # The same layer with its kernels launched one
                        # after the other (no programmatic dependent launch).
                        compiled.lib.moert_cuda_set_programmatic_launch(0)
                        result["variant:no-pdl_graph"] = time_ms(graphed(compiled), **reps)
                        compiled.lib.moert_cuda_set_programmatic_launch(1)
                if i > 0:
                    print("  %s: graph %.4f ms (err %.1e)" % (key, result[key + "_graph"], err), flush=True)
                del compiled
            if t in step_tokens and args.step_layers > 1:
                layers = step_layers(
                    layer, lambda j: Layer(E, k, d, f, a, gated, t, shared, coef,
                                           ROUTING.get(name), seed=j),
                    args.step_layers, args.step_budget_gib * 2**30)
                sos = {}
                for i, cdir in enumerate(dirs):
                    so = os.path.join(cdir, "%s-t%d.so" % (name, t))
                    if os.path.exists(so):
                        sos[variant_key(i, cdir)] = so
                measure_step(layers, sos, result)
                print("  step of %d layers, ms a layer: grouped graph %.4f%s"
                      % (len(layers), result["grouped_step"],
                         "".join(", %s %.4f" % (key, result[key + "_step"]) for key in sos)),
                      flush=True)
                del layers
            rows.append(result)
            if args.out:  # what is measured so far (report.py renders it)
                report.write_json(args.out, data)
            print("%-14s T=%-5d floor %.4f ms (%s)  loop %.3f/%.3f  grouped %.3f/%.3f%s ms%s"
                  % (name, t, floor, bound, result["loop_eager"], result["loop_graph"],
                     result["grouped_eager"], result["grouped_graph"],
                     "  fused %.3f/%.3f %s" % (result["fused_eager"], result["fused_graph"],
                                               tuple(result["fused_config"]))
                     if "fused_graph" in result else "",
                     "  compiled %.3f/%.3f ms (err %.1e)" % (result["compiled_eager"], result["compiled_graph"],
                                                           result["compiled_err"])
                     if args.compiled else ""), flush=True)
            del layer
            torch.cuda.empty_cache()

    data.pop("partial")
    print()
    if args.out:
        text = report.write(args.out, data)
    else:
        text = report.render(data)
    print(text, end="")


if __name__ == "__main__":
    main()
