#!/usr/bin/env bash
# Fuzzes Message(decoding:) and ChunkAssembler with libFuzzer + AddressSanitizer for SECONDS
# (default 60), seeded from the golden vectors (Tests/ConduitWireTests/Fixtures/framing.json,
# the repository's copy of shared/vectors/framing.json). New crash inputs land in
# Tests/Fuzz/crashes/; keep them there once fixed: a plain `conduit-fuzz DIR` replays them.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
work=$repo/.build-fuzz
corpus=$work/corpus; crashes=$repo/Tests/Fuzz/crashes
mkdir -p "$corpus" "$crashes"

python3 - "$repo/Tests/ConduitWireTests/Fixtures/framing.json" "$corpus" <<'PY'
import json, sys, pathlib
vectors = json.load(open(sys.argv[1]))
out = pathlib.Path(sys.argv[2])
for case in vectors["valid"] + vectors["invalid"]:
    (out / ("seed-" + case["name"])).write_bytes(bytes.fromhex(case["hex"]))
# Resume's fields (SPEC §9), which the target also decodes set aside: none of the vectors has them.
def message(headers, payload=b""):
    body = bytes([len(headers)])
    for name, value in headers:
        body += bytes([len(name)]) + name + len(value).to_bytes(2, "big") + value
    return body + len(payload).to_bytes(2, "big") + payload
(out / "seed-resume").write_bytes(message([(b"route", b"echo"), (b"pos", b"12"), (b"ack", b"007")], b"hi"))
(out / "seed-resume-bad").write_bytes(message([(b"ack", b"18446744073709551616"), (b"pos", b"+1"), (b"pos", b"")]))
# Near the header limit, where the room kept for `pos` and `more` decides what may be sent.
for count in (253, 254, 255):
    (out / f"seed-headers-{count}").write_bytes(message([(b"h%d" % i, b"v") for i in range(count)], b"x"))
PY

# -Xswiftc reaches the package's plugin tools too, and linking those with libFuzzer's main
# fails ("undefined symbol: LLVMFuzzerTestOneInput"); SwiftPM builds the plugins' tools apart,
# so the fuzzer still builds. The log is shown only when the fuzzer itself failed to build.
build_log=$work/build.log
if ! swift build --package-path "$repo" --scratch-path "$work" -c debug --product conduit-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -use-ld=lld >"$build_log" 2>&1; then
  cat "$build_log" >&2; echo "fuzz: the fuzzer did not build" >&2; exit 1
fi
echo "fuzz: built conduit-fuzz (libFuzzer + AddressSanitizer)" >&2
fuzzer=$(swift build --package-path "$repo" --scratch-path "$work" -c debug --show-bin-path)/conduit-fuzz
# Past crash inputs are read as seeds too, so every run replays them. Swift's own crash
# backtracer is off: under AddressSanitizer it hung on a failed precondition instead of letting
# libFuzzer report it.
SWIFT_BACKTRACE=enable=no "$fuzzer" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$corpus" "$crashes" 2>&1 | tee "$work/fuzz.log" | grep -E 'stat::number_of_executed_units|Done|ERROR|SUMMARY|crash-' || true
grep -q '^Done\|stat::number_of_executed_units' "$work/fuzz.log" && ! grep -q 'ERROR: libFuzzer\|ERROR: AddressSanitizer' "$work/fuzz.log"
