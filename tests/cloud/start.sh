#!/usr/bin/env bash
# Start real Glance, Nova (compute API only) and Neutron (ML2, no agents) for
# tests: installs them if needed (install.sh), uses the Keystone named by
# $CLOUD_KEYSTONE_ENV (a keystone.env of a running harness, e.g. Heat's) or
# starts one with tests/keystone/start.sh in $CLOUD_STATE/keystone, registers
# the services in its catalog, creates fresh PostgreSQL databases and a
# RabbitMQ vhost for this run, runs the db syncs, serves the three APIs with
# gunicorn on free 127.0.0.1 ports, waits until each answers, seeds images,
# flavors, a keypair and networks (cloudctl.py seed), writes
# $CLOUD_STATE/cloud.env and prints its path as the only line on stdout.
# Logs go to stderr. Stop with stop.sh (which also drops the databases and
# the vhost).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
T0=$SECONDS

RUN=$CLOUD_STATE/run
for p in $CLOUD_ALL; do
    if cloud_pid_alive "$RUN/$p.pid"; then
        echo "$p already runs for $CLOUD_STATE (pid $(cat "$RUN/$p.pid")); stop.sh first" >&2
        exit 1
    fi
done

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
port_open "$CLOUD_PG_HOST" "$CLOUD_PG_PORT" || {
    echo "no PostgreSQL on $CLOUD_PG_HOST:$CLOUD_PG_PORT (set CLOUD_PG_HOST/CLOUD_PG_PORT)" >&2
    exit 1
}
port_open "$CLOUD_RABBIT_HOST" "$CLOUD_RABBIT_PORT" || {
    echo "no RabbitMQ on $CLOUD_RABBIT_HOST:$CLOUD_RABBIT_PORT (Nova's and Neutron's RPC clients need one)" >&2
    exit 1
}
if [ -n "${CLOUD_KEYSTONE_ENV:-}" ] && [ ! -s "$CLOUD_KEYSTONE_ENV" ]; then
    echo "CLOUD_KEYSTONE_ENV=$CLOUD_KEYSTONE_ENV is not a keystone.env" >&2
    exit 1
fi

"$CLOUD_HARNESS/install.sh" >&2
PY=$CLOUD_VENV/bin/python
export PYTHONWARNINGS=ignore

# A previous run's leftovers (databases, vhost, own Keystone) go first.
"$CLOUD_HARNESS/stop.sh" >&2 || true
rm -rf "$CLOUD_STATE"
ETC=$CLOUD_STATE/etc LOG=$CLOUD_STATE/log WSGI=$CLOUD_STATE/wsgi DATA=$CLOUD_STATE/data
mkdir -p "$ETC" "$LOG" "$RUN" "$WSGI" "$DATA"/{images,staging,nova,neutron,lock}

# Names of this run's databases and vhost, recorded first so that stop.sh
# cleans up whatever part of the start succeeded.
RUN_ID=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
DB_PREFIX=magnum_cloud_$RUN_ID
DBS="${DB_PREFIX}_glance ${DB_PREFIX}_nova_api ${DB_PREFIX}_nova ${DB_PREFIX}_nova_cell0 ${DB_PREFIX}_neutron"
[ "$CLOUD_COMPUTE" = 1 ] && DBS="$DBS ${DB_PREFIX}_placement"
VHOST=magnum-cloud-$RUN_ID
echo "$DBS" > "$RUN/databases"

fail() {
    echo "$1" >&2
    [ -n "${2:-}" ] && [ -f "$2" ] && tail -25 "$2" >&2
    "$CLOUD_HARNESS/stop.sh" >&2 || true
    exit 1
}

# ---------------------------------------------------------------- keystone
if [ -n "${CLOUD_KEYSTONE_ENV:-}" ]; then
    KS_ENV=$(cd "$(dirname "$CLOUD_KEYSTONE_ENV")" && pwd)/$(basename "$CLOUD_KEYSTONE_ENV")
    cloud_log "using the Keystone of $KS_ENV"
