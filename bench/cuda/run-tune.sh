#!/usr/bin/env bash
# One device call comparing tunings of the decode step: GEMV variants at
# batch 1 (TOKAMAK_GEMV_VARIANT 0-2 inside the benchmark) and the attention
# split cap (TOKAMAK_ATTN_MAX_SPLITS) at serving batch sizes; CUDA tests
# first. Logs under $OUT/tune-logs.tgz.
#   bash .gpu/remote.sh bash bench/cuda/run-tune.sh
set -u
. "$(dirname "$0")/lib.sh"
device_logs tune-logs
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
build_cuda
go test -tags cuda -count=1 -run "${TESTS:-TestOpParity|TestModels|TestDecodeGraph|TestGraph}" ./cuda/ >"$W/test.log" 2>&1
echo "tests rc=$?"; grep -E "^(--- FAIL|    --- FAIL|ok|FAIL)|panic" "$W/test.log" | head -20
go test -tags cuda -c -o /tmp/cuda.test ./cuda/ || exit 1
cd cuda
TOKAMAK_DECODE_BATCH=1 TOKAMAK_DECODE_CTX=512 /tmp/cuda.test -test.run '^$' -test.bench DecodeLlama8B -test.benchtime 1x >"$W/decode-1-512.log" 2>&1
grep -E "^DECODE" "$W/decode-1-512.log"
for bc in ${BATCHES:-176x1500}; do
  IFS=x read bb cc <<<"$bc"
  for sp in ${SPLITS:-1 2 3}; do
    TOKAMAK_ATTN_MAX_SPLITS=$sp TOKAMAK_DECODE_BATCH=$bb TOKAMAK_DECODE_CTX=$cc /tmp/cuda.test -test.run '^$' -test.bench DecodeLlama8B -test.benchtime 1x >"$W/decode-$bb-$cc-s$sp.log" 2>&1
    echo "batch $bb ctx $cc splits<=$sp: $(grep -E '^DECODE-PARTS' "$W/decode-$bb-$cc-s$sp.log" | head -1)"
    grep -E "^DECODE llama" "$W/decode-$bb-$cc-s$sp.log" | head -1
  done
done
