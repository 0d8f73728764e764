#!/usr/bin/env bash
# Smoke test of a running environment (`envctl up` first). Reads only env.json.
# Fails loudly (non-zero exit, FAIL line) on the first problem.
#   (a) k8s: a 2-replica Deployment in a fresh namespace becomes Available on kwok
#       nodes; the limited token can list namespaces but not deployments.
#   (b) ssh: `hostname` on every host with StrictHostKeyChecking=yes against a
#       known_hosts built from env.json, as root and as ops (via sudo -n), with key
#       and with password auth; after `envctl host rotate-hostkey` the old
#       known_hosts is refused, the rewritten env.json's key is accepted.
#   (c) nested Docker: the bundle's dockerd runs inside a host, loads busybox.tar
#       and a busybox httpd container serves its page to curl; the bundle's
#       compose plugin starts a second one from a compose file.
#   (c2) the bundle's containerd, runc, CNI plugins and kubelet run a static pod
#       (busybox httpd, host network) inside another host; the kubelet's kernel
#       tunables stay inside the host.
#   (d) bundle: verify.sh accepts it; a flipped byte in a binary, or an edited
#       SHA256SUMS, makes it fail.
#   (e) start-control-plane.sh with a handed-in CA (ca.crt/ca.key only) on other
#       ports signs its leaf certificates with that CA and serves with them.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENV_JSON=${ENV_JSON:-/var/cache/opspilot-env/run/env.json}
[ -s "$ENV_JSON" ] || { echo "FAIL: $ENV_JSON missing: run tests/env/envctl up" >&2; exit 1; }
J() { jq -er "$@" "$ENV_JSON"; }