else
    KEYSTONE_STATE=$CLOUD_STATE/keystone "$CLOUD_REPO/tests/keystone/start.sh" >/dev/null \
        || fail "tests/keystone/start.sh failed"
    echo "$CLOUD_STATE/keystone" > "$RUN/own-keystone"
    KS_ENV=$CLOUD_STATE/keystone/keystone.env
fi
cp "$KS_ENV" "$RUN/keystone.env"   # stop.sh unregisters the services with it
set -a
# shellcheck disable=SC1090,SC1091
. "$KS_ENV"
set +a
export KS_ADMIN_PASSWORD=$KEYSTONE_ADMIN_PASSWORD KS_REGION=$KEYSTONE_REGION
KS_URL=$KEYSTONE_URL

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
GLANCE_PORT=${CLOUD_GLANCE_PORT:-$(free_port)}
NOVA_PORT=${CLOUD_NOVA_PORT:-$(free_port)}
NEUTRON_PORT=${CLOUD_NEUTRON_PORT:-$(free_port)}
PLACEMENT_PORT=
[ "$CLOUD_COMPUTE" = 1 ] && PLACEMENT_PORT=${CLOUD_PLACEMENT_PORT:-$(free_port)}
# shellcheck disable=SC2086  # no PLACEMENT_PORT argument without compute
IDS=$("$PY" "$CLOUD_HARNESS/cloudctl.py" identity "$KS_URL" "$GLANCE_PORT" "$NOVA_PORT" "$NEUTRON_PORT" $PLACEMENT_PORT \
    2>"$LOG/identity.log") || fail "registering the services in Keystone failed:" "$LOG/identity.log"
echo "$IDS" | sed -n 's/^\([A-Z]*\)_SERVICE_ID=//p' > "$RUN/services"
cloud_log "keystone ready ($((SECONDS - T0)) s)"

# ---------------------------------------------------------------- postgres, rabbitmq
# shellcheck disable=SC2086  # DBS is a list
"$PY" "$CLOUD_HARNESS/cloudctl.py" createdb $DBS 2>"$LOG/createdb.log" \
    || fail "cannot create databases on $CLOUD_PG_HOST:$CLOUD_PG_PORT:" "$LOG/createdb.log"
# Nova's and Neutron's APIs are RPC clients (Neutron casts to agents, Nova to
# conductors); nothing listens, but oslo.messaging must reach a broker. A
# private vhost keeps this run away from every other one.
if rabbitmqctl -q add_vhost "$VHOST" >"$LOG/rabbitmq.log" 2>&1 \
    && rabbitmqctl -q set_permissions -p "$VHOST" "$CLOUD_RABBIT_USER" '.*' '.*' '.*' >>"$LOG/rabbitmq.log" 2>&1; then
    echo "$VHOST" > "$RUN/vhost"
    TRANSPORT_VHOST=$VHOST
else
    cloud_log "rabbitmqctl cannot add a vhost (see $LOG/rabbitmq.log); using vhost / with private exchanges"
    TRANSPORT_VHOST=
fi
TRANSPORT=rabbit://$CLOUD_RABBIT_USER:$CLOUD_RABBIT_PASSWORD@$CLOUD_RABBIT_HOST:$CLOUD_RABBIT_PORT/$TRANSPORT_VHOST
PG=postgresql+psycopg2://$CLOUD_PG_USER@$CLOUD_PG_HOST:$CLOUD_PG_PORT/$DB_PREFIX

# keystone_authtoken section for service $1 (password $2).
authtoken() {
    cat <<CONF
[keystone_authtoken]
www_authenticate_uri = $KS_URL
auth_url = $KS_URL
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $2
region_name = $KEYSTONE_REGION
interface = public
service_token_roles_required = true
CONF
}
# A keystoneauth section [$1] authenticating as user $2 (password $3).
ksa() {
    cat <<CONF
[$1]
auth_type = password
auth_url = $KS_URL
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $2
password = $3
region_name = $KEYSTONE_REGION
valid_interfaces = public
CONF
}

