# shellcheck shell=bash
# OpsPilot hooks: the node setup the k8s runtime's hooks share — sourced after
# lib/common.sh, never run. Functions and fixed values only.
#
# A node gets, from the bundle files OpsPilot uploaded into $OPS_SCRIPT_ROOT:
#   binaries   /usr/local/bin/{containerd,containerd-shim-runc-v2,runc,ctr,
#              kubelet,kubeadm,kubectl,crictl}, CNI plugins in /opt/cni/bin
#   config     /etc/containerd/config.toml, /etc/crictl.yaml
#   services   systemd: opspilot-containerd.service, kubelet.service + kubeadm's
#              drop-in; otherwise supervisor loops started with setsid (pid files
#              in /run/opspilot, logs in /var/log/opspilot)
#   images     images/k8s-<version>/*.tar imported into containerd's k8s.io namespace
# Every path created is recorded in /opt/opspilot/state/k8s-runtime.installed,
# so rollback-k8s.sh removes exactly that. A node that is a container itself
# (lib/common.sh in_container) gets a cgroup root of its own for its pods:
# every container of a machine shares one cgroup tree.

# shellcheck disable=SC2034  # each hook uses some of these
{
  K8S_STATE=$STATE_DIR/k8s-runtime.installed
  K8S_BINS=(containerd containerd-shim-runc-v2 runc ctr kubelet kubeadm kubectl crictl)
  CNI_BIN_DIR=/opt/cni/bin
  # data the runtime makes: recorded when absent before the install, so rollback
  # removes only what it made
  K8S_DATA_DIRS=(/etc/kubernetes /var/lib/kubelet /var/lib/etcd /var/lib/containerd /etc/containerd /run/flannel /etc/cni/net.d /opt/cni/bin)
  CONTAINERD_SOCK=/run/containerd/containerd.sock
  K8S_LOG_DIR=/var/log/opspilot
  KUBELET_DEFAULTS=/etc/default/kubelet
  SUPERVISOR_DIR=/usr/local/lib/opspilot
}

k8s_state_has() { [ -f "$K8S_STATE" ] && grep -Fxq -- "$1" "$K8S_STATE"; }
k8s_state_add() { k8s_state_has "$1" || printf '%s\n' "$1" >>"$K8S_STATE"; }

# k8s_place SRC DST MODE: install SRC as DST unless identical; a file OpsPilot did
# not place is refused (the node runs someone else's Kubernetes). 0 = changed.
k8s_place() {
  local src=$1 dst=$2 mode=$3 tmp
  if [ -e "$dst" ] && ! k8s_state_has "file=$dst"; then
    die "$dst exists and was not installed by OpsPilot: this host has another container runtime or Kubernetes; use a clean host or roll that back first"
  fi
  mkdir -p "$(dirname "$dst")"
  k8s_state_add "file=$dst"
  if [ -f "$dst" ] && [ "$(sha_of "$src")" = "$(sha_of "$dst")" ]; then chmod "$mode" "$dst"; return 1; fi
  tmp=$(dirname "$dst")/.$(basename "$dst").opspilot-tmp.$$
  install -m "$mode" "$src" "$tmp"
  mv -f "$tmp" "$dst"
}

# k8s_write DST MODE CONTENT: k8s_place for generated text
k8s_write() {
  local tmp rc=0
  tmp=$(mktemp "$STATE_DIR/.gen.XXXXXX")
  printf '%s' "$3" >"$tmp"
  k8s_place "$tmp" "$1" "$2" || rc=$?
  rm -f "$tmp"
  return "$rc"
}

k8s_init_system() { if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo systemd; else echo supervisor; fi; }

# k8s_supervise NAME CMD...: a loop that restarts CMD (what systemd's Restart=always
# does), in its own session; its pid in $RUN_DIR/NAME-supervisor.pid
k8s_supervise() {
  local name=$1; shift
  local pidf=$RUN_DIR/$name-supervisor.pid p
  p=$(cat "$pidf" 2>/dev/null || true)
  if [[ $p =~ ^[0-9]+$ ]] && [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "supervise $name"; then return 0; fi
  mkdir -p "$RUN_DIR" "$K8S_LOG_DIR"
  k8s_write "$SUPERVISOR_DIR/supervise" 0755 '#!/usr/bin/env bash
# supervise NAME CMD...: runs CMD again 2 s after it exits (installed by OpsPilot)
shift
while true; do "$@"; sleep 2; done
' || true
  setsid nohup "$SUPERVISOR_DIR/supervise" "$name" "$@" </dev/null >>"$K8S_LOG_DIR/$name.log" 2>&1 9>&- &
  echo $! >"$pidf"
  disown || true
}

# k8s_unsupervise NAME PROCESS: stop the loop, then the process it ran
k8s_unsupervise() {
  local name=$1 proc=$2 p i
  p=$(cat "$RUN_DIR/$name-supervisor.pid" 2>/dev/null || true)
  if [[ $p =~ ^[0-9]+$ ]] && [ -r "/proc/$p/cmdline" ]; then kill -TERM "$p" 2>/dev/null || true; fi
  rm -f "$RUN_DIR/$name-supervisor.pid"
  for p in $(pids_of "$proc"); do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < 40; i++)); do [ -z "$(pids_of "$proc")" ] && return 0; sleep 0.5; done
  for p in $(pids_of "$proc"); do kill -KILL "$p" 2>/dev/null || true; done
}

