#!/bin/sh
# Builds, on the build machine, the executables that test/gpu/hf_compare.py
# compares with transformers on the GPU machine: tiny Mixtral, Qwen2-MoE,
# Qwen3-MoE and OLMoE models (test/gpu/tiny_configs.py) compiled whole
# (--import-hf-whole) for the CPU in f32 and bf16 and for the GPU
# (--target=cuda) in bf16, into DIR (default build/hf-models; carry it).
# Only the configs and tensor shapes matter here: the GPU machine makes the
# weights with transformers.
set -e
dir=${1:-build/hf-models}
rm -rf "$dir"
mkdir -p "$dir"
for arch in mixtral qwen2_moe qwen3_moe olmoe; do
  for t in f32 bf16; do
    python3 test/gpu/make-tiny-checkpoint.py $arch $t "$dir/shape"
    build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 64 \
      --cpu=x86-64-v3 -o "$dir/$arch-cpu-$t"
    if [ $t = bf16 ]; then
      build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 64 \
        --target=cuda --cpu=x86-64-v3 -o "$dir/$arch-cuda-$t"
    fi
    rm -rf "$dir/shape"
  done
done
cp test/gpu/tiny_configs.py "$dir/"
ls "$dir"
