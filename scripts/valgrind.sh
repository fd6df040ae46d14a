#!/usr/bin/env bash
# Runs part of the end-to-end suite against `ragd serve` under valgrind's
# memcheck (--leak-check=full; errors and definite leaks fail: exit 99, see
# tests/e2e/conftest.py). Not part of `make test`: under valgrind the models
# run ~50x slower, so this takes tens of minutes.
#
#   scripts/valgrind.sh [test files...]   default: the files below
#   scripts/valgrind.sh --all              every tests/e2e file, one pytest run each
#   VALGRIND_JOBS=2 scripts/valgrind.sh ...  two files at a time (one per core)
#   RAGD_VALGRIND_REMOTE_EMBED=1 scripts/valgrind.sh ...  the servers under
#     memcheck embed through one plain ragd (models.embedder=remote): the
#     model's arithmetic, 100-200x slower under memcheck, no longer decides
#     how long a test takes (tests counting the local tokenizer's tokens skip)
#
# Each file's pytest output goes to $VALGRIND_OUT/<file>.log and a line per
# file to $VALGRIND_OUT/summary.tsv: the tests' result, then the processes
# run under memcheck (servers, CLI commands, the PDF helper: each writes a
# *.valgrind report under the basetemp) and how many of them ended with 0
# errors and 0 bytes definitely lost (one the test SIGKILLs writes no
# summary). A file already in
# summary.tsv is skipped, so a long --all run resumes where it stopped.
# Tests may fail for slowness alone (a server's deadline set by the test);
# the leak verdict is the server counts.
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
if [ "${1:-}" = --all ]; then
  FILES=(tests/e2e/test_*.py)
elif [ ${#FILES[@]} -eq 0 ]; then
  # The HTTP API broadly: every route, bad input, limits, filters, the
  # OpenAI-compatible routes, ingest formats and jobs.
  FILES=(tests/e2e/test_api.py tests/e2e/test_errors.py tests/e2e/test_limits.py
         tests/e2e/test_filters.py tests/e2e/test_openai.py tests/e2e/test_ingest.py)
fi

command -v valgrind >/dev/null || { echo "valgrind: not installed (apt install valgrind)" >&2; exit 1; }
RAGD_CPU=$CPU bash scripts/deps.sh || exit 1
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

OUT=${VALGRIND_OUT:-/tmp/ragd-valgrind}
mkdir -p "$OUT"
touch "$OUT/summary.tsv"
run_file() { # file -> 0 when its tests passed
  local file=$1 name TMP frc runs=0 clean=0 e l f
  name=$(basename "$file" .py)
  grep -q "^$name	" "$OUT/summary.tsv" && return 0
  TMP=$(mktemp -d "$OUT/$name-XXXXXX")
  RAGD_VALGRIND=1 RAGD_BIN="$BUILD/ragd" "$PY" -m pytest "$file" -v -p no:cacheprovider \
    --basetemp="$TMP" >"$OUT/$name.log" 2>&1
  frc=$?
  # One line per process run under memcheck: its errors and definite leaks.
  while IFS= read -r f; do
    runs=$((runs + 1))
    e=$(grep -oE 'ERROR SUMMARY: [0-9]+ errors' "$f" | tail -1)
    l=$(grep -oE 'definitely lost: [0-9,]+ bytes' "$f" | tail -1)
    [ "$e" = "ERROR SUMMARY: 0 errors" ] && { [ -z "$l" ] || [ "$l" = "definitely lost: 0 bytes" ]; } &&
      clean=$((clean + 1))
    printf '%s: %s; %s\n' "${f#"$TMP"/}" "${e:-no summary}" "${l:-}" >>"$OUT/$name.log"
  done < <(find "$TMP" -name '*.valgrind')
  printf '%s\t%s\tservers %d, clean %d\n' "$name" \
    "$(grep -E '^=+ .*(passed|failed|error|no tests ran)' "$OUT/$name.log" | tail -1 | tr -d '=')" \
    "$runs" "$clean" | tee -a "$OUT/summary.tsv"
  [ $frc -eq 0 ] || [ $frc -eq 5 ]
}

# VALGRIND_JOBS files at once (memcheck runs a process's threads on one
# core, so one job per core). Each job takes the next file no job has
# claimed yet (mkdir is atomic), so one long file does not hold back the
# files behind it.
JOBS=${VALGRIND_JOBS:-1}
CLAIMS=$(mktemp -d "$OUT/.claims-XXXXXX")
trap 'rm -rf "$CLAIMS"' EXIT
rc=0
pids=()
for ((j = 0; j < JOBS; j++)); do
  (
    jrc=0
    for file in "${FILES[@]}"; do
      mkdir "$CLAIMS/$(basename "$file")" 2>/dev/null || continue
      run_file "$file" || jrc=1
    done
    exit $jrc
  ) &
  pids+=($!)
done
for p in "${pids[@]}"; do
  wait "$p" || rc=1
done
echo "valgrind: logs and summary.tsv in $OUT"
exit $rc
