{#- kubeadm join configuration of a worker, rendered by OpsPilot into
    $OPS_WORKDIR/k8s/kubeadm.yaml. The CA hash pins the control plane
    OpsPilot's own CA signed, so a node never joins another cluster. #}
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "{{ control_plane_endpoint }}"
    token: "{{ bootstrap_token }}"
    caCertHashes: ["{{ ca_cert_hash }}"]
nodeRegistration:
  name: "{{ node_name }}"
  criSocket: "unix:///run/containerd/containerd.sock"
  imagePullPolicy: Never
