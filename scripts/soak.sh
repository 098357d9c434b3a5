#!/usr/bin/env bash
# Soak, resume-window memory, handshake flood, id churn and connection-scale runs against a
# real `conduit serve` (scripts/soak.py, resume-memory.py, handshake-flood.py, id-churn.py,
# scale.py).
# Usage: scripts/soak.sh [CLIENTS] [SECONDS] [--release] [--scale N]
#   CI runs the short version (scripts/test.sh); the recorded full runs are in docs/soak.md.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
clients=${1:-1000}; seconds=${2:-180}; shift $(( $# < 2 ? $# : 2 ))
configuration=debug; scale=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --release) configuration=release ;;
    --scale) scale=$2; shift ;;
  esac
  shift
done
# The Python clients need websockets ≥ 13 (its asyncio API). Debian's own Python refuses a
# system-wide pip install (PEP 668), so then it goes into a virtual environment of our own.
if ! python3 -c 'import websockets.asyncio.client' 2>/dev/null; then
  if ! pip install -q 'websockets>=13' 2>/dev/null; then
    python3 -m venv "$repo/.build/venv" 2>/dev/null || { { apt-get install -y -qq python3-venv || { apt-get update -qq && apt-get install -y -qq python3-venv; }; } && python3 -m venv "$repo/.build/venv"; }
    "$repo/.build/venv/bin/pip" install -q 'websockets>=13'
    export PATH="$repo/.build/venv/bin:$PATH"
  fi
fi
# A release build is the benchmarks' (Benchmarks/common.sh: its own scratch path, the Swift
# runtime linked statically), so it never waits on or disturbs the debug build the tests use.
if [[ $configuration == release ]]; then
  source "$repo/Benchmarks/common.sh"
  host_build --product conduit >&2
  conduit=$(host_build --show-bin-path)/conduit
else
  swift build --package-path "$repo" --product conduit >&2
  conduit=$(swift build --package-path "$repo" --show-bin-path)/conduit
fi
ulimit -n "$(ulimit -Hn)"
python3 "$repo/scripts/soak.py" "$conduit" --clients "$clients" --seconds "$seconds"
python3 "$repo/scripts/resume-memory.py" "$conduit"
python3 "$repo/scripts/handshake-flood.py" "$conduit"
python3 "$repo/scripts/id-churn.py" "$conduit"
if [[ $scale -gt 0 ]]; then python3 "$repo/scripts/scale.py" "$conduit" --connections "$scale"; fi
