"""Runs on the GPU machine: the whole-model benchmark of issue 5. A
Mixtral-8x7B-shaped model with fewer layers (the config that
test/bench/make-whole-model.py compiled on the build machine) gets random
bf16 weights from transformers, saved with save_pretrained; then, on the
same GPU and in one run:
  - ours: the decode executable (1 token per step) generating 128 tokens
    after a 16-token prompt, and the prefill executable (2048 tokens per
    step) on a 2048-token prompt;
  - transformers' own generate (bf16, its default attention) at batch 1 and
    16, and its forward pass over the 2048-token prompt;
  - the floor of a decoding step: the bytes it must read (all weights but
    the experts, the 2 experts of 8 each layer picks, the LM head, one
    embedding row) over the copy bandwidth measured in the same run.
Usage: python3 bench_whole_model.py DIR OUT.md   (prints the table last)"""
import json
import os
import re
import subprocess
import sys
import time

# A model compiled for the GPU runs its CPU code where the GPU cannot be
# used; here that must fail instead of passing on the CPU.
os.environ.setdefault("MOERT_DEVICE", "gpu")

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

D, out_md = sys.argv[1], sys.argv[2]
cfg_json = json.load(open(os.path.join(D, "config.json")))
cfg = AutoConfig.for_model("mixtral", **{k: v for k, v in cfg_json.items()
                                          if k not in ("architectures", "model_type")})
torch.manual_seed(int(time.time()) % 100000)
with torch.device("cuda"):
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
model.eval()
model.generation_config.eos_token_id = None


def f32_rope(m):
    """transformers keeps the rotary inverse frequencies as a buffer in the
    model's dtype when it is built in bfloat16 (1e6^(-2/128) = 0.8058
    becomes 0.8047: 2.3 rad off at position 2047), while the RoPE formula,
    and the compiled model, have them in float32: recompute them so."""
    hd = m.config.head_dim
    theta = m.config.rope_parameters["rope_theta"] if getattr(
        m.config, "rope_parameters", None) else m.config.rope_theta
    exact = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    for mod in m.modules():
        if hasattr(mod, "inv_freq"):
            mod.inv_freq = exact.to(device=mod.inv_freq.device)
    return m


f32_rope(model)
ckpt = os.path.join(D, "ckpt")
t0 = time.time()
model.save_pretrained(ckpt, safe_serialization=True)
print(f"saved the checkpoint in {time.time() - t0:.1f} s", flush=True)


