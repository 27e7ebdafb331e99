"""Runs on the GPU machine: the whole-model comparison against Hugging Face
transformers (issue 5). For Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V3
and Switch Transformers (encoder-decoder), in float32 and
bfloat16, builds a randomly initialised tiny model (fresh seed; the configs
of test/gpu/tiny_configs.py), saves it with save_pretrained, and compares
transformers' greedy generation (eager attention, on the GPU) with the
executables compiled from the same config on the build machine
(test/gpu/make-hf-models.sh): the generated tokens, and the logits of every
generated token (prefill and decode steps) relative to their scale. A
bf16 run whose logits are farther from the float32 forward than
transformers' bf16 ones also passes where they are within 1e-2 of the
float32 forward with one (or two) of the routing's near-ties taken the
other way (route_flips.py: DeepSeek-V3's sigmoid routing, margins under
4e-3), and its row names the flip.
Usage: python3 hf_compare.py DIR [ARCH,...]  (DIR holds ARCH-cpu-f32,
ARCH-cpu-bf16, ARCH-cuda-bf16, partitioned ARCH-*-ep2-* / -es2-* and
tiny_configs.py; the optional list limits the architectures). Prints a
table last. HF_COMPARE_SEED=N builds every checkpoint from seed N (a seed a
table printed) instead of a fresh one."""
import copy
import os
import subprocess
import sys
import time

# A model compiled for the GPU runs its CPU code where the GPU cannot be
# used; here that must fail instead of passing on the CPU.
os.environ.setdefault("MOERT_DEVICE", "gpu")

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

D = sys.argv[1]
sys.path.insert(0, D)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import route_flips  # noqa: E402
from tiny_configs import CONFIGS, MODEL_TYPE  # noqa: E402

