#!/bin/sh
# Runs on the 2-GPU machine (kind nvidia-h200-x2) over the cases of
# make-ranked-cases.sh: regenerates each case's data, runs the single-GPU
# executable and the 2-rank executable, over NCCL both as one process
# driving both GPUs (--gpus 2, a thread per rank: "threads") and as one
# process per GPU under mpirun ("nccl"), and with RANKED_MPI=1 also over MPI
# (MOERT_COMM=mpi, host-staged), compares the 2-rank output
# with the C++ reference and with the single-GPU output, and times both
# (median of --repeat runs). Then a plain NCCL all-to-all of the same bytes
# as the benchmark's dispatch, through torch.distributed, in the same run.
# Prints a table last.
# Usage: run-ranked-on-device.sh [DIR] [TESTGEN]  (the whole log also goes to $OUT/ranked.log when $OUT is set)
# A model compiled for the GPU runs its CPU code where the GPU cannot be
# used; here that must fail instead of passing on the CPU.
export MOERT_DEVICE=gpu
if [ -n "$OUT" ] && [ -z "$RANKED_LOGGING" ]; then
  RANKED_LOGGING=1 sh "$0" "$@" 2>&1 | tee "$OUT/ranked.log"
  exit $?
fi
dir=${1:-build/gpu-ranked}
testgen=${2:-build/bin/moe-testgen}
mpi="mpirun --allow-run-as-root --oversubscribe -np 2 -x MOERT_COMM_PROFILE=1 -x MOERT_COMM"
nvidia-smi --query-gpu=index,name --format=csv,noheader
gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
# NCCL on 2 GPUs, from one process and from two; RANKED_MPI=1 also runs
# every case over MPI (host-staged).
comms="threads nccl"
[ -n "$RANKED_MPI" ] && comms="threads nccl mpi"
if [ "$gpus" -lt 2 ]; then
  # NCCL refuses two ranks on one GPU: the 2-rank runs share the one GPU
  # over MPI, and one NCCL start shows that refusal is reported, not hung.
  comms=mpi
  first=$(ls -d "$dir"/*/ | head -1)
  $testgen gen --out "$first" $(cat "$first/gen-args") > /dev/null 2>&1
  echo "== one GPU: a NCCL start must fail with a message"
  timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 "$first/ranked" \
    --weights "$first/weights.safetensors" --input "$first/input.safetensors" \
    --output "$first/nccl.safetensors" 2>&1 | grep -v "^ *$" | head -12
  echo "(status $?)"
fi
fails=0
table=""
# RANKED_CASES: a grep pattern of the cases to run (default all).
for case in "$dir"/*/; do
  name=$(basename "$case")
  echo "$name" | grep -q "${RANKED_CASES:-.}" || continue
  if [ -f "$case/data-from" ]; then
    # Same layer as another case: reuse its weights, inputs and reference.
    src="$dir/$(cat "$case/data-from")"
    for f in weights input expected; do
      [ -f "$src/$f.safetensors" ] && ln -sf "$(realpath "$src/$f.safetensors")" "$case/$f.safetensors"
    done
  else
    $testgen gen --out "$case" $(cat "$case/gen-args") > /dev/null 2>&1 || { echo "$name: gen failed"; fails=$((fails+1)); continue; }
  fi
  args="--weights $case/weights.safetensors --input $case/input.safetensors"
  repeat=20
  single=$("$case/single" $args --output "$case/single.safetensors" --repeat $repeat 2>&1)
  s_us=$(echo "$single" | sed -n 's/latency: median \([0-9.]*\) us.*/\1/p')
  for comm in $comms; do
    if [ $comm = mpi ]; then export MOERT_COMM=mpi; else export MOERT_COMM=nccl; fi
    if [ $comm = threads ]; then
      out=$(MOERT_COMM_PROFILE=1 timeout 300 "$case/ranked" --gpus 2 $args --output "$case/ranked-$comm.safetensors" --repeat $repeat 2>&1)
    else
      out=$(timeout 300 $mpi "$case/ranked" $args --output "$case/ranked-$comm.safetensors" --repeat $repeat 2>&1)
    fi
    rc=$?
    r_us=$(echo "$out" | sed -n 's/latency: median \([0-9.]*\) us.*/\1/p')
    # Layers too large for the C++ reference (gen --no-reference) are
    # checked against the 1-GPU executable only.
    if [ -f "$case/expected.safetensors" ]; then
      ref=$($testgen compare --expected "$case/expected.safetensors" --actual "$case/ranked-$comm.safetensors" --dtype bf16 2>&1 | tail -1)
    else
      ref="(none: no C++ reference at this size)"
    fi
    one=$($testgen compare --expected "$case/single.safetensors" --actual "$case/ranked-$comm.safetensors" --dtype bf16 2>&1 | tail -1)
    echo "== $name ($comm, plan $(cat "$case/plan-chosen")): rc=$rc"
    echo "$out" | grep -E "^comm rank 0|error" | head -8
    echo "  vs reference: $ref"
    echo "  vs 1 GPU:     $one"
    ok=PASS
    case "$one" in *" 0 bad") ;; *) ok=FAIL;; esac
    case "$ref" in *" 0 bad"|"(none:"*) ;; *) ok=FAIL;; esac
    [ $ok = PASS ] || fails=$((fails+1))
    [ $rc -eq 0 ] || { ok=FAIL; fails=$((fails+1)); }
    disp=$(echo "$out" | sed -n 's/^comm rank 0 [a-z]* moe.dispatch_exchange: .* \([0-9]*\) bytes sent per call, \([0-9.]*\) us per call, \([0-9.]*\) GB\/s/a2a \1 B \2 us \3 GB\/s/p')
    ared=$(echo "$out" | sed -n 's/^comm rank 0 [a-z]* all_reduce[ (device)]*: .* \([0-9]*\) bytes sent per call, \([0-9.]*\) us per call, .*/all-reduce \1 B \2 us/p')
    disp="$disp $ared"
    table="$table
$(printf '%-16s %-5s %-22s %-4s %10s %10s  %s' "$name" "$comm" "$(cat "$case/plan-chosen")" "$ok" "$s_us" "$r_us" "$disp")"
  done
  unset MOERT_COMM
done
# Plain NCCL all-to-all of the dispatch's bytes (256 tokens x top-2 x 2048
# bf16 = 2 MB per rank, half of it to the peer) and of one token's.
nccl="alltoall: not run (NCCL needs 2 GPUs)"
if [ "$gpus" -ge 2 ]; then
  echo "== plain NCCL all-to-all (torch.distributed)"
  nccl=$(timeout 300 mpirun --allow-run-as-root --oversubscribe -np 2 python3 test/bench/nccl_alltoall.py 2097152 8192 16384 1048576 2>&1)
  echo "$nccl"
fi
echo
echo "case             comm  plan                   ok   1-GPU us  2-rank us  collectives (rank 0: bytes per call, time per call incl. staging)"
echo "$table" | sed '/^$/d'
echo "$nccl" | grep "^alltoall\|^allreduce"
echo "$fails failed"
[ $fails -eq 0 ]
