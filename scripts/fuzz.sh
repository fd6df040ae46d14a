#!/usr/bin/env bash
# Builds ragd's libFuzzer targets (fuzz/fuzz_*.c, clang with ASan + UBSan,
# in build-fuzz/) and runs each for a while on its committed seed corpus
# (fuzz/corpus/<target>/). A crash, leak, timeout or sanitizer report prints
# the fuzzer's report and the reproducer's path and fails the run.
#
#   scripts/fuzz.sh [seconds] [target...]   default 20 s each, every target
#
#   FUZZ_JOBS=N      run N targets at a time (default 1)
#   FUZZ_LOG_DIR     keep each target's log and new inputs here (default: a temp dir)
#   FUZZ_NICE        nice level for the fuzzers (default 0)
#   FUZZ_BUILD       build directory (default build-fuzz)
#
# A reproducer replays with: build-fuzz/fuzz/<target> <file>. Commit it under
# fuzz/corpus/<target>/ with the fix, so every later run replays it first.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_EACH=${1:-20}
shift || true
BUILD=${FUZZ_BUILD:-build-fuzz}
JOBS=${FUZZ_JOBS:-1}
NICE=${FUZZ_NICE:-0}
CACHE=${RAGD_CACHE:-$HOME/.cache/ragd}
LLAMA=${LLAMA_PREFIX:-$CACHE/llama.cpp-0.3.36-${RAGD_CPU:-native}}
CC=${FUZZ_CC:-clang-14}
CXX=${FUZZ_CXX:-clang++-14}

command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (apt install clang-14 libclang-rt-14-dev)" >&2; exit 1; }

if [ ! -f "$BUILD/build.ninja" ]; then
  CC=$CC CXX=$CXX cmake -S . -B "$BUILD" -G Ninja -DCMAKE_PREFIX_PATH="$LLAMA" \
    -DRAGD_CPU="${RAGD_CPU:-native}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAGD_FUZZ=ON \
    >"$BUILD.configure.log" 2>&1 || { cat "$BUILD.configure.log" >&2; exit 1; }
  rm -f "$BUILD.configure.log"
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}" >/dev/null ||
  { cmake --build "$BUILD" --target "${targets[@]}" 2>&1 | tail -40 >&2; exit 1; }

logdir=${FUZZ_LOG_DIR:-$(mktemp -d)}
mkdir -p "$logdir"

run_one() { # target
  local t=$1 work="$logdir/$1.corpus" log="$logdir/$1.log"
  mkdir -p "$work" "$logdir/$t.artifacts"
  # New inputs go to the work corpus, not the committed seeds.
  nice -n "$NICE" "$BUILD/fuzz/$t" "$work" "fuzz/corpus/$t" \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$logdir/$t.artifacts/" >"$log" 2>&1
}

status=0
pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=("$!")
  if [ "${#pids[@]}" -ge "$JOBS" ]; then
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
  fi
done
wait

for t in "${targets[@]}"; do
  log="$logdir/$t.log"
  runs=$(grep -oE "stat::number_of_executed_units: [0-9]+" "$log" | grep -oE "[0-9]+$" || true)
  crash=$(ls "$logdir/$t.artifacts" 2>/dev/null | head -1)
  if grep -qE "^==[0-9]+==ERROR|runtime error:|deadly signal|^SUMMARY: |Done [0-9]+ runs" "$log" &&
     ! grep -qE "^==[0-9]+==ERROR|runtime error:|deadly signal|^SUMMARY: " "$log" && [ -z "$crash" ]; then
    printf 'fuzz: %-24s ok     %10s runs in %ss\n' "$t" "${runs:-?}" "$SECONDS_EACH"
  else
    status=1
    printf 'fuzz: %-24s FAILED %10s runs\n' "$t" "${runs:-?}"
    echo "---- $t: fuzzer report ($log)"
    grep -nE "ERROR|runtime error|deadly signal|SUMMARY|#[0-9]+ 0x|Test unit written|breaks a promise|answered" "$log" | head -60
    [ -n "$crash" ] && echo "---- reproducer: $logdir/$t.artifacts/$crash (replay: $BUILD/fuzz/$t <file>)"
  fi
done
[ -z "${FUZZ_LOG_DIR:-}" ] && [ "$status" -eq 0 ] && rm -rf "$logdir"
exit "$status"
