#!/usr/bin/env bash
# Fan-out bench hook 5/6: "starts the service": records the start and waits
# 0.3 s for it to come up (a stand-in for a real readiness wait).
set -euo pipefail
t0=$(date +%s%N)
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 022
echo "[INFO] hook=start-service node_ip=${OPS_NODE_IP:-unknown}"

STATE=/opt/opspilot/bench/run/service.state
[ -f /opt/opspilot/bench/etc/app.conf ] || { echo "[ERROR] service=no_config"; echo "app.conf is missing" >&2; exit 1; }
already=false
[ -f "$STATE" ] && grep -qx 'state=running' "$STATE" && already=true
printf 'state=starting\n' >"$STATE.tmp" && mv -f "$STATE.tmp" "$STATE"
sleep 0.3
printf 'state=running\nstarted_at=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$STATE.tmp" && mv -f "$STATE.tmp" "$STATE"
echo "[INFO] service=bench-app state=running was_running=$already"
echo "[INFO] script_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
