#!/bin/bash
# Configures and (re)starts the image's Docker daemon, its packaged unit
# kept: its API on DOCKER_PORT with TLS client verification by the cluster
# CA (plain TCP when TLS is off), the storage driver DOCKER_STORAGE_DRIVER,
# and the flannel subnet as the bridge network when flannel runs. The proxy
# and the registry are configure-host.sh's. Settings go into
# /etc/docker/daemon.json, merged with what is there; a drop-in orders
# Docker after flannel.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "${MAGNUM_ROOT:-}/var/lib/magnum/lib.sh"

umask 022
daemon_json=$MAGNUM_ROOT/etc/docker/daemon.json
dropin_dir=$MAGNUM_ROOT/etc/systemd/system/docker.service.d
install -d -m 0755 "$dropin_dir"

tcp="tcp://0.0.0.0:$DOCKER_PORT"
settings='{'
if tls_enabled; then
    settings=$(printf '%s"tls": true, "tlsverify": true, "tlscacert": "%s", "tlscert": "%s", "tlskey": "%s", ' \
        "$settings" "$CERT_DIR/ca.pem" "$CERT_DIR/cert.pem" "$CERT_DIR/key.pem")
fi
# Fedora Atomic sets the storage driver through docker-storage-setup (its
# unit passes DOCKER_STORAGE_OPTIONS), as upstream's
# configure-docker-storage.sh does; other images through daemon.json.
if [ -n "$DOCKER_STORAGE_DRIVER" ]; then
    if [ -f "$MAGNUM_ROOT/etc/sysconfig/docker-storage-setup" ] && command -v docker-storage-setup >/dev/null 2>&1; then
        set_line "$MAGNUM_ROOT/etc/sysconfig/docker-storage-setup" STORAGE_DRIVER= \
            "STORAGE_DRIVER=$DOCKER_STORAGE_DRIVER"
        rm -f "$MAGNUM_ROOT/etc/sysconfig/docker-storage"
        docker-storage-setup
    else
        settings=$(printf '%s"storage-driver": "%s", ' "$settings" "$DOCKER_STORAGE_DRIVER")
    fi
fi
if [ -s /run/flannel/subnet.env ]; then
    # shellcheck source=/dev/null  # written by flanneld at run time
    . /run/flannel/subnet.env
    settings=$(printf '%s"bip": "%s", "mtu": %s, ' "$settings" "$FLANNEL_SUBNET" "$FLANNEL_MTU")
fi

# Where the listening addresses go depends on the packaged unit: Fedora
# Atomic's passes no -H (its ExecStart adds $OPTIONS from
# /etc/sysconfig/docker), so daemon.json takes them, unless those OPTIONS
# set -H, which then get the TCP address too (upstream's
# add-docker-daemon-options.sh). A unit that passes -H itself (docker-ce's
# "-H fd://") would clash with daemon.json's hosts: the drop-in repeats its
# ExecStart with the TCP address added.
sets_hosts() {
    [[ $1 =~ (^|[[:space:]\'\"])(-H|--host)[=[:space:]] ]]
}
sysconfig=$MAGNUM_ROOT/etc/sysconfig/docker
packaged=$(systemctl cat docker.service 2>/dev/null |
    sed -e ':a' -e '/\\$/N; s/\\\n//; ta' | sed -n 's/^ExecStart=\(..*\)$/\1/p' | tail -n 1)
options=$(sed -n 's/^OPTIONS=//p' "$sysconfig" 2>/dev/null || true)
{
    printf '[Unit]\nAfter=flanneld.service\n'
    if sets_hosts "$packaged"; then
        printf '\n[Service]\nExecStart=\nExecStart=%s -H %s\n' "$packaged" "$tcp"
    fi
} >"$dropin_dir/magnum.conf"
if sets_hosts "$packaged"; then
    :
elif sets_hosts "$options"; then
    if [[ $options != *"$tcp"* ]]; then
        # Inside OPTIONS' closing quote, when it has one.
        sed -i "/^OPTIONS=/ s|\(['\"]\?\)\$| -H $tcp\1|" "$sysconfig"
    fi
else
    settings=$(printf '%s"hosts": ["unix:///var/run/docker.sock", "%s"], ' "$settings" "$tcp")
fi
json_merge "$daemon_json" "${settings%, }}"
# Swarm mode refuses live-restore, which the image's options may set
# (upstream's add-docker-daemon-options.sh removes it too).
if is_true "$SWARM_MODE" && [ -f "$MAGNUM_ROOT/etc/sysconfig/docker" ]; then
    sed -i 's/ --live-restore//g' "$MAGNUM_ROOT/etc/sysconfig/docker"
fi

systemctl daemon-reload
systemctl enable docker.service
systemctl restart docker.service
log "docker listens on $DOCKER_PORT (TLS: $(tls_enabled && echo on || echo off))"
