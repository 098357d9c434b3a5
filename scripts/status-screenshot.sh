#!/usr/bin/env bash
# Screenshot of the live status page under load, to docs/status-page.png (docs/javascript.md).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
swift build --product conduit-test-host
CONDUIT_BIN="$(swift build --show-bin-path)/conduit-test-host" node --experimental-websocket scripts/js/status-screenshot.mjs docs/status-page.png