# ---------------------------------------------------------------- glance config
mkdir -p "$ETC/glance" "$ETC/nova" "$ETC/neutron"
cp "$CLOUD_VENV/etc/glance/glance-api-paste.ini" "$ETC/glance/glance-api-paste.ini"
cat > "$ETC/glance/glance-api.conf" <<CONF
[DEFAULT]
debug = false
log_file = $LOG/glance-api.log
bind_host = 127.0.0.1
bind_port = $GLANCE_PORT
public_endpoint = http://127.0.0.1:$GLANCE_PORT
worker_self_reference_url = http://127.0.0.1:$GLANCE_PORT
node_staging_uri = file://$DATA/staging
# Plain PUT /file uploads only; the import flow (and its task threads) stays off.
enabled_import_methods = []
image_cache_dir = $DATA/image-cache

[database]
connection = ${PG}_glance

[glance_store]
stores = file
default_store = file
filesystem_store_datadir = $DATA/images

[paste_deploy]
flavor = keystone
config_file = $ETC/glance/glance-api-paste.ini

[oslo_concurrency]
lock_path = $DATA/lock

[oslo_messaging_notifications]
driver = noop

$(authtoken glance "$CLOUD_GLANCE_PASSWORD")
CONF

# ---------------------------------------------------------------- nova config
cp "$CLOUD_VENV/etc/nova/api-paste.ini" "$ETC/nova/api-paste.ini"
cat > "$ETC/nova/nova.conf" <<CONF
[DEFAULT]
debug = false
log_file = $LOG/nova-api.log
state_path = $DATA/nova
host = $VHOST
transport_url = $TRANSPORT
control_exchange = nova-$RUN_ID

[api]
auth_strategy = keystone

[api_database]
connection = ${PG}_nova_api

[database]
connection = ${PG}_nova

[wsgi]
api_paste_config = $ETC/nova/api-paste.ini

[oslo_concurrency]
lock_path = $DATA/lock

[oslo_messaging_notifications]
driver = noop

$(authtoken nova "$CLOUD_NOVA_PASSWORD")

$(ksa placement nova "$CLOUD_NOVA_PASSWORD")

$(ksa neutron nova "$CLOUD_NOVA_PASSWORD")

$(ksa glance nova "$CLOUD_NOVA_PASSWORD")

$(ksa cinder nova "$CLOUD_NOVA_PASSWORD")
CONF

# ---------------------------------------------------------------- neutron config
# Without a mechanism driver no port binds, and nova-compute refuses a port
# whose binding failed. With compute, ML2's real openvswitch driver binds
# ports on nova-compute's host, because an Open vSwitch agent row says that
# host has br-int, vxlan tunnels and br-ex for physnet public (cloudctl.py
# ovsagent; no agent process runs, agent_down_time keeps the row alive).
# ML2's `test` driver, also in the wheel, is no way out: its unit-test
# assertions fail on a real update's port binding.
NEUTRON_MECHANISM_DRIVERS=
COMPUTE_HOST=magnum-fake-compute
NEUTRON_AGENT_DOWN_TIME=75
if [ "$CLOUD_COMPUTE" = 1 ]; then
    NEUTRON_MECHANISM_DRIVERS=openvswitch
    # The most oslo.config allows (eventlet's timer limit): the stand-in
    # agent never beats.
    NEUTRON_AGENT_DOWN_TIME=2147483
fi
cp "$CLOUD_VENV/etc/neutron/api-paste.ini" "$ETC/neutron/api-paste.ini"
cat > "$ETC/neutron/neutron.conf" <<CONF
[DEFAULT]
debug = false
log_file = $LOG/neutron-api.log
state_path = $DATA/neutron
host = $VHOST
api_paste_config = $ETC/neutron/api-paste.ini
auth_strategy = keystone
core_plugin = ml2
service_plugins = router
transport_url = $TRANSPORT
control_exchange = neutron-$RUN_ID
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
# No agents run: networks and subnets only, no DHCP scheduling.
dhcp_agent_notification = false
agent_down_time = $NEUTRON_AGENT_DOWN_TIME

[database]
connection = ${PG}_neutron

