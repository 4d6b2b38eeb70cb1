#!/usr/bin/env bash
# One device call for the fused sampler: build, the sampler tests, then
# BenchmarkSampleFused at each cluster size in CLUSTERS (blocks per row;
# TOKAMAK_SAMPLE_CLUSTER); TEST_CLUSTERS reruns the parity test with each
# cluster size forced. Logs go to $OUT/sample-logs.tgz.
#   bash .gpu/remote.sh bash bench/cuda/run-sample.sh
set -u
. "$(dirname "$0")/lib.sh"
device_logs sample-logs
stamp "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
build_cuda
stamp built
go test -tags cuda -count=1 -v -run "${TESTS:-TestSample}" ./cuda/ >"$W/test.log" 2>&1
stamp "tests rc=$?"
grep -E "^(--- |ok|FAIL)|^    --- FAIL|panic|differ|sample_test|cuda_test" "$W/test.log" | head -40
# the parity test again with each cluster shape forced (TEST_CLUSTERS,
# e.g. "1 2 4 8 16"; "1w" is one 1024-thread block a row)
for c in ${TEST_CLUSTERS:-}; do
  if [ "$c" = 1w ]; then e="TOKAMAK_SAMPLE_CLUSTER=1 TOKAMAK_SAMPLE_C1_THREADS=1024"; else e="TOKAMAK_SAMPLE_CLUSTER=$c"; fi
  env $e go test -tags cuda -count=1 -v -run TestSampleMatchesCPU ./cuda/ >"$W/test-c$c.log" 2>&1
  stamp "parity, cluster $c: rc=$? $(grep -c ': 0 differ' "$W/test-c$c.log") of 4 vocabularies with 0 differing"
done
for c in ${CLUSTERS:-8}; do
  TOKAMAK_SAMPLE_CLUSTER=$c go test -tags cuda -count=1 -run '^$' -bench 'SampleFused' -benchtime 20x ./cuda/ >"$W/bench-c$c.log" 2>&1
  stamp "bench cluster $c rc=$?"
  grep -E "^SAMPLE|FAIL|panic" "$W/bench-c$c.log" | sed "s/^/c$c /"
done