def sync_time(fn, reps=3):
    best = float("inf")
    for _ in range(reps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


# Copy bandwidth (read + write of 2 GiB).
src = torch.empty(1 << 30, dtype=torch.bfloat16, device="cuda")
dst = torch.empty_like(src)
dst.copy_(src)
bw = 2 * src.numel() * 2 / sync_time(lambda: dst.copy_(src), 10)
del src, dst

# The bytes a decoding step reads.
L, d, f, E, k = (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size,
                 cfg.num_local_experts, cfg.num_experts_per_tok)
expert_params = L * E * 3 * d * f
total_params = sum(p.numel() for p in model.parameters())
embed = cfg.vocab_size * d
step_bytes = 2 * (total_params - expert_params - embed + L * k * 3 * d * f + d)
floor_s = step_bytes / bw
# Batch 16: the experts 16 tokens hit on average under uniform routing.
hit16 = E * (1 - (1 - k / E) ** 16)
step_bytes16 = 2 * (total_params - expert_params - embed + L * hit16 * 3 * d * f + 16 * d)
floor16_s = step_bytes16 / bw

rng = torch.Generator().manual_seed(1)
prompt16 = torch.randint(0, cfg.vocab_size, (16,), generator=rng).tolist()
prompt2k = torch.randint(0, cfg.vocab_size, (2048,), generator=rng).tolist()
NEW = 128


def ours(exe, prompt, new, *extra, env=None):
    r = subprocess.run([os.path.join(D, exe), "--weights", ckpt, "--prompt-ids",
                        ",".join(map(str, prompt)), "--max-new-tokens", str(new),
                        "--output", os.path.join(D, f"{exe}.safetensors"), *extra],
                       capture_output=True, text=True, timeout=900, env=env)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit(f"{exe} failed")
    pre = re.search(r"prefill ([0-9.]+) ms \(([0-9.]+) tokens/s\)", r.stdout)
    dec = re.search(r"decode: (\d+) steps, ([0-9.]+) ms \(([0-9.]+) tokens/s\)", r.stdout)
    gen = re.search(r"generated: ([0-9,]+)", r.stdout)
    steps = re.search(r"steps: (.*)", r.stdout)
    print(f"{exe} {' '.join(extra)} {'MOERT_CUDA_GRAPH=0' if env and env.get('MOERT_CUDA_GRAPH') == '0' else ''}: "
          f"steps {steps.group(1) if steps else '?'}", flush=True)
    return (float(pre.group(1)), float(dec.group(3)) if dec else None,
            [int(x) for x in gen.group(1).split(",")])


our_pre16, our_dec, our_tokens = ours("mixtral-decode", prompt16, NEW)
# The same without programmatic dependent launch (each kernel launched
# after the one before it has finished): what it is worth, same tokens.
_, our_dec_serial, serial_tokens = ours("mixtral-decode", prompt16, NEW,
                                        env=dict(os.environ, MOERT_PDL="0"))
print(f"decode batch 1: {our_dec:.1f} tokens/s, {our_dec_serial:.1f} without "
      f"programmatic launch; tokens {'equal' if serial_tokens == our_tokens else 'DIFFER'}",
      flush=True)
# 16 sequences per step (the batched attention kernels); greedy, every
# sequence must give the single sequence's tokens.
_, our_dec16, tokens16 = ours("mixtral-decode16", prompt16, NEW)
# The same steps launched kernel by kernel instead of as one CUDA graph a
# step (the executables replay a step that only queues GPU work as a
# graph): what the graph is worth, same tokens.
no_graph = dict(os.environ, MOERT_CUDA_GRAPH="0")
_, our_dec_eager, eager_tokens = ours("mixtral-decode", prompt16, NEW, env=no_graph)
_, our_dec16_eager, eager_tokens16 = ours("mixtral-decode16", prompt16, NEW, env=no_graph)
print(f"without CUDA graphs: batch 1 {our_dec_eager:.1f} tokens/s (tokens "
      f"{'equal' if eager_tokens == our_tokens else 'DIFFER'}), batch 16 "
      f"{our_dec16_eager:.1f} (tokens {'equal' if eager_tokens16 == tokens16 else 'DIFFER'})",
      flush=True)
first_diff16 = next((i for i, (a, b) in enumerate(zip(tokens16, our_tokens)) if a != b),
                    min(len(tokens16), len(our_tokens)))
print(f"batch 16, sequence 0: the first {first_diff16} of {len(our_tokens)} greedy tokens "
      f"equal batch 1's", flush=True)
# Where they part: the two runs' logits of that token (same inputs up to
# it), and batch 1's gap between its best two logits there.
l1 = load_file(os.path.join(D, "mixtral-decode.safetensors"))["logits"].float()
l16 = load_file(os.path.join(D, "mixtral-decode16.safetensors"))["logits"].float()
at = min(first_diff16, len(our_tokens) - 1)
row1, row16 = l1[at], l16[at]
top2 = row1.topk(2).values
part16 = (f"at token {at}: batch-16 vs batch-1 logits differ by "
          f"{((row16 - row1).abs().max() / row1.abs().max()).item():.2e} of the largest; "
          f"batch 1's best two logits are {(top2[0] - top2[1]).item():.3g} apart "
          f"({((top2[0] - top2[1]) / row1.abs().max()).item():.2e} of the largest)")
print(part16, flush=True)

our_pre2k_ms, _, _ = ours("mixtral-prefill", prompt2k, 1)

# transformers: generate at batch 1 and 16; a step's time is the difference
# between NEW + 1 and 1 new tokens, over NEW.
def hf_decode(batch):
    ids = torch.tensor([prompt16] * batch, device="cuda")
    def gen(n):
        return model.generate(ids, max_new_tokens=n, min_new_tokens=n,
                              do_sample=False, pad_token_id=0)
    with torch.no_grad():
        gen(2)
        long = sync_time(lambda: gen(NEW + 1), 2)
        short = sync_time(lambda: gen(1), 3)
        tokens = gen(9)[0, 16:].tolist()
    return batch * NEW / (long - short), tokens


hf1, hf_tokens = hf_decode(1)
hf16, _ = hf_decode(16)
with torch.no_grad():
    ids2k = torch.tensor([prompt2k], device="cuda")
    model(ids2k)
    hf_pre2k = sync_time(lambda: model(ids2k), 3)

same = sum(1 for a, b in zip(our_tokens[:8], hf_tokens[:8]) if a == b)

# The logits of the first generated token (the prompt's last row) against
# transformers' forward pass, eager attention, in bf16 and in f32.



def logit_error(exe, prompt):
    ours_first = load_file(os.path.join(D, f"{exe}.safetensors"))["logits"][0].float()
    errs = []
    for dtype in (torch.bfloat16, torch.float32):
        m = f32_rope(model.to(dtype))
        m.config._attn_implementation = "eager"
        with torch.no_grad():
            ref = m(torch.tensor([prompt], device="cuda")).logits[0, -1].float().cpu()
        errs.append((ours_first - ref).abs().max().item() / ref.abs().max().item())
    f32_rope(model.to(torch.bfloat16))
    model.config._attn_implementation = "sdpa"
    return errs


err_dec = logit_error("mixtral-decode", prompt16)
err_pre = logit_error("mixtral-prefill", prompt2k)
# The logit error against the prompt length (1-token steps), and the
# rotary frequencies transformers uses.
rot = model.model.rotary_emb
print("transformers rope:", getattr(model.config, "rope_parameters", None),
      "inv_freq", rot.inv_freq.dtype, "[0, 1, -2, -1] =",
      rot.inv_freq[[0, 1, -2, -1]].tolist(), flush=True)
by_length = []
for n in (16, 128, 512, 2048):
    ours("mixtral-decode", prompt2k[:n], 1)
    by_length.append((n, logit_error("mixtral-decode", prompt2k[:n])))
print("logit error by prompt length (bf16 / f32 reference):", by_length, flush=True)
gpu = torch.cuda.get_device_name()
rows = [
    ("decode tokens/s, batch 1", f"{our_dec:.1f}", f"{hf1:.1f}", f"{1 / floor_s:.1f}",
     f"{our_dec * floor_s:.0%}", f"{our_dec / hf1:.2f}x"),
    ("decode tokens/s, batch 1, MOERT_PDL=0", f"{our_dec_serial:.1f}", f"{hf1:.1f}",
     f"{1 / floor_s:.1f}", f"{our_dec_serial * floor_s:.0%}", f"{our_dec_serial / hf1:.2f}x"),
    ("decode tokens/s, batch 1, MOERT_CUDA_GRAPH=0", f"{our_dec_eager:.1f}", f"{hf1:.1f}",
     f"{1 / floor_s:.1f}", f"{our_dec_eager * floor_s:.0%}", f"{our_dec_eager / hf1:.2f}x"),
    ("decode tokens/s, batch 16", f"{our_dec16:.1f}", f"{hf16:.1f}", f"{16 / floor16_s:.1f}",
     f"{our_dec16 * floor16_s / 16:.0%}", f"{our_dec16 / hf16:.2f}x"),
    ("decode tokens/s, batch 16, MOERT_CUDA_GRAPH=0", f"{our_dec16_eager:.1f}", f"{hf16:.1f}",
     f"{16 / floor16_s:.1f}", f"{our_dec16_eager * floor16_s / 16:.0%}", f"{our_dec16_eager / hf16:.2f}x"),
    ("prefill tokens/s, 2048", f"{2048 / (our_pre2k_ms / 1e3):.0f}", f"{2048 / hf_pre2k:.0f}", "-",
     "-", f"{(2048 / (our_pre2k_ms / 1e3)) / (2048 / hf_pre2k):.2f}x"),
]
lines = [f"# Whole-model benchmark, {time.strftime('%Y-%m-%d')}, {gpu}", "",
         f"Mixtral-8x7B shapes, {L} layers, bf16, random weights; copy bandwidth "
         f"{bw / 1e12:.2f} TB/s; a decoding step reads {step_bytes / 1e9:.2f} GB "
         f"(floor {floor_s * 1e6:.0f} us/token at batch 1).", "",
         f"Greedy tokens, ours vs transformers, first 8 after the 16-token prompt: "
         f"{same}/8 equal (ours {our_tokens[:8]}, transformers {hf_tokens[:8]}).",
         f"Logits of the first generated token, max |ours - transformers| over the "
         f"largest |logit| (transformers eager in bf16 / in f32): 16-token prompt "
         f"{err_dec[0]:.2e} / {err_dec[1]:.2e}, 2048-token prompt {err_pre[0]:.2e} / "
         f"{err_pre[1]:.2e}.",
         f"Batch 16, sequence 0: the first {first_diff16} of {len(our_tokens)} greedy "
         f"tokens equal the batch-1 run's; {part16}.",
         "By prompt length (1-token steps, against the f32 reference): " +
         ", ".join(f"{n}: {e[1]:.2e}" for n, e in by_length) + ".", "",
         "| metric | ours | transformers generate | floor | ours / floor | ours / transformers |",
         "|---|---|---|---|---|---|"]
lines += ["| " + " | ".join(r) + " |" for r in rows]
text = "\n".join(lines) + "\n"
open(out_md, "w").write(text)
print(text)
