#!/usr/bin/env python3
"""Rewrites a moe-testgen layer (DIR/weights.safetensors, stored as the moe
dialect uses it) into a Hugging Face checkpoint of one MoE layer: config.json,
the tensors under the architecture's names in the transformers layouts
(Linear weights [out, in], one tensor per expert), split over two shards
with a model.safetensors.index.json, so that `moe-compile CKPT` imports it
and `model --weights CKPT` loads it.

Usage: make-hf-checkpoint.py ARCH TESTGEN_DIR OUT_DIR   (ARCH: mixtral | qwen2_moe)
Only the standard library: safetensors is a JSON header and raw bytes."""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_util import bf16, f32, read, write  # noqa: E402

SIZES = {"F32": 4, "BF16": 2, "F16": 2}


def transposed(t):
    """[rows, cols] -> [cols, rows] on raw elements."""
    dtype, (rows, cols), raw = t
    e = SIZES[dtype]
    out = bytearray(len(raw))
    for r in range(rows):
        for c in range(cols):
            out[(c * rows + r) * e:(c * rows + r + 1) * e] = raw[(r * cols + c) * e:(r * cols + c + 1) * e]
    return (dtype, [cols, rows], bytes(out))


def expert(t, i):
    dtype, shape, raw = t
    n = len(raw) // shape[0]
    return (dtype, shape[1:], raw[i * n:(i + 1) * n])


def main():
    arch, src, dst = sys.argv[1:4]
    w = read(os.path.join(src, "weights.safetensors"))
    dtype, (hidden, experts) = w["router"][0], w["router"][1]
    ffn = w["w_up"][1][2]
    torch_dtype = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype]
    tensors = {}
    if arch == "mixtral":
        p = "model.layers.0.block_sparse_moe."
        tensors[p + "gate.weight"] = transposed(w["router"])
        for e in range(experts):
            tensors[p + f"experts.{e}.w1.weight"] = transposed(expert(w["w_gate"], e))
            tensors[p + f"experts.{e}.w3.weight"] = transposed(expert(w["w_up"], e))
            tensors[p + f"experts.{e}.w2.weight"] = transposed(expert(w["w_down"], e))
        config = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
                  "hidden_size": hidden, "intermediate_size": ffn, "num_hidden_layers": 1,
                  "num_local_experts": experts, "num_experts_per_tok": 2,
                  "hidden_act": "silu", "num_attention_heads": 4, "num_key_value_heads": 2,
                  "vocab_size": 1000, "torch_dtype": torch_dtype}
    elif arch == "qwen2_moe":
        p = "model.layers.0.mlp."
        tensors[p + "gate.weight"] = transposed(w["router"])
        for e in range(experts):
            tensors[p + f"experts.{e}.gate_proj.weight"] = transposed(expert(w["w_gate"], e))
            tensors[p + f"experts.{e}.up_proj.weight"] = transposed(expert(w["w_up"], e))
            tensors[p + f"experts.{e}.down_proj.weight"] = transposed(expert(w["w_down"], e))
        tensors[p + "shared_expert.gate_proj.weight"] = transposed(w["shared_gate"])
        tensors[p + "shared_expert.up_proj.weight"] = transposed(w["shared_up"])
        tensors[p + "shared_expert.down_proj.weight"] = transposed(w["shared_down"])
        tensors[p + "shared_expert_gate.weight"] = transposed(w["shared_coef"])
        config = {"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe",
                  "hidden_size": hidden, "intermediate_size": 4 * hidden,
                  "moe_intermediate_size": ffn,
                  "shared_expert_intermediate_size": w["shared_up"][1][1],
                  "num_hidden_layers": 1, "num_experts": experts, "num_experts_per_tok": 4,
                  "norm_topk_prob": False, "decoder_sparse_step": 1, "mlp_only_layers": [],
                  "num_attention_heads": 4, "hidden_act": "silu", "vocab_size": 1000,
                  "torch_dtype": torch_dtype}
    else:
        sys.exit(f"make-hf-checkpoint.py: unknown architecture '{arch}'")
    os.makedirs(dst, exist_ok=True)
    names = sorted(tensors)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half],
              "model-00002-of-00002.safetensors": names[half:]}
    weight_map = {}
    for shard, members in shards.items():
        write(os.path.join(dst, shard), {n: tensors[n] for n in members})
        weight_map.update({n: shard for n in members})
    with open(os.path.join(dst, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=1)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=1)


main()
