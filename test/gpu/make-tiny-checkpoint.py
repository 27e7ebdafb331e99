#!/usr/bin/env python3
"""Writes a tiny random checkpoint in the Hugging Face format (config.json,
model.safetensors with transformers' names and layouts) of the configs
test/gpu/hf_compare.py builds with transformers, so that moe-compile can
compile them here (only the config and the tensor shapes matter).
Usage: make-tiny-checkpoint.py ARCH(mixtral|qwen2_moe|qwen3_moe|olmoe) DTYPE OUT_DIR
           [--fp8 BO,BI TWIN_DIR]
With --fp8 the projections' weights are stored as DeepSeek-V3's and the
Qwen3 FP8 checkpoints store them: F8_E4M3 with a `_scale_inv` F32 tensor of
one scale per BO x BI block, config.json naming the blocks in its
`quantization_config`; TWIN_DIR gets the same model in DTYPE, each such
weight dequantized (e4m3 value times its block's scale, rounded once)."""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from safetensors_util import bf16, f32, write  # noqa: E402
from tiny_configs import CONFIGS, MODEL_TYPE  # noqa: E402


def deepseek_layer(t, c, p, i, d, h):
    """The tensors of DeepSeek-V3 layer i: multi-head latent attention, then
    a dense MLP (i < first_k_dense_replace) or the MoE block."""
    a = p + "self_attn."
    qk = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    lq, lkv = c["q_lora_rank"], c["kv_lora_rank"]
    if lq is None:  # DeepSeek-V2(-Lite): no query compression
        t[a + "q_proj.weight"] = [h * qk, d]
    else:
        t[a + "q_a_proj.weight"], t[a + "q_a_layernorm.weight"] = [lq, d], [lq]
        t[a + "q_b_proj.weight"] = [h * qk, lq]
    t[a + "kv_a_proj_with_mqa.weight"] = [lkv + c["qk_rope_head_dim"], d]
    t[a + "kv_a_layernorm.weight"] = [lkv]
    t[a + "kv_b_proj.weight"] = [h * (c["qk_nope_head_dim"] + c["v_head_dim"]), lkv]
    t[a + "o_proj.weight"] = [d, h * c["v_head_dim"]]
    if i < c["first_k_dense_replace"]:
        f = c["intermediate_size"]
        t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"] = [f, d], [f, d]
        t[p + "mlp.down_proj.weight"] = [d, f]
        return
    e, f = c["n_routed_experts"], c["moe_intermediate_size"]
    t[p + "mlp.gate.weight"], t[p + "mlp.gate.e_score_correction_bias"] = [e, d], [e]
    for j in range(e):
        q = p + f"mlp.experts.{j}."
        t[q + "gate_proj.weight"], t[q + "up_proj.weight"] = [f, d], [f, d]
        t[q + "down_proj.weight"] = [d, f]
    s = c["n_shared_experts"] * f
    q = p + "mlp.shared_experts."
    t[q + "gate_proj.weight"], t[q + "up_proj.weight"] = [s, d], [s, d]
    t[q + "down_proj.weight"] = [d, s]


def tensor_shapes(c, arch):
    """Every tensor of a checkpoint of config `c` and model type `arch`, in
    transformers' names and [out, in] layouts: name -> shape."""
    d, h, kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim", d // h)
    v, layers = c["vocab_size"], c["num_hidden_layers"]
    t = {"model.embed_tokens.weight": [v, d], "model.norm.weight": [d],
         "lm_head.weight": [v, d]}
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = [d]
        t[p + "post_attention_layernorm.weight"] = [d]
        if arch in ("deepseek_v2", "deepseek_v3"):
            deepseek_layer(t, c, p, i, d, h)
            continue
        t[p + "self_attn.q_proj.weight"] = [h * hd, d]
        t[p + "self_attn.k_proj.weight"] = [kv * hd, d]
        t[p + "self_attn.v_proj.weight"] = [kv * hd, d]
        t[p + "self_attn.o_proj.weight"] = [d, h * hd]
        if arch == "qwen2_moe":
            t[p + "self_attn.q_proj.bias"] = [h * hd]
            t[p + "self_attn.k_proj.bias"] = [kv * hd]
            t[p + "self_attn.v_proj.bias"] = [kv * hd]
        if arch == "qwen3_moe":
            t[p + "self_attn.q_norm.weight"] = [hd]
            t[p + "self_attn.k_norm.weight"] = [hd]
        if arch == "olmoe":  # over the whole projection
            t[p + "self_attn.q_norm.weight"] = [h * hd]
            t[p + "self_attn.k_norm.weight"] = [kv * hd]
        # transformers' Qwen-MoE: a dense MLP (intermediate_size) where the
        # layer is in mlp_only_layers or (i + 1) % decoder_sparse_step != 0.
        sparse = (i not in c.get("mlp_only_layers", []) and
                  (i + 1) % c.get("decoder_sparse_step", 1) == 0)
        if not sparse:
            fd = c["intermediate_size"]
            q = p + "mlp."
            t[q + "gate_proj.weight"], t[q + "up_proj.weight"] = [fd, d], [fd, d]
            t[q + "down_proj.weight"] = [d, fd]
        elif arch == "mixtral":
            e, f = c["num_local_experts"], c["intermediate_size"]
            t[p + "block_sparse_moe.gate.weight"] = [e, d]
            for j in range(e):
                q = p + f"block_sparse_moe.experts.{j}."
                t[q + "w1.weight"], t[q + "w3.weight"], t[q + "w2.weight"] = [f, d], [f, d], [d, f]
        else:
            e = c["num_experts"]
            f = c["intermediate_size" if arch == "olmoe" else "moe_intermediate_size"]
            t[p + "mlp.gate.weight"] = [e, d]
            for j in range(e):
                q = p + f"mlp.experts.{j}."
                t[q + "gate_proj.weight"], t[q + "up_proj.weight"] = [f, d], [f, d]
                t[q + "down_proj.weight"] = [d, f]
            if arch == "qwen2_moe":
                s = c["shared_expert_intermediate_size"]
                q = p + "mlp.shared_expert."
                t[q + "gate_proj.weight"], t[q + "up_proj.weight"] = [s, d], [s, d]
                t[q + "down_proj.weight"] = [d, s]
                t[p + "mlp.shared_expert_gate.weight"] = [1, d]
    return t


