#!/usr/bin/env bash
# The routed echo with resume (SPEC §9) on and off, same host, same run (docs/resume.md,
# BENCHMARKS.md): with `--resume` every request carries a position, every reply gets one and
# is kept in the window until the load tool acknowledges it (every 32); `field` is plain with one
# more header on each request (as long as a position), echoed back. The host has CPU 0,
# the load tool CPU 1. The workloads are the data plane's (run.sh): 64 B one in flight, 64 in
# flight, 100 connections × 4; 16 KiB × 16; 1 MiB (16 parts, each with its own position) × 2.
# Usage: Benchmarks/resume.sh [SECONDS] [REPEATS] [WORKLOAD...] (by name: latency throughput …)
# → Benchmarks/results/resume-runs-<UTC time>.jsonl, a file of its own each run (one name for
# every run lost a run's record to the next, or to a checkout).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
seconds=${1:-3}; repeats=${2:-5}
source "$here/common.sh"; build_tools
out=$here/results; mkdir -p "$out"; results=$out/resume-runs-$(date -u +%Y-%m-%dT%H%M%S).jsonl
key=bench-shared-key
workdir=$(mktemp -d)
taskset -c 0 env CONDUIT_SHARED_KEY=$key "$conduit" serve --port 0 >"$workdir/host" 2>/dev/null & host_pid=$!
trap 'kill $host_pid 2>/dev/null; rm -rf "$workdir"' EXIT
port=$(announced_port "$workdir/host")

workloads=("latency 64 1 1" "throughput 64 1 64" "concurrency 64 100 4" "bandwidth 16384 1 16" "chunked-1MiB 1048576 1 2")
chosen=("${@:3}")
for config in "${workloads[@]}"; do
  read -r label size conns inflight <<<"$config"
  if [ ${#chosen[@]} -gt 0 ] && [[ ! " ${chosen[*]} " =~ " $label " ]]; then continue; fi
  for rep in $(seq "$repeats"); do
    for mode in $(rotated "$rep" plain field resume); do
      flag=(); [ "$mode" = resume ] && flag=(--resume); [ "$mode" = field ] && flag=(--extra-field)
      taskset -c 1 "$bin/conduit-bench" --proto conduit --port "$port" --path "/{i}/0?key=$key" "${flag[@]}" \
        --connections "$conns" --in-flight "$inflight" --size "$size" --seconds "$seconds" --warmup 0.5 \
        --server-pid "$host_pid" --label "conduit-$mode/$label" >>"$results" \
        || echo "{\"label\":\"conduit-$mode/$label\",\"failed\":true}" >>"$results"
    done
  done
done
python3 "$here/summarize.py" "$results"
# Per repeat, then the median: the machine drifts between a fast and a slow phase.
python3 "$here/paired.py" "$results"
