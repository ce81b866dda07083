# shellcheck shell=bash
# The full cluster's parts, sourced by hack/cluster.sh (which provides log, die, start, stop, alive,
# read_pid, free_ports, env_get, write_kubeconfig, new_token, $CLUSTER, $BIN_DIR, $KWOK_BIN, $API_URL).
#
# Beside etcd + kube-apiserver (ServiceAccount admission on): kube-scheduler, kube-controller-manager and
# one kwok per node. One kwok per node, not one for all: a killed kwok then takes down one node, as a
# powered-off machine does; with one kwok for every node, all went Unknown at once and the
# controller-manager's disruption mode evicted nothing (measured, FACTS.md).
#
# Each component runs under its own identity from the token file: system:kube-scheduler and
# system:kube-controller-manager (the bootstrap RBAC roles cover them, as in kubeadm), and kwok, bound
# to hack/cluster/kwok/rbac.yaml.
#
# Nodes: gpu-0 gpu-1 gpu-2 (nvidia.com/gpu: 1, GPU feature discovery's labels, the NoSchedule taint
# the NVIDIA device plugin's docs use) and cpu-0. Node number i (in order of creation) gets its kwok
# the pod CIDR 127.100.<i+1>.0/24 and the node IP 127.100.<i+1>.254: pod IPs are loopback addresses, so
# a process bound to its pod IP is reachable at podIP:port on this host.
#
#   node add NAME [--gpus N]   create a node (N GPUs, default 1; 0: a CPU node), start its kwok, wait Ready
#   node kill NAME             SIGKILL its kwok: the node stops renewing its Lease, as if powered off
#   node start NAME            start its kwok again (after kill), wait Ready
#   node chaos NAME on|off     kwok's node-not-ready stage: Ready=False while its kwok keeps running
#   node delete NAME           stop its kwok and delete the Node

KWOK_DIR=$ROOT/hack/cluster/kwok
DEFAULT_NODES=(gpu-0:1 gpu-1:1 gpu-2:1 cpu-0:0)
CHAOS_LABEL=node-not-ready.stage.kwok.x-k8s.io
FULL_READY_TIMEOUT=${VIGIL_CLUSTER_TIMEOUT:-120}

# The admin kubeconfig: while `up` starts the cluster it is admin.kubeconfig (cmd_up sets ADMIN_KUBECONFIG).
kctl() { KUBECONFIG=${ADMIN_KUBECONFIG:-$CLUSTER/kubeconfig} "$BIN_DIR/kubectl" "$@"; }

# Token file lines for the components (appended after the admin's by cmd_up). No groups: RBAC's
# bootstrap ClusterRoleBindings name these users.
full_tokens() {
  local user
  for user in system:kube-scheduler system:kube-controller-manager kwok; do
    printf '%s,%s,%s\n' "$(new_token)" "$user" "$user"
  done
}

token_of() { awk -F, -v u="$1" '$2 == u { print $1; exit }' "$CLUSTER/tokens.csv"; }

