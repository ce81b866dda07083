#!/usr/bin/env bash
# kubeconform, offline, for the chart: schemas from a real apiserver's /openapi/v2 (the built-in kinds of exactly
# that Kubernetes version), our CRDs (crds/) and the prometheus-operator CRDs (from its Go module), all strict
# (hack/kubeconform-schemas.ts: an unknown field anywhere is an error); nothing is downloaded from a schema site.
#
#   hack/kubeconform.sh build                 build kubeconform once, print its path on stdout
#   hack/kubeconform.sh schemas DIR           write the JSON schemas into DIR (needs KUBECONFIG: the apiserver)
#   hack/kubeconform.sh chart [DIR] [-- ARGS] schemas into DIR (default .cache/kubeconform/schemas), then
#                                             `helm template` with every optional part on
#                                             (charts/vigil/ci/all-on-values.yaml), through
#                                             `kubeconform -strict -summary` (ARGS added, e.g. -output json)
#   hack/kubeconform.sh validate DIR ARGS...  kubeconform -strict against the schemas in DIR (files or stdin)
#
# Binary: ${VIGIL_CACHE:-$HOME/.cache/vigil}/kubeconform/<version>/kubeconform. Progress goes to stderr.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd -P)

KUBECONFORM_VERSION=v0.8.0
KUBECONFORM_PKG=github.com/yannh/kubeconform/cmd/kubeconform
PROM_OPERATOR_MOD=github.com/prometheus-operator/prometheus-operator@v0.85.0
PROM_OPERATOR_CRDS=(servicemonitors podmonitors prometheusrules)

BIN_DIR=${VIGIL_CACHE:-$HOME/.cache/vigil}/kubeconform/$KUBECONFORM_VERSION
KUBECONFORM=$BIN_DIR/kubeconform

log() { printf '[kubeconform] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

build() {
  [[ -x $KUBECONFORM ]] && return 0
  command -v go >/dev/null || die "go not found: it is needed to build kubeconform $KUBECONFORM_VERSION"
  mkdir -p "$BIN_DIR"
  # Two callers building at once would each spend the same minute: the second waits, then reuses.
  exec 8>"$BIN_DIR/.lock"
  if command -v flock >/dev/null; then
    flock -n 8 || {
      log "another build of kubeconform $KUBECONFORM_VERSION is running; waiting for it"
      flock 8
    }
  fi
  [[ -x $KUBECONFORM ]] && return 0
  local tmp start=$SECONDS
  tmp=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  log "building kubeconform $KUBECONFORM_VERSION into $BIN_DIR ..."
  # From / so that no go.work or go.mod around the caller takes part.
  (cd / && GOBIN=$tmp CGO_ENABLED=0 go install -p "${VIGIL_BUILD_JOBS:-2}" -ldflags "-s -w" \
    "$KUBECONFORM_PKG@$KUBECONFORM_VERSION") >&2 || die "go install $KUBECONFORM_PKG@$KUBECONFORM_VERSION failed"
  mv -f "$tmp/kubeconform" "$KUBECONFORM"
  rm -rf "$tmp"
  trap - EXIT
  exec 8>&-
  log "built kubeconform $KUBECONFORM_VERSION in $((SECONDS - start))s"
}

# The prometheus-operator CRDs of the version the chart's monitoring objects are written against, from the Go
# module cache (the proxy serves the module zip; its example/ holds the CRDs as users apply them).
prom_operator_crds() {
  local dir
  dir=$(cd / && go mod download -json "$PROM_OPERATOR_MOD" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir ]] || die "go mod download $PROM_OPERATOR_MOD gave no directory"
  for crd in "${PROM_OPERATOR_CRDS[@]}"; do
    local f=$dir/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml
    [[ -f $f ]] || die "$f is missing"
    printf '%s\n' "$f"
  done
}

schemas() {
  local out=${1:?usage: hack/kubeconform.sh schemas DIR}
  [[ -n ${KUBECONFIG:-} ]] || die "KUBECONFIG is not set: the schemas come from that apiserver's /openapi/v2"
  local crds=()
  mapfile -t crds < <(prom_operator_crds)
  rm -rf "$out"
  # Through npx: the node devDependency (Node 24) runs .ts; the system node may not.
  npx --no-install node "$ROOT/hack/kubeconform-schemas.ts" --out "$out" --kubeconfig "$KUBECONFIG" \
    "$ROOT"/crds/*.yaml "${crds[@]}" >&2
}

validate() {
  local dir=${1:?usage: hack/kubeconform.sh validate DIR ARGS...}
  shift
  [[ -f $dir/_definitions.json ]] || die "no schemas in $dir (hack/kubeconform.sh schemas $dir)"
  build
  # -strict: duplicate keys are errors too (the schemas reject unknown fields themselves). No
  # -ignore-missing-schemas: a kind without a schema fails rather than passing unchecked.
  exec "$KUBECONFORM" -strict -schema-location "$(cd "$dir" && pwd -P)/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$@"
}

# Every optional part on (charts/vigil/ci/all-on-values.yaml, which the chart test renders too), and the
# Prometheus Operator's API announced, so that every template renders.
chart() {
  local dir=$ROOT/.cache/kubeconform/schemas
  if [[ $# -gt 0 && $1 != -- ]]; then
    dir=$1
    shift
  fi
  [[ ${1:-} == -- ]] && shift
  schemas "$dir"
  local rendered
  rendered=$(mktemp --suffix=.yaml) # kubeconform reads only .yaml, .yml and .json files
  # shellcheck disable=SC2064 # expand $rendered now
  trap "rm -f '$rendered'" EXIT
  bash "$ROOT/hack/helm.sh" template vigil "$ROOT/charts/vigil" --namespace vigil-system \
    --api-versions monitoring.coreos.com/v1 \
    --api-versions monitoring.coreos.com/v1/ServiceMonitor \
    --api-versions monitoring.coreos.com/v1/PodMonitor \
    --api-versions monitoring.coreos.com/v1/PrometheusRule \
    -f "$ROOT/charts/vigil/ci/all-on-values.yaml" >"$rendered"
  (validate "$dir" -summary "$@" "$rendered")
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
build)
  build
  printf '%s\n' "$KUBECONFORM"
  ;;
schemas) schemas "$@" ;;
validate) validate "$@" ;;
chart) chart "$@" ;;
*) die "usage: hack/kubeconform.sh build | schemas DIR | chart [DIR] [-- ARGS] | validate DIR ARGS..." ;;
esac
