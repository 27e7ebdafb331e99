#!/bin/sh
# Compiles an example layer for the CPU, gives it random weights and inputs,
# and runs it: prints the latency and a checksum of the output.
#   examples/run-example.sh [examples/mixtral_layer.mlir] [build-dir]
set -e
model=${1:-examples/mixtral_layer.mlir}
build=${2:-build}
out=$build/examples/$(basename "$model" .mlir)
mkdir -p "$out"
"$build/bin/moe-compile" "$model" -o "$out/model"
python3 "$(dirname "$0")/random-inputs.py" "$out/model" --out "$out" --seed 0
"$out/model" --weights "$out/weights.safetensors" --input "$out/input.safetensors" \
  --output "$out/output.safetensors" --repeat 20
