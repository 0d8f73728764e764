#!/usr/bin/env bash
# Assemble a signed, script/-shaped offline test bundle from real binaries.
#
# usage: assemble.sh OUT_DIR
#
# OUT_DIR/bin/linux-amd64/<name>   dockerd, docker, docker-proxy, containerd,
#                                  containerd-shim-runc-v2, ctr, runc (Debian packages,
#                                  unpacked with dpkg-deb -x, nothing installed),
#                                  docker-compose (built), kubeadm, kubelet, kubectl,
#                                  crictl (built), cni-plugins.tgz (built)
# OUT_DIR/images/busybox.tar       opspilot-busybox:1 (docker save)
# OUT_DIR/manifests/index.yaml     InstallBundleIndex (opspilot.manifest/v1), hooks: []
# OUT_DIR/checksums/SHA256SUMS     sha256sum format, every file outside checksums/
# OUT_DIR/checksums/SHA256SUMS.sig base64 of the raw 64-byte ed25519 signature of SHA256SUMS
# OUT_DIR/checksums/public.key     base64 of the raw 32-byte ed25519 public key
# The private key stays in /var/cache/opspilot-env/keys/bundle-ed25519.pem.
# Needs `envctl build` to have run (binaries and busybox.tar cached).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
source "$ENV_ROOT/lib/build.sh"
source "$ENV_ROOT/lib/images.sh"

