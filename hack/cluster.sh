#!/usr/bin/env bash
# The test control plane: a real etcd + kube-apiserver on 127.0.0.1, envtest style (no Docker, no
# kubelet, no controller-manager), built from the Go module in hack/k8s/. With --full, a simulated GPU
# cluster beside it: the same two plus kube-scheduler, kube-controller-manager and one kwok per node.
#
#   hack/cluster.sh build    build the Kubernetes binaries and kwok into the cache (only when missing)
#   hack/cluster.sh up       build if needed, start the cluster (or reuse a healthy one) and print
#                            exactly one line on stdout: export KUBECONFIG=<abs path>
#   hack/cluster.sh down     stop the processes, remove .cache/cluster/ (idempotent); without --full it
#                            stops the full cluster too
#   hack/cluster.sh status   say whether it is up, the URL and the pids (exit 0 up, 1 down)
#   hack/cluster.sh kubectl ARGS...  run the cached kubectl against the cluster
#   hack/cluster.sh node add NAME [--gpus N] | kill NAME | start NAME | chaos NAME on|off | delete NAME
#                            (full cluster only; see hack/cluster/full.sh)
# Every subcommand takes --full (before or after it; for kubectl, right after `kubectl`) to act on the
# full cluster instead, in .cache/cluster-full/. Both clusters can run at once.
#
# Binaries: ${VIGIL_CACHE:-$HOME/.cache/vigil}/k8s/<key>/{kube-apiserver,etcd,kubectl,kube-scheduler,
#           kube-controller-manager}, where <key> hashes hack/k8s/{go.mod,go.sum,etcd/main.go} and the build
#           flags, so a version bump rebuilds; kwok in .../kwok/<version>/kwok.
# Cluster:  <repo>/.cache/cluster/ (--full: .cache/cluster-full/)
#             kubeconfig      context "vigil", user "vigil-admin" (static token, group system:masters)
#             env             KUBECONFIG=, VIGIL_APISERVER_URL=, VIGIL_AUDIT_LOG=, VIGIL_CLUSTER_DIR= (KEY=value
#                             lines; --full adds VIGIL_NODES=, space-separated)
#             audit.log       JSON lines, level Metadata for every request (hack/cluster/audit-policy.yaml); never
#                             rotated (the default rotates at 100 MB, which broke counting from an offset mid-run)
#             etcd.log, apiserver.log, etcd.pid, apiserver.pid, tokens.csv, pki/, etcd-data/
#             (--full) scheduler.*, controller-manager.*, kwok-<node>.{log,pid}, nodes/, *.kubeconfig
# Progress goes to stderr; stdout carries only what a caller should read.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
K8S_MOD=$ROOT/hack/k8s
AUDIT_POLICY=$ROOT/hack/cluster/audit-policy.yaml
CACHE_ROOT=${VIGIL_CACHE:-$HOME/.cache/vigil}
# Which cluster: set from --full by the argument parsing at the end.
FULL=0
set_cluster() {
  if ((FULL)); then CLUSTER=$ROOT/.cache/cluster-full; else CLUSTER=$ROOT/.cache/cluster; fi
  LOCK_FILE=$CLUSTER.lock # outside $CLUSTER: `down` removes that
}
READY_TIMEOUT=${VIGIL_CLUSTER_TIMEOUT:-60}
# Fixed, so that the binaries (and the cache key) do not depend on when they were built.
BUILD_DATE=2026-01-01T00:00:00Z
KWOK_VERSION=v0.8.0
KWOK_BIN=$CACHE_ROOT/kwok/$KWOK_VERSION/kwok

