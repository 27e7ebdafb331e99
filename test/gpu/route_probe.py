#!/usr/bin/env python3
"""GPU machine: how close transformers' own routing is to a tie, for one
tiny checkpoint of hf_compare.py (the same construction and seed). Builds
ARCH in bfloat16 from SEED, generates hf_compare's 12 tokens greedily, and
teacher-forces prompt + tokens through the bf16 model and its float32 copy,
recording each MoE router's chosen experts (hooks on modules whose class
name ends in "TopkRouter"). Prints, per MoE layer, the tokens whose expert
sets differ between bf16 and f32, and the routing decisions of the f32
forward with margins under 4e-3 (route_flips.py: the last chosen group
against the first left out, the k-th expert against the (k+1)-th within
the chosen groups).
Usage: route_probe.py DIR ARCH SEED"""
import copy
import os
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM

D, arch, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, D)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import route_flips  # noqa: E402
from tiny_configs import CONFIGS, MODEL_TYPE  # noqa: E402

prompt, new = [3, 1, 4, 1, 5, 9, 2, 6], 12
torch.manual_seed(seed)
cfg = AutoConfig.for_model(MODEL_TYPE[arch], **CONFIGS[arch], torch_dtype=torch.bfloat16)
model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16)
with torch.no_grad():
    for n, p in model.named_parameters():
        if "norm" in n or n.endswith(".bias"):
            p.add_(0.1 * torch.randn_like(p))
model = model.to("cuda").eval()
model.generation_config.eos_token_id = None
ids = torch.tensor([prompt], device="cuda")
with torch.no_grad():
    out = model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                         pad_token_id=0)
full = out[:, :-1]


def probe(m):
    rec = {}
    hooks = []
    for name, mod in m.named_modules():
        if type(mod).__name__.endswith("TopkRouter"):
            def hook(mod, args, output, name=name):
                outs = output if isinstance(output, tuple) else (output,)
                idx = next(o for o in outs if not o.is_floating_point())
                rec[name] = idx.reshape(-1, idx.shape[-1]).sort(dim=-1).values.cpu()
            hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        m(full)
    for h in hooks:
        h.remove()
    return rec


r16 = probe(model)
m32 = copy.deepcopy(model).float()
r32 = probe(m32)
print(f"{arch} seed {seed}: tokens {out[0, len(prompt):].tolist()}")
for name in r16:
    diff = [t for t in range(r16[name].shape[0]) if not torch.equal(r16[name][t], r32[name][t])]
    print(f"{name}: {len(diff)} of {r16[name].shape[0]} tokens route differently in bf16 {diff}")
for m, name, t, kind, alt in route_flips.flips(m32, full, 4e-3):
    print(f"  near-tie (f32): {name} token {t} {kind} margin {m:.1e}, other side {alt}")
