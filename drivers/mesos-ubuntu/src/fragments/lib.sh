#!/bin/bash
# Helpers of the mesos_ubuntu_v1 node fragments, on top of
# drivers/common/fragments/lib-common.sh: the user data writes both into
# /var/lib/magnum/lib.sh, which each fragment sources and never runs. The
# image provides ZooKeeper, Mesos, Marathon and Docker (upstream's
# ubuntu-mesos image); the fragments configure and start them.

# The slaves run their containers in Docker (configure-host.sh gives it
# the proxy and the registry); the masters have it from the image too.
container_runtimes() {
    echo docker
}

# zk://a:2181,b:2181/PATH for the space-separated master addresses MASTERS.
zk_url() {
    local masters=$1 path=$2 hosts="" ip
    for ip in $masters; do
        hosts="${hosts:+$hosts,}$ip:2181"
    done
    echo "zk://$hosts/$path"
}

# Writes VALUE to FILE, the one-option-per-file layout of the Mesos and
# Marathon packages; an empty VALUE removes the option.
set_option() {
    local file=$1 value=$2
    mkdir -p "$(dirname "$file")"
    if [ -n "$value" ]; then
        printf '%s\n' "$value" >"$file"
    else
        rm -f "$file"
    fi
}

# The Mesos version this node runs ("mesos 1.9.0"), for its bootstrap signal.
coe_version() {
    local binary=mesos-slave
    if [ "${ROLE:-}" = master ]; then
        binary=mesos-master
    fi
    "$binary" --version 2>/dev/null | awk '{print $2}' || true
}
