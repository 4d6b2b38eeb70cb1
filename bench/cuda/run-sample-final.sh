#!/usr/bin/env bash
# One device call checking and measuring the fused sampler on the tree as
# it is: make test-cuda (every GPU test, the shared models included),
# parity with each cluster shape in TEST_CLUSTERS forced (default "1 8"),
# BenchmarkSampleFused (automatic shapes), then the PyTorch reference
# (bench/cuda/torch_sample.py) on the same GPU. Logs: $OUT/sample-final.tgz.
#   bash .gpu/remote.sh bash bench/cuda/run-sample-final.sh   (carry .gpu)
set -u
. "$(dirname "$0")/lib.sh"
device_logs sample-final
stamp "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
build_cuda
stamp built
make test-cuda >"$W/test-cuda.log" 2>&1
stamp "make test-cuda rc=$?"
grep -E "^(ok|FAIL|--- FAIL)|panic" "$W/test-cuda.log" | head -20
# shellcheck disable=SC2086 # a list of cluster shapes
sample_parity ${TEST_CLUSTERS:-1 8}
sample_bench sample
grep -E "^SAMPLE(-TOPP)? " "$W/bench-sample.log"
python3 "$(dirname "$0")/torch_sample.py" >"$W/torch.log" 2>&1
stamp "torch rc=$?"
grep -E "^TORCH|flashinfer" "$W/torch.log"
