#!/usr/bin/env bash
# Builds the web console into web/dist (dependencies from package-lock.json,
# installed again only when the lock file changed). Sourced by run.sh and
# test.sh; `build_console test` also runs its component tests.
build_console() {
  if ! command -v npm >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
  fi
  (
    cd web
    local stamp=node_modules/.opspilot-lock
    local want
    want=$(sha256sum package-lock.json | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      npm ci --no-audit --no-fund --loglevel=error
      echo "$want" > "$stamp"
    fi
    npm run --silent build
    if [ "${1:-}" = test ]; then
      npx vitest run
    fi
  )
}

# Debian's Chromium for the browser tests (never a downloaded browser).
ensure_chromium() {
  if ! command -v chromium >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk
  fi
}