log() { printf '[cluster] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Temp files to remove on exit; and, while `up` is starting the processes, the cluster to stop if
# it never became ready (an error, or Ctrl-C).
TMP_FILES=()
TMP_DIRS=()
STARTING=0
on_exit() {
  local rc=$?
  if ((${#TMP_FILES[@]})); then rm -f "${TMP_FILES[@]}"; fi
  if ((${#TMP_DIRS[@]})); then rm -rf "${TMP_DIRS[@]}"; fi
  if ((STARTING)) && ((rc != 0)); then
    log "stopping the half-started cluster (logs kept in $CLUSTER)"
    stop_all || true
  fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# build

# Sets VERSION, LDFLAGS, GO_FLAGS, BIN_DIR from hack/k8s/go.mod.
init_build_vars() {
  VERSION=$(awk '($1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/) { print $2; exit }
                 ($1 == "require" && $2 == "k8s.io/kubernetes") { print $3; exit }' "$K8S_MOD/go.mod")
  [[ $VERSION =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] ||
    die "cannot read the k8s.io/kubernetes version from hack/k8s/go.mod (got '$VERSION')"
  local major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} pkg
  # Without these /version says v0.0.0-master and the apiserver refuses to start on its emulation
  # version; component-base is what the server reports, client-go what its loopback client sends.
  LDFLAGS="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LDFLAGS+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
  done
  # No -trimpath: it is part of every compile action's cache key (even the standard library's), so
  # a -trimpath build shares nothing with a plain `go build` of the same module and would compile
  # all ~2,000 packages again. -buildvcs=false: the wrapper module sits inside this git repo, and
  # stamping its commit would change the etcd binary at every commit.
  GO_FLAGS=(-buildvcs=false)
  local key
  key=$({
    cat "$K8S_MOD/go.mod" "$K8S_MOD/go.sum" "$K8S_MOD/etcd/main.go"
    printf '%s\n' "CGO_ENABLED=0" "${GO_FLAGS[*]}" "$LDFLAGS"
  } | sha256 | cut -c1-12)
  BIN_DIR=$CACHE_ROOT/k8s/$key
}

sha256() {
  if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi
}

K8S_BINARIES=(kube-apiserver etcd kubectl kube-scheduler kube-controller-manager)
have_binaries() {
  local b
  for b in "${K8S_BINARIES[@]}"; do [[ -x $BIN_DIR/$b ]] || return 1; done
  [[ -x $KWOK_BIN ]]
}

# build_one NAME PACKAGE: go build PACKAGE (relative to hack/k8s) into $BIN_DIR/NAME, via a temp name.
build_one() {
  local name=$1 pkg=$2 tmp start=$SECONDS
  [[ -x $BIN_DIR/$name ]] && return 0
  tmp=$BIN_DIR/.$name.tmp.$$
  TMP_FILES+=("$tmp")
  log "building $name ($pkg, k8s $VERSION) ..."
  (cd "$K8S_MOD" && CGO_ENABLED=0 go build -p "${VIGIL_BUILD_JOBS:-2}" "${GO_FLAGS[@]}" \
    -ldflags "$LDFLAGS" -o "$tmp" "$pkg") >&2 || die "go build $pkg failed"
  mv -f "$tmp" "$BIN_DIR/$name"
  log "built $name in $((SECONDS - start))s"
}

cmd_build() {
  init_build_vars
  if have_binaries; then
    log "Kubernetes $VERSION binaries present in $BIN_DIR, kwok $KWOK_VERSION in ${KWOK_BIN%/*}"
    return 0
  fi
  command -v go >/dev/null || die "go not found: it is needed to build the Kubernetes binaries and kwok"
  mkdir -p "$BIN_DIR"
  # Two callers building at once would each take ~2 GiB and the same minutes: the second waits.
  exec 8>"$BIN_DIR/.lock"
  if command -v flock >/dev/null; then
    flock -n 8 || {
      log "another build into $BIN_DIR is running; waiting for it"
      flock 8
    }
  fi
  local start=$SECONDS
  build_one kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
  build_one etcd ./etcd
  # kubectl at the cluster's own version, so the quick start needs nothing installed (hack/cluster.sh kubectl ...).
  build_one kubectl k8s.io/kubernetes/cmd/kubectl
  # Only `up --full` runs these two; they are built here all the same, so that `build` (run once by
  # hack/test.sh, cached by CI) leaves nothing to build at test time.
  build_one kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
  build_one kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
  build_kwok
  exec 8>&-
  log "Kubernetes $VERSION binaries ready in $BIN_DIR, kwok in ${KWOK_BIN%/*} (build took $((SECONDS - start))s)"
}

# kwok plays the nodes of the full cluster. It is its own module (no replaces), so `go install
# module@version` builds it outside hack/k8s; GOFLAGS is cleared because -mod=... is refused there.
build_kwok() {
  local start=$SECONDS tmp
  [[ -x $KWOK_BIN ]] && return 0
  mkdir -p "${KWOK_BIN%/*}"
  tmp=$(mktemp -d "${KWOK_BIN%/*}/.build.XXXXXX")
  TMP_DIRS+=("$tmp")
  log "building kwok $KWOK_VERSION ..."
  (cd / && GOFLAGS= GOBIN=$tmp CGO_ENABLED=0 go install -p "${VIGIL_BUILD_JOBS:-2}" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION") >&2 || die "go install sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION failed"
  mv -f "$tmp/kwok" "$KWOK_BIN"
  log "built kwok in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------------------------
# process helpers

# alive PID NAME: the process exists, is not a zombie, and runs the binary NAME (guards against a
# recycled pid).
alive() {
  local pid=$1 name=$2 state exe
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/stat ]]; then
    # 2>/dev/null first: the process may exit between these reads.
    state=$(sed 's/.*) //' 2>/dev/null "/proc/$pid/stat" | cut -d' ' -f1) || return 1
    [[ $state != Z ]] || return 1
    exe=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | head -n1) || return 1
    [[ ${exe##*/} == "$name" ]] || return 1
  fi
}

read_pid() { if [[ -f $CLUSTER/$1.pid ]]; then cat "$CLUSTER/$1.pid"; fi; }

# stop NAME BINARY: TERM, wait up to 15 s, then KILL.
stop() {
  local name=$1 bin=$2 pid i
  pid=$(read_pid "$name")
  alive "$pid" "$bin" || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do
    alive "$pid" "$bin" || return 0
    sleep 0.1
  done
  log "$name (pid $pid) still running 15s after TERM; sending KILL"
  kill -KILL "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    alive "$pid" "$bin" || return 0
    sleep 0.1
  done
  log "warning: $name (pid $pid) did not exit after KILL"
}

# The clients of the apiserver first (kwoks, controller-manager, scheduler: full_stop), then the
# apiserver, so that it does not spend its shutdown retrying a vanished etcd.
stop_all() {
  if ((FULL)); then full_stop; fi
  stop apiserver kube-apiserver
  stop etcd etcd
}

# start NAME COMMAND...: run in its own session, detached from this shell and its terminal.
start() {
  local name=$1
  shift
  # 8>&- 9>&-: the lock descriptors must not be inherited, or the daemon would hold the lock.
  setsid nohup "$@" >"$CLUSTER/$name.log" 2>&1 </dev/null 8>&- 9>&- &
  echo "$!" >"$CLUSTER/$name.pid"
}

# free_ports N: N distinct free TCP ports on 127.0.0.1 (bound together on port 0, then released).
free_ports() {
  if command -v python3 >/dev/null && python3 -c '' 2>/dev/null; then
    python3 -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
  elif command -v node >/dev/null; then
    node -e '
const net = require("net");
const n = Number(process.argv[1]);
const servers = [];
for (let i = 0; i < n; i++) {
  const s = net.createServer();
  s.listen(0, "127.0.0.1", () => {
    servers.push(s);
    if (servers.length === n) {
      console.log(servers.map((x) => x.address().port).join(" "));
      servers.forEach((x) => x.close());
    }
  });
}' "$1"
  else
    die "need python3 or node to find free ports"
  fi
}

env_get() { if [[ -f $CLUSTER/env ]]; then sed -n "s/^$1=//p" "$CLUSTER/env" | head -n1; fi; }
admin_token() { if [[ -f $CLUSTER/tokens.csv ]]; then head -n1 "$CLUSTER/tokens.csv" | cut -d, -f1; fi; }

# readyz URL: the apiserver answers /readyz with "ok" to the admin token.
readyz() {
  local out
  out=$(curl -sS --max-time 2 --cacert "$CLUSTER/pki/ca.crt" \
    -H "Authorization: Bearer $(admin_token)" "$1/readyz" 2>/dev/null) || return 1
  [[ $out == ok ]]
}

# healthy: both processes alive and the apiserver ready, from the state a previous `up` left.
healthy() {
  [[ -f $CLUSTER/env && -f $CLUSTER/kubeconfig ]] || return 1
  alive "$(read_pid etcd)" etcd || return 1
  alive "$(read_pid apiserver)" kube-apiserver || return 1
  readyz "$(env_get VIGIL_APISERVER_URL)" || return 1
  if ((FULL)); then full_healthy; fi
}

take_lock() {
  mkdir -p "${LOCK_FILE%/*}"
  exec 9>"$LOCK_FILE"
  if command -v flock >/dev/null; then
    flock -n 9 || {
      log "another hack/cluster.sh up/down is running; waiting for it"
      flock 9
    }
  fi
}

show_logs() {
  local f
  for f in "$CLUSTER"/etcd.log "$CLUSTER"/apiserver.log "$CLUSTER"/scheduler.log "$CLUSTER"/controller-manager.log \
    "$CLUSTER"/kwok-*.log; do
    [[ -f $f ]] || continue
    log "---- last lines of $f"
    tail -n 30 "$f" >&2
  done
}

# ---------------------------------------------------------------------------------------------
# pki

gen_pki() {
  local pki=$CLUSTER/pki serial
  mkdir -p "$pki"
  cat >"$pki/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = vigil-test
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  (
    cd "$pki"
    # P-256 keys: instant to generate, and what Go, curl and Node all accept.
    for key in ca server sa; do
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key.key" 2>/dev/null
    done
    openssl req -x509 -new -config openssl.cnf -extensions ca_ext -key ca.key -sha256 -days 365 \
      -subj /CN=vigil-test-ca -out ca.crt
    openssl req -new -config openssl.cnf -key server.key -subj /CN=kube-apiserver -out server.csr
    serial=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial "0x$serial" -sha256 \
      -days 365 -extfile openssl.cnf -extensions server_ext -out server.crt 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub
    rm -f server.csr
  ) || die "openssl failed to make the certificates"
  chmod 600 "$pki"/*.key
}

# ---------------------------------------------------------------------------------------------
# up / down / status

print_export() { printf 'export KUBECONFIG=%s\n' "$CLUSTER/kubeconfig"; }

# write_kubeconfig FILE USER TOKEN: a kubeconfig for the cluster at $API_URL, authenticated by TOKEN.
write_kubeconfig() {
  local file=$1 user=$2 token=$3 ca_data
  ca_data=$(base64 <"$CLUSTER/pki/ca.crt" | tr -d '\n')
  cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: vigil
    cluster:
      server: $API_URL
      certificate-authority-data: $ca_data
users:
  - name: $user
    user:
      token: $token
contexts:
  - name: vigil
    context:
      cluster: vigil
      user: $user
current-context: vigil
preferences: {}
EOF
  chmod 600 "$file.tmp"
  mv -f "$file.tmp" "$file"
}

new_token() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

cmd_up() {
  command -v curl >/dev/null || die "curl not found"
  command -v openssl >/dev/null || die "openssl not found"
  take_lock
  if healthy; then
    log "reusing the running cluster at $(env_get VIGIL_APISERVER_URL)"
    print_export
    return 0
  fi
  if [[ -d $CLUSTER ]]; then
    log "removing the stale cluster state in $CLUSTER"
    stop_all
    rm -rf "$CLUSTER"
  fi

  cmd_build
  local start=$SECONDS ports etcd_port peer_port api_port token i
  mkdir -p "$CLUSTER"
  chmod 700 "$CLUSTER"
  gen_pki
  token=$(new_token)
  printf '%s,vigil-admin,vigil-admin,"system:masters"\n' "$token" >"$CLUSTER/tokens.csv"
  if ((FULL)); then full_tokens >>"$CLUSTER/tokens.csv"; fi
  chmod 600 "$CLUSTER/tokens.csv"

  ports=$(free_ports 3)
  read -r etcd_port peer_port api_port <<<"$ports"
  [[ -n $api_port ]] || die "could not find free ports (got '$ports')"
  API_URL=https://127.0.0.1:$api_port

  STARTING=1
  log "starting etcd on 127.0.0.1:$etcd_port"
  start etcd "$BIN_DIR/etcd" \
    --name=vigil \
    --data-dir="$CLUSTER/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="vigil=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync \
    --log-level=warn
  for ((i = 0; ; i++)); do
    curl -fsS --max-time 1 "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
    alive "$(read_pid etcd)" etcd || {
      show_logs
      die "etcd exited during startup"
    }
    ((i < 200)) || {
      show_logs
      die "etcd not healthy after 20s"
    }
    sleep 0.1
  done

  # Without a controller-manager nothing creates the `default` ServiceAccounts, so the plain cluster
  # runs without the ServiceAccount admission plugin (it would refuse every pod); the full one has both.
  local mode_flags=(--disable-admission-plugins=ServiceAccount)
  if ((FULL)); then mode_flags=(); fi
  log "starting kube-apiserver on $API_URL"
  start apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$api_port" \
    --cert-dir="$CLUSTER/pki" \
    --tls-cert-file="$CLUSTER/pki/server.crt" \
    --tls-private-key-file="$CLUSTER/pki/server.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true \
    "${mode_flags[@]}" \
    --authorization-mode=RBAC \
    --token-auth-file="$CLUSTER/tokens.csv" \
    --service-account-issuer="$API_URL/" \
    --service-account-key-file="$CLUSTER/pki/sa.pub" \
    --service-account-signing-key-file="$CLUSTER/pki/sa.key" \
    --audit-policy-file="$AUDIT_POLICY" \
    --audit-log-path="$CLUSTER/audit.log" \
    --audit-log-format=json \
    --audit-log-maxsize=100000

  # Written before the wait so that readyz() and `status` can use them.
  {
    printf 'KUBECONFIG=%s\n' "$CLUSTER/kubeconfig"
    printf 'VIGIL_APISERVER_URL=%s\n' "$API_URL"
    printf 'VIGIL_AUDIT_LOG=%s\n' "$CLUSTER/audit.log"
    printf 'VIGIL_CLUSTER_DIR=%s\n' "$CLUSTER"
  } >"$CLUSTER/env"

  local deadline=$((SECONDS + READY_TIMEOUT))
  until readyz "$API_URL"; do
    alive "$(read_pid apiserver)" kube-apiserver || {
      show_logs
      die "kube-apiserver exited during startup"
    }
    alive "$(read_pid etcd)" etcd || {
      show_logs
      die "etcd exited during startup"
    }
    ((SECONDS < deadline)) || {
      show_logs
      die "kube-apiserver not ready after ${READY_TIMEOUT}s"
    }
    sleep 0.2
  done

  if ((FULL)); then
    # The full cluster's kubeconfig appears only once its nodes are Ready and the `default`
    # ServiceAccounts exist (healthy() looks for it first); until then the admin one has its own name.
    ADMIN_KUBECONFIG=$CLUSTER/admin.kubeconfig
    write_kubeconfig "$ADMIN_KUBECONFIG" vigil-admin "$token"
    full_up
    mv -f "$ADMIN_KUBECONFIG" "$CLUSTER/kubeconfig"
    ADMIN_KUBECONFIG=$CLUSTER/kubeconfig
  else
    write_kubeconfig "$CLUSTER/kubeconfig" vigil-admin "$token"
  fi
  STARTING=0
  log "cluster up at $API_URL in $((SECONDS - start))s (etcd pid $(read_pid etcd), kube-apiserver pid $(read_pid apiserver))"
  print_export
}

cmd_down() {
  take_lock
  stop_all
  rm -rf "$CLUSTER"
  log "cluster down ($CLUSTER)"
  if ((!FULL)); then
    # Without --full: both clusters. The full one under its own lock, in a fresh shell.
    exec 9>&-
    bash "$0" down --full
  fi
}

cmd_status() {
  local etcd_pid api_pid url
  etcd_pid=$(read_pid etcd)
  api_pid=$(read_pid apiserver)
  url=$(env_get VIGIL_APISERVER_URL)
  if healthy; then
    printf 'up: %s (kube-apiserver pid %s, etcd pid %s)\n' "$url" "$api_pid" "$etcd_pid"
    printf 'KUBECONFIG=%s\n' "$CLUSTER/kubeconfig"
    if ((FULL)); then full_status; fi
    return 0
  fi
  if ((FULL)) && [[ -f $CLUSTER/kubeconfig ]] && readyz "$url"; then
    # The control plane answers but a component or a node's kwok is down (`node kill`, or a crash).
    printf 'degraded: %s (kube-apiserver pid %s, etcd pid %s)\n' "$url" "$api_pid" "$etcd_pid"
    printf 'KUBECONFIG=%s\n' "$CLUSTER/kubeconfig"
    full_status
    return 1
  fi
  if [[ -d $CLUSTER ]]; then
    printf 'down: stale state in %s (url %s; kube-apiserver pid %s %s; etcd pid %s %s)\n' \
      "$CLUSTER" "${url:-?}" \
      "${api_pid:-?}" "$(alive "$api_pid" kube-apiserver && echo alive || echo dead)" \
      "${etcd_pid:-?}" "$(alive "$etcd_pid" etcd && echo alive || echo dead)"
  else
    echo "down"
  fi
  return 1
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

cmd_kubectl() {
  init_build_vars
  [[ -x $BIN_DIR/kubectl ]] || cmd_build
  KUBECONFIG=$CLUSTER/kubeconfig exec "$BIN_DIR/kubectl" "$@"
}

# shellcheck source=hack/cluster/full.sh
source "$ROOT/hack/cluster/full.sh"

# --full may come before the subcommand or anywhere after it; for kubectl only right after `kubectl`,
# so that nothing meant for kubectl is taken.
while [[ ${1:-} == --full ]]; do
  FULL=1
  shift
done
CMD=${1:-}
if (($#)); then shift; fi
ARGS=()
if [[ $CMD == kubectl ]]; then
  if [[ ${1:-} == --full ]]; then
    FULL=1
    shift
  fi
  ARGS=("$@")
else
  for a in "$@"; do
    if [[ $a == --full ]]; then FULL=1; else ARGS+=("$a"); fi
  done
fi
if [[ $CMD == node ]]; then FULL=1; fi # nodes exist only in the full cluster
set_cluster

case "$CMD" in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kubectl) cmd_kubectl "${ARGS[@]}" ;;
  node) cmd_node "${ARGS[@]}" ;;
  *) usage ;;
esac

