#!/usr/bin/env bash
# One device call of offline throughput cases on a random Llama-3.1-8B
# checkpoint, each "TAG|ENV|ISL/OSL/N|FLAGS" in CASES (newline or ';'
# separated; ENV is VAR=value pairs joined by ',', FLAGS tokamak flags
# joined by ','), in order, then a table. Logs: $OUT/throughput-ab.tgz.
#   CASES="noevict||128/128/1000|;staggered||128/128/1000|--scheduler-policy,staggered-no-evict" \
#     bash .gpu/remote.sh bash bench/cuda/run-throughput-ab.sh
set -u
. "$(dirname "$0")/lib.sh"
device_logs throughput-ab
stamp "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
build_cuda
stamp built
CK=/tmp/llama-3.1-8b-random
[ -f $CK/config.json ] || ./tokamak model random --config llama-3.1-8b --dtype bf16 --out $CK >"$W/random.log" 2>&1
stamp "checkpoint ready"
echo "${CASES:?}" | tr ';' '\n' | while IFS='|' read -r tag envs shape flags; do
  [ -n "$tag" ] || continue
  IFS=/ read -r isl osl n <<<"$shape"
  env ${envs//,/ } timeout "${CASE_TIMEOUT:-300}" ./tokamak bench throughput --model $CK --device cuda \
    --input-len "$isl" --output-len "$osl" --num-prompts "$n" ${flags//,/ } \
    --out "$W/$tag.json" >"$W/$tag.log" 2>&1
  stamp "$tag ($shape${envs:+ $envs}${flags:+ $flags}) rc=$?"
  grep -E "^throughput|^steps|^decode step" "$W/$tag.log" | sed 's/^/  /'
done
