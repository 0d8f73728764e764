#!/usr/bin/env bash
# OpsPilot hook: verify-k8s.sh — the cluster is up (runOn: control_plane, after
# the workers joined): the API answers, every node of the environment is
# registered and Ready, and the kube-system pods run. Changes nothing.
#
# install_options.ready_timeout_seconds (default 300) bounds the wait.
# Last log line: [INFO] step=done result=ok nodes_ready=N nodes_expected=N
set -euo pipefail
HOOK=verify-k8s.sh
case $0 in */*) HOOK_DIR=${0%/*} ;; *) HOOK_DIR=. ;; esac
for lib in common k8s; do
  if [ ! -r "$HOOK_DIR/lib/$lib.sh" ]; then
    printf '[ERROR] step=init result=failed msg="hooks/lib/%s.sh is missing beside the hook"\n' "$lib"
    exit 1
  fi
done
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$HOOK_DIR/lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=lib/k8s.sh
source "$HOOK_DIR/lib/k8s.sh"
STEP=init
trap 'die "internal error at line $LINENO: $BASH_COMMAND"' ERR
log_start step=start "action=$(tok "${OPS_ACTION:-install}")"

KUBECTL=("$BIN_DIR/kubectl" --kubeconfig /etc/kubernetes/super-admin.conf --request-timeout=10s)
TIMEOUT=$(opt ready_timeout_seconds); TIMEOUT=${TIMEOUT:-300}
[[ $TIMEOUT =~ ^[0-9]{1,5}$ ]] || die "install_options.ready_timeout_seconds must be a whole number of seconds"
# nodes of the environment: one "host_id" per node in context.json
EXPECTED=$(grep -o '"host_id"' "$CTX_FILE" 2>/dev/null | wc -l)
EXPECTED=$((EXPECTED > 1 ? EXPECTED - 1 : 1))   # the first one is this node's own entry

STEP=nodes
deadline=$((SECONDS + TIMEOUT)); ready=0; total=0
while :; do
  lines=$("${KUBECTL[@]}" get nodes --no-headers 2>/dev/null || true)
  total=$(printf '%s' "$lines" | grep -c . || true)
  ready=$(printf '%s\n' "$lines" | awk '$2 == "Ready" { n++ } END { print n + 0 }')
  [ "$ready" -ge "$EXPECTED" ] && break
  if [ $SECONDS -ge $deadline ]; then
    printf '%s\n' "$lines" >&2
    die "only $ready of $EXPECTED nodes are Ready after ${TIMEOUT} s ($total registered)"
  fi
  sleep 3
done
log INFO "step=nodes result=ok nodes_ready=$ready nodes_registered=$total"

STEP=system_pods
while :; do
  # every kube-system pod Running with all its containers ready (READY a/b with a = b)
  bad=$("${KUBECTL[@]}" -n kube-system get pods --no-headers 2>/dev/null | awk '{ split($2, r, "/") } $3 != "Running" || r[1] != r[2] { print $1 ":" $3 ":" $2 }' || true)
  [ -z "$bad" ] && break
  if [ $SECONDS -ge $deadline ]; then die "kube-system pods not running and ready: $(printf '%s' "$bad" | tr '\n' ' ')"; fi
  sleep 3
done
log INFO "step=done result=ok nodes_ready=$ready nodes_expected=$EXPECTED"
