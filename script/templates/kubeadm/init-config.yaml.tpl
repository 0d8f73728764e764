{#- kubeadm init configuration of the first control-plane node, rendered by
    OpsPilot (minijinja, strict undefined) into $OPS_WORKDIR/k8s/kubeadm.yaml.
    The PKI, the kubeconfigs and the bootstrap token are OpsPilot's: kubeadm
    finds them in /etc/kubernetes and generates none of its own. Images are the
    bundle's, loaded into containerd before init: nothing is ever pulled. #}
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: "{{ bootstrap_token }}"
    description: "OpsPilot bootstrap token for node joins"
    ttl: "24h0m0s"
    usages: [signing, authentication]
    groups: ["system:bootstrappers:kubeadm:default-node-token"]
localAPIEndpoint:
  advertiseAddress: "{{ node_ip }}"
  bindPort: {{ apiserver_port }}
nodeRegistration:
  name: "{{ node_name }}"
  criSocket: "unix:///run/containerd/containerd.sock"
  imagePullPolicy: Never
  taints: {% if schedule_on_control_plane %}[]{% else %}
    - key: node-role.kubernetes.io/control-plane
      effect: NoSchedule{% endif %}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: "{{ cluster_name }}"
kubernetesVersion: "{{ k8s_version }}"
controlPlaneEndpoint: "{{ control_plane_endpoint }}"
imageRepository: "{{ image_repository }}"
certificatesDir: /etc/kubernetes/pki
networking:
  podSubnet: "{{ pod_cidr }}"
  serviceSubnet: "{{ service_cidr }}"
  dnsDomain: "{{ dns_domain }}"
etcd:
  local:
    imageRepository: "{{ image_repository }}"
    imageTag: "{{ etcd_image_tag }}"
    dataDir: /var/lib/etcd
dns:
  disabled: {{ "false" if coredns else "true" }}
  imageRepository: "{{ image_repository }}"
proxy:
  disabled: false
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
# The bundle's images cannot be pulled again: kubelet's image garbage collection
# starts only at this disk usage (100 turns it off; kubelet's default is 85).
imageGCHighThresholdPercent: {{ image_gc_high_percent }}
imageGCLowThresholdPercent: {{ image_gc_high_percent - 5 }}
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: "{{ pod_cidr }}"
conntrack:
  # 0: leave nf_conntrack_max as the host has it (it cannot be written from a container)
  maxPerCore: 0
