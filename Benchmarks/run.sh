#!/usr/bin/env bash
# Same-run peer comparison: each server pinned to CPU 0, the load tool to CPU 1; every
# configuration against every target, REPEATS times (default 3). Writes results/runs.jsonl;
# summarize.py turns it into the BENCHMARKS.md tables and plot.py into a PNG.
# Usage: Benchmarks/run.sh [SECONDS] [REPEATS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
seconds=${1:-3}; repeats=${2:-3}
swift build -c release --package-path "$repo" --scratch-path "$repo/.build-release" --product conduit >&2
swift build -c release --package-path "$here" --product conduit-bench >&2
swift build -c release --package-path "$here" --product nio-echo >&2
bin=$here/.build/release; conduit=$(swift build -c release --package-path "$repo" --scratch-path "$repo/.build-release" --show-bin-path)/conduit
out=$here/results; mkdir -p "$out"; results=$out/runs.jsonl; : >"$results"
key=bench-shared-key

configs=(  # label size connections in-flight
  "latency 64 1 1" "throughput 64 1 64" "bandwidth 16384 1 16" "concurrency 64 100 4" "chunked-1MiB 1048576 1 2")

server_pid=; announce=$(mktemp)
trap '[[ -n $server_pid ]] && kill $server_pid 2>/dev/null; rm -f "$announce"' EXIT
start() {  # target command...
  : >"$announce"
  taskset -c 0 "$@" >"$announce" 2>/dev/null & server_pid=$!
  for _ in $(seq 200); do grep -q '"port"' "$announce" && break; sleep 0.05; done
  port=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$announce")
}
run_target() {  # target proto path start-command...
  local target=$1 proto=$2 path=$3; shift 3
  start "$@"
  for config in "${configs[@]}"; do
    read -r label size conns inflight <<<"$config"
    for rep in $(seq "$repeats"); do
      taskset -c 1 "$bin/conduit-bench" --proto "$proto" --port "$port" --path "$path" --connections "$conns" \
        --in-flight "$inflight" --size "$size" --seconds "$seconds" --warmup 0.5 --server-pid "$server_pid" \
        --label "$target/$label" >>"$results" || echo "{\"label\":\"$target/$label\",\"failed\":true}" >>"$results"
    done
  done
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
}

run_target conduit conduit "/{i}/0?key=$key" env CONDUIT_SHARED_KEY=$key CONDUIT_MAX_MESSAGE_BYTES=16777216 "$conduit" serve --port 0
run_target conduit-ws-stack websocket "/" env CONDUIT_MAX_MESSAGE_BYTES=16777216 "$conduit" serve --conformance-echo --port 0
run_target nio-websocket websocket "/" "$bin/nio-echo"
run_target node-ws websocket "/" env NODE_PATH=/usr/share/nodejs node "$here/peers/ws-echo.js"
run_target python-websockets websocket "/" python3 "$here/peers/websockets_echo.py"
run_target raw-tcp tcp "/" "$bin/nio-echo" --tcp
echo "results: $results" >&2
