#!/bin/bash
# Whether two builds of moe-compile make CPU executables that compute the
# same: every tiny Hugging Face config of test/gpu/tiny_configs.py (and
# Switch Transformers), f32 and bf16, compiled whole by both, generating
# 12 tokens from an 8-token prompt; the generated tokens and the logits
# files must be byte-identical. For a change meant to leave the CPU code's
# results alone (on the build machine, no GPU):
#   bash test/bench/compare-cpu-builds.sh OLD/moe-compile NEW/moe-compile
#       [MORE moe-compile FLAGS, e.g. --import-hf-tokens 3 --import-hf-batch 2]
# ARCHS and DTYPES narrow the set. Ends with "N same, M differ" and exits
# non-zero where any differs.
set -euo pipefail
old=$1; new=$2; shift 2
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
same=0; differ=0
for arch in ${ARCHS:-mixtral mixtral_e8 qwen2_moe qwen3_moe olmoe qwen2_moe_dense qwen3_moe_dense deepseek_v3 deepseek_v3_yarn qwen3_moe_yarn qwen3_moe_tied mixtral_wg switch_transformers deepseek_v2 deepseek_v3_e8 deepseek_v2_e8 deepseek_v3_yarn_e8}; do
  for t in ${DTYPES:-f32 bf16}; do
    d=$tmp/$arch-$t
    if [ "$arch" = switch_transformers ]; then
      python3 test/e2e/tiny-switch.py "$d" 3 1 $([ "$t" = bf16 ] && echo --bf16) > /dev/null 2>&1
    else
      python3 test/gpu/make-tiny-checkpoint.py "$arch" "$t" "$d"
    fi
    for b in old new; do
      compiler=$old; [ $b = new ] && compiler=$new
      "$compiler" "$d" --import-hf-whole --import-hf-max-seq 64 --cpu=x86-64-v3 \
        "$@" -o "$d/exe-$b"
      if ! MOERT_DEVICE=cpu "$d/exe-$b" --weights "$d" --prompt-ids 3,1,4,1,5,9,2,6 \
          --max-new-tokens 12 --output "$d/out-$b.safetensors" > "$d/run-$b.txt" 2>&1; then
        echo "compare-cpu-builds.sh: $arch $t ($b build) failed:" >&2
        cat "$d/run-$b.txt" >&2
        exit 1
      fi
      grep "^generated" "$d/run-$b.txt" > "$d/gen-$b.txt"
    done
    if cmp -s "$d/out-old.safetensors" "$d/out-new.safetensors" &&
       cmp -s "$d/gen-old.txt" "$d/gen-new.txt"; then
      same=$((same + 1)); echo "same   $arch $t: $(head -1 "$d/gen-new.txt")"
    else
      differ=$((differ + 1)); echo "DIFFER $arch $t"
    fi
  done
done
echo "$same same, $differ differ"
[ $differ -eq 0 ]
