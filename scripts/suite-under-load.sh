#!/usr/bin/env bash
# Runs the Swift suite RUNS times (default 3) beside BUSY busy loops (default 2), to find tests
# that wait for the machine rather than for events before CI does (CI's runs are loaded by the
# parallel suite alone; two busy loops on two cores showed two of the four tests CI once failed
# on, and four more of the kind). Prints
# each run's failures; the whole output of run N is in $OUT/run-N.txt. Builds first.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
BUSY=${2:-2}
OUT=${OUT:-$(mktemp -d /tmp/conduit-under-load.XXXXXX)}
mkdir -p "$OUT"
swift build --build-tests 2>&1 | grep -E "error|Build complete"
failed=0
for run in $(seq 1 "$RUNS"); do
    loops=()
    for _ in $(seq 1 "$BUSY"); do (while :; do :; done) & loops+=($!); done
    swift test --skip-build >"$OUT/run-$run.txt" 2>&1 || failed=$((failed + 1))
    kill "${loops[@]}"
    echo "run $run of $RUNS beside $BUSY busy loops: $(grep -E 'Test run with' "$OUT/run-$run.txt" | tail -1)"
    grep -E '^✘ Test .*failed after' "$OUT/run-$run.txt" || true
done
echo "$failed of $RUNS runs failed; outputs in $OUT"
[ "$failed" -eq 0 ]
