#!/usr/bin/env bash
# Runs part of the end-to-end suite against `ragd serve` under valgrind's
# memcheck (--leak-check=full; errors and definite leaks fail: exit 99, see
# tests/e2e/conftest.py). Not part of `make test`: under valgrind the models
# run ~50x slower, so this takes tens of minutes.
#
#   scripts/valgrind.sh [test files...]   default: the files below
#
# Valgrind 3.19 does not decode AVX-512, so this builds its own ragd (and
# llama.cpp, through scripts/deps.sh) for x86-64-v3 (AVX2) in build-valgrind/.
# Suppressions, for third-party libraries only, are in scripts/valgrind.supp.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${VALGRIND_BUILD:-build-valgrind}
CPU=x86-64-v3
CACHE=${RAGD_CACHE:-$HOME/.cache/ragd}
FILES=("$@")
if [ ${#FILES[@]} -eq 0 ]; then
  # The HTTP API broadly: every route, bad input, limits, filters, the
  # OpenAI-compatible routes, ingest formats and jobs.
  FILES=(tests/e2e/test_api.py tests/e2e/test_errors.py tests/e2e/test_limits.py
         tests/e2e/test_filters.py tests/e2e/test_openai.py tests/e2e/test_ingest.py)
fi

command -v valgrind >/dev/null || { echo "valgrind: not installed (apt install valgrind)" >&2; exit 1; }
RAGD_CPU=$CPU RAGD_NO_APT=1 bash scripts/deps.sh || exit 1
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_PREFIX_PATH="$CACHE/llama.cpp-0.3.36-$CPU" \
    -DRAGD_CPU=$CPU -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DRAGD_DOCS_ASSETS_DIR="$(bash scripts/docs-assets.sh --print-dir)" >/dev/null || exit 1
fi
cmake --build "$BUILD" -j"$(nproc)" --target ragd ragd-extract-pdf >/dev/null || exit 1
bash scripts/models.sh >/dev/null || exit 1

# The suite's virtual environment (scripts/test.sh makes it).
key=$(cat tests/e2e/requirements.txt <(python3 --version 2>&1) | sha256sum | cut -c1-12)
PY=$CACHE/venv-tests-$key/bin/python
if [ ! -x "$PY" ]; then
  python3 -m venv "$(dirname "$(dirname "$PY")")" &&
    "$PY" -m pip install --quiet -r tests/e2e/requirements.txt || exit 1
fi
[ -x "$PY" ] || { echo "valgrind: no test environment at $PY" >&2; exit 1; }

TMP=$(mktemp -d /tmp/ragd-valgrind-XXXXXX)
RAGD_VALGRIND=1 RAGD_BIN="$BUILD/ragd" "$PY" -m pytest "${FILES[@]}" -v -p no:cacheprovider \
  --basetemp="$TMP"
rc=$?
# One line per server run: its errors and definite leaks.
for f in "$TMP"/ragd*/*.valgrind; do
  [ -f "$f" ] || continue
  printf '%s: %s; %s\n' "${f#"$TMP"/}" \
    "$(grep -oE 'ERROR SUMMARY: [0-9]+ errors' "$f" | tail -1)" \
    "$(grep -oE 'definitely lost: [0-9,]+ bytes' "$f" | tail -1)"
done
echo "valgrind: server logs in $TMP"
exit $rc
