#!/usr/bin/env bash
# Memory per connection, apart from the fixed heap: each server is started fresh, warmed with one
# connection's echoes, then holds N connections that have each echoed (so their buffers exist);
# (anonymous RSS with N open − with 1 open) / (N − 1) is a connection's cost. Prints one line per
# server and run, then the medians. Usage: Benchmarks/memory-per-connection.sh [N] [REPEATS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
count=${1:-1000}; repeats=${2:-3}
source "$here/common.sh"; build_tools
key=bench-shared-key
workdir=$(mktemp -d); server=
trap '[[ -n $server ]] && kill "$server" 2>/dev/null; rm -rf "$workdir"' EXIT

anon_kib() {  # proto port path pid connections: the server's anonymous RSS with that many connections echoing
  taskset -c 1 "$bin/conduit-bench" --proto "$1" --port "$2" --path "$3" --server-pid "$4" \
    --connections "$5" --in-flight 1 --size 64 --seconds 1 --warmup 0.5 2>/dev/null |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["serverAnonRSSKiB"])'
}

measure() {  # name proto path command...: prints "name KiB-per-connection"
  local name=$1 proto=$2 path=$3; shift 3
  taskset -c 0 "$@" >"$workdir/announce" 2>/dev/null & server=$!
  local port; port=$(announced_port "$workdir/announce")
  local one many
  one=$(anon_kib "$proto" "$port" "$path" "$server" 1)
  many=$(anon_kib "$proto" "$port" "$path" "$server" "$count")
  kill "$server"; wait "$server" 2>/dev/null || true; server=
  python3 -c "print('$name', round(($many - $one) / ($count - 1), 2), 'KiB/connection', '(anon RSS $one -> $many KiB)')"
}

results=$workdir/results
for _ in $(seq "$repeats"); do
  measure conduit conduit "/{i}/0?key=$key" env CONDUIT_SHARED_KEY=$key "$conduit" serve --port 0 | tee -a "$results"
  measure nio-websocket websocket "/" "$bin/nio-echo" | tee -a "$results"
done
python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, value = line.split()[:2]
    rows.setdefault(name, []).append(float(value))
for name, values in rows.items():
    print(f"median {name}: {statistics.median(values):.2f} KiB/connection over {len(values)} runs")
PY
