#!/usr/bin/env bash
# One device call: build the kernels, run the CUDA parity/graph/end-to-end
# tests and the kernel benchmarks; logs under $OUT, a short summary last.
#   bash .gpu/remote.sh bash bench/cuda/run1.sh
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export TOKAMAK_SHARED=${TOKAMAK_SHARED:-$PWD/.gpu/shared}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
cmake --version | head -1; nvcc --version | tail -1
if ! make kernels >"$OUT/build.log" 2>&1; then
  grep -E "error|Error" "$OUT/build.log" | head -60
  echo BUILD FAILED; exit 1
fi
echo "kernels built"
go test -tags cuda -count=1 -v -run "${TESTS:-TestOpParity|TestGraph|TestModels}" ./cuda/ >"$OUT/test.log" 2>&1
echo "tests rc=$?"
grep -E "^\s*(--- |ok|FAIL|panic)|relative error|error|seed" "$OUT/test.log" | head -120
if [ -n "${BENCH:-.}" ]; then
  go test -tags cuda -run '^$' -bench "${BENCH:-.}" -benchtime 20x ./cuda/ >"$OUT/bench.log" 2>&1
  echo "bench rc=$?"
  grep -E "Benchmark|DECODE|FAIL|panic|error" "$OUT/bench.log" | head -60
fi
