# Shared settings and helpers for the OpsPilot test environment scripts.
# Sourced by envctl, smoke.sh, k8s/*.sh and bundle/*.sh; never executed directly.

ENV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE=${OPSPILOT_ENV_CACHE:-/var/cache/opspilot-env}   # override only to test a cold build
RUN="$CACHE/run"
LOGS="$RUN/logs"
BIN_CACHE="$CACHE/bin"
IMG_CACHE="$CACHE/images"
KEYS="$CACHE/keys"
ENV_JSON="$RUN/env.json"

# Pinned versions. Changing one changes its cache key, so it is rebuilt once.
K8S_VERSION=v1.31.14
KWOK_VERSION=v0.6.1           # client-go 0.30; works with the 1.31 apiserver (smoke.sh)
CRI_TOOLS_VERSION=v1.34.0     # the only cri-tools versions the proxy serves: v1.34.0, v1.37.0
CNI_PLUGINS_VERSION=v1.6.2    # the 1.31/1.32-era release (the proxy also serves up to v1.9.1)
COMPOSE_VERSION=v2.40.3
FLANNEL_VERSION=v0.28.4       # CNI of the clusters OpsPilot creates in tests (host-gw backend)
ETCD_VERSION=v3.5.15         # etcd of the clusters OpsPilot creates (kubeadm 1.31's; its probes need /livez and /readyz)
PAUSE_VERSION=3.10           # the sandbox image tag; the binary is built from k8s/pause

export PATH="/usr/local/go/bin:$PATH"
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOTOOLCHAIN=local
# The other engineer compiles Rust on the same 2 cores: stay polite.
export GOFLAGS="-p=2"

log()  { printf '[envctl] %s\n' "$*" >&2; }
die()  { printf '[envctl] ERROR: %s\n' "$*" >&2; exit 1; }

# ensure_pkgs PKG... : apt-get install the Debian packages that are missing.
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ ! -f "$CACHE/.apt-updated" ] || [ -n "$(find "$CACHE/.apt-updated" -mmin +720 2>/dev/null)" ]; then
    apt-get update -qq >&2
    mkdir -p "$CACHE"; touch "$CACHE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# debian_mirror: the bookworm mirror this machine's apt already uses (read at run time).
debian_mirror() {
  local f=/etc/apt/sources.list.d/debian.sources m=""
  if [ -f "$f" ]; then
    m=$(awk 'BEGIN{RS="";FS="\n"} {
          uri=""; ok=0
          for (i=1;i<=NF;i++) {
            if ($i ~ /^URIs:/)   { split(substr($i,6),a," "); uri=a[1] }
            if ($i ~ /^Suites:/) { n=split(substr($i,8),b," "); for (j=1;j<=n;j++) if (b[j]=="bookworm") ok=1 }
          }
          if (ok && uri!="") { print uri; exit } }' "$f")
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
  fi
  [ -n "$m" ] || die "cannot find the bookworm mirror in /etc/apt"
  printf '%s\n' "$m"
}

# apt_extract DEST PKG... : download Debian packages (not installing them) and unpack into DEST.
apt_extract() {
  local dest=$1; shift
  local dl="$CACHE/debs"; mkdir -p "$dl" "$dest"; chown _apt "$dl" 2>/dev/null || true
  ( cd "$dl" && for p in "$@"; do
      ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download -qq "$p" >&2 || { apt-get update -qq >&2; apt-get download -qq "$p" >&2; }
    done )
  local p
  for p in "$@"; do dpkg-deb -x "$(ls "$dl/${p}"_*.deb | head -1)" "$dest"; done
}

docker_ok() { timeout 5 docker info >/dev/null 2>&1; }
