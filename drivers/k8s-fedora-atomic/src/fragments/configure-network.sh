#!/bin/bash
# The cluster's network driver (NETWORK_DRIVER). flannel: flanneld on every
# node takes the node's podCIDR (FLANNEL_NETWORK_SUBNETLEN wide, carved from
# FLANNEL_NETWORK_CIDR by the controller manager) and routes it with
# FLANNEL_BACKEND. calico: the masters apply Calico's manifest with the pool
# CALICO_IPV4POOL in IP-in-IP mode CALICO_IPV4POOL_IPIP.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. /var/lib/magnum/lib.sh

umask 022

configure_flannel() {
    local name
    name=$(node_name)
    install -d -m 0755 /opt/cni/bin /etc/cni/net.d /etc/kube-flannel
    if [ ! -x /opt/cni/bin/bridge ]; then
        install_tarball cni_plugins \
            "$CNI_DOWNLOAD_URL/$CNI_TAG/cni-plugins-linux-$(arch)-$CNI_TAG.tgz" /opt/cni/bin
    fi
    if [ ! -x /opt/cni/bin/flannel ]; then
        download flannel_cni "$FLANNEL_CNI_DOWNLOAD_URL/$FLANNEL_CNI_TAG/flannel-$(arch)" /opt/cni/bin/flannel
        chmod 0755 /opt/cni/bin/flannel
    fi
    install_binary flanneld "$FLANNEL_DOWNLOAD_URL/$FLANNEL_TAG/flanneld-$(arch)"

    cat >/etc/kube-flannel/net-conf.json <<JSON
{
  "Network": "$FLANNEL_NETWORK_CIDR",
  "SubnetLen": $FLANNEL_NETWORK_SUBNETLEN,
  "Backend": {
    "Type": "$FLANNEL_BACKEND"
  }
}
JSON
    cat >/etc/cni/net.d/10-flannel.conflist <<'JSON'
{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
    # flanneld reads and annotates its own node object with the kubelet's
    # credentials (the Node authorizer allows exactly that).
    install_unit flanneld <<UNIT
[Unit]
Description=flannel overlay network
After=kubelet.service

[Service]
Environment=NODE_NAME=$name
ExecStart=$BIN_DIR/flanneld --kube-subnet-mgr --kubeconfig-file=$KUBE_DIR/kubelet.kubeconfig \\
  --net-config-path=/etc/kube-flannel/net-conf.json --ip-masq
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
    log "flannel: $FLANNEL_NETWORK_CIDR, /$FLANNEL_NETWORK_SUBNETLEN per node, $FLANNEL_BACKEND"
}

configure_calico() {
    local ipip=$CALICO_IPV4POOL_IPIP manifest
    if [ "$ROLE" != master ]; then
        log "calico: the masters install it"
        return 0
    fi
    # Calico spells "no encapsulation" Never; Off is the older name.
    if [ "$ipip" = Off ]; then
        ipip=Never
    fi
    manifest=$(mktemp)
    download calico "$CALICO_DOWNLOAD_URL/$CALICO_TAG/manifests/calico.yaml" "$manifest"
    # Calico's images from container_infra_prefix when the cluster has one.
    if [ -n "${CONTAINER_INFRA_PREFIX:-}" ]; then
        sed -i "s|image: docker.io/calico/|image: $CONTAINER_INFRA_PREFIX|" "$manifest"
    fi
    sed -i \
        -e 's|# - name: CALICO_IPV4POOL_CIDR|- name: CALICO_IPV4POOL_CIDR|' \
        -e "s|#   value: \"192.168.0.0/16\"|  value: \"$CALICO_IPV4POOL\"|" \
        -e "/name: CALICO_IPV4POOL_IPIP/{n;s|value: .*|value: \"$ipip\"|}" \
        "$manifest"
    "$BIN_DIR/kubectl" --kubeconfig="$KUBE_DIR/admin.conf" apply -f "$manifest"
    rm -f "$manifest"
    log "calico: pool $CALICO_IPV4POOL, IP-in-IP $ipip"
}

case "$NETWORK_DRIVER" in
flannel) configure_flannel ;;
calico) configure_calico ;;
*)
    log "unknown network driver '$NETWORK_DRIVER' (flannel, calico)"
    exit 1
    ;;
esac
