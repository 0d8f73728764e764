# Docker engine for the test hosts: Debian's docker.io, started by hand (no systemd here).

ensure_docker() {
  ensure_pkgs docker.io
  # /usr/local/bin/docker is a bare client; the engine comes from docker.io.
  if docker_ok; then return 0; fi
  mkdir -p "$RUN"
  local pidf="$RUN/dockerd.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    log "dockerd (pid $(cat "$pidf")) is running but not answering yet"
  else
    log "starting dockerd --storage-driver=vfs (log: $RUN/dockerd.log)"
    # containerd is started by dockerd itself when no system containerd socket answers.
    nohup /usr/sbin/dockerd --storage-driver=vfs --pidfile "$pidf" \
      >>"$RUN/dockerd.log" 2>&1 </dev/null &
  fi
  local i
  for i in $(seq 1 60); do docker_ok && return 0; sleep 1; done
  tail -20 "$RUN/dockerd.log" >&2
  die "dockerd did not answer within 60 s"
}

stop_docker() {
  local pidf="$RUN/dockerd.pid" pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping dockerd (pid $pid)"
    kill "$pid"
    local i; for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
  rm -f "$pidf"
}
