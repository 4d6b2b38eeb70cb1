#!/usr/bin/env bash
set -u
. bench/cuda/lib.sh
device_logs xdiag2
build_cuda
stamp built
go test -tags cuda -c -o /tmp/cuda.test ./cuda/ || exit 1
cd cuda
for x in 0 64 two; do
  f=""; xx=$x; [ $x = two ] && f=two && xx=0
  TOKAMAK_SAMPLE_TOPP_FAST=$f TOKAMAK_X=$xx TOKAMAK_SAMPLE_PHASES=1 TOKAMAK_SAMPLE_BATCHES=256 /tmp/cuda.test -test.run '^$' \
    -test.bench 'SampleFused/b256/topp0.9$' -test.benchtime 20x >"$W/bench-x$x.log" 2>&1
  stamp "x=$x rc=$?"
  grep -E "^SAMPLE" "$W/bench-x$x.log" | sed "s/^/x$x /" | grep -v "SAMPLE-BLOCKS" | head -3
  grep -E "^SAMPLE-BLOCKS" "$W/bench-x$x.log" | head -1 | sed "s/^/x$x /"
done
TOKAMAK_SAMPLE_CLUSTER=1 /tmp/cuda.test -test.run 'TestSampleMatchesCPU' -test.v >"$W/parity.log" 2>&1
stamp "parity rc=$?"
grep -E "differ|token .*cpu" "$W/parity.log" | head
