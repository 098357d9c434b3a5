#!/usr/bin/env bash
# Prints the path of a python3 that can `import nats` (nats-py), for handlers/nats_worker.py
# and its test (Tests/ConduitNATSTests/ExampleWorkerTests.swift), installing nats-py if needed.
# Only the path goes to stdout; anything an install says goes to stderr.
# Usage: "$(scripts/nats-python.sh)" handlers/nats_worker.py --url nats://127.0.0.1:4222 …
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# The system's python3 when it has nats-py already.
if python3 -c 'import nats' 2>/dev/null; then
  python3 -c 'import sys; print(sys.executable)'
  exit 0
fi
# Else a virtual environment of our own: Debian's python refuses a system-wide pip install
# (PEP 668), as in scripts/soak.sh. One creator at a time (tests may ask in parallel).
venv=$repo/.build/nats-venv
mkdir -p "$repo/.build"
exec 9>"$repo/.build/nats-venv.lock"
flock 9
if ! "$venv/bin/python3" -c 'import nats' 2>/dev/null; then
  if [[ ! -x $venv/bin/pip ]]; then
    rm -rf "$venv"  # a half-made one (no ensurepip) is no use
    if ! python3 -m venv "$venv" >&2 2>/dev/null; then
      rm -rf "$venv"
      { apt-get install -y -qq python3-venv || { apt-get update -qq && apt-get install -y -qq python3-venv; }; } >&2
      python3 -m venv "$venv" >&2
    fi
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check nats-py >&2
fi
echo "$venv/bin/python3"
