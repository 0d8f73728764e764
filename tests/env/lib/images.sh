# Local images: the test-host image (debootstrap) and the tiny busybox image.

testhost_tag() {
  local h
  h=$(cat "$ENV_ROOT/images/testhost-packages.txt" "$ENV_ROOT/images/testhost-entrypoint.sh" "$ENV_ROOT/images/testhost-setup.sh" | sha256sum | cut -c1-12)
  printf 'opspilot-testhost:%s\n' "$h"
}

build_testhost_image() {
  local tag; tag=$(testhost_tag)
  local hash=${tag#*:}
  local tarball="$IMG_CACHE/testhost-rootfs-$hash.tar"
  if docker image inspect "$tag" >/dev/null 2>&1; then log "image $tag present"; return 0; fi
  mkdir -p "$IMG_CACHE"
  if [ ! -s "$tarball" ]; then
    ensure_pkgs debootstrap
    local pkgs root="$CACHE/tmp/testhost-rootfs-$hash" mirror
    pkgs=$(grep -v '^\s*#' "$ENV_ROOT/images/testhost-packages.txt" | grep -v '^\s*$' | paste -sd, -)
    mirror=$(debian_mirror)
    rm -rf "$root"; mkdir -p "$root"
    log "debootstrap bookworm test-host rootfs ($root)"
    debootstrap --variant=minbase --include="$pkgs" bookworm "$root" "$mirror" >"$LOGS/debootstrap-testhost.log" 2>&1 \
      || { tail -20 "$LOGS/debootstrap-testhost.log" >&2; die "debootstrap failed"; }
    install -m 0755 "$ENV_ROOT/images/testhost-entrypoint.sh" "$root/usr/local/sbin/opspilot-entrypoint"
    install -m 0755 "$ENV_ROOT/images/testhost-setup.sh" "$root/tmp/testhost-setup.sh"
    chroot "$root" /tmp/testhost-setup.sh
    rm -f "$root/tmp/testhost-setup.sh"
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  # Older test-host rootfs tarballs (other package lists) are not needed any more.
  find "$IMG_CACHE" -maxdepth 1 -name 'testhost-rootfs-*.tar' ! -name "testhost-rootfs-$hash.tar" -delete
  log "docker import $tarball as $tag"
  docker import -c 'CMD ["/usr/local/sbin/opspilot-entrypoint"]' "$tarball" "$tag" >/dev/null
}

# The systemd test host: the test-host rootfs plus systemd as PID 1.
testhost_systemd_tag() {
  local h
  h=$( { testhost_tag; cat "$ENV_ROOT/images/testhost-systemd-setup.sh"; } | sha256sum | cut -c1-12)
  printf 'opspilot-testhost-systemd:%s\n' "$h"
}

build_testhost_systemd_image() {
  local tag base; tag=$(testhost_systemd_tag); base=$(testhost_tag)
  if docker image inspect "$tag" >/dev/null 2>&1; then log "image $tag present"; return 0; fi
  local root="$CACHE/tmp/testhost-systemd-rootfs"
  rm -rf "$root"; mkdir -p "$root"
  tar -C "$root" -xf "$IMG_CACHE/testhost-rootfs-${base#*:}.tar"
  install -m 0755 "$ENV_ROOT/images/testhost-systemd-setup.sh" "$root/tmp/testhost-systemd-setup.sh"
  # apt-get runs in the chroot: it needs this machine's name resolution and its
  # Acquire settings (a mirror may serve Release files past their Valid-Until).
  cp -f /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  local conf
  for conf in $(grep -l '^Acquire' /etc/apt/apt.conf.d/* 2>/dev/null); do
    cp -f "$conf" "$root/etc/apt/apt.conf.d/opspilot-host-$(basename "$conf")"
  done
  log "adding systemd to a copy of the test-host rootfs"
  chroot "$root" /tmp/testhost-systemd-setup.sh >"$LOGS/testhost-systemd-setup.log" 2>&1 \
    || { tail -20 "$LOGS/testhost-systemd-setup.log" >&2; rm -rf "$root"; die "adding systemd to the test-host rootfs failed"; }
  rm -f "$root/tmp/testhost-systemd-setup.sh" "$root"/etc/apt/apt.conf.d/opspilot-host-*
  log "docker import the systemd test host as $tag"
  tar -C "$root" --numeric-owner -c . | docker import -c 'CMD ["/sbin/init"]' -c 'ENV container=docker' - "$tag" >/dev/null
  rm -rf "$root"
}

# Test-host images of older recipes, once no container uses them (vfs: ~225 MB each).
prune_testhost_images() {
  local t
  for t in $(docker images --format '{{.Repository}}:{{.Tag}}' opspilot-testhost) \
           $(docker images --format '{{.Repository}}:{{.Tag}}' opspilot-testhost-systemd); do
    [ "$t" = "$(testhost_tag)" ] || [ "$t" = "$(testhost_systemd_tag)" ] && continue
    docker rmi "$t" >/dev/null 2>&1 && log "removed old image $t" || true
  done
}

# Busybox image: Debian's busybox-static in an otherwise empty tree.
BUSYBOX_TAG=opspilot-busybox:1
BUSYBOX_TAR="$IMG_CACHE/busybox.tar"

build_busybox_image() {
  mkdir -p "$IMG_CACHE"
  if ! docker image inspect "$BUSYBOX_TAG" >/dev/null 2>&1; then
    local x="$CACHE/tmp/busybox-deb" root="$CACHE/tmp/busybox-root"
    rm -rf "$x" "$root"; apt_extract "$x" busybox-static
    mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/etc"
    install -m 0755 "$x/bin/busybox" "$root/bin/busybox"
    local a
    for a in sh ls cat echo httpd wget sleep env ps mkdir rm cp mv ln id hostname nc; do ln -s busybox "$root/bin/$a"; done
    echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
    echo 'root:x:0:' > "$root/etc/group"
    echo '<html><body>opspilot busybox httpd ok</body></html>' > "$root/www/index.html"
    log "docker import busybox tree as $BUSYBOX_TAG"
    tar -C "$root" --numeric-owner -c . | docker import \
      -c 'CMD ["/bin/busybox","httpd","-f","-p","8080","-h","/www"]' -c 'EXPOSE 8080' - "$BUSYBOX_TAG" >/dev/null
    rm -rf "$x" "$root" "$BUSYBOX_TAR"
  fi
  if [ ! -s "$BUSYBOX_TAR" ]; then
    docker save -o "$BUSYBOX_TAR.tmp" "$BUSYBOX_TAG" && chmod 0644 "$BUSYBOX_TAR.tmp" && mv "$BUSYBOX_TAR.tmp" "$BUSYBOX_TAR"
  fi
}

# Images of a cluster OpsPilot creates with kubeadm, one `docker save` archive
# each under $IMG_CACHE/k8s-$K8S_VERSION/ (the bundle's images/k8s-v<ver>/ layout),
# named as kubeadm asks for them with `imageRepository: opspilot`: each is a tree
# holding its binary (static, or with the libraries ldd lists), docker-imported.
K8S_IMAGE_REPO=opspilot
k8s_images_dir() { printf '%s\n' "$IMG_CACHE/k8s-$K8S_VERSION"; }

# _k8s_image NAME TAG ENTRYPOINT BINARY...: import the tree, save it to NAME.tar.
_k8s_image() {
  local name=$1 tag=$2 ep=$3; shift 3
  local root="$CACHE/tmp/k8s-image-$name" out ref="$K8S_IMAGE_REPO/$name:$tag" b lib
  out="$(k8s_images_dir)/$name.tar"
  [ -s "$out" ] && return 0
  rm -rf "$root"; mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$root/var/run"
  for b in "$@"; do
    install -m 0755 "$b" "$root/usr/local/bin/"
    for lib in $(ldd "$b" 2>/dev/null | grep -o '/[^ ]*' || true); do
      mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
    done
  done
  echo 'root:x:0:0:root:/root:/sbin/nologin' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
  local changes=(-c 'ENV PATH=/usr/local/bin:/usr/bin:/bin')
  [ -n "$ep" ] && changes+=(-c "ENTRYPOINT [\"$ep\"]")
  tar -C "$root" --numeric-owner -c . | docker import "${changes[@]}" - "$ref" >/dev/null
  mkdir -p "$(k8s_images_dir)"
  docker save -o "$out.tmp" "$ref" && chmod 0644 "$out.tmp" && mv "$out.tmp" "$out"
  rm -rf "$root"
  log "image $ref saved to $out"
}

# kube-proxy and flanneld shell out to iptables(-save/-restore, nft backend) and
# conntrack, with their libraries and dlopen'ed xtables extensions (flanneld also
# links glibc): their images are the test-host image (Debian with all of it)
# plus the binary.
_k8s_testhost_image() { # NAME TAG BINARY
  local name=$1 tag=$2 bin=$3 out ref c
  ref="$K8S_IMAGE_REPO/$name:$tag"
  out="$(k8s_images_dir)/$name.tar"
  [ -s "$out" ] && return 0
  c=$(docker create --entrypoint "/usr/local/bin/$(basename "$bin")" "$(testhost_tag)")
  docker cp "$bin" "$c:/usr/local/bin/$(basename "$bin")"
  docker commit -c 'ENTRYPOINT []' -c 'CMD []' "$c" "$ref" >/dev/null
  docker rm "$c" >/dev/null
  mkdir -p "$(k8s_images_dir)"
  docker save -o "$out.tmp" "$ref" && chmod 0644 "$out.tmp" && mv "$out.tmp" "$out"
  log "image $ref saved to $out"
}

build_k8s_images() {
  local k; k=$(k8s_bin)
  _k8s_image kube-apiserver "$K8S_VERSION" "" "$k/kube-apiserver"
  _k8s_image kube-controller-manager "$K8S_VERSION" "" "$k/kube-controller-manager"
  _k8s_image kube-scheduler "$K8S_VERSION" "" "$k/kube-scheduler"
  _k8s_testhost_image kube-proxy "$K8S_VERSION" "$(kube_proxy_bin)/kube-proxy"
  _k8s_testhost_image flannel "$FLANNEL_VERSION" "$(flannel_bin)/flanneld"
  _k8s_image etcd "${ETCD_VERSION#v}-0" "" "$(etcd_bin)/etcd"
  _k8s_image pause "$PAUSE_VERSION" /usr/local/bin/pause "$(pause_bin)/pause"
}
