#!/usr/bin/env bash
# Instructions the host executes per message of the routed echo (64 B × 64 in flight), counted
# by valgrind's callgrind rather than timed: the count does not move with this machine's noise,
# so a change of a few percent shows in one run (timings need nine repeats and still disagree).
# The host runs under callgrind (a copy without debug info, which valgrind can't read), counting
# only while the load tool runs in each mode: plain, field (one more header each way), resume.
# Counts user-space instructions of the host alone: not the kernel's work, not time.
# Usage: Benchmarks/instructions.sh [SECONDS] [TOP]  (defaults 10 and 25: the TOP functions by
# what resume adds) → Benchmarks/results/instructions-runs.jsonl, callgrind files in $KEEP (if set).
# SIZE=N (default 64) counts the echo of N-byte payloads instead; its rows say so ("size").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
seconds=${1:-10}; top=${2:-25}; size=${SIZE:-64}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
source "$here/common.sh"; build_tools
workdir=${KEEP:-$(mktemp -d)}; mkdir -p "$workdir"
cp "$conduit" "$workdir/conduit" && strip --strip-debug "$workdir/conduit"
key=bench-shared-key
taskset -c 0 env CONDUIT_SHARED_KEY=$key valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$workdir/callgrind.out" "$workdir/conduit" serve --port 0 >"$workdir/host" 2>"$workdir/valgrind.log" & host_pid=$!
trap 'kill $host_pid 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$workdir"' EXIT
port=$(announced_port "$workdir/host")
results=$here/results/instructions-runs.jsonl
commit=$(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- Sources || echo +)
run() { # MODE SECONDS
  local flag=(); [ "$1" = resume ] && flag=(--resume); [ "$1" = field ] && flag=(--extra-field)
  taskset -c 1 "$bin/conduit-bench" --proto conduit --port "$port" --path "/{i}/0?key=$key" "${flag[@]}" \
    --connections 1 --in-flight 64 --size "$size" --seconds "$2" --warmup 0 --label "$1"
}
# Uncounted first: what a process does once (type metadata, conformance caches) is nobody's cost.
for mode in plain field resume; do run "$mode" 1 >/dev/null; done
for mode in plain field resume; do
  callgrind_control -z "$host_pid" >/dev/null; callgrind_control -i on "$host_pid" >/dev/null
  run "$mode" "$seconds" >"$workdir/$mode.json"
  callgrind_control -i off "$host_pid" >/dev/null; callgrind_control -d "$mode" "$host_pid" >/dev/null
done
python3 "$here/instructions.py" "$workdir" "$commit" "$top" "$size" | tee -a "$results" | sed -n '1,3p' >/dev/null
python3 "$here/instructions.py" "$workdir" "$commit" "$top" "$size" --table
