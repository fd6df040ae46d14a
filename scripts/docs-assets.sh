#!/usr/bin/env bash
# Fetches the JavaScript and CSS that ragd's /docs (Swagger UI) and /redoc
# (ReDoc) pages need, from the npm registry at pinned versions checked
# against pinned SHA-256 sums, into a cache directory keyed by the versions.
# CMake embeds the files into the binary (RAGD_DOCS_ASSETS_DIR), so ragd
# serves its API docs with no network access; without them it still builds
# and /docs answers 404. A second run finds everything in place and does
# nothing.
#
#   scripts/docs-assets.sh             fetch (if needed); print nothing
#   scripts/docs-assets.sh --print-dir print the directory the files go to
#
#   RAGD_CACHE   cache root (default ~/.cache/ragd)
set -euo pipefail

SWAGGER_UI_VERSION=5.35.0
SWAGGER_UI_SHA256=1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6
REDOC_VERSION=2.5.2
REDOC_SHA256=b80462bec8e96d985086b1a23768f46f0776ed37c719b9a752fd443557282e03

CACHE=${RAGD_CACHE:-$HOME/.cache/ragd}
DIR="$CACHE/docs-assets-swagger-ui-$SWAGGER_UI_VERSION-redoc-$REDOC_VERSION"

log() { printf 'docs-assets: %s\n' "$*" >&2; }

if [ "${1:-}" = --print-dir ]; then
  printf '%s\n' "$DIR"
  exit 0
fi
[ -f "$DIR/.done" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch PACKAGE VERSION SHA256 -> $work/PACKAGE-VERSION.tgz, checked
fetch() {
  local pkg=$1 ver=$2 sum=$3 tgz="$work/$1-$2.tgz"
  if command -v npm >/dev/null 2>&1; then
    (cd "$work" && npm pack --silent "$pkg@$ver" >/dev/null)
  else
    curl -fsSL -o "$tgz" "https://registry.npmjs.org/$pkg/-/$pkg-$ver.tgz"
  fi
  if ! echo "$sum  $tgz" | sha256sum -c --status; then
    log "$pkg@$ver: SHA-256 mismatch (want $sum, got $(sha256sum "$tgz" | cut -d' ' -f1))"
    exit 1
  fi
}

log "fetching swagger-ui-dist@$SWAGGER_UI_VERSION and redoc@$REDOC_VERSION into $DIR"
fetch swagger-ui-dist "$SWAGGER_UI_VERSION" "$SWAGGER_UI_SHA256"
fetch redoc "$REDOC_VERSION" "$REDOC_SHA256"
mkdir -p "$work/out"
tar -xzf "$work/swagger-ui-dist-$SWAGGER_UI_VERSION.tgz" -C "$work/out" --strip-components=1 \
  package/swagger-ui-bundle.js package/swagger-ui.css
tar -xzf "$work/redoc-$REDOC_VERSION.tgz" -C "$work/out" --strip-components=2 \
  package/bundles/redoc.standalone.js
# The LICENSE files travel with the code they cover.
tar -xzf "$work/swagger-ui-dist-$SWAGGER_UI_VERSION.tgz" -O package/LICENSE \
  >"$work/out/LICENSE.swagger-ui"
tar -xzf "$work/redoc-$REDOC_VERSION.tgz" -O package/LICENSE >"$work/out/LICENSE.redoc"
touch "$work/out/.done"
rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
mv "$work/out" "$DIR"
