#!/usr/bin/env bash
# Retrieval quality and speed of `ragd eval` on each vector backend: the
# exact flat index and a Chroma collection (a `chroma run` server started
# here on a free loopback port, in a temporary directory).
#
#   bench/eval_backends.sh [DATASET...]     default: adi scifact
#
# CHROMA_BIN: the chroma CLI (default: the e2e test venv's, made by
# scripts/test.sh). RAGD_BIN, DATASETS, OUT (JSON reports) and INDEXES
# (default "flat chroma") may be set.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RAGD_BIN=${RAGD_BIN:-$ROOT/build/ragd}
export -n RAGD_BIN  # ragd warns about RAGD_* variables that are no setting
DATASETS=${DATASETS:-$ROOT/../shared/datasets}
OUT=${OUT:-$(mktemp -d)}
CHROMA_BIN=${CHROMA_BIN:-$(ls -d "${RAGD_CACHE:-$HOME/.cache/ragd}"/venv-tests-*/bin/chroma 2>/dev/null | head -1)}
[ -x "$CHROMA_BIN" ] || { echo "no chroma CLI (set CHROMA_BIN)" >&2; exit 2; }
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(adi scifact)

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$CHROMA_BIN" run --path "$dir/chroma" --host 127.0.0.1 --port "$port" >"$dir/chroma.log" 2>&1 &
chroma_pid=$!
trap 'kill $chroma_pid 2>/dev/null; wait $chroma_pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/api/v2/heartbeat" >/dev/null && break
  sleep 0.2
done
echo "chroma $("$CHROMA_BIN" --version 2>/dev/null | tail -1) on port $port; reports in $OUT" >&2

for ds in "${sets[@]}"; do
  for index in ${INDEXES:-flat chroma}; do
    echo "== $ds, index $index" >&2
    nice -n 10 "$RAGD_BIN" eval --dataset "$DATASETS/$ds" --index "$index" \
      --chroma-url "http://127.0.0.1:$port" --json "$OUT/$ds-$index.json" --log-level warn
  done
done
