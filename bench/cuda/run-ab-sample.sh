#!/usr/bin/env bash
# One device call comparing the fused sampler with a base tree: this
# tree's sampler tests and parity with each cluster shape in TEST_CLUSTERS
# forced, then BenchmarkSampleFused (automatic cluster shapes) of this
# tree, of the base tree (BASE_TAR, a `git archive` of it, default
# base.tar) and of this tree again, so drift shows. TOKAMAK_SAMPLE_BATCHES
# narrows the batches (default 1,64,256). Logs: $OUT/ab-sample.tgz.
#   git archive -o base.tar REV
#   TEST_CLUSTERS="1 8" bash .gpu/remote.sh bash bench/cuda/run-ab-sample.sh
#   (device call with carry [".gpu", "base.tar"])
set -u
. "$(dirname "$0")/lib.sh"
device_logs ab-sample
export TOKAMAK_SAMPLE_BATCHES=${TOKAMAK_SAMPLE_BATCHES:-1,64,256}
here=$PWD
stamp "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
build_cuda
stamp built
cuda_tests TestSample
# shellcheck disable=SC2086 # a list of cluster shapes
sample_parity ${TEST_CLUSTERS:-}
sample_bench new1
base=/tmp/ab-base
rm -rf "$base" && mkdir -p "$base" && tar -xf "${BASE_TAR:-base.tar}" -C "$base" && ln -s "$here/.gpu" "$base/.gpu"
(cd "$base" && W=$W build_cuda && stamp "base built" && sample_bench base)
sample_bench new2
# tables: parameters, batch, kernel µs of new1 / base / new2, launched
# and queued
for f in new1 base new2; do
  grep -E '^SAMPLE ' "$W/bench-$f.log" | sed "s/^/$f /"
done >"$W/all.txt"
# (the queued time is field 13; trees from before session 12 print none)
for f in 7 13; do
  awk -v f=$f '{ k = sprintf("%-20s b%-4s", $3, $5); if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    v[k, $1] = $f }
  END { printf "%-26s %8s %8s %8s\n", f == 7 ? "kernel us" : "queued us", "new1", "base", "new2"
    for (i = 1; i <= n; i++) { k = order[i]; printf "%-26s %8s %8s %8s\n", k, v[k, "new1"], v[k, "base"], v[k, "new2"] } }' "$W/all.txt"
done