step() { printf '\n=== %s\n' "$*"; }
ok()   { printf 'ok: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d /tmp/opspilot-smoke.XXXXXX)
CLEANUPS=()
cleanup() { local c; for c in "${CLEANUPS[@]}"; do eval "$c" || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# ------------------------------------------------------------------ (a) Kubernetes
step "(a) Kubernetes: Deployment via kwok, limited token"
KUBECTL=$(J .binaries.kubectl)
ADMIN=$(J .k8s.adminKubeconfig); LIMITED=$(J .k8s.limitedKubeconfig)
KA() { "$KUBECTL" --kubeconfig="$ADMIN" "$@"; }
KL() { "$KUBECTL" --kubeconfig="$LIMITED" "$@"; }
# The server certificate must verify against caFile (no insecure flag anywhere).
curl -sf --cacert "$(J .k8s.caFile)" "$(J .k8s.apiserverUrl)/readyz" >/dev/null || fail "apiserver /readyz over TLS with caFile"
curl -sf --cacert "$(J .k8s.caFile)" -H "Authorization: Bearer $(J .k8s.limitedToken)" \
  "$(J .k8s.apiserverUrl)/api/v1/namespaces" >/dev/null || fail "limited token cannot list namespaces with curl"
KA version -o json | jq -e '.serverVersion.gitVersion | startswith("v1.31.")' >/dev/null || fail "server is not v1.31"
ok "apiserver $(KA version -o json | jq -r .serverVersion.gitVersion) over TLS"
NS="smoke-$(date +%s)-$RANDOM"
KA create namespace "$NS" >/dev/null
CLEANUPS+=("KA delete namespace $NS --wait=false >/dev/null 2>&1")
KA -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {type: kwok}
      containers:
      - {name: web, image: "opspilot-busybox:1", ports: [{containerPort: 8080}]}
YAML
KA -n "$NS" wait --for=condition=Available deployment/web --timeout=120s >/dev/null \
  || { KA -n "$NS" get deploy,rs,pods -o wide >&2; fail "Deployment web did not become Available"; }
ready=$(KA -n "$NS" get deployment web -o jsonpath='{.status.readyReplicas}')
[ "$ready" = 2 ] || fail "readyReplicas=$ready, want 2"
ok "Deployment $NS/web Available with 2 ready replicas on $(KA -n "$NS" get pods -o jsonpath='{.items[*].spec.nodeName}')"
KL get namespaces >/dev/null || fail "limited token cannot list namespaces"
[ "$(KL auth can-i list namespaces 2>/dev/null)" = yes ] || fail "limited: can-i list namespaces != yes"
if out=$(KL get deployments -A 2>&1); then fail "limited token CAN list deployments"; fi
grep -q Forbidden <<<"$out" || fail "limited token: expected Forbidden, got: $out"
[ "$(KL auth can-i list deployments || true)" = no ] || fail "limited: can-i list deployments != no"
[ "$(KL auth can-i create deployments -n "$NS" || true)" = no ] || fail "limited: can-i create deployments != no"
ok "limited token: list namespaces yes, list/create deployments Forbidden"

# ------------------------------------------------------------------ (b) SSH
step "(b) SSH: pinned host keys, root/ops, key/password"
command -v sshpass >/dev/null || fail "sshpass missing (envctl build installs it)"
KH="$WORK/known_hosts"
jq -r '.hosts[] | "\(.ip) \(.hostKey.publicKey)"' "$ENV_JSON" >"$KH"
SSHOPTS=(-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KH" -o GlobalKnownHostsFile=/dev/null
         -o ConnectTimeout=5 -o LogLevel=ERROR)
nhosts=$(J '.hosts | length')
[ "$nhosts" -ge 3 ] || fail "need at least 3 hosts in env.json, have $nhosts"
for i in $(seq 0 $((nhosts - 1))); do
  h() { jq -er ".hosts[$i]$1" "$ENV_JSON"; }
  name=$(h .name); ip=$(h .ip)
  # fingerprint recorded == fingerprint of the recorded key
  [ "$(ssh-keygen -lf <(h .hostKey.publicKey) | awk '{print $2}')" = "$(h .hostKey.fingerprint)" ] || fail "$name: fingerprint mismatch in env.json"
  out=$(ssh "${SSHOPTS[@]}" -o BatchMode=yes -o IdentitiesOnly=yes -i "$(h .root.privateKeyPath)" "root@$ip" hostname) \
    || fail "$name: root key login"
  [ "$out" = "$name" ] || fail "$name: root hostname says '$out'"
  out=$(ssh "${SSHOPTS[@]}" -o BatchMode=yes -o IdentitiesOnly=yes -i "$(h .nonRoot.privateKeyPath)" "ops@$ip" 'sudo -n sh -c "id -u; hostname"' | paste -sd' ') \
    || fail "$name: ops key login + sudo -n"
  [ "$out" = "0 $name" ] || fail "$name: ops sudo -n says '$out'"
  out=$(SSHPASS=$(h .root.password) sshpass -e ssh "${SSHOPTS[@]}" -o PubkeyAuthentication=no -o PreferredAuthentications=password "root@$ip" hostname) \
    || fail "$name: root password login"
  [ "$out" = "$name" ] || fail "$name: root password hostname says '$out'"
  out=$(SSHPASS=$(h .nonRoot.password) sshpass -e ssh "${SSHOPTS[@]}" -o PubkeyAuthentication=no -o PreferredAuthentications=password "ops@$ip" 'sudo -n hostname') \
    || fail "$name: ops password login + sudo -n"
  [ "$out" = "$name" ] || fail "$name: ops password sudo hostname says '$out'"
  # a wrong password is refused (password auth is real, not "anything goes")
  if SSHPASS=wrong-password sshpass -e ssh "${SSHOPTS[@]}" -o PubkeyAuthentication=no -o PreferredAuthentications=password "root@$ip" true 2>/dev/null; then
    fail "$name: wrong root password accepted"
  fi
  ok "$name ($ip): root key, root password, ops key+sudo -n, ops password+sudo -n"
done

# the systemd host: ops key + sudo -n, and systemd is PID 1 and running
echo "$(J .systemdHost.ip) $(J .systemdHost.hostKey.publicKey)" >>"$KH"
out=$(ssh "${SSHOPTS[@]}" -o BatchMode=yes -o IdentitiesOnly=yes -i "$(J .systemdHost.nonRoot.privateKeyPath)" "ops@$(J .systemdHost.ip)" \
  'sudo -n sh -c "ps -p 1 -o comm=; systemctl is-system-running"' | paste -sd' ') || fail "systemd host: ops key login + sudo -n"
case "$out" in "systemd running"|"systemd degraded") ;; *) fail "systemd host: PID 1 and state say '$out'" ;; esac
ok "$(J .systemdHost.name) ($(J .systemdHost.ip)): ops key+sudo -n, PID 1 systemd ($out)"

last=$(J ".hosts[$((nhosts - 1))].name"); last_ip=$(J ".hosts[$((nhosts - 1))].ip")
old_fp=$(J ".hosts[$((nhosts - 1))].hostKey.fingerprint")
"$HERE/envctl" host rotate-hostkey "$last" >/dev/null || fail "envctl host rotate-hostkey $last"
new_fp=$(J ".hosts[$((nhosts - 1))].hostKey.fingerprint")
[ "$new_fp" != "$old_fp" ] || fail "env.json fingerprint of $last unchanged after rotate-hostkey"
if err=$(ssh "${SSHOPTS[@]}" -o BatchMode=yes -o IdentitiesOnly=yes -i "$(J .hosts[0].root.privateKeyPath)" "root@$last_ip" hostname 2>&1); then
  fail "$last: connection with the OLD known_hosts succeeded after rotate-hostkey"
