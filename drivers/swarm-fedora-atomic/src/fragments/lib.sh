#!/bin/bash
# Helpers of the swarm_fedora_atomic_v1 node fragments, on top of
# drivers/common/fragments/lib-common.sh: the user data writes both into
# /var/lib/magnum/lib.sh, which each fragment sources and never runs.

CERT_DIR=/etc/docker/certs
# The Docker Engine API of every node; standalone Swarm's manager listens on
# SWARM_PORT (2376), swarm mode's API is the engine itself (2375).
# shellcheck disable=SC2034  # used by the fragments that source this file
DOCKER_PORT=2375
# etcd's certificates and unit (drivers/common/fragments/configure-etcd.sh).
# shellcheck disable=SC2034  # used by the fragments that source this file
ETCD_CERT=$CERT_DIR/cert.pem
# shellcheck disable=SC2034  # used by the fragments that source this file
ETCD_KEY=$CERT_DIR/key.pem
# shellcheck disable=SC2034  # used by the fragments that source this file
ETCD_CA=$CERT_DIR/ca.pem
# shellcheck disable=SC2034  # used by the fragments that source this file
ETCD_DESCRIPTION="etcd for Swarm discovery and flannel"

# Standalone Swarm's managers run etcd (its discovery backend and flannel's
# store); swarm mode keeps its own state.
etcd_wanted() {
    ! is_true "$SWARM_MODE"
}

# Standalone Swarm's discovery (etcd://, libkv) speaks etcd's v2 API.
etcd_v2_wanted() {
    ! is_true "$SWARM_MODE"
}

# Every node runs Docker (configure-host.sh gives it the proxy and the
# registry).
container_runtimes() {
    echo docker
}

# The etcd on the first manager, which standalone Swarm and flannel use.
etcd_endpoint() {
    if tls_enabled; then
        echo "https://$1:2379"
    else
        echo "http://$1:2379"
    fi
}

# The Docker Engine version this node runs (what swarm mode is), else the
# standalone Swarm version it was configured with, for its bootstrap signal.
coe_version() {
    local version
    version=$(docker version --format '{{.Server.Version}}' 2>/dev/null || true)
    echo "${version:-$SWARM_VERSION}"
}
