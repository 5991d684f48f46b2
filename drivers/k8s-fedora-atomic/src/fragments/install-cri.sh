#!/bin/bash
# Installs the CRI runtime kubelet talks to (upstream's install-cri.sh), as
# the container_runtime label picks it: containerd (CONTAINERD_VERSION, with
# runc) runs the pods itself; host-docker (the default, alias docker) keeps
# the host's Docker and puts cri-dockerd (CRI_DOCKERD_TAG) in front of it,
# since kubelet has no dockershim from Kubernetes 1.24 on. Both use the
# cgroup driver the cgroup_driver label names (CGROUP_DRIVER), as kubelet
# does (configure-node.sh): a runtime on another driver breaks every pod.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. /var/lib/magnum/lib.sh

umask 022

install_containerd() {
    if ! command -v containerd >/dev/null 2>&1; then
        install_tarball containerd \
            "$CONTAINERD_DOWNLOAD_URL/v$CONTAINERD_VERSION/containerd-$CONTAINERD_VERSION-linux-$(arch).tar.gz" \
            /usr/local bin/
    fi
    if ! command -v runc >/dev/null 2>&1; then
        # runc publishes one runc.sha256sum for every architecture.
        download runc "$RUNC_DOWNLOAD_URL/$RUNC_TAG/runc.$(arch)" "$BIN_DIR/runc" \
            "$RUNC_DOWNLOAD_URL/$RUNC_TAG/runc.sha256sum"
        chmod 0755 "$BIN_DIR/runc"
    fi
    install -d -m 0755 /etc/containerd
    if [ ! -s /etc/containerd/config.toml ]; then
        containerd config default >/etc/containerd/config.toml
    fi
    # The registry hosts configure-host.sh wrote (certs.d), and the pause
    # image from container_infra_prefix.
    sed -i 's|^\( *config_path = \)""|\1"/etc/containerd/certs.d"|' /etc/containerd/config.toml
    if [ -n "${CONTAINER_INFRA_PREFIX:-}" ]; then
        sed -i "s|^\( *sandbox_image = \).*|\1\"$(image registry.k8s.io/ pause:3.9)\"|" /etc/containerd/config.toml
    fi
    systemd_cgroup=false
    if [ "$CGROUP_DRIVER" = systemd ]; then
        systemd_cgroup=true
    fi
    sed -i -E "s/^([[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*).*/\1$systemd_cgroup/" \
        /etc/containerd/config.toml
    if ! grep -Eq "^[[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*$systemd_cgroup\$" /etc/containerd/config.toml; then
        log "/etc/containerd/config.toml has no runc SystemdCgroup option to set the $CGROUP_DRIVER cgroup driver"
        exit 1
    fi
    if [ ! -e /usr/lib/systemd/system/containerd.service ]; then
        install_unit containerd <<UNIT
[Unit]
Description=containerd container runtime
After=network-online.target local-fs.target
Wants=network-online.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=$(command -v containerd)
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNOFILE=infinity
TasksMax=infinity

[Install]
WantedBy=multi-user.target
UNIT
    fi
    systemctl enable containerd.service
    # A restart: a containerd already running read the old cgroup setting.
    systemctl restart containerd.service
    log "containerd $(containerd --version | awk '{print $3}') serves CRI ($CGROUP_DRIVER cgroups)"
}

# Docker on CGROUP_DRIVER. Fedora's docker.service names the driver on
# dockerd's command line: a copy with it replaced overrides the unit, as
# upstream's install-cri.sh does; elsewhere daemon.json's exec-opts says it.
docker_cgroup_driver() {
    local unit=/usr/lib/systemd/system/docker.service actual
    if grep -q 'native\.cgroupdriver=' "$unit" 2>/dev/null; then
        sed -E "s/(native\.cgroupdriver=)[a-z]+/\1$CGROUP_DRIVER/" "$unit" \
            >/etc/systemd/system/docker.service
    else
        install -d -m 0755 /etc/docker
        python3 - "$CGROUP_DRIVER" <<'PY'
import json, os, sys
path = "/etc/docker/daemon.json"
config = {}
if os.path.exists(path):
    with open(path) as f:
        config = json.load(f)
options = [o for o in config.get("exec-opts", []) if not o.startswith("native.cgroupdriver=")]
config["exec-opts"] = options + ["native.cgroupdriver=" + sys.argv[1]]
with open(path, "w") as f:
    json.dump(config, f, indent=2)
PY
    fi
    systemctl daemon-reload
    systemctl enable docker.service
    systemctl restart docker.service
    actual=$(docker info --format '{{.CgroupDriver}}')
    if [ "$actual" != "$CGROUP_DRIVER" ]; then
        log "docker runs with the $actual cgroup driver, not $CGROUP_DRIVER"
        exit 1
    fi
}

install_cri_dockerd() {
    if [ ! -x "$BIN_DIR/cri-dockerd" ]; then
        install_tarball cri_dockerd \
            "$CRI_DOCKERD_DOWNLOAD_URL/v$CRI_DOCKERD_TAG/cri-dockerd-$CRI_DOCKERD_TAG.$(arch).tgz" \
            "$BIN_DIR" --strip-components=1 cri-dockerd/cri-dockerd
    fi
    local pause=""
    if [ -n "${CONTAINER_INFRA_PREFIX:-}" ]; then
        pause="--pod-infra-container-image=$(image registry.k8s.io/ pause:3.9)"
    fi
    docker_cgroup_driver
    cat >/etc/systemd/system/cri-docker.socket <<'SOCKET'
[Unit]
Description=CRI Docker Socket for the API
PartOf=cri-docker.service

[Socket]
ListenStream=%t/cri-dockerd.sock
SocketMode=0660
SocketUser=root
SocketGroup=root

[Install]
WantedBy=sockets.target
SOCKET
    cat >/etc/systemd/system/cri-docker.service <<UNIT
[Unit]
Description=CRI interface for Docker (cri-dockerd)
After=network-online.target docker.service cri-docker.socket
Wants=network-online.target
Requires=docker.service cri-docker.socket

[Service]
ExecStart=$BIN_DIR/cri-dockerd --container-runtime-endpoint fd:// --network-plugin=cni \\
  --cni-bin-dir=/opt/cni/bin --cni-conf-dir=/etc/cni/net.d $pause
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable --now cri-docker.socket cri-docker.service
    log "cri-dockerd $CRI_DOCKERD_TAG serves CRI in front of Docker"
}

case "$CONTAINER_RUNTIME" in
containerd) install_containerd ;;
host-docker | docker) install_cri_dockerd ;;
*)
    log "unknown container runtime $CONTAINER_RUNTIME"
    exit 1
    ;;
esac
