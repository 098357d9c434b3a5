#!/usr/bin/env bash
# Does the load tool's own speed move the host's figures? One host (CPU 0), the load tool
# (CPU 1) in three modes, their order rotated per repeat: plain; plain with the tool
# busy-waiting NS nanoseconds per reply (as if it did resume's work); resume (SPEC §9).
# 64 B × 64 in flight, 3 s runs. Prints the medians and each mode against plain, paired.
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
modes=(plain slower-tool resume plain slower-tool)
for rep in $(seq "$repeats"); do
  for mode in "${modes[@]:$((rep % 3)):3}"; do
    flag=(--tool-work-ns 0); [ "$mode" = slower-tool ] && flag=(--tool-work-ns "$work"); [ "$mode" = resume ] && flag+=(--resume)
    taskset -c 1 "$bin/conduit-bench" --proto conduit --port "$port" --path "/{i}/0?key=$key" "${flag[@]}" \
      --connections 1 --in-flight 64 --size 64 --seconds 3 --warmup 0.5 --server-pid "$host_pid" --label "$mode" >>"$results"
  done
done
python3 - "$results" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    run = json.loads(line)
    runs.setdefault(run["label"], []).append(run)
host = lambda run: run["serverCPUMicrosecondsPerMessage"]
tool = lambda run: run["clientCores"] / run["messagesPerSecond"] * 1e6
rate = lambda run: run["messagesPerSecond"]
for mode, mine in runs.items():
    print(f"{mode}: {statistics.median(map(rate, mine)):,.0f} msg/s, host {statistics.median(map(host, mine)):.3f} µs, tool {statistics.median(map(tool, mine)):.3f} µs a message")
for mode in ("slower-tool", "resume"):
    paired = lambda figure: statistics.median(figure(b) / figure(a) - 1 for a, b in zip(runs["plain"], runs[mode]))
    print(f"{mode} against plain, paired: {paired(rate):+.1%} msg/s, host {paired(host):+.1%}, tool {paired(tool):+.1%}")
PY
