#!/usr/bin/env bash
# Quick device check after a kernel change: the CUDA tests, the 8B batch-1
# decode benchmark and the decode-attention benchmark (default kernel rows).
#   bash .gpu/remote.sh bash bench/cuda/run-verify.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export TOKAMAK_SHARED=$PWD/.gpu/shared
make build-cuda > $OUT/build.log 2>&1 || { grep -E "error" $OUT/build.log | head; exit 1; }
go test -tags cuda -count=1 -v -run 'TestSample|TestOpParity|TestGraph|TestModels|TestDecodeGraph' ./cuda/ > $OUT/test.log 2>&1; echo "tests rc=$?"
grep -E "^(--- |ok|FAIL)|^    --- FAIL|differ" $OUT/test.log | head -20
TOKAMAK_DECODE_BATCH=1 TOKAMAK_DECODE_CTX=512 go test -tags cuda -run '^$' -bench 'DecodeLlama8B' -benchtime 20x ./cuda/ > $OUT/decode-1-512.log 2>&1
grep -E "^DECODE " $OUT/decode-1-512.log | head -2
go test -tags cuda -count=1 -run '^$' -bench 'Ops/bench/attention-decode' -benchtime 20x ./cuda/ > $OUT/attn.log 2>&1
grep -E "^Benchmark" $OUT/attn.log | grep -v "/v[45]-" | awk '{printf "%-56s %10s %s %s\n", $1, $3, $5, $6}'