prompt, new = [3, 1, 4, 1, 5, 9, 2, 6], 12
rows = []
failures = 0
archs = sys.argv[2].split(",") if len(sys.argv) > 2 else list(CONFIGS)
for arch, (dtype, tag) in [(a, d) for a in archs
                           for d in [(torch.float32, "f32"), (torch.bfloat16, "bf16")]]:
    # HF_COMPARE_SEED: a seed a table printed, to rebuild that checkpoint.
    seed = int(os.environ.get("HF_COMPARE_SEED") or
               int(time.time() * 1000) % (1 << 31))
    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(MODEL_TYPE[arch], **CONFIGS[arch], torch_dtype=dtype)
    # An encoder-decoder (Switch Transformers) reads the prompt in its
    # encoder and generates from its decoder start token.
    encdec = cfg.is_encoder_decoder
    cls = AutoModelForSeq2SeqLM if encdec else AutoModelForCausalLM
    model = cls.from_config(cfg).to(dtype)
    # Give the norms and biases non-trivial values (transformers initialises
    # them to 1 and 0).
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n or n.endswith(".bias"):
                p.add_(0.1 * torch.randn_like(p))
    ckpt = os.path.join(D, f"ckpt-{arch}-{tag}")
    model.save_pretrained(ckpt, safe_serialization=True)
    model = model.to("cuda").eval()
    # Built in bfloat16, transformers holds the rotary inverse frequencies
    # in bfloat16 too (test/bench/bench_whole_model.py measured it); the
    # compiled models keep them in float32. The tiny models' 20 positions
    # hide the difference; the long-prompt benchmark does not.
    model.config._attn_implementation = "eager"
    ids = torch.tensor([prompt], device="cuda")
    # Generate all `new` tokens: the configs' end-of-sequence ids (e.g.
    # Mixtral's 2) are ordinary tokens of these tiny vocabularies.
    model.generation_config.eos_token_id = None
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, output_logits=True,
                             return_dict_in_generate=True, pad_token_id=0)
    hf_tokens = out.sequences[0, 1 if encdec else len(prompt):].tolist()
    hf_logits = torch.stack([l[0].float() for l in out.logits]).cpu()
    # bf16: the same weights in float32, teacher-forced on transformers'
    # tokens, as the exact reference: where the bf16 results of transformers
    # and ours part (they round at different points; a near-tie in the
    # routing then picks another expert), the one closer to it is right.
    exact = m32 = None
    if tag == "bf16":
        full = torch.tensor([prompt + hf_tokens[:-1]], device="cuda")
        with torch.no_grad():
            m32 = copy.deepcopy(model).float()
            if encdec:
                dec = torch.tensor([[cfg.decoder_start_token_id] + hf_tokens[:-1]],
                                   device="cuda")
                exact = m32(input_ids=ids, decoder_input_ids=dec).logits[0].float().cpu()
            else:
                exact = m32(full).logits[0, len(prompt) - 1:].float().cpu()
    for exe in sorted(os.listdir(D)):
        if not exe.startswith(arch + "-") or not exe.endswith(tag) or "." in exe:
            continue
        res = os.path.join(D, f"{exe}.safetensors")
        # Partitioned executables (ARCH-cuda-ep2-bf16, ARCH-cpu-ep2-f32, ...)
        # launch their ranks under mpirun themselves.
        ranks = []
        if "-ep2-" in exe or "-es2-" in exe:
            ranks = ["--gpus" if "-cuda-" in exe else "--ranks", "2"]
            if "-cuda-" in exe and torch.cuda.device_count() < 2:
                print(f"{exe}: skipped, it needs 2 GPUs and this machine has "
                      f"{torch.cuda.device_count()}")
                rows.append((exe, seed, "SKIP", "", "", "", "needs 2 GPUs"))
                continue
        run = subprocess.run([os.path.join(D, exe)] + ranks + ["--weights", ckpt,
                              "--prompt-ids", ",".join(map(str, prompt)),
                              "--max-new-tokens", str(new), "--output", res],
                             capture_output=True, text=True)
        if run.returncode != 0:
            print(f"{exe}: failed\n{run.stdout}{run.stderr}")
            failures += 1
            rows.append((exe, seed, "FAIL", "", "", "", ""))
            continue
        ours = load_file(res)
        tokens = ours["ids"].tolist()
        logits = ours["logits"]
        # Batched executables (ARCH-*-b2-*) generate the prompt twice side by
        # side: both sequences must give the same tokens and logits (up to
        # the order of f32 sums: the GEMVs add with atomics); the first is
        # compared with transformers.
        if "-b2-" in exe:
            n = len(tokens) // 2
            gap = (logits[:n] - logits[n:]).abs().max().item() / hf_logits.abs().max().item()
            if tokens[:n] != tokens[n:] or gap > 1e-2:
                print(f"{exe}: the two sequences differ: {tokens[:n]} / {tokens[n:]}")
                failures += 1
                rows.append((exe, seed, "FAIL", "", "", "", "sequences differ"))
                continue
            tokens, logits = tokens[:n], logits[:n]
        scale = hf_logits.abs().max().item()
        err = (logits - hf_logits).abs().max().item() / scale
        same = sum(a == b for a, b in zip(tokens, hf_tokens))
        # Tolerances relative to the logits' scale: float32 rounding
        # differences only; bfloat16: transformers rounds at more points
        # (router logits, each expert product, the bf16 index_add); a bf16
        # run farther than that from transformers still passes when its
        # logits are at least as close as transformers' own to the float32
        # forward of the same weights.
        tol = 1e-4 if tag == "f32" else 5e-2
        first_diff = next((i for i, (a, b) in enumerate(zip(tokens, hf_tokens)) if a != b), None)
        # Compare logits up to the first differing token (after it the
        # sequences, and so the inputs, differ).
        upto = len(tokens) if first_diff is None else first_diff + 1
        err_upto = (logits[:upto] - hf_logits[:upto]).abs().max().item() / scale
        ok = err_upto <= tol and (tag == "bf16" or first_diff is None)
        vs_exact = ""
        if exact is not None:
            ours_x = (logits[:upto] - exact[:upto]).abs().max().item() / scale
            hf_x = (hf_logits[:upto] - exact[:upto]).abs().max().item() / scale
            vs_exact = f"vs f32: ours {ours_x:.2e}, transformers {hf_x:.2e}"
            ok = ok or ours_x <= hf_x
            # Still apart: the float32 forward with a routing near-tie
            # (margin under 4e-3, about a bf16 step of a score near 0.5)
            # taken the other way; ours must then be within 1e-2 of it
            # (bf16 runs that route alike are at 3e-3 to 7e-3).
            if not ok and not encdec and route_flips.routers(m32):
                try:
                    flip, lines = route_flips.explain(m32, full, len(prompt) - 1,
                                                      logits[:upto].float(), scale, 1e-2)
                    print(f"{exe}: " + "\n  ".join(lines))
                    if flip:
                        ok = True
                        vs_exact += f"; near-tie flipped: {flip}"
                except route_flips.Unsupported as e:
                    print(f"{exe}: routing flips not tried: {e}")
        failures += not ok
        rows.append((exe, seed, "PASS" if ok else "FAIL", f"{same}/{new}",
                     f"{err_upto:.2e}", f"{tol:.0e}",
                     " ".join([vs_exact] + [l for l in run.stdout.splitlines()
                                            if "tokens/s" in l]).strip()))
        print(f"{exe}: hf {hf_tokens}\n{' ' * len(exe)}  us {tokens}")
print()
print(f"{'executable':20} {'seed':>10} {'ok':4} {'tokens':>7} {'logit err':>9} {'tol':>6}  timing")
for r in rows:
    print(f"{r[0]:20} {r[1]:>10} {r[2]:4} {r[3]:>7} {r[4]:>9} {r[5]:>6}  {r[6]}")
print(f"{failures} failed")
sys.exit(1 if failures else 0)
