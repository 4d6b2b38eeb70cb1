#!/usr/bin/env bash
# One device call: parity tests, then Tokamak (graph benchmark and the
# engine's eager path) and Hugging Face transformers decoding the same
# random Llama-3.1-8B checkpoint, batch 1, 512-token context.
#   bash .gpu/remote.sh bash bench/cuda/run3.sh
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export TOKAMAK_SHARED=${TOKAMAK_SHARED:-$PWD/.gpu/shared}
CK=/tmp/llama-3.1-8b-random
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
make build-cuda >"$OUT/build.log" 2>&1 || { grep -iE " error|error:" "$OUT/build.log" | head -40; echo BUILD FAILED; exit 1; }
go test -tags cuda -count=1 -v -run 'TestOpParity|TestGraph|TestModels' ./cuda/ >"$OUT/test.log" 2>&1; echo "tests rc=$?"
grep -E "^(--- |ok|FAIL)|^    --- FAIL|panic|relative error [0-9.e-]+ >" "$OUT/test.log" | head -20
[ -f $CK/config.json ] || ./tokamak model random --config llama-3.1-8b --dtype bf16 --out $CK 2>&1 | tail -1
TOKAMAK_CHECKPOINT=$CK go test -tags cuda -run '^$' -bench 'CheckpointDecode|DecodeLlama8B' -benchtime 20x ./cuda/ >"$OUT/decode.log" 2>&1
grep -E "LOAD|ENGINE|DECODE|FAIL|panic|Error" "$OUT/decode.log" | grep -v "^Benchmark" | head -20
PYTHONUNBUFFERED=1 timeout 300 python3 bench/cuda/hf_decode.py $CK 512 64 2>&1 | grep -E "^HF|Error|error" | head -10
go test -tags cuda -run '^$' -bench 'Ops/bench/attention' -benchtime 20x ./cuda/ 2>&1 | grep -E "^Benchmark" | tee "$OUT/attn.log"
