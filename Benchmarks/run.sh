#!/usr/bin/env bash
# Same-run peer comparison: each server pinned to CPU 0, the load tool to CPU 1; every
# configuration against every target, REPEATS times (default 3). Writes results/runs.jsonl;
# summarize.py turns it into the BENCHMARKS.md tables and plot.py into a PNG.
# Usage: Benchmarks/run.sh [SECONDS] [REPEATS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
seconds=${1:-3}; repeats=${2:-3}
source "$here/common.sh"; build_tools
out=$here/results; mkdir -p "$out"; results=$out/runs.jsonl; : >"$results"
key=bench-shared-key

configs=(  # label size connections in-flight
  "latency 64 1 1" "throughput 64 1 64" "bandwidth 16384 1 16" "concurrency 64 100 4" "chunked-1MiB 1048576 1 2")

# Every server runs for the whole script (pinned to CPU 0, idle while another is measured),
# and the runs are interleaved: for each configuration and repeat, every server in turn, so
# the machine's drift falls on all of them alike. Configurations go in the order above, so a
# server's peak RSS at 100 connections is not yet raised by the 1 MiB runs.
targets=(); declare -A pid port proto path
workdir=$(mktemp -d)
trap 'for t in "${targets[@]}"; do kill "${pid[$t]}" 2>/dev/null; done; rm -rf "$workdir"' EXIT
start() {  # target proto path command...
  local target=$1; proto[$target]=$2; path[$target]=$3; shift 3
  taskset -c 0 "$@" >"$workdir/$target" 2>/dev/null & pid[$target]=$!
  port[$target]=$(announced_port "$workdir/$target")
  targets+=("$target")
}

start conduit conduit "/{i}/0?key=$key" env CONDUIT_SHARED_KEY=$key CONDUIT_MAX_MESSAGE_BYTES=16777216 "$conduit" serve --port 0
start conduit-ws-stack websocket "/" env CONDUIT_MAX_MESSAGE_BYTES=16777216 "$conduit" serve --conformance-echo --port 0
start nio-websocket websocket "/" "$bin/nio-echo"
start node-ws websocket "/" env NODE_PATH=/usr/share/nodejs node "$here/peers/ws-echo.js"
start python-websockets websocket "/" python3 "$here/peers/websockets_echo.py"
start picows websocket "/" python3 "$here/peers/picows_echo.py"   # pip install picows
start raw-tcp tcp "/" "$bin/nio-echo" --tcp

for config in "${configs[@]}"; do
  read -r label size conns inflight <<<"$config"
  for rep in $(seq "$repeats"); do
    for target in $(rotated "$((rep - 1))" "${targets[@]}"); do
      taskset -c 1 "$bin/conduit-bench" --proto "${proto[$target]}" --port "${port[$target]}" --path "${path[$target]}" \
        --connections "$conns" --in-flight "$inflight" --size "$size" --seconds "$seconds" --warmup 0.5 \
        --server-pid "${pid[$target]}" --label "$target/$label" >>"$results" \
        || echo "{\"label\":\"$target/$label\",\"failed\":true}" >>"$results"
    done
  done
done
echo "results: $results" >&2
