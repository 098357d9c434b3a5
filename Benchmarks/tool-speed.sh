#!/usr/bin/env bash
# Does the load tool's own speed move the host's figures? One host (CPU 0), the load tool
# (CPU 1) in three modes, their order rotated per repeat: plain; plain with the tool
# busy-waiting NS nanoseconds per reply (as if it did resume's work); resume (SPEC §9).
# 64 B × 64 in flight, 3 s runs. Prints the medians and each mode against plain, paired
# (paired.py, which also gives the tool's own CPU a message).
# Usage: Benchmarks/tool-speed.sh [REPEATS] [NS]   → Benchmarks/results/tool-speed-runs.jsonl
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
repeats=${1:-9}; work=${2:-120}
source "$here/common.sh"; build_tools
results=$here/results/tool-speed-runs.jsonl; : >"$results"
key=bench-shared-key; workdir=$(mktemp -d)
taskset -c 0 env CONDUIT_SHARED_KEY=$key "$conduit" serve --port 0 >"$workdir/host" 2>/dev/null & host_pid=$!
trap 'kill $host_pid 2>/dev/null; rm -rf "$workdir"' EXIT
port=$(announced_port "$workdir/host")
for rep in $(seq "$repeats"); do
  for mode in $(rotated "$rep" plain slower-tool resume); do
    flag=(--tool-work-ns 0); [ "$mode" = slower-tool ] && flag=(--tool-work-ns "$work"); [ "$mode" = resume ] && flag+=(--resume)
    taskset -c 1 "$bin/conduit-bench" --proto conduit --port "$port" --path "/{i}/0?key=$key" "${flag[@]}" \
      --connections 1 --in-flight 64 --size 64 --seconds 3 --warmup 0.5 --server-pid "$host_pid" \
      --label "conduit-$mode/throughput" >>"$results"
  done
done
python3 "$here/summarize.py" "$results"
python3 "$here/paired.py" "$results"
