#!/usr/bin/env bash
# One device call measuring the integrated engine (fused sampler, CUDA
# graphs, new attention): CUDA tests, graph and decode benchmarks, a random
# Llama-3.1-8B checkpoint, offline throughput at the three ISL/OSL pairs of
# issue 5, and a short `tokamak serve` load test. Logs are packed into
# $OUT/final-logs.tgz; a summary is printed.
#   bash .gpu/remote.sh bash bench/cuda/run-final.sh
# Environment: THROUGHPUT (ISL/OSL/N list), SERVE (0 skips the serve test),
# DECODE_BENCH (0 skips the kernel-level decode benchmarks), TESTS (a -run
# pattern; NONE skips the tests), THROUGHPUT_TIMEOUT (seconds a throughput
# run may take, 200 by default).
set -u
. "$(dirname "$0")/lib.sh"
device_logs final-logs
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
stamp "gpu: $gpu"
build_cuda
stamp built
cuda_tests "TestSample|TestOpParity|TestGraph|TestModels|TestDecodeGraph" GRAPHS
if [ "${DECODE_BENCH:-1}" != 0 ]; then
  go test -tags cuda -count=1 -run '^$' -bench 'DecodeGraphs' -benchtime 50x ./cuda/ >"$W/graphs-bench.log" 2>&1
  stamp "graph bench rc=$?"; grep -E "GRAPH-BENCH|FAIL|panic" "$W/graphs-bench.log" | head -12
  TOKAMAK_DECODE_BATCH=1 TOKAMAK_DECODE_CTX=512 go test -tags cuda -run '^$' -bench 'DecodeLlama8B' -benchtime 20x ./cuda/ >"$W/decode-1-512.log" 2>&1
  stamp "decode bench rc=$?"; grep -E "^DECODE|FAIL|panic" "$W/decode-1-512.log" | grep -v GEMV | head -6
fi
if [ "${ATTN_BENCH:-0}" != 0 ]; then
  # attention kernels: the default, then TOKAMAK_ATTN_VARIANT=3 (the first
  # tensor-core prefill kernel) on the prefill cases
  go test -tags cuda -count=1 -run '^$' -bench 'Ops/bench/attention-(decode|prefill)' -benchtime 20x ./cuda/ >"$W/attn-bench.log" 2>&1
  stamp "attention bench rc=$?"
  TOKAMAK_ATTN_VARIANT=${ATTN_VARIANT2:-3} go test -tags cuda -count=1 -run '^$' -bench "${ATTN_BENCH2:-Ops/bench/attention-prefill}" -benchtime 20x ./cuda/ >"$W/attn-bench-v2.log" 2>&1
  stamp "attention bench (variant ${ATTN_VARIANT2:-3}) rc=$?"
  for f in attn-bench attn-bench-v2; do grep -E "^Benchmark" "$W/$f.log" | awk -v f=$f '{printf "%s %-52s %10s %s %s %s %s\n", f, $1, $3, $5, $6, $7, $8}'; done
fi
# decode steps at serving batch sizes (graph, parts): TOKAMAK_DECODE_BATCH x ctx
for bc in ${DECODE_BATCHES:-}; do
  IFS=x read bb cc <<<"$bc"
  TOKAMAK_DECODE_BATCH=$bb TOKAMAK_DECODE_CTX=$cc go test -tags cuda -run '^$' -bench 'DecodeLlama8B' -benchtime 5x ./cuda/ >"$W/decode-$bb-$cc.log" 2>&1
  stamp "decode bench $bc rc=$?"; grep -E "^DECODE(-PARTS| )" "$W/decode-$bb-$cc.log" | head -2
done
CK=/tmp/llama-3.1-8b-random
[ -f $CK/config.json ] || ./tokamak model random --config llama-3.1-8b --dtype bf16 --out $CK >"$W/random.log" 2>&1
stamp "checkpoint ready"
# ISL/OSL/N[/extra,flags] ("," stands for a space in the extra flags)
for c in ${THROUGHPUT:-128/128/1000 1000/1000/256 2048/128/400}; do
  IFS=/ read isl osl n extra <<<"$c"
  tag=$isl-$osl-$n${extra:+-$(echo "$extra" | tr -c 'a-zA-Z0-9.\n' '_')}
  timeout "${THROUGHPUT_TIMEOUT:-200}" ./tokamak bench throughput --model $CK --device cuda --input-len $isl --output-len $osl \
    --num-prompts $n ${extra//,/ } --out "$W/throughput-$tag.json" >"$W/throughput-$tag.log" 2>&1
  stamp "throughput $c rc=$?"; grep -E "kv cache|warm-up|^throughput|^steps|^op profile|rror" "$W/throughput-$tag.log" | head -6
done
if [ "${HF:-0}" != 0 ]; then
  PYTHONUNBUFFERED=1 timeout 240 python3 bench/cuda/hf_decode.py $CK 512 64 >"$W/hf-decode.log" 2>&1
  stamp "transformers rc=$?"; grep -E "^HF|Error" "$W/hf-decode.log" | head -6
fi
if [ "${SERVE:-1}" != 0 ]; then
  ./tokamak serve --model $CK --device cuda --port 8000 --served-model-name llama-3.1-8b-random >"$W/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 400); do
    curl -fsS http://127.0.0.1:8000/health >/dev/null 2>&1 && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.5
  done
  stamp "server: $(grep -oE 'warm-up.*|kv cache.*|msg=ready.*' "$W/serve.log" | tr '\n' ' ')"
  timeout 150 ./tokamak bench serve --url http://127.0.0.1:8000/v1 --rate "${RATES:-4,16}" --num-prompts "${PROMPTS:-64}" \
    --workload random --input-len 512 --output-len 128 --max-token-id 128000 \
    --slo-ttft-ms 500 --slo-tpot-ms 50 --gpu-hourly-usd 2.99 --device "$gpu" \
    --out "$W/bench-serve.json" >"$W/bench-serve.txt" 2>"$W/bench-serve.stderr"
  stamp "serve bench rc=$?"; tail -12 "$W/bench-serve.txt"
  curl -fsS http://127.0.0.1:8000/metrics 2>/dev/null | grep -E "^tokamak_" | grep -v _bucket >"$W/metrics.txt"
  kill -TERM $pid; wait $pid
  stamp "server exited rc=$?"
fi
