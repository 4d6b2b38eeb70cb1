#!/usr/bin/env bash
# One device call for the attention kernels: build, CUDA parity (every op
# case against the CPU oracle), graph and model tests, the attention
# microbenchmarks (decode and prefill, fast kernels and the generic
# baseline) and the 8B decode benchmark; logs under $OUT, a table last.
#   bash .gpu/remote.sh bash bench/cuda/run-attn.sh
# (run from a clean checkout of the tree under test; TOKAMAK_SHARED points
# at the shared test data)
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export TOKAMAK_SHARED=${TOKAMAK_SHARED:-$PWD/.gpu/shared}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
date -u | tee -a "$OUT/gpu.txt"
nvcc --version | tail -1
if ! make kernels >"$OUT/build.log" 2>&1; then
  grep -E "error|Error" "$OUT/build.log" | head -60
  echo BUILD FAILED; exit 1
fi
echo "kernels built"
if ! go test -c -tags cuda -o /tmp/cuda.test ./cuda/ >>"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"; echo GO TEST BUILD FAILED; exit 1
fi
(cd cuda && timeout 70 /tmp/cuda.test -test.count=1 -test.v -test.run "${TESTS:-TestOpParity|TestGraph|TestModels}") >"$OUT/test.log" 2>&1
echo "tests rc=$?"
grep -E "^\s*--- FAIL|^(ok|FAIL|PASS)|panic|seed" "$OUT/test.log" | head -40
grep -E -A2 -- "--- (PASS|FAIL): TestOpParity/attention" "$OUT/test.log" | grep -E "attention|relative error|element" | paste - - - 2>/dev/null | sed 's/ \+/ /g' | head -40
(cd cuda && timeout 100 /tmp/cuda.test -test.run '^$' -test.bench "${BENCH:-Ops/bench/attention}" -test.benchtime 20x) >"$OUT/bench-attn.log" 2>&1
echo "bench rc=$?"
grep -E "FAIL|panic|error" "$OUT/bench-attn.log" | head -20
if [ -n "${DECODE:-1}" ]; then
  (cd cuda && timeout 60 /tmp/cuda.test -test.run '^$' -test.bench 'DecodeLlama8B' -test.benchtime 20x) >"$OUT/bench-decode.log" 2>&1
  echo "decode bench rc=$?"
  grep -E "DECODE|Benchmark|FAIL|panic" "$OUT/bench-decode.log" | head -20
fi
# other kernel variants (TOKAMAK_ATTN_VARIANT, see tk_set_attention_variant):
# parity and graph tests, the attention benchmarks and the 8B decode
for v in ${VARIANTS:-2}; do
  {
    echo "== variant $v"
    (cd cuda && TOKAMAK_ATTN_VARIANT=$v timeout 40 /tmp/cuda.test -test.count=1 -test.v -test.run 'TestOpParity/attention|TestGraph')
    echo "tests rc=$?"
    (cd cuda && TOKAMAK_ATTN_VARIANT=$v timeout 60 /tmp/cuda.test -test.run '^$' -test.bench 'Ops/bench/attention-(decode|prefill)' -test.benchtime 20x)
    echo "bench rc=$?"
    (cd cuda && TOKAMAK_ATTN_VARIANT=$v timeout 50 /tmp/cuda.test -test.run '^$' -test.bench 'DecodeLlama8B' -test.benchtime 20x)
    echo "decode bench rc=$?"
  } >>"$OUT/variants.log" 2>&1
done
grep -E "^== variant|rc=|--- FAIL|^(ok|FAIL|PASS)$|panic|DECODE llama|DECODE-PARTS" "$OUT/variants.log" | head -30
# table: case, µs, GB/s, TFLOP/s (variants prefixed vN/)
awk '/^== variant/ { pre = "v" $3 "/" }
/^BenchmarkOps\/bench\/attention/ {
  us = ""; gbs = ""; tf = "";
  for (i = 2; i <= NF; i++) {
    if ($i == "us/op") us = $(i-1);
    if ($i == "GB/s") gbs = $(i-1);
    if ($i == "TFLOP/s") tf = $(i-1);
  }
  name = $1; sub(/^BenchmarkOps\/bench\//, "", name); sub(/-[0-9]+$/, "", name);
  printf "%-44s %10s us %9s GB/s %8s TFLOP/s\n", pre name, us, gbs, tf
}' "$OUT/bench-attn.log" "$OUT/variants.log" | tee "$OUT/summary.txt"
