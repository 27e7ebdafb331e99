#!/bin/sh
# A small generated MoE language model end to end: writes a tiny random
# Mixtral checkpoint in the Hugging Face format (2 layers, 4 experts, top-2),
# compiles the whole model (embedding, attention with a KV cache, norms, MoE
# layers, LM head) and generates 16 tokens from a prompt, printing the ids
# and the prefill / decode speed. On the GPU when one is present (and the
# CUDA toolkit is there to compile for it), on the CPU otherwise.
#   examples/run-model.sh [build-dir]
set -e
build=${1:-build}
out=$build/examples/tiny-mixtral
rm -rf "$out"
mkdir -p "$out"
python3 "$(dirname "$0")/../test/e2e/tiny-mixtral.py" "$out/ckpt" bf16 1,2,3 1 > /dev/null
target=cpu
if command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi > /dev/null 2>&1 &&
   [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/ptxas" ]; then
  target=cuda
fi
echo "compiling the whole model for the $target"
"$build/bin/moe-compile" "$out/ckpt" --import-hf-whole --import-hf-max-seq 64 \
  --target=$target -o "$out/model"
"$out/model" --weights "$out/ckpt" --prompt-ids 5,17,42,8 --max-new-tokens 16
