# shellcheck shell=bash
# OpsPilot hooks: the helpers every hook shares — sourced, never run.
#
# Each hook in hooks/ sources this file (uploaded with it as the compose runtime's
# `scripts` artifact hooks/lib/common.sh) right after `set -euo pipefail`, from the
# directory the hook itself lives in. It defines functions and fixed values only:
# nothing read from the environment or context.json is evaluated, sourced or put
# into generated shell code here either.
#
# The hook sets before sourcing:  HOOK (its file name, for stderr lines)
# and after sourcing, when it uses die: STEP, DIE_KEYS, DIE_SUMMARY (see die).

# ------------------------------------------------------------------ shell environment
set -o errtrace
umask 022
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
# the engine OpsPilot installs, never a remote or TLS one from the caller's environment
export DOCKER_HOST=unix:///var/run/docker.sock
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

# ------------------------------------------------------------------ fixed paths
# shellcheck disable=SC2034  # each hook uses some of these
{
  STATE_DIR=/opt/opspilot/state
  STATE_FILE=$STATE_DIR/compose-runtime.installed
  BACKUP_DIR=$STATE_DIR/backup
  BIN_DIR=/usr/local/bin
  DOCKER=$BIN_DIR/docker
  RUN_DIR=/run/opspilot
  UNIT_NAME=opspilot-dockerd.service
  COMPOSE_DIR=/opt/opspilot/compose
  # what the engine creates besides its data root: install-compose.sh records which
  # of these did not exist before, rollback.sh removes only those
  ENGINE_PATHS=(/var/lib/containerd /var/run/docker /var/run/containerd /var/run/docker.sock
    /var/run/docker.pid /etc/docker/key.json /root/.docker /opt/containerd)
}

# ------------------------------------------------------------------ inputs (defaults for a run by hand)
OPS_SCRIPT_ROOT=${OPS_SCRIPT_ROOT:-/opt/opspilot/script}
OPS_TASK_ID=${OPS_TASK_ID:-manual}
OPS_WORKDIR=${OPS_WORKDIR:-/opt/opspilot/tasks/$OPS_TASK_ID}
CTX_FILE=$OPS_WORKDIR/context.json

