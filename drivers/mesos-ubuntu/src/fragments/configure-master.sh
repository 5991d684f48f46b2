#!/bin/bash
# A Mesos master: ZooKeeper (server id NODE_INDEX + 1), mesos-master with a
# quorum of a majority of NUMBER_OF_MASTERS, and Marathon, which serves the
# cluster's API on 8080. Several masters form one ZooKeeper ensemble from
# MESOS_MASTERS_IPS.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. /var/lib/magnum/lib.sh

ip=$(node_ip)
masters=${MESOS_MASTERS_IPS:-}
if [ -z "$masters" ]; then
    if [ "$NUMBER_OF_MASTERS" -gt 1 ]; then
        log "$NUMBER_OF_MASTERS masters need MESOS_MASTERS_IPS for the ZooKeeper ensemble"
        exit 1
    fi
    masters=$ip
fi

# ZooKeeper: this master's id and every member of the ensemble.
myid=$((NODE_INDEX + 1))
set_option /etc/zookeeper/conf/myid "$myid"
{
    echo "tickTime=2000"
    echo "initLimit=10"
    echo "syncLimit=5"
    echo "dataDir=/var/lib/zookeeper"
    echo "clientPort=2181"
    id=1
    for member in $masters; do
        echo "server.$id=$member:2888:3888"
        id=$((id + 1))
    done
} >/etc/zookeeper/conf/zoo.cfg

quorum=$((NUMBER_OF_MASTERS / 2 + 1))
set_option /etc/mesos/zk "$(zk_url "$masters" mesos)"
set_option /etc/mesos-master/quorum "$quorum"
set_option /etc/mesos-master/ip "$ip"
set_option /etc/mesos-master/hostname "$ip"
set_option /etc/mesos-master/cluster "$CLUSTER_NAME"
set_option /etc/mesos-master/work_dir /var/lib/mesos

set_option /etc/marathon/conf/master "$(zk_url "$masters" mesos)"
set_option /etc/marathon/conf/zk "$(zk_url "$masters" marathon)"
set_option /etc/marathon/conf/hostname "$ip"
set_option /etc/marathon/conf/http_port 8080

# A master runs no agent. The image (Ubuntu 14.04, upstart) ships every
# service disabled by an /etc/init/*.override; lib-common.sh's service_*
# remove it (upstream's start-services-master.sh), or use systemd.
service_disable mesos-slave
for service in zookeeper mesos-master marathon; do
    service_enable "$service"
    service_restart "$service"
done
log "mesos master $myid of $NUMBER_OF_MASTERS (quorum $quorum) on $ip"
