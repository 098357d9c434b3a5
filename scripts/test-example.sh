#!/usr/bin/env bash
# Examples/counter-host, a handler module in a package of its own that builds its own host from
# ConduitCLI: builds it from scratch (its own .build, like a user's package), runs its test over
# a real socket, then starts its `counter-host serve` and checks that `check` knows the new kind.
set -euo pipefail
cd "$(dirname "$0")/../Examples/counter-host"
swift build --build-tests
swift test --skip-build
bin=$(swift build --show-bin-path)
"$bin/counter-host" check counter.yaml
"$bin/counter-host" routes --config counter.yaml | grep -q "score.\*" || { echo "test-example: counter-host does not list score.*" >&2; exit 1; }
echo "test-example: ok"
