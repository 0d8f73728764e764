#!/usr/bin/env bash
# OpsPilot hook: rollback.sh (phase: rollback) — undoes install-compose.sh on this
# node, fully and idempotently, from the record it keeps in
# /opt/opspilot/state/compose-runtime.installed:
#
#   1. removes every container (when the engine still answers)
#   2. stops the engine: systemd unit opspilot-dockerd.service (disabled) or the
#      dockerd supervisor, then any dockerd / containerd / shim / docker-proxy / runc
#      still running OpsPilot's binaries
#   3. lazily unmounts what is left under the engine's directories
#      (/var/lib/docker or the data root, /run/docker, /run/containerd, ...)
#   4. removes what did not exist before the install: the data root,
#      /var/lib/containerd, /run/docker, /run/containerd, docker.sock/pid,
#      /etc/docker/key.json, /root/.docker, /opt/containerd; the docker0 / br-*
#      bridges it made; Docker's iptables chains when the engine ran with iptables
#   5. removes the installed files, restores files it had backed up, removes the
#      directories it created when empty, and the state file itself
#
# /opt/opspilot/compose (compose project files) stays unless
# install_options.purge is "true" (then it is removed with everything in it).
# Without a state file there is nothing OpsPilot installed: the hook says so and
# exits 0. Nothing outside the recorded, allow-listed paths is ever removed.
# Last line: [INFO] step=rollback result=ok rollback_result=ok changed=true|false ...
set -euo pipefail
HOOK=rollback.sh
# the helpers every hook shares (log lines, die, context.json, engine probes): lib/ beside this file
case $0 in */*) HOOK_LIB=${0%/*}/lib/common.sh ;; *) HOOK_LIB=lib/common.sh ;; esac
if [ ! -r "$HOOK_LIB" ]; then
  printf '[ERROR] step=init result=failed rollback_result=failed msg="hooks/lib/common.sh is missing beside the hook"\n'
  printf '%s: %s is missing: upload the bundle'"'"'s hooks/lib/common.sh with the hooks\n' "$HOOK" "$HOOK_LIB" >&2
  exit 1
fi
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$HOOK_LIB"

STEP=init
DIE_KEYS=rollback_result=failed   # die: step=<step> result=failed rollback_result=failed msg=...
trap 'die "internal error at line $LINENO: $BASH_COMMAND"' ERR

# stop_named NAME SECONDS: SIGTERM, wait, then SIGKILL
stop_named() {
  local name=$1 secs=$2 p i
  [ -n "$(pids_of "$name")" ] || return 0
  for p in $(pids_of "$name"); do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < secs * 2; i++)); do
    if [ -z "$(pids_of "$name")" ]; then return 0; fi
    sleep 0.5
  done
  for p in $(pids_of "$name"); do kill -KILL "$p" 2>/dev/null || true; done
  sleep 0.5
  STOPPED_HARD+=("$name")
}

# allow-lists: what a state file line may name (a tampered record removes nothing else)
P='[A-Za-z0-9._-]+'
FILE_RE="^(/usr/local/bin/$P|/usr/local/lib/docker/cli-plugins/$P|/usr/local/lib/opspilot/$P|/etc/docker/daemon\\.json|/etc/systemd/system/opspilot-dockerd\\.service|/var/log/opspilot/$P)\$"
DIR_RE="^/(usr/local(/$P)*|etc/docker|etc/systemd/system|var/log/opspilot|run/opspilot|opt/opspilot/$P)\$"
FIXED_DATA=(/var/lib/docker "${ENGINE_PATHS[@]}")
is_data_path() {
  local p=$1 d
  [[ $p == *..* ]] && return 1
  for d in "${FIXED_DATA[@]}"; do [ "$p" = "$d" ] && return 0; done
  [ -n "$DATA_ROOT" ] && [ "$p" = "$DATA_ROOT" ] && [[ $p =~ ^/$P(/$P)+$ ]]
}

# ------------------------------------------------------------------ inputs
# (OPS_TASK_ID, OPS_WORKDIR and CTX_FILE get their defaults in lib/common.sh)
log_start step=start "action=$(tok "${OPS_ACTION:-rollback}")"
STEP=check
[ "$(id -u)" -eq 0 ] || die "must run as root (log in as root or use passwordless sudo -n)"
PURGE=$(ctx_get install_options purge)
case ${PURGE:=false} in true | false) ;; *) die "install_options.purge must be true or false" ;; esac

if [ ! -f "$STATE_FILE" ]; then
  # nothing recorded: at most a supervisor of ours is left (it has its name on it)
  if p=$(supervisor_pid); then
    kill -TERM "$p" 2>/dev/null || true
    log WARN "step=check msg=$(msgq "no state file but an OpsPilot dockerd supervisor was running: stopped it")"
  fi
  log INFO "step=rollback result=ok rollback_result=ok changed=false msg=$(msgq "the compose runtime is not installed by OpsPilot on this host: nothing to roll back")"
  exit 0
fi

# ------------------------------------------------------------------ read the record
FILES=(); DIRS=(); BACKUPS=(); ABSENT=(); EMPTY=(); DATA_ROOT=""; INIT=supervisor; IPTABLES=false; LINKS_BEFORE=""; LINKS_RECORDED=false
while IFS= read -r line; do
  case $line in
    file=*) FILES+=("${line#file=}") ;;
    dir=*) DIRS+=("${line#dir=}") ;;
    backup=*) BACKUPS+=("${line#backup=}") ;;
    absent_before=*) ABSENT+=("${line#absent_before=}") ;;
    empty_before=*) EMPTY+=("${line#empty_before=}") ;;
    data_root=*) DATA_ROOT=${line#data_root=} ;;
    init=*) INIT=${line#init=} ;;
    iptables=*) IPTABLES=${line#iptables=} ;;
    links_before=*) LINKS_BEFORE=${line#links_before=}; LINKS_RECORDED=true ;;
  esac
done <"$STATE_FILE"
log INFO "step=record files=${#FILES[@]} dirs=${#DIRS[@]} backups=${#BACKUPS[@]} data_root=$(tok "$DATA_ROOT") init=$(tok "$INIT") purge=$PURGE"

if [ -d "$RUN_DIR" ]; then lock_runtime; fi

# ------------------------------------------------------------------ containers
STEP=containers
REMOVED_CONTAINERS=0
if [ -x "$DOCKER" ] && engine_answers; then
  mapfile -t IDS < <(timeout 30 "$DOCKER" ps -aq 2>/dev/null || true)
  if [ ${#IDS[@]} -gt 0 ]; then
    timeout 180 "$DOCKER" rm -f "${IDS[@]}" >/dev/null 2>&1 || log WARN "step=containers msg=$(msgq "docker rm -f did not finish; the engine is stopped anyway")"
    REMOVED_CONTAINERS=${#IDS[@]}
  fi
  # user-defined networks (compose's <project>_default) take their bridges with them
  timeout 60 "$DOCKER" network prune -f >/dev/null 2>&1 || log WARN "step=containers msg=$(msgq "docker network prune did not finish; bridges are deleted below")"
fi
log INFO "step=containers result=ok removed=$REMOVED_CONTAINERS"

# ------------------------------------------------------------------ stop the engine
STEP=stop
STOPPED_HARD=()
if [ "$INIT" = systemd ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now "$UNIT_NAME" >/dev/null 2>&1 || true
fi
stop_supervisor
stop_named dockerd 30
for n in docker-proxy containerd containerd-shim-runc-v2 runc ctr docker; do stop_named "$n" 15; done
if [ -n "$(pids_of dockerd)$(pids_of containerd)$(pids_of containerd-shim-runc-v2)" ]; then
  die "engine processes are still running after SIGKILL"
fi
log INFO "step=stop result=ok killed=$(tok "${STOPPED_HARD[*]:-none}")"

# ------------------------------------------------------------------ mounts
STEP=mounts
# mounts at or below what did not exist before; below (not at) a data root that did
PREFIXES=(); INSIDE=()
for p in "${ABSENT[@]}"; do
  if is_data_path "$p"; then
    PREFIXES+=("$p")
    case $p in /var/run/*) PREFIXES+=("/run/${p#/var/run/}") ;; esac
  fi
done
for p in "${EMPTY[@]}"; do if is_data_path "$p"; then INSIDE+=("$p"); fi; done
UNMOUNTED=0
for ((pass = 0; pass < 3; pass++)); do
  TARGETS=()
  while read -r _ mnt _; do
    mnt=$(printf '%b' "$mnt")
    for p in "${PREFIXES[@]}"; do
      if [ "$mnt" = "$p" ] || [[ $mnt == "$p"/* ]]; then TARGETS+=("$mnt"); continue 2; fi
    done
    for p in "${INSIDE[@]}"; do
      if [[ $mnt == "$p"/* ]]; then TARGETS+=("$mnt"); continue 2; fi
    done
  done </proc/mounts
  [ ${#TARGETS[@]} -gt 0 ] || break
  for ((i = ${#TARGETS[@]} - 1; i >= 0; i--)); do
    if umount -l "${TARGETS[$i]}" 2>/dev/null; then UNMOUNTED=$((UNMOUNTED + 1)); fi
  done
done
log INFO "step=mounts result=ok unmounted=$UNMOUNTED"

# ------------------------------------------------------------------ network
# bridges the engine made (docker0, br-<network id>) that were not there before;
# iptables chains only when the engine ran with iptables (not on nested hosts)
STEP=network
DELETED_LINKS=0
if [ "$LINKS_RECORDED" = true ] && command -v ip >/dev/null 2>&1; then
  while read -r link; do
    case ",$LINKS_BEFORE," in *",$link,"*) continue ;; esac
    if ip link delete "$link" 2>/dev/null; then DELETED_LINKS=$((DELETED_LINKS + 1))
    else log WARN "step=network link=$(tok "$link") msg=$(msgq "could not delete")"; fi
  done < <(engine_links)
fi
if [ "$IPTABLES" = true ]; then
  if command -v iptables >/dev/null 2>&1; then
    for table in filter nat; do
      # rules of the built-in chains that lead into the engine's chains or name its
      # bridges; DOCKER_OUTPUT / DOCKER_POSTROUTING (embedded DNS of an outer Docker
      # when this host is a container) are not the engine's and stay
      while IFS= read -r rule; do
        read -ra words <<<"${rule#-A }"
        iptables -t "$table" -D "${words[@]}" 2>/dev/null || log WARN "step=network table=$table msg=$(msgq "could not delete rule: $rule")"
      done < <(iptables -t "$table" -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ' | grep -E -- '-j (DOCKER|DOCKER-USER|DOCKER-ISOLATION-STAGE-[12])( |$)|docker0|br-[0-9a-f]{12}' || true)
      for chain in DOCKER DOCKER-USER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2; do
        if iptables -t "$table" -n -L "$chain" >/dev/null 2>&1; then
          iptables -t "$table" -F "$chain" 2>/dev/null || true
          iptables -t "$table" -X "$chain" 2>/dev/null || log WARN "step=network table=$table chain=$chain msg=$(msgq "could not delete chain")"
        fi
      done
    done
  fi
fi
log INFO "step=network result=ok links_deleted=$DELETED_LINKS iptables=$IPTABLES"

# ------------------------------------------------------------------ engine data
STEP=data
REMOVED_DATA=()
for p in "${ABSENT[@]}"; do
  if ! is_data_path "$p"; then log WARN "step=data path=$(tok "$p") msg=$(msgq "not an engine path: ignored")"; continue; fi
  if [ -e "$p" ] || [ -L "$p" ]; then rm -rf --one-file-system -- "$p"; REMOVED_DATA+=("$p"); fi
done
shopt -s nullglob dotglob
for p in "${EMPTY[@]}"; do
  if is_data_path "$p" && [ -d "$p" ]; then
    entries=("$p"/*)
    if [ ${#entries[@]} -gt 0 ]; then rm -rf --one-file-system -- "${entries[@]}"; REMOVED_DATA+=("$p/*"); fi
  fi
done
shopt -u nullglob dotglob
log INFO "step=data result=ok removed=$(tok "${REMOVED_DATA[*]:-none}")"

# ------------------------------------------------------------------ files
STEP=files
REMOVED_FILES=0
for f in "${FILES[@]}"; do
  if ! [[ $f =~ $FILE_RE ]]; then log WARN "step=files path=$(tok "$f") msg=$(msgq "not an installable path: ignored")"; continue; fi
  if [ -e "$f" ] || [ -L "$f" ]; then rm -f -- "$f"; REMOVED_FILES=$((REMOVED_FILES + 1)); fi
done
RESTORED=0
for f in "${BACKUPS[@]}"; do
  if [[ $f =~ $FILE_RE ]] && [ -e "$BACKUP_DIR$f" ]; then
    cp -a "$BACKUP_DIR$f" "$f"; RESTORED=$((RESTORED + 1))
    log INFO "step=files path=$f msg=$(msgq "restored the file that was there before the install")"
  fi
done
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload 2>/dev/null || true; fi
log INFO "step=files result=ok removed=$REMOVED_FILES restored=$RESTORED"

# ------------------------------------------------------------------ directories
STEP=dirs
if [ "$PURGE" = true ] && [ -d "$COMPOSE_DIR" ]; then
  rm -rf --one-file-system -- "$COMPOSE_DIR"
  log INFO "step=dirs path=$COMPOSE_DIR msg=$(msgq "purged compose project files")"
fi
rm -f -- "$RUN_DIR/compose-runtime.lock" "$RUN_DIR/dockerd-supervisor.pid" "$RUN_DIR/dockerd.pid"
# deepest first
mapfile -t SORTED < <(for d in "${DIRS[@]}"; do printf '%s\t%s\n' "${#d}" "$d"; done | sort -rn | cut -f2-)
KEPT=()
for d in "${SORTED[@]}"; do
  if { ! [[ $d =~ $DIR_RE ]] && ! { [ -n "$DATA_ROOT" ] && [[ $DATA_ROOT == "$d"/* ]]; }; } || [[ $d == *..* ]]; then log WARN "step=dirs path=$(tok "$d") msg=$(msgq "not an OpsPilot directory: ignored")"; continue; fi
  if [ -d "$d" ] && ! rmdir -- "$d" 2>/dev/null; then KEPT+=("$d"); fi
done
if [ ${#KEPT[@]} -gt 0 ]; then log INFO "step=dirs kept=$(tok "${KEPT[*]}") msg=$(msgq "not empty: left in place")"; fi

# ------------------------------------------------------------------ the record itself
STEP=state
rm -rf -- "$BACKUP_DIR"
rm -f -- "$STATE_FILE" "$STATE_FILE".tmp.*
rmdir -- "$STATE_DIR" 2>/dev/null || true
if [ -d "$RUN_DIR" ]; then rmdir -- "$RUN_DIR" 2>/dev/null || true; fi

STEP=rollback
log INFO "step=rollback result=ok rollback_result=ok changed=true containers_removed=$REMOVED_CONTAINERS files_removed=$REMOVED_FILES files_restored=$RESTORED unmounted=$UNMOUNTED purge=$PURGE"
exit 0
