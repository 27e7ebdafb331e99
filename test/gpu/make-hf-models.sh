#!/bin/sh
# Builds, on the build machine, the executables that test/gpu/hf_compare.py
# compares with transformers on the GPU machine: the tiny Mixtral of
# test/e2e/tiny-mixtral.py compiled whole (--import-hf-whole) for the CPU in
# f32 and bf16 and for the GPU (--target=cuda) in bf16, into DIR (default
# build/hf-models; carry it). Only the config matters here: the GPU machine
# makes the weights with transformers.
set -e
dir=${1:-build/hf-models}
rm -rf "$dir"
mkdir -p "$dir"
for t in f32 bf16; do
  python3 test/e2e/tiny-mixtral.py "$dir/shape-$t" $t 1 1 > /dev/null
  build/bin/moe-compile "$dir/shape-$t" --import-hf-whole --import-hf-max-seq 64 \
    --cpu=x86-64-v3 -o "$dir/model-cpu-$t"
  rm -rf "$dir/shape-$t"
done
python3 test/e2e/tiny-mixtral.py "$dir/shape" bf16 1 1 > /dev/null
build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 64 \
  --target=cuda --cpu=x86-64-v3 -o "$dir/model-cuda-bf16"
rm -rf "$dir/shape"
ls "$dir"
