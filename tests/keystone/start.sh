#!/usr/bin/env bash
# Start a fresh Keystone for tests: installs it if needed (install.sh), wipes
# $KEYSTONE_STATE, writes its config, creates a new SQLite database and keys
# (db_sync, fernet_setup, credential_setup, bootstrap), serves it with gunicorn
# on a free 127.0.0.1 port (or $KEYSTONE_PORT), creates the harness's users
# (identity.py), writes $KEYSTONE_STATE/keystone.env and prints the URL
# (http://127.0.0.1:PORT/v3) as its only line on stdout. Logs go to stderr.
# ~15-25 s on 2 cores once installed. Stop with stop.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
T0=$SECONDS

"$KS_HARNESS/install.sh" >&2
PY=$KEYSTONE_VENV/bin/python

RUN=$KEYSTONE_STATE/run
if ks_pid_alive "$RUN/keystone.pid"; then
    echo "a keystone already runs for $KEYSTONE_STATE (pid $(cat "$RUN/keystone.pid")); stop.sh first" >&2
    exit 1
fi
rm -rf "$KEYSTONE_STATE"
ETC=$KEYSTONE_STATE/etc LOG=$KEYSTONE_STATE/log WSGI=$KEYSTONE_STATE/wsgi
mkdir -p "$ETC" "$LOG" "$RUN" "$WSGI"

# A free port, unless one is asked for. The kernel picks it; the short window
# before gunicorn binds it is acceptable for a test harness.
PORT=${KEYSTONE_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
URL=http://127.0.0.1:$PORT/v3

# SQLite: a new file per run, nothing shared with other runs or the project's
# PostgreSQL. No cache section: revocations take effect at once, which the
# client tests rely on.
cat > "$ETC/keystone.conf" <<CONF
[DEFAULT]
log_file = $LOG/keystone.log
debug = false

[database]
connection = sqlite:///$KEYSTONE_STATE/keystone.db

[token]
provider = fernet
expiration = 3600

[fernet_tokens]
key_repository = $ETC/fernet-keys/

[fernet_receipts]
key_repository = $ETC/fernet-keys/

[credential]
key_repository = $ETC/credential-keys/
CONF
# Extra keystone.conf text from a caller: the Heat harness allows trust
# redelegation, which Heat needs to act on a trust-scoped token.
if [ -n "${KEYSTONE_EXTRA_CONF:-}" ]; then
    printf '\n%s\n' "$KEYSTONE_EXTRA_CONF" >> "$ETC/keystone.conf"
fi

# gunicorn entry point. Keystone's oslo.config parses sys.argv when the app is
# built, and gunicorn's own arguments (--bind ...) make every worker exit with
# "unrecognized arguments" and respawn forever, so argv is reset first.
cat > "$WSGI/magnum_keystone_wsgi.py" <<PYEOF
import os
import sys

os.environ["OS_KEYSTONE_CONFIG_FILES"] = "$ETC/keystone.conf"
sys.argv = [sys.argv[0]]

from keystone.server import wsgi  # noqa: E402

application = wsgi.initialize_public_application()
PYEOF

export PYTHONWARNINGS=ignore
KM=("$KEYSTONE_VENV/bin/keystone-manage" --config-file "$ETC/keystone.conf")
USER_NAME=$(id -un) GROUP_NAME=$(id -gn)
{
    "${KM[@]}" db_sync
    "${KM[@]}" fernet_setup --keystone-user "$USER_NAME" --keystone-group "$GROUP_NAME"
    "${KM[@]}" credential_setup --keystone-user "$USER_NAME" --keystone-group "$GROUP_NAME"
    "${KM[@]}" bootstrap --bootstrap-password "$KS_ADMIN_PASSWORD" \
        --bootstrap-region-id "$KS_REGION" --bootstrap-public-url "$URL/" \
        --bootstrap-internal-url "$URL/" --bootstrap-admin-url "$URL/"
} >"$LOG/keystone-manage.log" 2>&1 || {
    echo "keystone-manage failed, see $LOG/keystone-manage.log:" >&2
    tail -20 "$LOG/keystone-manage.log" >&2
    exit 1
}
ks_log "database and keys ready ($((SECONDS - T0)) s)"

# One worker (SQLite does not like concurrent writers), a few threads.
# --no-control-socket: gunicorn 27 otherwise shares ~/.gunicorn/gunicorn.ctl
# with every other gunicorn of this user. Absolute paths: --daemon chdirs to /.
"$KEYSTONE_VENV/bin/gunicorn" --pythonpath "$WSGI" --bind "127.0.0.1:$PORT" \
    --workers 1 --threads 4 --timeout 60 --graceful-timeout 5 --no-control-socket \
    --daemon --pid "$RUN/keystone.pid" \
    --access-logfile "$LOG/access.log" --error-logfile "$LOG/gunicorn.log" \
    magnum_keystone_wsgi:application
if ! "$PY" "$KS_HARNESS/identity.py" wait "$URL" "$RUN/keystone.pid" 90 >&2; then
    echo "see $LOG/gunicorn.log and $LOG/keystone.log:" >&2
    tail -20 "$LOG/gunicorn.log" >&2 || true
    "$KS_HARNESS/stop.sh"
    exit 1
fi
ks_log "keystone answers on $URL ($((SECONDS - T0)) s)"

if ! IDS=$("$PY" "$KS_HARNESS/identity.py" bootstrap "$URL" 2>"$LOG/identity.log"); then
    echo "creating users failed, see $LOG/identity.log:" >&2
    tail -5 "$LOG/identity.log" >&2
    "$KS_HARNESS/stop.sh"
    exit 1
fi

cat > "$KEYSTONE_STATE/keystone.env" <<ENV
KEYSTONE_URL=$URL
KEYSTONE_PORT=$PORT
KEYSTONE_REGION=$KS_REGION
KEYSTONE_PID_FILE=$RUN/keystone.pid
KEYSTONE_LOG_DIR=$LOG
KEYSTONE_ADMIN_PASSWORD=$KS_ADMIN_PASSWORD
KEYSTONE_MAGNUM_PASSWORD=$KS_MAGNUM_PASSWORD
KEYSTONE_DEMO_PASSWORD=$KS_DEMO_PASSWORD
KEYSTONE_READER_PASSWORD=$KS_READER_PASSWORD
KEYSTONE_MAGNUM_API_URL=$KS_MAGNUM_API_URL
$IDS
ENV
ks_log "ready in $((SECONDS - T0)) s: $URL (env in $KEYSTONE_STATE/keystone.env)"
echo "$URL"