# k8s_install_binaries SRC_BIN: the runtime's binaries and the CNI plugins
k8s_install_binaries() {
  local src=$1 b changed=0 tgz
  for b in "${K8S_BINS[@]}"; do
    [ -s "$src/$b" ] || die "bundle file missing in $OPS_SCRIPT_ROOT: bin/linux-amd64/$b"
    if k8s_place "$src/$b" "$BIN_DIR/$b" 0755; then changed=1; fi
  done
  tgz=$(ls "$src"/cni-plugins*.tgz 2>/dev/null | head -n 1)
  [ -n "$tgz" ] || die "bundle file missing in $OPS_SCRIPT_ROOT: bin/linux-amd64/cni-plugins.tgz (the CNI plugins release archive)"
  local x; x=$(mktemp -d "$STATE_DIR/.cni.XXXXXX")
  tar -C "$x" -xzf "$tgz"
  for b in "$x"/*; do
    if k8s_place "$b" "$CNI_BIN_DIR/$(basename "$b")" 0755; then changed=1; fi
  done
  rm -rf "$x"
  log INFO "step=$STEP binaries=installed changed=$changed"
}

# k8s_cgroup_root: on a node that is a container, a cgroup of its own for kubelet's
# pods (--cgroup-root), created in every writable v1 hierarchy; empty otherwise
k8s_cgroup_root() {
  in_container || return 0
  local name root c
  name=$(hostname -s | tr -c 'A-Za-z0-9-\n' '-')
  root=opspilot-$name
  for c in /sys/fs/cgroup/*/; do
    [ -L "${c%/}" ] && continue
    mkdir -p "$c$root" 2>/dev/null || continue
  done
  if [ -d "/sys/fs/cgroup/cpuset/$root" ]; then
    [ -s "/sys/fs/cgroup/cpuset/$root/cpuset.cpus" ] && [ -n "$(cat "/sys/fs/cgroup/cpuset/$root/cpuset.cpus")" ] ||
      cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$root/cpuset.cpus"
    [ -n "$(cat "/sys/fs/cgroup/cpuset/$root/cpuset.mems" 2>/dev/null)" ] ||
      cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$root/cpuset.mems"
  fi
  printf '/%s' "$root"
}

# k8s_containerd SANDBOX_IMAGE: configure and start containerd, wait until it answers
k8s_containerd() {
  local sandbox=$1 cfg init i snap=overlayfs
  in_container && snap=native
  cfg=$("$BIN_DIR/containerd" config default)
  cfg=$(printf '%s\n' "$cfg" | sed -e "s|sandbox_image = .*|sandbox_image = \"$sandbox\"|" \
    -e "s|snapshotter = \"overlayfs\"|snapshotter = \"$snap\"|" \
    -e 's|restrict_oom_score_adj = false|restrict_oom_score_adj = true|')
  k8s_write /etc/containerd/config.toml 0644 "$cfg"$'\n' || true
  k8s_write /etc/crictl.yaml 0644 "runtime-endpoint: unix://$CONTAINERD_SOCK"$'\n'"image-endpoint: unix://$CONTAINERD_SOCK"$'\n'"timeout: 30"$'\n' || true
  init=$(k8s_init_system)
  if [ "$init" = systemd ]; then
    k8s_write /etc/systemd/system/opspilot-containerd.service 0644 "[Unit]
Description=containerd for Kubernetes (installed by OpsPilot)
After=network.target
[Service]
ExecStart=$BIN_DIR/containerd --config /etc/containerd/config.toml
Restart=always
Delegate=yes
KillMode=process
LimitNOFILE=1048576
[Install]
WantedBy=multi-user.target
" || true
    systemctl daemon-reload
    systemctl enable --now opspilot-containerd.service >/dev/null 2>&1
  else
    k8s_supervise containerd "$BIN_DIR/containerd" --config /etc/containerd/config.toml
  fi
  for ((i = 0; i < 60; i++)); do
    "$BIN_DIR/ctr" --address "$CONTAINERD_SOCK" version >/dev/null 2>&1 && { log INFO "step=$STEP containerd=running init=$init snapshotter=$snap"; return 0; }
    sleep 1
  done
  die "containerd did not answer on $CONTAINERD_SOCK within 60 s (log: $K8S_LOG_DIR/containerd.log or journalctl -u opspilot-containerd)"
}

