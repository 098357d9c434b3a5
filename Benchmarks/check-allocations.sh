#!/usr/bin/env bash
# Gates allocation counts against Benchmarks/Thresholds/: the codec's (exact on every run) and
# the routed echo's through a real in-process host (none per message; see RoutedEchoBenchmarks).
# A change that adds an allocation, or saves one, fails until the thresholds are rewritten:
#   swift package --package-path Benchmarks --allow-writing-to-package-directory \
#     benchmark thresholds update --target CodecBenchmarks --metric mallocCountTotal --path Thresholds
#   (and the same with --target RoutedEchoBenchmarks)
set -euo pipefail
cd "$(dirname "$0")"
# SwiftPM itself once died of a signal in its plugin runner (a segfault in libdispatch, while
# reading the benchmark plugin's messages; 2026-12-02): that run is made once more. A check that
# fails (a count off its threshold) exits with a status of its own and is never repeated.
check() {
  swift package benchmark thresholds check --target "$1" --metric mallocCountTotal --path Thresholds --no-progress
}
for target in CodecBenchmarks RoutedEchoBenchmarks; do
  status=0; check "$target" || status=$?
  if [ "$status" -ge 128 ]; then
    echo "swift package died of signal $((status - 128)) checking $target; once more" >&2
    status=0; check "$target" || status=$?
  fi
  [ "$status" = 0 ] || exit "$status"
done
