#!/bin/sh
# Usage: check-layer-ranks.sh DIR DTYPE RANKS "PLAN OPTIONS" [moe-testgen layer options...]
# Generates a random layer, compiles it for one rank and, planned with
# `--ranks RANKS --plan "PLAN OPTIONS"`, for RANKS ranks; runs the second
# under mpirun and compares its output with the C++ reference and with the
# single-rank executable's output. Prints the plan and the collectives of
# the per-rank program for FileCheck.
set -e
dir=$1; dtype=$2; ranks=$3; plan=$4; shift 4
rm -rf "$dir"; mkdir -p "$dir"
moe-testgen gen --out "$dir" --dtype "$dtype" "$@"
moe-compile "$dir/model.mlir" -o "$dir/single"
moe-compile "$dir/model.mlir" --ranks "$ranks" --plan "$plan" --emit=mlir \
  -o "$dir/ranked.ll.mlir" 2>"$dir/plan.log"
sed -n 's/.*remark: moe-plan-parallelism: \(ep=[0-9]* es=[0-9]* tp=[0-9]* dp=[0-9]*\).*/plan: \1/p' "$dir/plan.log"
for call in moert_comm_dispatch moert_comm_combine moert_comm_all_reduce moert_comm_all_gather; do
  echo "calls $call: $(grep -c "llvm.call @$call(" "$dir/ranked.ll.mlir" || true)"
done
moe-compile "$dir/model.mlir" --ranks "$ranks" --plan "$plan" -o "$dir/ranked" 2>/dev/null
args="--weights $dir/weights.safetensors --input $dir/input.safetensors"
"$dir/single" $args --output "$dir/single.safetensors" --repeat 1 >/dev/null
mpirun --allow-run-as-root --oversubscribe -np "$ranks" "$dir/ranked" $args \
  --output "$dir/ranked.safetensors" --repeat 2
echo "against the reference:"
moe-testgen compare --expected "$dir/expected.safetensors" --actual "$dir/ranked.safetensors" --dtype "$dtype"
echo "against one rank:"
moe-testgen compare --expected "$dir/single.safetensors" --actual "$dir/ranked.safetensors" --dtype "$dtype"