[ml2]
type_drivers = flat,vxlan
project_network_types = vxlan
mechanism_drivers = $NEUTRON_MECHANISM_DRIVERS
extension_drivers = port_security

[ml2_type_flat]
flat_networks = public

[ml2_type_vxlan]
vni_ranges = 1:1000

[oslo_concurrency]
lock_path = $DATA/lock

[oslo_messaging_notifications]
driver = noop

$(authtoken neutron "$CLOUD_NEUTRON_PASSWORD")

$(ksa nova neutron "$CLOUD_NEUTRON_PASSWORD")
CONF

# ---------------------------------------------------------------- compute config
if [ "$CLOUD_COMPUTE" = 1 ]; then
    mkdir -p "$ETC/placement" "$DATA/nova/instances"
    cat > "$ETC/placement/placement.conf" <<CONF
[DEFAULT]
debug = false
log_file = $LOG/placement-api.log

[api]
auth_strategy = keystone

[placement_database]
connection = ${PG}_placement

[oslo_concurrency]
lock_path = $DATA/lock

$(authtoken placement "$CLOUD_PLACEMENT_PASSWORD")
CONF
    # nova.conf plus this, for conductor, scheduler and compute (the API
    # does not read it).
    cat > "$ETC/nova/nova-services.conf" <<CONF
[DEFAULT]
# Nova's in-tree fake virt driver: spawn only records the instance (no
# image download, no hypervisor); it reports a huge host to placement.
compute_driver = fake.FakeDriver
# Neutron is told not to notify Nova (no agents plug anything), so no
# network-vif-plugged event ever comes: do not wait for one.
vif_plugging_is_fatal = false
vif_plugging_timeout = 0
instances_path = $DATA/nova/instances
my_ip = 127.0.0.1
graceful_shutdown_timeout = 5
# No periodic work beyond what a boot needs.
heal_instance_info_cache_interval = -1

[conductor]
workers = 1

[scheduler]
workers = 1
# start.sh maps the one compute host (cell_v2 discover_hosts).
discover_hosts_in_cells_interval = -1

[vnc]
enabled = false

CONF
    # The host of the stand-in Open vSwitch agent (cloudctl.py ovsagent).
    cat > "$ETC/nova/nova-compute.conf" <<CONF
[DEFAULT]
host = $COMPUTE_HOST
CONF
fi

# ---------------------------------------------------------------- gunicorn entry modules
# oslo.config parses sys.argv (Nova and Neutron do it explicitly), and
# gunicorn's own arguments would make every worker exit and respawn for ever,
# so each entry module replaces argv and names its config through the
# variables the projects' wsgi modules read.
cat > "$WSGI/magnum_cloud_glance.py" <<PYEOF
import os
import sys

os.environ["OS_GLANCE_CONFIG_DIR"] = "$ETC/glance"
sys.argv = ["glance-api"]

from glance.wsgi.api import application  # noqa: E402,F401
PYEOF
cat > "$WSGI/magnum_cloud_nova.py" <<PYEOF
import os
import sys

os.environ["OS_NOVA_CONFIG_DIR"] = "$ETC/nova"
# The first file is the paste config, the rest oslo.config files.
os.environ["OS_NOVA_CONFIG_FILES"] = "api-paste.ini;nova.conf"
sys.argv = ["nova-api-os-compute"]

from nova.wsgi.osapi_compute import application  # noqa: E402,F401
PYEOF
cat > "$WSGI/magnum_cloud_neutron.py" <<PYEOF
import os
import sys

os.environ["OS_NEUTRON_CONFIG_DIR"] = "$ETC/neutron"
os.environ["OS_NEUTRON_CONFIG_FILES"] = "neutron.conf"
sys.argv = ["neutron-api"]

from neutron.wsgi.api import application  # noqa: E402,F401
PYEOF
cat > "$WSGI/magnum_cloud_placement.py" <<PYEOF
import os
import sys

os.environ["OS_PLACEMENT_CONFIG_DIR"] = "$ETC/placement"
sys.argv = ["placement-api"]

from placement.wsgi.api import application  # noqa: E402,F401
PYEOF

