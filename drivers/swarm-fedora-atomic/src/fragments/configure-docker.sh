#!/bin/bash
# Configures and (re)starts the Docker daemon: its API on DOCKER_PORT with
# TLS client verification by the cluster CA (plain TCP when TLS is off), the
# storage driver DOCKER_STORAGE_DRIVER, an insecure registry when given, and
# the flannel subnet as the bridge network when flannel runs.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. /var/lib/magnum/lib.sh

umask 022
install -d -m 0755 /etc/docker /etc/systemd/system/docker.service.d

options=$(printf '"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:%s"]' "$DOCKER_PORT")
if tls_enabled; then
    options=$(printf '%s,\n  "tls": true, "tlsverify": true,\n  "tlscacert": "%s", "tlscert": "%s", "tlskey": "%s"' \
        "$options" "$CERT_DIR/ca.pem" "$CERT_DIR/cert.pem" "$CERT_DIR/key.pem")
fi
if [ -n "$DOCKER_STORAGE_DRIVER" ]; then
    options=$(printf '%s,\n  "storage-driver": "%s"' "$options" "$DOCKER_STORAGE_DRIVER")
fi
if [ -n "$INSECURE_REGISTRY_URL" ]; then
    options=$(printf '%s,\n  "insecure-registries": ["%s"]' "$options" "$INSECURE_REGISTRY_URL")
fi
if [ -s /run/flannel/subnet.env ]; then
    # shellcheck source=/dev/null  # written by flanneld at run time
    . /run/flannel/subnet.env
    options=$(printf '%s,\n  "bip": "%s", "mtu": %s' "$options" "$FLANNEL_SUBNET" "$FLANNEL_MTU")
fi
printf '{\n  %s\n}\n' "$options" >/etc/docker/daemon.json

# daemon.json sets the hosts: the packaged unit's -H flags would clash.
cat >/etc/systemd/system/docker.service.d/magnum.conf <<'DROPIN'
[Service]
ExecStart=
ExecStart=/usr/bin/dockerd
DROPIN
systemctl daemon-reload
systemctl enable docker.service
systemctl restart docker.service
log "docker listens on $DOCKER_PORT (TLS: $(tls_enabled && echo on || echo off))"
