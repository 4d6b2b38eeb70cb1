#!/usr/bin/env bash
# Decode-attention kernels with and without CUDA graphs: 176 prompts of 1000
# tokens, 500 out (one wave), under TOKAMAK_ATTN_VARIANT 0 (split) and 4
# (balanced), graphs on and --enforce-eager.
#   bash .gpu/remote.sh bash bench/cuda/run-ab-graphs.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
make build-cuda > $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
CK=/tmp/llama-3.1-8b-random
[ -f $CK/config.json ] || ./tokamak model random --config llama-3.1-8b --dtype bf16 --out $CK > $OUT/random.log 2>&1
for mode in graph eager; do
  flag=""; [ $mode = eager ] && flag="--enforce-eager"
  for v in 0 4; do
    TOKAMAK_ATTN_VARIANT=$v timeout 120 ./tokamak bench throughput --model $CK --device cuda --input-len 1000 --output-len 500 --num-prompts 176 $flag --out $OUT/ab-$mode-v$v.json > $OUT/ab-$mode-v$v.log 2>&1
    echo "$mode variant $v rc=$?: $(grep -E '^steps' $OUT/ab-$mode-v$v.log | cut -c1-80)"
  done
done
