#!/usr/bin/env python3
"""Compiles the benchmark's MoE layers with moe-compile --target=cuda.

    python3 test/bench/make-compiled-layers.py [--out build/bench-layers]
        [--tokens 1,16,128,1024,8192] [--shapes all] [--moe-compile PATH]

Writes, for every standard shape of ../shared/DESIGN.md (or those of
--shapes, which may name the shapes with shared experts of shapes.py) and
token count,
<out>/<shape>-t<tokens>.mlir (one moe.layer, bf16, softmax top-k with
renormalisation, as gpu_moe_baselines.py computes it) and the shared library
<out>/<shape>-t<tokens>.so that gpu_moe_baselines.py --compiled <out> loads
on the GPU machine with ctypes, binding PyTorch's device tensors to it.
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shapes import ROUTING, SHAPES, shape  # noqa: E402


def layer_mlir(experts, k, d, f, activation, gated, tokens, shared=0,
               coef=False, routing=None, capacity=0):
    bf = "xbf16>"
    x = "tensor<%dx%d%s" % (tokens, d, bf)
    router = "tensor<%dx%d%s" % (d, experts, bf)
    up = "tensor<%dx%dx%d%s" % (experts, d, f, bf)
    down = "tensor<%dx%dx%d%s" % (experts, f, d, bf)
    args = ['%%x: %s {moe.input = "x"}' % x,
            '%%router: %s {moe.weight = "router"}' % router,
            '%%w_up: %s {moe.weight = "w_up"}' % up]
    if gated:
        args.append('%%w_gate: %s {moe.weight = "w_gate"}' % up)
    args.append('%%w_down: %s {moe.weight = "w_down"}' % down)
    gate = " gate(%%w_gate : %s)" % up if gated else ""
    routing = routing or {}
    bias = ""
    if routing.get("bias"):
        bt = "tensor<%dxf32>" % experts
        args.insert(2, '%%router_bias: %s {moe.weight = "router_bias"}' % bt)
        bias = " router_bias(%%router_bias : %s)" % bt
    attrs = ""
    if routing.get("sigmoid"):
        attrs += "score_func = #moe.score_func<sigmoid>, "
    if routing.get("groups"):
        attrs += "n_group = %d : i64, topk_group = %d : i64, " % routing["groups"]
        if routing.get("top2"):
            attrs += "group_score = #moe.group_score<top2_sum>, "
    if routing.get("scaling", 1.0) != 1.0:
        attrs += "scaling = %r : f64, " % routing["scaling"]
    if capacity:
        # A fixed capacity (Switch's form: a vanishing factor, min_capacity).
        attrs += "capacity_factor = 1.0e-09 : f64, min_capacity = %d : i64, " \
            % capacity
    parts = ""
    if shared:
        s_up = "tensor<%dx%d%s" % (d, shared, bf)
        s_down = "tensor<%dx%d%s" % (shared, d, bf)
        named = [("shared_up", s_up)] + ([("shared_gate", s_up)] if gated else []) \
            + [("shared_down", s_down)]
        if coef:
            named.append(("shared_coef", "tensor<%dx1%s" % (d, bf)))
        for n, t in named:
            args.append('%%%s: %s {moe.weight = "%s"}' % (n, t, n))
            parts += " %s(%%%s : %s)" % (n, n, t)
    return (
        "func.func @layer(%s) -> (%s {moe.output = \"y\"}) {\n"
        "  %%y = moe.layer %%x : %s router(%%router : %s)%s up(%%w_up : %s)%s "
        "down(%%w_down : %s)%s {activation = #moe.activation<%s>, %srenormalize, "
        "top_k = %d : i64} -> %s\n"
        "  return %%y : %s\n"
        "}\n" % (", ".join(args), x, x, router, bias, up, gate, down, parts,
                  activation, attrs, k, x, x))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="build/bench-layers")
    p.add_argument("--tokens", default="1,16,128,1024,8192")
    p.add_argument("--shapes", default="all")
    p.add_argument("--moe-compile", default="build/bin/moe-compile")
    p.add_argument("--gpu-path", default="auto", help="auto, gemv, mma or wgmma")
    p.add_argument("--wgmma-columns", default="256", help="128 or 256")
    p.add_argument("--wgmma-stages", default="4")
    p.add_argument("--wgmma-rows", default="0", help="0 (chosen per layer), 128, 64 or 192")
    p.add_argument("--wgmma-tile-step", default="0",
                   help="0 (chosen), 192 or 128: rows between an expert's "
                        "192-row tiles (128 needs --wgmma-rows 192)")
    p.add_argument("--mma-tile-m", default="0", help="0 (auto), 64 or 128")
    p.add_argument("--mma-warps", default="0", help="0 (auto), 4 or 8")
    p.add_argument("--mma-stages", default="0", help="0 (auto), 2, 3 or 4")
    p.add_argument("--early-launch", default="false",
                   help="true: kernels of more than one wave let the next "
                        "launch right after their wait; false (default): as "
                        "their blocks exit")
    p.add_argument("--fused-gate", default="auto",
                   help="auto, always or never (a memset, the router GEMV "
                        "and the routing kernel instead of the one gating "
                        "kernel)")
    p.add_argument("--ffn-columns", default="0",
                   help="0 (auto), 32, 64 or 128: the few-rows expert FFN as "
                        "one kernel; -1: the up and down GEMVs")
    p.add_argument("--decode-overlap", default="auto",
                   help="auto or never: the down GEMV loads its first "
                        "weights before its grid dependency wait")
    p.add_argument("--stage-down", default="auto",
                   help="auto or never: the down GEMV stages its activated "
                        "input in shared memory")
    p.add_argument("--decode-kernel", default="auto",
                   help="auto or never: one token's gating, up and down "
                        "GEMVs as one persistent kernel")
    p.add_argument("--decode-dense", default="auto",
                   help="auto or never: at one token, the shared experts "
                        "(or PR-MoE MLP) as items of the decode kernel")
    p.add_argument("--dense-split-k", default="auto",
                   help="auto or never: a dense stage's wgmma down kernel "
                        "split over K where its column blocks leave SMs idle")
    p.add_argument("--dense-path", default="auto",
                   help="auto, gemv, mma or wgmma: the shared experts' path")
    p.add_argument("--decode-grid-share", default="100",
                   help="percent: the decode kernel's GEMV items planned as "
                        "for this share of the matrices")
    p.add_argument("--wgmma-group-tiles", default="-1",
                   help="-1 (auto), -2 (each expert's tiles), 0 (all "
                        "tiles of a column block, then the next) or a count")
    p.add_argument("--wgmma-persistent", default="auto",
                   help="auto (the producer form; tma from 512 rows an "
                        "expert), always, producer, tma, multicast or never")
    p.add_argument("--wgmma-queue", default="auto",
                   help="auto, always or never: the producer-form wgmma "
                        "kernels take their pairs from a global counter")
    p.add_argument("--wgmma-k-order", default="auto",
                   help="auto, never, band or up: the wgmma producer's K-step order "
                        "(a tall tile with its band, each expert's start)")
    p.add_argument("--weights-evict-first", default="auto",
                   help="auto or never: the wgmma kernels' TMA weight loads "
                        "with the L2 evict-first policy")
    p.add_argument("--combine", default="auto",
                   help="auto, atomic or rows: how the tensor-core paths' "
                        "down projection meets each token's k rows")
    p.add_argument("--extra", default="",
                   help="more moe-compile options, space-separated (e.g. "
                        "'--gpu-gemv-unroll=4')")
    p.add_argument("--capacity-without-drops", action="store_true",
                   help="a capacity of T - 1 assignments an expert (drop "
                        "policy position): the capacity path runs, and "
                        "drops nothing unless every token picks one expert "
                        "(times the path against the dropless layer)")
    p.add_argument("--decode-stages", default="0",
                   help="0, 2 or 3: K steps each thread of the decode "
                        "kernel's GEMV items keeps in flight by cp.async")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    names = list(SHAPES) if args.shapes == "all" else args.shapes.split(",")
    for name in names:
        E, k, d, f, a, gated, shared, coef = shape(name)
        for t in (int(v) for v in args.tokens.split(",")):
            base = os.path.join(args.out, "%s-t%d" % (name, t))
            with open(base + ".mlir", "w") as fh:
                fh.write(layer_mlir(E, k, d, f, a, gated, t, shared, coef,
                                    ROUTING.get(name),
                                    t - 1 if args.capacity_without_drops
                                    else 0))
            extra = args.extra.split()
            if args.decode_kernel != "auto":
                extra.append("--gpu-decode-kernel=" + args.decode_kernel)
            if args.decode_dense != "auto":
                extra.append("--gpu-decode-dense=" + args.decode_dense)
            if args.wgmma_tile_step != "0":
                extra.append("--gpu-wgmma-tile-step=" + args.wgmma_tile_step)
            if args.wgmma_k_order != "auto":
                extra.append("--gpu-wgmma-k-order=" + args.wgmma_k_order)
            if args.dense_split_k != "auto":
                extra.append("--gpu-dense-split-k=" + args.dense_split_k)
            subprocess.run([args.moe_compile, base + ".mlir", "--target=cuda",
                            "--emit=shared", "--cpu=x86-64-v3", "--gpu-path=" + args.gpu_path,
                            "--gpu-mma-tile-m=" + args.mma_tile_m,
                            "--gpu-mma-warps=" + args.mma_warps,
                            "--gpu-mma-stages=" + args.mma_stages,
                            "--gpu-wgmma-columns=" + args.wgmma_columns,
                            "--gpu-wgmma-stages=" + args.wgmma_stages,
                            "--gpu-wgmma-rows=" + args.wgmma_rows,
                            "--gpu-early-launch=" + args.early_launch,
                            "--gpu-fused-gate=" + args.fused_gate,
                            "--gpu-ffn-columns=" + args.ffn_columns,
                            "--gpu-decode-overlap=" + args.decode_overlap,
                            "--gpu-stage-down=" + args.stage_down,
                            "--gpu-decode-stages=" + args.decode_stages,
                            "--gpu-decode-grid-share=" + args.decode_grid_share,
                            "--gpu-dense-path=" + args.dense_path,
                            "--gpu-combine=" + args.combine,
                            "--gpu-wgmma-persistent=" + args.wgmma_persistent,
                            "--gpu-wgmma-queue=" + args.wgmma_queue,
                            "--gpu-weights-evict-first=" +
                            args.weights_evict_first,
                            "--gpu-wgmma-group-tiles=" + args.wgmma_group_tiles,
                            "-o", base + ".so"] + extra,
                           check=True)
            print("compiled", base + ".so", flush=True)


if __name__ == "__main__":
    main()
