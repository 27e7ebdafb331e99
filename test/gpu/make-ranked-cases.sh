#!/bin/sh
# Builds, on the build machine, the partitioned layers that
# run-ranked-on-device.sh checks and times on the 2-GPU machine, into DIR
# (default build/gpu-ranked; carry it and build/bin/moe-testgen). Per case:
#   single  the layer compiled for one GPU (--target=cuda, unpartitioned)
#   ranked  the same layer planned over 2 ranks (--ranks 2 --plan PLAN),
#           run under mpirun with one GPU per rank
#   gen-args / ranks / plan  how the device regenerates the weights, inputs
#           and the C++ reference (moe-testgen is deterministic per seed)
set -e
dir=${1:-build/gpu-ranked}
rm -rf "$dir"
seed=${SEED:-$(date +%s)}
# make_case NAME "PLAN" moe-testgen options...
make_case() {
  name=$1; plan=$2; shift 2
  mkdir -p "$dir/$name"
  seed=$((seed + 1))
  echo "--dtype bf16 --seed $seed $*" > "$dir/$name/gen-args"
  echo "$plan" > "$dir/$name/plan"
  build/bin/moe-testgen gen --out "$dir/$name" --dtype bf16 --seed $seed "$@" --model-only > /dev/null
  build/bin/moe-compile "$dir/$name/model.mlir" --target=cuda --cpu=x86-64-v3 \
    -o "$dir/$name/single"
  build/bin/moe-compile "$dir/$name/model.mlir" --target=cuda --cpu=x86-64-v3 \
    --ranks 2 --plan "$plan" -o "$dir/$name/ranked" 2> "$dir/$name/plan.log"
  sed -n 's/.*remark: moe-plan-parallelism: \(ep=[0-9]* es=[0-9]* tp=[0-9]* dp=[0-9]*\).*/\1/p' \
    "$dir/$name/plan.log" > "$dir/$name/plan-chosen"
  rm -f "$dir/$name"/*.safetensors "$dir/$name/plan.log"
}
# Correctness: expert parallelism by all-to-all (8 and 16 experts, padding,
# DeepSeek-style routing) and by all-reduce (the fused layer on each rank's
# experts), expert slicing (fused; and with a tensor-sliced gated shared
# expert, decomposed).
make_case ep2-mixtral "ep=2 dispatch=all-to-all min-slice=8" --top-k 2 --renormalize --tokens 16 --hidden 128 --ffn 256 --experts 8
make_case ep2ar-mixtral "ep=2 dispatch=all-reduce min-slice=8" --top-k 2 --renormalize --tokens 16 --hidden 128 --ffn 256 --experts 8
make_case ep2ar-t300 "ep=2 dispatch=all-reduce min-slice=8" --top-k 2 --renormalize --tokens 300 --hidden 128 --ffn 256 --experts 8
make_case ep2-deepseek "ep=2 dispatch=all-to-all min-slice=8" --sigmoid --bias --groups 4 2 --group-top2-sum --top-k 4 --experts 16 --renormalize --scaling 2.5 --tokens 33 --hidden 128 --ffn 64
make_case es2-fused "es=2 min-slice=8" --top-k 2 --renormalize --tokens 40 --hidden 128 --ffn 256 --experts 8
make_case es2-qwen "es=2 tp=2 min-slice=8" --top-k 4 --experts 16 --tokens 8 --hidden 128 --ffn 64 --shared 128 --shared-gated --shared-coef
make_case ep2-top1 "ep=2 dispatch=all-to-all min-slice=8" --top-k 1 --plain --activation gelu --experts 32 --tokens 7 --hidden 64 --ffn 128
make_case ep2ar-top1 "ep=2 dispatch=all-reduce min-slice=8" --top-k 1 --plain --activation gelu --experts 32 --tokens 7 --hidden 64 --ffn 128
# Capacity drops (position) in the fused layer on each rank's experts: every
# rank ranks all the step's assignments, then keeps its own experts' (32
# tokens: the whole routing kernel; 300: the Capacity part).
make_case ep2ar-capacity "ep=2 dispatch=all-reduce min-slice=8" --top-k 2 --renormalize --tokens 32 --capacity 0.5 --hidden 128 --ffn 256 --experts 8
make_case ep2ar-capacity-t300 "ep=2 dispatch=all-reduce min-slice=8" --top-k 2 --tokens 300 --capacity 0.75 --hidden 128 --ffn 256 --experts 8
# Timing: a 16-expert layer of hidden 2048, expert ffn 1024 (200 MB of
# bf16 weights), top-2, at 1 and 256 tokens: expert parallel by all-to-all
# and by all-reduce, expert slicing.
for t in 1 256; do
  make_case bench-ep2-t$t "ep=2 dispatch=all-to-all" --top-k 2 --renormalize --tokens $t --hidden 2048 --ffn 1024 --experts 16
  make_case bench-ep2ar-t$t "ep=2 dispatch=all-reduce" --top-k 2 --renormalize --tokens $t --hidden 2048 --ffn 1024 --experts 16
  make_case bench-es2-t$t "es=2" --top-k 2 --renormalize --tokens $t --hidden 2048 --ffn 1024 --experts 16
done
# Scaling: a Mixtral-8x7B-shaped layer (8 experts, hidden 4096, ffn 14336,
# top-2: 2.8 GB of bf16 weights, 704 MB read per token) at 1 and 64
# tokens, on one GPU and split over two by expert slicing and by expert
# parallelism (all-reduce). Cases with `data-from` reuse that case's data.
for t in 1 64; do
  make_case mix-es2-t$t "es=2" --top-k 2 --renormalize --tokens $t --hidden 4096 --ffn 14336 --experts 8
  make_case mix-ep2ar-t$t "ep=2 dispatch=all-reduce" --top-k 2 --renormalize --tokens $t --hidden 4096 --ffn 14336 --experts 8
  echo mix-ep2ar-t$t > "$dir/mix-es2-t$t/data-from"
  cp "$dir/mix-ep2ar-t$t/gen-args" "$dir/mix-es2-t$t/gen-args"
done
# Issue 8's layers, expert parallel over 2 GPUs (SCALE=1 makes them): a
# DeepSeek-V3-shaped layer (256 experts, top-8, hidden 7168, ffn 2048:
# 22.5 GB of bf16 weights) and a ds-moe-128 layer (128 experts, top-1 GeLU,
# hidden 2048, ffn 8192: 4.3 GB) at 1, 128 and 8192 tokens. The weights are
# generated on the GPU machine without the C++ reference (too slow at this
# size), so the 2-GPU output is checked against the 1-GPU output only. Run
# them in their own calls (RANKED_CASES=dsv3 / dsmoe): each generates its
# weights.
if [ -n "$SCALE" ]; then
  for t in 1 128 8192; do
    make_case dsv3-ep2-t$t "ep=2" --top-k 8 --sigmoid --renormalize --scaling 2.5 --tokens $t --hidden 7168 --ffn 2048 --experts 256
    make_case dsmoe-ep2-t$t "ep=2" --top-k 1 --plain --activation gelu --tokens $t --hidden 2048 --ffn 8192 --experts 128
    for c in dsv3-ep2-t$t dsmoe-ep2-t$t; do
      printf '%s --no-reference\n' "$(cat "$dir/$c/gen-args")" > "$dir/$c/gen-args"
    done
  done
fi
echo "made $(ls "$dir" | wc -l) cases in $dir"
