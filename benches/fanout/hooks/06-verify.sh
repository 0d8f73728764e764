#!/usr/bin/env bash
# Fan-out bench hook 6/6: read-only verification of what hooks 2-5 did.
set -euo pipefail
t0=$(date +%s%N)
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo "[INFO] hook=verify node_ip=${OPS_NODE_IP:-unknown}"

BASE=/opt/opspilot/bench
failed=()
for d in etc data log run; do [ -d "$BASE/$d" ] || failed+=("dir_$d"); done
conf_ip=$(sed -n 's/^node_ip=//p' "$BASE/etc/app.conf" 2>/dev/null || true)
[ -n "$conf_ip" ] && [ "$conf_ip" = "${OPS_NODE_IP:-$conf_ip}" ] || failed+=(config_node_ip)
( cd "$BASE" && sha256sum --quiet -c data/SHA256SUMS ) >/dev/null 2>&1 || failed+=(checksums)
grep -qx 'state=running' "$BASE/run/service.state" 2>/dev/null || failed+=(service_state)

if [ ${#failed[@]} -gt 0 ]; then
  echo "[ERROR] verify_summary=failed failed=$(IFS=,; echo "${failed[*]}")"
  echo "verify failed: ${failed[*]}" >&2
  exit 1
fi
echo "[INFO] verify_summary=ok checks=4"
echo "[INFO] script_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
