# Test hosts: containers with sshd on the bridge opspilot-test, plus fault helpers.

NET_NAME=opspilot-test
NET_SUBNET=172.30.0.0/24
NET_GATEWAY=172.30.0.1
HOST_PREFIX=opspilot-host-
HOSTS_DIR="$RUN/hosts"
SSH_DIR="$RUN/ssh"

# How a host container runs: what a nested Docker engine needs (brief and
# ENVIRONMENT-NOTES), plus /dev/kmsg (the kubelet opens it) and IP forwarding
# (kubeadm's preflight; a per-network-namespace sysctl, so harmless).
HOST_RUN_FLAGS=(--cap-add ALL --cap-drop SYS_RESOURCE
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  -v /sys/fs/cgroup:/sys/fs/cgroup --sysctl net.ipv4.ip_forward=1)
[ -c /dev/kmsg ] && HOST_RUN_FLAGS+=(--device /dev/kmsg)

# One more host runs systemd as PID 1 (most real hosts do), outside the
# numbered range so `up --hosts N` never touches it.
SYSTEMD_HOST=opspilot-systemd-1
SYSTEMD_HOST_IP=172.30.0.9
SYSTEMD_HOST_DIR="$RUN/systemd-host"
SYSTEMD_RUN_FLAGS=(--tmpfs /run --tmpfs /run/lock --stop-signal SIGRTMIN+3)

host_ip() { # host_ip NAME -> 172.30.0.(10+index)
  [ "$1" = "$SYSTEMD_HOST" ] && { echo "$SYSTEMD_HOST_IP"; return 0; }
  local n=${1#"$HOST_PREFIX"}
  [[ "$n" =~ ^[0-9]+$ ]] || die "not a test host name: $1"
  printf '172.30.0.%d\n' $((10 + n))
}
host_names() { # names of the hosts this run created, in order
  [ -d "$HOSTS_DIR" ] || return 0
  ls "$HOSTS_DIR" | sort -t- -k3 -n
}

ensure_network() {
  docker network inspect "$NET_NAME" >/dev/null 2>&1 && return 0
  log "creating bridge $NET_NAME ($NET_SUBNET)"
  docker network create --driver bridge --subnet "$NET_SUBNET" --gateway "$NET_GATEWAY" \
    --label opspilot-test=1 "$NET_NAME" >/dev/null
}

ensure_client_keys() {
  mkdir -p "$SSH_DIR"; chmod 700 "$SSH_DIR"
  local u
  for u in root ops; do
    [ -s "$SSH_DIR/${u}_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "opspilot-test-$u" -f "$SSH_DIR/${u}_ed25519"
  done
}

# _host_exec NAME CMD... (inside the container, as root)
_host_exec() { local n=$1; shift; docker exec "$n" "$@"; }

_wait_sshd() { # NAME
  local ip; ip=$(host_ip "$1")
  local i
  for i in $(seq 1 60); do
    ssh-keyscan -T 2 -t ed25519 "$ip" 2>/dev/null | grep -q ssh-ed25519 && return 0
    sleep 0.5
  done
  docker logs --tail 20 "$1" >&2 || true
  die "sshd on $1 ($ip) does not answer"
}

# Copies the host's public host key out and records it.
record_hostkey() { # NAME [DIR]
  local n=$1 d=${2:-"$HOSTS_DIR/$1"}
  _host_exec "$n" cat /etc/ssh/ssh_host_ed25519_key.pub | awk '{print $1" "$2}' >"$d/host_ed25519.pub.tmp"
  [ -s "$d/host_ed25519.pub.tmp" ] || die "could not read the host key of $n"
  mv "$d/host_ed25519.pub.tmp" "$d/host_ed25519.pub"
}

_provision_host() { # NAME [DIR]: passwords and authorized keys (per run)
  local n=$1 d=${2:-"$HOSTS_DIR/$1"}
  [ -s "$d/root_password" ] || openssl rand -hex 12 >"$d/root_password"
  [ -s "$d/ops_password" ]  || openssl rand -hex 12 >"$d/ops_password"
  printf 'root:%s\nops:%s\n' "$(cat "$d/root_password")" "$(cat "$d/ops_password")" | docker exec -i "$n" chpasswd
  docker exec -i "$n" sh -c 'cat > /root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys' <"$SSH_DIR/root_ed25519.pub"
  docker exec -i "$n" sh -c 'cat > /home/ops/.ssh/authorized_keys; chmod 600 /home/ops/.ssh/authorized_keys; chown ops:ops /home/ops/.ssh/authorized_keys' <"$SSH_DIR/ops_ed25519.pub"
}

# _ensure_container NAME IP IMAGE FLAGS...: the host container runs on the
# bridge at IP, from IMAGE with FLAGS; one of another image or other flags is
# made anew, a paused, stopped or disconnected one is brought back.
_ensure_container() {
  local n=$1 ip=$2 image=$3 spec state=absent; shift 3
  spec=$(printf '%s\n' "$*" | sha256sum | cut -c1-12)
  docker container inspect "$n" >/dev/null 2>&1 && state=$(docker container inspect -f '{{.State.Status}}' "$n")
  if [ "$state" != absent ] && [ "$(docker inspect -f '{{.Config.Image}} {{index .Config.Labels "opspilot-test.spec"}}' "$n")" != "$image $spec" ]; then
    log "$n runs an older image or with other flags: recreating"; docker rm -f "$n" >/dev/null; state=absent
  fi
  case "$state" in
    running) ;;
    paused) docker unpause "$n" >/dev/null ;;
    absent)
      log "starting host $n ($ip)"
      docker run -d --name "$n" --hostname "$n" --network "$NET_NAME" --ip "$ip" \
        "$@" --label opspilot-test=1 --label "opspilot-test.spec=$spec" "$image" >/dev/null ;;
    *) docker start "$n" >/dev/null ;;
  esac
  docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$n" | grep -qw "$NET_NAME" \
    || docker network connect --ip "$ip" "$NET_NAME" "$n"
}

