"""Runs on the GPU machine: the DeepSpeed-MoE GPT whole models that
test/gpu/make-hf-models.sh compiled for the GPU (DIR/dsgpt-*/model-cuda,
bf16), against the plain-Python reference made with their checkpoints
(test/e2e/tiny-dsgpt.py: expected.txt, expected-logits.safetensors):
the 8 greedy tokens after the prompt 3,1,4,1,5,9,2,6 must be equal and
the logits of each generated token within 2e-2 of their largest magnitude
(bf16). There is no transformers class for these models.
Usage: python3 dsgpt_compare.py DIR   (prints a table last)"""
import os
import subprocess
import sys

# A model compiled for the GPU runs its CPU code where the GPU cannot be
# used; here that must fail instead of passing on the CPU.
os.environ.setdefault("MOERT_DEVICE", "gpu")

import torch
from safetensors.torch import load_file

D = sys.argv[1]
rows, failed = [], 0
for name in sorted(os.listdir(D)):
    d = os.path.join(D, name)
    exe = os.path.join(d, "model-cuda")
    if not name.startswith("dsgpt-") or not os.path.exists(exe):
        continue
    out = os.path.join(d, "gpu-out.safetensors")
    r = subprocess.run([exe, "--weights", d, "--prompt-ids", "3,1,4,1,5,9,2,6",
                        "--max-new-tokens", "8", "--output", out],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-2000:])
        rows.append((name, "FAIL (exit %d)" % r.returncode, "-", "-"))
        failed += 1
        continue
    got = [l for l in r.stdout.splitlines() if l.startswith("generated:")]
    want = open(os.path.join(d, "expected.txt")).read().strip()
    a = load_file(out)["logits"].float()
    e = load_file(os.path.join(d, "expected-logits.safetensors"))["logits"].float()
    err = ((a.reshape(e.shape) - e).abs().max() / e.abs().max()).item()
    ok = got == [want] and err <= 2e-2
    failed += 0 if ok else 1
    rows.append((name, "PASS" if ok else "FAIL", "equal" if got == [want] else
                 f"{got} vs {want}", f"{err:.2e}"))
print("| model | result | greedy tokens | logit error |\n|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
print(f"{len(rows) - failed} passed, {failed} failed")
sys.exit(1 if failed or not rows else 0)