# k8s_load_images DIR: import every *.tar of DIR into containerd's k8s.io namespace
k8s_load_images() {
  local dir=$1 f n=0
  [ -d "$dir" ] || die "bundle folder missing in $OPS_SCRIPT_ROOT: ${dir#"$OPS_SCRIPT_ROOT"/} (the images of this Kubernetes version)"
  for f in "$dir"/*.tar; do
    [ -e "$f" ] || continue
    "$BIN_DIR/ctr" --address "$CONTAINERD_SOCK" -n k8s.io images import "$f" >/dev/null ||
      die "importing $(basename "$f") into containerd failed"
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] || die "no image archive in ${dir#"$OPS_SCRIPT_ROOT"/}"
  log INFO "step=$STEP images_loaded=$n"
}

# k8s_kubelet CGROUP_ROOT: kubelet as kubeadm expects it (systemd unit + drop-in,
# or a supervisor loop reading the same files); started once kubeadm wrote its config
k8s_kubelet() {
  local cgroot=$1 extra="" init
  [ -n "$cgroot" ] && extra="--cgroup-root=$cgroot"
  k8s_write "$KUBELET_DEFAULTS" 0644 "KUBELET_EXTRA_ARGS=$extra"$'\n' || true
  init=$(k8s_init_system)
  if [ "$init" = systemd ]; then
    k8s_write /etc/systemd/system/kubelet.service 0644 "[Unit]
Description=kubelet (installed by OpsPilot)
After=opspilot-containerd.service
Wants=opspilot-containerd.service
[Service]
ExecStart=$BIN_DIR/kubelet
Restart=always
RestartSec=2
[Install]
WantedBy=multi-user.target
" || true
    k8s_write /etc/systemd/system/kubelet.service.d/10-kubeadm.conf 0644 "[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-$KUBELET_DEFAULTS
ExecStart=
ExecStart=$BIN_DIR/kubelet \$KUBELET_KUBECONFIG_ARGS \$KUBELET_CONFIG_ARGS \$KUBELET_KUBEADM_ARGS \$KUBELET_EXTRA_ARGS
" || true
    systemctl daemon-reload
    systemctl enable kubelet.service >/dev/null 2>&1
  else
    k8s_write "$SUPERVISOR_DIR/kubelet-run" 0755 "#!/usr/bin/env bash
# runs kubelet as kubeadm's systemd drop-in would (hosts without systemd)
[ -f /var/lib/kubelet/config.yaml ] || exit 0
KUBELET_KUBEADM_ARGS=''; KUBELET_EXTRA_ARGS=''
[ -r /var/lib/kubelet/kubeadm-flags.env ] && . /var/lib/kubelet/kubeadm-flags.env
[ -r $KUBELET_DEFAULTS ] && . $KUBELET_DEFAULTS
# shellcheck disable=SC2086
exec $BIN_DIR/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml \$KUBELET_KUBEADM_ARGS \$KUBELET_EXTRA_ARGS
" || true
    k8s_supervise kubelet "$SUPERVISOR_DIR/kubelet-run"
  fi
  log INFO "step=$STEP kubelet=configured init=$init cgroup_root=$(tok "${cgroot:-default}")"
}

# k8s_node_setup VERSION: everything a node needs before kubeadm init/join
k8s_node_setup() {
  local version=$1 sandbox
  [[ $version =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "install_options.k8s_version must look like v1.31.14"
  mkdir -p "$STATE_DIR" "$RUN_DIR" "$K8S_LOG_DIR"; chmod 0700 "$STATE_DIR"
  if [ ! -f "$K8S_STATE" ]; then
    printf '# OpsPilot k8s runtime: written by the install-k8s hooks, read by rollback-k8s.sh\n' >"$K8S_STATE"
    local d
    for d in "${K8S_DATA_DIRS[@]}"; do [ -e "$d" ] || k8s_state_add "dir=$d"; done
  fi
  STEP=binaries; k8s_install_binaries "$OPS_SCRIPT_ROOT/bin/linux-amd64"
  STEP=containerd
  sandbox=$(opt sandbox_image); sandbox=${sandbox:-opspilot/pause:3.10}
  [[ $sandbox =~ ^[a-z0-9./_-]+:[A-Za-z0-9._-]+$ ]] || die "install_options.sandbox_image is not an image reference"
  k8s_containerd "$sandbox"
  STEP=images; k8s_load_images "$OPS_SCRIPT_ROOT/images/k8s-$version"
  STEP=kubelet; k8s_kubelet "$(k8s_cgroup_root)"
}

# k8s_start_kubelet: (re)start kubelet after kubeadm wrote its configuration
k8s_start_kubelet() {
  if [ "$(k8s_init_system)" = systemd ]; then
    systemctl restart kubelet.service
  else
    # the loop (started again when a reset stopped it) picks the configuration up itself
    k8s_supervise kubelet "$SUPERVISOR_DIR/kubelet-run"
  fi
}

# k8s_stop_kubelet: before kubeadm reset, or it recreates the pods reset removes
k8s_stop_kubelet() {
  if [ "$(k8s_init_system)" = systemd ]; then systemctl stop kubelet.service 2>/dev/null || true; fi
  k8s_unsupervise kubelet kubelet
}
