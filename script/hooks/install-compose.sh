#!/usr/bin/env bash
# OpsPilot hook: install-compose.sh — installs and starts the compose runtime
# (Docker Engine + containerd + runc + the docker compose v2 CLI plugin) from the
# bundle files OpsPilot uploaded into $OPS_SCRIPT_ROOT.
#
# Idempotent: a file whose sha256 already matches is not touched; when everything
# is in place and the engine answers, nothing changes and the hook says so
# (changed=false). Every path it creates is recorded in
# /opt/opspilot/state/compose-runtime.installed so that rollback.sh removes exactly
# that and restores whatever it had to replace.
#
#   binaries     /usr/local/bin/{dockerd,docker,docker-proxy,containerd,
#                containerd-shim-runc-v2,runc[,ctr]}
#   compose      /usr/local/lib/docker/cli-plugins/docker-compose
#   config       /etc/docker/daemon.json (only written when absent or OpsPilot's own)
#   service      systemd: /etc/systemd/system/opspilot-dockerd.service (enabled, started)
#                otherwise: /usr/local/lib/opspilot/dockerd-supervisor, started with
#                setsid/nohup, pid files in /run/opspilot, log /var/log/opspilot/dockerd.log
#   directories  /opt/opspilot/compose (compose projects), /var/log/opspilot
#   images       every images/*.tar and images/*.tar.gz of the bundle is docker-loaded
#
# Storage driver: install_options.docker_storage_driver when set; otherwise "vfs"
# when the host is itself a container (nested engine: /.dockerenv,
# /run/.containerenv, an overlay root filesystem, a container cgroup), else dockerd's
# own choice (overlay2). Nested hosts also get "iptables": false and "bridge": "none";
# install_options.docker_nested=true|false|auto overrides the detection.
#
# Log lines: `[INFO|WARN|ERROR] step=... key=value ...`; the last one is
#   [INFO] step=install result=ok changed=true|false docker_version=... compose_version=...
set -euo pipefail
HOOK=install-compose.sh
# the helpers every hook shares (log lines, die, context.json, host and engine probes): lib/ beside this file
case $0 in */*) HOOK_LIB=${0%/*}/lib/common.sh ;; *) HOOK_LIB=lib/common.sh ;; esac
if [ ! -r "$HOOK_LIB" ]; then
  printf '[ERROR] step=init result=failed msg="hooks/lib/common.sh is missing beside the hook"\n'
  printf '%s: %s is missing: upload the bundle'"'"'s hooks/lib/common.sh with the hooks\n' "$HOOK" "$HOOK_LIB" >&2
  exit 1
fi
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$HOOK_LIB"

PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
LIB_DIR=/usr/local/lib/opspilot
SUPERVISOR=$LIB_DIR/dockerd-supervisor
UNIT_FILE=/etc/systemd/system/$UNIT_NAME
DAEMON_JSON=/etc/docker/daemon.json
LOG_DIR=/var/log/opspilot
DOCKERD_LOG=$LOG_DIR/dockerd.log
ENGINE_WAIT_SECONDS=120
ENGINE_BINS=(dockerd docker-proxy containerd containerd-shim-runc-v2 runc)
STEP=init
trap 'die "internal error at line $LINENO: $BASH_COMMAND"' ERR

# ------------------------------------------------------------------ helpers

# state file: one `key=value` line per fact, appended as things happen so that a
# failure half-way still leaves rollback.sh an exact record.
state_has() { [ -f "$STATE_FILE" ] && grep -Fxq -- "$1" "$STATE_FILE"; }
state_add() { if ! state_has "$1"; then printf '%s\n' "$1" >>"$STATE_FILE"; fi; }
state_get() { # KEY: value of the last KEY= line
  local line v=""
  if [ -f "$STATE_FILE" ]; then
    while IFS= read -r line; do if [[ $line == "$1="* ]]; then v=${line#*=}; fi; done <"$STATE_FILE"
  fi
  printf '%s' "$v"
}
state_set() { # KEY VALUE: replace every KEY= line
  local tmp=$STATE_FILE.tmp.$$ line
  {
    while IFS= read -r line; do if [[ $line != "$1="* ]]; then printf '%s\n' "$line"; fi; done <"$STATE_FILE"
    printf '%s=%s\n' "$1" "$2"
  } >"$tmp"
  chmod 0600 "$tmp"
  mv -f "$tmp" "$STATE_FILE"
}

# mkdir_tracked DIR: create DIR and its missing parents, recording each one created
mkdir_tracked() {
  local d=$1 missing=() i
  while [ ! -d "$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
  for i in "${missing[@]}"; do
    mkdir -m 0755 "$i"
    if [ "$i" != "$STATE_DIR" ] && [ "$i" != "$(dirname "$STATE_DIR")" ]; then state_add "dir=$i"; fi
  done
}

# place_file SRC DST MODE: install SRC as DST unless it is already identical.
# A DST that exists and is not OpsPilot's is backed up first (rollback restores it).
# The new file is written next to DST and renamed over it (safe for running binaries).
# Returns 0 when DST changed, 1 when it was already identical.
place_file() {
  local src=$1 dst=$2 mode=$3 tmp
  if ! state_has "file=$dst" && [ -e "$dst" ]; then
    mkdir -p "$BACKUP_DIR$(dirname "$dst")"
    cp -a "$dst" "$BACKUP_DIR$dst"
    state_add "backup=$dst"
    log WARN "step=$STEP path=$dst msg=$(msgq "existing file not installed by OpsPilot: backed up, restored on rollback")"
  fi
  state_add "file=$dst"
  if [ -f "$dst" ] && [ "$(sha_of "$src")" = "$(sha_of "$dst")" ]; then
    chmod "$mode" "$dst"
    return 1
  fi
  tmp=$(dirname "$dst")/.$(basename "$dst").opspilot-tmp.$$
  install -m "$mode" "$src" "$tmp"
  mv -f "$tmp" "$dst"
  return 0
}

# write_content DST MODE CONTENT: like place_file, for generated text
write_content() {
  local dst=$1 mode=$2 content=$3 tmp
  tmp=$(mktemp "$STATE_DIR/.gen.XXXXXX")
  printf '%s' "$content" >"$tmp"
  if place_file "$tmp" "$dst" "$mode"; then rm -f "$tmp"; return 0; fi
  rm -f "$tmp"; return 1
}

service_running() {
  if [ "$INIT" = systemd ]; then systemctl is-active --quiet "$UNIT_NAME"; else supervisor_pid >/dev/null; fi
}
stop_engine() {
  local p i
  if [ "$INIT" = systemd ]; then
    systemctl stop "$UNIT_NAME" 2>/dev/null || true
  else
    stop_supervisor
  fi
  for p in $(pids_of dockerd); do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < 60; i++)); do [ -z "$(pids_of dockerd)" ] && break; sleep 0.5; done
  for p in $(pids_of dockerd); do kill -KILL "$p" 2>/dev/null || true; done
}
start_engine() {
  if [ "$INIT" = systemd ]; then
    systemctl daemon-reload
    systemctl enable "$UNIT_NAME" >/dev/null 2>&1
    systemctl restart "$UNIT_NAME"
  else
    # own session, no terminal, no inherited descriptors (fd 9 is the lock)
    setsid nohup "$SUPERVISOR" </dev/null >/dev/null 2>&1 9>&- &
    disown || true
  fi
}
engine_log_tail() {
  if [ "$INIT" = systemd ] && command -v journalctl >/dev/null 2>&1; then
    journalctl -u "$UNIT_NAME" -n 20 --no-pager 2>/dev/null || true
  else
    local errs
    errs=$(tail -n 300 "$DOCKERD_LOG" 2>/dev/null | grep -E 'level=(error|fatal)|failed to start|opspilot-supervisor' | tail -n 12 || true)
    if [ -n "$errs" ]; then printf '%s\n' "$errs"; else tail -n 20 "$DOCKERD_LOG" 2>/dev/null || true; fi
  fi
}

# ------------------------------------------------------------------ inputs
# (OPS_SCRIPT_ROOT, OPS_TASK_ID, OPS_WORKDIR and CTX_FILE get their defaults in lib/common.sh)
SRC_BIN=$OPS_SCRIPT_ROOT/bin/linux-amd64
log_start step=start "action=$(tok "${OPS_ACTION:-install}")"

STEP=check
case $OPS_SCRIPT_ROOT in /*) ;; *) die "OPS_SCRIPT_ROOT must be an absolute path" ;; esac
[ "${OPS_RUNTIME_TYPE:-compose}" = compose ] || die "install-compose.sh is for OPS_RUNTIME_TYPE=compose, got '${OPS_RUNTIME_TYPE}'"
[ "$(id -u)" -eq 0 ] || die "must run as root (log in as root or use passwordless sudo -n)"
MISSING=()
for b in "${ENGINE_BINS[@]}" docker docker-compose; do [ -s "$SRC_BIN/$b" ] || MISSING+=("bin/linux-amd64/$b"); done
[ ${#MISSING[@]} -eq 0 ] || die "bundle files missing in $OPS_SCRIPT_ROOT: ${MISSING[*]}"

NESTED_OPT=$(opt docker_nested); SD_OPT=$(opt docker_storage_driver); DR_OPT=$(opt docker_data_root)
case ${NESTED_OPT:=auto} in auto | true | false) ;; *) die "install_options.docker_nested must be auto, true or false" ;; esac
if [ -n "$SD_OPT" ] && ! [[ $SD_OPT =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]]; then die "install_options.docker_storage_driver is not a storage driver name"; fi
if [ -n "$DR_OPT" ] && { ! [[ $DR_OPT =~ ^/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+$ ]] || [[ $DR_OPT == *..* ]]; }; then
  die "install_options.docker_data_root must be an absolute path of [A-Za-z0-9._-] components, at least two levels deep"
fi
DATA_ROOT=${DR_OPT:-/var/lib/docker}
if [ "$NESTED_OPT" = true ] || { [ "$NESTED_OPT" = auto ] && in_container; }; then NESTED=true; else NESTED=false; fi
if [ -n "$SD_OPT" ]; then SD=$SD_OPT; elif [ $NESTED = true ]; then SD=vfs; else SD=""; fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then INIT=systemd; else INIT=supervisor; fi

# an engine OpsPilot did not install is never taken over
FRESH=true; [ -f "$STATE_FILE" ] && FRESH=false
for p in $(pgrep -x dockerd 2>/dev/null || true); do
  if [ $FRESH = true ] || [ "$(exe_of "$p")" != "$BIN_DIR/dockerd" ]; then
    die "a Docker engine not installed by OpsPilot is running (dockerd pid $p, $(exe_of "$p")); remove it or use another host"
  fi
done
if [ $FRESH = true ] && [ -S /var/run/docker.sock ] && engine_answers; then
  die "a Docker engine not installed by OpsPilot answers on /var/run/docker.sock; remove it or use another host"
fi
if [ $FRESH = true ] && [ -d "$DATA_ROOT" ] && [ -n "$(ls -A "$DATA_ROOT" 2>/dev/null)" ]; then
  die "$DATA_ROOT is not empty and was not created by OpsPilot; remove it or set install_options.docker_data_root"
fi
log INFO "step=plan init=$INIT nested=$NESTED storage_driver=${SD:-engine_default} data_root=$DATA_ROOT fresh=$FRESH"

# ------------------------------------------------------------------ state + lock
STEP=state
mkdir -p "$STATE_DIR"
chmod 0700 "$STATE_DIR"
if [ $FRESH = true ]; then
  {
    printf '# OpsPilot compose runtime: written by hooks/install-compose.sh, read by hooks/rollback.sh\n'
    printf 'format=1\n'
    printf 'installed_at=%s\n' "$(date -u +%FT%TZ)"
    printf 'task_id=%s\n' "$(tok "$OPS_TASK_ID")"
    # what did not exist before the engine ran; rollback removes exactly these
    for p in "$DATA_ROOT" "${ENGINE_PATHS[@]}"; do
      if [ ! -e "$p" ] && [ ! -L "$p" ]; then printf 'absent_before=%s\n' "$p"; fi
    done
    if [ "$DATA_ROOT" != /var/lib/docker ] && [ -d "$DATA_ROOT" ]; then printf 'empty_before=%s\n' "$DATA_ROOT"; fi
    if command -v ip >/dev/null 2>&1; then
      printf 'links_before=%s\n' "$(engine_links | tr '\n' ',')"
    fi
  } >"$STATE_FILE.tmp.$$"
  mv -f "$STATE_FILE.tmp.$$" "$STATE_FILE"
fi
chmod 0600 "$STATE_FILE"
state_set data_root "$DATA_ROOT"
state_set init "$INIT"
state_set nested "$NESTED"
mkdir_tracked "$RUN_DIR"
lock_runtime

# ------------------------------------------------------------------ files
STEP=files
mkdir_tracked "$PLUGIN_DIR"; mkdir_tracked "$LIB_DIR"; mkdir_tracked "$BIN_DIR"
mkdir_tracked "$LOG_DIR"; mkdir_tracked "$COMPOSE_DIR"; mkdir_tracked /etc/docker
mkdir_tracked "$(dirname "$DATA_ROOT")"   # parents of a custom data root, removed again by rollback when empty
CHANGED=(); RESTART=false
for b in "${ENGINE_BINS[@]}" docker; do
  if place_file "$SRC_BIN/$b" "$BIN_DIR/$b" 0755; then
    CHANGED+=("$b")
    case $b in docker) ;; *) RESTART=true ;; esac
  fi
done
if [ -s "$SRC_BIN/ctr" ] && place_file "$SRC_BIN/ctr" "$BIN_DIR/ctr" 0755; then CHANGED+=(ctr); fi
if place_file "$SRC_BIN/docker-compose" "$PLUGIN_DIR/docker-compose" 0755; then CHANGED+=(docker-compose); fi
if [ ! -e "$DOCKERD_LOG" ]; then : >"$DOCKERD_LOG"; chmod 0640 "$DOCKERD_LOG"; state_add "file=$DOCKERD_LOG"; fi

# daemon.json: only when absent or OpsPilot's own
STEP=config
CONF='{'$'\n'
if [ -n "$SD" ]; then CONF+="  \"storage-driver\": \"$SD\","$'\n'; fi
if [ $NESTED = true ]; then CONF+='  "iptables": false,'$'\n''  "bridge": "none",'$'\n'; fi
if [ "$DATA_ROOT" != /var/lib/docker ]; then CONF+="  \"data-root\": \"$DATA_ROOT\","$'\n'; fi
CONF+='  "log-driver": "json-file",'$'\n''  "log-opts": {"max-size": "10m", "max-file": "3"}'$'\n''}'$'\n'
if [ ! -e "$DAEMON_JSON" ] || state_has "file=$DAEMON_JSON"; then
  if ! state_has "file=$DAEMON_JSON" || [ "$(state_get daemon_json_sha256)" = "$(sha_of "$DAEMON_JSON" || true)" ]; then
    if write_content "$DAEMON_JSON" 0644 "$CONF"; then CHANGED+=(daemon.json); RESTART=true; fi
    state_set daemon_json_sha256 "$(sha_of "$DAEMON_JSON")"
  else
    log WARN "step=config path=$DAEMON_JSON msg=$(msgq "edited since OpsPilot wrote it: left as it is")"
  fi
else
  log WARN "step=config path=$DAEMON_JSON msg=$(msgq "exists and is not OpsPilot's: used as it is (nested hosts may need storage-driver vfs, iptables false, bridge none)")"
fi
if [ $NESTED = false ]; then state_set iptables true; fi

# service definition
STEP=service
if [ "$INIT" = systemd ]; then
  UNIT="[Unit]
Description=Docker Engine (installed by OpsPilot)
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStart=$BIN_DIR/dockerd --config-file $DAEMON_JSON
ExecReload=/bin/kill -s HUP \$MAINPID
TimeoutStartSec=0
Restart=always
RestartSec=2
StartLimitBurst=3
StartLimitInterval=60s
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Delegate=yes
KillMode=process
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
"
  if write_content "$UNIT_FILE" 0644 "$UNIT"; then CHANGED+=("$UNIT_NAME"); RESTART=true; fi
else
  # fixed paths only: nothing from the environment or context.json goes into it
  SUP=$(cat <<'SUPERVISOR_EOF'
#!/usr/bin/env bash
# Written by OpsPilot (hooks/install-compose.sh): keeps dockerd running on a host
# without systemd, restarting it with a back-off when it exits. SIGTERM stops
# dockerd and then this loop (rollback.sh does that).
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
RUN_DIR=/run/opspilot
LOG=/var/log/opspilot/dockerd.log
mkdir -p "$RUN_DIR"
echo $$ >"$RUN_DIR/dockerd-supervisor.pid"
child=0; stopping=0; delay=1; rc=0
on_term() { stopping=1; if [ "$child" -gt 0 ]; then kill -TERM "$child" 2>/dev/null; fi; }
trap on_term TERM INT
trap '' HUP
note() { printf '%s opspilot-supervisor: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOG"; }
while [ "$stopping" -eq 0 ]; do
  started=$(date +%s)
  note "starting dockerd"
  /usr/local/bin/dockerd --config-file /etc/docker/daemon.json </dev/null >>"$LOG" 2>&1 &
  child=$!
  echo "$child" >"$RUN_DIR/dockerd.pid"
  # wait returns early when a signal arrives: wait again until dockerd is gone
  while :; do
    wait "$child"; rc=$?
    kill -0 "$child" 2>/dev/null || break
  done
  child=0
  rm -f "$RUN_DIR/dockerd.pid"
  [ "$stopping" -eq 0 ] || break
  if [ $(($(date +%s) - started)) -ge 60 ]; then delay=1; fi
  note "dockerd exited (status $rc); restarting in ${delay}s"
  sleep "$delay" &
  wait $!
  kill $! 2>/dev/null
  delay=$((delay * 2)); [ "$delay" -le 30 ] || delay=30
done
note "stopped"
rm -f "$RUN_DIR/dockerd-supervisor.pid" "$RUN_DIR/dockerd.pid"
SUPERVISOR_EOF
)
  SUP+=$'\n'
  if write_content "$SUPERVISOR" 0755 "$SUP"; then CHANGED+=(dockerd-supervisor); RESTART=true; fi
fi

# ------------------------------------------------------------------ engine
STEP=engine
STARTED=false
if service_running && engine_answers && [ $RESTART = false ]; then
  log INFO "step=engine result=ok msg=$(msgq "engine already running with the installed binaries")"
else
  if service_running || [ -n "$(pids_of dockerd)" ]; then
    log INFO "step=engine msg=$(msgq "restarting the engine: ${CHANGED[*]:-not answering}")"
    stop_engine
  fi
  LOG_OFFSET=$(($(stat -c %s "$DOCKERD_LOG" 2>/dev/null || echo 0) + 1))
  start_engine
  STARTED=true
fi
# wait for `docker info`; give up early when dockerd keeps exiting
CRASHES=0
for ((i = 0; i < ENGINE_WAIT_SECONDS; i += 2)); do
  if engine_answers; then break; fi
  if [ "$STARTED" = true ]; then
    if [ "$INIT" = supervisor ]; then
      CRASHES=$(tail -c "+${LOG_OFFSET}" "$DOCKERD_LOG" 2>/dev/null | grep -c 'opspilot-supervisor: dockerd exited' || true)
    elif systemctl is-failed --quiet "$UNIT_NAME"; then
      CRASHES=3
    fi
    if [ "$CRASHES" -ge 2 ]; then break; fi
  fi
  sleep 2
done
if ! engine_answers; then
  engine_log_tail >&2
  if [ "$CRASHES" -ge 2 ]; then
    stop_engine   # no restart loop left behind; a retry or rollback.sh takes it from here
    die "dockerd exits right after it starts (see the log lines on stderr; log: $DOCKERD_LOG or journalctl -u $UNIT_NAME)"
  fi
  die "the Docker engine did not answer 'docker info' within ${ENGINE_WAIT_SECONDS}s (log: $DOCKERD_LOG or journalctl -u $UNIT_NAME)"
fi
DOCKER_VERSION=$("$BIN_DIR/docker" version --format '{{.Server.Version}}' 2>/dev/null || echo unknown)
ACTUAL_SD=$("$BIN_DIR/docker" info --format '{{.Driver}}' 2>/dev/null || echo unknown)
log INFO "step=engine result=ok started=$STARTED docker_version=$(tok "$DOCKER_VERSION") storage_driver=$(tok "$ACTUAL_SD")"

# ------------------------------------------------------------------ images
STEP=images
LOADED=0; SKIPPED=0
shopt -s nullglob
for f in "$OPS_SCRIPT_ROOT"/images/*.tar "$OPS_SCRIPT_ROOT"/images/*.tar.gz; do
  base=$(basename "$f")
  if ! [[ $base =~ ^[A-Za-z0-9._-]+$ ]]; then log WARN "step=images msg=$(msgq "skipped an archive with an unusual name")"; continue; fi
  sum=$(sha_of "$f")
  prev=$(state_get "image.$base")
  if [ "${prev%%|*}" = "$sum" ] && [ -n "${prev#*|}" ]; then
    all=true
    IFS=, read -ra prev_refs <<<"${prev#*|}"
    for r in "${prev_refs[@]}"; do "$BIN_DIR/docker" image inspect "$r" >/dev/null 2>&1 || all=false; done
    if [ $all = true ]; then SKIPPED=$((SKIPPED + 1)); log INFO "step=images file=$base result=ok loaded=false images=$(tok "${prev#*|}")"; continue; fi
  fi
  out=$(timeout 600 "$BIN_DIR/docker" load -i "$f" 2>&1) || { printf '%s\n' "$out" >&2; die "docker load of images/$base failed"; }
  refs=$(printf '%s\n' "$out" | sed -nE 's/^Loaded image( ID)?: (.*)$/\2/p' | tr '\n' ',' ); refs=${refs%,}
  state_set "image.$base" "$sum|$refs"
  LOADED=$((LOADED + 1))
  log INFO "step=images file=$base result=ok loaded=true images=$(tok "$refs")"
done
shopt -u nullglob

# ------------------------------------------------------------------ compose
STEP=compose
COMPOSE_VERSION=$("$BIN_DIR/docker" compose version --short 2>/dev/null) || die "'docker compose version' failed: the compose plugin in $PLUGIN_DIR does not run"
state_set docker_version "$(tok "$DOCKER_VERSION")"
state_set compose_version "$(tok "$COMPOSE_VERSION")"
state_set bundle_version "$(tok "$(ctx_get bundle_version)")"

STEP=install
if [ ${#CHANGED[@]} -eq 0 ] && [ $STARTED = false ] && [ $LOADED -eq 0 ]; then
  log INFO "step=install result=ok changed=false msg=$(msgq "already installed and running with the same binaries: nothing to do") docker_version=$(tok "$DOCKER_VERSION") compose_version=$(tok "$COMPOSE_VERSION") storage_driver=$(tok "$ACTUAL_SD") init=$INIT"
else
  log INFO "step=install result=ok changed=true updated=$(tok "$(IFS=,; echo "${CHANGED[*]:-none}")") images_loaded=$LOADED docker_version=$(tok "$DOCKER_VERSION") compose_version=$(tok "$COMPOSE_VERSION") storage_driver=$(tok "$ACTUAL_SD") init=$INIT nested=$NESTED"
fi
exit 0
