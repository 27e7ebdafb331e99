#!/usr/bin/env python3
"""Compiles random MoE layers with `moe-compile --target=cuda` and checks
that each either compiles or is refused with a clear error, never a crash.

  cuda-compile-sweep.py BIN_DIR [--cases N] [--seed S] [--keep FILE] [--jobs J]
  cuda-compile-sweep.py --print-cases N [--seed S]

Each case draws a layer from the space moe-testgen generates (tokens,
hidden and ffn sizes that are not multiples of the kernels' tiles, expert
counts and top-k, score functions, grouped routing, capacities, shared
experts, the PR-MoE MLP) and a few of moe-compile's --gpu-* choices, writes
the layer with `moe-testgen gen --model-only`, and compiles it to an object
(ptxas included). A case passes when moe-compile exits 0 with an object
written, or exits 1 with a line `error: ...` and no object; a signal, an
assertion, a sanitizer report, another exit code or an error with no
message fails it. With --run each compiled layer is also linked and run
(on a machine without a GPU: its CPU fallback) on fresh random inputs, and
its output compared with the C++ reference (moe-testgen compare's bf16
tolerance). Prints one line a failing case (its command, to rerun)
and ends with `N passed, N failed`; exits 1 if any failed. Without a
GPU: this checks the compiler, not the kernels' results. --print-cases
prints N drawn cases instead (at most 32 M weights each), a line each:
moe-compile's options, a tab, moe-testgen's (test/gpu/make-e2e-cases.sh
builds 20 of them, RANDOM_CASES=N for N, as random-* cases, run on the GPU
machine against the C++ reference).
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor


def draw_case(rng):
    """A layer (moe-testgen options) and moe-compile options."""
    experts = rng.choice([1, 2, 4, 8, 16, 32, 60, 64, 128, 256])
    top_k = rng.choice([k for k in (1, 2, 4, 6, 8) if k <= experts] or [1])
    tokens = rng.choice([1, 1, 2, 3, 7, 16, 33, 64, 65, 130, 257, 700])
    hidden = rng.choice([8, 32, 64, 72, 128, 136, 200, 256, 384, 1000])
    ffn = rng.choice([8, 24, 64, 96, 128, 200, 320, 512, 768])
    gen = ["--tokens", tokens, "--hidden", hidden, "--ffn", ffn,
           "--experts", experts, "--top-k", top_k]
    if rng.random() < 0.3:
        gen.append("--sigmoid")
        if rng.random() < 0.5:
            gen.append("--bias")
    elif rng.random() < 0.2:
        gen.append("--score-after-topk")
    if rng.random() < 0.5:
        gen.append("--renormalize")
    if rng.random() < 0.2:
        gen += ["--scaling", rng.choice(["2.5", "0.5"])]
    groups = [g for g in (2, 4, 8) if experts % g == 0 and experts // g >= 2
              and g > 1]
    if groups and top_k > 1 and rng.random() < 0.15:
        g = rng.choice(groups)
        # Mostly groups that can hold the top-k (the rest: a refusal).
        least = -(-top_k // (experts // g))
        pick = rng.randint(min(least, g), g) if rng.random() < 0.9 else 1
        gen += ["--groups", g, pick]
        if rng.random() < 0.5:
            gen.append("--group-top2-sum")
    if rng.random() < 0.15:
        # Mostly drops by position (fused on the GPU since 2026-12-06); by
        # score the routing stays on the host.
        gen += ["--capacity", rng.choice(["0.5", "1.0", "1.25", "2.0"])]
        if rng.random() < 0.3:
            gen += ["--min-capacity", rng.choice([1, 4, 16])]
        if rng.random() < 0.2:
            gen.append("--drop-by-score")
    if rng.random() < 0.3:
        gen.append("--plain")
        gen += ["--activation", rng.choice(["gelu", "relu", "gelu_tanh",
                                            "silu"])]
    elif rng.random() < 0.2:
        gen += ["--activation", rng.choice(["gelu", "gelu_tanh", "relu"])]
    if rng.random() < 0.25:
        gen += ["--shared", rng.choice([64, 128, 200, 512])]
        if rng.random() < 0.6:
            gen.append("--shared-gated")
        if rng.random() < 0.5:
            gen.append("--shared-coef")
    elif rng.random() < 0.1:
        gen += ["--mlp", rng.choice([64, 256])]
        if rng.random() < 0.5:
            gen.append("--mlp-coef")
    comp = []
    if rng.random() < 0.3:
        comp.append("--gpu-path=" + rng.choice(["gemv", "mma", "wgmma"]))
    for opt, values in (
            ("--gpu-decode-kernel", ["never"]),
            ("--gpu-decode-stages", ["2", "3"]),
            ("--gpu-fused-gate", ["always", "never"]),
            ("--gpu-ffn-columns", ["-1", "32", "64", "128"]),
            ("--gpu-gemv-lanes", ["1", "2", "4", "8"]),
            ("--gpu-mma-tile-m", ["64", "128"]),
            ("--gpu-wgmma-rows", ["64", "128", "192"]),
            ("--gpu-wgmma-columns", ["128"]),
            ("--gpu-wgmma-persistent", ["never", "always"]),
            ("--gpu-combine", ["atomic", "rows"]),
            ("--gpu-dense-split-k", ["never"]),
            ("--gpu-down-k-runs", ["1", "2", "3", "5"]),
            ("--gpu-router-split-k", ["1", "2", "7"]),
            ("--gpu-fused-route", ["true"]),
            ("--gpu-wgmma-k-order", ["never", "band", "up", "both"]),
            ("--gpu-wgmma-band", ["m64", "swap16", "swap32"]),
            ("--gpu-prefetch-router", ["never"]),
            ("--gpu-wgmma-group-tiles", ["-2", "1", "2", "5"]),
            ("--gpu-wgmma-tile-step", ["128", "192"]),
            ("--gpu-wgmma-l2-prefetch", ["2", "4", "8", "64"]),
            ("--gpu-wgmma-wide-stores", ["never"])):
        if rng.random() < 0.08:
            comp.append(f"{opt}={rng.choice(values)}")
    return [str(a) for a in gen], comp


def run_model(bin_dir, out):
    """Runs the executable in `out` (its CPU code where there is no GPU)
    and compares its output with the C++ reference: (ok, why, cmd, err)."""
    model = os.path.join(out, "model")
    y = os.path.join(out, "y.safetensors")
    cmd = [model, "--weights", os.path.join(out, "weights.safetensors"),
           "--input", os.path.join(out, "input.safetensors"), "--output", y,
           "--repeat", "1", "--warmup", "0"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return False, "run timeout", cmd, "no answer in 600 s"
    if r.returncode != 0:
        return False, f"run exit {r.returncode}", cmd, r.stderr.strip()[-600:]
    cmp_cmd = [os.path.join(bin_dir, "moe-testgen"), "compare", "--expected",
               os.path.join(out, "expected.safetensors"), "--actual", y,
               "--dtype", "bf16"]
    c = subprocess.run(cmp_cmd, capture_output=True, text=True)
    if c.returncode != 0:
        return False, "wrong output", cmd, (c.stdout + c.stderr).strip()[-600:]
    return True, "", cmd, ""


def run_case(bin_dir, work, index, gen, comp, seed, run=False):
    out = os.path.join(work, f"case{index}")
    os.makedirs(out, exist_ok=True)
    gen_cmd = [os.path.join(bin_dir, "moe-testgen"), "gen", "--out", out,
               "--dtype", "bf16", "--seed", str(seed)] + \
        ([] if run else ["--model-only"]) + gen
    g = subprocess.run(gen_cmd, capture_output=True, text=True)
    if g.returncode != 0:
        # The generator refuses what no layer can be (e.g. more groups
        # than experts); a refusal with a message is not the compiler's.
        ok = g.returncode == 1 and "error" in g.stderr
        return ok, "gen", gen_cmd, g.stderr.strip()[-400:]
    obj = os.path.join(out, "model" if run else "model.o")
    cmd = [os.path.join(bin_dir, "moe-compile"),
           os.path.join(out, "model.mlir"), "--target=cuda",
           "--cpu=x86-64-v3", "-o", obj] + ([] if run else ["--emit=obj"]) + \
        comp
    try:
        c = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return False, "timeout", cmd, "no answer in 600 s"
    err = c.stderr
    if c.returncode == 0:
        ok = os.path.isfile(obj) and os.path.getsize(obj) > 0 and \
            "ERROR: AddressSanitizer" not in err and \
            "runtime error:" not in err
        why = "" if ok else "exit 0 without an object or with a report"
    elif c.returncode == 1:
        ok = "error: " in err and not os.path.exists(obj) and \
            "Assertion" not in err and "Stack dump" not in err and \
            "ERROR: AddressSanitizer" not in err and \
            "runtime error:" not in err
        why = "" if ok else "exit 1 without a clean error"
    else:
        ok, why = False, f"exit {c.returncode}"
    if ok and run and c.returncode == 0:
        ok, why, rcmd, rerr = run_model(bin_dir, out)
        if not ok:
            cmd, err = rcmd, rerr
    shutil.rmtree(out, ignore_errors=True)
    return ok, why, cmd, err.strip()[-600:]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("bin_dir", nargs="?")
    p.add_argument("--print-cases", type=int, default=0)
    p.add_argument("--cases", type=int, default=40)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--run", action="store_true",
                   help="also link each layer, run it (its CPU code where "
                   "there is no GPU) and compare with the C++ reference")
    p.add_argument("--with", dest="always", action="append", default=[],
                   metavar="OPTION",
                   help="a moe-compile option for every case, after the "
                   "drawn ones (repeatable; e.g. --with=--gpu-fused-route=true)")
    p.add_argument("--keep", default=None,
                   help="write the refusals' messages here (one a line)")
    a = p.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(
        1 << 30)
    rng = random.Random(seed)
    if a.print_cases:
        # For the GPU machine, whose weights, inputs and reference are made
        # there on its CPU: layers of at most 32 M weights (64 MB in bf16).
        printed = 0
        while printed < a.print_cases:
            gen, comp = draw_case(rng)
            comp += a.always
            v = dict(zip(gen[0::2], gen[1::2]))
            if 3 * int(v["--experts"]) * int(v["--hidden"]) * \
                    int(v["--ffn"]) > 32 << 20:
                continue
            print(" ".join(comp) + "\t" + " ".join(gen))
            printed += 1
        return 0
    if not a.bin_dir:
        p.error("BIN_DIR (with moe-compile and moe-testgen) is needed")
    print(f"seed {seed}", flush=True)
    cases = [draw_case(rng) for _ in range(a.cases)]
    cases = [(gen, comp + a.always) for gen, comp in cases]
    work = tempfile.mkdtemp(prefix="cuda-sweep-")
    refusals = []
    passed = failed = 0
    try:
        with ThreadPoolExecutor(a.jobs) as pool:
            futures = [pool.submit(run_case, a.bin_dir, work, i, gen, comp,
                                   seed + i, a.run)
                       for i, (gen, comp) in enumerate(cases)]
            for i, f in enumerate(futures):
                ok, why, cmd, err = f.result()
                if ok:
                    passed += 1
                    if why == "gen" or "error: " in err:
                        refusals.append(f"{' '.join(cases[i][0])} "
                                        f"{' '.join(cases[i][1])} :: "
                                        f"{err.splitlines()[-1] if err else ''}")
                else:
                    failed += 1
                    print(f"FAIL ({why}): {' '.join(cmd)}\n  {err}",
                          flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if a.keep:
        with open(a.keep, "w") as f:
            f.write("\n".join(refusals) + "\n")
    print(f"{len(refusals)} of the passing cases were refused with a message")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
