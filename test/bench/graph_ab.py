"""Runs on the GPU machine: decoding speed of whole-model executables with
and without CUDA graphs and programmatic dependent launch, interleaved over
rounds so that the GPU's drift falls on every variant alike.

    python3 test/bench/graph_ab.py DIR EXE[,EXE...] [--rounds 3] [--new 128]
        [--out FILE.md]

DIR holds the executables of test/bench/make-whole-model.py and its
config.json; a checkpoint with random bf16 weights is made there first
(transformers). Each run generates --new tokens after a 16-token prompt;
the table gives the median decode tokens/s over the rounds (min-max), the
mode the executable reported ("steps: ..."), and whether the greedy tokens
equal the first variant's."""
import argparse
import json
import os
import re
import statistics
import subprocess
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM

VARIANTS = [("graph, PDL", {}),
            ("no graph, PDL", {"MOERT_CUDA_GRAPH": "0"}),
            ("graph, no PDL", {"MOERT_PDL": "0"}),
            ("no graph, no PDL", {"MOERT_CUDA_GRAPH": "0", "MOERT_PDL": "0"})]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("exes")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    cfg_json = json.load(open(os.path.join(args.dir, "config.json")))
    cfg = AutoConfig.for_model(cfg_json["model_type"], **{
        k: v for k, v in cfg_json.items() if k not in ("architectures", "model_type")})
    torch.manual_seed(int(time.time()) % 100000)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    ckpt = os.path.join(args.dir, "ckpt")
    model.save_pretrained(ckpt, safe_serialization=True)
    del model
    torch.cuda.empty_cache()
    prompt = torch.randint(0, cfg.vocab_size, (16,)).tolist()
    results = {}
    for r in range(args.rounds):
        for exe in args.exes.split(","):
            for name, env in VARIANTS:
                run = subprocess.run(
                    [os.path.join(args.dir, exe), "--weights", ckpt, "--prompt-ids",
                     ",".join(map(str, prompt)), "--max-new-tokens", str(args.new)],
                    capture_output=True, text=True, timeout=600,
                    env=dict(os.environ, **env))
                if run.returncode != 0:
                    raise SystemExit(f"{exe} ({name}) failed:\n{run.stdout}\n{run.stderr}")
                dec = re.search(r"decode: \d+ steps, [0-9.]+ ms \(([0-9.]+) tokens/s\)", run.stdout)
                steps = re.search(r"steps: (.*)", run.stdout)
                gen = re.search(r"generated[^:]*: ([0-9,]+)", run.stdout)
                entry = results.setdefault((exe, name), {"tps": [], "steps": "", "tokens": None})
                entry["tps"].append(float(dec.group(1)))
                entry["steps"] = steps.group(1) if steps else "?"
                entry["tokens"] = gen.group(1) if gen else None
                print(f"round {r} {exe} {name}: {dec.group(1)} tokens/s ({entry['steps']})", flush=True)
    lines = [f"# CUDA graphs and programmatic launch, {time.strftime('%Y-%m-%d')}, "
             f"{torch.cuda.get_device_name()}", "",
             f"Decode tokens/s after a 16-token prompt, {args.new} new tokens, median "
             f"of {args.rounds} interleaved rounds (min-max).", "",
             "| executable | variant | steps | decode tokens/s | / first variant | tokens as first |",
             "|---|---|---|---|---|---|"]
    for exe in args.exes.split(","):
        first = results[(exe, VARIANTS[0][0])]
        base = statistics.median(first["tps"])
        for name, _ in VARIANTS:
            e = results[(exe, name)]
            m = statistics.median(e["tps"])
            lines.append(f"| {exe} | {name} | {e['steps']} | {m:.1f} ({min(e['tps']):.1f}-"
                         f"{max(e['tps']):.1f}) | {m / base:.3f} | "
                         f"{'equal' if e['tokens'] == first['tokens'] else 'differ'} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        open(args.out, "w").write(text + "\n")


if __name__ == "__main__":
    main()
