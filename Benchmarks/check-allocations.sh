#!/usr/bin/env bash
# Gates the codec's allocation counts (exact on every run) against Benchmarks/Thresholds/.
# A change that adds an allocation, or saves one, fails until the thresholds are rewritten:
#   swift package --package-path Benchmarks --allow-writing-to-package-directory \
#     benchmark thresholds update --target CodecBenchmarks --metric mallocCountTotal --path Thresholds
set -euo pipefail
cd "$(dirname "$0")"
swift package benchmark thresholds check --target CodecBenchmarks --metric mallocCountTotal \
  --path Thresholds --no-progress
