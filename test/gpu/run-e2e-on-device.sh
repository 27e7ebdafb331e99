#!/bin/sh
# Runs the moe layers compiled with --target=cuda (expert FFNs on the GPU)
# from DIR/*/ (each made by moe-testgen gen + moe-compile --target=cuda) and
# compares them with the C++ reference:  sh test/gpu/run-e2e-on-device.sh DIR
dir=${1:-build/gpu-e2e}
fails=0
for case in "$dir"/*/; do
  name=$(basename "$case")
  echo "== $name"
  if "$case/model" --weights "$case/weights.safetensors" --input "$case/input.safetensors" \
       --output "$case/y.safetensors" --repeat 20 &&
     build/bin/moe-testgen compare --expected "$case/expected.safetensors" \
       --actual "$case/y.safetensors" --dtype bf16; then
    echo "$name | PASS"
  else
    echo "$name | FAIL"; fails=$((fails+1))
  fi
done
echo "$fails failed"
[ $fails -eq 0 ]
