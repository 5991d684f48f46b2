#!/usr/bin/env bash
# Start a fresh Keystone + Heat for tests: installs both if needed, starts
# Keystone through tests/keystone/start.sh (state in $HEAT_STATE/keystone),
# creates Heat's Keystone objects, a new PostgreSQL database and RabbitMQ
# vhost for this run, writes heat.conf, runs heat-manage db_sync, starts
# heat-engine and heat-api (gunicorn) on a free 127.0.0.1 port and waits until
# an engine is up. Writes $HEAT_STATE/heat.env (keystone.env's lines plus
# HEAT_*) and prints the Keystone URL as its only line on stdout.
# ~30-40 s on 2 cores once installed. Stop with stop.sh (which also drops the
# database and the vhost).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
T0=$SECONDS

RUN=$HEAT_STATE/run
for p in heat-api heat-engine; do
    if heat_pid_alive "$RUN/$p.pid"; then
        echo "$p already runs for $HEAT_STATE (pid $(cat "$RUN/$p.pid")); stop.sh first" >&2
        exit 1
    fi
done

# The harness uses the machine's PostgreSQL and RabbitMQ; say so plainly
# when either is not there rather than failing later in Heat's logs.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
port_open "$HEAT_PG_HOST" "$HEAT_PG_PORT" || {
    echo "no PostgreSQL on $HEAT_PG_HOST:$HEAT_PG_PORT (Heat needs it; set HEAT_PG_HOST/HEAT_PG_PORT)" >&2
    exit 1
}
port_open "$HEAT_RABBIT_HOST" "$HEAT_RABBIT_PORT" || {
    echo "no RabbitMQ on $HEAT_RABBIT_HOST:$HEAT_RABBIT_PORT (Heat's RPC needs it; e.g. apt-get install rabbitmq-server && service rabbitmq-server start)" >&2
    exit 1
}

"$HEAT_HARNESS/install.sh" >&2
PY=$HEAT_VENV/bin/python
export PYTHONWARNINGS=ignore

rm -rf "$HEAT_STATE"
ETC=$HEAT_STATE/etc LOG=$HEAT_STATE/log WSGI=$HEAT_STATE/wsgi
mkdir -p "$ETC" "$LOG" "$RUN" "$WSGI"

# Names of this run's database, vhost and RPC exchange, recorded first so
# that stop.sh cleans up whatever part of the start succeeded.
RUN_ID=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
DB_NAME=magnum_heat_$RUN_ID
VHOST=magnum-heat-$RUN_ID
echo "$DB_NAME" > "$RUN/database"

fail() {
    echo "$1" >&2
    [ -n "${2:-}" ] && tail -20 "$2" >&2
    "$HEAT_HARNESS/stop.sh" >&2 || true
    exit 1
}

# ---------------------------------------------------------------- keystone
# Heat creates its own trust from the token it is called with; when that is
# a trust-scoped token (a stack in the cluster's project), Keystone must allow
# redelegation.
KEYSTONE_EXTRA_CONF=$'[trust]\nallow_redelegation = true' \
    KEYSTONE_STATE=$HEAT_STATE/keystone "$HEAT_REPO/tests/keystone/start.sh" >/dev/null \
    || fail "tests/keystone/start.sh failed"
set -a
# shellcheck disable=SC1091
. "$HEAT_STATE/keystone/keystone.env"
set +a
export KS_ADMIN_PASSWORD=$KEYSTONE_ADMIN_PASSWORD KS_REGION=$KEYSTONE_REGION

