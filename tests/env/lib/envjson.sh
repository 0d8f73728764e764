# Writes $ENV_JSON, the machine-readable description of the running environment.

K8S_PKI="$RUN/k8s/pki"
K8S_DATA="$RUN/k8s/data"
BUNDLE_DIR="$RUN/bundle"
BUNDLE_KEY="$KEYS/bundle-ed25519.pem"

host_json() { # NAME DIR: one host of env.json
  local n=$1 d=$2 ip fp pub
  ip=$(host_ip "$n")
  pub=$(cat "$d/host_ed25519.pub")
  fp=$(ssh-keygen -lf "$d/host_ed25519.pub" | awk '{print $2}')
  jq -cn --arg name "$n" --arg ip "$ip" --arg rk "$SSH_DIR/root_ed25519" --arg rp "$(cat "$d/root_password")" \
    --arg ok "$SSH_DIR/ops_ed25519" --arg op "$(cat "$d/ops_password")" --arg fp "$fp" --arg pub "$pub" \
    --arg container "$n" \
    '{name: $name, ip: $ip, port: 22, container: $container,
      root: {user: "root", privateKeyPath: $rk, publicKeyPath: ($rk + ".pub"), password: $rp},
      nonRoot: {user: "ops", privateKeyPath: $ok, publicKeyPath: ($ok + ".pub"), password: $op, sudo: "passwordless (sudo -n)"},
      hostKey: {type: "ssh-ed25519", fingerprint: $fp, publicKey: $pub,
               knownHostsLine: ($ip + " " + $pub)}}'
}

write_env_json() {
  local hosts="[]" n systemd_host
  for n in $(host_names); do
    hosts=$(jq -c --argjson h "$(host_json "$n" "$HOSTS_DIR/$n")" '. + [$h]' <<<"$hosts")
  done
  systemd_host=$(host_json "$SYSTEMD_HOST" "$SYSTEMD_HOST_DIR")
  local token=""; [ -s "$K8S_PKI/tokens.csv" ] && token=$(cut -d, -f1 "$K8S_PKI/tokens.csv" | head -1)
  mkdir -p "$RUN"
  jq -n --arg generatedAt "$(date -u +%FT%TZ)" --argjson hosts "$hosts" --argjson systemdHost "$systemd_host" \
    --arg api "https://127.0.0.1:16443" --arg pki "$K8S_PKI" --arg data "$K8S_DATA" --arg token "$token" \
    --arg k8sv "$K8S_VERSION" --arg kbin "$(k8s_bin)" \
    --arg bundle "$BUNDLE_DIR" --arg bkey "$BUNDLE_KEY" \
    --arg bbtar "$BUSYBOX_TAR" --arg bbtag "$BUSYBOX_TAG" --arg thtag "$(testhost_tag)" --arg k8simg "$(k8s_images_dir)" \
    --arg net "$NET_NAME" --arg subnet "$NET_SUBNET" --arg gw "$NET_GATEWAY" \
    --arg kwok "$(kwok_bin)/kwok" --arg crictl "$(crictl_bin)/crictl" --arg cni "$(cni_dir)" --arg compose "$(compose_bin)/docker-compose" \
    --arg logs "$LOGS" --arg cniv "$CNI_PLUGINS_VERSION" --argjson nfake "${OPSPILOT_FAKE_NODES:-3}" \
    '{schemaVersion: 1, generatedAt: $generatedAt,
      k8s: {version: $k8sv, apiserverUrl: $api,
            caFile: ($pki + "/ca.crt"),
            adminKubeconfig: ($data + "/admin.kubeconfig"),
            adminClientCert: ($pki + "/admin.crt"), adminClientKey: ($pki + "/admin.key"),
            limitedKubeconfig: ($data + "/limited.kubeconfig"),
            limitedUser: "limited", limitedToken: $token,
            limitedPermissions: "get,list namespaces only",
            pkiDir: $pki, dataDir: $data,
            etcdUrl: "http://127.0.0.1:12379",
            fakeNodes: [range(1; $nfake + 1) | "kwok-node-\(.)"]},
      network: {name: $net, subnet: $subnet, gateway: $gw},
      hosts: $hosts,
      systemdHost: $systemdHost,
      bundle: {dir: $bundle, publicKeyPath: ($bundle + "/checksums/public.key"),
               privateKeyPath: $bkey, indexPath: ($bundle + "/manifests/index.yaml")},
      images: {busyboxTar: $bbtar, busyboxImage: $bbtag, busyboxHttpdPort: 8080, testhostImage: $thtag,
               k8sImagesDir: $k8simg},
      binaries: {kubernetesDir: $kbin, kubectl: ($kbin + "/kubectl"), kwok: $kwok, crictl: $crictl,
                 cniPluginsDir: $cni, cniPluginsTgz: ($cni + "/cni-plugins-linux-amd64-" + $cniv + ".tgz"),
                 dockerCompose: $compose},
      logsDir: $logs}' >"$ENV_JSON.tmp"
  chmod 0600 "$ENV_JSON.tmp"; mv "$ENV_JSON.tmp" "$ENV_JSON"
}
