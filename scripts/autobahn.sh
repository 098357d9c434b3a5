#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client against `conduit serve --conformance-echo` and gates
# on check_report.py. Usage: scripts/autobahn.sh [--full]   (--full adds the 12.*/13.*
# permessage-deflate groups, ~9 minutes, to show compression is declined cleanly).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${CONDUIT_SHARED:-$(dirname "$repo")/shared}
root=$repo/.autobahn
out=${AUTOBAHN_OUT:-$repo/.autobahn/reports}
exclude='["12.*", "13.*"]'; min_cases=301; limit=300
if [[ ${1:-} == --full ]]; then exclude='[]'; min_cases=517; limit=1500; fi

# The suite needs a Python 2.7 runtime, which its setup installs from the packages in the
# project's shared folder (beside this repository in CI). A bare clone without it skips the
# stage and says so; set CONDUIT_SHARED to run it.
if [[ ! -x $root/venv27/bin/wstest && ! -x $shared/autobahn/setup.sh ]]; then
  echo "SKIPPED: Autobahn|Testsuite needs its Python 2.7 runtime from $shared/autobahn (not found);"
  echo "         point CONDUIT_SHARED at a folder holding autobahn/ to run it. Nothing else was skipped."
  exit 0
fi
[[ -x $root/venv27/bin/wstest ]] || "$shared/autobahn/setup.sh" "$root"
swift build --package-path "$repo" --product conduit >&2
conduit=$(swift build --package-path "$repo" --show-bin-path)/conduit

announce=$(mktemp); trap 'kill "$host_pid" 2>/dev/null || true; rm -f "$announce"' EXIT
# Autobahn's largest messages (9.*) are 16 MiB; the product's default limit is 1 MiB.
CONDUIT_MAX_MESSAGE_BYTES=16777216 "$conduit" serve --conformance-echo --port 0 >"$announce" &
host_pid=$!
for _ in $(seq 200); do grep -q '"port"' "$announce" && break; kill -0 "$host_pid"; sleep 0.05; done
port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$announce")
[[ -n $port ]] || { echo "autobahn: the host did not announce a port" >&2; exit 2; }

rm -rf "$out"; mkdir -p "$out"
spec=$out/spec.json
cat >"$spec" <<JSON
{"outdir": "$out", "servers": [{"agent": "conduit", "url": "ws://127.0.0.1:$port"}],
 "cases": ["*"], "exclude-cases": $exclude, "exclude-agent-cases": {}}
JSON
(cd "$out" && LD_LIBRARY_PATH=$root/py27root/usr/lib/x86_64-linux-gnu \
    timeout "$limit" "$root/venv27/bin/wstest" -m fuzzingclient -s "$spec" >"$out/wstest.log" 2>&1) || true
kill -0 "$host_pid" || { echo "autobahn: the host died during the suite" >&2; exit 1; }
"$shared/autobahn/check_report.py" "$out" --min-cases "$min_cases"
