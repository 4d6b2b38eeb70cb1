#!/usr/bin/env bash
# run.sh: check `tokamak serve` with the official OpenAI Node SDK.
#
#   server/sdkcheck/run.sh BINARY [MODEL_DIR] [MODEL_NAME]
#
# Starts BINARY serve on a free loopback port (MODEL_DIR, or the embedded
# tiny model when empty), waits for /health, installs the openai npm package
# (npm ci), runs check.mjs against it, then sends SIGTERM and requires a
# clean exit. Exits non-zero on any failure.
set -euo pipefail

bin=${1:?usage: run.sh BINARY [MODEL_DIR] [MODEL_NAME]}
model_dir=${2:-}
name=${3:-sdkcheck-model}
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

(cd "$here" && npm ci --no-audit --no-fund --silent)

log=$(mktemp)
args=(serve --host 127.0.0.1 --port 0 --device cpu --served-model-name "$name" --shutdown-grace 10s)
[[ -n "$model_dir" ]] && args+=(--model "$model_dir")
"$bin" "${args[@]}" 2>"$log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

addr=""
for _ in $(seq 1 600); do
  addr=$(sed -n 's/.*msg=listening addr=\([0-9.:]*\).*/\1/p' "$log" | head -n1)
  if [[ -n "$addr" ]] && curl -fsS "http://$addr/health" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "run.sh: tokamak serve exited early:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$addr" ]] || ! curl -fsS "http://$addr/health" >/dev/null; then
  echo "run.sh: server did not become ready:" >&2
  cat "$log" >&2
  exit 1
fi

status=0
node "$here/check.mjs" "http://$addr/v1" "$name" || status=$?

kill -TERM "$pid"
if ! wait "$pid"; then
  echo "run.sh: tokamak serve did not exit 0 after SIGTERM:" >&2
  cat "$log" >&2
  status=1
fi
trap - EXIT
rm -f "$log"
exit "$status"
