#!/bin/sh
# Runs on the GPU machine (2 GPUs for the partitioned models): the whole-
# model checks and benchmark of issue 5, in one call.
#  1. hf_compare.py: every executable of build/hf-models (make-hf-models.sh)
#     against transformers, tokens and logits (HF_COMPARE_ARCHS limits it);
#  2. compute-sanitizer memcheck and racecheck on a whole model whose every
#     part runs on the GPU (mixtral_e8, checkpoint from step 1);
#  3. bench_whole_model.py on build/bench-whole (make-whole-model.py), its
#     table into $OUT/whole-model.md.
# Usage: sh test/gpu/run-whole-on-device.sh   (from the repository root)
out=${OUT:-/tmp}
rc=0
python3 test/gpu/hf_compare.py build/hf-models $HF_COMPARE_ARCHS > "$out/hf-compare.log" 2>&1 || rc=1
tail -n 45 "$out/hf-compare.log"
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x build/hf-models/mixtral_e8-cuda-bf16 ] && [ -d build/hf-models/ckpt-mixtral_e8-bf16 ]; then
  for tool in memcheck racecheck; do
    if "$san" --tool $tool --error-exitcode 9 build/hf-models/mixtral_e8-cuda-bf16 \
        --weights build/hf-models/ckpt-mixtral_e8-bf16 --prompt-ids 3,1,4,1,5 \
        --max-new-tokens 4 > "$out/sanitizer-$tool.log" 2>&1; then
      echo "compute-sanitizer $tool: clean"
    else
      echo "compute-sanitizer $tool: FAILED"; tail -n 20 "$out/sanitizer-$tool.log"; rc=1
    fi
  done
fi
if [ -d build/bench-whole ] && [ -z "$SKIP_BENCH" ]; then
  python3 test/bench/bench_whole_model.py build/bench-whole "$out/whole-model.md" \
    > "$out/bench-whole.log" 2>&1 || { rc=1; tail -n 30 "$out/bench-whole.log"; }
  cat "$out/whole-model.md" 2>/dev/null
fi
exit $rc
