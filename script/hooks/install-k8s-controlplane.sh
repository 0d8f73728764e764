#!/usr/bin/env bash
# OpsPilot hook: install-k8s-controlplane.sh — makes this node the control plane
# of a cluster OpsPilot creates (runOn: control_plane).
#
# Before this hook runs, OpsPilot uploaded into $OPS_WORKDIR/k8s/:
#   kubeadm.yaml   the init configuration it rendered from templates/kubeadm/init-config.yaml.tpl
#   pki/           its PKI, kubeadm's layout (ca, front-proxy-ca, etcd/ca, leaves, sa.key/pub)
#   kubeconfigs/   admin.conf, super-admin.conf, controller-manager.conf, scheduler.conf, kubelet.conf
#   cni.yaml       the CNI manifest it rendered from templates/cni/<cni>.yaml.tpl
# so kubeadm generates no certificate, key or token of its own.
#
# Steps: node setup (lib/k8s.sh: binaries, containerd, images, kubelet), PKI and
# kubeconfigs into /etc/kubernetes, `kubeadm init`, the CNI manifest. Idempotent:
# a node whose control plane already answers with this PKI is left as it is
# (kubeadm_init_result=already_initialized).
#
# Log lines: `[INFO|WARN|ERROR] step=... key=value ...`; the last one is
#   [INFO] step=done result=ok kubeadm_init_result=... cni_install_result=... k8s_version=...
set -euo pipefail
HOOK=install-k8s-controlplane.sh
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
case ${OPS_RUNTIME_TYPE:-k8s} in k8s | hybrid) ;; *) die "install-k8s-controlplane.sh is for OPS_RUNTIME_TYPE=k8s or hybrid, got '$OPS_RUNTIME_TYPE'" ;; esac
IN=$OPS_WORKDIR/k8s
for f in kubeadm.yaml cni.yaml pki/ca.crt pki/ca.key pki/sa.key kubeconfigs/admin.conf kubeconfigs/super-admin.conf; do
  [ -s "$IN/$f" ] || die "OpsPilot's input $IN/$f is missing: run the install again from OpsPilot"
done
VERSION=$(opt k8s_version)
SUPER=/etc/kubernetes/super-admin.conf
KUBECTL=("$BIN_DIR/kubectl" --kubeconfig "$SUPER")
DIE_SUMMARY="kubeadm_init_result=failed"

k8s_node_setup "$VERSION"

# k8s_reset: a control plane whose init did not finish is reset before the next
# try (kubelet first, or it recreates the static pods reset removes); reset also
# empties /etc/kubernetes/pki, which the pki step then fills again
k8s_reset() {
  k8s_stop_kubelet
  "$BIN_DIR/crictl" rmp -fa >/dev/null 2>&1 || true
  "$BIN_DIR/kubeadm" reset -f --cri-socket "unix://$CONTAINERD_SOCK" >/dev/null 2>&1 || true
  log WARN "step=kubeadm_init msg=$(msgq "an earlier init did not finish: node reset before this attempt")"
}

STEP=kubeadm_init
READY=false
if [ -s /etc/kubernetes/manifests/kube-apiserver.yaml ] && [ -s "$SUPER" ] && timeout 20 "${KUBECTL[@]}" get --raw /readyz >/dev/null 2>&1; then
  READY=true
elif k8s_state_has "kubeadm=init"; then
  k8s_reset
fi

STEP=pki
# the PKI and kubeconfigs OpsPilot minted; an /etc/kubernetes of someone else is refused
if [ -e /etc/kubernetes/pki/ca.crt ] && ! k8s_state_has "file=/etc/kubernetes/pki/ca.crt"; then
  die "/etc/kubernetes/pki/ca.crt exists and was not placed by OpsPilot: this host belongs to another cluster"
fi
changed=0
while IFS= read -r -d '' f; do
  rel=${f#"$IN/pki/"}
  mode=0644; case $rel in *.key) mode=0600 ;; esac
  if k8s_place "$f" "/etc/kubernetes/pki/$rel" "$mode"; then changed=1; fi
done < <(find "$IN/pki" -type f -print0)
for f in "$IN"/kubeconfigs/*.conf; do
  if k8s_place "$f" "/etc/kubernetes/$(basename "$f")" 0600; then changed=1; fi
done
log INFO "step=pki result=ok changed=$changed"

STEP=kubeadm_init
if [ $READY = true ]; then
  INIT_RESULT=already_initialized
  log INFO "step=kubeadm_init result=ok kubeadm_init_result=already_initialized"
else
  log INFO "step=kubeadm_init result=started"
  k8s_state_add "kubeadm=init"
  k8s_start_kubelet
  out=$(mktemp "$STATE_DIR/.kubeadm-init.XXXXXX")
  if ! "$BIN_DIR/kubeadm" init --config "$IN/kubeadm.yaml" --skip-phases=addon/coredns --v=1 >"$out" 2>&1; then
    sed -n 's/^/  /p' "$out" | tail -n 40 >&2
    DIE_KEYS="error_key=kubeadm_init_failed"
    die "kubeadm init failed: $(grep -E 'error|ERROR|failed' "$out" | tail -n 3 | tr '\n' ' ')"
  fi
  rm -f "$out"
  INIT_RESULT=initialized
  log INFO "step=kubeadm_init result=ok kubeadm_init_result=initialized"
fi

STEP=cni
DIE_SUMMARY="cni_install_result=failed"
if ! timeout 120 "${KUBECTL[@]}" apply -f "$IN/cni.yaml" >/dev/null 2>"$STATE_DIR/.cni.err"; then
  DIE_KEYS="error_key=cni_install_failed"
  die "applying the CNI manifest failed: $(tail -n 3 "$STATE_DIR/.cni.err" | tr '\n' ' ')"
fi
rm -f "$STATE_DIR/.cni.err"
log INFO "step=cni result=ok cni=$(tok "$(opt cni)")"
DIE_SUMMARY=""

log INFO "step=done result=ok kubeadm_init_result=$INIT_RESULT cni_install_result=applied k8s_version=$(tok "$VERSION")"