# Called by cmd_up once the apiserver is ready; admin.kubeconfig exists.
full_up() {
  local ports sched_port cm_port spec
  write_kubeconfig "$CLUSTER/scheduler.kubeconfig" system:kube-scheduler "$(token_of system:kube-scheduler)"
  write_kubeconfig "$CLUSTER/controller-manager.kubeconfig" system:kube-controller-manager \
    "$(token_of system:kube-controller-manager)"
  write_kubeconfig "$CLUSTER/kwok.kubeconfig" kwok "$(token_of kwok)"
  kctl apply -f "$KWOK_DIR/rbac.yaml" >/dev/null || die "could not apply kwok's RBAC"

  ports=$(free_ports 2)
  read -r sched_port cm_port <<<"$ports"
  [[ -n $cm_port ]] || die "could not find free ports (got '$ports')"
  mkdir -p "$CLUSTER/pki/scheduler" "$CLUSTER/pki/controller-manager"

  # --authentication-skip-lookup: their own HTTPS endpoints authenticate bearer tokens by TokenReview;
  # the lookup would read the client CAs from kube-system/extension-apiserver-authentication, which
  # this apiserver (no client or request-header CA) publishes without them, and log an error every
  # few seconds.
  log "starting kube-scheduler (health on https://127.0.0.1:$sched_port)"
  start scheduler "$BIN_DIR/kube-scheduler" \
    --kubeconfig="$CLUSTER/scheduler.kubeconfig" \
    --authentication-kubeconfig="$CLUSTER/scheduler.kubeconfig" \
    --authorization-kubeconfig="$CLUSTER/scheduler.kubeconfig" \
    --authentication-skip-lookup=true \
    --leader-elect=false \
    --bind-address=127.0.0.1 \
    --secure-port="$sched_port" \
    --cert-dir="$CLUSTER/pki/scheduler"

  # node-monitor-grace-period (50 s) and the 300 s default tolerations stay at their defaults: Vigil's
  # failover is measured against them. The cluster-signing pair lets the CSR signer run (it would
  # only log otherwise); the service-account key and root CA make the token controller work.
  log "starting kube-controller-manager (health on https://127.0.0.1:$cm_port)"
  start controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig="$CLUSTER/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$CLUSTER/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$CLUSTER/controller-manager.kubeconfig" \
    --authentication-skip-lookup=true \
    --leader-elect=false \
    --bind-address=127.0.0.1 \
    --secure-port="$cm_port" \
    --cert-dir="$CLUSTER/pki/controller-manager" \
    --controllers='*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$CLUSTER/pki/sa.key" \
    --root-ca-file="$CLUSTER/pki/ca.crt" \
    --cluster-signing-cert-file="$CLUSTER/pki/ca.crt" \
    --cluster-signing-key-file="$CLUSTER/pki/ca.key" \
    --service-cluster-ip-range=10.0.0.0/24

  mkdir -p "$CLUSTER/nodes"
  for spec in "${DEFAULT_NODES[@]}"; do
    create_node "${spec%%:*}" "${spec##*:}"
    start_kwok "${spec%%:*}"
  done
  write_nodes_env

  local deadline=$((SECONDS + FULL_READY_TIMEOUT)) ns
  for spec in "${DEFAULT_NODES[@]}"; do
    wait_node_ready "${spec%%:*}" $((deadline - SECONDS))
  done
  # ServiceAccount admission refuses pods in a namespace until its `default` ServiceAccount exists.
  for ns in default kube-system kube-public kube-node-lease; do
    until kctl get serviceaccount default -n "$ns" >/dev/null 2>&1; do
      full_check_alive
      ((SECONDS < deadline)) || die "no default ServiceAccount in namespace $ns after ${FULL_READY_TIMEOUT}s"
      sleep 0.2
    done
  done
  log "nodes Ready: $(node_names)"
}

# Dies (with the logs) if a component exited.
full_check_alive() {
  local name
  for name in scheduler:kube-scheduler controller-manager:kube-controller-manager; do
    alive "$(read_pid "${name%%:*}")" "${name##*:}" || {
      show_logs
      die "${name##*:} exited"
    }
  done
}

full_healthy() {
  local name
  alive "$(read_pid scheduler)" kube-scheduler || return 1
  alive "$(read_pid controller-manager)" kube-controller-manager || return 1
  # A killed node's kwok (`node kill`) makes the cluster unfit for reuse: `up` starts a fresh one.
  for name in $(node_names); do
    alive "$(read_pid "kwok-$name")" kwok || return 1
  done
}

