#!/bin/bash
# Runs first on every node: trusts the cloud's CA (OPENSTACK_CA), gives the
# shells and the container runtimes the cluster template's proxy, and points
# the runtimes at the cluster's registry (insecure_registry_url,
# registry_enabled). The fragments after it download through the proxy and
# call the cloud with its CA. The runtimes are those the driver's lib.sh
# names (container_runtimes).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib-common.sh
. "${MAGNUM_ROOT:-}/var/lib/magnum/lib.sh"

install_openstack_ca
read -r -a runtimes <<<"$(container_runtimes)"
configure_proxy "${runtimes[@]}"
for runtime in "${runtimes[@]}"; do
    case "$runtime" in
    docker) configure_docker_registry ;;
    containerd) configure_containerd_registry ;;
    *)
        log "unknown container runtime $runtime"
        exit 1
        ;;
    esac
done
# A runtime the image already started takes the new settings now; the
# driver's fragments start the others, and restart upstart's Docker.
if has_systemd; then
    systemctl daemon-reload
    for runtime in "${runtimes[@]}"; do
        systemctl try-restart "$runtime.service"
    done
fi
log "host ready (runtimes: ${runtimes[*]})"