HEAT_PORT=${HEAT_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
IDS=$("$PY" "$HEAT_HARNESS/heatctl.py" identity "$KEYSTONE_URL" "$HEAT_PORT" 2>"$LOG/identity.log") \
    || fail "creating Heat's Keystone objects failed:" "$LOG/identity.log"
heat_log "keystone ready ($((SECONDS - T0)) s)"

# ---------------------------------------------------------------- postgres, rabbitmq
# Heat needs PostgreSQL: on SQLite a ResourceGroup scale-down never finishes
# (SQLite reuses row ids of resource_properties_data and Heat deletes a live row).
"$PY" "$HEAT_HARNESS/heatctl.py" createdb "$DB_NAME" 2>"$LOG/createdb.log" \
    || fail "cannot create database $DB_NAME on $HEAT_PG_HOST:$HEAT_PG_PORT:" "$LOG/createdb.log"
# A private vhost keeps this run's RPC away from any other Heat on the broker;
# when rabbitmqctl cannot manage the broker, the default vhost plus a private
# control exchange (below) still keeps the engines apart.
if rabbitmqctl -q add_vhost "$VHOST" >"$LOG/rabbitmq.log" 2>&1 \
    && rabbitmqctl -q set_permissions -p "$VHOST" "$HEAT_RABBIT_USER" '.*' '.*' '.*' >>"$LOG/rabbitmq.log" 2>&1; then
    echo "$VHOST" > "$RUN/vhost"
    TRANSPORT_VHOST=$VHOST
else
    heat_log "rabbitmqctl cannot add a vhost (see $LOG/rabbitmq.log); using vhost / with a private exchange"
    TRANSPORT_VHOST=
fi

# ---------------------------------------------------------------- heat config
cp "$HEAT_VENV/etc/heat/api-paste.ini" "$ETC/api-paste.ini"
KS_ROOT=${KEYSTONE_URL%/v3}
cat > "$ETC/heat.conf" <<CONF
[DEFAULT]
debug = false
host = $VHOST
transport_url = rabbit://$HEAT_RABBIT_USER:$HEAT_RABBIT_PASSWORD@$HEAT_RABBIT_HOST:$HEAT_RABBIT_PORT/$TRANSPORT_VHOST
control_exchange = $VHOST
auth_encryption_key = $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
stack_user_domain_name = heat
stack_domain_admin = heat_domain_admin
stack_domain_admin_password = $HS_DOMAIN_ADMIN_PASSWORD
region_name_for_services = $KEYSTONE_REGION
# One engine process, and a short graceful stop: this is a test harness.
num_engine_workers = 1
graceful_shutdown_timeout = 5

[database]
connection = postgresql+psycopg2://$HEAT_PG_USER@$HEAT_PG_HOST:$HEAT_PG_PORT/$DB_NAME

[paste_deploy]
api_paste_config = $ETC/api-paste.ini

[keystone_authtoken]
www_authenticate_uri = $KEYSTONE_URL
auth_url = $KEYSTONE_URL
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = heat
password = $HS_HEAT_PASSWORD
region_name = $KEYSTONE_REGION
interface = public

[trustee]
auth_type = password
auth_url = $KEYSTONE_URL
username = heat
password = $HS_HEAT_PASSWORD
user_domain_name = Default

[clients_keystone]
auth_uri = $KS_ROOT

[clients]
endpoint_type = publicURL

[oslo_messaging_notifications]
driver = noop
CONF

# heat-api under gunicorn: oslo.config parses sys.argv, so the entry module
# replaces gunicorn's argv with Heat's own before the app is built.
cat > "$WSGI/magnum_heat_api.py" <<PYEOF
import sys

sys.argv = ["heat-api", "--config-file", "$ETC/heat.conf", "--log-file", "$LOG/heat-api.log"]

from heat.api.openstack import wsgi  # noqa: E402

application = wsgi.init_application()
PYEOF

# heat-engine with one fix: Heat 27's engine runs resource checks on threads,
# and heat.engine.hot.functions.Yaql shares one PLY parser (not thread-safe)
# between them; a parse race leaves a stack *_IN_PROGRESS for ever. Parsing
# is serialised; the rest is the stock engine.
cat > "$WSGI/magnum_heat_engine.py" <<'PYEOF'
import sys
import threading

from heat.cmd import engine  # first: it selects the threading backend
from heat.engine.hot import functions

_parse = functions.Yaql._parse
_lock = threading.Lock()


def _serialised_parse(self, expression):
    with _lock:
        return _parse(self, expression)


functions.Yaql._parse = _serialised_parse
sys.argv[0] = "heat-engine"
sys.exit(engine.main())
PYEOF

"$HEAT_VENV/bin/heat-manage" --config-file "$ETC/heat.conf" db_sync >"$LOG/heat-manage.log" 2>&1 \
    || fail "heat-manage db_sync failed:" "$LOG/heat-manage.log"
heat_log "heat database ready ($((SECONDS - T0)) s)"

# ---------------------------------------------------------------- heat services
setsid "$PY" "$WSGI/magnum_heat_engine.py" --config-file "$ETC/heat.conf" \
    --log-file "$LOG/heat-engine.log" >"$LOG/heat-engine.stdout" 2>&1 </dev/null &
echo $! > "$RUN/heat-engine.pid"
# --no-control-socket: gunicorn 27 otherwise shares ~/.gunicorn/gunicorn.ctl
# with every gunicorn of this user. Absolute paths: --daemon chdirs to /.
"$HEAT_VENV/bin/gunicorn" --pythonpath "$WSGI" --bind "127.0.0.1:$HEAT_PORT" \
    --workers 1 --threads 4 --timeout 120 --graceful-timeout 5 --no-control-socket \
    --daemon --pid "$RUN/heat-api.pid" \
    --access-logfile "$LOG/heat-api-access.log" --error-logfile "$LOG/heat-api-gunicorn.log" \
    magnum_heat_api:application
"$PY" "$HEAT_HARNESS/heatctl.py" wait "$KEYSTONE_URL" "$HEAT_PORT" \
    "$RUN/heat-engine.pid" "$RUN/heat-api.pid" 180 2>"$LOG/wait.log" \
    || fail "heat did not come up (logs in $LOG):" "$LOG/wait.log"

{
    cat "$HEAT_STATE/keystone/keystone.env"
    echo "HEAT_PORT=$HEAT_PORT"
    echo "HEAT_URL=http://127.0.0.1:$HEAT_PORT/v1"
    echo "HEAT_LOG_DIR=$LOG"
    echo "HEAT_DATABASE=$DB_NAME"
    echo "HEAT_PASSWORD=$HS_HEAT_PASSWORD"
    echo "$IDS"
} > "$HEAT_STATE/heat.env"
heat_log "ready in $((SECONDS - T0)) s: keystone $KEYSTONE_URL, heat http://127.0.0.1:$HEAT_PORT/v1"
echo "$KEYSTONE_URL"
