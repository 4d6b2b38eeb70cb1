#!/usr/bin/env bash
# A/B of the attention decode kernels inside the engine: 1000/1000
# offline throughput on a random Llama-3.1-8B checkpoint under
# TOKAMAK_ATTN_VARIANT 0 (split kernel), 4 and 5 (balanced kernel).
#   bash .gpu/remote.sh bash bench/cuda/run-ab-attention.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
make build-cuda > $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
CK=/tmp/llama-3.1-8b-random
[ -f $CK/config.json ] || ./tokamak model random --config llama-3.1-8b --dtype bf16 --out $CK > $OUT/random.log 2>&1
for v in ${VARIANTS:-0 4 5}; do
  TOKAMAK_ATTN_VARIANT=$v timeout 150 ./tokamak bench throughput --model $CK --device cuda --input-len 1000 --output-len 1000 --num-prompts 512 --out $OUT/tp-v$v.json > $OUT/tp-v$v.log 2>&1
  echo "variant $v rc=$?"; grep -E "^throughput|^steps" $OUT/tp-v$v.log
done
