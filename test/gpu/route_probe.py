#!/usr/bin/env python3
"""GPU machine: how close transformers' own routing is to a tie, for one
tiny checkpoint of hf_compare.py (the same construction and seed). Builds
ARCH in bfloat16 from SEED, generates hf_compare's 12 tokens greedily, and
teacher-forces prompt + tokens through the bf16 model and its float32 copy,
recording each MoE router's chosen experts (hooks on modules whose class
name ends in "TopkRouter" or is a gate Linear of E outputs). Prints, per
MoE layer, the tokens whose expert sets differ between bf16 and f32 and the
smallest gap between the k-th and (k+1)-th selection score (f32 forward).
Usage: route_probe.py DIR ARCH SEED"""
import copy
import os
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM

D, arch, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, D)
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
k = getattr(cfg, "num_experts_per_tok", 2)


def probe(m):
    rec = {}
    hooks = []
    for name, mod in m.named_modules():
        if type(mod).__name__.endswith("TopkRouter"):
            def hook(mod, args, output, name=name):
                h = args[0].reshape(-1, mod.weight.shape[1]).float()
                s = torch.nn.functional.linear(h, mod.weight.float()).sigmoid()
                bias = getattr(mod, "e_score_correction_bias", None)
                sel = s + (bias.float() if bias is not None else 0)
                top = sel.sort(dim=-1, descending=True).values
                outs = output if isinstance(output, tuple) else (output,)
                idx = next(o for o in outs if not o.is_floating_point())
                rec[name] = (idx.reshape(h.shape[0], -1).sort(dim=-1).values.cpu(),
                             (top[:, k - 1] - top[:, k]).cpu(),
                             None if bias is None else bias.float().abs().max().item())
            hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        m(full)
    for h in hooks:
        h.remove()
    return rec


r16 = probe(model)
r32 = probe(copy.deepcopy(model).float())
print(f"{arch} seed {seed}: tokens {out[0, len(prompt):].tolist()}")
for name in r16:
    i16, gap16, b = r16[name]
    i32, gap32, _ = r32[name]
    diff = [t for t in range(i16.shape[0]) if not torch.equal(i16[t], i32[t])]
    print(f"{name}: {len(diff)} of {i16.shape[0]} tokens route differently in bf16 "
          f"{diff}; smallest k-th gap (f32) {gap32.min().item():.2e} at token "
          f"{gap32.argmin().item()}; |bias| max {b}")
