#!/usr/bin/env bash
# session 13 diagnostic: one-read top-p's block spans, the same tree with
# two reads forced, and a shared-memory race check at a small vocabulary
set -u
. bench/cuda/lib.sh
device_logs diag
build_cuda
stamp built
go test -tags cuda -c -o /tmp/cuda.test ./cuda/ || exit 1
cd cuda
for mode in one two; do
  f=""; [ $mode = two ] && f=two
  TOKAMAK_SAMPLE_TOPP_FAST=$f TOKAMAK_SAMPLE_PHASES=1 TOKAMAK_SAMPLE_BATCHES=256 /tmp/cuda.test -test.run '^$' \
    -test.bench 'SampleFused/b256/topp0.9$' -test.benchtime 20x >"$W/bench-$mode.log" 2>&1
  stamp "bench $mode rc=$?"
  grep -E "^SAMPLE" "$W/bench-$mode.log" | sed "s/^/$mode /"
done
timeout 240 /usr/local/cuda/bin/compute-sanitizer --tool racecheck --racecheck-report hazard --print-limit 10 \
  /tmp/cuda.test -test.run 'TestSampleMatchesCPU/vocab1001$' -test.v >"$W/racecheck.log" 2>&1
stamp "racecheck rc=$?"
grep -E "ERROR|Error|hazard|RACECHECK SUMMARY|differ|FAIL|PASS" "$W/racecheck.log" | head -30
