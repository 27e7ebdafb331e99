#!/usr/bin/env python3
"""Builds, on the build machine, the executables of the whole-model
benchmark (test/bench/bench_whole_model.py runs them on the GPU machine):
a Mixtral-8x7B-shaped model with fewer layers (hidden 4096, 32 query and 8
key/value heads of 128, 8 experts of 14336, top 2, vocabulary 32000),
compiled whole for the GPU twice: one token per step (decode) and 2048
tokens per step (prefill). Only the config and the tensor shapes matter
here: the checkpoint written for the compiler holds safetensors headers
over sparse data, and the GPU machine makes the weights with transformers.
Usage: make-whole-model.py OUT_DIR [LAYERS]"""
import json
import os
import subprocess
import sys


def write_sparse_checkpoint(ckpt, shapes, config, dtypes=None):
    """Writes `config` and a sparse model.safetensors of `shapes` (name ->
    shape; bf16 but where `dtypes` names another: F32, F8_E4M3) into
    `ckpt`: headers over no data, so that terabytes of weights take no
    disk."""
    os.makedirs(ckpt, exist_ok=True)
    header, at = {}, 0
    for name, shape in sorted(shapes.items()):
        dtype = (dtypes or {}).get(name, "BF16")
        n = {"F32": 4, "BF16": 2, "F8_E4M3": 1}[dtype]
        for s in shape:
            n *= s
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [at, at + n]}
        at += n
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(os.path.join(ckpt, "model.safetensors"), "wb") as fh:
        fh.write(len(blob).to_bytes(8, "little") + blob)
        fh.truncate(8 + len(blob) + at)  # sparse: no data written
    with open(os.path.join(ckpt, "config.json"), "w") as fh:
        json.dump(config, fh, indent=1)


def write_shape_checkpoint(ckpt, layers):
    """Writes the model's config and a sparse safetensors file (headers
    over no data) of `layers` layers into `ckpt`; returns the config."""
    config = dict(architectures=["MixtralForCausalLM"], model_type="mixtral",
                  hidden_size=4096, intermediate_size=14336,
                  num_hidden_layers=layers, num_attention_heads=32,
                  num_key_value_heads=8, head_dim=128, num_local_experts=8,
                  num_experts_per_tok=2, vocab_size=32000,
                  max_position_embeddings=32768, rms_norm_eps=1e-5,
                  rope_theta=1e6, hidden_act="silu", sliding_window=None,
                  tie_word_embeddings=False, torch_dtype="bfloat16")
    d, f, e, v = 4096, 14336, 8, 32000
    hd, h, kv = 128, 32, 8
    shapes = {"model.embed_tokens.weight": [v, d], "model.norm.weight": [d],
              "lm_head.weight": [v, d]}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = [d]
        shapes[p + "post_attention_layernorm.weight"] = [d]
        shapes[p + "self_attn.q_proj.weight"] = [h * hd, d]
        shapes[p + "self_attn.k_proj.weight"] = [kv * hd, d]
        shapes[p + "self_attn.v_proj.weight"] = [kv * hd, d]
        shapes[p + "self_attn.o_proj.weight"] = [d, h * hd]
        shapes[p + "block_sparse_moe.gate.weight"] = [e, d]
        for j in range(e):
            q = p + f"block_sparse_moe.experts.{j}."
            shapes[q + "w1.weight"], shapes[q + "w3.weight"] = [f, d], [f, d]
            shapes[q + "w2.weight"] = [d, f]
    write_sparse_checkpoint(ckpt, shapes, config)
    return config


def main():
    out = sys.argv[1]
    layers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    ckpt = os.path.join(out, "shape")
    config = write_shape_checkpoint(ckpt, layers)
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(config, fh, indent=1)
    # decode16: 16 sequences per step.
    for name, tokens, seq, batch in [("decode", 1, 4096, 1), ("prefill", 2048, 2304, 1),
                                     ("decode16", 1, 512, 16)]:
        cmd = ["build/bin/moe-compile", ckpt, "--import-hf-whole",
               "--import-hf-tokens", str(tokens), "--import-hf-max-seq", str(seq),
               "--import-hf-batch", str(batch),
               "--target=cuda", "--cpu=x86-64-v3", "-o", os.path.join(out, f"mixtral-{name}")]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    for fn in os.listdir(ckpt):
        os.remove(os.path.join(ckpt, fn))
    os.rmdir(ckpt)


if __name__ == "__main__":
    main()
