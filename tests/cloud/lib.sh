# shellcheck shell=bash disable=SC2034
# Shared settings of the cloud test harness (Glance, Nova API, Neutron).
# Source it; do not run it. Keystone comes from tests/keystone (its own venv),
# or is shared with another harness through CLOUD_KEYSTONE_ENV. Everything
# listens on 127.0.0.1 only. Test-only credentials.
CLOUD_HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLOUD_REPO=$(cd "$CLOUD_HARNESS/../.." && pwd)
export CLOUD_VENV=${CLOUD_VENV:-$CLOUD_REPO/target/cloud-venv}
# One set of services per state directory: a test passes its own.
export CLOUD_STATE=${CLOUD_STATE:-$CLOUD_REPO/target/cloud-run}

# Services this harness uses but does not start (already running on the
# machine): PostgreSQL with trust auth for $CLOUD_PG_USER, and a RabbitMQ
# broker whose rabbitmqctl works for this user (for the private vhost).
export CLOUD_PG_HOST=${CLOUD_PG_HOST:-127.0.0.1}
export CLOUD_PG_PORT=${CLOUD_PG_PORT:-5432}
export CLOUD_PG_USER=${CLOUD_PG_USER:-postgres}
export CLOUD_RABBIT_HOST=${CLOUD_RABBIT_HOST:-127.0.0.1}
export CLOUD_RABBIT_PORT=${CLOUD_RABBIT_PORT:-5672}
export CLOUD_RABBIT_USER=${CLOUD_RABBIT_USER:-guest}
export CLOUD_RABBIT_PASSWORD=${CLOUD_RABBIT_PASSWORD:-guest}

export CLOUD_GLANCE_PASSWORD=${CLOUD_GLANCE_PASSWORD:-glance-secret}
export CLOUD_NOVA_PASSWORD=${CLOUD_NOVA_PASSWORD:-nova-secret}
export CLOUD_NEUTRON_PASSWORD=${CLOUD_NEUTRON_PASSWORD:-neutron-secret}
export CLOUD_PLACEMENT_PASSWORD=${CLOUD_PLACEMENT_PASSWORD:-placement-secret}

# CLOUD_COMPUTE=1 also runs placement, nova-conductor, nova-scheduler and
# nova-compute (fake virt driver), and Neutron binds ports, so that servers
# go ACTIVE. Off by default: it costs ~20 s of start and ~400 MiB.
export CLOUD_COMPUTE=${CLOUD_COMPUTE:-0}

# Bumped whenever install.sh changes what it installs. Same OpenStack release
# as Keystone 30.0.0 / Heat 27.0.1.
CLOUD_PACKAGES="glance==33.0.0 nova==34.0.0 neutron==29.0.0 openstack-placement==16.0.0 gunicorn==27.0.1 psycopg2-binary==2.9.13"

# The API services (gunicorn), in start order; placement only with compute.
CLOUD_SERVICES="glance nova neutron"
[ "$CLOUD_COMPUTE" = 1 ] && CLOUD_SERVICES="$CLOUD_SERVICES placement"
# Nova's own services (eventlet daemons), with compute only.
CLOUD_DAEMONS=
[ "$CLOUD_COMPUTE" = 1 ] && CLOUD_DAEMONS="nova-conductor nova-scheduler nova-compute"
# Everything stop.sh may find a PID file of, whatever CLOUD_COMPUTE is now.
CLOUD_ALL="glance nova neutron placement nova-conductor nova-scheduler nova-compute"

cloud_log() { echo "[cloud-harness $(date +%H:%M:%S)] $*" >&2; }
cloud_pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
cloud_stamp_want() {
    { echo "$CLOUD_PACKAGES"; cat "$CLOUD_HARNESS/constraints.txt"; } | sha256sum | cut -d' ' -f1
}
