#!/usr/bin/env bash
# The new-handler scaffold, end to end, on a scratch copy of the package (no .build*, so a full
# build from scratch): an invalid name and a taken name are refused without touching a file
# (checked by a checksum of the tree); a valid one gives a package whose new test passes; then
# lint-config accepts every config/**/*.yaml and rejects a broken one with file:line:column.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
# A space in the path: the build's plugins must pass paths as they are (not percent-encoded).
scratch=$(mktemp -d "/tmp/conduit scaffold.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
tar --exclude='./.build*' --exclude='./.git' --exclude='./Benchmarks/.build*' -cf - . | tar -C "$scratch" -xf -
cd "$scratch"

tree_checksum() { find . -path ./.build -prune -o -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum; }
new_handler() { swift package --allow-writing-to-package-directory new-handler "$@"; }
fail() { echo "test-scaffold: $*" >&2; exit 1; }

# Refused: nothing written, non-zero exit, a sentence saying why.
expect_refusal() {
    local expected=$1; shift
    local before output
    before=$(tree_checksum)
    if output=$(new_handler "$@" 2>&1); then fail "new-handler $* succeeded; it should have been refused"; fi
    grep -qF -- "$expected" <<<"$output" || fail "new-handler $*: expected '$expected' in: $output"
    [ "$(tree_checksum)" = "$before" ] || fail "new-handler $* changed files although it was refused"
    echo "refused as expected: new-handler $* -> $(grep -F -- "$expected" <<<"$output" | head -1)"
}

expect_refusal "is not a valid handler name" greet
expect_refusal "is not a valid handler name" Bad-Name
expect_refusal "is not a valid route" Greet --route 'greet..x'
expect_refusal "IPC-only" Greet --route 'internal.greet'
expect_refusal "exists already" Echo
# A target declared by `handlerModule("ConduitNATSHandler", …)`, and a route whose line has a comment.
expect_refusal "already has a target named 'ConduitNATSHandler'" NATSHandler --route 'nats2.*'
expect_refusal "the route 'ai.*' is already in the table" Greet --route 'ai.*' --add-route
# Types the package declares already: ConduitKit's protocol, a test handler of ConduitTesting.
expect_refusal "a type named 'ConduitHandler' exists already" Conduit
expect_refusal "a type named 'SilentHandler' exists already" Silent
# The module's name: the test's `ConduitError.ErrorHandler` found ConduitKit's ConduitError.
expect_refusal "a type named 'ConduitError' exists already" Error

# A kind registered as `name:"zeta"` (no space) is registered all the same (it was added twice,
# and the catalog trapped at every start); a table written inline can't be added to.
catalog=Sources/ConduitCLI/HandlerCatalog+BuiltIn.swift
kept=$(mktemp)
cp "$catalog" "$kept"; sed -i 's/name: "udp")/name:"zeta")/' "$catalog"
expect_refusal "already registers a handler kind 'zeta'" Zeta
cp "$kept" "$catalog"
cp config/conduit.yaml "$kept"; printf 'routes: []\n' > config/conduit.yaml
expect_refusal "is written inline" Hello --add-route
cp "$kept" config/conduit.yaml; rm -f "$kept"

# Channel: NIOCore declares a ChannelHandler too (the generated test did not compile). The
# table indented four spaces, not two: the entry follows it (two made the file invalid YAML;
# lint-config below reads it).
sed -i -E 's/^( +)/  \1/' config/conduit.yaml
new_handler Channel --route 'channel.*' --add-route
grep -qF 'HandlerKind(ChannelHandler.self, name: "channel")' Sources/ConduitCLI/HandlerCatalog+BuiltIn.swift || fail "not registered"
grep -qF 'import ConduitChannel' Sources/ConduitCLI/HandlerCatalog+BuiltIn.swift || fail "not imported"
grep -qxF -- '    - route: "channel.*"' config/conduit.yaml || fail "no route entry, indented as the others"
grep -qF 'name: "ConduitChannelTests"' Package.swift || fail "no test target"

expect_refusal "exists already" Channel --route 'channel.*'
config_before=$(sha256sum config/conduit.yaml)
new_handler Tally --route 'tally'
[ "$(sha256sum config/conduit.yaml)" = "$config_before" ] || fail "without --add-route the default config must not change"
grep -qF 'HandlerKind(TallyHandler.self, name: "tally")' Sources/ConduitCLI/HandlerCatalog+BuiltIn.swift || fail "Tally not registered"
expect_refusal "exists already" Channel --route 'other.*'
# An acronym is one word of the kind.
new_handler HTTPProxy --route 'proxy.*'
grep -qF 'HandlerKind(HTTPProxyHandler.self, name: "http-proxy")' Sources/ConduitCLI/HandlerCatalog+BuiltIn.swift || fail "HTTPProxy's kind is not http-proxy"

echo "== building and running the generated test ($((SECONDS - started)) s so far)"
swift build --target ConduitChannelTests
swift test --filter ConduitChannelTests 2>&1 | tee /tmp/conduit-scaffold-test.log
grep -qE "Test run with 4 tests.* passed" /tmp/conduit-scaffold-test.log || fail "the generated tests did not all pass"

echo "== lint-config on the scaffolded package, then on a broken table"
swift package lint-config
printf 'routes:\n  - route: greet.*\n    handler: greeet\n' > config/broken.yaml
if output=$(swift package lint-config 2>&1); then fail "lint-config accepted config/broken.yaml"; fi
grep -qE "config/broken.yaml:[0-9]+:[0-9]+: error: unknown handler kind 'greeet'" <<<"$output" || fail "lint-config said: $output"
echo "lint-config refused config/broken.yaml with its location"

echo "test-scaffold: ok in $((SECONDS - started)) s"
