#!/usr/bin/env bash
# Runs ragd's test suite: C unit tests (ctest) and black-box tests (pytest
# against the real binary), on the release build and again on the
# AddressSanitizer + UndefinedBehaviorSanitizer build. Ends with one line
# "N passed, N failed" summing every runner.
#
#   scripts/test.sh            everything (what `make test` and CI run)
#   scripts/test.sh e2e        only pytest, on $RAGD_BIN (default build/ragd)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${RAGD_PYTHON:-python3}
passed=0
failed=0
logdir=$(mktemp -d)

# The e2e suite runs in its own virtual environment in the cache, keyed by
# the pinned requirements, so the machine's Python is left alone.
ensure_pytest() {
  local key venv
  key=$(cat tests/e2e/requirements.txt <("$PYTHON" --version 2>&1) | sha256sum | cut -c1-12)
  venv=${RAGD_CACHE:-$HOME/.cache/ragd}/venv-tests-$key
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pytest --version >/dev/null 2>&1; then
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install --quiet -r tests/e2e/requirements.txt >"$logdir/pip.log" 2>&1 ||
      { tail -5 "$logdir/pip.log" >&2; return 1; }
  fi
  PYTHON=$venv/bin/python
  # The Chroma server the chroma index's unit tests start (tests/unit/test_chroma.c).
  export RAGD_CHROMA_BIN=${RAGD_CHROMA_BIN:-$venv/bin/chroma}
  # The FerretDB server the MongoDB store's tests start (unit and e2e).
  if [ -z "${RAGD_FERRETDB:-}" ]; then
    RAGD_FERRETDB=$(bash scripts/ferretdb.sh) || RAGD_FERRETDB=""
    export RAGD_FERRETDB
  fi
}

run_ctest() { # build-dir label
  local log="$logdir/ctest-$2.log"
  (cd "$1" && ctest --output-on-failure -j"$(nproc)") >"$log" 2>&1
  cat "$log"
  local line total fails
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -1)
  if [ -z "$line" ]; then
    echo "ctest ($2) did not report a summary" >&2
    failed=$((failed + 1))
    return
  fi
  fails=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
  total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
  passed=$((passed + total - fails))
  failed=$((failed + fails))
}

run_pytest() { # binary label
  local log="$logdir/pytest-$2.log"
  RAGD_BIN="$1" "$PYTHON" -m pytest tests/e2e -q -p no:cacheprovider 2>&1 | tee "$log"
  local line p f e
  line=$(grep -E "^=*.* in [0-9.]+s" "$log" | tail -1)
  p=$(grep -oE "[0-9]+ passed" <<<"$line" | grep -oE "[0-9]+" || true)
  f=$(grep -oE "[0-9]+ failed" <<<"$line" | grep -oE "[0-9]+" || true)
  e=$(grep -oE "[0-9]+ errors?" <<<"$line" | grep -oE "[0-9]+" || true)
  if [ -z "$line" ]; then
    echo "pytest ($2) did not report a summary" >&2
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0} + ${e:-0}))
}

ensure_pytest || { echo "cannot set up the test environment" >&2; echo "0 passed, 1 failed"; exit 1; }

# The deployment checks (tests/e2e/test_deploy.py) need helm, kubeconform and
# hadolint: built into the cache here, once (a few minutes on a cold cache),
# so the time shows up here rather than inside one test. A failure is
# reported by those tests.
echo "== deployment tools (scripts/validate-deploy.sh tools)"
bash scripts/validate-deploy.sh tools || echo "deployment tools not built: tests/e2e/test_deploy.py will fail" >&2

if [ "${1:-all}" = e2e ]; then
  run_pytest "${RAGD_BIN:-build/ragd}" release
else
  echo "== unit tests (release)"
  run_ctest build release
  echo "== unit tests (ASan + UBSan)"
  run_ctest build-asan asan
  echo "== end-to-end tests (release)"
  run_pytest build/ragd release
  echo "== end-to-end tests (ASan + UBSan)"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_pytest build-asan/ragd asan
fi
rm -rf "$logdir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
