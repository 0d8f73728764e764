#!/usr/bin/env bash
# Stop what start-control-plane.sh started (pid files in DATA_DIR/pids). Data is kept
# unless --wipe is given.   usage: stop-control-plane.sh DATA_DIR [--wipe]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
[ $# -ge 1 ] || die "usage: $0 DATA_DIR [--wipe]"
DATA=$1
for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  f="$DATA/pids/$name.pid"
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"; kill "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$f"
done
if [ "${2:-}" = --wipe ]; then rm -rf "$DATA"; fi
