#!/usr/bin/env bash
# One device call comparing the fused sampler's block shapes at large
# batches, with each block's SM and times recorded (TOKAMAK_SAMPLE_PHASES,
# SAMPLE-BLOCKS lines): parity under PARITY's settings when given, then
# BenchmarkSampleFused under each shape in SHAPES (name:VAR=value,...).
# TOKAMAK_SAMPLE_BATCHES narrows the batches (default 132,256); FIELD=13
# tabulates the queued times instead of the launched ones.
# Every run here, parity included, has the block times on; a BASE_TAR
# tree from before 1c3b61b has none (its column runs without them).
# Logs: $OUT/sample-shapes.tgz.
#   bash .gpu/remote.sh bash bench/cuda/run-sample-shapes.sh
# (BASE_TAR=base.tar: also a base tree's benchmark; carry base.tar)
set -u
. "$(dirname "$0")/lib.sh"
device_logs sample-shapes
export TOKAMAK_SAMPLE_BATCHES=${TOKAMAK_SAMPLE_BATCHES:-132,256}
export TOKAMAK_SAMPLE_PHASES=1
stamp "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
build_cuda
stamp built
# PARITY: extra variables (VAR=value,...) and cluster shapes for
# TestSampleMatchesCPU, e.g. "TOKAMAK_SAMPLE_TOPP_FAST=all:1 8"; NONE skips it
PARITY=${PARITY:-NONE}
if [ "$PARITY" != NONE ]; then
  case "$PARITY" in
  *:*) ;;
  *) echo "PARITY wants VARS:SHAPES, got '$PARITY'"; exit 1 ;;
  esac
  # shellcheck disable=SC2046,SC2086 # the variables, split at commas; the shapes
  env $(echo "${PARITY%%:*}" | tr ',' ' ') W="$W" t0="$t0" \
    bash -c '. bench/cuda/lib.sh; sample_parity "$@"' _ ${PARITY#*:}
fi
SHAPES=${SHAPES:-"auto: c2:TOKAMAK_SAMPLE_CLUSTER=2 c4:TOKAMAK_SAMPLE_CLUSTER=4 c1w:TOKAMAK_SAMPLE_CLUSTER=1,TOKAMAK_SAMPLE_C1_THREADS=1024 auto2:"}
for shape in $SHAPES; do
  name=${shape%%:*}
  vars=${shape#*:}
  # shellcheck disable=SC2046 # the shape's variables, split at commas
  (if [ -n "$vars" ]; then export $(echo "$vars" | tr ',' ' '); fi; sample_bench "$name")
done
# BASE_TAR (a `git archive` of another tree): its benchmark as column "base"
if [ -n "${BASE_TAR:-}" ]; then
  sample_bench_base "$BASE_TAR"
  SHAPES="$SHAPES base:"
fi
# shellcheck disable=SC2046 # the shapes' names, one a word
sample_columns $(for shape in $SHAPES; do echo "${shape%%:*}"; done)
sample_table "${FIELD:-7}"
grep -h 'SAMPLE-BLOCKS' "$W/bench-${SHAPES%%:*}.log" | grep 'batch 256' | cut -c1-250
