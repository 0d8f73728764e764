#!/usr/bin/env bash
# Fan-out benchmark: the 6 hooks of benches/fanout/hooks on N SSH test hosts,
# run by OpsPilot (in-process, through its REST API) and then by Ansible
# (`script` module, forks = N) on the same hosts; prints Markdown for the README.
#
#   ./scripts/bench-fanout.sh [--hosts 10,30,50] [--first-host 5] [--skip-ansible]
#
# Brings the test hosts up (tests/env/envctl up --hosts FIRST-1+MAX) and puts
# the environment back to 4 hosts when it ends, also on failure. It holds the
# environment lock (/var/cache/opspilot-env.lock) from the first `up` until the
# environment is back at 4 hosts: every test binary starts with `envctl up
# --hosts 4` under that lock, which would remove the bench's hosts mid-run, so a
# test run started meanwhile waits for the bench instead. Hosts 1-4 are left
# alone by default (the system tests use them): the bench runs on 5..4+MAX.
# Database: a fresh opspilot_bench_fanout on the private PostgreSQL of bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/opspilot/target}"

LOCK=/var/cache/opspilot-env.lock
RESTORE_HOSTS=4
counts=10,30,50 first=5
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) counts=${2:?--hosts needs a list}; shift 2 ;;
    --first-host) first=${2:?--first-host needs a number}; shift 2 ;;
    *) shift ;;
  esac
done
max=$(tr ',' '\n' <<<"$counts" | sort -n | tail -n 1)
total=$((first - 1 + max))

if ! command -v ansible-playbook >/dev/null 2>&1; then
  echo "[fanout] installing Debian's ansible-core" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq ansible-core >&2
fi

ensure_postgres "$PWD/.opspilot/pg" "${OPSPILOT_PG_PORT:-54329}"
psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS opspilot_bench_fanout WITH (FORCE)" >/dev/null
psql "$PG_ADMIN_URL" -qc "CREATE DATABASE opspilot_bench_fanout" >/dev/null

# The bench and the opspilot CLI that indexes and signs its bundle.
cargo build --release -p opspilot-bench -p opspilot-api --bins

# The lock is held on fd 9 by this shell only: every command below gets `9>&-`,
# so no daemon or ssh master started on the way inherits it (what `flock -o` does).
exec 9>>"$LOCK"
echo "[fanout] waiting for the test environment lock" >&2
flock 9
restore() {
  local rc=$?
  echo "[fanout] restoring the test environment to $RESTORE_HOSTS hosts" >&2
  tests/env/envctl up --hosts "$RESTORE_HOSTS" >/dev/null 9>&- \
    || echo "[fanout] WARNING: envctl up --hosts $RESTORE_HOSTS failed; run it by hand" >&2
  exit "$rc"
}
trap 'exit 130' INT
trap 'exit 143' TERM
trap restore EXIT
echo "[fanout] bringing up $total test hosts" >&2
tests/env/envctl up --hosts "$total" >&2 9>&-

OPSPILOT_LOG=warn OPSPILOT_BIN="$CARGO_TARGET_DIR/release/opspilot" \
  "$CARGO_TARGET_DIR/release/opspilot-bench" fanout "${PG_ADMIN_URL%/postgres}/opspilot_bench_fanout" "${args[@]}" 9>&-
