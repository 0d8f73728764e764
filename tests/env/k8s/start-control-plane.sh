#!/usr/bin/env bash
# Start (or reuse) a loopback Kubernetes control plane with real TLS:
#   etcd 127.0.0.1:12379/12380, kube-apiserver https://127.0.0.1:16443,
#   kube-controller-manager, kube-scheduler and kwok with fake nodes.
#
# usage: start-control-plane.sh PKI_DIR DATA_DIR
#
# PKI_DIR: files missing there are generated with openssl; files present are used
# as they are. So a PKI handed in (ca.crt/ca.key, sa.key/sa.pub, maybe
# apiserver.crt/key — kubeadm's names) is honoured, and leaf certificates that
# are missing get signed by that CA.
# DATA_DIR: etcd data, kubeconfigs, pid files.
# Logs go to /var/cache/opspilot-env/run/logs/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
source "$ENV_ROOT/lib/build.sh"

[ $# -eq 2 ] || die "usage: $0 PKI_DIR DATA_DIR"
mkdir -p "$1" "$2" "$LOGS"
PKI=$(cd "$1" && pwd); DATA=$(cd "$2" && pwd)
PIDS="$DATA/pids"; mkdir -p "$PIDS"

APISERVER_PORT=16443
ETCD_CLIENT_PORT=12379
ETCD_PEER_PORT=12380
KCM_PORT=17257
SCHED_PORT=17259
KWOK_PORT=17247
APISERVER_URL="https://127.0.0.1:$APISERVER_PORT"
SERVICE_CIDR=10.96.0.0/12
FAKE_NODES=${OPSPILOT_FAKE_NODES:-3}

KBIN=$(k8s_bin)
[ -x "$KBIN/kube-apiserver" ] || die "Kubernetes binaries missing in $KBIN: run 'envctl build' first"
KUBECTL="$KBIN/kubectl"

# ---------------------------------------------------------------- PKI
umask 077
_cnf() { # _cnf FILE EXT_LINES...
  local f=$1; shift
  { echo '[req]'; echo 'distinguished_name=dn'; echo '[dn]'; echo '[ext]'; printf '%s\n' "$@"; } >"$f"
}
# _leaf NAME SUBJECT EXT_LINES... : key + cert signed by ca, unless both exist.
_leaf() {
  local name=$1 subj=$2; shift 2
  [ -s "$PKI/$name.crt" ] && [ -s "$PKI/$name.key" ] && return 0
  local cnf; cnf=$(mktemp)
  _cnf "$cnf" "$@"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -config "$cnf" -out "$PKI/$name.csr"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$cnf" -extensions ext -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$cnf"
  log "generated $PKI/$name.crt ($subj)"
}

if [ ! -s "$PKI/ca.crt" ] || [ ! -s "$PKI/ca.key" ]; then
  [ -s "$PKI/ca.crt" ] && die "$PKI/ca.crt present without ca.key: cannot sign the missing leaf certificates"
  cnf=$(mktemp); _cnf "$cnf" 'basicConstraints=critical,CA:TRUE' 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature' 'subjectKeyIdentifier=hash'
  openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=opspilot-test-ca" -days 3650 -sha256 \
    -config "$cnf" -extensions ext -out "$PKI/ca.crt"
  rm -f "$cnf"; log "generated CA $PKI/ca.crt"
fi
_leaf apiserver "/CN=kube-apiserver" \
  'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' \
  'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local'
CLIENT_EXT=('basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=clientAuth')
_leaf admin "/O=system:masters/CN=admin" "${CLIENT_EXT[@]}"
_leaf controller-manager "/CN=system:kube-controller-manager" "${CLIENT_EXT[@]}"
_leaf scheduler "/CN=system:kube-scheduler" "${CLIENT_EXT[@]}"
if [ ! -s "$PKI/sa.key" ] || [ ! -s "$PKI/sa.pub" ]; then
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  log "generated service-account key pair"
fi
if [ ! -s "$PKI/tokens.csv" ]; then
  # token,user,uid,"groups" — user "limited" may only get/list namespaces (RBAC below).
  printf '%s,limited,limited-uid\n' "$(openssl rand -hex 24)" >"$PKI/tokens.csv"
fi
LIMITED_TOKEN=$(cut -d, -f1 "$PKI/tokens.csv" | head -1)
umask 022

# ---------------------------------------------------------------- kubeconfigs
_kubeconfig() { # FILE USER (cert NAME | token TOKEN)
  local f=$1 user=$2 kind=$3 val=$4
  local tmp="$f.tmp"; rm -f "$tmp"
  KUBECONFIG="$tmp" "$KUBECTL" config set-cluster opspilot-test --server="$APISERVER_URL" \
    --certificate-authority="$PKI/ca.crt" --embed-certs=true >/dev/null
  if [ "$kind" = cert ]; then
    KUBECONFIG="$tmp" "$KUBECTL" config set-credentials "$user" --client-certificate="$PKI/$val.crt" \
      --client-key="$PKI/$val.key" --embed-certs=true >/dev/null
  else
    KUBECONFIG="$tmp" "$KUBECTL" config set-credentials "$user" --token="$val" >/dev/null
  fi
  KUBECONFIG="$tmp" "$KUBECTL" config set-context "$user@opspilot-test" --cluster=opspilot-test --user="$user" >/dev/null
  KUBECONFIG="$tmp" "$KUBECTL" config use-context "$user@opspilot-test" >/dev/null
  chmod 0600 "$tmp"; mv "$tmp" "$f"
}
_kubeconfig "$DATA/admin.kubeconfig" admin cert admin
_kubeconfig "$DATA/limited.kubeconfig" limited token "$LIMITED_TOKEN"
_kubeconfig "$DATA/controller-manager.kubeconfig" system:kube-controller-manager cert controller-manager
_kubeconfig "$DATA/scheduler.kubeconfig" system:kube-scheduler cert scheduler

# ---------------------------------------------------------------- processes
_running() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }
_start() { # NAME CMD...
  local name=$1; shift
  if _running "$name"; then log "$name already running (pid $(cat "$PIDS/$name.pid"))"; return 0; fi
  log "starting $name (log: $LOGS/$name.log)"
  setsid nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}
