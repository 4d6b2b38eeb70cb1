#!/usr/bin/env bash
# One device call: bench/cuda/gemm_sweep.cu over the Llama-3.1-8B decode
# GEMMs at serving batch sizes (BATCHES), W cold. Log under $OUT.
#   bash .gpu/remote.sh bash bench/cuda/run-gemm-sweep.sh
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvcc -O2 -std=c++17 -o /tmp/gemm_sweep bench/cuda/gemm_sweep.cu -lcublasLt || { echo BUILD FAILED; exit 1; }
shapes=""
for m in ${BATCHES:-208 176}; do
  shapes="$shapes $m:6144:4096 $m:4096:4096 $m:28672:4096 $m:4096:14336 $m:128256:4096:f32"
done
/tmp/gemm_sweep $shapes 2>&1 | tee "$OUT/gemm-sweep.log" | grep -v "^  "