hosts_up() { # COUNT
  local count=$1 image i n
  image=$(testhost_tag)
  ensure_network; ensure_client_keys
  mkdir -p "$HOSTS_DIR"
  for i in $(seq 1 "$count"); do
    n="$HOST_PREFIX$i"
    mkdir -p "$HOSTS_DIR/$n"; chmod 700 "$HOSTS_DIR/$n"
    _ensure_container "$n" "$(host_ip "$n")" "$image" "${HOST_RUN_FLAGS[@]}"
    _provision_host "$n"
  done
  for i in $(seq 1 "$count"); do
    n="$HOST_PREFIX$i"; _wait_sshd "$n"; record_hostkey "$n"
  done
  # `up --hosts N` with fewer hosts than before removes the extra ones.
  for n in $(host_names); do
    [ "${n#"$HOST_PREFIX"}" -le "$count" ] && continue
    log "removing extra host $n"; docker rm -f "$n" >/dev/null 2>&1 || true; rm -rf "${HOSTS_DIR:?}/$n"
  done
}

systemd_host_up() {
  local n=$SYSTEMD_HOST d=$SYSTEMD_HOST_DIR i
  mkdir -p "$d"; chmod 700 "$d"
  _ensure_container "$n" "$SYSTEMD_HOST_IP" "$(testhost_systemd_tag)" "${HOST_RUN_FLAGS[@]}" "${SYSTEMD_RUN_FLAGS[@]}"
  for i in $(seq 1 60); do
    case "$(docker exec "$n" systemctl is-system-running 2>/dev/null)" in running|degraded) break ;; esac
    sleep 0.5
  done
  _provision_host "$n" "$d"
  _wait_sshd "$n"; record_hostkey "$n" "$d"
}

hosts_down() {
  local ids
  ids=$(docker ps -aq --filter label=opspilot-test=1)
  [ -n "$ids" ] && { log "removing test hosts"; docker rm -f $ids >/dev/null; }
  docker network inspect "$NET_NAME" >/dev/null 2>&1 && docker network rm "$NET_NAME" >/dev/null
  rm -rf "$HOSTS_DIR" "$SSH_DIR" "$SYSTEMD_HOST_DIR"
}

host_fault() { # ACTION NAME
  local action=$1 n=$2
  [ -d "$HOSTS_DIR/$n" ] || die "unknown test host: $n (known: $(host_names | tr '\n' ' '))"
  case "$action" in
    stop)    docker stop -t 2 "$n" >/dev/null ;;
    start)   docker start "$n" >/dev/null; _wait_sshd "$n" ;;
    kill)    docker kill "$n" >/dev/null ;;
    pause)   docker pause "$n" >/dev/null ;;
    unpause) docker unpause "$n" >/dev/null; _wait_sshd "$n" ;;
    disconnect) docker network disconnect "$NET_NAME" "$n" ;;
    connect) docker network connect --ip "$(host_ip "$n")" "$NET_NAME" "$n"; _wait_sshd "$n" ;;
    rotate-hostkey)
      local old; old=$(cat "$HOSTS_DIR/$n/host_ed25519.pub")
      _host_exec "$n" sh -ec 'rm -f /etc/ssh/ssh_host_*; ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key; kill -HUP 1'
      sleep 0.5; _wait_sshd "$n"; record_hostkey "$n"
      [ "$(cat "$HOSTS_DIR/$n/host_ed25519.pub")" != "$old" ] || die "host key of $n did not change"
      ;;
    *) die "unknown host action: $action" ;;
  esac
  log "host $n: $action done"
}
