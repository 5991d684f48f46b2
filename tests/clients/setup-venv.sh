#!/usr/bin/env bash
# Creates (or reuses) the virtualenv with the real OpenStack clients pinned in
# requirements.txt beside this script, and prints the venv's path last.
#
#   CLIENT_VENV   venv directory (default: <repo>/target/client-venv)
#   PYTHON        interpreter to create it with (default: python3.11, else python3)
#
# Idempotent: a stamp file in the venv records a hash of requirements.txt and
# the interpreter; when it matches, nothing is installed. Needs only PyPI.
# Exits non-zero, with the reason on stderr, when the venv cannot be made
# (e.g. no network to reach PyPI).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${CLIENT_VENV:-$repo/target/client-venv}"
req="$here/requirements.txt"

py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then py="$cand"; break; fi
  done
fi
if [ -z "$py" ] || ! command -v "$py" >/dev/null 2>&1; then
  echo "setup-venv: no python3 interpreter found (set PYTHON)" >&2
  exit 2
fi
if ! "$py" -c 'import sys, venv; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
  echo "setup-venv: $py is not Python >= 3.9 with the venv module" >&2
  exit 2
fi

pyver="$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
want="$( { cat "$req"; echo "python $pyver"; } | sha256sum | cut -d' ' -f1)"
stamp="$venv/.requirements.sha256"

mkdir -p "$(dirname "$venv")"
# Two test runs may share the venv: one installs, the other waits (bounded).
exec 9>"$venv.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 600 9 || { echo "setup-venv: timed out waiting for $venv.lock" >&2; exit 2; }
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/openstack" ]; then
  echo "setup-venv: $venv is up to date" >&2
  echo "$venv"
  exit 0
fi

# A venv from another interpreter, or a broken one, is made anew.
if [ -d "$venv" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$venv"
fi
if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" != "$pyver" ]; then
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "setup-venv: creating $venv with $py ($pyver)" >&2
  "$py" -m venv "$venv"
fi
rm -f "$stamp"

pip_opts=(--disable-pip-version-check --no-input --timeout 20 --retries 2)
echo "setup-venv: installing $(grep -cv '^\s*\(#\|$\)' "$req") pinned packages into $venv" >&2
if ! "$venv/bin/python" -m pip install "${pip_opts[@]}" -q -r "$req" >&2; then
  echo "setup-venv: pip install -r $req failed (is PyPI reachable?)" >&2
  exit 3
fi
if ! "$venv/bin/openstack" --version >/dev/null 2>&1 \
   || ! "$venv/bin/python" -c 'import magnumclient.osc.plugin' >/dev/null 2>&1; then
  echo "setup-venv: the installed clients do not run" >&2
  exit 3
fi
echo "$want" > "$stamp"
echo "setup-venv: ready: $("$venv/bin/openstack" --version 2>&1)" >&2
echo "$venv"
