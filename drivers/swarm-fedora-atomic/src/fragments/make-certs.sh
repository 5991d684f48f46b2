#!/bin/bash
# Fetches the cluster CA and has this node's certificate signed by the magnum
# API with the cluster credential. The one key pair serves the Docker API,
# etcd and Swarm, as server and as client. Nothing to do without TLS.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. /var/lib/magnum/lib.sh

if ! tls_enabled; then
    log "TLS is disabled: no certificates"
    exit 0
fi

umask 077
install -d -m 0700 "$CERT_DIR"
ip=$(node_ip)
name=$(node_name)
# Swarm clusters have one CA, which the API serves as its default type.
ca_type=kubernetes

magnum_api "$MAGNUM_URL/certificates/$CLUSTER_UUID?ca_cert_type=$ca_type" | pem_field >"$CERT_DIR/ca.pem"

conf=$(mktemp)
csr=$(mktemp)
sans="DNS:$name,DNS:localhost,IP:$ip,IP:127.0.0.1"
if [ -n "$SWARM_PUBLIC_ADDRESS" ]; then
    sans="$sans,IP:$SWARM_PUBLIC_ADDRESS"
fi
# Clients reach the managers' API through the load balancer, when there is
# one: its addresses must be in the managers' certificates too.
if [ "$ROLE" = manager ]; then
    for lb in "${SWARM_API_LB_ADDRESS:-}" "${SWARM_API_LB_FLOATING_ADDRESS:-}"; do
        if [ -n "$lb" ]; then
            sans="$sans,IP:$lb"
        fi
    done
fi
cat >"$conf" <<CONF
[req]
prompt = no
distinguished_name = dn
req_extensions = ext
[dn]
CN = $name
[ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $sans
CONF
if [ ! -s "$CERT_DIR/key.pem" ]; then
    openssl genrsa -out "$CERT_DIR/key.pem" 2048 2>/dev/null
fi
openssl req -new -key "$CERT_DIR/key.pem" -config "$conf" -out "$csr"
body=$(printf '{"cluster_uuid": "%s", "ca_cert_type": "%s", "csr": "%s"}' \
    "$CLUSTER_UUID" "$ca_type" "$(awk '{printf "%s\\n", $0}' "$csr")")
magnum_api -X POST --data-binary @- "$MAGNUM_URL/certificates" <<<"$body" |
    pem_field >"$CERT_DIR/cert.pem"
rm -f "$conf" "$csr"
log "certificate for $name signed by the cluster CA"
