#!/bin/bash
# Helpers every driver's node fragments share (drivers/common/fragments). The
# user data writes this file, then the driver's own fragments/lib.sh, into
# /var/lib/magnum/lib.sh, which each fragment sources and never runs. Every
# value comes from /etc/sysconfig/heat-params, written by the user data.

# shellcheck source=/dev/null  # written at boot by the server's user data
. /etc/sysconfig/heat-params

# shellcheck disable=SC2034  # used by the fragments that source this file
BIN_DIR=/usr/local/bin

log() {
    echo "magnum[$(basename "$0")]: $*" >&2
}

# "True"/"true"/"1"/"yes" (Heat writes booleans as True/False).
is_true() {
    case "${1,,}" in
    true | 1 | yes) return 0 ;;
    *) return 1 ;;
    esac
}

# Whether the cluster uses TLS (a cluster without TLS_DISABLED does).
tls_enabled() {
    ! is_true "${TLS_DISABLED:-false}"
}

# The architecture as release artifacts name it.
arch() {
    case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    *) uname -m ;;
    esac
}

# This node's private address: the metadata service, else the first address.
node_ip() {
    local ip
    ip=$(curl -fsS --max-time 5 http://169.254.169.254/latest/meta-data/local-ipv4 || true)
    if [ -z "$ip" ]; then
        ip=$(hostname -I | awk '{print $1}')
    fi
    echo "$ip"
}

node_name() {
    hostname -s | tr '[:upper:]' '[:lower:]'
}

# Downloads URL to BIN_DIR/NAME unless it is already installed.
install_binary() {
    local name=$1 url=$2
    if [ -x "$BIN_DIR/$name" ]; then
        return 0
    fi
    log "downloading $name"
    curl -fsSL --retry 5 --retry-delay 5 -o "$BIN_DIR/$name.part" "$url"
    chmod 0755 "$BIN_DIR/$name.part"
    mv "$BIN_DIR/$name.part" "$BIN_DIR/$name"
}

# curl against the magnum API with the cluster credential. The token goes
# through a private header file: never on a command line (ps) nor in a log.
magnum_api() {
    local headers rc=0
    local -a tls=()
    headers=$(mktemp)
    printf 'X-Auth-Token: %s\nOpenStack-API-Version: container-infra latest\nContent-Type: application/json\nAccept: application/json\n' \
        "$CLUSTER_CREDENTIAL" >"$headers"
    if ! is_true "$VERIFY_CA"; then
        tls=(--insecure)
    fi
    curl -fsS --retry 10 --retry-delay 5 "${tls[@]}" -H "@$headers" "$@" || rc=$?
    rm -f "$headers"
    return "$rc"
}

# The "pem" member of the JSON document on stdin.
pem_field() {
    python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["pem"])'
}

# Installs and starts the systemd unit NAME from stdin.
install_unit() {
    local name=$1
    cat >"/etc/systemd/system/$name.service"
    systemctl daemon-reload
    systemctl enable --now "$name.service"
}

# Waits until URL answers (up to about ten minutes).
wait_for() {
    local url=$1
    shift
    local i
    for i in $(seq 1 120); do
        if curl -fsS --max-time 5 "$@" "$url" >/dev/null 2>&1; then
            return 0
        fi
        log "waiting for $url ($i)"
        sleep 5
    done
    log "$url did not come up"
    return 1
}
