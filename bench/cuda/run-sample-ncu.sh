#!/usr/bin/env bash
# One device call profiling the fused sampler with Nsight Compute: build,
# BenchmarkSampleFused at the batches in BATCHES (timings and phase
# clocks), then ncu on one launch of each mode in MODES at batch NCU_BATCH
# (speed of light, instruction and warp-state sections), and
# with SOURCE="mode ..." the per-instruction counts of those modes. Logs go to
# $OUT/sample-ncu.tgz.
#   MODES="greedy greedy-logprobs5" bash .gpu/remote.sh bash bench/cuda/run-sample-ncu.sh
set -u
. "$(dirname "$0")/lib.sh"
device_logs sample-ncu
build_cuda
go test -tags cuda -c -o /tmp/cuda.test ./cuda/ || exit 1
cd cuda
TOKAMAK_SAMPLE_BATCHES=${BATCHES:-1,64,256} /tmp/cuda.test -test.run '^$' -test.bench SampleFused -test.benchtime 20x >"$W/bench.log" 2>&1
grep -E "^SAMPLE" "$W/bench.log"
for m in ${MODES:-greedy greedy-logprobs5}; do
  TOKAMAK_SAMPLE_BATCHES=${NCU_BATCH:-256} /usr/local/cuda/bin/ncu -k regex:sample_kernel -s 5 -c 1 \
    --section SpeedOfLight --section InstructionStats --section WarpStateStats --section SchedulerStats \
    --section LaunchStats --section Occupancy \
    /tmp/cuda.test -test.run '^$' -test.bench "SampleFused/b${NCU_BATCH:-256}/$m\$" -test.benchtime 3x >"$W/ncu-$m.txt" 2>&1
  echo "== $m"; grep -E "Duration|Executed Ipc A|Issue Slots Busy|Executed Instructions  |Memory Throughput|DRAM Throughput|Registers Per|Stall|Warp Cycles Per Issued|No Eligible|Achieved Occupancy" "$W/ncu-$m.txt" | head -20
done
# SOURCE="mode ...": per-instruction counts and stall samples (SASS) of
# one launch of each mode
for src in ${SOURCE:-}; do
  TOKAMAK_SAMPLE_BATCHES=${NCU_BATCH:-256} /usr/local/cuda/bin/ncu -k regex:sample_kernel -s 5 -c 1 \
    --section SourceCounters --section WarpStateStats -o /tmp/src -f \
    /tmp/cuda.test -test.run '^$' -test.bench "SampleFused/b${NCU_BATCH:-256}/$src\$" -test.benchtime 3x >"$W/ncu-src-$src.log" 2>&1
  /usr/local/cuda/bin/ncu -i /tmp/src.ncu-rep --page source --csv --print-source sass >"$W/src-$src.csv" 2>&1
  echo "source profile $src: $(wc -l <"$W/src-$src.csv") lines"
done
