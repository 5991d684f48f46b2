#!/usr/bin/env bash
# Install Keystone + gunicorn from PyPI into $KEYSTONE_VENV (default
# target/keystone-venv). Idempotent: a stamp records what was installed, and a
# second run with the same constraints does nothing. ~40 s on 2 cores uncached.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

STAMP=$KEYSTONE_VENV/.magnum-harness-stamp
want=$(ks_stamp_want)
ready() { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && [ -x "$KEYSTONE_VENV/bin/keystone-manage" ] && [ -x "$KEYSTONE_VENV/bin/gunicorn" ]; }
ready && exit 0

PY=${KEYSTONE_PYTHON:-python3}
command -v "$PY" >/dev/null || { echo "no $PY: Keystone needs Python 3.10+" >&2; exit 1; }
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "$PY is older than 3.10; Keystone 30 needs 3.10+" >&2; exit 1; }
"$PY" -c 'import venv, ensurepip' 2>/dev/null \
    || { echo "$PY lacks venv/ensurepip (Debian: apt-get install python3-venv)" >&2; exit 1; }

# Two test runs may install at once: the second waits for the first.
mkdir -p "$(dirname "$KEYSTONE_VENV")"
exec 9>"$KEYSTONE_VENV.lock"
flock -w 900 9 || { echo "timed out waiting for another install ($KEYSTONE_VENV.lock)" >&2; exit 1; }
ready && exit 0

T0=$SECONDS
ks_log "installing $KS_PACKAGES into $KEYSTONE_VENV"
# A venv cannot be moved after creation (absolute shebangs), so it is built in
# place; the stamp is written last, and a failed run starts over next time.
rm -rf "$KEYSTONE_VENV"
"$PY" -m venv "$KEYSTONE_VENV"
"$KEYSTONE_VENV/bin/pip" install -q --disable-pip-version-check -U pip setuptools wheel
# shellcheck disable=SC2086  # KS_PACKAGES is a list
"$KEYSTONE_VENV/bin/pip" install -q --disable-pip-version-check \
    -c "$KS_HARNESS/constraints.txt" $KS_PACKAGES
"$KEYSTONE_VENV/bin/pip" check >/dev/null
echo "$want" > "$STAMP"
ks_log "installed in $((SECONDS - T0)) s"
