#!/usr/bin/env bash
# Per-op device times (tokamak bench throughput --profile-ops, eager) of
# decode steps at batch 176, contexts 1000-1150, under the split (0) and
# balanced (4) decode-attention kernels.
#   bash .gpu/remote.sh bash bench/cuda/run-prof-attention.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
make build-cuda > $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
CK=/tmp/llama-3.1-8b-random
[ -f $CK/config.json ] || ./tokamak model random --config llama-3.1-8b --dtype bf16 --out $CK > $OUT/random.log 2>&1
for v in 0 4; do
  TOKAMAK_ATTN_VARIANT=$v timeout 200 ./tokamak bench throughput --model $CK --device cuda --input-len 1000 --output-len 150 --num-prompts 176 --profile-ops --out $OUT/prof-v$v.json > $OUT/prof-v$v.log 2>&1
  echo "variant $v rc=$?"; grep -E "^throughput|^steps" $OUT/prof-v$v.log; sed -n '/op profile/,$p' $OUT/prof-v$v.log | head -30
done
