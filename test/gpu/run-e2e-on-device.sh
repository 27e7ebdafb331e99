#!/bin/sh
# Runs the moe layers compiled with --target=cuda from DIR/*/ (each made by
# moe-testgen gen + moe-compile --target=cuda, see make-e2e-cases.sh) and
# compares them with the C++ reference; the runtime's GPU GoogleTest cases;
# then compute-sanitizer memcheck and racecheck on the fused layers' kernels
# (where the tool exists; SANITIZE_CASES="a b ..." picks the cases):
#   sh test/gpu/run-e2e-on-device.sh DIR
# Prints a table last; exit status non-zero if anything failed.
# A model compiled for the GPU runs its CPU code where the GPU cannot be
# used; here that must fail instead of passing on the CPU.
export MOERT_DEVICE=gpu
dir=${1:-build/gpu-e2e}
# (Carried packed: make-e2e-cases.sh writes DIR.tar.xz beside DIR.)
if [ ! -d "$dir" ] && [ -f "$dir.tar.xz" ]; then
  python3 -c "import sys, tarfile, os
with tarfile.open(sys.argv[1] + '.tar.xz') as t:
    t.extractall(os.path.dirname(sys.argv[1]) or '.', **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))" "$dir" || exit 1
fi
fails=0
results=""
row() { results="$results
$1 | $2"; }
for case in "$dir"/*/; do
  name=$(basename "$case")
  echo "== $name"
  # shellcheck disable=SC2046
  build/bin/moe-testgen gen --out "$case" $(cat "$case/gen-args") > /dev/null || { row "$name" FAIL; fails=$((fails+1)); continue; }
  # (A hung kernel fails its case after two minutes instead of the run.)
  if timeout 120 "$case/model" --weights "$case/weights.safetensors" --input "$case/input.safetensors" \
       --output "$case/y.safetensors" --repeat 20 &&
     build/bin/moe-testgen compare --expected "$case/expected.safetensors" \
       --actual "$case/y.safetensors" --dtype bf16; then
    row "$name" PASS
  else
    row "$name" FAIL; fails=$((fails+1))
  fi
done
# The runtime's GoogleTest cases that need a GPU (they skip without one),
# where build/bin/moert-unit-tests was carried.
if [ -x build/bin/moert-unit-tests ]; then
  echo "== moert-unit-tests CudaTest.*"
  if build/bin/moert-unit-tests --gtest_filter='CudaTest.*' 2>&1 | tee /tmp/moert-cuda-tests.log &&
     ! grep -q 'SKIPPED \]' /tmp/moert-cuda-tests.log; then
    row "gtest CudaTest.*" PASS
  else
    row "gtest CudaTest.*" FAIL; fails=$((fails+1))
  fi
fi
if command -v compute-sanitizer >/dev/null 2>&1; then
  for tool in memcheck racecheck; do
    for name in ${SANITIZE_CASES:-router-in-select-e8-tail router-in-select-e24-sigmoid router-in-select-e224-tail router-split-3-wgmma decode-kernel decode-fill decode-fill-ring decode-ragged decode-sigmoid-bias decode-stages decode-stages-ragged router-split-wgmma router-split-mma fused-one-token fused-e256-top8 fused-many-tokens fused-sigmoid-bias fused-gate-64-tokens ffn-one-token ffn-wide-slices overlap-plain-rows stage-ragged-columns mma-mixtral mma-gelu-plain mma-e256-top8 mma-router-bias mma-big-tiles mma-warps4 mma-warps4-plain combine-rows-wgmma combine-rows-mma combine-rows-top1 wgmma-group-3 wgmma-group-5-rows wgmma-persistent wgmma-persistent-rows wgmma-producer wgmma-producer-rows wgmma-producer-many-tiles wgmma-producer-two-steps wgmma-tma wgmma-tma-rows wgmma-tma-many-tiles wgmma-tma-two-steps wgmma-mc wgmma-mc-rows wgmma-mc-many-tiles wgmma-mc-two-steps wgmma-mc-ragged wgmma-queue wgmma-queue-tma wgmma-queue-two-steps wgmma-queue-fused-gate wgmma-atomic-ragged combine-rows-fused-gate gate-nothing-to-clear wgmma-m192-atomic-ragged wgmma-m192-plain-rows wgmma-m192-band wgmma-m192s128-atomic-ragged wgmma-m192s128-plain-rows}; do
      case="$dir/$name"
      [ -d "$case" ] || continue
      echo "== compute-sanitizer $tool: $name"
      if timeout 240 compute-sanitizer --tool $tool --error-exitcode 3 "$case/model" \
           --weights "$case/weights.safetensors" --input "$case/input.safetensors" \
           --output "$case/y-san.safetensors" --repeat 1 --warmup 0; then
        row "sanitizer-$tool $name" PASS
      else
        row "sanitizer-$tool $name" FAIL; fails=$((fails+1))
      fi
    done
  done
fi
echo
echo "case | result$results"
echo "$fails failed"
[ $fails -eq 0 ]