full_stop() {
  local f name
  for f in "$CLUSTER"/kwok-*.pid; do
    [[ -f $f ]] || continue
    name=${f##*/}
    stop "${name%.pid}" kwok
  done
  stop controller-manager kube-controller-manager
  stop scheduler kube-scheduler
}

full_status() {
  local name pid
  printf 'kube-scheduler pid %s, kube-controller-manager pid %s\n' "$(read_pid scheduler)" "$(read_pid controller-manager)"
  for name in $(node_names); do
    pid=$(read_pid "kwok-$name")
    printf 'node %s: cidr %s, kwok pid %s %s\n' "$name" "$(node_cidr "$name")" "${pid:-?}" \
      "$(alive "$pid" kwok && echo alive || echo dead)"
  done
  printf 'VIGIL_NODES=%s\n' "$(env_get VIGIL_NODES)"
}

# ---------------------------------------------------------------------------------------------
# nodes: $CLUSTER/nodes/<name> holds the node's number (its pod CIDR); the names in creation order.

node_names() {
  local f
  if [[ -d $CLUSTER/nodes ]]; then
    for f in "$CLUSTER"/nodes/*; do
      [[ -f $f ]] && printf '%s %s\n' "$(cat "$f")" "${f##*/}"
    done | sort -n | awk '{ print $2 }' | tr '\n' ' ' | sed 's/ $//'
  fi
}
node_index() { cat "$CLUSTER/nodes/$1" 2>/dev/null; }
node_cidr() { printf '127.100.%d.0/24' $(($(node_index "$1") + 1)); }

write_nodes_env() {
  local rest
  rest=$(grep -v '^VIGIL_NODES=' "$CLUSTER/env" || true)
  printf '%s\nVIGIL_NODES=%s\n' "$rest" "$(node_names)" >"$CLUSTER/env.tmp"
  mv -f "$CLUSTER/env.tmp" "$CLUSTER/env"
}

