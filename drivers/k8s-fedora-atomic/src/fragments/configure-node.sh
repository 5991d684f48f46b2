#!/bin/bash
# Runs kubelet and kube-proxy on every node, masters included (masters
# register with the control-plane taint). kubelet talks CRI to the runtime
# CONTAINER_RUNTIME names: containerd directly, docker through cri-dockerd.
# The *_options labels (KUBELET_OPTIONS, KUBEPROXY_OPTIONS) come last on the
# command lines, so that they override the driver's flags.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. /var/lib/magnum/lib.sh

umask 022
ip=$(node_ip)
name=$(node_name)
for component in kubelet kube-proxy; do
    install_kube_binary "$component"
done

if [ "$ROLE" = master ]; then
    server=$(api_url 127.0.0.1)
    taints="--register-with-taints=node-role.kubernetes.io/control-plane=:NoSchedule"
else
    server=$(api_url "$KUBE_MASTER_IP")
    # The nodegroup's node_taints (checked by the driver), at registration.
    taints="${NODE_TAINTS:+--register-with-taints=$NODE_TAINTS}"
fi
# The nodegroup's node_labels (keys the driver allowed kubelet to set).
labels="magnum.openstack.org/role=$ROLE,magnum.openstack.org/nodegroup=$NODEGROUP_NAME${NODE_LABELS:+,$NODE_LABELS}"

case "$CONTAINER_RUNTIME" in
containerd)
    runtime_service=containerd.service
    runtime_endpoint=unix:///run/containerd/containerd.sock
    ;;
*)
    runtime_service=cri-docker.socket
    runtime_endpoint=unix:///run/cri-dockerd.sock
    systemctl enable --now docker.service
    ;;
esac
systemctl enable --now "$runtime_service"

install -d -m 0755 /var/lib/kubelet /etc/cni/net.d /opt/cni/bin
write_kubeconfig "$KUBE_DIR/kubelet.kubeconfig" kubelet "$server"
write_kubeconfig "$KUBE_DIR/kube-proxy.kubeconfig" kube-proxy "$server"

if tls_enabled; then
    kubelet_auth=$(
        cat <<AUTH
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $CERT_DIR/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $CERT_DIR/kubelet.crt
tlsPrivateKeyFile: $CERT_DIR/kubelet.key
AUTH
    )
else
    kubelet_auth=$(
        cat <<AUTH
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
AUTH
    )
fi
cat >/var/lib/kubelet/config.yaml <<CONFIG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
clusterDNS:
  - $DNS_SERVICE_IP
clusterDomain: $DNS_CLUSTER_DOMAIN
# The runtime uses the same driver (install-cri.sh, label cgroup_driver).
cgroupDriver: $CGROUP_DRIVER
$kubelet_auth
CONFIG

install_unit kubelet <<UNIT
[Unit]
Description=Kubernetes kubelet
After=$runtime_service
Wants=$runtime_service

[Service]
ExecStart=$BIN_DIR/kubelet --config=/var/lib/kubelet/config.yaml \\
  --kubeconfig=$KUBE_DIR/kubelet.kubeconfig --hostname-override=$name --node-ip=$ip \\
  --container-runtime-endpoint=$runtime_endpoint --node-labels=$labels $taints \\
  $(kubelet_cloud_flags) $KUBELET_OPTIONS
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

install_unit kube-proxy <<UNIT
[Unit]
Description=Kubernetes network proxy
After=network-online.target

[Service]
ExecStart=$BIN_DIR/kube-proxy --kubeconfig=$KUBE_DIR/kube-proxy.kubeconfig \\
  --hostname-override=$name --cluster-cidr=$PODS_NETWORK_CIDR $KUBEPROXY_OPTIONS
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
log "kubelet and kube-proxy started ($name, $ip)"
