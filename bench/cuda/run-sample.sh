#!/usr/bin/env bash
# One device call: build, the fused sampler's GPU-vs-CPU tests (plus op
# parity, graphs and the shared models end to end), the sampler benchmark
# and, when CK_THROUGHPUT is set, offline throughput on a random 8B
# checkpoint through the CLI (the engine then samples on the device).
#   bash .gpu/remote.sh bash bench/cuda/run-sample.sh
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export TOKAMAK_SHARED=${TOKAMAK_SHARED:-$PWD/.gpu/shared}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if ! make build-cuda >"$OUT/build.log" 2>&1; then
  grep -E "error|Error" "$OUT/build.log" | head -60
  echo BUILD FAILED; exit 1
fi
go test -tags cuda -count=1 -v -run "${TESTS:-TestSample|TestOpParity|TestGraph|TestModels}" ./cuda/ >"$OUT/test.log" 2>&1
echo "tests rc=$?"
grep -E "^(--- |ok|FAIL)|^    --- FAIL|panic|differ|sample_cuda_test" "$OUT/test.log" | head -60
go test -tags cuda -run '^$' -bench SampleFused -benchtime 20x ./cuda/ >"$OUT/sample-bench.log" 2>&1
echo "sample bench rc=$?"; grep -E "^SAMPLE|FAIL|panic" "$OUT/sample-bench.log" | head -20
if [ -n "${CK_THROUGHPUT:-}" ]; then
  CK=/tmp/llama-3.1-8b-random
  t0=$(date +%s)
  [ -f $CK/config.json ] || ./tokamak model random --config llama-3.1-8b --dtype bf16 --out $CK >"$OUT/random.log" 2>&1
  echo "checkpoint ready in $(( $(date +%s) - t0 )) s"
  for c in $CK_THROUGHPUT; do  # ISL/OSL/N
    IFS=/ read isl osl n <<<"$c"
    timeout 240 ./tokamak bench throughput --model $CK --device cuda --input-len $isl --output-len $osl \
      --num-prompts $n --kv-cache-gib 40 --out "$OUT/throughput-$isl-$osl.json" >"$OUT/throughput-$isl-$osl.log" 2>&1
    echo "throughput $c rc=$?"; tail -8 "$OUT/throughput-$isl-$osl.log"
  done
fi
