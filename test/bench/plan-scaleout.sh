#!/bin/sh
# The scale-out table of issue 8 on paper: moe-plan-parallelism's cost model
# for a DeepSeek-V3-shaped layer (256 experts, top-8, hidden 7168, expert ffn
# 2048; routed experts only) and a ds-moe-128 layer (128 experts, top-1,
# hidden 2048, ffn 8192) at 1, 128 and 8192 tokens per GPU, expert-parallel
# over 1, 2, 4 and 8 GPUs of one host (H200 defaults), beside the plan the
# planner picks by itself. Also checks that moe-compile partitions each
# expert-parallel plan (the per-rank program's expert slice and exchange).
# Usage: plan-scaleout.sh [BUILD_DIR]   (prints a markdown table)
set -e
build=${1:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
layer() { # NAME EXPERTS TOPK HIDDEN FFN
  cat > "$tmp/$1.mlir" <<MLIR
func.func @$1(%x: tensor<?x$4xbf16> {moe.input = "x"}, %r: tensor<$4x$2xbf16> {moe.weight = "router"},
    %u: tensor<$2x$4x$5xbf16> {moe.weight = "w_up"}, %g: tensor<$2x$4x$5xbf16> {moe.weight = "w_gate"},
    %d: tensor<$2x$5x$4xbf16> {moe.weight = "w_down"}) -> (tensor<?x$4xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<?x$4xbf16> router(%r : tensor<$4x$2xbf16>) up(%u : tensor<$2x$4x$5xbf16>) gate(%g : tensor<$2x$4x$5xbf16>) down(%d : tensor<$2x$5x$4xbf16>) {activation = #moe.activation<silu>, top_k = $3 : i64} -> tensor<?x$4xbf16>
  return %y : tensor<?x$4xbf16>
}
MLIR
}
layer deepseek_v3 256 8 7168 2048
layer ds_moe_128 128 1 2048 8192
echo "| layer | tokens/GPU | GPUs | plan | weights/GPU | step (model) | tokens/s | per-GPU tokens/s | scaling eff. | planner's own plan |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for name in deepseek_v3 ds_moe_128; do
  for tokens in 1 128 8192; do
    base=""
    for gpus in 1 2 4 8; do
      report=$("$build/bin/moe-opt" "$tmp/$name.mlir" -o /dev/null 2>/dev/null \
        --moe-plan-parallelism="gpus=$gpus ep=$gpus objective=throughput tokens=$tokens report")
      plan=$(echo "$report" | sed -n 's/^plan: \(dp=[0-9]* ep=[0-9]* es=[0-9]* tp=[0-9]*\).*/\1/p')
      weights=$(echo "$report" | awk '$1 == "model" {print $2, $3}')
      step=$(echo "$report" | awk '$1 == "model" {print $(NF-1), $NF}')
      tps=$(echo "$report" | sed -n 's/.*throughput: \([0-9]*\) tokens\/s.*/\1/p')
      per=$((tps / gpus))
      [ -n "$base" ] || base=$per
      eff=$(awk -v p="$per" -v b="$base" 'BEGIN{printf "%.2f", p / b}')
      own=$("$build/bin/moe-opt" "$tmp/$name.mlir" -o /dev/null 2>/dev/null \
        --moe-plan-parallelism="gpus=$gpus objective=throughput tokens=$tokens report" |
        sed -n 's/^plan: \(dp=[0-9]* ep=[0-9]* es=[0-9]* tp=[0-9]*\).*/\1/p')
      echo "| $name | $tokens | $gpus | $plan | $weights | $step | $tps | $per | $eff | $own |"
    done
  done
done
# The per-rank programs of the 8-GPU expert-parallel plans compile.
for name in deepseek_v3 ds_moe_128; do
  sed 's/?x/8x/g' "$tmp/$name.mlir" > "$tmp/$name-8.mlir"
  "$build/bin/moe-compile" "$tmp/$name-8.mlir" --ranks 8 --plan "ep=8" --emit=mlir -o "$tmp/$name-8.ll.mlir" 2>/dev/null
  sig=$(grep -o 'weight w_up BF16 [0-9x]* split=[^\\]*' "$tmp/$name-8.ll.mlir" | head -1)
  calls=$(grep -c "llvm.call @moert_comm_dispatch" "$tmp/$name-8.ll.mlir")
  echo
  echo "$name on 8 ranks (ep=8): per-rank '$sig', $calls dispatch exchange per step"
done
