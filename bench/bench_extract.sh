#!/usr/bin/env bash
# Extract + chunk throughput over the HTML manuals Debian installs
# (postgresql-doc-15, python3-doc: ~1,700 files), with the embedding cost of
# the same chunks measured on a sample. Needs root for apt-get the first time.
#   bash bench/bench_extract.sh [--max-tokens N] [--embed-chunks N]
set -euo pipefail
cd "$(dirname "$0")/.."
for pkg in postgresql-doc-15 python3-doc; do
  dpkg -s "$pkg" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg"
done
cmake --build build --target bench_extract ragd-extract-pdf >/dev/null
files=$(mktemp)
trap 'rm -f "$files"' EXIT
{ find /usr/share/doc/postgresql-doc-15/html -name '*.html'
  find -L /usr/share/doc/python3-doc/html -name '*.html'; } | sort -u >"$files"
echo "files: $(wc -l <"$files")" >&2
nice -n 10 ./build/bench_extract --max-tokens 128 --embed-chunks 500 "$@" - <"$files"
