#!/usr/bin/env bash
# Gates allocation counts against Benchmarks/Thresholds/: the codec's (exact on every run) and
# the routed echo's through a real in-process host (none per message; see RoutedEchoBenchmarks).
# A change that adds an allocation, or saves one, fails until the thresholds are rewritten:
#   swift package --package-path Benchmarks --allow-writing-to-package-directory \
#     benchmark thresholds update --target CodecBenchmarks --metric mallocCountTotal --path Thresholds
#   (and the same with --target RoutedEchoBenchmarks)
set -euo pipefail
cd "$(dirname "$0")"
for target in CodecBenchmarks RoutedEchoBenchmarks; do
  swift package benchmark thresholds check --target "$target" --metric mallocCountTotal \
    --path Thresholds --no-progress
done
