# Shared settings of the Heat test harness. Source it; do not run it.
# Keystone comes from the Keystone harness (tests/keystone, its own venv);
# this harness adds Heat (heat-api + heat-engine) in target/heat-venv, with
# a fresh database on the loopback PostgreSQL and a fresh RabbitMQ vhost per
# run. Everything listens on 127.0.0.1 only. Test-only credentials.
HEAT_HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HEAT_REPO=$(cd "$HEAT_HARNESS/../.." && pwd)
export HEAT_VENV=${HEAT_VENV:-$HEAT_REPO/target/heat-venv}
# One Heat (and its Keystone) per state directory: a test passes its own.
export HEAT_STATE=${HEAT_STATE:-$HEAT_REPO/target/heat-run}

# Services this harness uses but does not start (already running on the
# machine): PostgreSQL with trust auth for $HEAT_PG_USER, and a RabbitMQ
# broker whose rabbitmqctl works for this user (for the private vhost).
export HEAT_PG_HOST=${HEAT_PG_HOST:-127.0.0.1}
export HEAT_PG_PORT=${HEAT_PG_PORT:-5432}
export HEAT_PG_USER=${HEAT_PG_USER:-postgres}
export HEAT_RABBIT_HOST=${HEAT_RABBIT_HOST:-127.0.0.1}
export HEAT_RABBIT_PORT=${HEAT_RABBIT_PORT:-5672}
export HEAT_RABBIT_USER=${HEAT_RABBIT_USER:-guest}
export HEAT_RABBIT_PASSWORD=${HEAT_RABBIT_PASSWORD:-guest}

export HS_HEAT_PASSWORD=${HS_HEAT_PASSWORD:-heat-secret}
export HS_DOMAIN_ADMIN_PASSWORD=${HS_DOMAIN_ADMIN_PASSWORD:-heat-domain-secret}

# Bumped whenever install.sh changes what it installs.
HEAT_PACKAGES="openstack-heat==27.0.1 gunicorn==27.0.1 psycopg2-binary==2.9.13"

heat_log() { echo "[heat-harness $(date +%H:%M:%S)] $*" >&2; }
heat_pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
heat_stamp_want() {
    { echo "$HEAT_PACKAGES"; cat "$HEAT_HARNESS/constraints.txt"; } | sha256sum | cut -d' ' -f1
}
