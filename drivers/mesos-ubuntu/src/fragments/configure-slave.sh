#!/bin/bash
# A Mesos agent (mesos-slave) registered with the masters' ZooKeeper
# (MESOS_MASTERS_IPS), running Docker and Mesos containers with the isolators
# (ISOLATION), image providers (IMAGE_PROVIDERS), work directory (WORK_DIR),
# executor environment (EXECUTOR_ENVIRONMENT_VARIABLES, JSON) and executor
# registration timeout the cluster's labels give.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. /var/lib/magnum/lib.sh

ip=$(node_ip)
if [ -z "$MESOS_MASTERS_IPS" ]; then
    log "no master addresses"
    exit 1
fi

set_option /etc/mesos/zk "$(zk_url "$MESOS_MASTERS_IPS" mesos)"
set_option /etc/mesos-slave/ip "$ip"
set_option /etc/mesos-slave/hostname "$ip"
set_option /etc/mesos-slave/containerizers docker,mesos
set_option /etc/mesos-slave/executor_registration_timeout "$EXECUTOR_REGISTRATION_TIMEOUT"
set_option /etc/mesos-slave/isolation "$ISOLATION"
set_option /etc/mesos-slave/image_providers "$IMAGE_PROVIDERS"
set_option /etc/mesos-slave/work_dir "${WORK_DIR:-/var/lib/mesos}"
if [ -n "$EXECUTOR_ENVIRONMENT_VARIABLES" ]; then
    printf '%s\n' "$EXECUTOR_ENVIRONMENT_VARIABLES" >/etc/mesos-slave-executor-env.json
    set_option /etc/mesos-slave/executor_environment_variables "file:///etc/mesos-slave-executor-env.json"
else
    set_option /etc/mesos-slave/executor_environment_variables ""
fi

# An agent runs no master services. The image (Ubuntu 14.04, upstart)
# ships every service disabled by an /etc/init/*.override; lib-common.sh's
# service_* remove it (upstream's start-services-slave.sh), or use systemd.
# Docker restarts with configure-host.sh's proxy and registry.
for service in zookeeper mesos-master marathon; do
    service_disable "$service"
done
for service in docker mesos-slave; do
    service_enable "$service"
    service_restart "$service"
done
log "mesos agent on $ip, masters $MESOS_MASTERS_IPS"
