#!/bin/sh
# On the GPU machine: the FP8 checkpoints of build/fp8-gpu (made here by
#   for c in deepseek_v3_e8 qwen3_moe; do
#     python3 test/gpu/make-tiny-checkpoint.py $c bf16 build/fp8-gpu/$c \
#       --fp8 16,12 build/fp8-gpu/$c-twin
#     for d in $c $c-twin; do moe-compile build/fp8-gpu/$d --import-hf-whole \
#       --import-hf-max-seq 32 --target=cuda -o build/fp8-gpu/$d/model; done
#   done)
# run on the GPU (MOERT_DEVICE=gpu: no CPU fallback) against their twins
# dequantized in Python: the same tokens and byte-identical logits.
# Prints a table last; exits non-zero if any differ.
set -u
dir=${1:-build/fp8-gpu}
fails=0
table="| checkpoint | generated (FP8) | generated (twin) | logits |
|---|---|---|---|"
for c in deepseek_v3_e8 qwen3_moe; do
  out=$(mktemp -d)
  a=$(MOERT_DEVICE=gpu "$dir/$c/model" --weights "$dir/$c" --prompt-ids 5,6,7,8 \
        --max-new-tokens 12 --output "$out/a.safetensors" 2>&1 | grep generated:)
  b=$(MOERT_DEVICE=gpu "$dir/$c-twin/model" --weights "$dir/$c-twin" \
        --prompt-ids 5,6,7,8 --max-new-tokens 12 --output "$out/b.safetensors" \
        2>&1 | grep generated:)
  if [ -n "$a" ] && cmp -s "$out/a.safetensors" "$out/b.safetensors"; then
    same="identical"
  else
    same="DIFFER"; fails=$((fails + 1))
  fi
  table="$table
| $c | ${a#generated: } | ${b#generated: } | $same |"
  rm -rf "$out"
done
echo "$table"
echo "$fails failed"
[ $fails -eq 0 ]
