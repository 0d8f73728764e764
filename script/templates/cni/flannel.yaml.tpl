{#- Flannel (host-gw backend, kube subnet manager), rendered by OpsPilot
    (minijinja, strict undefined) and applied by install-k8s-controlplane.sh.
    The pod network goes through the standard CNI plugins of the bundle
    (bridge + host-local + portmap): a second container of the daemonset
    writes the node's CNI configuration from the subnet flanneld leased
    (/run/flannel/subnet.env). host-gw needs the nodes on one L2 segment and
    no kernel module; every image is the bundle's (never pulled). #}
apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
  labels:
    pod-security.kubernetes.io/enforce: privileged
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: flannel
  namespace: kube-flannel
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: opspilot:flannel
rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [get]
  - apiGroups: [""]
    resources: [nodes]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [nodes/status]
    verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: opspilot:flannel
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: opspilot:flannel
subjects:
  - kind: ServiceAccount
    name: flannel
    namespace: kube-flannel
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
data:
  net-conf.json: |
    {"Network": "{{ pod_cidr }}", "EnableNFTables": false, "Backend": {"Type": "host-gw"}}
  write-cni-conf.sh: |
    # waits for flanneld's lease, then writes the node's CNI configuration
    set -eu
    while [ ! -s /run/flannel/subnet.env ]; do sleep 1; done
    . /run/flannel/subnet.env
    # FLANNEL_SUBNET is the node's gateway address (10.244.1.1/24); host-local wants the network
    bits=${FLANNEL_SUBNET#*/}
    set -- $(echo "${FLANNEL_SUBNET%/*}" | tr . ' ')
    n=$(( ($1 << 24) | ($2 << 16) | ($3 << 8) | $4 ))
    n=$(( n & ((0xffffffff << (32 - bits)) & 0xffffffff) ))
    subnet="$(( (n >> 24) & 255 )).$(( (n >> 16) & 255 )).$(( (n >> 8) & 255 )).$(( n & 255 ))/$bits"
    conf='{"cniVersion":"1.0.0","name":"opspilot-pods","plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,"hairpinMode":true,"mtu":'"$FLANNEL_MTU"',"ipam":{"type":"host-local","ranges":[[{"subnet":"'"$subnet"'"}]],"routes":[{"dst":"0.0.0.0/0"}]}},{"type":"portmap","capabilities":{"portMappings":true}}]}'
    printf '%s\n' "$conf" > /etc/cni/net.d/.10-opspilot-pods.conflist.tmp
    mv -f /etc/cni/net.d/.10-opspilot-pods.conflist.tmp /etc/cni/net.d/10-opspilot-pods.conflist
    echo "CNI configuration written for $subnet"
    while true; do sleep 3600; done
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
  labels:
    app: flannel
spec:
  selector:
    matchLabels:
      app: flannel
  template:
    metadata:
      labels:
        app: flannel
    spec:
      hostNetwork: true
      priorityClassName: system-node-critical
      serviceAccountName: flannel
      tolerations:
        - operator: Exists
      containers:
        - name: kube-flannel
          image: "{{ image_repository }}/flannel:{{ flannel_image_tag }}"
          imagePullPolicy: Never
          command: ["/usr/local/bin/flanneld", "--ip-masq", "--kube-subnet-mgr"]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
            - name: POD_NAMESPACE
              valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
            - name: EVENT_QUEUE_DEPTH
              value: "5000"
          securityContext:
            privileged: false
            capabilities:
              add: [NET_ADMIN, NET_RAW]
          resources:
            requests: {cpu: 50m, memory: 50Mi}
          volumeMounts:
            - {name: run, mountPath: /run/flannel}
            - {name: flannel-cfg, mountPath: /etc/kube-flannel/}
            - {name: xtables-lock, mountPath: /run/xtables.lock}
        - name: write-cni-conf
          image: "{{ image_repository }}/flannel:{{ flannel_image_tag }}"
          imagePullPolicy: Never
          command: ["/bin/sh", "/etc/kube-flannel/write-cni-conf.sh"]
          volumeMounts:
            - {name: run, mountPath: /run/flannel}
            - {name: cni, mountPath: /etc/cni/net.d}
            - {name: flannel-cfg, mountPath: /etc/kube-flannel/}
      volumes:
        - {name: run, hostPath: {path: /run/flannel}}
        - {name: cni, hostPath: {path: /etc/cni/net.d}}
        - {name: flannel-cfg, configMap: {name: kube-flannel-cfg}}
        - {name: xtables-lock, hostPath: {path: /run/xtables.lock, type: FileOrCreate}}
