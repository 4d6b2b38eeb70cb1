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
stamp "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
build_cuda
stamp built
cuda_tests TestSample
# shellcheck disable=SC2086 # a list of cluster shapes
sample_parity ${TEST_CLUSTERS:-}
sample_bench new1
sample_bench_base "${BASE_TAR:-base.tar}"
sample_bench new2
# tables: parameters, batch, kernel µs of new1 / base / new2, launched
# and queued (trees from before session 12 print no queued time)
sample_columns new1 base new2
sample_table 7
sample_table 13
