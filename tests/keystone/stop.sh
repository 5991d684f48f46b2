#!/usr/bin/env bash
# Stop the Keystone started by start.sh for $KEYSTONE_STATE, by its PID file
# only. Safe to run repeatedly; keeps the state directory (logs) unless --clean.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

PIDFILE=$KEYSTONE_STATE/run/keystone.pid
if ks_pid_alive "$PIDFILE"; then
    pid=$(cat "$PIDFILE")
    kill -TERM "$pid" 2>/dev/null
    # gunicorn's master stops its workers on TERM; bounded wait, then KILL the
    # master and its own children.
    for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
        ks_log "keystone ($pid) still alive after 20 s: SIGKILL"
        for child in $(pgrep -P "$pid"); do kill -KILL "$child" 2>/dev/null; done
        kill -KILL "$pid" 2>/dev/null
    fi
    ks_log "keystone stopped"
fi
rm -f "$PIDFILE"
[ "${1:-}" = --clean ] && rm -rf "$KEYSTONE_STATE"
exit 0