# ------------------------------------------------------------------ log lines
# one token for a key=value log line: whitespace -> '_', no quotes, printable only
tok() { local s=${1//[[:space:]]/_}; s=${s//[^[:print:]]/}; s=${s//\"/}; printf '%s' "${s:-none}"; }
# a quoted free-text value: msg="..."
msgq() { local s=${1//[[:space:]]/ }; s=${s//[^[:print:]]/}; s=${s//\"/\'}; printf '"%s"' "$s"; }
# log LEVEL KEY=VALUE...: `[LEVEL] key=value ...` on stdout, trailing blanks cut
log() { local level=$1 line; shift; line="$*"; printf '[%s] %s\n' "$level" "${line%"${line##*[! ]}"}"; }
# log_start HEAD [EXTRA]: the first line of a hook, `HEAD task=... [EXTRA] node_ip=... node_role=... attempt=...`
log_start() {
  log INFO "$1 task=$(tok "$OPS_TASK_ID") ${2:+$2 }node_ip=$(tok "${OPS_NODE_IP:-}") node_role=$(tok "${OPS_NODE_ROLE:-}") attempt=$(tok "${OPS_RETRY_ATTEMPT:-0}")"
}
# die MSG: `[ERROR] step=$STEP result=failed $DIE_KEYS msg="MSG"`, then `[ERROR] $DIE_SUMMARY
# failed_step=$STEP` when the hook set DIE_SUMMARY; MSG on stderr; exit 1
die() {
  log ERROR "step=${STEP:-init} result=failed ${DIE_KEYS:+$DIE_KEYS }msg=$(msgq "$1")"
  if [ -n "${DIE_SUMMARY:-}" ]; then log ERROR "$DIE_SUMMARY failed_step=${STEP:-init}"; fi
  printf '%s: %s\n' "$HOOK" "$1" >&2
  exit 1
}

# ------------------------------------------------------------------ context.json
# ctx_get KEY [SUBKEY]: the scalar value of context.json's top-level KEY, or of
# KEY.SUBKEY when KEY is an object. grep cuts the file into JSON tokens (one per
# line), a small state machine walks them; the file is never evaluated. Strings are
# returned without their quotes (escape sequences are left as they are: callers
# validate values against strict patterns), null as empty.
ctx_get() {
  local file=$CTX_FILE want1="\"$1\"" want2=${2:+\"$2\"} t stack="" key1="" key2="" expect_key=0 found=""
  [ -r "$file" ] || return 0
  while IFS= read -r t; do
    case $t in
      '{') stack+=o; expect_key=1 ;;
      '[') stack+=a; expect_key=0 ;;
      '}' | ']') stack=${stack%?}; expect_key=0 ;;
      ':') expect_key=0 ;;
      ',') [ "${stack: -1}" = o ] && expect_key=1 ;;
      *)
        if [ "${stack: -1}" = o ] && [ "$expect_key" = 1 ]; then
          case ${#stack} in 1) key1=$t; key2="" ;; 2) key2=$t ;; esac
        elif [ -z "$want2" ] && [ "$stack" = o ] && [ "$key1" = "$want1" ]; then
          found=$t; break
        elif [ -n "$want2" ] && [ "$stack" = oo ] && [ "$key1" = "$want1" ] && [ "$key2" = "$want2" ]; then
          found=$t; break
        fi ;;
    esac
  done < <(grep -oE '"([^"\\]|\\.)*"|[][{}:,]|[^][{}:,"[:space:]]+' "$file" 2>/dev/null || true)
  [ "$found" = null ] && found=""
  case $found in \"*\") found=${found#\"}; found=${found%\"} ;; esac
  printf '%s' "$found"
}
# opt KEY: install_options.KEY of context.json
opt() { ctx_get install_options "$1"; }

# ------------------------------------------------------------------ files
# sha_of FILE: its sha256 (hex), or status 1 when it cannot be read
sha_of() { local s; s=$(sha256sum "$1" 2>/dev/null) || return 1; printf '%s' "${s%% *}"; }

# ------------------------------------------------------------------ the host
# in_container: true when this host is itself a container (nested engine needed)
in_container() {
  [ -e /.dockerenv ] || [ -e /run/.containerenv ] && return 0
  local mnt fstype rootfs=""
  while read -r _ mnt fstype _; do [ "$mnt" = / ] && rootfs=$fstype; done </proc/mounts
  case $rootfs in overlay | aufs | fuse-overlayfs) return 0 ;; esac
  grep -qE '/(docker|lxc|kubepods|containerd|libpod)[/-]' /proc/1/cgroup 2>/dev/null && return 0
  if command -v systemd-detect-virt >/dev/null 2>&1 && systemd-detect-virt --container --quiet 2>/dev/null; then return 0; fi
  return 1
}

# ------------------------------------------------------------------ the engine's processes
# exe_of PID: the binary a process runs (without the " (deleted)" suffix)
exe_of() { local e; e=$(readlink "/proc/$1/exe" 2>/dev/null) || return 0; printf '%s' "${e% (deleted)}"; }
# pids_of NAME: processes named NAME that run OpsPilot's binary of that name ($BIN_DIR/NAME)
pids_of() {
  local p
  for p in $(pgrep -x "$1" 2>/dev/null || true); do
    if [ "$(exe_of "$p")" = "$BIN_DIR/$1" ]; then printf '%s\n' "$p"; fi
  done
}
engine_answers() { timeout 10 "$DOCKER" info >/dev/null 2>&1; }
# supervisor_pid: the pid of OpsPilot's dockerd supervisor (hosts without systemd), when it runs
supervisor_pid() {
  local p
  p=$(cat "$RUN_DIR/dockerd-supervisor.pid" 2>/dev/null) || return 1
  [[ $p =~ ^[0-9]+$ ]] && [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q 'dockerd-supervisor' && printf '%s' "$p"
}
# stop_supervisor: SIGTERM the supervisor (it stops dockerd), SIGKILL after 30 s
stop_supervisor() {
  local p i
  p=$(supervisor_pid) || return 0
  kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do
    if [ ! -d "/proc/$p" ]; then return 0; fi
    sleep 0.5
  done
  kill -KILL "$p" 2>/dev/null || true
}
# engine_links: the links named like the bridges a Docker engine makes (docker0,
# br-<network id>), one a line (callers check that `ip` exists)
engine_links() { ip -o link show 2>/dev/null | sed -nE 's/^[0-9]+: ([^:@]+).*/\1/p' | grep -E '^(docker0|br-[0-9a-f]{12})$' || true; }
# lock_runtime: serialise installs and rollbacks of the compose runtime (fd 9, kept until exit)
lock_runtime() {
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$RUN_DIR/compose-runtime.lock"
    flock -w 600 9 || die "another install or rollback of the compose runtime holds $RUN_DIR/compose-runtime.lock"
  fi
}
