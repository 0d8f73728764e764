# Builds (once) and caches every Go binary the environment needs.
# Cache layout: $BIN_CACHE/<component>-<version>/<binaries>; a directory only
# appears when its build finished, so its presence means "cached".

k8s_bin()     { printf '%s\n' "$BIN_CACHE/kubernetes-$K8S_VERSION"; }
kwok_bin()    { printf '%s\n' "$BIN_CACHE/kwok-$KWOK_VERSION"; }
crictl_bin()  { printf '%s\n' "$BIN_CACHE/cri-tools-$CRI_TOOLS_VERSION"; }
cni_dir()     { printf '%s\n' "$BIN_CACHE/cni-plugins-$CNI_PLUGINS_VERSION"; }
compose_bin() { printf '%s\n' "$BIN_CACHE/compose-$COMPOSE_VERSION"; }
kube_proxy_bin() { printf '%s\n' "$BIN_CACHE/kube-proxy-$K8S_VERSION"; }
pause_bin()   { printf '%s\n' "$BIN_CACHE/pause-$PAUSE_VERSION"; }
flannel_bin() { printf '%s\n' "$BIN_CACHE/flannel-$FLANNEL_VERSION"; }
etcd_bin()    { printf '%s\n' "$BIN_CACHE/etcd-$ETCD_VERSION"; }

ensure_go() {
  command -v go >/dev/null || die "Go toolchain not found at /usr/local/go/bin"
  mkdir -p "$GOMODCACHE" "$GOCACHE" "$BIN_CACHE"
}

# _timed NAME CMD... : run a build step, log to $CACHE/logs, record its wall time.
_timed() {
  local name=$1; shift
  local t0=$SECONDS logf="$CACHE/logs/build-$name.log"
  mkdir -p "$CACHE/logs"
  log "building $name (log: $logf)"
  if ! "$@" >"$logf" 2>&1; then tail -30 "$logf" >&2; die "build of $name failed"; fi
  printf '%s %s %ss\n' "$(date -u +%FT%TZ)" "$name" "$((SECONDS - t0))" >>"$CACHE/logs/build-times.txt"
  log "built $name in $((SECONDS - t0)) s"
}

_k8s_ldflags() {
  local ld="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=31 -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "$ld"
}

_k8s_build() {
  local out=$1 ld
  ld=$(_k8s_ldflags)
  cd "$ENV_ROOT/k8s"
  # One go build for all six commands so shared packages are compiled once.
  CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w $ld" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubelet
}

# kube-proxy runs as a pod of a cluster OpsPilot creates (its image is built from
# this binary); a build of its own so the cached six above stay as they are.
_kube_proxy_build() {
  local out=$1
  cd "$ENV_ROOT/k8s"
  CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w $(_k8s_ldflags)" -o "$out/" k8s.io/kubernetes/cmd/kube-proxy
}

# The pod sandbox process (k8s/pause): holds a pod's namespaces, reaps children.
_pause_build() {
  cd "$ENV_ROOT/k8s/pause"
  CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w" -o "$1/pause" .
}

