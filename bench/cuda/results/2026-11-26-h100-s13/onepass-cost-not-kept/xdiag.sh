#!/usr/bin/env bash
set -u
. bench/cuda/lib.sh
device_logs xdiag
build_cuda
stamp built
go test -tags cuda -c -o /tmp/cuda.test ./cuda/ || exit 1
cd cuda
for x in 0 64 128 192; do
  TOKAMAK_X=$x TOKAMAK_SAMPLE_PHASES=1 TOKAMAK_SAMPLE_BATCHES=256 /tmp/cuda.test -test.run '^$' \
    -test.bench 'SampleFused/b256/topp0.9$' -test.benchtime 20x >"$W/bench-x$x.log" 2>&1
  stamp "x=$x rc=$?"
  grep -E "^SAMPLE" "$W/bench-x$x.log" | sed "s/^/x$x /" | grep -v "^x$x SAMPLE-BLOCKS" | head -4
  grep -E "^SAMPLE-BLOCKS" "$W/bench-x$x.log" | head -1 | sed "s/^/x$x /"
done
