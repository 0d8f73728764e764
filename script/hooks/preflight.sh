#!/usr/bin/env bash
# OpsPilot hook: preflight.sh — read-only checks before a runtime is installed.
#
# Runs on every node (runOn: all). Changes nothing on the host. Every check prints
# one line `[INFO|WARN|ERROR] check=<name> result=ok|warn|failed ...`; all checks
# run even after a failure, and the last line is
#   [INFO]  preflight_summary=ok ...        (exit 0)
#   [ERROR] preflight_summary=failed ...    (exit 1, one reason per failed check on stderr)
#
# Inputs (environment, set by OpsPilot): OPS_RUNTIME_TYPE, OPS_SCRIPT_ROOT, OPS_WORKDIR,
# OPS_TASK_ID, OPS_NODE_IP, OPS_NODE_ROLE, OPS_RETRY_ATTEMPT. install_options read from
# $OPS_WORKDIR/context.json: docker_storage_driver, docker_data_root, docker_nested.
# Nothing read from the environment or context.json is ever evaluated or sourced.
set -euo pipefail
HOOK=preflight.sh
# the helpers every hook shares (log lines, context.json, host probes): lib/ beside this file
case $0 in */*) HOOK_LIB=${0%/*}/lib/common.sh ;; *) HOOK_LIB=lib/common.sh ;; esac
if [ ! -r "$HOOK_LIB" ]; then
  printf '[ERROR] preflight_summary=failed reason=lib_missing msg="hooks/lib/common.sh is missing beside the hook"\n'
  printf '%s: %s is missing: upload the bundle'"'"'s hooks/lib/common.sh with the hooks\n' "$HOOK" "$HOOK_LIB" >&2
  exit 1
fi
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$HOOK_LIB"

MIN_FREE_GIB=2    # fail below
WARN_FREE_GIB=10  # warn below

# ------------------------------------------------------------------ helpers
# shellcheck disable=SC2317  # invoked by the ERR trap
on_unexpected() {
  log ERROR "preflight_summary=failed reason=internal_error line=$1 command=$(msgq "$2")"
  printf '%s: internal error at line %s: %s\n' "$HOOK" "$1" "$2" >&2
  exit 1
}
trap 'on_unexpected "$LINENO" "$BASH_COMMAND"' ERR

CHECKS=0; WARNINGS=0; FAILED=(); REASONS=()
ok()   { CHECKS=$((CHECKS + 1)); log INFO "check=$1 result=ok ${*:2}"; }
warn() { CHECKS=$((CHECKS + 1)); WARNINGS=$((WARNINGS + 1)); log WARN "check=$1 result=warn msg=$(msgq "$2") ${*:3}"; }
fail() { CHECKS=$((CHECKS + 1)); FAILED+=("$1"); REASONS+=("$1: $2"); log ERROR "check=$1 result=failed msg=$(msgq "$2") ${*:3}"; }

# free_gib PATH: free GiB on the filesystem holding PATH (nearest existing ancestor)
free_gib() {
  local p=$1 line avail
  while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done
  line=$(df -Pk "$p" 2>/dev/null | tail -n 1) || return 1
  read -r _ _ _ avail _ <<<"$line"
  [[ $avail =~ ^[0-9]+$ ]] || return 1
  printf '%s' $((avail / 1024 / 1024))
}

# version_ge A B: A >= B for dotted numeric versions (first two parts)
version_ge() {
  local a1 a2 b1 b2
  IFS=. read -r a1 a2 _ <<<"$1."; IFS=. read -r b1 b2 _ <<<"$2."
  a1=${a1:-0} a2=${a2:-0} b1=${b1:-0} b2=${b2:-0}
  [ "$((10#$a1))" -gt "$((10#$b1))" ] || { [ "$((10#$a1))" -eq "$((10#$b1))" ] && [ "$((10#$a2))" -ge "$((10#$b2))" ]; }
}

# ------------------------------------------------------------------ inputs
# (OPS_SCRIPT_ROOT, OPS_TASK_ID, OPS_WORKDIR and CTX_FILE get their defaults in lib/common.sh)
RUNTIME=${OPS_RUNTIME_TYPE:-compose}
case $OPS_SCRIPT_ROOT in /*) ;; *) log ERROR "preflight_summary=failed reason=bad_script_root"; echo "$HOOK: OPS_SCRIPT_ROOT must be an absolute path" >&2; exit 1 ;; esac

log_start "step=preflight result=start" "runtime=$(tok "$RUNTIME")"

# ------------------------------------------------------------------ checks
case $RUNTIME in
  compose) ok runtime "runtime=compose" ;;
  k8s) warn runtime "this bundle ships no k8s runtime yet: only host checks run" "runtime=k8s" ;;
  *) fail runtime "unknown OPS_RUNTIME_TYPE '$RUNTIME' (expected compose or k8s)" ;;
esac

if [ -r "$CTX_FILE" ]; then ok context "file=$(tok "$CTX_FILE")"
else warn context "no readable $CTX_FILE: install_options default" "file=$(tok "$CTX_FILE")"; fi

if [ "$(id -u)" -eq 0 ]; then ok privileges "uid=0"
else fail privileges "hooks must run as root (log in as root or use a user with passwordless sudo -n)" "uid=$(id -u)"; fi

OS=$(uname -s); ARCH=$(uname -m)
if [ "$OS" = Linux ]; then ok os "os=linux"; else fail os "unsupported OS $OS (bundle is linux/amd64)" "os=$(tok "$OS")"; fi
case $ARCH in
  x86_64 | amd64) ok arch "arch=amd64" ;;
  *) fail arch "unsupported architecture $ARCH (bundle binaries are linux-amd64)" "arch=$(tok "$ARCH")" ;;
esac

# kernel >= compatibility.requiresKernelMin of the bundle's index (4.19 when unreadable)
KMIN=""
if [ -r "$OPS_SCRIPT_ROOT/manifests/index.yaml" ]; then
  KMIN=$(grep -E '^[[:space:]]*requiresKernelMin:' "$OPS_SCRIPT_ROOT/manifests/index.yaml" | head -n 1 | sed -E 's/^[^:]*:[[:space:]]*//; s/["'\'' ]//g') || KMIN=""
fi
[[ $KMIN =~ ^[0-9]+(\.[0-9]+)*$ ]] || KMIN=4.19
KREL=$(uname -r); KVER=""
[[ $KREL =~ ^([0-9]+\.[0-9]+) ]] && KVER=${BASH_REMATCH[1]}
if [ -z "$KVER" ]; then fail kernel "cannot parse kernel release $KREL" "kernel=$(tok "$KREL")"
elif version_ge "$KVER" "$KMIN"; then ok kernel "kernel=$(tok "$KREL") min=$KMIN"
else fail kernel "kernel $KREL is older than the required $KMIN" "kernel=$(tok "$KREL") min=$KMIN"; fi

NEED_CMDS=(bash tar sha256sum install mkdir mv rm cp cat grep sed tr head tail dirname readlink stat df od id ps pgrep setsid nohup mount umount sleep timeout)
MISSING=()
for c in "${NEED_CMDS[@]}"; do command -v "$c" >/dev/null 2>&1 || MISSING+=("$c"); done
if [ ${#MISSING[@]} -eq 0 ]; then ok commands "count=${#NEED_CMDS[@]}"
else fail commands "required commands missing: ${MISSING[*]}" "missing=$(tok "${MISSING[*]}")"; fi

if [ -d /sys/fs/cgroup ] && [ -n "$(ls -A /sys/fs/cgroup 2>/dev/null)" ]; then
  if [ -e /sys/fs/cgroup/cgroup.controllers ]; then CG=v2; else CG=v1; fi
  ok cgroups "version=$CG"
else fail cgroups "no cgroup filesystem mounted at /sys/fs/cgroup (the container engine needs it)"; fi

# install options (validated; unknown values are refused rather than guessed)
NESTED_OPT=$(opt docker_nested); SD_OPT=$(opt docker_storage_driver); DR_OPT=$(opt docker_data_root)
case ${NESTED_OPT:-auto} in auto | true | false) ;; *) fail install_options "docker_nested must be auto, true or false"; NESTED_OPT=auto ;; esac
if [ -n "$SD_OPT" ] && ! [[ $SD_OPT =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]]; then fail install_options "docker_storage_driver is not a storage driver name"; SD_OPT=""; fi
if [ -n "$DR_OPT" ] && { ! [[ $DR_OPT =~ ^/[A-Za-z0-9._/-]+$ ]] || [[ $DR_OPT == *..* ]] || [ "$DR_OPT" = / ]; }; then
  fail install_options "docker_data_root must be an absolute path of [A-Za-z0-9._/-]"; DR_OPT=""
fi
DATA_ROOT=${DR_OPT:-/var/lib/docker}
if [ "${NESTED_OPT:-auto}" = true ] || { [ "${NESTED_OPT:-auto}" = auto ] && in_container; }; then NESTED=true; else NESTED=false; fi
if [ -n "$SD_OPT" ]; then SD=$SD_OPT; elif [ $NESTED = true ]; then SD=vfs; else SD=engine_default; fi
ok engine_plan "nested=$NESTED storage_driver=$SD data_root=$(tok "$DATA_ROOT")"
if [ -d /run/systemd/system ]; then ok init "init=systemd"; else ok init "init=supervisor"; fi
if [ $NESTED = false ] && [ "$RUNTIME" = compose ] && ! command -v iptables >/dev/null 2>&1; then
  warn iptables "iptables not found: dockerd needs it for bridge networking (or set install_options.docker_nested=true)"
fi

# free disk where images/containers live and where OpsPilot keeps its files
for p in "$DATA_ROOT" /opt; do
  if G=$(free_gib "$p"); then
    if [ "$G" -lt "$MIN_FREE_GIB" ]; then fail disk "only ${G} GiB free for $p (minimum ${MIN_FREE_GIB} GiB)" "path=$(tok "$p") free_gib=$G"
    elif [ "$G" -lt "$WARN_FREE_GIB" ]; then warn disk "only ${G} GiB free for $p (recommended ${WARN_FREE_GIB} GiB)" "path=$(tok "$p") free_gib=$G"
    else ok disk "path=$(tok "$p") free_gib=$G"; fi
  else fail disk "cannot read free space for $p" "path=$(tok "$p")"; fi
done

# the bundle files this runtime needs, uploaded into $OPS_SCRIPT_ROOT by OpsPilot
if [ "$RUNTIME" = compose ]; then
  BINS=(dockerd docker docker-proxy containerd containerd-shim-runc-v2 runc docker-compose)
  FILES=(hooks/install-compose.sh hooks/post-install-verify.sh hooks/rollback.sh templates/compose/docker-compose.yml.tpl)
  BAD=()
  for b in "${BINS[@]}"; do
    f=$OPS_SCRIPT_ROOT/bin/linux-amd64/$b
    if [ ! -f "$f" ] || [ ! -s "$f" ]; then BAD+=("bin/linux-amd64/$b:missing"); continue; fi
    magic=$(od -An -c -N 4 "$f" 2>/dev/null | tr -d ' ') || magic=""
    machine=$(od -An -t x1 -j 18 -N 2 "$f" 2>/dev/null | tr -d ' ') || machine=""
    if [ "$magic" != '177ELF' ]; then BAD+=("bin/linux-amd64/$b:not_elf")
    elif [ "$machine" != 3e00 ]; then BAD+=("bin/linux-amd64/$b:not_x86_64"); fi
  done
  for f in "${FILES[@]}"; do [ -s "$OPS_SCRIPT_ROOT/$f" ] || BAD+=("$f:missing"); done
  if [ ${#BAD[@]} -eq 0 ]; then ok bundle_files "root=$(tok "$OPS_SCRIPT_ROOT") binaries=${#BINS[@]}"
  else fail bundle_files "bundle files missing or unusable in $OPS_SCRIPT_ROOT: ${BAD[*]}" "bad=$(tok "${BAD[*]}")"; fi
  N_IMG=0
  for f in "$OPS_SCRIPT_ROOT"/images/*.tar "$OPS_SCRIPT_ROOT"/images/*.tar.gz; do [ -f "$f" ] && N_IMG=$((N_IMG + 1)); done
  ok bundle_images "archives=$N_IMG"

  # dynamically linked binaries (Debian's) need their shared libraries on the host
  if command -v ldd >/dev/null 2>&1; then
    LIBS=()
    for b in dockerd docker containerd runc; do
      f=$OPS_SCRIPT_ROOT/bin/linux-amd64/$b
      [ -f "$f" ] || continue
      while read -r lib _; do LIBS+=("$b:$lib"); done < <(ldd "$f" 2>/dev/null | grep 'not found' || true)
    done
    if [ ${#LIBS[@]} -eq 0 ]; then ok shared_libraries
    else fail shared_libraries "shared libraries missing on the host: ${LIBS[*]}" "missing=$(tok "${LIBS[*]}")"; fi
  else warn shared_libraries "ldd not found: shared libraries of the binaries not checked"; fi

  # a Docker engine that OpsPilot did not install must not be taken over
  OURS=false; [ -f "$STATE_FILE" ] && OURS=true
  FOREIGN=()
  for pid in $(pgrep -x dockerd 2>/dev/null || true); do
    exe=$(exe_of "$pid")
    if [ $OURS = false ] || [ "$exe" != "$BIN_DIR/dockerd" ]; then FOREIGN+=("dockerd[pid=$pid,exe=${exe:-unknown}]"); fi
  done
  if [ -S /var/run/docker.sock ] && [ $OURS = false ] && [ ${#FOREIGN[@]} -eq 0 ]; then
    if command -v curl >/dev/null 2>&1 && curl -fsS --max-time 3 --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1; then
      FOREIGN+=("/var/run/docker.sock answers")
    else
      warn docker_socket "stale /var/run/docker.sock without a running engine; dockerd will replace it"
    fi
  fi
  if [ ${#FOREIGN[@]} -eq 0 ]; then ok foreign_engine "opspilot_installed=$OURS"
  else fail foreign_engine "a Docker engine not installed by OpsPilot is running on this host (${FOREIGN[*]}); remove it or use another host" "found=$(tok "${FOREIGN[*]}")"; fi
  if [ $OURS = false ] && [ -d "$DATA_ROOT" ] && [ -n "$(ls -A "$DATA_ROOT" 2>/dev/null)" ]; then
    fail data_root "$DATA_ROOT is not empty but OpsPilot did not install an engine here (left over by another Docker?); remove it or set install_options.docker_data_root" "path=$(tok "$DATA_ROOT")"
  else ok data_root "path=$(tok "$DATA_ROOT")"; fi
  if [ $OURS = false ] && [ -f /etc/docker/daemon.json ]; then
    warn daemon_json "/etc/docker/daemon.json exists and is not OpsPilot's: it is used as is and not changed"
  fi
  for other in /usr/bin/dockerd /usr/sbin/dockerd /usr/bin/containerd; do
    if [ -e "$other" ]; then warn other_engine_files "another engine's binary $other exists; OpsPilot's live in $BIN_DIR" "path=$other"; fi
  done
fi

# ------------------------------------------------------------------ summary
if [ ${#FAILED[@]} -eq 0 ]; then
  log INFO "preflight_summary=ok runtime=$(tok "$RUNTIME") checks=$CHECKS warnings=$WARNINGS os=linux arch=amd64 kernel=$(tok "$KREL") nested=$NESTED storage_driver=$SD"
  exit 0
fi
log ERROR "preflight_summary=failed runtime=$(tok "$RUNTIME") checks=$CHECKS warnings=$WARNINGS failed=$(tok "$(IFS=,; echo "${FAILED[*]}")")"
for r in "${REASONS[@]}"; do printf '%s: %s\n' "$HOOK" "$r" >&2; done
exit 1
