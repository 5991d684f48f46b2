#!/bin/bash
# Fetches the cluster's CAs and has this node's certificates signed by the
# magnum API with the cluster credential. Masters get the API server, etcd,
# front-proxy and control-plane client certificates; every node gets its
# kubelet and kube-proxy client certificates. Nothing to do without TLS.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. /var/lib/magnum/lib.sh

if ! tls_enabled; then
    log "TLS is disabled: no certificates"
    exit 0
fi

install -d -m 0700 "$CERT_DIR"
umask 077
ip=$(node_ip)
name=$(node_name)

fetch_ca kubernetes "$CERT_DIR/ca.crt"
sign_cert kubelet "system:node:$name" system:nodes kubernetes "DNS:$name,IP:$ip"
sign_cert kube-proxy system:kube-proxy "" kubernetes ""

if [ "$ROLE" = master ]; then
    fetch_ca etcd "$CERT_DIR/etcd-ca.crt"
    fetch_ca front_proxy "$CERT_DIR/front-proxy-ca.crt"
    # The first service address is the in-cluster "kubernetes" service.
    service_ip=$(python3 -c 'import ipaddress, sys; print(ipaddress.ip_network(sys.argv[1])[1])' "$PORTAL_NETWORK_CIDR")
    api_sans="DNS:$name,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
    api_sans="$api_sans,DNS:kubernetes.default.svc.$DNS_CLUSTER_DOMAIN,DNS:localhost"
    api_sans="$api_sans,IP:$ip,IP:$service_ip,IP:127.0.0.1"
    # Clients reach the API at the master's floating IP or through the load
    # balancer's VIP and floating IP, when the cluster has them.
    for address in "$KUBE_API_PUBLIC_ADDRESS" "$KUBE_API_LB_ADDRESS" "$KUBE_API_LB_FLOATING_ADDRESS"; do
        if [ -n "$address" ]; then
            api_sans="$api_sans,IP:$address"
        fi
    done
    sign_cert apiserver kube-apiserver "" kubernetes "$api_sans"
    sign_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters kubernetes ""
    sign_cert admin admin system:masters kubernetes ""
    sign_cert controller-manager system:kube-controller-manager "" kubernetes ""
    sign_cert scheduler system:kube-scheduler "" kubernetes ""
    sign_cert etcd "$name" "" etcd "DNS:$name,DNS:localhost,IP:$ip,IP:127.0.0.1"
    sign_cert front-proxy-client front-proxy-client "" front_proxy ""
fi
log "certificates ready (CA rotation ${CA_ROTATION_ID:-none})"
