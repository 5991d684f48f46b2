#!/usr/bin/env bash
# Stop what start.sh started for $CLOUD_STATE, by PID file only: the three
# gunicorns (glance, nova, neutron), then its own Keystone if it started one
# (a Keystone named by CLOUD_KEYSTONE_ENV keeps running; the image/compute/
# network services this run registered there are deleted from its catalog);
# then drop this run's databases and RabbitMQ vhost. Safe to run repeatedly;
# keeps the state directory (logs) unless --clean.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
RUN=$CLOUD_STATE/run
export PYTHONWARNINGS=ignore

stop_pid() { # name pidfile timeout_s
    local name=$1 file=$2 limit=$3 pid
    cloud_pid_alive "$file" || { rm -f "$file"; return 0; }
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 $((limit * 4))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
        cloud_log "$name ($pid) still alive after $limit s: SIGKILL"
        for child in $(pgrep -P "$pid"); do kill -KILL "$child" 2>/dev/null; done
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$file"
    cloud_log "$name stopped"
}

for s in $CLOUD_ALL; do
    stop_pid "$s" "$RUN/$s.pid" 15 &
done
wait

if [ -s "$RUN/own-keystone" ]; then
    KEYSTONE_STATE=$(cat "$RUN/own-keystone") "$CLOUD_REPO/tests/keystone/stop.sh"
    rm -f "$RUN/own-keystone" "$RUN/services"
elif [ -s "$RUN/services" ] && [ -s "$RUN/keystone.env" ]; then
    # A shared Keystone: take this run's catalog entries back out (its
    # endpoints would point at ports nobody serves any more).
    if (
        set -a
        # shellcheck disable=SC1091
        . "$RUN/keystone.env"
        set +a
        export KS_ADMIN_PASSWORD=$KEYSTONE_ADMIN_PASSWORD
        # shellcheck disable=SC2046  # one id a line
        timeout 60 "$CLOUD_VENV/bin/python" "$CLOUD_HARNESS/cloudctl.py" unregister \
            "$KEYSTONE_URL" $(cat "$RUN/services")
    ); then
        rm -f "$RUN/services"
        cloud_log "services unregistered from the shared Keystone"
    else
        cloud_log "could not unregister the services from the shared Keystone"
    fi
fi

if [ -s "$RUN/databases" ]; then
    # shellcheck disable=SC2046  # a list of names
    if timeout 60 "$CLOUD_VENV/bin/python" "$CLOUD_HARNESS/cloudctl.py" dropdb $(cat "$RUN/databases"); then
        rm -f "$RUN/databases"
        cloud_log "databases dropped"
    else
        cloud_log "could not drop databases $(cat "$RUN/databases")"
    fi
fi
if [ -s "$RUN/vhost" ]; then
    vhost=$(cat "$RUN/vhost")
    if timeout 60 rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1; then
        cloud_log "vhost $vhost deleted"
    else
        cloud_log "could not delete vhost $vhost"
    fi
    rm -f "$RUN/vhost"
fi
[ "${1:-}" = --clean ] && rm -rf "$CLOUD_STATE"
exit 0
