#!/usr/bin/env bash
# One device call: the CLI with CUDA (tokamak info over NVML), a random
# Llama-3.1-8B checkpoint, Tokamak's load time and decode speed on it, the
# graph decode benchmark, and Hugging Face transformers on the same files.
#   bash .gpu/remote.sh bash bench/cuda/run2.sh
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export TOKAMAK_SHARED=${TOKAMAK_SHARED:-$PWD/.gpu/shared}
CK=/tmp/llama-3.1-8b-random
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
make build-cuda >"$OUT/build.log" 2>&1 || { grep -iE "error" "$OUT/build.log" | head -40; echo BUILD FAILED; exit 1; }
go test -tags cuda -count=1 -v -run 'TestOpParity|TestGraph|TestModels' ./cuda/ >"$OUT/test.log" 2>&1; echo "tests rc=$?"
grep -E "^(--- |ok|FAIL)|^    --- FAIL|panic" "$OUT/test.log" | head -20
./tokamak model random --config llama-3.1-8b --dtype bf16 --out $CK 2>&1 | tail -2
./tokamak info --model $CK 2>&1 | tail -12
TOKAMAK_CHECKPOINT=$CK go test -tags cuda -run '^$' -bench 'CheckpointDecode|DecodeLlama8B' -benchtime 20x ./cuda/ >"$OUT/decode.log" 2>&1
grep -E "LOAD|ENGINE|DECODE|FAIL|panic|Error" "$OUT/decode.log" | grep -v "^Benchmark" | head -20
PYTHONUNBUFFERED=1 timeout 300 python3 bench/cuda/hf_decode.py $CK 512 64 2>&1 | grep -E "^HF|Error|error" | head -10
if [ -f bench/tokenizer/compare.sh ]; then
  [ -f .gpu/tokenizers.tar.xz ] && tar -C "$TOKAMAK_SHARED/testdata" -xJf .gpu/tokenizers.tar.xz
  timeout 120 bash bench/tokenizer/compare.sh >"$OUT/tok.log" 2>&1; echo "tokenizer compare rc=$?"; tail -25 "$OUT/tok.log"
fi
