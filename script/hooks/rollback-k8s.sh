#!/usr/bin/env bash
# OpsPilot hook: rollback-k8s.sh — takes the k8s runtime off this node again
# (phase: rollback, runOn: all): stops kubelet, removes the pods, `kubeadm
# reset`, stops containerd, then removes exactly the paths the install hooks
# recorded in /opt/opspilot/state/k8s-runtime.installed, the data kubeadm and
# kubelet made (/etc/kubernetes, /var/lib/kubelet, /var/lib/etcd, /etc/cni/net.d
# files of OpsPilot's CNI) and the node's cgroup root. Safe to run again, and on a
# node where the install never ran (nothing to do).
#
# Last log line: [INFO] step=done result=ok removed=N rollback_result=rolled_back|nothing_installed
set -euo pipefail
HOOK=rollback-k8s.sh
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
log_start step=start "action=$(tok "${OPS_ACTION:-rollback}")"
[ "$(id -u)" -eq 0 ] || die "must run as root (log in as root or use passwordless sudo -n)"

if [ ! -f "$K8S_STATE" ]; then
  log INFO "step=done result=ok removed=0 rollback_result=nothing_installed"
  exit 0
fi

STEP=kubelet
k8s_stop_kubelet
STEP=reset
if [ -x "$BIN_DIR/crictl" ] && [ -S "$CONTAINERD_SOCK" ]; then
  "$BIN_DIR/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" rmp -fa >/dev/null 2>&1 || true
fi
if [ -x "$BIN_DIR/kubeadm" ] && { k8s_state_has "kubeadm=init" || k8s_state_has "kubeadm=join"; }; then
  "$BIN_DIR/kubeadm" reset -f --cri-socket "unix://$CONTAINERD_SOCK" >/dev/null 2>&1 || log WARN "step=reset msg=$(msgq "kubeadm reset reported errors; continuing")"
fi
STEP=containerd
if [ "$(k8s_init_system)" = systemd ]; then
  systemctl disable --now kubelet.service opspilot-containerd.service >/dev/null 2>&1 || true
fi
k8s_unsupervise containerd containerd
for p in $(pgrep -f "containerd-shim-runc-v2 -namespace k8s.io" 2>/dev/null || true); do kill -KILL "$p" 2>/dev/null || true; done

STEP=mounts
# kubelet bind-mounts /var/lib/kubelet onto itself (to share mounts) and mounts
# pod volumes below it; kubeadm reset leaves some: deepest first, lazily
mapfile -t mounts < <(awk '{ print $2 }' /proc/mounts | grep -E '^/(var/lib/kubelet|run/containerd|var/lib/containerd)(/|$)' | sort -r || true)
for m in "${mounts[@]}"; do umount -l "$m" 2>/dev/null || log WARN "step=mounts path=$(tok "$m") msg=$(msgq "could not unmount")"; done

STEP=files
removed=0
while IFS= read -r line; do
  case $line in
    file=/*)
      f=${line#file=}
      if [ -e "$f" ] || [ -L "$f" ]; then rm -f -- "$f"; removed=$((removed + 1)); fi ;;
  esac
done <"$K8S_STATE"
while IFS= read -r line; do
  case $line in
    dir=/*)
      d=${line#dir=}
      if [ -e "$d" ]; then rm -rf -- "$d"; removed=$((removed + 1)); fi ;;
  esac
done <"$K8S_STATE"
rm -f /etc/cni/net.d/10-opspilot-pods.conflist
rm -rf /run/containerd
if [ "$(k8s_init_system)" = systemd ]; then systemctl daemon-reload 2>/dev/null || true; fi

STEP=cgroups
name=$(hostname -s | tr -c 'A-Za-z0-9-\n' '-')
for c in /sys/fs/cgroup/*/opspilot-"$name"; do
  [ -d "$c" ] || continue
  # kubelet's groups below it go first (rmdir only removes empty groups)
  find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
done
rm -f "$K8S_STATE"
log INFO "step=done result=ok removed=$removed rollback_result=rolled_back"
