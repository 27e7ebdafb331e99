#!/bin/bash
# The benchmark table of a build, on the GPU machine, in one call:
#   bash test/bench/run-table-on-device.sh [--need GPU_NAME] [--ab DIRS]
# from the repository root, with build/bench-layers made here by
# make-compiled-layers.py (and, for --ab, the variant directories,
# comma-separated, made with --tokens 16,128,1024 --shapes
# deepseek-v3,ds-moe-128). Writes into $OUT (or results/ beside this
# script where OUT is unset): the full benchmark twice (.md, .json, .svg),
# targets.py over both runs, the TMA stream test of the wgmma kernels'
# weight pattern, and the A/B of the variants at the memory-bound points.
# --need H200 exits with status 3 at once where the GPU's name lacks it,
# so that no device time goes into a table of the wrong GPU.
set -uo pipefail
need=""
ab=""
while [ $# -gt 0 ]; do
  case "$1" in
    --need) need="$2"; shift 2 ;;
    --ab) ab="$2"; shift 2 ;;
    *) echo "run-table-on-device.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
echo "GPU: $gpu"
if [ -n "$need" ] && ! echo "$gpu" | grep -q "$need"; then
  echo "run-table-on-device.sh: this GPU is not an $need; nothing run" >&2
  exit 3
fi
root=$(pwd)
out=${OUT:-$root/test/bench/results}
tag=$(echo "$gpu" | grep -o 'H[0-9]*' | head -1 | tr 'H' 'h')
day=$(date +%F)
export PYTHONUNBUFFERED=1 MOERT_DEVICE=gpu
cd test/bench || exit 1
fails=0
summary=""
step() {  # step NAME COMMAND...: runs it, notes its status
  local name=$1; shift
  echo "== $name"
  if "$@"; then summary="$summary
$name | ok"; else summary="$summary
$name | FAILED ($?)"; fails=$((fails+1)); fi
}
for r in 1 2; do
  step "benchmark run $r" python3 gpu_moe_baselines.py \
    --compiled "$root/build/bench-layers" \
    --out "$out/gpu-layers-$tag-run$r-$day.md"
done
# targets.py's table and the stream test share one file: $OUT returns 8.
extra="$out/targets-tma-stream-$tag-$day.txt"
step "targets" sh -c "python3 targets.py '$out/gpu-layers-$tag-run1-$day.json' \
  '$out/gpu-layers-$tag-run2-$day.json' > '$extra' && cat '$extra'"
if nvcc -O3 -arch=sm_90a -o /tmp/tma_stream tma_stream.cu -lcuda; then
  step "tma_stream" sh -c "{ /tmp/tma_stream 7168 4096 100 && \
    /tmp/tma_stream 2048 7168 100; } > /tmp/tma.txt; rc=\$?; cat /tmp/tma.txt; \
    { echo; echo '## tma_stream.cu'; cat /tmp/tma.txt; } >> '$extra'; exit \$rc"
else
  summary="$summary
tma_stream | FAILED (nvcc)"; fails=$((fails+1))
fi
if [ -n "$ab" ]; then
  dirs=""
  for d in $(echo "$ab" | tr ',' ' '); do dirs="$dirs,$root/$d"; done
  step "ab memory-bound" python3 ab_layers.py "${dirs#,}" --tokens 16,128,1024 \
    --shapes deepseek-v3,ds-moe-128 --rounds 5 \
    --out "$out/ab-memory-bound-$tag-$day.md"
fi
echo
echo "step | result$summary"
echo "$fails failed"
[ $fails -eq 0 ]
