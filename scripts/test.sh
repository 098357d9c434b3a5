#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then runs them.
# README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== swift test"
swift build --build-tests
swift test --skip-build 2>&1 | tee .build/swift-test.log
