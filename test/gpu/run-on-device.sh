#!/bin/sh
# Runs every GPU test of the repository in one go on a machine with a GPU
# (the device machine), from binaries built on the build machine:
#   sh test/gpu/run-on-device.sh [build-dir]
# Prints a short table last. Exit status: non-zero if any test failed.
# A model compiled for the GPU runs its CPU code where the GPU cannot be
# used; here that must fail instead of passing on the CPU.
export MOERT_DEVICE=gpu
build=${1:-build}
bin=$build/bin
fails=0
results=""
row() { results="$results
$1 | $2"; }
nvidia-smi -L || true
echo "== runtime unit tests (CUDA cases run, the others too)"
if "$bin/moert-unit-tests" --gtest_brief=1; then row moert-unit-tests PASS; else row moert-unit-tests FAIL; fails=$((fails+1)); fi
echo "== saxpy: MLIR-compiled sm_90 cubin through libmoert's mgpu* ABI"
if "$bin/gpu-saxpy-test"; then row gpu-saxpy PASS; else row gpu-saxpy FAIL; fails=$((fails+1)); fi
if "$bin/gpu-saxpy-test" 1000 1000; then row gpu-saxpy-odd-size PASS; else row gpu-saxpy-odd-size FAIL; fails=$((fails+1)); fi
echo "== memory-bound expert GEMV (MLIR kernel, 16-byte loads, split-d)"
if "$bin/gpu-expert-gemv-test"; then row gpu-expert-gemv PASS; else row gpu-expert-gemv FAIL; fails=$((fails+1)); fi
echo "== grouped expert kernel: a layer's up projection, standard shapes"
if "$bin/gpu-grouped-gemv-test"; then row gpu-grouped-gemv PASS; else row gpu-grouped-gemv FAIL; fails=$((fails+1)); fi
echo "== a whole SwiGLU expert FFN with the compiler's kernels"
if "$bin/gpu-expert-ffn-test"; then row gpu-expert-ffn PASS; else row gpu-expert-ffn FAIL; fails=$((fails+1)); fi
echo "== a rejected launch is reported"
out=$("$bin/gpu-saxpy-test" 4096 2048 2>&1); rc=$?
echo "$out"
if [ $rc -ne 0 ] && echo "$out" | grep -Eq "cuLaunchKernel(Ex)? failed: CUDA_ERROR_INVALID_VALUE"; then row launch-error-reported PASS; else row launch-error-reported FAIL; fails=$((fails+1)); fi
if command -v compute-sanitizer >/dev/null 2>&1; then
  for tool in memcheck racecheck; do
    for t in "gpu-saxpy-test 100000" "gpu-expert-gemv-test --quick" "gpu-grouped-gemv-test --quick" "gpu-expert-ffn-test"; do
      echo "== compute-sanitizer $tool: $t"
      # shellcheck disable=SC2086
      if compute-sanitizer --tool $tool --error-exitcode 3 $bin/$t; then row "sanitizer-$tool ${t%% *}" PASS; else row "sanitizer-$tool ${t%% *}" FAIL; fails=$((fails+1)); fi
    done
  done
fi
echo
echo "test | result$results"
echo "$fails failed"
[ $fails -eq 0 ]
