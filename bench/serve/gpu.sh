#!/usr/bin/env bash
# gpu.sh: one device call measuring `tokamak serve` under load with
# `tokamak bench serve`: build with CUDA, write a random-weight checkpoint of
# Llama-3.1-8B's shapes, serve it on the GPU, and sweep offered rates.
# Reports (JSON, SVG, server log, /metrics) go under $OUT.
#   bash .gpu/remote.sh bash bench/serve/gpu.sh
# Environment: RATES (default 2,8,24), PROMPTS (120), IN (512), OUT_LEN (128),
# KV_GIB (20), USD (hourly price of the GPU, default 2.99).
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
RATES=${RATES:-2,8,24}
PROMPTS=${PROMPTS:-120}
IN=${IN:-512}
OUT_LEN=${OUT_LEN:-128}
KV_GIB=${KV_GIB:-20}
USD=${USD:-2.99}
CK=/tmp/llama-3.1-8b-random
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
stamp "gpu: $gpu"
make build-cuda >"$OUT/build.log" 2>&1 || { grep -iE "error" "$OUT/build.log" | head -40; echo BUILD FAILED; exit 1; }
stamp "built"
./tokamak model random --config llama-3.1-8b --dtype bf16 --out $CK 2>&1 | tail -1
stamp "checkpoint written"
./tokamak serve --model $CK --device cuda --port 8000 --served-model-name llama-3.1-8b-random \
  --kv-cache-gib "$KV_GIB" --max-num-seqs 256 --max-num-batched-tokens 4096 >"$OUT/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  curl -fsS http://127.0.0.1:8000/health >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { echo "SERVER EXITED"; tail -30 "$OUT/serve.log"; exit 1; }
  sleep 0.5
done
curl -fsS http://127.0.0.1:8000/health >/dev/null || { echo "SERVER NOT READY"; tail -30 "$OUT/serve.log"; kill $pid; exit 1; }
stamp "server ready: $(grep -o 'msg=ready.*' "$OUT/serve.log")"
./tokamak bench serve --url http://127.0.0.1:8000/v1 --rate "$RATES" --num-prompts "$PROMPTS" \
  --workload random --input-len "$IN" --output-len "$OUT_LEN" --max-token-id 128000 \
  --slo-ttft-ms 500 --slo-tpot-ms 50 --gpu-hourly-usd "$USD" --device "$gpu" \
  --out "$OUT/bench-serve-llama8b.json" --svg "$OUT/bench-serve-llama8b.svg" 2>"$OUT/bench.stderr" | tee "$OUT/bench.txt"
stamp "bench done rc=${PIPESTATUS[0]}"
curl -fsS http://127.0.0.1:8000/metrics | grep -E "^tokamak_" | grep -vE "_bucket" >"$OUT/metrics.txt"
grep -E "gpu|kv_cache|prefix|tokens_total|requests_total" "$OUT/metrics.txt" | head -20
kill -TERM $pid
wait $pid
stamp "server exited rc=$?"
tail -3 "$OUT/serve.log"
