#!/usr/bin/env python3
"""How moe-compile's time grows with a model's layers and its sequences a
step (build machine; no GPU needed): compiles the Mixtral-shaped model of
make-whole-model.py (hidden 4096, 8 experts of 14336; a sparse checkpoint,
so only its shapes are read) whole with 1, 4, ... layers, for the GPU
(--target=cuda, which carries the CPU code as its fallback) and for the
CPU, and a decoding step of 1 to 80 sequences; prints a table of seconds
(wall clock, one run each) and the time a layer, and writes it to --out.

  compile_time.py [--layers 4,8,16,32] [--batches 1,16,80] [--out FILE.md]
      [--moe-compile build/bin/moe-compile]

A compile time linear in the layers keeps the seconds a layer flat down a
column; before the CPU code's loop nests were outlined
(moe-cpu-outline-loops) and the CPU fallback's symbols renamed in one walk,
a 32-layer model took 56-64 s for the GPU and 45 s for the CPU on the
2-core build machine (test/bench/NOTES-gpu.md, forty-seventh session)."""
import argparse
import datetime
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def shape_checkpoint(ckpt, layers):
    spec = importlib.util.spec_from_file_location(
        "make_whole_model", os.path.join(HERE, "make-whole-model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_shape_checkpoint(ckpt, layers)


def compile_seconds(moe_compile, ckpt, out, flags):
    cmd = [moe_compile, ckpt, "--import-hf-whole", "--import-hf-tokens", "1",
           "--cpu=x86-64-v3", "-o", out] + flags
    start = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if r.returncode != 0:
        sys.exit(f"compile_time.py: {' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", default="4,8,16,32")
    p.add_argument("--batches", default="1,16,80")
    p.add_argument("--out")
    p.add_argument("--moe-compile", default="build/bin/moe-compile")
    a = p.parse_args()
    layers = [int(x) for x in a.layers.split(",")]
    batches = [int(x) for x in a.batches.split(",")]
    tmp = tempfile.mkdtemp(prefix="moe-compile-time-")
    lines = [f"# moe-compile time ({datetime.date.today()}, {platform.node()}, "
             f"{os.cpu_count()} cores)", "",
             "Mixtral-shaped model (hidden 4096, 32/8 heads of 128, 8 experts "
             "of 14336, vocabulary 32000), compiled whole, one token a "
             "step, cache of 4096 rows; wall-clock seconds, one run each.", "",
             "| layers | GPU (s) | GPU s/layer | CPU (s) | CPU s/layer |",
             "|---|---|---|---|---|"]
    try:
        for n in layers:
            ckpt = os.path.join(tmp, f"l{n}")
            shape_checkpoint(ckpt, n)
            seq = ["--import-hf-max-seq", "4096"]
            gpu = compile_seconds(a.moe_compile, ckpt, os.path.join(tmp, "m"),
                                  seq + ["--target=cuda"])
            cpu = compile_seconds(a.moe_compile, ckpt, os.path.join(tmp, "m"), seq)
            lines.append(f"| {n} | {gpu:.1f} | {gpu / n:.2f} | {cpu:.1f} | "
                         f"{cpu / n:.2f} |")
            print(lines[-1], flush=True)
            shutil.rmtree(ckpt)
        lines += ["", "Two layers, a decoding step of B sequences (cache of "
                  "512 rows each), for the GPU:", "",
                  "| sequences | GPU (s) |", "|---|---|"]
        ckpt = os.path.join(tmp, "l2")
        shape_checkpoint(ckpt, 2)
        for b in batches:
            s = compile_seconds(a.moe_compile, ckpt, os.path.join(tmp, "m"),
                                ["--import-hf-max-seq", "512",
                                 "--import-hf-batch", str(b), "--target=cuda"])
            lines.append(f"| {b} | {s:.1f} |")
            print(lines[-1], flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
