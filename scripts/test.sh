#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then runs them.
# README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

# The docs/ipc.md examples are run with the real curl (Tests/ConduitIPCTests/CurlExampleTests).
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
# The process-handler tests run handlers/example.py (Tests/ConduitProcessTests).
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3; }

# The NATS tests start a real nats-server on a free port (Tests/ConduitNATSTests).
# The NATS TLS test makes its CA and certificate with openssl.
[ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null || { apt-get update -qq && apt-get install -y -qq nats-server; }
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
# The NATS example-worker test runs handlers/nats_worker.py with nats-py: installed now, not
# from inside the test run, where an install's seconds would hold a thread the tests share.
# A failed install fails that one test, not the run.
scripts/nats-python.sh >/dev/null || echo "warning: no python3 with nats-py; ExampleWorkerTests will fail" >&2

# Each stage's start says how long the run has taken so far (where CI's time goes).
stage() { echo "== $1 [$((SECONDS / 60))m$((SECONDS % 60))s]"; }

stage "swift test"
swift build --build-tests
# Bounded: a hung test fails the stage instead of running out CI's clock. At most 4 tests at
# a time: unbounded, every suite started at once, and a loaded two-core CI machine stretched
# waits past their limits (a different test or two failed each run). 217 s at 4, 183 s at 8,
# 186-199 s unbounded here.
SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=4 timeout --kill-after=10 1800 swift test --skip-build 2>&1 | tee .build/swift-test.log

stage "Autobahn|Testsuite (WebSocket conformance; 12.*/13.* excluded, see docs/conformance)"
scripts/autobahn.sh

stage "fuzzing the decoder and the chunk assembler (30 s)"
scripts/fuzz.sh 30

stage "allocation counts of the codec and of a routed echo against Benchmarks/Thresholds (release builds)"
Benchmarks/check-allocations.sh

stage "JavaScript client in Node and headless Chromium (docs/javascript.md)"
scripts/test-js.sh

stage "soak, short (200 clients dropping and reconnecting for 20 s while UDP pushes flow; docs/soak.md)"
scripts/soak.sh 200 20

stage "new-handler scaffold on a scratch copy, then lint-config (a full build of the copy)"
scripts/test-scaffold.sh

stage "Examples/counter-host: a module in its own package building its own host (a full build)"
scripts/test-example.sh

stage "done"