fi
grep -qi 'host key' <<<"$err" || fail "$last: old known_hosts failed, but not on the host key: $err"
ok "$last: old known_hosts refused after rotation: $(grep -m1 -oE 'REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed' <<<"$err")"
jq -r '.hosts[] | "\(.ip) \(.hostKey.publicKey)"' "$ENV_JSON" >"$KH"
out=$(ssh "${SSHOPTS[@]}" -o BatchMode=yes -o IdentitiesOnly=yes -i "$(J .hosts[0].root.privateKeyPath)" "root@$last_ip" hostname) \
  || fail "$last: the rotated key from env.json is not accepted"
[ "$out" = "$last" ] || fail "$last: hostname says '$out'"
ok "$last: new key from env.json accepted ($old_fp -> $new_fp)"

# ------------------------------------------------------------------ (c) nested Docker
step "(c) nested Docker in a test host"
H1=$(J .hosts[0].container); H1_IP=$(J .hosts[0].ip)
BUNDLE=$(J .bundle.dir)
[ -s "$BUNDLE/checksums/SHA256SUMS" ] || fail "bundle $BUNDLE missing (envctl up assembles it)"
for b in dockerd docker docker-proxy containerd containerd-shim-runc-v2 runc; do
  docker cp "$BUNDLE/bin/linux-amd64/$b" "$H1:/usr/local/bin/$b"
done
docker cp "$(J .images.busyboxTar)" "$H1:/tmp/busybox.tar"
CLEANUPS+=("docker exec $H1 sh -c 'docker rm -f smoke-web smoke-web-1 >/dev/null 2>&1; rm -rf /tmp/smoke-compose /usr/local/lib/docker; pkill -x dockerd; sleep 2; pkill -x containerd; rm -f /usr/local/bin/dockerd /usr/local/bin/docker /usr/local/bin/docker-proxy /usr/local/bin/containerd /usr/local/bin/containerd-shim-runc-v2 /usr/local/bin/runc /tmp/busybox.tar; grep -oE \" (/run/docker|/var/lib/docker|/run/containerd)[^ ]*\" /proc/mounts | sort -r | xargs -r umount -l; rm -rf /var/lib/docker /var/lib/containerd /run/docker /run/containerd'")
docker exec -d "$H1" sh -c 'dockerd --storage-driver=vfs --iptables=false --bridge=none >/var/log/nested-dockerd.log 2>&1'
for _ in $(seq 1 60); do docker exec "$H1" docker info >/dev/null 2>&1 && break; sleep 1; done
docker exec "$H1" docker info >/dev/null 2>&1 || { docker exec "$H1" tail -20 /var/log/nested-dockerd.log >&2; fail "nested dockerd in $H1 did not start"; }
ok "nested dockerd $(docker exec "$H1" docker version -f '{{.Server.Version}}') runs in $H1"
docker exec "$H1" docker load -i /tmp/busybox.tar >/dev/null || fail "docker load busybox.tar in $H1"
docker exec "$H1" docker run -d --name smoke-web --network host opspilot-busybox:1 >/dev/null || fail "docker run busybox in $H1"
page=""
for _ in $(seq 1 20); do page=$(curl -sf "http://$H1_IP:8080/" || true); [ -n "$page" ] && break; sleep 0.5; done
grep -q 'opspilot busybox httpd ok' <<<"$page" || fail "busybox httpd in nested Docker on $H1_IP:8080 did not serve its page"
ok "curl http://$H1_IP:8080/ -> $page"
# The bundle's compose v2 plugin drives the same nested engine.
docker exec "$H1" mkdir -p /usr/local/lib/docker/cli-plugins /tmp/smoke-compose
docker cp "$BUNDLE/bin/linux-amd64/docker-compose" "$H1:/usr/local/lib/docker/cli-plugins/docker-compose"
docker exec -i "$H1" sh -c 'cat > /tmp/smoke-compose/compose.yaml' <<'YAML'
services:
  web:
    image: opspilot-busybox:1
    network_mode: host
    command: ["/bin/busybox", "httpd", "-f", "-p", "8081", "-h", "/www"]
