#!/bin/sh
# Builds, on the build machine, the executables that test/gpu/hf_compare.py
# compares with transformers on the GPU machine: tiny Mixtral, Qwen2-MoE,
# Qwen3-MoE and OLMoE models (test/gpu/tiny_configs.py) compiled whole
# (--import-hf-whole) for the CPU in f32 and bf16 and for the GPU
# (--target=cuda) in bf16, into DIR (default build/hf-models; carry it).
# Only the configs and tensor shapes matter here: the GPU machine makes the
# weights with transformers.
# HF_ARCHS: the architectures to build (default all of tiny_configs.py's).
set -e
dir=${1:-build/hf-models}
rm -rf "$dir"
mkdir -p "$dir"
for arch in ${HF_ARCHS:-mixtral mixtral_e8 qwen2_moe qwen3_moe olmoe qwen2_moe_dense qwen3_moe_dense deepseek_v3 deepseek_v3_yarn qwen3_moe_yarn qwen3_moe_tied mixtral_wg switch_transformers deepseek_v2 deepseek_v3_e8 deepseek_v2_e8 deepseek_v3_yarn_e8}; do
  for t in f32 bf16; do
    if [ $arch = switch_transformers ]; then
      # (An encoder-decoder: its checkpoint writer is the CPU test's.)
      python3 test/e2e/tiny-switch.py "$dir/shape" 3 1 $([ $t = bf16 ] && echo --bf16) > /dev/null
    else
      python3 test/gpu/make-tiny-checkpoint.py $arch $t "$dir/shape"
    fi
    build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 64 \
      --cpu=x86-64-v3 -o "$dir/$arch-cpu-$t"
    if [ $t = bf16 ]; then
      build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 64 \
        --target=cuda --cpu=x86-64-v3 -o "$dir/$arch-cuda-$t"
      # 128-token steps: the projections, the LM head and the experts on
      # tensor cores (the prompt is one padded step).
      if [ $arch = mixtral_e8 ]; then
        build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 160 \
          --import-hf-tokens 128 --target=cuda --cpu=x86-64-v3 -o "$dir/$arch-cuda-t128-$t"
        # Two sequences per step (hf_compare.py checks both against
        # transformers), with the batched attention kernels.
        build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 64 \
          --import-hf-batch 2 --target=cuda --cpu=x86-64-v3 \
          -o "$dir/$arch-cuda-b2-$t"
        build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 64 \
          --import-hf-batch 2 --cpu=x86-64-v3 -o "$dir/$arch-cpu-b2-$t"
      fi
      # Latent attention on the GPU with 4-token steps (the prompt in two),
      # and with two sequences a step.
      if [ $arch = deepseek_v3_e8 ]; then
        build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 64 \
          --import-hf-tokens 4 --target=cuda --cpu=x86-64-v3 -o "$dir/$arch-cuda-t4-$t"
        # Two sequences a step (hf_compare.py checks both).
        build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 64 \
          --import-hf-batch 2 --target=cuda --cpu=x86-64-v3 -o "$dir/$arch-cuda-b2-$t"
      fi
      # The experts on warpgroup MMAs (wgmma): forced at 128 rows a step,
      # the compiler's own choice at 512.
      if [ $arch = mixtral_wg ]; then
        build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 160 \
          --import-hf-tokens 128 --gpu-path=wgmma --target=cuda --cpu=x86-64-v3 \
          -o "$dir/$arch-cuda-t128wg-$t"
        build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 544 \
          --import-hf-tokens 512 --target=cuda --cpu=x86-64-v3 -o "$dir/$arch-cuda-t512-$t"
      fi
    fi
    # Partitioned over 2 GPUs (hf_compare.py runs them with --gpus 2) and
    # over 2 CPU processes (--ranks 2): expert parallel with the all-reduce
    # dispatch, and expert slicing; the shared experts of Qwen2-MoE and
    # DeepSeek-V3 are tensor-sliced over both GPUs.
    if [ $arch = mixtral ] || [ $arch = qwen2_moe ] || [ $arch = deepseek_v3 ]; then
      tp=""
      [ $arch != mixtral ] && tp="tp=2"
      if [ $t = bf16 ]; then
        for plan in "ep2:ep=2 $tp dispatch=all-reduce" "es2:es=2 $tp"; do
          build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 64 \
            --target=cuda --cpu=x86-64-v3 --ranks 2 --plan "${plan#*:} min-slice=8" \
            -o "$dir/$arch-cuda-${plan%%:*}-$t" 2>/dev/null
        done
      else
        build/bin/moe-compile "$dir/shape" --import-hf-whole --import-hf-max-seq 64 \
          --cpu=x86-64-v3 --ranks 2 --plan "ep=2 $tp dispatch=all-reduce min-slice=8" \
          -o "$dir/$arch-cpu-ep2-$t" 2>/dev/null
      fi
    fi
    rm -rf "$dir/shape"
  done
done
# DeepSpeed-MoE GPT (PR-MoE, MoS): no transformers class, so the checkpoint
# and its plain-Python reference (tokens and logits) are made here
# (test/e2e/tiny-dsgpt.py) and the GPU executable is compared with them on
# the GPU machine (dsgpt_compare.py). Skipped with HF_ARCHS set.
if [ -z "${HF_ARCHS:-}" ] || [ "${DSGPT:-}" = 1 ]; then
  for v in moe prmoe mos; do
    python3 test/e2e/tiny-dsgpt.py "$dir/dsgpt-$v" bf16 3,1,4,1,5,9,2,6 8 $v > /dev/null
    build/bin/moe-compile "$dir/dsgpt-$v" --import-hf-whole --import-hf-max-seq 32 \
      --target=cuda --cpu=x86-64-v3 -o "$dir/dsgpt-$v/model-cuda"
  done
fi
cp test/gpu/tiny_configs.py "$dir/"
ls "$dir"
