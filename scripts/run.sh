#!/usr/bin/env bash
# Runs OpsPilot. Without DATABASE_URL it starts a private PostgreSQL with its
# data in ./.opspilot/pg (installing PostgreSQL from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg.sh
source scripts/console.sh

if [ -z "${DATABASE_URL:-}" ]; then
  ensure_postgres "$PWD/.opspilot/pg" "${OPSPILOT_PG_PORT:-54329}"
  create_database "$PG_ADMIN_URL" opspilot
  export DATABASE_URL="${PG_ADMIN_URL%/postgres}/opspilot"
fi
export OPSPILOT_DATA_DIR="${OPSPILOT_DATA_DIR:-$PWD/.opspilot}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/opspilot/target}"

# The web console, served by opspilot at / (OPSPILOT_CONSOLE_DIR overrides).
build_console
cargo build --release --bin opspilot
bin="$CARGO_TARGET_DIR/release/opspilot"
"$bin" migrate >/dev/null
if [ -n "${OPSPILOT_DEMO_PASSWORD:-}" ]; then
  "$bin" demo-data
fi
exec "$bin" serve
