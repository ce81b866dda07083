#!/usr/bin/env bash
# The real helm CLI, built once from its Go module (no release download: GitHub may be unreachable,
# the Go module proxy is enough), then exec'd with the given arguments:
#
#   hack/helm.sh template vigil charts/vigil --namespace vigil-system
#   hack/helm.sh lint charts/vigil
#
# Binary: ${VIGIL_CACHE:-$HOME/.cache/vigil}/helm/<version>/helm. Build progress goes to stderr.
# Once built this is a test and an exec: `hack/helm.sh version` costs what helm itself costs.
set -euo pipefail

HELM_VERSION=v3.22.0 # latest 3.x from `go list -m -versions helm.sh/helm/v3`
HELM_PKG=helm.sh/helm/v3/cmd/helm

BIN_DIR=${VIGIL_CACHE:-$HOME/.cache/vigil}/helm/$HELM_VERSION
HELM=$BIN_DIR/helm

log() { printf '[helm] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

build() {
  command -v go >/dev/null || die "go not found: it is needed to build helm $HELM_VERSION"
  mkdir -p "$BIN_DIR"
  # Two callers building at once would each spend the same minutes: the second waits, then reuses.
  exec 8>"$BIN_DIR/.lock"
  if command -v flock >/dev/null; then
    flock -n 8 || {
      log "another build of helm $HELM_VERSION is running; waiting for it"
      flock 8
    }
  fi
  [[ -x $HELM ]] && return 0
  local tmp pkg start=$SECONDS
  tmp=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  log "building helm $HELM_VERSION ($HELM_PKG) into $BIN_DIR ..."
  # The -X flags of helm's own Makefile: its version, and the Kubernetes version that `helm template`
  # and `helm lint` assume (.Capabilities.KubeVersion), from the k8s.io/client-go that helm requires
  # (v0.X.Y means Kubernetes 1.X); without them helm says v3.22 and assumes Kubernetes 1.20.
  local gomod client_go k8s_minor ldflags
  gomod=$(cd / && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  [[ -f $gomod ]] || die "go mod download helm.sh/helm/v3@$HELM_VERSION gave no go.mod"
  client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")
  [[ $client_go =~ ^v0\.([0-9]+)\. ]] || die "no k8s.io/client-go v0.X.Y in $gomod (got '$client_go')"
  k8s_minor=${BASH_REMATCH[1]}
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  # From / so that no go.work or go.mod around the caller takes part.
  (cd / && GOBIN=$tmp CGO_ENABLED=0 go install -p "${VIGIL_BUILD_JOBS:-2}" -ldflags "$ldflags" \
    "$HELM_PKG@$HELM_VERSION") >&2 || die "go install $HELM_PKG@$HELM_VERSION failed"
  mv -f "$tmp/helm" "$HELM"
  rm -rf "$tmp"
  trap - EXIT
  exec 8>&-
  log "built helm $HELM_VERSION in $((SECONDS - start))s"
}

[[ -x $HELM ]] || build
exec "$HELM" "$@"
