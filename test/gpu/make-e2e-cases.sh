#!/bin/sh
# Builds, on the build machine, the layers that run-e2e-on-device.sh checks
# on the GPU machine: moe-testgen layers (bf16) compiled with
# `moe-compile --target=cuda` into DIR/<case>/ (default build/gpu-e2e; carry
# DIR.tar.xz, build/bin/moe-testgen and build/bin/moert-unit-tests to the
# device).
# Cases named fused-* (and qwen, shared-*) run whole on the GPU
# (-convert-moe-layer-to-gpu-call; shared experts as a second expert
# stage, the PR-MoE MLP a third); so do capacity drops by position (by
# score they keep routing on the CPU and the experts on the GPU).
set -e
dir=${1:-build/gpu-e2e}
rm -rf "$dir"
mkdir -p "$dir"
# Only the executables and the generator's arguments travel: the device
# regenerates the same weights, inputs and reference outputs from them
# (moe-testgen is deterministic for a given seed), which keeps the carried
# tree small. The seed is fresh for every build of the cases.
seed=${SEED:-$(date +%s)}
# ONLY="PATTERN ..." (shell patterns) builds only the cases one matches.
# make_case NAME [--gpu-*=V moe-compile options...] moe-testgen options...
make_case() {
  name=$1; shift
  seed=$((seed + 1))
  wanted=
  set -f # (the patterns are not file names)
  for pattern in ${ONLY:-*}; do
    # shellcheck disable=SC2254
    case "$name" in $pattern) wanted=1;; esac
  done
  set +f
  [ -n "$wanted" ] || return 0
  path=--gpu-path=auto
  while case "$1" in --gpu-*=*) true;; *) false;; esac; do path="$path $1"; shift; done
  mkdir -p "$dir/$name"
  echo "--dtype bf16 --seed $seed $*" > "$dir/$name/gen-args"
  # (The model alone: the weights, inputs and reference are made there.)
  build/bin/moe-testgen gen --out "$dir/$name" --model-only --dtype bf16 \
    --seed $seed "$@" > /dev/null || return 1
  # shellcheck disable=SC2086
  build/bin/moe-compile "$dir/$name/model.mlir" --target=cuda --cpu=x86-64-v3 \
    $path -o "$dir/$name/model" || return 1
}
make_case fused-mixtral --top-k 2 --renormalize --tokens 16 --hidden 128 --ffn 256 --experts 8
make_case qwen --top-k 4 --experts 16 --tokens 8 --hidden 128 --ffn 64 --shared 128 --shared-gated --shared-coef
# Shared experts as a second expert stage (one expert, a row a token,
# weighted by sigmoid(x shared_coef) or 1), adding into the routed
# stage's f32 output: one token (GEMVs after the decode kernel; the fused
# kernel), ungated without a coefficient (mma.sync), sigmoid routing with a
# bias, wgmma tiles (a partial last tile: 700 rows), a routed stage that
# would combine by rows alone.
make_case shared-one-token --top-k 8 --experts 64 --tokens 1 --hidden 256 --ffn 128 --shared 512 --shared-gated
make_case shared-one-token-coef --gpu-ffn-columns=64 --top-k 2 --experts 8 --tokens 1 --hidden 192 --ffn 320 --shared 320 --shared-gated --shared-coef
# One token: the shared expert (or PR-MoE's MLP without mixing) as items of
# the decode kernel (2026-12-03, twentieth session): gated and plain, with
# the sigmoid coefficient, with a cp.async ring, and the kernels after it.
make_case shared-decode-coef --top-k 4 --experts 64 --tokens 1 --hidden 256 --ffn 128 --shared 384 --shared-gated --shared-coef
make_case shared-decode-plain --top-k 2 --plain --activation gelu --experts 16 --tokens 1 --hidden 128 --ffn 128 --shared 256
make_case shared-decode-ring --gpu-decode-stages=2 --top-k 6 --experts 64 --tokens 1 --hidden 256 --ffn 128 --shared 256 --shared-gated --shared-coef
make_case shared-decode-never --gpu-decode-dense=never --top-k 8 --experts 64 --tokens 1 --hidden 256 --ffn 128 --shared 512 --shared-gated
make_case prmoe-decode --top-k 2 --plain --activation gelu --experts 16 --tokens 1 --hidden 128 --ffn 128 --mlp 256
# A few tokens: the shared expert on 64-row wgmma tiles (dense stages take
# them wherever the routed rule would give mma.sync tiles).
make_case shared-few-tokens --top-k 4 --experts 16 --tokens 12 --hidden 256 --ffn 128 --shared 384 --shared-gated --shared-coef
# The shared expert's down kernel split over K (grid z, f32 atomics; 2026-12-04):
# 64-row tiles with two column blocks and 16 splits, a 128-row tile and a
# partial second one with 8 K steps a split, an ungated one, and the
# persistent form where asked not to split.
make_case shared-split-k --top-k 4 --experts 16 --tokens 20 --hidden 512 --ffn 128 --shared 2048 --shared-gated --shared-coef
make_case shared-split-k-rows --top-k 2 --experts 8 --tokens 150 --hidden 256 --ffn 256 --shared 1024 --shared-gated
make_case shared-split-k-plain --top-k 2 --plain --activation gelu --experts 16 --tokens 24 --hidden 256 --ffn 128 --shared 1536
make_case shared-split-k-never --gpu-dense-split-k=never --top-k 4 --experts 16 --tokens 20 --hidden 512 --ffn 128 --shared 2048 --shared-gated --shared-coef
make_case shared-plain --top-k 2 --plain --activation gelu --experts 8 --tokens 40 --hidden 128 --ffn 128 --shared 256
make_case shared-sigmoid-bias --gpu-path=mma --sigmoid --bias --top-k 4 --experts 16 --renormalize --scaling 2.5 --tokens 130 --hidden 128 --ffn 128 --shared 128 --shared-gated
make_case shared-wgmma --top-k 8 --experts 64 --tokens 700 --hidden 256 --ffn 128 --shared 256 --shared-gated --shared-coef
make_case shared-rows-auto --top-k 2 --experts 8 --renormalize --tokens 1000 --hidden 256 --ffn 384 --shared 384 --shared-gated --shared-coef
make_case fused-gelu-plain --top-k 2 --plain --activation gelu --tokens 4 --hidden 64 --ffn 128
make_case fused-olmoe-small --top-k 4 --renormalize --experts 16 --tokens 16 --hidden 128 --ffn 256
make_case fused-sigmoid-bias --sigmoid --bias --top-k 4 --experts 16 --renormalize --scaling 2.5 --tokens 8 --hidden 128 --ffn 64
make_case fused-after-topk --top-k 4 --experts 16 --score-after-topk --tokens 8 --hidden 128 --ffn 64
make_case fused-top1-relu --top-k 1 --plain --activation relu --experts 32 --tokens 8 --hidden 128 --ffn 256
make_case fused-gelu-tanh --top-k 2 --activation gelu_tanh --experts 8 --tokens 5 --hidden 64 --ffn 64
make_case fused-e256-top8 --top-k 8 --experts 256 --renormalize --tokens 40 --hidden 32 --ffn 32
make_case fused-many-tokens --top-k 8 --experts 64 --tokens 200 --hidden 128 --ffn 64
make_case fused-one-token --top-k 8 --experts 128 --tokens 1 --hidden 64 --ffn 64
# The gating kernel's K rows not a multiple of what a block loads at once
# (64 experts: 128 rows a step), 64 tokens (the most it routes); the same
# layer with the memset, router GEMV, routing kernel and the up and down
# GEMVs instead; the fused expert FFN with its widest slices, experts with
# 1 to 3 rows.
make_case fused-gate-64-tokens --gpu-fused-gate=always --top-k 6 --experts 64 --tokens 64 --hidden 192 --ffn 64
make_case separate-gate --gpu-fused-gate=never --gpu-ffn-columns=-1 --top-k 6 --experts 64 --tokens 64 --hidden 192 --ffn 64
make_case ffn-wide-slices --gpu-ffn-columns=128 --top-k 2 --experts 16 --tokens 6 --hidden 200 --ffn 256
make_case ffn-one-token --gpu-ffn-columns=32 --top-k 8 --experts 128 --tokens 1 --hidden 64 --ffn 64
make_case ffn-gelu-plain --gpu-ffn-columns=64 --top-k 2 --plain --activation gelu --tokens 4 --hidden 64 --ffn 128
# The up and down GEMVs as they were before the down GEMV staged its
# activated input in shared memory and loaded weights before its grid
# dependency wait (the other few-rows cases do both), 1 row an expert; and
# both with 1-2 rows an expert, where the down GEMV's blocks have threads
# past the last column (staging keeps them for the barriers).
make_case overlap-never --gpu-decode-overlap=never --gpu-stage-down=never --gpu-ffn-columns=-1 --top-k 8 --experts 64 --tokens 1 --hidden 256 --ffn 512
make_case stage-ragged-columns --gpu-gemv-lanes=1 --gpu-ffn-columns=-1 --top-k 2 --experts 8 --tokens 8 --hidden 1000 --ffn 256
# The one-token decode kernel (default where two or more experts are hit):
# SwiGLU, sigmoid scores with a bias, GEMV blocks narrower than the decode
# block with ragged columns, a plain GELU expert; the chain it replaces;
# one expert hit (the chain by default).
make_case decode-kernel --gpu-ffn-columns=-1 --top-k 8 --experts 64 --tokens 1 --hidden 256 --ffn 512
make_case decode-never --gpu-decode-kernel=never --gpu-ffn-columns=-1 --top-k 8 --experts 64 --tokens 1 --hidden 256 --ffn 512
make_case decode-sigmoid-bias --gpu-ffn-columns=-1 --sigmoid --bias --top-k 4 --experts 16 --renormalize --scaling 2.5 --tokens 1 --hidden 128 --ffn 64
make_case decode-ragged --gpu-ffn-columns=-1 --top-k 2 --experts 8 --tokens 1 --hidden 1000 --ffn 256
make_case decode-gelu-plain --gpu-ffn-columns=-1 --top-k 2 --plain --activation gelu --experts 8 --tokens 1 --hidden 192 --ffn 320
make_case decode-top1-chain --gpu-ffn-columns=-1 --top-k 1 --experts 32 --tokens 1 --hidden 128 --ffn 256
# GEMV items split to take all 256 threads of the decode block (2026-12-04):
# qwen3's up GEMV shape (hidden 2048, ffn 768: 3 column blocks of 8 lanes,
# 192-row K chunks, the last one 128 rows), with a cp.async ring too.
make_case decode-fill --gpu-ffn-columns=-1 --top-k 8 --experts 16 --tokens 1 --hidden 2048 --ffn 768
make_case decode-fill-ring --gpu-decode-stages=2 --gpu-ffn-columns=-1 --top-k 8 --experts 16 --tokens 1 --hidden 2048 --ffn 768
# Its GEMV items through a cp.async ring in dynamic shared memory (beside
# the static buffers; GEMV blocks of 32 threads in the ragged one).
make_case decode-stages --gpu-decode-stages=3 --gpu-ffn-columns=-1 --top-k 8 --experts 64 --tokens 1 --hidden 256 --ffn 512
make_case decode-stages-ragged --gpu-decode-stages=2 --gpu-ffn-columns=-1 --top-k 2 --experts 8 --tokens 1 --hidden 1000 --ffn 256
# The router's logits split over K on tensor cores (warpgroup MMAs: 128
# experts; mma.sync: 16), the routing finished by several blocks.
make_case router-split-wgmma --top-k 8 --experts 128 --renormalize --tokens 256 --hidden 256 --ffn 64
make_case router-split-mma --top-k 2 --experts 16 --tokens 512 --hidden 512 --ffn 128
make_case router-wgmma-16-tokens --top-k 8 --experts 128 --tokens 16 --hidden 128 --ffn 64
make_case overlap-plain-rows --gpu-ffn-columns=-1 --top-k 2 --plain --activation gelu --experts 8 --tokens 3 --hidden 192 --ffn 320
# The tensor-core path (mma): several row tiles per expert, a partial last
# tile, gather, every epilogue.
make_case mma-mixtral --gpu-path=mma --top-k 2 --renormalize --tokens 300 --hidden 128 --ffn 256 --experts 8
make_case mma-gelu-plain --gpu-path=mma --top-k 1 --plain --activation gelu --experts 16 --tokens 100 --hidden 128 --ffn 256
make_case mma-e256-top8 --gpu-path=mma --top-k 8 --experts 256 --renormalize --tokens 40 --hidden 128 --ffn 128
make_case mma-sigmoid-bias --gpu-path=mma --sigmoid --bias --top-k 4 --experts 16 --renormalize --scaling 2.5 --tokens 64 --hidden 128 --ffn 128
make_case mma-router-bias --gpu-path=mma --sigmoid --bias --top-k 4 --experts 16 --renormalize --tokens 256 --hidden 128 --ffn 128
make_case mma-tile128 --gpu-path=mma --top-k 2 --experts 8 --tokens 700 --hidden 128 --ffn 256 --plain --activation gelu_tanh
make_case mma-warps4 --gpu-path=mma --gpu-mma-tile-m=128 --gpu-mma-warps=4 --top-k 2 --experts 8 --tokens 600 --hidden 128 --ffn 256
make_case mma-warps4-plain --gpu-path=mma --gpu-mma-warps=4 --top-k 1 --plain --activation relu --experts 8 --tokens 900 --hidden 256 --ffn 128
make_case mma-auto-many-rows --top-k 2 --experts 8 --tokens 256 --hidden 128 --ffn 128
make_case mma-big-tiles --gpu-path=mma --top-k 2 --experts 8 --tokens 1400 --hidden 256 --ffn 384
# The combine by rows: the down kernel stores weighted bf16 rows, the
# combine kernel sums each token's k rows (wgmma and mma.sync; top-1 with a
# hidden size that is not a multiple of 8 columns a thread's pass; by auto
# where the f32 output would outgrow half the L2).
make_case combine-rows-wgmma --gpu-combine=rows --top-k 8 --experts 16 --renormalize --tokens 300 --hidden 256 --ffn 128
make_case combine-rows-mma --gpu-path=mma --gpu-combine=rows --top-k 2 --experts 8 --tokens 300 --hidden 128 --ffn 256
make_case combine-rows-top1 --gpu-combine=rows --top-k 1 --plain --activation gelu --experts 8 --tokens 500 --hidden 384 --ffn 128
make_case combine-rows-auto --top-k 2 --experts 8 --renormalize --tokens 4096 --hidden 2048 --ffn 128
# The wgmma blocks in groups of row tiles (a short last group; with the
# combine by rows too).
make_case wgmma-group-3 --gpu-wgmma-group-tiles=3 --top-k 2 --experts 8 --renormalize --tokens 1000 --hidden 256 --ffn 384
make_case wgmma-group-5-rows --gpu-wgmma-group-tiles=5 --gpu-combine=rows --top-k 4 --experts 16 --tokens 700 --hidden 384 --ffn 256
# The persistent wgmma kernels: pairs streamed by one block an SM (groups
# of 3 tiles with atomics; the plain order with rows; K of 2 steps).
make_case wgmma-persistent --gpu-wgmma-persistent=always --gpu-wgmma-group-tiles=3 --gpu-combine=atomic --top-k 2 --experts 8 --renormalize --tokens 1000 --hidden 256 --ffn 384
make_case wgmma-persistent-rows --gpu-wgmma-persistent=always --gpu-wgmma-group-tiles=0 --gpu-combine=rows --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 128
# The warp-specialised form (a producer warpgroup, mbarriers): groups of 3
# with atomics; rows with down K of 2 steps (fewer than the stages); top-1
# with two K steps a pair in both kernels (the fewest: K is a multiple of
# 128).
make_case wgmma-producer --gpu-wgmma-persistent=producer --gpu-wgmma-group-tiles=3 --gpu-combine=atomic --top-k 2 --experts 8 --renormalize --tokens 1000 --hidden 256 --ffn 384
make_case wgmma-producer-rows --gpu-wgmma-persistent=producer --gpu-wgmma-group-tiles=0 --gpu-combine=rows --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 128
# More live tiles (about 440) than the block's 384 threads count at once.
make_case wgmma-producer-many-tiles --gpu-wgmma-persistent=producer --top-k 8 --experts 64 --tokens 6000 --hidden 128 --ffn 128
make_case wgmma-producer-two-steps --gpu-path=wgmma --gpu-wgmma-persistent=producer --top-k 1 --experts 8 --tokens 700 --hidden 128 --ffn 128
# The producer's weight tiles by TMA (forced here; the default from 512
# rows an expert): the same four layers; with hidden 384, the down kernel's
# second 256-column block reads 128 columns past the weights (zeros from
# the tensor map).
make_case wgmma-tma --gpu-wgmma-persistent=tma --gpu-wgmma-group-tiles=3 --gpu-combine=atomic --top-k 2 --experts 8 --renormalize --tokens 1000 --hidden 256 --ffn 384
make_case wgmma-tma-rows --gpu-wgmma-persistent=tma --gpu-wgmma-group-tiles=0 --gpu-combine=rows --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 128
make_case wgmma-tma-many-tiles --gpu-wgmma-persistent=tma --top-k 8 --experts 64 --tokens 6000 --hidden 128 --ffn 128
make_case wgmma-tma-two-steps --gpu-path=wgmma --gpu-wgmma-persistent=tma --top-k 1 --experts 8 --tokens 700 --hidden 128 --ffn 128
# The weights multicast to clusters of two blocks over 256-row tiles: the
# same four layers and the ragged one; in the two-step layer (about 88 rows
# an expert) every cluster's second block has no rows.
make_case wgmma-mc --gpu-wgmma-persistent=multicast --gpu-wgmma-group-tiles=3 --gpu-combine=atomic --top-k 2 --experts 8 --renormalize --tokens 1000 --hidden 256 --ffn 384
make_case wgmma-mc-rows --gpu-wgmma-persistent=multicast --gpu-wgmma-group-tiles=0 --gpu-combine=rows --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 128
make_case wgmma-mc-many-tiles --gpu-wgmma-persistent=multicast --top-k 8 --experts 64 --tokens 6000 --hidden 128 --ffn 128
make_case wgmma-mc-two-steps --gpu-path=wgmma --gpu-wgmma-persistent=multicast --top-k 1 --experts 8 --tokens 700 --hidden 128 --ffn 128
make_case wgmma-mc-ragged --gpu-path=wgmma --gpu-wgmma-persistent=multicast --gpu-combine=atomic --top-k 4 --experts 16 --tokens 2900 --hidden 384 --ffn 256
# The pairs from a global counter (--gpu-wgmma-queue): cp.async producer
# and TMA weights; two K steps a pair (the ring of taken values under the
# most pairs in flight); the counters cleared by the gating kernel.
make_case wgmma-queue --gpu-wgmma-persistent=producer --gpu-wgmma-queue=always --top-k 8 --experts 64 --tokens 6000 --hidden 128 --ffn 128
make_case wgmma-queue-tma --gpu-wgmma-persistent=tma --gpu-wgmma-queue=always --gpu-wgmma-group-tiles=3 --gpu-combine=atomic --top-k 2 --experts 8 --renormalize --tokens 1000 --hidden 256 --ffn 384
make_case wgmma-queue-two-steps --gpu-path=wgmma --gpu-wgmma-queue=always --top-k 1 --experts 8 --tokens 700 --hidden 128 --ffn 128
make_case wgmma-queue-fused-gate --gpu-path=wgmma --gpu-fused-gate=always --gpu-wgmma-queue=always --top-k 2 --experts 8 --tokens 8 --hidden 128 --ffn 256
# The down kernel's combine by atomics with TMA weights by default (750 rows
# an expert): rows of an expert's last tile past its end, a 256-column
# block half past hidden 384.
make_case wgmma-atomic-ragged --gpu-path=wgmma --gpu-combine=atomic --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 128
# 64-row wgmma tiles (both MMA warpgroups on one expert's 64 rows, each
# half of each matrix's columns): gated with TMA weights and atomics over a
# half-filled last column block; ungated on the cp.async producer with
# combine by rows; the persistent form without a producer; the grid form.
make_case wgmma-m64-tma-ragged --gpu-path=wgmma --gpu-wgmma-rows=64 --gpu-combine=atomic --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 256
make_case wgmma-m64-plain-rows --gpu-path=wgmma --gpu-wgmma-rows=64 --gpu-wgmma-persistent=producer --gpu-combine=rows --plain --activation gelu --top-k 8 --experts 64 --tokens 700 --hidden 256 --ffn 384
make_case wgmma-m64-persistent --gpu-path=wgmma --gpu-wgmma-rows=64 --gpu-wgmma-persistent=always --top-k 2 --experts 8 --renormalize --tokens 1000 --hidden 256 --ffn 384
make_case wgmma-m64-grid --gpu-path=wgmma --gpu-wgmma-rows=64 --gpu-wgmma-persistent=never --gpu-combine=atomic --top-k 4 --experts 16 --tokens 900 --hidden 256 --ffn 256
# 192-row wgmma tiles (each MMA warpgroup 64 rows of all columns and half
# the columns of the last 64; setmaxnreg; the band's MMAs only in tiles of
# more than 128 rows; 2026-12-04): gated with atomics over a half-filled
# last column block (750 rows an expert: full tiles and a last one of
# either kind); ungated (TMA weights) with combine by rows at 87 rows an
# expert (the band skipped); 175 rows (one tile with the band, some
# experts a second); the planner's own choice at 128 rows an expert.
make_case wgmma-m192-atomic-ragged --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-combine=atomic --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 256
make_case wgmma-m192-plain-rows --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-combine=rows --plain --activation gelu --top-k 8 --experts 64 --tokens 700 --hidden 256 --ffn 384
make_case wgmma-m192-band --gpu-path=wgmma --gpu-wgmma-rows=192 --top-k 2 --experts 8 --renormalize --tokens 700 --hidden 256 --ffn 256
make_case auto-m192 --top-k 2 --experts 8 --renormalize --tokens 512 --hidden 256 --ffn 256
# 192-row tiles 128 rows apart (--gpu-wgmma-tile-step=128: an expert's
# tiles of 128 rows until at most 192 are left, its last tile): atomics at
# about 750 rows an expert (last tiles of 65-128 rows and of 129-192, with
# the band); ungated with combine by rows at about 256 (two 128-row tiles,
# or one and a last of 129-192); the planner's own choice at 256 rows an
# expert (it takes step 128 there).
make_case wgmma-m192s128-atomic-ragged --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --gpu-combine=atomic --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 256
make_case wgmma-m192s128-plain-rows --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --gpu-combine=rows --plain --activation gelu --top-k 2 --experts 8 --tokens 1024 --hidden 256 --ffn 384
make_case auto-m192s128 --top-k 2 --experts 8 --renormalize --tokens 1024 --hidden 256 --ffn 256
# The K steps' order (2026-12-04): a tall tile with its band takes steps
# 3 i and 3 i + 1 first, then 3 i + 2; each expert's steps start at 5 e
# (k_rotate, two or more tiles an expert). The cases above have 4 and 6 K
# steps (n mod 3 = 1, 0); 8 steps here (512 = 8 x 64, n mod 3 = 2), 275
# rows an expert (a 128-row tile and a tall one with its band). (Until
# 2026-12-06 this case had 5 steps, 320 = 5 x 64, which the tensor-core
# paths cannot take: it ran on the GEMVs, as did the first forms of
# wgmma-k-runs-2 and -3-tall below; moe-compile now warns.)
make_case wgmma-m192s128-k8 --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --top-k 2 --experts 8 --renormalize --tokens 1100 --hidden 512 --ffn 512
# Each expert's tiles a group (--gpu-wgmma-group-tiles=-2, 2026-12-05):
# the pairs' order from the tile table and the offsets, with 192-row tiles
# 128 apart (one to several tiles an expert, a last one with the band),
# with 128-row tiles at about 750 rows an expert and the down kernel in K
# runs, and ungated with combine by rows.
make_case wgmma-expert-groups-m192s128 --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --gpu-wgmma-group-tiles=-2 --top-k 4 --experts 16 --renormalize --tokens 1100 --hidden 384 --ffn 256
make_case wgmma-expert-groups-kruns --gpu-path=wgmma --gpu-wgmma-rows=128 --gpu-wgmma-group-tiles=-2 --gpu-down-k-runs=2 --gpu-combine=atomic --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 256
make_case wgmma-expert-groups-rows --gpu-path=wgmma --gpu-wgmma-group-tiles=-2 --gpu-combine=rows --plain --activation gelu --top-k 8 --experts 64 --tokens 700 --hidden 256 --ffn 384
# The weights of K step kt + N brought into L2 as the producer issues step
# kt (--gpu-wgmma-l2-prefetch, 2026-12-06): 64-row tiles with 5 stages at
# about 2 rows an expert (DeepSeek-V3 at 16 tokens in small), prefetching
# past the up pairs' 6 K steps and the down pairs' 4; 192-row tiles 128
# apart with the band order and the down kernel in 2 runs of 4 K steps
# (the prefetch's step positions follow both).
make_case wgmma-l2-prefetch-m64 --gpu-path=wgmma --gpu-wgmma-rows=64 --gpu-wgmma-stages=5 --gpu-wgmma-l2-prefetch=4 --top-k 8 --experts 64 --renormalize --tokens 16 --hidden 384 --ffn 256
make_case wgmma-l2-prefetch-m192s128 --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --gpu-wgmma-l2-prefetch=2 --gpu-down-k-runs=2 --gpu-combine=atomic --top-k 2 --experts 8 --renormalize --tokens 1100 --hidden 384 --ffn 512
# The down kernel's pairs in K runs (2026-12-05): each pair's K steps in N
# runs, each an item of the queue, added by the scatter's atomics. Two
# runs of 4 steps with the planner's 192-row tiles; 3 runs of 4 steps in
# tall tiles 128 apart (the band and the rotation within a run) at 750 rows
# an expert; 4 runs of 4 steps, ungated 128-row tiles (cp.async weights);
# 5 runs of 2 steps beside a shared expert; and the planner's own choice
# at 256 rows an expert and 256 K steps (2 runs).
make_case wgmma-k-runs-2 --gpu-path=wgmma --gpu-down-k-runs=2 --top-k 2 --experts 8 --renormalize --tokens 1100 --hidden 384 --ffn 512
make_case wgmma-k-runs-3-tall --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --gpu-down-k-runs=3 --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 768
make_case wgmma-k-runs-4-m128 --gpu-path=wgmma --gpu-wgmma-rows=128 --gpu-down-k-runs=4 --plain --activation gelu --top-k 2 --experts 8 --tokens 1000 --hidden 256 --ffn 1024
make_case wgmma-k-runs-5-shared --gpu-path=wgmma --gpu-down-k-runs=5 --top-k 2 --experts 8 --tokens 900 --hidden 256 --ffn 640 --shared 256 --shared-gated
make_case auto-k-runs --top-k 2 --experts 8 --renormalize --tokens 1024 --hidden 256 --ffn 8192
# The band of 192-row tiles multiplied with the operands swapped
# (--gpu-wgmma-band=swap16|swap32, 2026-12-08): the weights as the wgmmas'
# A, the band's rows as B, sub-bands of 16 or 32 rows each where the tile
# has rows in it, the transposed accumulators stored an element at a
# time. Atomics over a half-filled last column block at about 750 rows an
# expert (tiles 128 apart: last tiles of every sub-band count); combine by
# rows, ungated gelu, about 256 rows an expert; tiles 192 apart at about
# 128 rows an expert (OLMoE at 1024 tokens in small: one tile an expert,
# its band partly filled); the down kernel in 3 K runs; 8 K steps with
# the band order and the rotation.
make_case wgmma-swap16-atomic-ragged --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --gpu-wgmma-band=swap16 --gpu-combine=atomic --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 256
make_case wgmma-swap32-plain-rows --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --gpu-wgmma-band=swap32 --gpu-combine=rows --plain --activation gelu --top-k 2 --experts 8 --tokens 1024 --hidden 256 --ffn 384
make_case wgmma-swap16-apart192 --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-wgmma-band=swap16 --top-k 8 --experts 64 --renormalize --tokens 1024 --hidden 256 --ffn 256
make_case wgmma-swap16-k-runs-3 --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --gpu-wgmma-band=swap16 --gpu-down-k-runs=3 --top-k 4 --experts 16 --tokens 3000 --hidden 384 --ffn 768
make_case wgmma-swap32-k8 --gpu-path=wgmma --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --gpu-wgmma-band=swap32 --top-k 2 --experts 8 --renormalize --tokens 1100 --hidden 512 --ffn 512
# The router's K splits as asked (--gpu-router-split-k, 2026-12-05, not
# run on a GPU yet when added): the unsplit mma.sync router (no atomics)
# and a wgmma router asked for 3 splits of its 5 K steps (runs of 2, 2
# and 1).
make_case router-split-1-mma --gpu-router-split-k=1 --top-k 2 --experts 16 --renormalize --tokens 1024 --hidden 256 --ffn 128
make_case router-split-3-wgmma --gpu-router-split-k=3 --top-k 4 --experts 128 --tokens 300 --hidden 320 --ffn 64
# The router inside the select kernel (--gpu-fused-route, 2026-12-05, not
# run on a GPU yet when added): each block's 16 tokens' logits on mma.sync
# from the router staged through dynamic shared memory, then routed
# there. OLMoE's router form (64 experts: four warps a pair of n8 tiles,
# stages of 128 K rows); one n8 tile (Mixtral's 8 experts: 16 warps on K,
# shared atomics, stages of 256 rows) with a last block of 4 tokens; an
# odd last tile (24 experts, stages of 32 rows) with sigmoid scores and a
# bias; 128 experts (two warps a pair, 64 rows) with group-limited
# routing; beside a shared expert; 224 experts (a warp a pair, plain
# stores) with a last block of 12 tokens.
make_case router-in-select-e64 --gpu-fused-route=true --top-k 8 --experts 64 --renormalize --tokens 1024 --hidden 512 --ffn 128
make_case router-in-select-e8-tail --gpu-fused-route=true --top-k 2 --experts 8 --renormalize --tokens 100 --hidden 1024 --ffn 256
make_case router-in-select-e24-sigmoid --gpu-fused-route=true --sigmoid --bias --top-k 4 --experts 24 --renormalize --scaling 2.5 --tokens 200 --hidden 192 --ffn 128
make_case router-in-select-e128-groups --gpu-fused-route=true --top-k 8 --experts 128 --groups 8 4 --renormalize --tokens 300 --hidden 384 --ffn 64
make_case router-in-select-e224-tail --gpu-fused-route=true --top-k 6 --experts 224 --renormalize --tokens 140 --hidden 256 --ffn 64
make_case router-in-select-shared --gpu-fused-route=true --top-k 4 --experts 16 --tokens 500 --hidden 256 --ffn 128 --shared 256 --shared-gated --shared-coef
# The planner's 64-row tiles where experts get a row or two (TMA weights,
# combine by rows): a gated layer left to auto (6 tokens hit about 35 of 64
# experts: 141 (tile, column block) pairs a kernel), and an ungated one with
# top-1 (the combine of one row a token) asked for.
make_case auto-m64-few-rows --top-k 8 --experts 64 --renormalize --tokens 6 --hidden 1024 --ffn 512
make_case wgmma-m64-tma-top1 --gpu-path=wgmma --gpu-wgmma-rows=64 --plain --activation gelu --top-k 1 --experts 32 --tokens 40 --hidden 256 --ffn 512
# The combine by rows beside the gating kernel: nothing to clear (an
# empty buffer). 8 tokens: from 16 the router runs on tensor cores and the
# gating kernel is not taken (this case had 16 until 2026-12-04, and so
# missed that the compiler crashed here).
make_case combine-rows-fused-gate --gpu-path=mma --gpu-fused-gate=always --gpu-combine=rows --top-k 2 --experts 8 --tokens 8 --hidden 128 --ffn 128
# The gating kernel with nothing to clear (mma.sync experts combining by
# rows at 3 tokens: an empty buffer to clear; the compiler crashed on it
# until 2026-12-04, found by test/fuzz/cuda-compile-sweep.py).
make_case gate-nothing-to-clear --top-k 8 --plain --activation gelu --experts 16 --tokens 3 --hidden 384 --ffn 128
# Capacity drops (drop policy position) in the fused layer (2026-12-06,
# forty-first session): ranked in priority order by the routing block (a
# gating kernel at 4 tokens, the whole routing kernel at 32 and 48), or by
# the Capacity part between the split routing's select and finish (from 65
# tokens), on every expert path and both combines; Switch's fixed capacity
# (a tiny factor, min_capacity); sigmoid scores with a bias.
make_case capacity-drops --top-k 2 --tokens 32 --capacity 0.5 --hidden 64 --ffn 64
make_case capacity-gate --top-k 2 --experts 8 --tokens 4 --capacity 0.5 --hidden 64 --ffn 64
make_case capacity-switch --top-k 1 --plain --activation relu --experts 8 --tokens 48 --capacity 0.01 --min-capacity 5 --hidden 64 --ffn 128
make_case capacity-split-gemv --top-k 1 --experts 32 --tokens 2000 --capacity 1.0 --hidden 64 --ffn 64
make_case capacity-split-wgmma --top-k 2 --experts 16 --renormalize --tokens 512 --capacity 1.0 --hidden 256 --ffn 256
make_case capacity-split-rows --gpu-combine=rows --top-k 2 --experts 16 --tokens 512 --capacity 0.75 --hidden 256 --ffn 256
make_case capacity-split-atomic --gpu-combine=atomic --top-k 4 --experts 16 --tokens 300 --capacity 0.8 --hidden 256 --ffn 128
make_case capacity-split-mma --gpu-path=mma --sigmoid --bias --top-k 4 --experts 16 --renormalize --scaling 2.5 --tokens 130 --capacity 0.6 --hidden 128 --ffn 128
make_case capacity-shared --top-k 4 --experts 16 --tokens 200 --capacity 0.5 --hidden 256 --ffn 128 --shared 256 --shared-gated
# 12 capacity blocks of 1024 assignments (each ranks from the counts of the
# blocks before it).
make_case capacity-many-blocks --top-k 4 --experts 32 --tokens 3000 --capacity 0.9 --hidden 128 --ffn 128
# The PR-MoE residual MLP as an expert stage of its own (fused since
# 2026-12-03): mixed by the softmax over x mlp_coef (its routing kernel
# scales the routed output by c0) at 8 tokens, one token and 600 (wgmma);
# unmixed beside a shared expert with its gate.
make_case pr-moe-residual --top-k 1 --plain --activation gelu --experts 16 --mlp 64 --mlp-coef --hidden 64 --ffn 64
make_case prmoe-one-token --top-k 1 --plain --activation gelu --experts 16 --tokens 1 --hidden 128 --ffn 128 --mlp 256 --mlp-coef
make_case prmoe-wgmma --top-k 1 --plain --activation gelu --experts 16 --tokens 600 --hidden 256 --ffn 256 --mlp 512 --mlp-coef
make_case prmoe-shared --top-k 2 --experts 8 --tokens 40 --hidden 128 --ffn 128 --mlp 128 --shared 128 --shared-gated --shared-coef
# Group-limited routing on the fused layer (was decomposed until
# 2026-12-03): DeepSeek-V3's (sigmoid, bias, groups scored by their best
# two) through the routing kernel, the gating kernel (4 tokens), the decode
# kernel (one token, 256 experts in groups of 32 = a register a lane, with
# a shared expert), the select/finish kernels (2000 tokens); groups scored
# by their best expert; groups of 20 that straddle lanes (DeepSeek-V2's 160
# experts in 8 groups).
make_case deepseek-groups --sigmoid --bias --groups 4 2 --group-top2-sum --top-k 4 --experts 16 --renormalize --scaling 2.5 --tokens 8 --hidden 128 --ffn 64
make_case groups-gate --sigmoid --bias --groups 4 2 --group-top2-sum --top-k 4 --experts 32 --renormalize --tokens 4 --hidden 128 --ffn 64
make_case groups-decode-shared --sigmoid --bias --groups 8 4 --group-top2-sum --top-k 8 --experts 256 --renormalize --scaling 2.5 --tokens 1 --hidden 256 --ffn 128 --shared 128 --shared-gated
make_case groups-many-tokens --sigmoid --bias --groups 8 4 --group-top2-sum --top-k 8 --experts 64 --renormalize --scaling 2.5 --tokens 2000 --hidden 256 --ffn 128 --shared 256 --shared-gated
make_case groups-max --groups 8 3 --top-k 6 --experts 64 --tokens 300 --hidden 128 --ffn 128
make_case groups-of-20 --groups 8 3 --top-k 6 --experts 160 --tokens 64 --hidden 128 --ffn 128 --shared 256 --shared-gated
# RANDOM_CASES=N (default 20, fresh draws from the build's seed): N more
# layers drawn as test/fuzz/cuda-compile-sweep.py
# draws them (sizes off the kernels' tiles, every score function, groups,
# capacities, shared experts, the PR-MoE MLP, a few forced --gpu-*
# choices), named random-<i>; a draw the compiler refuses with a message is
# left out (the sweep itself checks the refusals are clean).
if [ "${RANDOM_CASES:-20}" -gt 0 ]; then
  i=0
  python3 "$(dirname "$0")/../fuzz/cuda-compile-sweep.py" \
      --print-cases "${RANDOM_CASES:-20}" --seed "$seed" > "$dir/.random-cases"
  while IFS='	' read -r comp gen; do
    i=$((i + 1))
    name=random-$i
    # shellcheck disable=SC2086
    if ! make_case "$name" $comp $gen 2> "$dir/.refusal"; then
      grep -q "error: " "$dir/.refusal" || { cat "$dir/.refusal"; exit 1; }
      echo "$name refused: $(grep -m1 "error: " "$dir/.refusal")"
      rm -rf "${dir:?}/$name"
    fi
  done < "$dir/.random-cases"
  rm -f "$dir/.random-cases" "$dir/.refusal"
fi
# The executables share most of their bytes (the runtime): xz takes the
# set from about 60 MB to 6, under the device's carry limit with room for
# RANDOM_CASES; run-e2e-on-device.sh unpacks DIR.tar.xz where DIR is not
# there.
python3 -c "import sys, tarfile, os
with tarfile.open(sys.argv[1] + '.tar.xz', 'w:xz') as t:
    t.add(sys.argv[1], arcname=os.path.basename(sys.argv[1]))" "$dir"
echo "made $(ls "$dir" | wc -l) cases in $dir (and $dir.tar.xz, $(du -k "$dir.tar.xz" | cut -f1) KiB)"
