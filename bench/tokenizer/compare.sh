#!/usr/bin/env bash
# Compares Tokamak's tokenizer with Hugging Face tokenizers, single-threaded,
# on the same generated English-and-code corpus, and checks they give the
# same ids. Needs Python with `tokenizers`; runs the Go side with `go run`
# when Go is installed, else with the binary in $TOKBENCH_BIN (build it with
# `go build -o tokbench ./bench/tokenizer`).
#
#   bash bench/tokenizer/compare.sh [MODEL_DIR...]   (default: the shared test tokenizers)
set -euo pipefail
cd "$(dirname "$0")/../.."
shared="${TOKAMAK_SHARED:-../shared}"
if [ "$#" -eq 0 ]; then
  set -- "$shared/testdata/tokenizers/llama3" "$shared/testdata/tokenizers/qwen3" "$shared/testdata/tokenizers/llama2"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
size="${TOKBENCH_SIZE:-4194304}"
if command -v go >/dev/null 2>&1; then
  go run ./bench/tokenizer -out "$out" -size "$size" "$@"
elif [ -n "${TOKBENCH_BIN:-}" ]; then
  "$TOKBENCH_BIN" -out "$out" -size "$size" "$@"
else
  echo "compare.sh: no go on PATH and TOKBENCH_BIN unset" >&2
  exit 1
fi
python3 bench/tokenizer/compare.py "$out" "$@"
