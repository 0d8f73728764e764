#!/usr/bin/env bash
# Fan-out bench hook 4/6: a 4 MiB data file (made once, deterministic) and a
# SHA256SUMS of the data and the config, checked with sha256sum -c.
set -euo pipefail
t0=$(date +%s%N)
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 022
echo "[INFO] hook=checksum node_ip=${OPS_NODE_IP:-unknown}"

BASE=/opt/opspilot/bench
DATA=$BASE/data/seed.bin
made=false
if [ ! -f "$DATA" ] || [ "$(stat -c %s "$DATA")" != 4194304 ]; then
  head -c 4194304 /dev/zero | tr '\0' 'x' >"$DATA.tmp"
  mv -f -- "$DATA.tmp" "$DATA"
  made=true
fi
( cd "$BASE" && sha256sum data/seed.bin etc/app.conf >data/SHA256SUMS.tmp && mv -f data/SHA256SUMS.tmp data/SHA256SUMS )
( cd "$BASE" && sha256sum --quiet -c data/SHA256SUMS )
sum=$(cut -c1-16 <<<"$(sha256sum <"$DATA")")
echo "[INFO] data=$DATA made=$made data_sha256_16=$sum files_checked=2"
echo "[INFO] script_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
