#!/usr/bin/env bash
# One device call (session 15, the one-read top-p; any tree): build, the sampler
# tests (parity included), BenchmarkSampleFused at TOKAMAK_SAMPLE_BATCHES
# (default 256) of this tree, and with BASE_TAR of a base tree and of this
# tree again, then the top-p case at 256 rows with phase clocks and block
# times (TOKAMAK_SAMPLE_PHASES=1). TP_SHAPES="512 1024" (session 17) also
# runs TestSampleMatchesCPU at cluster 1 with each top-p kernel shape
# forced (TOKAMAK_SAMPLE_TP_THREADS), and prints the sampler kernels'
# registers, memory and stack stores (sample_resources); ONE_NEW=1 skips the second run of this tree
# after the base's. Logs: $OUT/oneread.tgz.
#   BASE_TAR=base.tar bash .gpu/remote.sh bash bench/cuda/run-oneread.sh
set -u
. "$(dirname "$0")/lib.sh"
device_logs oneread
export TOKAMAK_SAMPLE_BATCHES=${TOKAMAK_SAMPLE_BATCHES:-256}
stamp "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
build_cuda
stamp built
[ -n "${TP_SHAPES:-}" ] && sample_resources new build/libtokamak_kernels.so
cuda_tests TestSample "drew|seed"
parity_runs tp TOKAMAK_SAMPLE_TP_THREADS "${TP_SHAPES:-}" \
  env TOKAMAK_SAMPLE_CLUSTER=1 go test -tags cuda -count=1 -v -run TestSampleMatchesCPU ./cuda/
sample_bench new1
if [ -n "${BASE_TAR:-}" ]; then
  sample_bench_base "$BASE_TAR"
  if [ -n "${ONE_NEW:-}" ]; then  # no second run of this tree (a shorter call)
    sample_columns new1 base
  else
    sample_bench new2
    sample_columns new1 base new2
  fi
else
  sample_columns new1
fi
grep -E '^SAMPLE-TOPP' "$W/bench-new1.log" | head
sample_table 13
# phase clocks and block times of the top-p case
TOKAMAK_SAMPLE_PHASES=1 go test -tags cuda -count=1 -run '^$' -bench 'SampleFused/b256/topp0.9$' -benchtime 20x ./cuda/ >"$W/bench-phases.log" 2>&1
grep -E '^SAMPLE-(PHASES|BLOCKS)' "$W/bench-phases.log" | head -4