# create_node NAME GPUS: the Node object, with its capacity in status (kwok's node-initialize keeps it).
create_node() {
  local name=$1 gpus=$2 cordoned=${3:-false} index labels taints gpu_res=""
  index=$(($(cat "$CLUSTER/nodes/.next" 2>/dev/null || echo 0)))
  # 253 node numbers fit in 127.100.1-254.0/24.
  ((index < 254)) || die "no pod CIDR left for node $name"
  labels="kubernetes.io/hostname: $name"
  taints="[]"
  if ((gpus > 0)); then
    # The labels NVIDIA's GPU feature discovery sets for an L4 (23034 MiB), and the taint clusters put on
    # GPU nodes so that only pods tolerating it land there.
    labels+=", nvidia.com/gpu.product: NVIDIA-L4, nvidia.com/gpu.count: \"$gpus\", nvidia.com/gpu.memory: \"23034\""
    taints='[{key: nvidia.com/gpu, value: present, effect: NoSchedule}]'
    gpu_res=", nvidia.com/gpu: \"$gpus\""
  fi
  log "creating node $name (${gpus} GPU, pod CIDR 127.100.$((index + 1)).0/24)"
  kctl create -f - >/dev/null <<EOF || die "could not create node $name"
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {$labels, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
spec:
  taints: $taints
  unschedulable: $cordoned
status:
  capacity: {cpu: "16", memory: 64Gi, pods: "110"$gpu_res}
  allocatable: {cpu: "16", memory: 64Gi, pods: "110"$gpu_res}
EOF
  echo "$index" >"$CLUSTER/nodes/$name"
  echo $((index + 1)) >"$CLUSTER/nodes/.next"
}

# start_kwok NAME: its own kwok, managing only that node, with its own pod CIDR.
start_kwok() {
  local name=$1 i stages=()
  i=$(node_index "$name")
  for f in "$KWOK_DIR"/stages/*.yaml; do stages+=(--config="$f"); done
  start "kwok-$name" "$KWOK_BIN" \
    --kubeconfig="$CLUSTER/kwok.kubeconfig" \
    --config="$KWOK_DIR/kwok.yaml" \
    "${stages[@]}" \
    --manage-single-node="$name" \
    --cidr="127.100.$((i + 1)).0/24" \
    --node-ip="127.100.$((i + 1)).254"
}

wait_node_ready() {
  local name=$1 timeout=${2:-60} deadline
  deadline=$((SECONDS + timeout))
  until [[ $(kctl get node "$name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]; do
    alive "$(read_pid "kwok-$name")" kwok || {
      show_logs
      die "kwok for node $name exited"
    }
    ((SECONDS < deadline)) || die "node $name not Ready after ${timeout}s (log: $CLUSTER/kwok-$name.log)"
    sleep 0.2
  done
}

need_node() {
  [[ -n $1 ]] || die "usage: hack/cluster.sh node $2 NAME"
  [[ -f $CLUSTER/nodes/$1 ]] || die "no node $1 in the full cluster (nodes: $(node_names))"
}

cmd_node() {
  local sub=${1:-} name=${2:-}
  [[ -f $CLUSTER/kubeconfig ]] || die "the full cluster is not up (hack/cluster.sh up --full)"
  init_build_vars
  take_lock
  case "$sub" in
    add)
      local gpus=1
      shift 2 || die "usage: hack/cluster.sh node add NAME [--gpus N]"
      while (($#)); do
        case $1 in
          --gpus) gpus=${2:-} && shift 2 ;;
          --gpus=*) gpus=${1#--gpus=} && shift ;;
          *) die "node add: unknown argument $1" ;;
        esac
      done
      [[ $name =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die "node add: '$name' is not a valid node name"
      [[ $gpus =~ ^[0-9]+$ ]] || die "node add: --gpus takes a number (got '$gpus')"
      [[ ! -f $CLUSTER/nodes/$name ]] || die "node $name exists"
      # Cordoned until its kwok is up: a pod waiting for room (a GPU) is bound the moment the node is Ready, and a
      # kwok that started a moment before never played it (seen here: bound, never given an IP).
      create_node "$name" "$gpus" true
      start_kwok "$name"
      write_nodes_env
      wait_node_ready "$name" 60
      sleep 1
      kctl patch node "$name" --type=merge -p '{"spec":{"unschedulable":false}}' >/dev/null
      log "node $name Ready"
      ;;
    kill)
      need_node "$name" kill
      local pid
      pid=$(read_pid "kwok-$name")
      alive "$pid" kwok || die "node $name's kwok is not running"
      kill -KILL "$pid"
      while alive "$pid" kwok; do sleep 0.05; done
      log "node $name's kwok (pid $pid) killed"
      ;;
    start)
      need_node "$name" start
      if alive "$(read_pid "kwok-$name")" kwok; then
        log "node $name's kwok is running"
        return 0
      fi
      # The dead kwok still holds the node's Lease, under an identity of its own (hostname + a fresh
      # UUID per process), so a new kwok would wait for it to expire (40 s). A kubelet that restarts
      # holds it again at once (its identity is the node name): remove the stale Lease to do the same.
      kctl delete lease -n kube-node-lease "$name" --ignore-not-found >/dev/null
      if [[ -f $CLUSTER/kwok-$name.log ]]; then mv -f "$CLUSTER/kwok-$name.log" "$CLUSTER/kwok-$name.log.1"; fi
      start_kwok "$name"
      wait_node_ready "$name" 60
      log "node $name Ready"
      ;;
    chaos)
      need_node "$name" chaos
      case ${3:-} in
        on) kctl label node "$name" "$CHAOS_LABEL=true" --overwrite >/dev/null ;;
        off) kctl label node "$name" "$CHAOS_LABEL-" >/dev/null ;;
        *) die "usage: hack/cluster.sh node chaos NAME on|off" ;;
      esac
      log "node $name: chaos $3"
      ;;
    delete)
      need_node "$name" delete
      stop "kwok-$name" kwok
      rm -f "$CLUSTER/kwok-$name.pid"
      kctl delete node "$name" --ignore-not-found >/dev/null
      rm -f "$CLUSTER/nodes/$name"
      write_nodes_env
      log "node $name deleted"
      ;;
    *) die "usage: hack/cluster.sh node add NAME [--gpus N] | kill NAME | start NAME | chaos NAME on|off | delete NAME" ;;
  esac
}
