#!/usr/bin/env bash
# One device call (session 15, the one-read top-p; any tree): build, the sampler
# tests (parity included), BenchmarkSampleFused at TOKAMAK_SAMPLE_BATCHES
# (default 256) of this tree, and with BASE_TAR of a base tree and of this
# tree again, then the top-p case at 256 rows with phase clocks and block
# times (TOKAMAK_SAMPLE_PHASES=1). Logs: $OUT/oneread.tgz.
#   BASE_TAR=base.tar bash .gpu/remote.sh bash bench/cuda/run-oneread.sh
set -u
. "$(dirname "$0")/lib.sh"
device_logs oneread
export TOKAMAK_SAMPLE_BATCHES=${TOKAMAK_SAMPLE_BATCHES:-256}
stamp "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
build_cuda
stamp built
cuda_tests TestSample "drew|seed"
sample_bench new1
if [ -n "${BASE_TAR:-}" ]; then
  sample_bench_base "$BASE_TAR"
  sample_bench new2
  sample_columns new1 base new2
else
  sample_columns new1
fi
grep -E '^SAMPLE-TOPP' "$W/bench-new1.log" | head
sample_table 13
# phase clocks and block times of the top-p case
TOKAMAK_SAMPLE_PHASES=1 go test -tags cuda -count=1 -run '^$' -bench 'SampleFused/b256/topp0.9$' -benchtime 20x ./cuda/ >"$W/bench-phases.log" 2>&1
grep -E '^SAMPLE-(PHASES|BLOCKS)' "$W/bench-phases.log" | head -4
