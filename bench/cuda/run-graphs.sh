#!/usr/bin/env bash
# One device call: the engine's decode steps as CUDA graphs (issue 4).
# Builds, runs the graph tests (graph == op-by-op bit for bit, no
# recapture after warm-up) with the op parity and end-to-end tests, the
# ms/step benchmark (batch 1 and 64; graph, padded op by op, Model.Forward)
# and `tokamak bench throughput` with and without graphs; logs under $OUT,
# a short summary printed.
#   bash .gpu/remote.sh bash bench/cuda/run-graphs.sh
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export TOKAMAK_SHARED=${TOKAMAK_SHARED:-$PWD/.gpu/shared}
CK=/tmp/llama-3.2-1b-random
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
make build-cuda >"$OUT/build.log" 2>&1 || { grep -iE " error|error:" "$OUT/build.log" | head -40; echo BUILD FAILED; exit 1; }
echo "== tests"
go test -tags cuda -count=1 -v -run 'TestDecodeGraphMatchesEager|TestGraph|TestOpParity|TestModels' ./cuda/ >"$OUT/test.log" 2>&1
echo "tests rc=$?"
grep -E "^(--- |ok|FAIL)|^    --- FAIL|panic|GRAPHS|_test.go:[0-9]+:" "$OUT/test.log" | head -40
echo "== ms/step (random llama-3.2-1b, 512-token context)"
go test -tags cuda -count=1 -run '^$' -bench 'DecodeGraphs' -benchtime 50x ./cuda/ >"$OUT/bench.log" 2>&1
echo "bench rc=$?"
grep -E "GRAPH-BENCH|FAIL|panic|Error" "$OUT/bench.log" | head -20
echo "== tokamak bench throughput (64 requests, 128 in, 128 out)"
[ -f $CK/config.json ] || ./tokamak model random --config llama-3.2-1b --dtype bf16 --out $CK >"$OUT/random.log" 2>&1 || { tail -3 "$OUT/random.log"; exit 1; }
for mode in graphs eager; do
  flag=""; [ $mode = eager ] && flag="--enforce-eager"
  ./tokamak bench throughput --device cuda --model $CK --num-prompts 64 --input-len 128 --output-len 128 --max-num-seqs 64 $flag >"$OUT/throughput-$mode.log" 2>&1
  echo "$mode rc=$?"
  grep -E "warm-up|throughput|steps:|rror|panic" "$OUT/throughput-$mode.log" | head -5
done
