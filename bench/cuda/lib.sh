# lib.sh: what the device-call scripts (run-final.sh, run-ab-sample.sh,
# run-sample-final.sh, run-sample.sh, run-sample-ncu.sh, run-tune.sh,
# run-oneread.sh, run-bisect.sh)
# share. Source it after `set -u`.
#   device_logs NAME  OUT (default /tmp/out) and W=/tmp/NAME made,
#                     TOKAMAK_SHARED defaulted to .gpu/shared, W packed
#                     into $OUT/NAME.tgz on exit, stamp defined
#   build_cuda        make build-cuda into $W/build.log; on failure the
#                     errors are printed and the script exits
#   cuda_tests P [E]  go test -run ${TESTS:-P} ./cuda/ into $W/test.log
#                     (none when TESTS=NONE), then its result lines and
#                     those matching E
#   parity_runs TAG VAR VALUES CMD..
#                     CMD (a TestSampleMatchesCPU run) with VAR set to
#                     each of VALUES, into $W/parity-TAG<value>.log, a
#                     summary line each and any failure
#   sample_parity C.. TestSampleMatchesCPU with each cluster shape C
#                     forced, into $W/parity-cC.log, a summary line each
#   sample_bench NAME BenchmarkSampleFused in the current directory into
#                     $W/bench-NAME.log
#   sample_bench_base TAR
#                     the tree in TAR (a `git archive`) built beside this
#                     one, and its BenchmarkSampleFused into $W/bench-base.log
#   sample_columns N..
#                     $W/all.txt: the SAMPLE lines of $W/bench-N.log for
#                     each column N, each led by N
#   sample_resources NAME LIB
#                     each sampler kernel of LIB: its registers, stack,
#                     shared and local memory (cuobjdump -res-usage,
#                     counted by distinct set) and its static count of
#                     stack stores (STL: spills and the saves around
#                     calls), each line led by NAME
#   sample_table F    $W/all.txt (SAMPLE lines, each led by its column's
#                     name) as a table of field F (7: kernel µs launched,
#                     13: queued) a case a row, columns in order of first use
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

parity_runs() {
  local tag=$1 var=$2 vals=$3 v log
  shift 3
  for v in $vals; do
    log="$W/parity-$tag$v.log"
    env "$var=$v" "$@" >"$log" 2>&1
    stamp "parity, $var=$v: rc=$? $(grep -c ': 0 differ' "$log") runs with 0 differing, $(grep -c 'differ' "$log") in all"
    grep -E "^(--- FAIL|FAIL)|panic" "$log" | head -5
  done
}

sample_parity() {
  parity_runs c TOKAMAK_SAMPLE_CLUSTER "$*" go test -tags cuda -count=1 -v -run TestSampleMatchesCPU ./cuda/
}

sample_bench() {
  go test -tags cuda -count=1 -run '^$' -bench 'SampleFused' -benchtime 20x ./cuda/ >"$W/bench-$1.log" 2>&1
  stamp "bench $1 rc=$?"
}

sample_bench_base() {
  local here=$PWD base=/tmp/sample-base
  rm -rf "$base" && mkdir -p "$base" && tar -xf "$1" -C "$base" && ln -s "$here/.gpu" "$base/.gpu"
  (cd "$base" && build_cuda && stamp "base built" && sample_bench base)
}

sample_columns() {
  local f
  for f in "$@"; do
    grep -E '^SAMPLE ' "$W/bench-$f.log" | sed "s/^/$f /"
  done >"$W/all.txt"
}

sample_resources() {
  local cuobjdump=${CUOBJDUMP:-/usr/local/cuda/bin/cuobjdump}
  "$cuobjdump" -res-usage "$2" 2>/dev/null |
    grep -A1 'sample_kernel' | grep -oE 'REG:[0-9]+ STACK:[0-9]+ SHARED:[0-9]+ LOCAL:[0-9]+' | sort | uniq -c | sed "s/^/$1 /"
  "$cuobjdump" -sass "$2" 2>/dev/null |
    awk -v n="$1" '/Function :/ { f = $3 } /STL/ && f ~ /sample_kernel/ { c[f]++ } END { for (k in c) printf "%s STL %4d %s\n", n, c[k], k }' | sort -k4
}

sample_table() {
  awk -v f="$1" '{ k = sprintf("%-20s b%-4s", $3, $5); if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    if (!($1 in cs)) { cs[$1] = 1; cols[++m] = $1 }
    v[k, $1] = $f }
  END { printf "%-26s", f == 7 ? "kernel us" : "queued us"; for (j = 1; j <= m; j++) printf " %8s", cols[j]; printf "\n"
    for (i = 1; i <= n; i++) { k = order[i]; printf "%-26s", k; for (j = 1; j <= m; j++) printf " %8s", v[k, cols[j]]; printf "\n" } }' "$W/all.txt"
}
