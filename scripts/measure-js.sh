#!/usr/bin/env bash
# Echo round-trip median and messages/s of the JavaScript client in Node and in headless
# Chromium against the same `conduit serve` (ROUNDS, TOTAL, WINDOW override the defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
swift build --product conduit-test-host
CONDUIT_BIN="$(swift build --show-bin-path)/conduit-test-host" node --experimental-websocket Tests/js/measure.mjs
