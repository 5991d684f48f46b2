#!/bin/bash
# run-node --probe for a standalone Swarm (coe=swarm) node of a cluster of N
# nodes (the first argument), run once the user data has ended while its
# services still run. Each node puts a mark in the manager's etcd (where
# the Swarm agents register: discovery etcd://$SWARM_API_IP:2379/swarm)
# over TLS with its own certificate, through etcd's JSON gateway, then
# waits (within --probe-timeout) until the marks of all N nodes are there,
# so that the manager's etcd serves while the others are asked. Then it
# records what the real engine runs: its containers, the Swarm containers'
# arguments and logs, `docker info`, the flannel subnet and Docker's bridge. Output in /var/log/sandbox/probe/ (the
# node's upper/ layer), each step's outcome in probe.log.
expected=${1:-1}
out=/var/log/sandbox/probe
certs=/etc/docker/certs
tls=(--cacert "$certs/ca.pem" --cert "$certs/cert.pem" --key "$certs/key.pem")
mkdir -p "$out"
# shellcheck source=/dev/null
. /etc/sysconfig/heat-params
etcd="https://$SWARM_API_IP:2379"
b64() { printf %s "$1" | base64 -w0; }

put=no
for attempt in $(seq 1 120); do
    if curl -fsS --max-time 5 "${tls[@]}" -X POST "$etcd/v3/kv/put" \
        -d "{\"key\": \"$(b64 "/sandbox-probe/$(hostname)")\", \"value\": \"$(b64 ready)\"}" \
        >/dev/null 2>>"$out/etcd.err"; then
        put=yes
        break
    fi
    sleep 0.5
done
echo "etcd put over TLS: $put after $attempt tries"
# '0' follows '/': the range of every key under /sandbox-probe/.
count=0
for attempt in $(seq 1 240); do
    count=$(curl -fsS --max-time 5 "${tls[@]}" -X POST "$etcd/v3/kv/range" \
        -d "{\"key\": \"$(b64 /sandbox-probe/)\", \"range_end\": \"$(b64 /sandbox-probe0)\", \"count_only\": true}" \
        2>>"$out/etcd.err" | python3 -c 'import json, sys; print(int(json.load(sys.stdin).get("count", 0)))' 2>/dev/null)
    [ "${count:-0}" -ge "$expected" ] && break
    sleep 0.5
done
echo "nodes marked: ${count:-0} of $expected"
docker ps -a --format '{{.Names}} {{.Image}} {{.State}}' 2>"$out/ps.err" | sort >"$out/containers.txt"
echo "docker ps: ${PIPESTATUS[0]}"
for name in swarm-agent swarm-manager; do
    if docker inspect --format '{{json .Args}}' "$name" >"$out/$name.args" 2>/dev/null; then
        docker logs "$name" >"$out/$name.log" 2>&1
    fi
done
docker info --format '{{json .}}' >"$out/info.json" 2>"$out/info.err"
echo "docker info: $?"
# With the flannel driver: the subnet flanneld leased, and Docker's bridge.
cp /run/flannel/subnet.env "$out/subnet.env" 2>/dev/null
docker network inspect bridge --format '{{json .IPAM.Config}}' >"$out/bridge.json" 2>&1
# The others may still be asking this node's etcd.
if [ "$expected" -gt 1 ]; then
    sleep 5
fi
