#!/usr/bin/env python3
"""How moe-compile's time grows with a model's layers and its sequences a
step (build machine; no GPU needed): compiles the Mixtral-shaped model of
make-whole-model.py (hidden 4096, 8 experts of 14336; a sparse checkpoint,
so only its shapes are read) whole with 1, 4, ... layers, for the GPU
(--target=cuda, which carries the CPU code as its fallback) and for the
CPU, a decoding step of 1 to 80 sequences, and DeepSeek-V3's shape with
all of its 61 layers; prints a table of seconds (wall clock, one run each)
and the time a layer, and writes it to --out.

  compile_time.py [--layers 4,8,16,32] [--batches 1,16,80]
      [--deepseek-layers 61] [--deepseek-fp8] [--out FILE.md]
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


def script(path):
    """The Python script at `path` (relative to this one) as a module."""
    name = os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shape_checkpoint(ckpt, layers):
    script("make-whole-model.py").write_shape_checkpoint(ckpt, layers)


def deepseek_checkpoint(ckpt, layers, fp8=False):
    """DeepSeek-V3's config (61 layers, 3 dense, 256 experts of 2048, top
    8, latent attention, YaRN) with `layers` layers, as a sparse checkpoint:
    headers over no data (1.3 TB of weights at 61 layers, none written).
    With `fp8`, as DeepSeek publishes it: the projections F8_E4M3 with a
    `_scale_inv` of 128 x 128 blocks each."""
    c = dict(architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3",
             hidden_size=7168, num_hidden_layers=layers,
             num_attention_heads=128, num_key_value_heads=128,
             hidden_act="silu", rms_norm_eps=1e-6, rope_theta=10000.0,
             vocab_size=129280, max_position_embeddings=163840,
             tie_word_embeddings=False, intermediate_size=18432,
             moe_intermediate_size=2048, q_lora_rank=1536, kv_lora_rank=512,
             qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
             head_dim=64, n_routed_experts=256, num_experts_per_tok=8,
             n_shared_experts=1, n_group=8, topk_group=4,
             routed_scaling_factor=2.5, norm_topk_prob=True,
             first_k_dense_replace=3, topk_method="noaux_tc",
             scoring_func="sigmoid", rope_interleave=True,
             attention_bias=False, torch_dtype="bfloat16",
             rope_scaling=dict(type="yarn", factor=40.0,
                               original_max_position_embeddings=4096,
                               beta_fast=32, beta_slow=1, mscale=1.0,
                               mscale_all_dim=1.0))
    shapes = script(os.path.join("..", "gpu", "make-tiny-checkpoint.py")) \
        .tensor_shapes(c, "deepseek_v3")
    # The score-correction bias is stored in f32, the rest in bf16.
    dtypes = {n: "F32" for n in shapes if n.endswith("e_score_correction_bias")}
    if fp8:
        tiny = script(os.path.join("..", "gpu", "make-tiny-checkpoint.py"))
        c["quantization_config"] = dict(activation_scheme="dynamic", fmt="e4m3",
                                        quant_method="fp8", weight_block_size=[128, 128])
        for n, shape in list(shapes.items()):
            if tiny.quantized(n, shape):
                dtypes[n] = "F8_E4M3"
                shapes[n + "_scale_inv"] = [-(-shape[0] // 128), -(-shape[1] // 128)]
                dtypes[n + "_scale_inv"] = "F32"
    script("make-whole-model.py").write_sparse_checkpoint(ckpt, shapes, c, dtypes=dtypes)


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
    p.add_argument("--deepseek-fp8", action="store_true",
                   help="also DeepSeek-V3's shape as its FP8 checkpoint "
                        "(block-scaled E4M3 projections)")
    p.add_argument("--deepseek-layers", default="61",
                   help="also DeepSeek-V3's shape with this many layers "
                        "(0: not)")
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
    def both(ckpt):
        """Seconds for the GPU and for the CPU, one token a step, a cache
        of 4096 rows."""
        seq = ["--import-hf-max-seq", "4096"]
        gpu = compile_seconds(a.moe_compile, ckpt, os.path.join(tmp, "m"),
                              seq + ["--target=cuda"])
        return gpu, compile_seconds(a.moe_compile, ckpt, os.path.join(tmp, "m"), seq)

    try:
        for n in layers:
            ckpt = os.path.join(tmp, f"l{n}")
            shape_checkpoint(ckpt, n)
            gpu, cpu = both(ckpt)
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
        n = int(a.deepseek_layers)
        if n > 0:
            lines += ["", f"DeepSeek-V3-shaped model ({n} layers, the first 3 "
                      "dense; hidden 7168, latent attention of 128 heads, 256 "
                      "experts of 2048, top 8, a shared expert, vocabulary "
                      "129280), one token a step, cache of 4096 rows:", "",
                      "| layers | GPU (s) | CPU (s) |", "|---|---|---|"]
            for fp8 in (False, True) if a.deepseek_fp8 else (False,):
                ckpt = os.path.join(tmp, "deepseek-fp8" if fp8 else "deepseek")
                deepseek_checkpoint(ckpt, n, fp8)
                gpu, cpu = both(ckpt)
                lines.append(f"| {n}{' (FP8 checkpoint)' if fp8 else ''} | "
                             f"{gpu:.1f} | {cpu:.1f} |")
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
