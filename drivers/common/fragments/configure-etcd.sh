#!/bin/bash
# Runs etcd where the driver wants it (its lib.sh's etcd_wanted: every k8s
# master, standalone Swarm's managers). Members find each other through the
# cluster's etcd discovery URL (DISCOVERY_URL), else form a static cluster of
# ETCD_MEMBERS (every member's address, when the template knows them); a
# single member without either starts alone. Clients and peers use TLS with the certificates the driver's
# lib.sh names (ETCD_CERT, ETCD_KEY, ETCD_CA) unless TLS is off.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib-common.sh
. "${MAGNUM_ROOT:-}/var/lib/magnum/lib.sh"

if ! etcd_wanted; then
    log "no etcd on this node"
    exit 0
fi

ip=$(node_ip)
name=$(node_name)
scheme=http
tls_flags=""
if tls_enabled; then
    scheme=https
    tls_flags="--cert-file=$ETCD_CERT --key-file=$ETCD_KEY"
    tls_flags="$tls_flags --trusted-ca-file=$ETCD_CA --client-cert-auth"
    tls_flags="$tls_flags --peer-cert-file=$ETCD_CERT --peer-key-file=$ETCD_KEY"
    tls_flags="$tls_flags --peer-trusted-ca-file=$ETCD_CA --peer-client-cert-auth"
fi
members=${ETCD_MEMBERS:-}
if [ -n "${DISCOVERY_URL:-}" ]; then
    membership="--discovery=$DISCOVERY_URL"
elif [ -n "$members" ]; then
    # A static cluster of every member's address, each named by it.
    name="etcd-${ip//./-}"
    initial=""
    for member in $members; do
        initial="${initial:+$initial,}etcd-${member//./-}=$scheme://$member:2380"
    done
    membership="--initial-cluster=$initial --initial-cluster-state=new"
else
    membership="--initial-cluster=$name=$scheme://$ip:2380 --initial-cluster-state=new"
fi

if [ ! -x "$BIN_DIR/etcd" ]; then
    tarball="etcd-$ETCD_TAG-linux-$(arch)"
    install_tarball etcd "$ETCD_DOWNLOAD_URL/$ETCD_TAG/$tarball.tar.gz" "$BIN_DIR" \
        --strip-components=1 "$tarball/etcd" "$tarball/etcdctl"
fi
# Standalone Swarm finds its members through etcd's v2 API (libkv), which
# etcd 3.4 and later serve only when asked to.
v2_flags=""
if etcd_v2_wanted; then
    v2_flags="--enable-v2=true"
fi
install -d -m 0700 "$MAGNUM_ROOT/var/lib/etcd"

install_unit etcd <<UNIT
[Unit]
Description=$ETCD_DESCRIPTION
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$BIN_DIR/etcd --name=$name --data-dir=/var/lib/etcd \\
  --listen-client-urls=$scheme://0.0.0.0:2379 --advertise-client-urls=$scheme://$ip:2379 \\
  --listen-peer-urls=$scheme://0.0.0.0:2380 --initial-advertise-peer-urls=$scheme://$ip:2380 \\
  $membership $tls_flags $v2_flags
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
log "etcd started ($scheme://$ip:2379)"
