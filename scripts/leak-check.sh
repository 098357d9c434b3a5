#!/usr/bin/env bash
# Runs the Swift tests under AddressSanitizer with LeakSanitizer and reports what leaked, by
# the first frame of ours in each allocation's stack (a reference cycle shows as "indirect"
# leaks: nothing outside the cycle points at it). Not part of scripts/test.sh: the build takes
# about 9 minutes here and the run about 7. Extra arguments go to `swift test` (`--filter X`).
# BUILD_PATH: where the sanitized build goes (default .build-asan). Results: docs/memory.md.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_PATH:-$repo/.build-asan}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
cd "$repo"

swift build --build-tests --sanitize=address --build-path "$build" 2>&1 | grep -E "error:|(Sources|Tests)/.*warning:|Build complete"
# Leaks are reported as the process exits, and make its status 1 whatever the tests did: the
# tests' outcome is read from their output instead. A failed test fails the script, and so
# does a run that never reported its end (a memory error aborts the process mid-run).
ASAN_OPTIONS=detect_leaks=1:log_path=$logs/asan SWIFT_BACKTRACE=enable=no SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=4 \
    swift test --skip-build --sanitize=address --build-path "$build" "$@" > "$logs/tests.txt" 2>&1 || true
grep -E "^(✘|✔ Test run)" "$logs/tests.txt" || true
if grep -q "^✔ Test run" "$logs/tests.txt" && ! grep -q "^✘" "$logs/tests.txt"; then failed=0; else failed=1; fi

python3 - "$logs" <<'PY'
import collections, glob, re, subprocess, sys
sites = collections.defaultdict(lambda: [0, 0])
total = [0, 0]
for path in glob.glob(sys.argv[1] + "/asan.*"):
    text = open(path).read()
    if "ERROR: AddressSanitizer" in text:
        print(f"memory error reported ({path}):\n" + text[:4000])
        sys.exit(1)
    for block in text.split("\n\n"):
        found = re.search(r"leak of (\d+) byte\(s\) in (\d+) object", block)
        if not found:
            continue
        frames = re.findall(r"in (\$s\S+)", block)
        # XCTest's own run (before swift-testing's) leaks a few objects of its harness.
        if any("XCTest" in frame for frame in frames[:6]):
            continue
        ours = [frame for frame in frames if re.search(r"Conduit|Tests|Handlers", frame)]
        site = ours[0] if ours else (frames[3] if len(frames) > 3 else "(no Swift frame)")
        size, count = int(found.group(1)), int(found.group(2))
        sites[site][0] += size; sites[site][1] += count
        total[0] += size; total[1] += count
print(f"leaked: {total[0]} bytes in {total[1]} allocations")
top = sorted(sites.items(), key=lambda item: -item[1][0])[:25]
names = subprocess.run(["swift", "demangle", "--simplified", "--compact"] + [site for site, _ in top], capture_output=True, text=True).stdout.splitlines()
for (site, (size, count)), name in zip(top, names):
    print(f"{size:>10} bytes {count:>6} allocations  {name[:150]}")
PY
exit "$failed"
