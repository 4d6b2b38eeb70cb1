#!/usr/bin/env bash
# One device call: decode-step breakdown by op family at a large batch and
# offline throughput with the step split, to see where a step's time goes.
#   bash .gpu/remote.sh bash bench/cuda/run-diag.sh
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export TOKAMAK_SHARED=${TOKAMAK_SHARED:-$PWD/.gpu/shared}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
make build-cuda >"$OUT/build.log" 2>&1 || { grep -E "error|Error" "$OUT/build.log" | head -40; echo BUILD FAILED; exit 1; }
for bc in ${DECODE_CASES:-256/256}; do
  IFS=/ read batch ctx <<<"$bc"
  TOKAMAK_DECODE_BATCH=$batch TOKAMAK_DECODE_CTX=$ctx go test -tags cuda -run '^$' -bench 'DecodeLlama8B' -benchtime 10x ./cuda/ >"$OUT/decode-$batch-$ctx.log" 2>&1
  grep -E "^DECODE|FAIL|panic" "$OUT/decode-$batch-$ctx.log" | grep -v GEMV
done
CK=/tmp/llama-3.1-8b-random
t0=$(date +%s)
[ -f $CK/config.json ] || ./tokamak model random --config llama-3.1-8b --dtype bf16 --out $CK >"$OUT/random.log" 2>&1
echo "checkpoint ready in $(( $(date +%s) - t0 )) s"
for c in ${CK_THROUGHPUT:-128/128/1000/256/8192}; do  # ISL/OSL/N/max-seqs/max-batched-tokens
  IFS=/ read isl osl n seqs btok <<<"$c"
  timeout 240 ./tokamak bench throughput --model $CK --device cuda --input-len $isl --output-len $osl \
    --num-prompts $n --kv-cache-gib 40 --max-num-seqs $seqs --max-num-batched-tokens $btok \
    --out "$OUT/throughput-$isl-$osl-$n-$seqs-$btok.json" >"$OUT/throughput-$isl-$osl-$n-$seqs-$btok.log" 2>&1
  echo "throughput $c rc=$?"; tail -3 "$OUT/throughput-$isl-$osl-$n-$seqs-$btok.log"
done
