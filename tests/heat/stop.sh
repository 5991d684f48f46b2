#!/usr/bin/env bash
# Stop what start.sh started for $HEAT_STATE, by PID file only: heat-api,
# heat-engine, then Keystone (tests/keystone/stop.sh); then drop this run's
# database and RabbitMQ vhost. Safe to run repeatedly; keeps the state
# directory (logs) unless --clean.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
RUN=$HEAT_STATE/run

stop_pid() { # name pidfile timeout_s
    local name=$1 file=$2 limit=$3 pid
    heat_pid_alive "$file" || { rm -f "$file"; return 0; }
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 $((limit * 4))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
        heat_log "$name ($pid) still alive after $limit s: SIGKILL"
        for child in $(pgrep -P "$pid"); do kill -KILL "$child" 2>/dev/null; done
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$file"
    heat_log "$name stopped"
}

stop_pid heat-api "$RUN/heat-api.pid" 15
# The engine forks its worker: TERM to the parent stops both (graceful 5 s).
stop_pid heat-engine "$RUN/heat-engine.pid" 20
if [ -d "$HEAT_STATE/keystone" ]; then
    KEYSTONE_STATE=$HEAT_STATE/keystone "$HEAT_REPO/tests/keystone/stop.sh"
fi

if [ -s "$RUN/database" ]; then
    db=$(cat "$RUN/database")
    if PYTHONWARNINGS=ignore "$HEAT_VENV/bin/python" "$HEAT_HARNESS/heatctl.py" dropdb "$db"; then
        rm -f "$RUN/database"
    else
        heat_log "could not drop database $db"
    fi
fi
if [ -s "$RUN/vhost" ]; then
    vhost=$(cat "$RUN/vhost")
    rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || heat_log "could not delete vhost $vhost"
    rm -f "$RUN/vhost"
fi
[ "${1:-}" = --clean ] && rm -rf "$HEAT_STATE"
exit 0