# ---------------------------------------------------------------- db syncs
run_logged() { # log-file command...
    local log=$1
    shift
    timeout 300 "$@" >>"$log" 2>&1
}
NM=("$CLOUD_VENV/bin/nova-manage" --config-file "$ETC/nova/nova.conf")
# The three run side by side; a failure is reported once all have ended.
run_logged "$LOG/glance-manage.log" "$CLOUD_VENV/bin/glance-manage" \
    --config-dir "$ETC/glance" db_sync &
GLANCE_SYNC=$!
run_logged "$LOG/neutron-db-manage.log" "$PY" "$CLOUD_HARNESS/neutron_db_manage.py" \
    --config-file "$ETC/neutron/neutron.conf" upgrade heads &
NEUTRON_SYNC=$!
# Nova's API refuses to start without cell mappings: cell0 gets its own
# database, cell1 is the [database] one (nothing runs in it).
PLACEMENT_SYNC=
if [ "$CLOUD_COMPUTE" = 1 ]; then
    run_logged "$LOG/placement-manage.log" "$CLOUD_VENV/bin/placement-manage" \
        --config-file "$ETC/placement/placement.conf" db sync &
    PLACEMENT_SYNC=$!
fi
NOVA_OK=true
{
    run_logged "$LOG/nova-manage.log" "${NM[@]}" api_db sync \
        && run_logged "$LOG/nova-manage.log" "${NM[@]}" cell_v2 map_cell0 \
            --database_connection "${PG}_nova_cell0" \
        && run_logged "$LOG/nova-manage.log" "${NM[@]}" db sync \
        && run_logged "$LOG/nova-manage.log" "${NM[@]}" cell_v2 create_cell --name cell1 \
            --database_connection "${PG}_nova" --transport-url "$TRANSPORT"
} || NOVA_OK=false
if [ -n "$PLACEMENT_SYNC" ]; then
    wait "$PLACEMENT_SYNC" || fail "placement-manage db sync failed:" "$LOG/placement-manage.log"
fi
wait "$GLANCE_SYNC" || fail "glance-manage db_sync failed:" "$LOG/glance-manage.log"
wait "$NEUTRON_SYNC" || fail "neutron-db-manage upgrade heads failed:" "$LOG/neutron-db-manage.log"
if [ "$CLOUD_COMPUTE" = 1 ]; then
    "$PY" "$CLOUD_HARNESS/cloudctl.py" ovsagent "${DB_PREFIX}_neutron" "$COMPUTE_HOST" \
        2>"$LOG/ovsagent.log" || fail "registering the Open vSwitch agent failed:" "$LOG/ovsagent.log"
fi
$NOVA_OK || fail "nova-manage failed:" "$LOG/nova-manage.log"
cloud_log "databases ready ($((SECONDS - T0)) s)"

# ---------------------------------------------------------------- services
# One worker x 4 threads each. --no-control-socket: gunicorn 27 otherwise
# shares ~/.gunicorn/gunicorn.ctl with every gunicorn of this user. Absolute
# paths: --daemon chdirs to /.
serve() { # name port
    "$CLOUD_VENV/bin/gunicorn" --pythonpath "$WSGI" --bind "127.0.0.1:$2" \
        --workers 1 --threads 4 --timeout 120 --graceful-timeout 5 --no-control-socket \
        --daemon --pid "$RUN/$1.pid" \
        --access-logfile "$LOG/$1-access.log" --error-logfile "$LOG/$1-gunicorn.log" \
        "magnum_cloud_$1:application"
}
serve glance "$GLANCE_PORT"
serve nova "$NOVA_PORT"
serve neutron "$NEUTRON_PORT"
[ "$CLOUD_COMPUTE" = 1 ] && serve placement "$PLACEMENT_PORT"
for s in $CLOUD_SERVICES; do
    "$PY" "$CLOUD_HARNESS/cloudctl.py" wait "$KS_URL" "$s" "$RUN/$s.pid" 120 2>"$LOG/wait-$s.log" || {
        cat "$LOG/wait-$s.log" >&2
        for f in "$LOG/$s-gunicorn.log" "$LOG/$s-api.log"; do
            [ -f "$f" ] && { echo "--- $f" >&2; tail -25 "$f" >&2; }
        done
        fail "$s did not come up (logs in $LOG)"
    }
    cloud_log "$s answers ($((SECONDS - T0)) s)"