[ $# -eq 1 ] || die "usage: $0 OUT_DIR"
OUT=$1
BUNDLE_KEY="$KEYS/bundle-ed25519.pem"
BUNDLE_VERSION="$K8S_VERSION-opspilot-test.1"

for f in "$(k8s_bin)/kubeadm" "$(crictl_bin)/crictl" "$(compose_bin)/docker-compose" "$BUSYBOX_TAR"; do
  [ -s "$f" ] || die "missing $f: run 'envctl build' first"
done
CNI_TGZ="$(cni_dir)/cni-plugins-linux-amd64-$CNI_PLUGINS_VERSION.tgz"
[ -s "$CNI_TGZ" ] || die "missing $CNI_TGZ: run 'envctl build' first"

# Debian runtime binaries, unpacked (not installed).
DEBX="$CACHE/tmp/bundle-debs"
rm -rf "$DEBX"; apt_extract "$DEBX" docker.io containerd runc
deb_version() { dpkg-deb -f "$(ls "$CACHE/debs/$1"_*.deb | head -1)" Version; }
# Upstream version for artifact ids (20.10.24), full Debian version in descriptions.
upstream() { sed -E 's/^[0-9]+://; s/[~+-].*$//' <<<"$1"; }
DOCKER_DEB=$(deb_version docker.io); CONTAINERD_DEB=$(deb_version containerd); RUNC_DEB=$(deb_version runc)
DOCKER_V=$(upstream "$DOCKER_DEB"); CONTAINERD_V=$(upstream "$CONTAINERD_DEB"); RUNC_V=$(upstream "$RUNC_DEB")

TMP="$OUT.tmp.$$"
rm -rf "$TMP"; mkdir -p "$TMP/bin/linux-amd64" "$TMP/images" "$TMP/manifests" "$TMP/checksums"
B="$TMP/bin/linux-amd64"
_find_deb_bin() { local p; for p in usr/bin usr/sbin bin sbin usr/libexec/docker; do [ -x "$DEBX/$p/$1" ] && { echo "$DEBX/$p/$1"; return; }; done; die "$1 not in the Debian packages"; }
for n in dockerd docker docker-proxy containerd containerd-shim-runc-v2 ctr runc; do install -m 0755 "$(_find_deb_bin "$n")" "$B/$n"; done
for n in kubeadm kubelet kubectl; do install -m 0755 "$(k8s_bin)/$n" "$B/$n"; done
install -m 0755 "$(crictl_bin)/crictl" "$B/crictl"
install -m 0755 "$(compose_bin)/docker-compose" "$B/docker-compose"
install -m 0644 "$CNI_TGZ" "$B/cni-plugins.tgz"
install -m 0644 "$BUSYBOX_TAR" "$TMP/images/busybox.tar"
rm -rf "$DEBX"

# ---------------------------------------------------------------- index.yaml
_entry() { # ID TYPE PATH MODE REQUIRED DESCRIPTION
  local f="$TMP/$3"
  cat <<YAML
      - id: $1
        type: $2
        path: $3
        sha256: "$(sha256sum "$f" | cut -d' ' -f1)"
        sizeBytes: $(stat -c %s "$f")
        mode: "$4"
        required: $5
        description: "$6"
YAML
}
K=$K8S_VERSION
{
cat <<YAML
apiVersion: opspilot.manifest/v1
kind: InstallBundleIndex
bundleVersion: $BUNDLE_VERSION
generatedAt: "$(date -u +%FT%TZ)"
defaultOS: linux
defaultArch: amd64
artifactsRoot: script/

checksums:
  algo: sha256
  path: checksums/SHA256SUMS

signature:
  algo: ed25519
  path: checksums/SHA256SUMS.sig
  pubkeyRef: checksums/public.key

compatibility:
  k8sApiMin: v1.31.0
  k8sApiMax: v1.31.99
  requiresKernelMin: "4.19"
  notes: test bundle assembled by tests/env/bundle/assemble.sh; binaries only, no hooks or templates

runtimes:
  - name: k8s
    version: $K
    supportedOSArch:
      - os: linux
        arch: amd64
    dependencies:
      - containerd
      - runc
      - cni-plugins
    binaries:
YAML
_entry "kubectl-linux-amd64-$K" binary bin/linux-amd64/kubectl 0755 true "kubectl client (built from source, $K)"
_entry "kubeadm-linux-amd64-$K" binary bin/linux-amd64/kubeadm 0755 true "kubeadm installer (built from source, $K)"
_entry "kubelet-linux-amd64-$K" binary bin/linux-amd64/kubelet 0755 true "kubelet binary (built from source, $K)"
_entry "crictl-linux-amd64-$CRI_TOOLS_VERSION" binary bin/linux-amd64/crictl 0755 true "cri client (cri-tools $CRI_TOOLS_VERSION)"
_entry "containerd-linux-amd64-$CONTAINERD_V" binary bin/linux-amd64/containerd 0755 true "container runtime (Debian containerd $CONTAINERD_DEB)"
_entry "containerd-shim-runc-v2-linux-amd64-$CONTAINERD_V" binary bin/linux-amd64/containerd-shim-runc-v2 0755 true "containerd runc shim (Debian containerd $CONTAINERD_DEB)"
_entry "ctr-linux-amd64-$CONTAINERD_V" binary bin/linux-amd64/ctr 0755 false "containerd client (Debian containerd $CONTAINERD_DEB)"
_entry "runc-linux-amd64-$RUNC_V" binary bin/linux-amd64/runc 0755 true "OCI runtime (Debian runc $RUNC_DEB)"
_entry "cni-plugins-linux-amd64-$CNI_PLUGINS_VERSION" image-archive bin/linux-amd64/cni-plugins.tgz 0644 true "cni plugins archive ($CNI_PLUGINS_VERSION)"
cat <<YAML
    images:
YAML
_entry "busybox-image-1" image-archive images/busybox.tar 0644 false "opspilot-busybox:1 test image (docker save), serves /www with busybox httpd on 8080"
cat <<YAML
    templates: []
    hooks: []
    checks: []

  - name: compose
    version: $COMPOSE_VERSION
    supportedOSArch:
      - os: linux
        arch: amd64
    dependencies:
      - containerd
      - runc
    binaries:
YAML
_entry "dockerd-linux-amd64-$DOCKER_V" binary bin/linux-amd64/dockerd 0755 true "docker engine (Debian docker.io $DOCKER_DEB)"
_entry "docker-linux-amd64-$DOCKER_V" binary bin/linux-amd64/docker 0755 true "docker client (Debian docker.io $DOCKER_DEB)"
_entry "docker-proxy-linux-amd64-$DOCKER_V" binary bin/linux-amd64/docker-proxy 0755 true "docker userland proxy (Debian docker.io $DOCKER_DEB)"
_entry "docker-compose-linux-amd64-$COMPOSE_VERSION" binary bin/linux-amd64/docker-compose 0755 true "docker compose v2 CLI plugin (built from source, $COMPOSE_VERSION)"
_entry "compose-containerd-linux-amd64-$CONTAINERD_V" binary bin/linux-amd64/containerd 0755 true "container runtime for dockerd (same file as the k8s runtime's)"
_entry "compose-containerd-shim-runc-v2-linux-amd64-$CONTAINERD_V" binary bin/linux-amd64/containerd-shim-runc-v2 0755 true "containerd runc shim (same file as the k8s runtime's)"
_entry "compose-runc-linux-amd64-$RUNC_V" binary bin/linux-amd64/runc 0755 true "OCI runtime (same file as the k8s runtime's)"
cat <<YAML
    images:
YAML
_entry "compose-busybox-image-1" image-archive images/busybox.tar 0644 true "opspilot-busybox:1 test image (docker save)"
cat <<YAML
    templates: []
    hooks: []
    checks: []
YAML
} >"$TMP/manifests/index.yaml"

# ---------------------------------------------------------------- checksums + signature
( cd "$TMP" && find . -type f ! -path './checksums/*' -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum ) >"$TMP/checksums/SHA256SUMS"
mkdir -p "$KEYS"; chmod 700 "$KEYS"
if [ ! -s "$BUNDLE_KEY" ]; then
  (umask 077; openssl genpkey -algorithm ed25519 -out "$BUNDLE_KEY")
  log "generated bundle signing key $BUNDLE_KEY"
fi
sig=$(mktemp)
openssl pkeyutl -sign -rawin -inkey "$BUNDLE_KEY" -in "$TMP/checksums/SHA256SUMS" -out "$sig"
[ "$(stat -c %s "$sig")" -eq 64 ] || die "unexpected signature size"
base64 -w0 "$sig" >"$TMP/checksums/SHA256SUMS.sig"; echo >>"$TMP/checksums/SHA256SUMS.sig"
rm -f "$sig"
# Raw public key = the last 32 bytes of the DER SubjectPublicKeyInfo.
openssl pkey -in "$BUNDLE_KEY" -pubout -outform DER | tail -c 32 | base64 -w0 >"$TMP/checksums/public.key"
echo >>"$TMP/checksums/public.key"

rm -rf "$OUT"; mv "$TMP" "$OUT"
log "bundle assembled in $OUT ($(du -sh "$OUT" | cut -f1))"