# flanneld: built as the main module from its source, like compose, because the
# proxy refuses one of its dependencies at the version its go.mod pins
# (tencentcloud-sdk-go/tencentcloud/common v1.3.79, 403): that one is replaced by
# v1.3.103, the next version served (only flannel's Tencent Cloud VPC backend
# uses it). cgo is on: its UDP backend needs it (the binary links glibc).
_flannel_build() {
  local out=$1 src="$CACHE/tmp/flannel-src-$FLANNEL_VERSION" dir
  dir=$(go mod download -json "github.com/flannel-io/flannel@$FLANNEL_VERSION" | jq -r .Dir)
  [ -d "$dir" ] || return 1
  rm -rf "$src"; cp -r "$dir" "$src"; chmod -R u+w "$src"
  ( cd "$src" &&
    go mod edit -replace github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common=github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common@v1.3.103 &&
    CGO_ENABLED=1 nice -n 10 go build -mod=mod -trimpath \
      -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION" -o "$out/flanneld" . )
  rm -rf "$src"
}

# etcd for the static pod of a kubeadm cluster (Debian's 3.4 lacks the /livez and
# /readyz kubeadm 1.31 probes, so kubelet restarts it every few minutes). Built as
# the main module from go.etcd.io/etcd/server/v3's source: its go.mod replaces
# the sibling modules with ../ paths, which are dropped for the released versions.
_etcd_build() {
  local out=$1 src="$CACHE/tmp/etcd-src-$ETCD_VERSION" dir m
  dir=$(go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | jq -r .Dir)
  [ -d "$dir" ] || return 1
  rm -rf "$src"; cp -r "$dir" "$src"; chmod -R u+w "$src"
  ( cd "$src" &&
    for m in api/v3 client/pkg/v3 client/v2 client/v3 pkg/v3 raft/v3; do go mod edit -dropreplace "go.etcd.io/etcd/$m"; done &&
    CGO_ENABLED=0 nice -n 10 go build -mod=mod -trimpath -ldflags "-s -w" -o "$out/etcd" . )
  rm -rf "$src"
}

_go_install() { # OUT LDFLAGS PKG@VERSION...
  local out=$1 ld=$2; shift 2
  GOBIN="$out" CGO_ENABLED=0 nice -n 10 go install -trimpath -ldflags "-s -w $ld" "$@"
}

_cni_build() {
  local out=$1
  _go_install "$out" "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
    "github.com/containernetworking/plugins/plugins/...@$CNI_PLUGINS_VERSION"
  rm -f "$out/sample"   # the example plugin is not part of upstream's release archive
  tar -C "$out" --owner=0 --group=0 --sort=name --mtime=@0 -czf "$out/cni-plugins-linux-amd64-$CNI_PLUGINS_VERSION.tgz" \
    $(cd "$out" && ls | grep -v '\.tgz$')
}

# Compose's go.mod has exclude directives, which `go install pkg@version` refuses;
# so its module source (from the proxy, via the module cache) is built as the main module.
_compose_build() {
  local out=$1 src="$CACHE/tmp/compose-src-$COMPOSE_VERSION" dir
  dir=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" | jq -r .Dir)
  [ -d "$dir" ] || return 1
  rm -rf "$src"; cp -r "$dir" "$src"; chmod -R u+w "$src"
  ( cd "$src" && CGO_ENABLED=0 nice -n 10 go build -trimpath \
      -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
      -o "$out/docker-compose" ./cmd )
  rm -rf "$src"
}

# _cached NAME DIR BUILDFN: build into DIR.tmp then rename, unless DIR exists.
_cached() {
  local name=$1 dir=$2 fn=$3
  [ -d "$dir" ] && return 0
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  _timed "$name" "$fn" "$dir.tmp"
  mv "$dir.tmp" "$dir"
}

build_binaries() {
  ensure_go
  _cached "kubernetes-$K8S_VERSION" "$(k8s_bin)" _k8s_build
  _cached "kwok-$KWOK_VERSION" "$(kwok_bin)" _kwok_build
  _cached "cri-tools-$CRI_TOOLS_VERSION" "$(crictl_bin)" _crictl_build
  _cached "cni-plugins-$CNI_PLUGINS_VERSION" "$(cni_dir)" _cni_build
  _cached "compose-$COMPOSE_VERSION" "$(compose_bin)" _compose_build
  _cached "kube-proxy-$K8S_VERSION" "$(kube_proxy_bin)" _kube_proxy_build
  _cached "pause-$PAUSE_VERSION" "$(pause_bin)" _pause_build
  _cached "flannel-$FLANNEL_VERSION" "$(flannel_bin)" _flannel_build
  _cached "etcd-$ETCD_VERSION" "$(etcd_bin)" _etcd_build
  ensure_etcd
}
_kwok_build()   { _go_install "$1" "" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"; }
_crictl_build() { _go_install "$1" "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"; }

# etcd: Debian's etcd-server (3.4) serves kube-apiserver 1.31 here (the apiserver
# only notes that RequestWatchProgress is unsupported and falls back), so no etcd
# build. The binary (only libc needed) is unpacked from the .deb rather than
# installed, so no system etcd service appears on machines with systemd.
ensure_etcd() {
  ls "$BIN_CACHE"/etcd-debian-*/etcd >/dev/null 2>&1 && return 0
  local x="$CACHE/tmp/etcd-deb" v
  rm -rf "$x"; apt_extract "$x" etcd-server
  v=$(dpkg-deb -f "$(ls "$CACHE"/debs/etcd-server_*.deb | head -1)" Version | tr -c 'A-Za-z0-9._\n-' '_')
  mkdir -p "$BIN_CACHE/etcd-debian-$v.tmp"
  install -m 0755 "$x/usr/bin/etcd" "$BIN_CACHE/etcd-debian-$v.tmp/etcd"
  mv "$BIN_CACHE/etcd-debian-$v.tmp" "$BIN_CACHE/etcd-debian-$v"
  rm -rf "$x"
  log "etcd $v unpacked from Debian's etcd-server"
}
etcd_cmd() { ls "$BIN_CACHE"/etcd-debian-*/etcd | head -1; }
