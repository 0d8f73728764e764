#!/usr/bin/env bash
# Runs the benchmarks on a fresh database of the private PostgreSQL used by
# run.sh (durable settings: fsync on), and prints Markdown for the README.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/opspilot/target}"
ensure_postgres "$PWD/.opspilot/pg" "${OPSPILOT_PG_PORT:-54329}"
psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS opspilot_bench WITH (FORCE)" >/dev/null
psql "$PG_ADMIN_URL" -qc "CREATE DATABASE opspilot_bench" >/dev/null
# The release benchmark needs the test cluster of tests/env.
flock -o /var/cache/opspilot-env.lock tests/env/envctl up --hosts 4
cargo build --release -p opspilot-bench
OPSPILOT_LOG=warn "$CARGO_TARGET_DIR/release/opspilot-bench" "${PG_ADMIN_URL%/postgres}/opspilot_bench"
# The AI command center: the intent engine alone, then a session on its own database.
psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS opspilot_bench_ai WITH (FORCE)" >/dev/null
psql "$PG_ADMIN_URL" -qc "CREATE DATABASE opspilot_bench_ai" >/dev/null
OPSPILOT_LOG=warn "$CARGO_TARGET_DIR/release/opspilot-bench" ai "${PG_ADMIN_URL%/postgres}/opspilot_bench_ai"
# The web console in Chromium (initial JS, time to interactive, inbox at 10k tickets).
source scripts/console.sh
build_console
ensure_chromium
psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS opspilot_bench_console WITH (FORCE)" >/dev/null
psql "$PG_ADMIN_URL" -qc "CREATE DATABASE opspilot_bench_console" >/dev/null
OPSPILOT_LOG=warn "$CARGO_TARGET_DIR/release/opspilot-bench" console "${PG_ADMIN_URL%/postgres}/opspilot_bench_console"
