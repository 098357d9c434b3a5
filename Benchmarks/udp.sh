#!/usr/bin/env bash
# UDP → WebSocket: `conduit-bench udp` against a fresh `conduit serve`, the host pinned to
# CPU 0 and the tool to CPU 1, REPEATS times (default 3); one JSON line per run on stdout.
# Usage: Benchmarks/udp.sh [DATAGRAMS] [REPEATS] [conduit-bench udp options…]
# CONDUIT=path/to/conduit measures that binary instead of building the release host.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here"); source "$here/common.sh"
datagrams=${1:-1000000}; repeats=${2:-3}; shift $(( $# < 2 ? $# : 2 ))
if [[ -z ${CONDUIT:-} ]]; then
  host_build --product conduit >&2
  CONDUIT=$(host_build --show-bin-path)/conduit
fi
build_load_tool
key=bench-shared-key; announce=$(mktemp); server_pid=
trap '[[ -n $server_pid ]] && kill $server_pid 2>/dev/null; rm -f "$announce"' EXIT

for rep in $(seq "$repeats"); do
  CONDUIT_SHARED_KEY=$key taskset -c 0 "$CONDUIT" serve --port 0 >"$announce" 2>/dev/null & server_pid=$!
  port=$(announced_port "$announce")
  taskset -c 1 "$bin/conduit-bench" udp --port "$port" --path "/udp-bench/0?key=$key" \
    --datagrams "$datagrams" --server-pid "$server_pid" --label "udp/$rep" "$@" || echo "{\"label\":\"udp/$rep\",\"failed\":true}"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
done
