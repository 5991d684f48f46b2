#!/bin/bash
# Builds the sandbox's root filesystem with debootstrap from Debian's
# packages (bookworm, minbase plus what the node scripts call), once: the
# root is cached under target/sandbox-root with a stamp holding the hash of
# this script's package list, suite and mirror, so a later run with the same
# list reuses it and a changed list rebuilds it.
#
#   tests/sandbox/build-root.sh [ROOT]      (default: <repo>/target/sandbox-root)
#
# Prints the root's path on the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
root=${1:-${SANDBOX_ROOT:-$repo/target/sandbox-root}}
suite=${SANDBOX_SUITE:-bookworm}
mirror=${SANDBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What the node scripts call that Debian ships (minbase has bash, coreutils,
# sed, grep, tar, gzip, mawk, hostname, util-linux):
# - curl, ca-certificates, openssl: downloads, the magnum API, Heat's signal,
#   key and CSR generation, and update-ca-certificates for the cloud's CA;
# - python3: JSON (pem_field, json_merge), ipaddress, and the Python
#   stand-ins (tests/sandbox/stand-ins);
# - etcd-server, etcd-client: the real etcd the mirror serves as the etcd
#   release tarball (tests/sandbox/mirror.py);
# - containerd, runc: the real runtime the mirror serves as containerd's
#   release tarball and runc's binary; moved out of PATH to MIRROR_BIN so the
#   node downloads them as a Fedora Atomic node without them does;
# - docker.io: the real Docker engine (dockerd, the docker CLI) a swarm node
#   runs; its containerd and runc are the ones above, linked from
#   /usr/libexec/docker, where the image's docker.service finds them
#   (stand-ins/image), as Fedora's docker package brings its own;
# - iproute2 (ip), procps (ps, pkill), kmod (modprobe), iptables, e2fsprogs
#   (blkid, mkfs), file, gawk: commands the fragments or their helpers run.
packages=(
    ca-certificates curl openssl python3 iproute2 procps kmod
    iptables e2fsprogs util-linux etcd-server etcd-client gawk file containerd runc docker.io
)

# Bumped whenever what this script does after debootstrap changes.
layout=4
stamp_of() {
    printf '%s\n' "$layout" "$suite" "$mirror" "${packages[@]}" | sha256sum | awk '{print $1}'
}
want=$(stamp_of)
# One build at a time (another test binary may ask at once).
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9
if [ -f "$root/.sandbox-stamp" ] && [ "$(cat "$root/.sandbox-stamp")" = "$want" ]; then
    echo "sandbox root cached at $root (stamp $want)" >&2
    echo "$root"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # A fresh CI machine: Debian's debootstrap, from Debian's registry.
    echo "installing debootstrap" >&2
    apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "debootstrap is not installed (apt-get install debootstrap)" >&2
    exit 2
fi

start=$(date +%s)
work="$root.building.$$"
rm -rf "$work"
mkdir -p "$(dirname "$root")"
trap 'rm -rf "$work"' EXIT
include=$(IFS=,; echo "${packages[*]}")
echo "building the sandbox root in $work ($suite, minbase + $include)" >&2
debootstrap --variant=minbase --include="$include" "$suite" "$work" "$mirror" \
    >"$work.log" 2>&1 || {
    tail -n 30 "$work.log" >&2
    exit 1
}
# The binaries the mirror serves but the image must not have (see above).
mkdir -p "$work/opt/sandbox-mirror-bin"
for bin in containerd containerd-shim-runc-v2 ctr runc; do
    real=$(readlink -f "$work/usr/bin/$bin")
    mv "$real" "$work/opt/sandbox-mirror-bin/$bin"
    rm -f "$work/usr/bin/$bin"
done
# Docker's own (the PATH of stand-ins/image's docker.service).
mkdir -p "$work/usr/libexec/docker"
for bin in containerd containerd-shim-runc-v2 runc; do
    ln -s "/opt/sandbox-mirror-bin/$bin" "$work/usr/libexec/docker/$bin"
done
# Nor their configuration: install-cri.sh writes containerd's own default.
rm -rf "$work"/usr/lib/systemd/system/containerd.service "$work"/etc/containerd
# Package caches and docs are not needed in every copy of the root.
rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/usr/share/doc/* "$work"/usr/share/man/*
echo "$want" >"$work/.sandbox-stamp"
rm -rf "$root"
mv "$work" "$root"
rm -f "$work.log"
trap - EXIT
echo "sandbox root built in $(($(date +%s) - start))s at $root" >&2
echo "$root"