YAML
docker exec "$H1" sh -c 'cd /tmp/smoke-compose && docker compose -p smoke up -d' >/dev/null 2>&1 || fail "docker compose up in $H1"
page=""
for _ in $(seq 1 20); do page=$(curl -sf "http://$H1_IP:8081/" || true); [ -n "$page" ] && break; sleep 0.5; done
grep -q 'opspilot busybox httpd ok' <<<"$page" || fail "compose service in nested Docker on $H1_IP:8081 did not serve its page"
ok "docker compose $(docker exec "$H1" docker compose version --short) service: curl http://$H1_IP:8081/ -> $page"

# ------------------------------------------------------------------ (c2) kubelet
step "(c2) the bundle's kubelet + containerd + runc run a static pod in a host"
H2=$(J .hosts[1].container); H2_IP=$(J .hosts[1].ip)
for b in containerd containerd-shim-runc-v2 ctr runc kubelet crictl; do
  docker cp "$BUNDLE/bin/linux-amd64/$b" "$H2:/usr/local/bin/$b"
done
docker cp "$BUNDLE/bin/linux-amd64/cni-plugins.tgz" "$H2:/tmp/cni-plugins.tgz"
docker cp "$BUNDLE/images/busybox.tar" "$H2:/tmp/busybox.tar"
CLEANUPS+=("docker exec $H2 sh -c 'pkill -x kubelet; sleep 1; crictl -r unix:///run/containerd/containerd.sock rmp -fa >/dev/null 2>&1; pkill -x containerd; sleep 1; pkill -x containerd-shim; grep -oE \" (/run/containerd|/var/lib/containerd|/var/lib/kubelet|/run/netns)[^ ]*\" /proc/mounts | sort -r | xargs -r umount -l; rm -rf /usr/local/bin/containerd /usr/local/bin/containerd-shim-runc-v2 /usr/local/bin/ctr /usr/local/bin/runc /usr/local/bin/kubelet /usr/local/bin/crictl /opt/cni /etc/cni /etc/containerd /etc/kubernetes /var/lib/kubelet /var/lib/containerd /run/containerd /tmp/cni-plugins.tgz /tmp/busybox.tar /var/log/kubelet.log /var/log/containerd.log'")
# restrict_oom_score_adj: without CAP_SYS_RESOURCE runc cannot give the sandbox
# its usual negative OOM score; the native snapshotter avoids overlay-on-overlay.
docker exec "$H2" sh -ec '
  mkdir -p /opt/cni/bin /etc/containerd /etc/kubernetes/manifests /var/lib/kubelet
  tar -C /opt/cni/bin -xzf /tmp/cni-plugins.tgz
  containerd config default \
    | sed "s|sandbox_image = .*|sandbox_image = \"docker.io/library/opspilot-busybox:1\"|; s|snapshotter = \"overlayfs\"|snapshotter = \"native\"|; s|restrict_oom_score_adj = false|restrict_oom_score_adj = true|" \
    > /etc/containerd/config.toml'
docker exec -d "$H2" sh -c 'containerd >/var/log/containerd.log 2>&1'
for _ in $(seq 1 30); do docker exec "$H2" ctr version >/dev/null 2>&1 && break; sleep 0.5; done
docker exec "$H2" ctr -n k8s.io images import --snapshotter native /tmp/busybox.tar >/dev/null || fail "ctr images import in $H2"
docker exec -i "$H2" sh -c 'cat > /var/lib/kubelet/config.yaml' <<'YAML'
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
staticPodPath: /etc/kubernetes/manifests
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
YAML
docker exec -i "$H2" sh -c 'cat > /etc/kubernetes/manifests/web.yaml' <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  hostNetwork: true
  containers:
  - name: web
    image: docker.io/library/opspilot-busybox:1
    imagePullPolicy: Never
    command: ["/bin/busybox", "httpd", "-f", "-p", "9090", "-h", "/www"]
YAML
machine_panic=$(cat /proc/sys/kernel/panic); machine_panic_on_oops=$(cat /proc/sys/kernel/panic_on_oops)
docker exec -d "$H2" sh -c 'kubelet --config /var/lib/kubelet/config.yaml >/var/log/kubelet.log 2>&1'
page=""
for _ in $(seq 1 90); do page=$(curl -sf --max-time 2 "http://$H2_IP:9090/" || true); [ -n "$page" ] && break; sleep 1; done
if ! grep -q 'opspilot busybox httpd ok' <<<"$page"; then
  docker exec "$H2" sh -c 'grep "^E" /var/log/kubelet.log | tail -5' >&2 || true
  fail "static pod of the bundle's kubelet in $H2 did not serve on $H2_IP:9090"
