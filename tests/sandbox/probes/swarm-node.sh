#!/bin/bash
# run-node --probe for a swarm-mode node of a cluster of N nodes (the first
# argument), run once the user data has ended while its services still run.
# Waits (within run-node's --probe-timeout) until the swarm lists all N
# nodes Ready, asked as the node itself can: a manager its own engine
# (`docker node ls`), a worker the first manager's TLS API (GET /nodes with
# its own certificate). Then records what the engine answers, in
# /var/log/sandbox/probe/ (the node's upper/ layer), each command's exit
# status in probe.log. Each node then stays 10 s more, so that the others
# see the swarm whole too.
expected=${1:-1}
out=/var/log/sandbox/probe
certs=/etc/docker/certs
tls=(--cacert "$certs/ca.pem" --cert "$certs/cert.pem" --key "$certs/key.pem")
mkdir -p "$out"
# shellcheck source=/dev/null
. /etc/sysconfig/heat-params

is_manager() {
    [ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ]
}

# The swarm's nodes as "HOSTNAME MANAGER-STATUS STATUS" lines ("-" for a
# worker), sorted.
nodes() {
    if is_manager; then
        docker node ls --format '{{.Hostname}}|{{.ManagerStatus}}|{{.Status}}' 2>>"$out/nodes.err" |
            awk -F'|' '{ print $1, ($2 == "" ? "-" : $2), $3 }' | sort
    else
        curl -fsS --max-time 5 "${tls[@]}" "https://$SWARM_API_IP:2375/nodes" 2>>"$out/nodes.err" |
            python3 -c '
import json, sys
for n in json.load(sys.stdin):
    m = n.get("ManagerStatus") or {}
    status = "Leader" if m.get("Leader") else {"reachable": "Reachable", "unreachable": "Unreachable"}.get(m.get("Reachability"), "-")
    print(n["Description"]["Hostname"], status, n["Status"]["State"].capitalize())
' | sort
    fi
}

ready=0
for attempt in $(seq 1 600); do
    nodes >"$out/nodes.txt"
    ready=$(grep -c ' Ready$' "$out/nodes.txt")
    [ "$ready" -ge "$expected" ] && break
    sleep 0.5
done
echo "nodes ready: $ready of $expected after $attempt looks"
docker info --format '{{json .}}' >"$out/info.json" 2>"$out/info.err"
echo "docker info: $?"
if is_manager; then
    # What a joining node asks (configure-swarm.sh's join_token): the
    # engine's TLS API at the address the swarm advertises, with a
    # certificate magnumd signed.
    address=$(docker info --format '{{.Swarm.NodeAddr}}' 2>/dev/null)
    curl -fsS --max-time 10 "${tls[@]}" "https://$address:2375/swarm" >"$out/swarm.json" 2>"$out/swarm.err"
    echo "GET /swarm over TLS: $?"
fi
# Every node stays up a while longer, so that the others see the swarm
# whole too (a manager leaving takes the quorum of two with it).
if [ "$expected" -gt 1 ]; then
    sleep 10
fi