def e4m3(byte):
    """The value of an FP8 E4M3 byte (none of the two NaNs)."""
    sign = -1.0 if byte & 0x80 else 1.0
    exp, mant = (byte >> 3) & 0xF, byte & 7
    if exp == 0:
        return sign * mant * 2.0 ** -9
    return sign * (1 + mant / 8) * 2.0 ** (exp - 7)


E4M3 = sorted((e4m3(b), b) for b in range(256) if b & 0x7F != 0x7F)


def to_e4m3(x):
    """The E4M3 byte nearest x (saturating at +-448)."""
    lo, hi = 0, len(E4M3) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if E4M3[mid][0] <= x:
            lo = mid
        else:
            hi = mid
    return min((E4M3[lo], E4M3[hi]), key=lambda vb: abs(vb[0] - x))[1]


def quantized(name, shape):
    """Whether FP8 checkpoints store this weight quantized: the
    projections (attention, MLP, experts), not the router, embeddings,
    head or norms."""
    return len(shape) == 2 and name.endswith(
        ("proj.weight", "_mqa.weight", ".w1.weight", ".w2.weight", ".w3.weight"))


def fp8_tensors(name, shape, rnd, block, round_to):
    """(fp8 tensor, scale tensor, the dequantized values in the twin)."""
    rows, cols = shape
    bo, bi = block
    srows, scols = -(-rows // bo), -(-cols // bi)
    scales = [f32(0.2 / 64 * rnd.uniform(0.5, 2.0)) for _ in range(srows * scols)]
    raw = bytes(to_e4m3(rnd.gauss(0, 64)) for _ in range(rows * cols))
    twin = [round_to(f32(e4m3(raw[r * cols + c]) * scales[(r // bo) * scols + c // bi]))
            for r in range(rows) for c in range(cols)]
    return (("F8_E4M3", shape, raw), ("F32", [srows, scols], scales), twin)


def main():
    args = sys.argv[1:]
    fp8 = None
    if "--fp8" in args:
        i = args.index("--fp8")
        fp8 = ([int(v) for v in args[i + 1].split(",")], args[i + 2])
        del args[i:i + 3]
    name, dtype, out = args[:3]
    c = dict(CONFIGS[name])
    c["torch_dtype"] = {"f32": "float32", "bf16": "bfloat16"}[dtype]
    arch = MODEL_TYPE[name]
    t = tensor_shapes(c, arch)
    st = "F32" if dtype == "f32" else "BF16"
    rnd = random.Random(1)
    tensors, twin = {}, {}
    round_to = f32 if st == "F32" else bf16
    for name, shape in sorted(t.items()):
        if fp8 and quantized(name, shape):
            q, scale, values = fp8_tensors(name, shape, rnd, fp8[0], round_to)
            tensors[name], tensors[name + "_scale_inv"] = q, scale
            twin[name] = (st, shape, values)
            continue
        n = 1
        for s in shape:
            n *= s
        tensors[name] = (st, shape, [round_to(rnd.gauss(0, 0.2)) for _ in range(n)])
        twin[name] = tensors[name]
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "model.safetensors"), tensors)
    if fp8:
        os.makedirs(fp8[1], exist_ok=True)
        write(os.path.join(fp8[1], "model.safetensors"), twin)
    c["architectures"] = [{"mixtral": "MixtralForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM",
                           "qwen3_moe": "Qwen3MoeForCausalLM",
                           "olmoe": "OlmoeForCausalLM",
                           "deepseek_v2": "DeepseekV2ForCausalLM",
                           "deepseek_v3": "DeepseekV3ForCausalLM"}[arch]]
    c["model_type"] = arch
    if fp8:
        with open(os.path.join(fp8[1], "config.json"), "w") as f:
            json.dump(c, f, indent=1)
        c["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3",
                                    "quant_method": "fp8", "weight_block_size": fp8[0]}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f, indent=1)


if __name__ == "__main__":
    main()
