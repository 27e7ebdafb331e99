#!/bin/sh
# run-bounded.sh FUZZER SECONDS CORPUS SEED_DIR...
# A short fuzz run: the corpus starts from the seeds (lit inputs, sample
# files, every past crash under regressions/) and grows in CORPUS.
set -e
fuzzer=$1; seconds=$2; corpus=$3; shift 3
mkdir -p "$corpus"
seeds=""
for d in "$@"; do [ -d "$d" ] && seeds="$seeds $d"; done
# allow_user_poisoning=0: LLVM's allocators, inlined into our instrumented
# code, poison memory that the uninstrumented libMLIR then uses.
export ASAN_OPTIONS=detect_container_overflow=0:detect_leaks=0:allow_user_poisoning=0
# shellcheck disable=SC2086
# A fixed seed (FUZZ_SEED=0 for a random one) keeps the bounded runs in the
# test suite repeatable; the per-input limit is generous for loaded machines.
exec "$fuzzer" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 \
  -seed="${FUZZ_SEED:-1}" \
  -artifact_prefix="$corpus/../" \
  -print_final_stats=1 "$corpus" $seeds
