#!/bin/bash
# Puts the container runtime's state (DOCKER_VOLUME_ID: /var/lib/docker, or
# /var/lib/containerd under CONTAINER_RUNTIME=containerd) and, on k8s masters,
# etcd's data (ETCD_VOLUME_ID) on their Cinder volumes when the cluster has
# them (the environment maps Magnum::Optional::Cinder::Volume): waits for the attached disk (virtio names it by the volume id's
# first 20 characters), makes an XFS file system on a blank one and mounts
# it for good. Runs before the services that use the directories.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib-common.sh
. /var/lib/magnum/lib.sh

# Mounts volume ID at DIR, formatting it first when it holds no file system.
mount_volume() {
    local id=$1 dir=$2 device="" attempt
    for attempt in $(seq 1 60); do
        device=$(readlink -f "/dev/disk/by-id/virtio-${id:0:20}" || true)
        if [ -b "$device" ]; then
            break
        fi
        log "waiting for volume $id ($attempt)"
        sleep 5
    done
    if [ ! -b "$device" ]; then
        log "volume $id never appeared"
        return 1
    fi
    if ! blkid "$device" >/dev/null 2>&1; then
        mkfs.xfs -q "$device"
    fi
    mkdir -p "$dir"
    if ! grep -q " $dir " /etc/fstab; then
        echo "UUID=$(blkid -s UUID -o value "$device") $dir xfs defaults 0 2" >>/etc/fstab
    fi
    mountpoint -q "$dir" || mount "$dir"
    log "volume $id mounted at $dir"
}

if [ -n "${DOCKER_VOLUME_ID:-}" ]; then
    case "${CONTAINER_RUNTIME:-docker}" in
    containerd) mount_volume "$DOCKER_VOLUME_ID" /var/lib/containerd ;;
    *) mount_volume "$DOCKER_VOLUME_ID" /var/lib/docker ;;
    esac
fi
if [ "${ROLE:-}" = master ] && [ -n "${ETCD_VOLUME_ID:-}" ]; then
    mount_volume "$ETCD_VOLUME_ID" /var/lib/etcd
fi
