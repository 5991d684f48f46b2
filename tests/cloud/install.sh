#!/usr/bin/env bash
# Install Glance 33, Nova 34 and Neutron 29 (OpenStack 2026.2, the release of
# Keystone 30 / Heat 27) + gunicorn + psycopg2 from PyPI into $CLOUD_VENV
# (default target/cloud-venv). Idempotent: a stamp records what was
# installed; a second run with the same constraints does nothing. Keystone is
# installed by tests/keystone/install.sh into its own venv.
# ~60-70 s on 2 cores uncached (ovs is built from its sdist).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

STAMP=$CLOUD_VENV/.magnum-harness-stamp
want=$(cloud_stamp_want)
ready() { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && [ -x "$CLOUD_VENV/bin/glance-manage" ] && [ -x "$CLOUD_VENV/bin/nova-manage" ] \
    && [ -x "$CLOUD_VENV/bin/neutron-db-manage" ] && [ -x "$CLOUD_VENV/bin/placement-manage" ] \
    && [ -x "$CLOUD_VENV/bin/gunicorn" ]; }
ready && exit 0

PY=${CLOUD_PYTHON:-python3}
command -v "$PY" >/dev/null || { echo "no $PY: the cloud services need Python 3.10+" >&2; exit 1; }
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "$PY is older than 3.10; Glance/Nova/Neutron of 2026.2 need 3.10+" >&2; exit 1; }
"$PY" -c 'import venv, ensurepip' 2>/dev/null \
    || { echo "$PY lacks venv/ensurepip (Debian: apt-get install python3-venv)" >&2; exit 1; }

# Two test runs may install at once: the second waits for the first.
mkdir -p "$(dirname "$CLOUD_VENV")"
exec 9>"$CLOUD_VENV.lock"
flock -w 900 9 || { echo "timed out waiting for another install ($CLOUD_VENV.lock)" >&2; exit 1; }
ready && exit 0

T0=$SECONDS
cloud_log "installing $CLOUD_PACKAGES into $CLOUD_VENV"
# A venv that exists is completed in place (pip only adds what is missing);
# a broken one is rebuilt. The stamp is written last.
if ! "$CLOUD_VENV/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$CLOUD_VENV"
    "$PY" -m venv "$CLOUD_VENV"
    timeout 300 "$CLOUD_VENV/bin/pip" install -q --disable-pip-version-check -U pip setuptools wheel
fi
# shellcheck disable=SC2086  # CLOUD_PACKAGES is a list
timeout 900 "$CLOUD_VENV/bin/pip" install -q --disable-pip-version-check \
    -c "$CLOUD_HARNESS/constraints.txt" $CLOUD_PACKAGES
# An install killed midway leaves packages pip counts as installed without
# their console scripts (seen: nova without nova-manage); pip then skips
# them for good, so they are installed again over themselves.
missing() {
    for b in glance-manage nova-manage neutron-db-manage placement-manage gunicorn; do
        [ -x "$CLOUD_VENV/bin/$b" ] || printf '%s ' "$b"
    done
}
if [ -n "$(missing)" ]; then
    cloud_log "console scripts missing ($(missing)): an interrupted install; reinstalling the packages"
    # shellcheck disable=SC2086
    timeout 900 "$CLOUD_VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps \
        -c "$CLOUD_HARNESS/constraints.txt" $CLOUD_PACKAGES
    [ -z "$(missing)" ] || { echo "still missing after a reinstall: $(missing)" >&2; exit 1; }
fi
"$CLOUD_VENV/bin/pip" check >/dev/null
echo "$want" > "$STAMP"
cloud_log "installed in $((SECONDS - T0)) s"
