#!/usr/bin/env bash
# Fan-out bench hook 3/6: the application's config from the OPS_* environment.
# Written to a temp file and renamed into place only when the content changes.
set -euo pipefail
t0=$(date +%s%N)
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 022
echo "[INFO] hook=write-config node_ip=${OPS_NODE_IP:-unknown}"

# a value for the config: one line, printable characters only
clean() { local s=${1//[^[:print:]]/}; printf '%s' "${s:-none}"; }

CONF=/opt/opspilot/bench/etc/app.conf
[ -d "${CONF%/*}" ] || { echo "[ERROR] config=missing_dir"; echo "${CONF%/*} is missing (make-dirs did not run)" >&2; exit 1; }
tmp=$(mktemp "$CONF.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
{
  echo "# written by the OpsPilot fan-out bench; do not edit"
  echo "runtime=$(clean "${OPS_RUNTIME_TYPE:-compose}")"
  echo "environment_id=$(clean "${OPS_ENVIRONMENT_ID:-}")"
  echo "project_id=$(clean "${OPS_PROJECT_ID:-}")"
  echo "node_ip=$(clean "${OPS_NODE_IP:-}")"
  echo "node_role=$(clean "${OPS_NODE_ROLE:-}")"
  echo "listen=$(clean "${OPS_NODE_IP:-0.0.0.0}"):8080"
  echo "data_dir=/opt/opspilot/bench/data"
  echo "log_dir=/opt/opspilot/bench/log"
} >"$tmp"
chmod 0644 "$tmp"
changed=false
if ! cmp -s "$tmp" "$CONF"; then
  mv -f -- "$tmp" "$CONF"
  changed=true
fi
echo "[INFO] config=$CONF changed=$changed bytes=$(wc -c <"$CONF")"
echo "[INFO] script_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
