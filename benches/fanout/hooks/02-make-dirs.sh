#!/usr/bin/env bash
# Fan-out bench hook 2/6: the application's directory tree (idempotent).
set -euo pipefail
t0=$(date +%s%N)
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo "[INFO] hook=make-dirs node_ip=${OPS_NODE_IP:-unknown}"

BASE=/opt/opspilot/bench
created=0 present=0
for spec in etc:0755 data:0750 log:0750 run:0755; do
  dir=$BASE/${spec%%:*} mode=${spec#*:}
  if [ -d "$dir" ]; then
    present=$((present + 1))
  else
    created=$((created + 1))
  fi
  # install -d also (re)sets the mode of a directory that exists
  install -d -m "$mode" "$dir"
done

echo "[INFO] base=$BASE dirs_created=$created dirs_present=$present"
echo "[INFO] script_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
