#!/usr/bin/env bash
# A route served through NATS by the Swift example worker against the in-process echo, same
# run (docs/nats.md, BENCHMARKS.md). The host, nats-server and the worker share CPU 0, the
# load tool has CPU 1; "server µs CPU/msg" counts the host alone, so for the NATS route read
# msg/s and round-trip times. Then the cost of a relay across two hosts (relay-latency.py).
# Usage: Benchmarks/nats.sh [SECONDS] [REPEATS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
seconds=${1:-3}; repeats=${2:-3}
source "$here/common.sh"; build_tools
host_build --product conduit-nats-worker >&2
worker=$(dirname "$conduit")/conduit-nats-worker
nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)
out=$here/results; mkdir -p "$out"; results=$out/nats-runs.jsonl; : >"$results"
key=bench-shared-key
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

workdir=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$workdir"' EXIT
nats_port=$(free_port)
taskset -c 0 "$nats_server" -a 127.0.0.1 -p "$nats_port" >"$workdir/nats.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done

host_config() {  # name → YAML of a clustered host with the echo and work.* routes
  cat <<YAML
server:
  cluster:
    nats: nats://127.0.0.1:$nats_port
    name: $1
limits:
  maxMessageBytes: 16777216
routes:
  - route: echo
    handler: echo
  - route: work.*
    handler: nats
    options:
      url: nats://127.0.0.1:$nats_port
YAML
}
host_config a >"$workdir/a.yaml"; host_config b >"$workdir/b.yaml"
taskset -c 0 env CONDUIT_SHARED_KEY=$key "$conduit" serve --config "$workdir/a.yaml" --port 0 >"$workdir/a" 2>/dev/null & pids+=($!); host_pid=$!
port_a=$(announced_port "$workdir/a")
taskset -c 0 env CONDUIT_SHARED_KEY=$key "$conduit" serve --config "$workdir/b.yaml" --port 0 >"$workdir/b" 2>/dev/null & pids+=($!)
port_b=$(announced_port "$workdir/b")
taskset -c 0 "$worker" --url "nats://127.0.0.1:$nats_port" --subject 'work.>' --queue workers --name bench >"$workdir/worker" 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q ready "$workdir/worker" && break; sleep 0.1; done

configs=("latency 64 1 1" "throughput 64 1 64" "bandwidth 16384 1 16")
for config in "${configs[@]}"; do
  read -r label size conns inflight <<<"$config"
  for rep in $(seq "$repeats"); do
    for target in "conduit echo" "conduit-nats work.echo"; do
      read -r name route <<<"$target"
      taskset -c 1 "$bin/conduit-bench" --proto conduit --route "$route" --port "$port_a" --path "/{i}/0?key=$key" \
        --connections "$conns" --in-flight "$inflight" --size "$size" --seconds "$seconds" --warmup 0.5 \
        --server-pid "$host_pid" --label "$name/$label" >>"$results" \
        || echo "{\"label\":\"$name/$label\",\"failed\":true}" >>"$results"
    done
  done
done
python3 "$here/summarize.py" "$results"
echo
echo "### relay round trip (64 B, sequential): same host vs across two hosts through NATS"
python=python3; python3 -c 'import websockets.sync.client' 2>/dev/null || python=$repo/.build/venv/bin/python3  # scripts/soak.sh makes it
taskset -c 1 "$python" "$here/relay-latency.py" --key "$key" --port-a "$port_a" --port-b "$port_b" --count 2000
