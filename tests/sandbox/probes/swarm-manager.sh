#!/bin/bash
# run-node --probe for a swarm-mode manager: what its Docker engine answers
# once the user data has ended (its services still run), in
# /var/log/sandbox/probe/ (the node's upper/ layer), each command's exit
# status in probe.log.
out=/var/log/sandbox/probe
mkdir -p "$out"
docker info --format '{{json .}}' >"$out/info.json" 2>"$out/info.err"
echo "docker info: $?"
docker node ls --format '{{.Hostname}} {{.ManagerStatus}} {{.Status}}' >"$out/nodes.txt" 2>&1
echo "docker node ls: $?"
# What a joining node asks (configure-swarm.sh's join_token): the engine's
# TLS API at the address the swarm advertises, with a certificate magnumd
# signed.
address=$(docker info --format '{{.Swarm.NodeAddr}}' 2>/dev/null)
certs=/etc/docker/certs
curl -fsS --max-time 10 --cacert "$certs/ca.pem" --cert "$certs/cert.pem" --key "$certs/key.pem" \
    "https://$address:2375/swarm" >"$out/swarm.json" 2>"$out/swarm.err"
echo "GET /swarm over TLS: $?"
