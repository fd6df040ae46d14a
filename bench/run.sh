#!/usr/bin/env bash
# Runs the benchmarks and prints their Markdown; paste into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 bench/bench_foundation.py "$@"
