#!/bin/bash
# The flannel network driver of standalone Swarm: the managers store the
# network (FLANNEL_NETWORK_CIDR, a /FLANNEL_NETWORK_SUBNETLEN per node,
# FLANNEL_BACKEND) in etcd; flanneld on every node leases its subnet, which
# Docker's bridge then uses. With the docker driver, or in swarm mode (its
# own overlay networks), there is nothing to do.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. /var/lib/magnum/lib.sh

if [ "$NETWORK_DRIVER" != flannel ] || is_true "$SWARM_MODE"; then
    log "network driver $NETWORK_DRIVER: no flannel"
    exit 0
fi

etcd_host=$SWARM_API_IP
if [ "$ROLE" = manager ]; then
    etcd_host=127.0.0.1
fi
endpoint=$(etcd_endpoint "$etcd_host")
prefix=/magnum/network
etcd_tls=()
flannel_tls=""
if tls_enabled; then
    etcd_tls=(--cacert="$CERT_DIR/ca.pem" --cert="$CERT_DIR/cert.pem" --key="$CERT_DIR/key.pem")
    flannel_tls="--etcd-cafile=$CERT_DIR/ca.pem --etcd-certfile=$CERT_DIR/cert.pem --etcd-keyfile=$CERT_DIR/key.pem"
fi

if [ "$ROLE" = manager ]; then
    config=$(printf '{"Network": "%s", "SubnetLen": %s, "Backend": {"Type": "%s"}}' \
        "$FLANNEL_NETWORK_CIDR" "$FLANNEL_NETWORK_SUBNETLEN" "$FLANNEL_BACKEND")
    for attempt in $(seq 1 60); do
        if "$BIN_DIR/etcdctl" --endpoints="$endpoint" "${etcd_tls[@]}" put "$prefix/config" "$config" >/dev/null 2>&1; then
            break
        fi
        log "waiting for etcd ($attempt)"
        sleep 5
    done
fi

install_binary flanneld "$FLANNEL_DOWNLOAD_URL/$FLANNEL_TAG/flanneld-$(arch)"

install_unit flanneld <<UNIT
[Unit]
Description=flannel overlay network
After=network-online.target etcd.service
Before=docker.service

[Service]
ExecStart=$BIN_DIR/flanneld --etcd-endpoints=$endpoint --etcd-prefix=$prefix $flannel_tls --ip-masq
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

for attempt in $(seq 1 60); do
    if [ -s /run/flannel/subnet.env ]; then
        break
    fi
    log "waiting for the flannel subnet ($attempt)"
    sleep 5
done
log "flannel: $FLANNEL_NETWORK_CIDR, /$FLANNEL_NETWORK_SUBNETLEN per node, $FLANNEL_BACKEND"
