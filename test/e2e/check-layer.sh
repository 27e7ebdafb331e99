#!/bin/sh
# Usage: check-layer.sh DIR DTYPE [moe-testgen layer options...]
# Generates a random layer test into DIR, compiles it with moe-compile, runs
# the executable and compares its output with the C++ reference.
set -e
dir=$1; dtype=$2; shift 2
rm -rf "$dir"; mkdir -p "$dir"
moe-testgen gen --out "$dir" --dtype "$dtype" "$@"
moe-compile "$dir/model.mlir" -o "$dir/model"
"$dir/model" --weights "$dir/weights.safetensors" --input "$dir/input.safetensors" \
  --output "$dir/y.safetensors" --repeat 2
moe-testgen compare --expected "$dir/expected.safetensors" --actual "$dir/y.safetensors" --dtype "$dtype"
