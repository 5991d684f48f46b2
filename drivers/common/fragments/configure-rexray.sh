#!/bin/bash
# The rexray volume driver (upstream's volume-service.sh): REX-Ray with its
# Cinder backend, serving Docker's volume plugin API, so that containers get
# Cinder volumes (`docker volume create -d rexray`, or Marathon's external
# volumes on Mesos). It authenticates as the cluster's trustee within the
# trust (TRUSTEE_USER_ID, TRUSTEE_PASSWORD, TRUST_ID at AUTH_URL);
# REXRAY_PREEMPT lets a node take over a volume still attached elsewhere.
# Nothing to do unless VOLUME_DRIVER is rexray.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib-common.sh
. /var/lib/magnum/lib.sh

if [ "${VOLUME_DRIVER:-}" != rexray ]; then
    exit 0
fi
if [ -z "${AUTH_URL:-}" ] || [ -z "${TRUSTEE_USER_ID:-}" ]; then
    log "rexray needs the trustee's credentials and AUTH_URL"
    exit 1
fi

if [ ! -x "$BIN_DIR/rexray" ]; then
    install_tarball rexray "$REXRAY_DOWNLOAD_URL/v$REXRAY_TAG/rexray-Linux-$(uname -m)-$REXRAY_TAG.tar.gz" \
        "$BIN_DIR" rexray
fi

preempt=false
if is_true "${REXRAY_PREEMPT:-false}"; then
    preempt=true
fi
# The configuration holds the trustee's password: private to root.
install -d -m 0700 "$MAGNUM_ROOT/etc/rexray" "$MAGNUM_ROOT/var/lib/rexray" "$MAGNUM_ROOT/var/log/rexray"
(
    umask 077
    cat >"$MAGNUM_ROOT/etc/rexray/config.yml" <<CONFIG
rexray:
  logLevel: warn
libstorage:
  service: cinder
  integration:
    volume:
      operations:
        mount:
          preempt: $preempt
cinder:
  authURL: $AUTH_URL
  userID: $TRUSTEE_USER_ID
  password: $TRUSTEE_PASSWORD
  trustID: ${TRUST_ID:-}
CONFIG
)

install_unit rexray <<UNIT
[Unit]
Description=REX-Ray: Cinder volumes for Docker
After=docker.service network-online.target
Wants=network-online.target
Requires=docker.service

[Service]
ExecStart=$BIN_DIR/rexray start -f
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
log "rexray serves Cinder volumes to Docker (preempt: $preempt)"
