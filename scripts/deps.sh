#!/usr/bin/env bash
# Installs what ragd needs to build and test, and builds a pinned llama.cpp
# into a cache outside the clone, keyed by version and CPU target. A second
# run finds everything in place and does nothing.
#
#   RAGD_CACHE      cache root (default ~/.cache/ragd)
#   RAGD_CPU        native (default) or a portable -march level, e.g. x86-64-v3
#   RAGD_NO_APT=1   skip the Debian packages (you installed them yourself)
#
# Where llama.cpp is already installed system-wide (pkg-config `llama` or its
# CMake package), the build uses that one and nothing is built here.
set -euo pipefail

LLAMA_PY_VERSION=0.3.36   # llama-cpp-python sdist that vendors llama.cpp
CACHE=${RAGD_CACHE:-$HOME/.cache/ragd}
CPU=${RAGD_CPU:-native}
HERE=$(cd "$(dirname "$0")/.." && pwd)

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libmicrohttpd-dev libjansson-dev libsqlite3-dev libyaml-dev libcmocka-dev
  python3-venv prometheus curl
  libcurl4-openssl-dev libhiredis-dev redis-server redis-tools
  libcmark-dev libxml2-dev libpoppler-glib-dev poppler-utils libcairo2-dev libfontconfig-dev
  libhnswlib-dev libfaiss-dev libsodium-dev nginx-light libmongoc-dev
)

log() { printf 'deps: %s\n' "$*" >&2; }

install_apt() {
  [ "${RAGD_NO_APT:-0}" = 1 ] && return 0
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

system_llama() {
  pkg-config --exists llama 2>/dev/null && return 0
  for d in /usr/lib/cmake/llama /usr/local/lib/cmake/llama /usr/lib/*/cmake/llama; do
    [ -f "$d/llama-config.cmake" ] && return 0
  done
  return 1
}

build_llama() {
  local prefix="$CACHE/llama.cpp-$LLAMA_PY_VERSION-$CPU"
  if [ -f "$prefix/.done" ]; then
    return 0
  fi
  if [ "${RAGD_SYSTEM_LLAMA:-1}" = 1 ] && system_llama; then
    log "using the system's llama.cpp"
    return 0
  fi
  local work="$CACHE/src"
  mkdir -p "$work"
  local sdist="$work/llama_cpp_python-$LLAMA_PY_VERSION.tar.gz"
  if [ ! -f "$sdist" ]; then
    log "fetching llama-cpp-python $LLAMA_PY_VERSION sdist from PyPI"
    python3 -m pip download --quiet --no-deps \
      -d "$work" "llama-cpp-python==$LLAMA_PY_VERSION"
  fi
  echo "$(cat "$HERE/scripts/llama-cpp-python.sha256")  $sdist" | sha256sum -c --quiet -
  local src="$work/llama_cpp_python-$LLAMA_PY_VERSION"
  rm -rf "$src" && tar -xzf "$sdist" -C "$work"
  local march=()
  if [ "$CPU" = native ]; then
    march=(-DGGML_NATIVE=ON)
  else
    march=(-DGGML_NATIVE=OFF "-DCMAKE_C_FLAGS=-march=$CPU" "-DCMAKE_CXX_FLAGS=-march=$CPU")
  fi
  log "building llama.cpp ($CPU) into $prefix"
  rm -rf "$src/build" "$prefix"
  local common=(-S "$src/vendor/llama.cpp" -B "$src/build" -G Ninja
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix"
    -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
    -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_OPENMP=OFF
    "${march[@]}")
  # Library first, installed alone; then llama.cpp's own embedding tool (the
  # benchmark's baseline) from the same tree without installing the examples.
  cmake "${common[@]}" -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_COMMON=OFF \
    >"$work/llama-configure.log"
  cmake --build "$src/build" -j"$(nproc)" >"$work/llama-build.log"
  cmake --install "$src/build" >"$work/llama-install.log"
  cmake "${common[@]}" -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_COMMON=ON \
    >>"$work/llama-configure.log"
  cmake --build "$src/build" --target llama-embedding -j"$(nproc)" >>"$work/llama-build.log"
  mkdir -p "$prefix/bin"
  cp "$src/build/bin/llama-embedding" "$prefix/bin/"
  rm -rf "$src"
  touch "$prefix/.done"
}

install_apt
build_llama
# FerretDB, the MongoDB-wire-compatible server the MongoDB store's tests start.
bash "$HERE/scripts/ferretdb.sh" >/dev/null ||
  log "FerretDB not built: the MongoDB store's tests (test_store*_mongo, test_mongo*.py) will fail"
bash "$HERE/scripts/docs-assets.sh" || log "API docs assets not fetched: /docs and /redoc will answer 404"
log "ok"
