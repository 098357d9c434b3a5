#!/usr/bin/env bash
# A/B of two conduit binaries in the same run: both serve side by side (CPU 0), the load tool
# (CPU 1) alternates between them REPEATS times, and summarize.py prints the medians with the
# ratio of the first to the second ("conduit" = NEW, "conduit-before" = OLD).
# Usage: Benchmarks/ab.sh OLD_BINARY NEW_BINARY [SIZE] [IN_FLIGHT] [REPEATS] [SECONDS]
# With AB_MODES="plain resume" each build also runs with resume (SPEC §9) on, as
# "conduit-resume" and "conduit-before-resume".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); source "$here/common.sh"
old=$1 new=$2 size=${3:-64} inflight=${4:-64} repeats=${5:-5} seconds=${6:-3}
build_load_tool
key=bench-shared-key; workdir=$(mktemp -d); results=$workdir/runs.jsonl
declare -A pid port
trap 'kill "${pid[@]}" 2>/dev/null; rm -rf "$workdir"' EXIT
for target in conduit-before conduit; do
  binary=$old; [[ $target == conduit ]] && binary=$new
  CONDUIT_SHARED_KEY=$key CONDUIT_MAX_MESSAGE_BYTES=16777216 taskset -c 0 "$binary" serve --port 0 >"$workdir/$target" 2>/dev/null &
  pid[$target]=$!
  port[$target]=$(announced_port "$workdir/$target")
done
for rep in $(seq "$repeats"); do
  for target in $(rotated "$rep" conduit-before conduit); do
    for mode in ${AB_MODES:-plain}; do
      flag=(); label=$target
      [ "$mode" = resume ] && { flag=(--resume); label=$target-resume; }
      taskset -c 1 "$bin/conduit-bench" --port "${port[$target]}" --path "/{i}/0?key=$key" "${flag[@]}" \
        --in-flight "$inflight" --size "$size" --seconds "$seconds" --warmup 0.5 --server-pid "${pid[$target]}" \
        --label "$label/${size}B×$inflight" >>"$results"
    done
  done
done
python3 "$here/summarize.py" "$results"