done

# ---------------------------------------------------------------- nova services
if [ "$CLOUD_COMPUTE" = 1 ]; then
    # Plain background processes (not daemons): stdin and both outputs are
    # files, so nothing keeps start.sh's caller's pipes open. setsid: a
    # signal to start.sh's process group does not reach them; stop.sh does.
    daemon() { # name extra-config...
        local name=$1
        shift
        local args=(--config-file "$ETC/nova/nova.conf" --config-file "$ETC/nova/nova-services.conf")
        for c in "$@"; do args+=(--config-file "$c"); done
        setsid "$CLOUD_VENV/bin/$name" "${args[@]}" --log-file "$LOG/$name.log" \
            </dev/null >>"$LOG/$name.out" 2>&1 &
        echo $! > "$RUN/$name.pid"
    }
    daemon nova-conductor
    daemon nova-scheduler
    daemon nova-compute "$ETC/nova/nova-compute.conf"
    "$PY" "$CLOUD_HARNESS/cloudctl.py" hypervisor "$KS_URL" "$RUN/nova-compute.pid" 120 \
        2>"$LOG/wait-compute.log" || {
        cat "$LOG/wait-compute.log" >&2
        for f in nova-conductor nova-scheduler nova-compute; do
            echo "--- $f" >&2
            tail -15 "$LOG/$f.log" "$LOG/$f.out" >&2 2>/dev/null
        done
        fail "nova-compute did not come up (logs in $LOG)"
    }
    for d in nova-conductor nova-scheduler; do
        cloud_pid_alive "$RUN/$d.pid" || fail "$d exited:" "$LOG/$d.log"
    done
    # The scheduler only places instances on hosts mapped to a cell.
    run_logged "$LOG/nova-manage.log" "${NM[@]}" cell_v2 discover_hosts --verbose \
        || fail "nova-manage cell_v2 discover_hosts failed:" "$LOG/nova-manage.log"
    cloud_log "nova-compute $COMPUTE_HOST up and mapped ($((SECONDS - T0)) s)"
fi

# ---------------------------------------------------------------- seed
SEEDED=$("$PY" "$CLOUD_HARNESS/cloudctl.py" seed "$KS_URL" 2>"$LOG/seed.log") \
    || fail "seeding failed:" "$LOG/seed.log"

{
    cat "$KS_ENV"
    echo "CLOUD_STATE=$CLOUD_STATE"
    echo "CLOUD_LOG_DIR=$LOG"
    echo "CLOUD_DATABASES=${DBS// /,}"
    echo "GLANCE_PORT=$GLANCE_PORT"
    echo "NOVA_PORT=$NOVA_PORT"
    echo "NEUTRON_PORT=$NEUTRON_PORT"
    if [ "$CLOUD_COMPUTE" = 1 ]; then
        echo "PLACEMENT_PORT=$PLACEMENT_PORT"
        echo "PLACEMENT_PASSWORD=$CLOUD_PLACEMENT_PASSWORD"
        echo "COMPUTE_HOST=$COMPUTE_HOST"
    fi
    echo "CLOUD_COMPUTE=$CLOUD_COMPUTE"
    echo "GLANCE_PASSWORD=$CLOUD_GLANCE_PASSWORD"
    echo "NOVA_PASSWORD=$CLOUD_NOVA_PASSWORD"
    echo "NEUTRON_PASSWORD=$CLOUD_NEUTRON_PASSWORD"
    echo "$IDS"
    echo "$SEEDED"
} > "$CLOUD_STATE/cloud.env"
cloud_log "ready in $((SECONDS - T0)) s: glance :$GLANCE_PORT, nova :$NOVA_PORT, neutron :$NEUTRON_PORT"
echo "$CLOUD_STATE/cloud.env"
