# lib.sh: what the device-call scripts (run-final.sh, run-ab-sample.sh,
# run-sample-final.sh, run-sample.sh, run-sample-ncu.sh, run-tune.sh)
# share. Source it after `set -u`.
#   device_logs NAME  OUT (default /tmp/out) and W=/tmp/NAME made,
#                     TOKAMAK_SHARED defaulted to .gpu/shared, W packed
#                     into $OUT/NAME.tgz on exit, stamp defined
#   build_cuda        make build-cuda into $W/build.log; on failure the
#                     errors are printed and the script exits
#   cuda_tests P [E]  go test -run ${TESTS:-P} ./cuda/ into $W/test.log
#                     (none when TESTS=NONE), then its result lines and
#                     those matching E
#   sample_parity C.. TestSampleMatchesCPU with each cluster shape C
#                     forced, into $W/parity-cC.log, a summary line each
#   sample_bench NAME BenchmarkSampleFused in the current directory into
#                     $W/bench-NAME.log
device_logs() {
  OUT=${OUT:-/tmp/out}
  W=/tmp/$1
  mkdir -p "$OUT" "$W"
  export TOKAMAK_SHARED=${TOKAMAK_SHARED:-$PWD/.gpu/shared}
  t0=$(date +%s)
  # shellcheck disable=SC2064 # the archive's name is fixed now
  trap "tar -czf \"\$OUT/$1.tgz\" -C \"\$W\" ." EXIT
}

# stamp prints its arguments after the seconds since device_logs.
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

build_cuda() {
  make build-cuda >"$W/build.log" 2>&1 || {
    grep -E "error|Error" "$W/build.log" | head -40
    echo BUILD FAILED
    exit 1
  }
}

cuda_tests() {
  [ "${TESTS:-}" = NONE ] && return 0
  go test -tags cuda -count=1 -v -run "${TESTS:-$1}" ./cuda/ >"$W/test.log" 2>&1
  stamp "tests rc=$?"
  grep -E "^(--- |ok|FAIL)|^    --- FAIL|panic|differ${2:+|$2}" "$W/test.log" | head -40
}

sample_parity() {
  for c in "$@"; do
    TOKAMAK_SAMPLE_CLUSTER=$c go test -tags cuda -count=1 -v -run TestSampleMatchesCPU ./cuda/ >"$W/parity-c$c.log" 2>&1
    stamp "parity, cluster $c: rc=$? $(grep -c ': 0 differ' "$W/parity-c$c.log") runs with 0 differing, $(grep -c 'differ' "$W/parity-c$c.log") in all"
  done
}

sample_bench() {
  go test -tags cuda -count=1 -run '^$' -bench 'SampleFused' -benchtime 20x ./cuda/ >"$W/bench-$1.log" 2>&1
  stamp "bench $1 rc=$?"
}