fi
ok "kubelet $(docker exec "$H2" kubelet --version | cut -d' ' -f2) static pod: curl http://$H2_IP:9090/ -> $page"
# The kubelet sets kernel.panic_on_oops=1 and kernel.panic=10; inside the host it
# sees them set, the machine's own values are untouched.
[ "$(docker exec "$H2" cat /proc/sys/kernel/panic)" = 10 ] || fail "kubelet's kernel.panic did not land in $H2's shadow file"
[ "$(cat /proc/sys/kernel/panic)" = "$machine_panic" ] && [ "$(cat /proc/sys/kernel/panic_on_oops)" = "$machine_panic_on_oops" ] \
  || fail "the machine's kernel.panic/panic_on_oops changed"
ok "kubelet's sysctls stayed in $H2 (host sees kernel.panic=10, machine still $machine_panic)"

# ------------------------------------------------------------------ (d) bundle
step "(d) bundle signature and checksums"
"$HERE/bundle/verify.sh" "$BUNDLE" || fail "the bundle does not verify"
T="$WORK/bundle"; cp -al "$BUNDLE" "$T"
victim=bin/linux-amd64/runc
cp --remove-destination "$BUNDLE/$victim" "$T/$victim"     # own copy, the original stays intact
byte=$(od -An -tu1 -j 4096 -N1 "$T/$victim" | tr -d ' ')
printf "$(printf '\\%03o' $(( byte ^ 0xff )))" | dd of="$T/$victim" bs=1 seek=4096 conv=notrunc status=none
cmp -s "$BUNDLE/$victim" "$T/$victim" && fail "byte flip did not change $victim"
if "$HERE/bundle/verify.sh" "$T" 2>"$WORK/verify.err"; then fail "verify accepted a flipped byte in $victim"; fi
ok "flipped byte in $victim rejected: $(tail -1 "$WORK/verify.err")"
cp --remove-destination "$BUNDLE/$victim" "$T/$victim"
rm -f "$T/checksums/SHA256SUMS"
awk 'NR==1 { $0 = (substr($0,1,1) == "0" ? "1" : "0") substr($0,2) } { print }' "$BUNDLE/checksums/SHA256SUMS" >"$T/checksums/SHA256SUMS"
if "$HERE/bundle/verify.sh" "$T" 2>"$WORK/verify.err"; then fail "verify accepted an edited SHA256SUMS"; fi
ok "edited SHA256SUMS rejected: $(tail -1 "$WORK/verify.err")"
"$HERE/bundle/verify.sh" "$BUNDLE" >/dev/null || fail "the original bundle was damaged by the test"

# ------------------------------------------------------------------ (e) handed-in PKI
step "(e) a control plane on a handed-in CA (what OpsPilot's own PKI will do)"
P2="$WORK/pki"; D2="$WORK/data"; mkdir -p "$P2"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj /CN=handed-in-ca -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature \
  -keyout "$P2/ca.key" -out "$P2/ca.crt" 2>/dev/null
ca_before=$(sha256sum "$P2/ca.crt")
export OPSPILOT_APISERVER_PORT=26443 OPSPILOT_ETCD_CLIENT_PORT=22379 OPSPILOT_ETCD_PEER_PORT=22380 \
  OPSPILOT_KCM_PORT=27257 OPSPILOT_SCHEDULER_PORT=27259 OPSPILOT_KWOK_PORT=27247 OPSPILOT_FAKE_NODES=1
CLEANUPS+=("'$HERE/k8s/stop-control-plane.sh' '$D2' >/dev/null 2>&1")
"$HERE/k8s/start-control-plane.sh" "$P2" "$D2" 2>"$WORK/cp2.log" || { cat "$WORK/cp2.log" >&2; fail "control plane on a handed-in CA"; }
[ "$(sha256sum "$P2/ca.crt")" = "$ca_before" ] || fail "the handed-in ca.crt was replaced"
openssl verify -CAfile "$P2/ca.crt" "$P2/apiserver.crt" "$P2/admin.crt" >/dev/null || fail "leaf certificates not signed by the handed-in CA"
curl -sf --cacert "$P2/ca.crt" https://127.0.0.1:26443/readyz >/dev/null || fail "apiserver on the handed-in CA not serving TLS verifiable with that CA"
"$KUBECTL" --kubeconfig="$D2/admin.kubeconfig" get nodes kwok-node-1 >/dev/null || fail "admin cert from the handed-in CA rejected"
ok "apiserver on :26443 serves a certificate of the handed-in EC CA; its admin cert works"
"$HERE/k8s/stop-control-plane.sh" "$D2" >/dev/null 2>&1

printf '\nSMOKE OK\n'
