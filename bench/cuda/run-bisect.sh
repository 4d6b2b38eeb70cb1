#!/usr/bin/env bash
# One device call (session 18): this tree (the base) and the trees of
# PATCHES (paths relative to the repository root, each applied to a copy
# of this tree under /tmp) built side by side, then:
# - each sampler kernel's registers and stack and its static count of
#   stack stores (STL), a line a tree, into $W/resources.txt;
# - BenchmarkSampleFused of each tree in turn at TOKAMAK_SAMPLE_BATCHES
#   (default 1,64,128,256), and the table of queued µs;
# - the top-p case at 256 rows of each with phase clocks and block times,
#   under BATCHES2 (default 128,256: other logits);
# - with PARITY="NAME ...", TestSampleMatchesCPU of those trees at both
#   top-p shapes (TOKAMAK_SAMPLE_TP_THREADS=512, 1024);
# - with FULLTEST="NAME ...", every TestSample* of those trees;
# - with NCU="NAME ...", Nsight Compute source counters of those trees'
#   top-p at 256 rows, the SASS page written to $OUT/src-NAME.csv.gz
#   (beside the archive: ~0.7 MB each).
# NAME is a patch's file name without .patch, or base. Logs: $OUT/bisect.tgz.
#   PATCHES="a.patch b.patch" PARITY=b bash .gpu/remote.sh bash bench/cuda/run-bisect.sh
set -u
. "$(dirname "$0")/lib.sh"
device_logs bisect
stamp "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
root=$PWD
names=base
dirs=$root
for p in ${PATCHES:-}; do
  n=$(basename "$p" .patch)
  d=/tmp/tree-$n
  rm -rf "$d" && mkdir -p "$d"
  tar -C "$root" --exclude=./.gpu --exclude=./build --exclude=./base.tar -cf - . | tar -C "$d" -xf -
  ln -s "$root/.gpu" "$d/.gpu"
  (cd "$d" && git apply "$root/$p") || { echo "apply $p failed"; exit 1; }
  names="$names $n"
  dirs="$dirs $d"
done
set -- $dirs
i=0
for n in $names; do
  i=$((i + 1)); d=${!i}
  (cd "$d" && make build-cuda >"$W/build-$n.log" 2>&1 && go test -tags cuda -c -o "/tmp/$n.test" ./cuda/ >>"$W/build-$n.log" 2>&1; echo "rc=$?" >>"$W/build-$n.log") &
done
wait
stamp built
# a tree that does not build is dropped (the base must build)
i=0; ok_names=; ok_dirs=
for n in $names; do
  i=$((i + 1)); d=${!i}
  if tail -1 "$W/build-$n.log" | grep -q 'rc=0'; then
    ok_names="$ok_names $n"; ok_dirs="$ok_dirs $d"
  else
    echo "BUILD $n FAILED"; grep -E "error" "$W/build-$n.log" | head -20
    [ "$n" = base ] && exit 1
  fi
done
names=$ok_names
set -- $ok_dirs
i=0
for n in $names; do
  i=$((i + 1)); d=${!i}
  sample_resources "$n" "$d/build/libtokamak_kernels.so"
done | tee "$W/resources.txt"
for n in $names; do
  (cd "$root/cuda" && TOKAMAK_SAMPLE_BATCHES=${TOKAMAK_SAMPLE_BATCHES:-1,64,128,256} "/tmp/$n.test" -test.run '^$' -test.bench SampleFused -test.benchtime 20x >"$W/bench-$n.log" 2>&1)
  stamp "bench $n rc=$?"
done
sample_columns $names
sample_table 13
for n in $names; do
  (cd "$root/cuda" && TOKAMAK_SAMPLE_PHASES=1 TOKAMAK_SAMPLE_BATCHES=${BATCHES2:-128,256} "/tmp/$n.test" -test.run '^$' -test.bench 'SampleFused/b256/topp0.9$' -test.benchtime 20x >"$W/phases-$n.log" 2>&1)
  echo "$n batches ${BATCHES2:-128,256}: $(grep -E '^SAMPLE ' "$W/phases-$n.log" | head -1)"
  grep -E '^SAMPLE-(PHASES|BLOCKS)' "$W/phases-$n.log" | head -2 | cut -c1-300
done
for n in ${PARITY:-}; do
  echo "parity of $n, cluster 1:"
  (cd "$root/cuda" && parity_runs "$n-tp" TOKAMAK_SAMPLE_TP_THREADS "512 1024" \
    env TOKAMAK_SAMPLE_CLUSTER=1 "/tmp/$n.test" -test.count=1 -test.v -test.run TestSampleMatchesCPU)
done
# FULLTEST="NAME ...": every sampler test (TestSample*) of those trees
for n in ${FULLTEST:-}; do
  (cd "$root/cuda" && "/tmp/$n.test" -test.count=1 -test.v -test.run TestSample >"$W/test-$n.log" 2>&1)
  stamp "TestSample $n: rc=$? $(grep -c '^--- PASS' "$W/test-$n.log") passed, $(grep -c '^--- FAIL' "$W/test-$n.log") failed"
  grep -E "^(--- FAIL|FAIL)|panic" "$W/test-$n.log" | head -5
done
# NCU="name ...": Nsight Compute source counters of each tree's top-p at
# 256 rows, the SASS page as $OUT/src-NAME.csv.gz
for n in ${NCU:-}; do
  (cd "$root/cuda" && TOKAMAK_SAMPLE_BATCHES=256 timeout 200 /usr/local/cuda/bin/ncu -k regex:sample_kernel -s 5 -c 1 \
    --section SourceCounters --section WarpStateStats --section InstructionStats --section SpeedOfLight --section SchedulerStats -o "/tmp/src-$n" -f \
    "/tmp/$n.test" -test.run '^$' -test.bench 'SampleFused/b256/topp0.9$' -test.benchtime 3x >"$W/ncu-$n.log" 2>&1)
  /usr/local/cuda/bin/ncu -i "/tmp/src-$n.ncu-rep" --page source --csv --print-source sass 2>&1 | gzip >"$OUT/src-$n.csv.gz"
  /usr/local/cuda/bin/ncu -i "/tmp/src-$n.ncu-rep" --page details >"$W/ncu-details-$n.txt" 2>&1
  echo "== ncu $n"; grep -E "Duration|Executed Instructions  |Issue Slots Busy|Warp Cycles Per Issued|No Eligible|Stall" "$W/ncu-details-$n.txt" | head -12
  stamp "ncu $n done, $(stat -c %s "$OUT/src-$n.csv.gz") bytes"
done
