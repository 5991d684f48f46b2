#!/usr/bin/env bash
# Smoke check of a running cloud harness: as the demo user, through the
# Keystone catalog, Glance lists fedora-atomic-latest with its os_distro, Nova
# lists the three flavors and demo's keypair, Neutron shows the external
# network `public` and its subnet (cloudctl.py check). Then the RSS of each
# service. Usage: smoke.sh [path/to/cloud.env] (default $CLOUD_STATE/cloud.env).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ENV_FILE=${1:-$CLOUD_STATE/cloud.env}
[ -s "$ENV_FILE" ] || { echo "no $ENV_FILE: run start.sh first" >&2; exit 1; }
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
export KS_REGION=$KEYSTONE_REGION PYTHONWARNINGS=ignore
timeout 120 "$CLOUD_VENV/bin/python" "$CLOUD_HARNESS/cloudctl.py" check "$KEYSTONE_URL"

rss_mib() { # pid: RSS of it and its children, MiB
    local total=0 p kb
    for p in "$1" $(pgrep -P "$1"); do
        kb=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$((total + ${kb:-0}))
    done
    echo $((total / 1024))
}
for s in $CLOUD_ALL; do
    f=$CLOUD_STATE/run/$s.pid
    cloud_pid_alive "$f" && echo "rss $s (process + children): $(rss_mib "$(cat "$f")") MiB"
done
if cloud_pid_alive "$KEYSTONE_PID_FILE"; then
    echo "rss keystone (gunicorn master + worker): $(rss_mib "$(cat "$KEYSTONE_PID_FILE")") MiB"
fi
