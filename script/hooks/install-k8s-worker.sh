#!/usr/bin/env bash
# OpsPilot hook: install-k8s-worker.sh — joins this node to the cluster OpsPilot
# creates (runOn: worker), after the control plane is up.
#
# Input: $OPS_WORKDIR/k8s/kubeadm.yaml, the join configuration OpsPilot rendered
# from templates/kubeadm/join-config.yaml.tpl (bootstrap token and the hash of
# OpsPilot's CA, so the node only joins that control plane).
# Steps: node setup (lib/k8s.sh), `kubeadm join`. Idempotent: a node that has
# joined already (kubelet.conf present, kubelet answering) is left as it is.
#
# Last log line: [INFO] step=done result=ok kubeadm_join_result=joined|already_joined
set -euo pipefail
HOOK=install-k8s-worker.sh
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
STEP=check
[ "$(id -u)" -eq 0 ] || die "must run as root (log in as root or use passwordless sudo -n)"
case ${OPS_RUNTIME_TYPE:-k8s} in k8s | hybrid) ;; *) die "install-k8s-worker.sh is for OPS_RUNTIME_TYPE=k8s or hybrid, got '$OPS_RUNTIME_TYPE'" ;; esac
IN=$OPS_WORKDIR/k8s
[ -s "$IN/kubeadm.yaml" ] || die "OpsPilot's input $IN/kubeadm.yaml is missing: run the install again from OpsPilot"
VERSION=$(opt k8s_version)
DIE_SUMMARY="kubeadm_join_result=failed"

k8s_node_setup "$VERSION"

STEP=kubeadm_join
if [ -s /etc/kubernetes/kubelet.conf ] && k8s_state_has "kubeadm=join" && timeout 10 curl -sf http://127.0.0.1:10248/healthz >/dev/null 2>&1; then
  RESULT=already_joined
else
  if [ -e /etc/kubernetes/kubelet.conf ] && ! k8s_state_has "kubeadm=join"; then
    die "/etc/kubernetes/kubelet.conf exists and was not written by OpsPilot's join: this host belongs to another cluster"
  fi
  if k8s_state_has "kubeadm=join"; then
    # an earlier join did not finish: reset before this attempt (kubelet first)
    k8s_stop_kubelet
    "$BIN_DIR/kubeadm" reset -f --cri-socket "unix://$CONTAINERD_SOCK" >/dev/null 2>&1 || true
    log WARN "step=kubeadm_join msg=$(msgq "an earlier join did not finish: node reset before this attempt")"
  fi
  log INFO "step=kubeadm_join result=started"
  k8s_start_kubelet
  out=$(mktemp "$STATE_DIR/.kubeadm-join.XXXXXX")
  k8s_state_add "kubeadm=join"
  if ! "$BIN_DIR/kubeadm" join --config "$IN/kubeadm.yaml" --v=1 >"$out" 2>&1; then
    sed -n 's/^/  /p' "$out" | tail -n 40 >&2
    DIE_KEYS="error_key=kubeadm_join_failed"
    die "kubeadm join failed: $(grep -E 'error|ERROR|failed' "$out" | tail -n 3 | tr '\n' ' ')"
  fi
  rm -f "$out"
  RESULT=joined
fi
DIE_SUMMARY=""
log INFO "step=done result=ok kubeadm_join_result=$RESULT k8s_version=$(tok "$VERSION")"