_wait() { # NAME SECONDS CHECK...
  local name=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    _running "$name" || { tail -30 "$LOGS/$name.log" >&2; die "$name exited"; }
    sleep 1
  done
  tail -30 "$LOGS/$name.log" >&2; die "$name not ready after $secs s"
}

ensure_etcd
_start etcd "$(etcd_cmd)" --name opspilot-test --data-dir "$DATA/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "opspilot-test=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
  --enable-v2=false --quota-backend-bytes 2147483648
_wait etcd 30 curl -sf "http://127.0.0.1:$ETCD_CLIENT_PORT/health"

_start kube-apiserver "$KBIN/kube-apiserver" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
  --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" \
  --authorization-mode=Node,RBAC --allow-privileged=true \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --api-audiences=https://kubernetes.default.svc.cluster.local \
  --endpoint-reconciler-type=none --enable-priority-and-fairness=false --profiling=false
_wait kube-apiserver 90 curl -sf --cacert "$PKI/ca.crt" "$APISERVER_URL/readyz"

_start kube-controller-manager "$KBIN/kube-controller-manager" \
  --kubeconfig="$DATA/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$DATA/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$DATA/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
  --use-service-account-credentials=true --root-ca-file="$PKI/ca.crt" \
  --service-account-private-key-file="$PKI/sa.key" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --controllers='*,-nodeipam,-cloud-node-lifecycle' \
  --profiling=false
_start kube-scheduler "$KBIN/kube-scheduler" \
  --kubeconfig="$DATA/scheduler.kubeconfig" \
  --authentication-kubeconfig="$DATA/scheduler.kubeconfig" \
  --authorization-kubeconfig="$DATA/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false --profiling=false
_start kwok "$(kwok_bin)/kwok" --kubeconfig="$DATA/admin.kubeconfig" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-ip=10.244.0.1 --cidr=10.244.0.0/16 --node-lease-duration-seconds=40 \
  --server-address="127.0.0.1:$KWOK_PORT"

K() { "$KUBECTL" --kubeconfig="$DATA/admin.kubeconfig" "$@"; }
_wait kube-controller-manager 60 curl -sfk "https://127.0.0.1:$KCM_PORT/healthz"
_wait kube-scheduler 60 curl -sfk "https://127.0.0.1:$SCHED_PORT/healthz"

# RBAC for the limited token: namespaces get/list, nothing else.
K apply -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: opspilot-limited}
rules:
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: opspilot-limited}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: opspilot-limited}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: limited}
YAML

# Fake nodes managed by kwok.
for i in $(seq 1 "$FAKE_NODES"); do
  K apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
YAML
done
_wait kwok 60 bash -c "[ \"\$('$KUBECTL' --kubeconfig='$DATA/admin.kubeconfig' get nodes -l type=kwok --no-headers | grep -c ' Ready ')\" -ge $FAKE_NODES ]"
log "control plane ready at $APISERVER_URL (admin kubeconfig $DATA/admin.kubeconfig)"
