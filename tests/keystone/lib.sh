# Shared settings of the Keystone test harness. Source it; do not run it.
# Everything listens on 127.0.0.1 only. Test-only credentials, overridable.
KS_HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KS_REPO=$(cd "$KS_HARNESS/../.." && pwd)
export KEYSTONE_VENV=${KEYSTONE_VENV:-$KS_REPO/target/keystone-venv}
# One Keystone per state directory: a test passes its own temporary one.
export KEYSTONE_STATE=${KEYSTONE_STATE:-$KS_REPO/target/keystone-run}

export KS_REGION=${KS_REGION:-RegionOne}
export KS_ADMIN_PASSWORD=${KS_ADMIN_PASSWORD:-admin-secret}
export KS_MAGNUM_PASSWORD=${KS_MAGNUM_PASSWORD:-magnum-secret}
export KS_DEMO_PASSWORD=${KS_DEMO_PASSWORD:-demo-secret}
export KS_READER_PASSWORD=${KS_READER_PASSWORD:-reader-secret}
# What the catalog lists for Magnum itself (container-infra); nothing has to
# listen there for the harness.
export KS_MAGNUM_API_URL=${KS_MAGNUM_API_URL:-http://127.0.0.1:9511/v1}

# Bumped whenever install.sh changes what it installs.
KS_PACKAGES="keystone==30.0.0 gunicorn==27.0.1"

ks_log() { echo "[keystone-harness $(date +%H:%M:%S)] $*" >&2; }
ks_pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# The stamp names what was installed and from which constraints, so a change
# to either reinstalls.
ks_stamp_want() {
    { echo "$KS_PACKAGES"; cat "$KS_HARNESS/constraints.txt"; } | sha256sum | cut -d' ' -f1
}
