#!/bin/sh
# Builds, on the build machine, the layers that run-e2e-on-device.sh checks
# on the GPU machine: moe-testgen layers (bf16) compiled with
# `moe-compile --target=cuda` into DIR/<case>/ (default build/gpu-e2e; carry it
# and build/bin/moe-testgen to the device).
set -e
dir=${1:-build/gpu-e2e}
rm -rf "$dir"
make_case() {
  name=$1; shift
  mkdir -p "$dir/$name"
  build/bin/moe-testgen gen --out "$dir/$name" --dtype bf16 "$@" > /dev/null
  build/bin/moe-compile "$dir/$name/model.mlir" --target=cuda --cpu=x86-64-v3 \
    -o "$dir/$name/model"
}
make_case mixtral --top-k 2 --renormalize --tokens 16 --hidden 256 --ffn 512 --experts 8
make_case qwen --top-k 4 --experts 16 --tokens 8 --hidden 128 --ffn 64 --shared 128 --shared-gated --shared-coef
make_case gelu-plain --top-k 2 --plain --activation gelu --tokens 4 --hidden 64 --ffn 128
make_case olmoe-small --top-k 4 --renormalize --experts 16 --tokens 16 --hidden 512 --ffn 256
echo "made $(ls "$dir" | wc -l) cases in $dir"
