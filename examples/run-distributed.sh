#!/bin/sh
# The tiny random DeepSeek-V3 model (multi-head latent attention, a dense
# first layer, a group-limited MoE layer with a shared expert) planned over
# 2 ranks and run under mpirun: the planner picks the layout (and, for
# expert parallelism, how tokens move), the dense blocks are tensor-sliced
# (attention-tp), and the executable launches its ranks itself (one GPU
# each on a GPU machine, MPI between CPU processes otherwise) and generates
# the same tokens as the 1-rank executable.
#   examples/run-distributed.sh [build-dir]
set -e
build=${1:-build}
out=$build/examples/tiny-deepseek
rm -rf "$out"
mkdir -p "$out"
python3 "$(dirname "$0")/../test/e2e/tiny-deepseek.py" "$out/ckpt" 1,2,3 1 > /dev/null
target=cpu
if command -v nvidia-smi > /dev/null 2>&1 &&
   [ "$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | wc -l)" -ge 2 ] &&
   [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/ptxas" ]; then
  target=cuda
fi
echo "compiling for 1 rank and for 2 ranks ($target)"
"$build/bin/moe-compile" "$out/ckpt" --import-hf-whole --import-hf-max-seq 64 \
  --target=$target -o "$out/model-1"
"$build/bin/moe-compile" "$out/ckpt" --import-hf-whole --import-hf-max-seq 64 \
  --target=$target --ranks 2 --plan "tp=2 attention-tp=2 min-slice=8" \
  -o "$out/model-2" 2>&1 | sed -n 's/.*remark: \(moe-plan-parallelism: [ed][pi][=s].*\)/\1/p' | cut -c1-110 | sort -u
echo "1 rank:"
"$out/model-1" --weights "$out/ckpt" --prompt-ids 5,17,42,8 --max-new-tokens 12
echo "2 ranks:"
"$out/model-2" --ranks 2 --weights "$out/ckpt" --prompt-ids 5,17,42,8 --max-new-tokens 12
