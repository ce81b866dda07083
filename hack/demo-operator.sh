#!/usr/bin/env bash
# `npm run demo:operator`: Vigil's operator on a local control plane (hack/cluster.sh) with the sample pool and
# cameras. Ctrl-C stops the operator; `hack/cluster.sh down` the cluster.
# VIGIL_DEMO_ONCE=1 shows the result and exits (used to check the quick start).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash hack/cluster.sh up)"
k() { bash hack/cluster.sh kubectl "$@"; }

k apply --server-side -f crds/ >/dev/null
k wait --for condition=established --timeout=60s crd/cameradetections.vigil.dev crd/detectorpools.vigil.dev >/dev/null
k create namespace vigil-system --dry-run=client -o yaml | k apply -f - >/dev/null
k apply -f crds/samples/

VIGIL_NAMESPACE=vigil-system VIGIL_HEALTH_PORT=${VIGIL_HEALTH_PORT:-8081} node bin/vigil.ts operator &
op=$!
trap 'kill $op 2>/dev/null; wait $op 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 60); do
  [[ $(k get cam -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c Scheduled) == 2 ]] && break
  sleep 0.5
done
echo
k get detectorpools,cameradetections -o wide
echo
k get statefulsets,services -l app.kubernetes.io/name=vigil-worker
cat <<MSG

The operator placed both sample cameras on the pool's workers (no GPU nodes here, so no worker pods start).
Try it:  export KUBECONFIG=$KUBECONFIG
         bash hack/cluster.sh kubectl describe cam entrance
         curl -s localhost:${VIGIL_HEALTH_PORT:-8081}/metrics | grep controller_runtime_reconcile_total
MSG
[[ ${VIGIL_DEMO_ONCE:-} == 1 ]] && exit 0
echo "Operator running (Ctrl-C to stop)."
wait $op
