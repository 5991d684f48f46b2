#!/usr/bin/env bash
# Install Heat 27 + gunicorn + psycopg2 from PyPI into $HEAT_VENV (default
# target/heat-venv). Idempotent: a stamp records what was installed; a second
# run with the same constraints does nothing. Keystone is installed by
# tests/keystone/install.sh into its own venv. ~45 s on 2 cores uncached.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

STAMP=$HEAT_VENV/.magnum-harness-stamp
want=$(heat_stamp_want)
ready() { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && [ -x "$HEAT_VENV/bin/heat-engine" ] && [ -x "$HEAT_VENV/bin/gunicorn" ]; }
ready && exit 0

PY=${HEAT_PYTHON:-python3}
command -v "$PY" >/dev/null || { echo "no $PY: Heat needs Python 3.10+" >&2; exit 1; }
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "$PY is older than 3.10; Heat 27 needs 3.10+" >&2; exit 1; }
"$PY" -c 'import venv, ensurepip' 2>/dev/null \
    || { echo "$PY lacks venv/ensurepip (Debian: apt-get install python3-venv)" >&2; exit 1; }

mkdir -p "$(dirname "$HEAT_VENV")"
exec 9>"$HEAT_VENV.lock"
flock -w 900 9 || { echo "timed out waiting for another install ($HEAT_VENV.lock)" >&2; exit 1; }
ready && exit 0

T0=$SECONDS
heat_log "installing $HEAT_PACKAGES into $HEAT_VENV"
# A venv that exists is completed in place (pip only adds what is missing);
# a broken one is rebuilt. The stamp is written last.
if ! "$HEAT_VENV/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$HEAT_VENV"
    "$PY" -m venv "$HEAT_VENV"
    "$HEAT_VENV/bin/pip" install -q --disable-pip-version-check -U pip setuptools wheel
fi
# shellcheck disable=SC2086  # HEAT_PACKAGES is a list
"$HEAT_VENV/bin/pip" install -q --disable-pip-version-check \
    -c "$HEAT_HARNESS/constraints.txt" $HEAT_PACKAGES
"$HEAT_VENV/bin/pip" check >/dev/null
echo "$want" > "$STAMP"
heat_log "installed in $((SECONDS - T0)) s"
