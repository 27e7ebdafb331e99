#!/bin/sh
# Runs on the GPU machine (2 GPUs for the partitioned models): the whole-
# model checks and benchmark of issue 5, in one call.
#  1. hf_compare.py: every executable of build/hf-models (make-hf-models.sh)
#     against transformers, tokens and logits (HF_COMPARE_ARCHS limits it);
#  2. compute-sanitizer memcheck and racecheck on a whole model whose every
#     part runs on the GPU (mixtral_e8, checkpoint from step 1), and on one
#     whose experts run on warpgroup MMAs (mixtral_wg, 128-row steps), and
#     on the encoder-decoder (switch_transformers: host and GPU parts);
#  3. bench_whole_model.py on build/bench-whole (make-whole-model.py), its
#     table into $OUT/whole-model.md, and the time of each kernel of the
#     2048-token prefill step (Nsight Compute, profile_kernels.py);
#  1b. dsgpt_compare.py: the DeepSpeed-MoE GPT models of the same directory
#     against their plain-Python reference;
#  0. first, attention_cases.py: the GPU attention kernels against PyTorch
#     (build/gpu-attention, made by `attention_cases.py make`), with
#     compute-sanitizer on three decoding cases; attention_decode_bench.py
#     (build/attention-bench, its `make`; not with SKIP_BENCH) into
#     $OUT/attention-decode.md; and
#     dense_cases.py: the dense MLP, LayerNorm and learned-position kernels
#     (build/gpu-dense, `dense_cases.py make`), with compute-sanitizer
#     memcheck and racecheck on three of them.
# Usage: sh test/gpu/run-whole-on-device.sh   (from the repository root)
# HF_MODELS: the directory of step 1 (default build/hf-models).
# A model compiled for the GPU runs its CPU code where the GPU cannot be
# used; here that must fail instead of passing on the CPU.
export MOERT_DEVICE=gpu
out=${OUT:-/tmp}
rc=0
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
# sanitize_cases DIR CASE...: memcheck and racecheck on each case's
# executable, with the weights and inputs its check left beside it.
sanitize_cases() {
  dir=$1; shift
  for c in "$@"; do
    d=$dir/$c
    [ -x "$d/model" ] && [ -z "$SKIP_SANITIZER" ] || continue
    for tool in memcheck racecheck; do
      if "$san" --tool $tool --error-exitcode 9 "$d/model" --weights "$d/weights.safetensors" \
          --input "$d/input.safetensors" --output "$d/san.safetensors" > "$out/sanitizer-$tool-$c.log" 2>&1; then
        echo "compute-sanitizer $tool $c: clean"
      else
        echo "compute-sanitizer $tool $c: FAILED"; tail -n 20 "$out/sanitizer-$tool-$c.log"; rc=1
      fi
    done
  done
}
if [ -d build/gpu-attention ]; then
  python3 test/gpu/attention_cases.py check build/gpu-attention > "$out/attention.log" 2>&1 || rc=1
  tail -n 24 "$out/attention.log"
  # The CUDA-core decoding kernel in clusters of 8 and 2 blocks
  # (distributed shared memory) and unsplit; several heads a block in
  # clusters, and with row groups straddling warps; splits with partial
  # sums and the merge (64 blocks an item, most without keys; 1024
  # blocks); the tensor-core one with blocks without keys, and unsplit.
  sanitize_cases build/gpu-attention decode-one decode-rows-8-batched \
    decode-batched-40 decode-heads-4-c8 decode-heads-8-hd6 decode-partials-sparse \
    decode-partials-1024 mma-pos-0 mma-nosplit-70
fi
if [ -d build/attention-bench ] && [ -z "$SKIP_BENCH" ]; then
  python3 test/bench/attention_decode_bench.py run build/attention-bench \
    --out "$out/attention-decode.md" > "$out/attention-bench.log" 2>&1 || rc=1
  tail -n 12 "$out/attention-bench.log"
fi
if [ -d build/gpu-dense ]; then
  python3 test/gpu/dense_cases.py check build/gpu-dense > "$out/dense.log" 2>&1 || rc=1
  tail -n 16 "$out/dense.log"
  sanitize_cases build/gpu-dense mlp-swiglu-prefill layernorm-bias-300 position-embedding-batched
fi
models=${HF_MODELS:-build/hf-models}
python3 test/gpu/hf_compare.py "$models" $HF_COMPARE_ARCHS > "$out/hf-compare.log" 2>&1 || rc=1
tail -n 12 "$out/hf-compare.log"
if ls -d "$models"/dsgpt-* > /dev/null 2>&1; then
  python3 test/gpu/dsgpt_compare.py "$models" > "$out/dsgpt-compare.log" 2>&1 || rc=1
  tail -n 6 "$out/dsgpt-compare.log"
fi
# The decode-sized model (GEMV experts, every part on the GPU) and the one
# whose experts run on warpgroup MMAs (wgmma, 128-row steps).
for exe in mixtral_e8-cuda-bf16:mixtral_e8 mixtral_wg-cuda-t128wg-bf16:mixtral_wg \
    switch_transformers-cuda-bf16:switch_transformers; do
  bin=$models/${exe%%:*} ckpt=$models/ckpt-${exe#*:}-bf16
  [ -x "$bin" ] && [ -d "$ckpt" ] && [ -z "$SKIP_SANITIZER" ] || continue
  for tool in memcheck racecheck; do
    log="$out/sanitizer-$tool-${exe%%:*}.log"
    if "$san" --tool $tool --error-exitcode 9 "$bin" --weights "$ckpt" \
        --prompt-ids 3,1,4,1,5 --max-new-tokens 4 > "$log" 2>&1; then
      echo "compute-sanitizer $tool ${exe%%:*}: clean"
    else
      echo "compute-sanitizer $tool ${exe%%:*}: FAILED"; tail -n 20 "$log"; rc=1
    fi
  done
done
if [ -d build/bench-whole ] && [ -z "$SKIP_BENCH" ]; then
  python3 test/bench/bench_whole_model.py build/bench-whole "$out/whole-model.md" \
    > "$out/bench-whole.log" 2>&1 || { rc=1; tail -n 30 "$out/bench-whole.log"; }
  ids=$(python3 -c "print(','.join(str((i * 7919) % 32000) for i in range(2048)))")
  timeout 200 python3 test/bench/profile_kernels.py "$out/prefill-ncu.csv" -- \
    build/bench-whole/mixtral-prefill --weights build/bench-whole/ckpt \
    --prompt-ids "$ids" --max-new-tokens 1 > "$out/prefill-kernels.md" 2>&1
  tail -n 14 "$out/prefill-kernels.md"
  cat "$out/whole-model.md" 2>/dev/null
fi
exit $rc
