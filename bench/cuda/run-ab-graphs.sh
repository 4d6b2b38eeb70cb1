#!/usr/bin/env bash
# Decode-attention kernels under TOKAMAK_ATTN_VARIANT 0 (split) and 4
# (balanced), with CUDA graphs or --enforce-eager, on prompts of 1000 tokens
# (CASES: mode/prompts/output-len).
#   bash .gpu/remote.sh bash bench/cuda/run-ab-graphs.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
make build-cuda > $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
CK=/tmp/llama-3.1-8b-random
[ -f $CK/config.json ] || ./tokamak model random --config llama-3.1-8b --dtype bf16 --out $CK > $OUT/random.log 2>&1
# CASES: mode/prompts/output-len (mode graph or eager)
for c in ${CASES:-graph/176/500 eager/176/500}; do
  IFS=/ read mode n osl <<<"$c"
  flag=""; [ $mode = eager ] && flag="--enforce-eager"
  for v in ${VARIANTS:-0 4}; do  # TOKAMAK_ATTN_VARIANT values
    tag=$mode-$n-$osl-v$v
    TOKAMAK_ATTN_VARIANT=$v timeout 120 ./tokamak bench throughput --model $CK --device cuda --input-len 1000 --output-len $osl --num-prompts $n $flag --out $OUT/ab-$tag.json > $OUT/ab-$tag.log 2>&1
    echo "$tag rc=$?: $(grep -E '^steps' $OUT/ab-$tag.log | cut -c1-80)"
  done
done
