#!/usr/bin/env bash
# Runs every test: unit tests of the pure crates, and the system tests against
# a real PostgreSQL (a private instance under /var/cache/opspilot, each test in
# its own database), the real opspilot binary, and the real test environments
# of tests/env (Kubernetes control plane, SSH hosts, Docker, test bundle).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg.sh
source scripts/console.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/opspilot/target}"
mkdir -p "$CARGO_TARGET_DIR"

# Test databases are throw-away: durability is traded for speed.
PG_EXTRA_OPTS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  ensure_postgres /var/cache/opspilot/pg-test "${OPSPILOT_TEST_PG_PORT:-54339}"
export OPSPILOT_TEST_DATABASE_URL="$PG_ADMIN_URL"

# Drop the databases earlier runs left behind.
psql "$PG_ADMIN_URL" -qtAc "SELECT datname FROM pg_database WHERE datname LIKE 'test\_%'" |
  while read -r db; do [ -n "$db" ] && psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null; done

# The real test environments: Kubernetes control plane, SSH hosts with nested
# Docker, signed test bundle (first run builds them, ~13 min; then seconds).
flock -o /var/cache/opspilot-env.lock tests/env/envctl up --hosts 4
# Bundles assembled by earlier test runs (hard links, but their index files add up).
rm -rf /var/cache/opspilot-env/run/test-bundles

# The web console: built (served by the binary in the browser tests), its
# component tests, and Chromium for the end-to-end scenarios.
build_console test
ensure_chromium

# The system tests run the real binary.
cargo build --bin opspilot
export OPSPILOT_BIN="$CARGO_TARGET_DIR/debug/opspilot"

log=$(mktemp)
status=0
cargo test --workspace --no-fail-fast -- --test-threads="${OPSPILOT_TEST_THREADS:-4}" "$@" 2>&1 | tee "$log" || status=$?
# One closing line over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
