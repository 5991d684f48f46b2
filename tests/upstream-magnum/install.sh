#!/usr/bin/env bash
# Install upstream Magnum 23.0.0 (the newest release on PyPI) and PyMySQL
# into $MAGNUM_VENV (default target/magnum-venv), for the import test: its
# own `magnum-db-manage` makes an upstream database and fill.py fills it
# through its own object layer. Pinned with tests/cloud/constraints.txt
# (the oslo libraries of the same OpenStack release). Idempotent: a stamp
# records what was installed. Prints the venv's path. ~50 s uncached.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
MAGNUM_VENV=${MAGNUM_VENV:-$root/target/magnum-venv}
PACKAGES="magnum==23.0.0 PyMySQL"
want="$PACKAGES $(sha256sum "$root/tests/cloud/constraints.txt" | cut -c1-16)"
STAMP=$MAGNUM_VENV/.magnum-import-stamp
ready() { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && [ -x "$MAGNUM_VENV/bin/magnum-db-manage" ]; }
if ready; then echo "$MAGNUM_VENV"; exit 0; fi

PY=${MAGNUM_PYTHON:-python3}
command -v "$PY" >/dev/null || { echo "no $PY: upstream Magnum needs Python 3.10+" >&2; exit 1; }
"$PY" -c 'import venv, ensurepip' 2>/dev/null \
    || { echo "$PY lacks venv/ensurepip (Debian: apt-get install python3-venv)" >&2; exit 1; }

# Two test runs may install at once: the second waits for the first.
mkdir -p "$(dirname "$MAGNUM_VENV")"
exec 9>"$MAGNUM_VENV.lock"
flock -w 900 9 || { echo "timed out waiting for another install ($MAGNUM_VENV.lock)" >&2; exit 1; }
if ready; then echo "$MAGNUM_VENV"; exit 0; fi

if ! "$MAGNUM_VENV/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$MAGNUM_VENV"
    "$PY" -m venv "$MAGNUM_VENV"
    timeout 300 "$MAGNUM_VENV/bin/pip" install -q --disable-pip-version-check -U pip setuptools wheel >&2
fi
# shellcheck disable=SC2086  # PACKAGES is a list
timeout 900 "$MAGNUM_VENV/bin/pip" install -q --disable-pip-version-check \
    -c "$root/tests/cloud/constraints.txt" $PACKAGES >&2
# An install killed midway can leave magnum without its console scripts,
# which pip then never adds: install it again over itself.
if [ ! -x "$MAGNUM_VENV/bin/magnum-db-manage" ]; then
    # shellcheck disable=SC2086
    timeout 900 "$MAGNUM_VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall \
        --no-deps -c "$root/tests/cloud/constraints.txt" $PACKAGES >&2
fi
[ -x "$MAGNUM_VENV/bin/magnum-db-manage" ] || { echo "magnum-db-manage missing after install" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "$MAGNUM_VENV"
