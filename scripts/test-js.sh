#!/usr/bin/env bash
# The JavaScript client's tests (Tests/js, docs/javascript.md): the scenarios in Node and in
# headless Chromium, against the built `conduit serve`. Installs Chromium when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || { echo "test-js: Node 20 or later is needed (globalThis.WebSocket)" >&2; exit 1; }

swift build --product conduit-test-host
export CONDUIT_BIN="$(swift build --show-bin-path)/conduit-test-host"

# Bounded: a test that hangs (a browser or a loop left running) fails the stage, not CI's clock.
timeout --kill-after=10 600 node --experimental-websocket --test Tests/js/
timeout --kill-after=10 600 node --experimental-websocket Tests/js/chromium-run.mjs
