#!/usr/bin/env bash
# Sourced by run.sh and test.sh: ensure_postgres DIR PORT starts (if needed) a
# private PostgreSQL with its data in DIR, listening on 127.0.0.1:PORT, and
# sets PG_ADMIN_URL. Installs Debian's postgresql when it is missing.

pg_bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

ensure_postgres() {
  local dir=$1 port=$2 bin
  bin=$(pg_bin_dir || true)
  if [ -z "$bin" ]; then
    echo "[pg] installing PostgreSQL from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bin=$(pg_bin_dir)
  fi
  # initdb and postgres refuse to run as root: run them as the postgres user.
  local as=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    as=(runuser -u postgres --)
  fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  chmod 700 "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    echo "[pg] initializing a private cluster in $dir" >&2
    local pw
    pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' )
    printf '%s' "$pw" > "$dir/password"
    chmod 600 "$dir/password"
    [ "$(id -u)" = 0 ] && chown postgres "$dir/password"
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/password" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; return 1; }
  fi
  if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    echo "[pg] starting PostgreSQL on 127.0.0.1:$port" >&2
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=400 ${PG_EXTRA_OPTS:-}" >&2 \
      || { tail -n 30 "$dir/postgres.log" >&2; return 1; }
  fi
  PG_ADMIN_URL="postgres://postgres:$(cat "$dir/password")@127.0.0.1:$port/postgres"
  export PG_ADMIN_URL
}

# create_database URL NAME: creates NAME if it does not exist.
create_database() {
  local url=$1 name=$2
  psql "$url" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1 \
    || psql "$url" -qc "CREATE DATABASE \"$name\"" >/dev/null
}
