#!/bin/bash
# Joins this node to the cluster. Standalone Swarm (SWARM_MODE false): the
# managers run the swarm manager on SWARM_PORT with SWARM_STRATEGY, every
# node runs the swarm agent; both find each other in the managers' etcd.
# Swarm mode: the first manager (NODE_INDEX 0) initialises the swarm; the
# others join with the token the primary's Docker API hands out.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. /var/lib/magnum/lib.sh

ip=$(node_ip)
tls_args=()
if tls_enabled; then
    tls_args=(--cacert "$CERT_DIR/ca.pem" --cert "$CERT_DIR/cert.pem" --key "$CERT_DIR/key.pem")
fi

# The Swarm image, from container_infra_prefix when the cluster has one.
# shellcheck disable=SC2153  # from heat-params
swarm_image=$SWARM_IMAGE
if [ -n "${CONTAINER_INFRA_PREFIX:-}" ]; then
    swarm_image=$(image "" swarm)
fi

standalone_swarm() {
    local etcd_host=$SWARM_API_IP discovery
    local -a swarm_tls=() kv_tls=()
    if [ "$ROLE" = manager ]; then
        etcd_host=$ip
    fi
    discovery="etcd://$etcd_host:2379/swarm"
    if tls_enabled; then
        swarm_tls=(--tlsverify --tlscacert=/certs/ca.pem --tlscert=/certs/cert.pem --tlskey=/certs/key.pem)
        kv_tls=(--discovery-opt kv.cacertfile=/certs/ca.pem --discovery-opt kv.certfile=/certs/cert.pem
            --discovery-opt kv.keyfile=/certs/key.pem)
    fi
    docker rm -f swarm-agent swarm-manager >/dev/null 2>&1 || true
    docker run -d --name swarm-agent --restart=always --net=host -v "$CERT_DIR:/certs:ro" \
        "$swarm_image:$SWARM_VERSION" join --addr="$ip:$DOCKER_PORT" "${kv_tls[@]}" "$discovery"
    if [ "$ROLE" = manager ]; then
        docker run -d --name swarm-manager --restart=always --net=host -v "$CERT_DIR:/certs:ro" \
            "$swarm_image:$SWARM_VERSION" manage --host="tcp://0.0.0.0:$SWARM_PORT" \
            --strategy="$SWARM_STRATEGY" --replication --advertise="$ip:$SWARM_PORT" \
            "${swarm_tls[@]}" "${kv_tls[@]}" "$discovery"
    fi
    log "standalone Swarm $SWARM_VERSION ($ROLE) via $discovery"
}

# The join token for ROLE_NAME (Worker or Manager) from the primary manager,
# retried until the primary's swarm exists (about five minutes): a loop,
# since curl's --retry-all-errors (7.71) is newer than the images' curl.
join_token() {
    local scheme=http swarm attempt
    if tls_enabled; then
        scheme=https
    fi
    for attempt in $(seq 1 60); do
        if swarm=$(curl -fsS --max-time 10 "${tls_args[@]}" "$scheme://$SWARM_API_IP:$DOCKER_PORT/swarm" 2>/dev/null); then
            python3 -c 'import json, sys; print(json.load(sys.stdin)["JoinTokens"][sys.argv[1]])' "$1" <<<"$swarm"
            return 0
        fi
        log "waiting for the swarm of $SWARM_API_IP ($attempt)"
        sleep 5
    done
    log "the primary manager $SWARM_API_IP never had a swarm"
    return 1
}

swarm_mode() {
    if docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active; then
        log "already in the swarm"
        return 0
    fi
    if [ "$ROLE" = manager ] && [ "$NODE_INDEX" = 0 ]; then
        # Its answer names the worker join token, a secret: not for the
        # node's console (which Nova's console log shows).
        docker swarm init --advertise-addr "$ip" >/dev/null
        log "swarm initialised on $ip"
        return 0
    fi
    if [ -z "$SWARM_API_IP" ]; then
        log "no primary manager address to join"
        exit 1
    fi
    local kind=Worker
    if [ "$ROLE" = manager ]; then
        kind=Manager
    fi
    # The token is a secret: it goes through a variable, never the log.
    local token
    token=$(join_token "$kind")
    docker swarm join --advertise-addr "$ip" --token "$token" "$SWARM_API_IP:2377"
    log "joined the swarm of $SWARM_API_IP as a ${kind,,}"
}

if is_true "$SWARM_MODE"; then
    swarm_mode
else
    standalone_swarm
fi
