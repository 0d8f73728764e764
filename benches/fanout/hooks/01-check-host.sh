#!/usr/bin/env bash
# Fan-out bench hook 1/6: read-only host checks (OS, kernel, arch, tools, disk, memory).
# Hook contract: `[INFO] key=value` lines on stdout; exit 0 = ok, 1 = failed.
set -euo pipefail
t0=$(date +%s%N)
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo "[INFO] hook=check-host node_ip=${OPS_NODE_IP:-unknown}"

os_id=unknown os_version=unknown
if [ -r /etc/os-release ]; then
  # read the two fields without sourcing the file
  os_id=$(sed -n 's/^ID=//p' /etc/os-release | tr -d '"')
  os_version=$(sed -n 's/^VERSION_ID=//p' /etc/os-release | tr -d '"')
fi
kernel=$(uname -r)
arch=$(uname -m)
[ "$arch" = x86_64 ] || { echo "[ERROR] check=arch result=failed arch=$arch"; echo "arch $arch is not x86_64" >&2; exit 1; }

missing=()
for c in sha256sum install mkdir mv df awk sed; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[ERROR] check=commands result=failed missing=$(IFS=,; echo "${missing[*]}")"
  echo "missing commands: ${missing[*]}" >&2
  exit 1
fi

disk_free_mb=$(df -Pm /opt | awk 'NR == 2 { print $4 }')
mem_total_mb=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
[ "${disk_free_mb:-0}" -ge 100 ] || { echo "[ERROR] check=disk result=failed disk_free_mb=$disk_free_mb"; echo "less than 100 MB free on /opt" >&2; exit 1; }

echo "[INFO] os=$os_id os_version=$os_version kernel=$kernel arch=$arch"
echo "[INFO] disk_free_mb=$disk_free_mb mem_total_mb=$mem_total_mb check_host=ok"
echo "[INFO] script_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
