#!/bin/bash
# Helpers every driver's node fragments share (drivers/common/fragments). The
# user data writes this file, then the driver's own fragments/lib.sh, into
# /var/lib/magnum/lib.sh, which each fragment sources and never runs. Every
# value comes from /etc/sysconfig/heat-params, written by the user data.
#
# MAGNUM_ROOT (empty on a node) prefixes every file these helpers write and
# the heat-params they read: the tests run them in a scratch directory.

MAGNUM_ROOT=${MAGNUM_ROOT:-}

# shellcheck source=/dev/null  # written at boot by the server's user data
. "$MAGNUM_ROOT/etc/sysconfig/heat-params"

# shellcheck disable=SC2034  # used by the fragments that source this file
BIN_DIR=$MAGNUM_ROOT/usr/local/bin

log() {
    echo "magnum[$(basename "$0")]: $*" >&2
}

# "True"/"true"/"1"/"yes" (Heat writes booleans as True/False).
is_true() {
    case "${1,,}" in
    true | 1 | yes) return 0 ;;
    *) return 1 ;;
    esac
}

# Whether the cluster uses TLS (a cluster without TLS_DISABLED does).
tls_enabled() {
    ! is_true "${TLS_DISABLED:-false}"
}

# The architecture as release artifacts name it.
arch() {
    case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    *) uname -m ;;
    esac
}

# ---- Proxy ------------------------------------------------------------------
# The cluster template's http_proxy, https_proxy and no_proxy (upstream's
# add-proxy.sh). NO_PROXY always gets the addresses the fragments call
# directly: this node, the metadata service and the cluster's own members,
# which no proxy can reach (curl before 7.86, the images' curl, ignores
# CIDRs in no_proxy, so they are listed one by one).
no_proxy_list() {
    local list=${NO_PROXY:-} address
    # shellcheck disable=SC2086  # the member lists are space-separated
    for address in localhost 127.0.0.1 169.254.169.254 ${KUBE_MASTER_IP:-} \
        ${SWARM_API_IP:-} ${ETCD_MEMBERS:-} ${MESOS_MASTERS_IPS:-}; do
        case ",$list," in
        *",$address,"*) ;;
        *) list="${list:+$list,}$address" ;;
        esac
    done
    echo "$list"
}

# Exports the proxy to every command a fragment runs (curl reads the lower
# case names, most other tools the upper case ones).
export_proxy() {
    if [ -z "${HTTP_PROXY:-}${HTTPS_PROXY:-}" ]; then
        return 0
    fi
    NO_PROXY=$(no_proxy_list)
    export HTTP_PROXY HTTPS_PROXY NO_PROXY
    export http_proxy=$HTTP_PROXY https_proxy=$HTTPS_PROXY no_proxy=$NO_PROXY
}
export_proxy

# Replaces the lines of FILE that start with PREFIX by LINE (appended when
# there was none): reruns of a fragment leave one line per setting.
set_line() {
    local file=$1 prefix=$2 line=$3 kept
    mkdir -p "$(dirname "$file")"
    kept=$(awk -v prefix="$prefix" 'index($0, prefix) != 1' "$file" 2>/dev/null || true)
    printf '%s%s\n' "${kept:+$kept$'\n'}" "$line" >"$file"
}

# The proxy for login shells and PAM sessions (/etc/environment), and for
# each container runtime SERVICE (docker, containerd) the node runs: a
# systemd drop-in, or on upstart the service's /etc/default file (upstream
# mesos add-proxy.sh).
configure_proxy() {
    local service name value dropin
    if [ -z "${HTTP_PROXY:-}${HTTPS_PROXY:-}" ]; then
        return 0
    fi
    for name in HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        value=${!name:-}
        set_line "$MAGNUM_ROOT/etc/environment" "$name=" "$name=$value"
        set_line "$MAGNUM_ROOT/etc/environment" "${name,,}=" "${name,,}=$value"
    done
    for service in "$@"; do
        if has_systemd; then
            dropin=$MAGNUM_ROOT/etc/systemd/system/$service.service.d/magnum-proxy.conf
            mkdir -p "$(dirname "$dropin")"
            printf '[Service]\nEnvironment="HTTP_PROXY=%s" "HTTPS_PROXY=%s" "NO_PROXY=%s"\n' \
                "${HTTP_PROXY:-}" "${HTTPS_PROXY:-}" "$NO_PROXY" >"$dropin"
        else
            for name in HTTP_PROXY HTTPS_PROXY NO_PROXY; do
                value=${!name:-}
                set_line "$MAGNUM_ROOT/etc/default/$service" "export ${name,,}=" \
                    "export ${name,,}=\"$value\""
            done
        fi
    done
    log "proxy: http ${HTTP_PROXY:-none}, https ${HTTPS_PROXY:-none}, not for $NO_PROXY"
}

# ---- The cloud's CA ---------------------------------------------------------
# OPENSTACK_CA, the CA bundle the cloud's endpoints (Keystone, the magnum
# API) use, goes into the system trust store, which curl, python and the
# container runtimes read: Fedora's anchors and update-ca-trust, Ubuntu's
# /usr/local/share/ca-certificates and update-ca-certificates.
install_openstack_ca() {
    local file
    if [ -z "${OPENSTACK_CA:-}" ]; then
        return 0
    fi
    if command -v update-ca-trust >/dev/null 2>&1; then
        file=$MAGNUM_ROOT/etc/pki/ca-trust/source/anchors/magnum-openstack-ca.pem
        mkdir -p "$(dirname "$file")"
        printf '%s\n' "$OPENSTACK_CA" >"$file"
        chmod 0644 "$file"
        update-ca-trust extract
    elif command -v update-ca-certificates >/dev/null 2>&1; then
        file=$MAGNUM_ROOT/usr/local/share/ca-certificates/magnum-openstack-ca.crt
        mkdir -p "$(dirname "$file")"
        printf '%s\n' "$OPENSTACK_CA" >"$file"
        chmod 0644 "$file"
        update-ca-certificates
    else
        log "neither update-ca-trust nor update-ca-certificates: cannot trust the cloud's CA"
        return 1
    fi
    log "the cloud's CA is trusted ($file)"
}

# curl options for calls to the cloud: nothing (the system trust store,
# which holds OPENSTACK_CA), or, only when the operator turned [drivers]
# verify_ca off, no verification at all, as upstream's nodes do then.
cloud_tls_options() {
    if ! is_true "${VERIFY_CA:-true}"; then
        echo "--insecure"
    fi
}

# ---- Registry ---------------------------------------------------------------
# The cluster template's insecure_registry_url as host[:port] (no scheme or
# path), what Docker's insecure-registries and containerd's hosts take.
registry_host() {
    local url=${INSECURE_REGISTRY_URL:-}
    url=${url#*://}
    echo "${url%%/*}"
}

# The registry as a mirror URL (http unless the template names a scheme).
registry_mirror() {
    case "${INSECURE_REGISTRY_URL:-}" in
    *://*) echo "${INSECURE_REGISTRY_URL%/}" ;;
    *) echo "http://$(registry_host)" ;;
    esac
}

# Merges the JSON object JSON into the JSON file FILE (made when missing):
# Docker's daemon.json, which the image and several fragments share.
json_merge() {
    local file=$1 json=$2
    mkdir -p "$(dirname "$file")"
    python3 - "$file" "$json" <<'PY'
import json, os, sys
path, update = sys.argv[1], json.loads(sys.argv[2])
current = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        current = json.load(f)
current.update(update)
with open(path + ".part", "w") as f:
    json.dump(current, f, indent=2, sort_keys=True)
    f.write("\n")
os.rename(path + ".part", path)
PY
}

# Docker pulls from the cluster's registry over plain HTTP (insecure_registry_url),
# and with registry_enabled uses it as its mirror of Docker Hub. systemd:
# /etc/docker/daemon.json; upstart (Ubuntu 14.04's Docker 1.x):
# DOCKER_OPTS in /etc/default/docker.
configure_docker_registry() {
    local host mirror json
    host=$(registry_host)
    if [ -z "$host" ]; then
        return 0
    fi
    mirror=$(registry_mirror)
    local sysconfig=$MAGNUM_ROOT/etc/sysconfig/docker
    if has_systemd && grep -q '^INSECURE_REGISTRY=' "$sysconfig" 2>/dev/null; then
        # The image's unit passes $INSECURE_REGISTRY (Fedora Atomic's, when
        # set): Docker refuses the same setting in daemon.json too.
        # Added to the image's own, inside the closing quote.
        if ! grep -q "^INSECURE_REGISTRY=.*--insecure-registry $host\b" "$sysconfig"; then
            sed -i "/^INSECURE_REGISTRY=/ s|\(['\"]\?\)\$| --insecure-registry $host\1|" "$sysconfig"
        fi
        if is_true "${REGISTRY_ENABLED:-false}"; then
            json_merge "$MAGNUM_ROOT/etc/docker/daemon.json" "$(printf '{"registry-mirrors": ["%s"]}' "$mirror")"
        fi
    elif has_systemd; then
        json=$(printf '{"insecure-registries": ["%s"]' "$host")
        if is_true "${REGISTRY_ENABLED:-false}"; then
            json=$(printf '%s, "registry-mirrors": ["%s"]' "$json" "$mirror")
        fi
        json_merge "$MAGNUM_ROOT/etc/docker/daemon.json" "$json}"
    else
        local opts="--insecure-registry=$host"
        if is_true "${REGISTRY_ENABLED:-false}"; then
            opts="$opts --registry-mirror=$mirror"
        fi
        # Appended to the image's own DOCKER_OPTS line, which stays.
        # shellcheck disable=SC2016  # written as is, expanded by the job
        set_line "$MAGNUM_ROOT/etc/default/docker" 'DOCKER_OPTS="$DOCKER_OPTS --insecure-registry=' \
            "DOCKER_OPTS=\"\$DOCKER_OPTS $opts\""
    fi
    log "docker: insecure registry $host$(is_true "${REGISTRY_ENABLED:-false}" && echo ", mirror $mirror")"
}

# containerd (its config_path, /etc/containerd/certs.d): the registry over
# plain HTTP, and with registry_enabled as the mirror of Docker Hub.
configure_containerd_registry() {
    local host mirror dir=$MAGNUM_ROOT/etc/containerd/certs.d
    host=$(registry_host)
    if [ -z "$host" ]; then
        return 0
    fi
    mirror=$(registry_mirror)
    mkdir -p "$dir/$host"
    printf 'server = "%s"\n\n[host."%s"]\n  capabilities = ["pull", "resolve", "push"]\n  skip_verify = true\n' \
        "$mirror" "$mirror" >"$dir/$host/hosts.toml"
    if is_true "${REGISTRY_ENABLED:-false}"; then
        mkdir -p "$dir/docker.io"
        printf 'server = "https://registry-1.docker.io"\n\n[host."%s"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n' \
            "$mirror" >"$dir/docker.io/hosts.toml"
    fi
    log "containerd: insecure registry $host"
}

# An image NAME:TAG under container_infra_prefix (upstream's label: a
# registry and path holding every image the nodes run), else under its
# usual place DEFAULT_PREFIX ("docker.io/coredns/").
image() {
    local default_prefix=$1 name=$2
    echo "${CONTAINER_INFRA_PREFIX:-$default_prefix}$name"
}

# ---- Downloads --------------------------------------------------------------
# The sha256 the cluster's labels give artifact NAME (ARTIFACT_SHA256 holds
# "name=sha256" words, from the <name>_sha256 labels), if any.
label_sha256() {
    local name=$1 entry
    for entry in ${ARTIFACT_SHA256:-}; do
        if [ "${entry%%=*}" = "$name" ]; then
            echo "${entry#*=}"
            return 0
        fi
    done
}

# The sha256 the checksum files published next to URL give its file: first
# the SUMS_URLs given, then <url>.sha256 (dl.k8s.io, the CNI plugins),
# <url>.sha256sum (containerd), and the directory's SHA256SUMS (etcd),
# sha256sum.txt or checksums.txt. A file holds one bare digest or
# sha256sum lines ("<digest>  <file>").
published_sha256() {
    local url=$1 file=${1##*/} dir=${1%/*} sums_url sums digest
    shift
    for sums_url in "$@" "$url.sha256" "$url.sha256sum" "$dir/SHA256SUMS" \
        "$dir/sha256sum.txt" "$dir/checksums.txt"; do
        sums=$(curl -fsSL --retry 5 --retry-delay 5 "$sums_url" 2>/dev/null) || continue
        digest=$(awk -v file="$file" '
            NF == 1 && NR == 1 { bare = $1 }
            NF >= 2 { name = $2; sub(/^\*/, "", name); sub(/^.*\//, "", name); if (name == file) { print $1; found = 1; exit } }
            END { if (!found && bare != "") print bare }
        ' <<<"$sums")
        if [ -n "$digest" ]; then
            echo "$digest $sums_url"
            return 0
        fi
    done
    return 1
}

# Downloads artifact NAME from URL to DEST, verified by sha256: the
# <NAME>_sha256 label when the cluster sets one, else a checksum file
# published next to URL (see published_sha256; SUMS_URLs first), fetched
# from the same mirror. The label pins the artifact; a published checksum
# only catches a corrupt or truncated download, not a compromised mirror,
# which can publish a matching checksum. Nothing is left at DEST unless the
# digest matches, and nothing is downloaded without one.
download() {
    local name=$1 url=$2 dest=$3 want source got part published
    shift 3
    want=$(label_sha256 "$name")
    source="label ${name}_sha256"
    if [ -z "$want" ]; then
        published=$(published_sha256 "$url" "$@") || published=""
        want=${published%% *}
        source=${published#* }
    fi
    want=${want,,}
    if ! [[ $want =~ ^[0-9a-f]{64}$ ]]; then
        log "$name: no sha256 for $url (no ${name}_sha256 label, no checksum file next to it); set the label or publish <file>.sha256 on the mirror"
        return 1
    fi
    mkdir -p "$(dirname "$dest")"
    part=$(mktemp "$dest.XXXXXX")
    log "downloading $name from $url"
    if ! curl -fsSL --retry 5 --retry-delay 5 -o "$part" "$url"; then
        rm -f "$part"
        log "$name: cannot download $url"
        return 1
    fi
    got=$(sha256sum "$part" | awk '{print $1}')
    if [ "$got" != "$want" ]; then
        rm -f "$part"
        log "$name: sha256 mismatch for $url: expected $want (from $source), got $got; nothing installed"
        return 1
    fi
    mv "$part" "$dest"
}

# Installs the binary NAME from URL as BIN_DIR/FILE (default NAME) unless it
# is already there; see download.
install_binary() {
    local name=$1 url=$2 file=${3:-$1}
    if [ -x "$BIN_DIR/$file" ]; then
        return 0
    fi
    download "$name" "$url" "$BIN_DIR/$file"
    chmod 0755 "$BIN_DIR/$file"
}

# Downloads the tarball of artifact NAME from URL and extracts it into DIR
# with the further tar arguments given (options, then members); see
# download.
install_tarball() {
    local name=$1 url=$2 dir=$3 scratch
    shift 3
    scratch=$(mktemp -d)
    if ! download "$name" "$url" "$scratch/${url##*/}"; then
        rm -rf "$scratch"
        return 1
    fi
    mkdir -p "$dir"
    tar -xzf "$scratch/${url##*/}" -C "$dir" "$@"
    rm -rf "$scratch"
}

# ---- Services ---------------------------------------------------------------
# Whether systemd runs this node (the Mesos image, Ubuntu 14.04, runs
# upstart).
has_systemd() {
    [ -d "$MAGNUM_ROOT/run/systemd/system" ]
}

# An upstart job (/etc/init/NAME.conf) running what the systemd unit on
# stdin runs: its Environment= and ExecStart= (continuation lines joined),
# respawned as Restart=always does.
upstart_job() {
    local name=$1 unit description command variables
    unit=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
    description=$(sed -n 's/^Description=//p' <<<"$unit" | head -n 1)
    command=$(sed -n 's/^ExecStart=//p' <<<"$unit" | tail -n 1)
    variables=$(sed -n 's/^Environment=/env /p' <<<"$unit")
    mkdir -p "$MAGNUM_ROOT/etc/init"
    {
        printf 'description "%s"\n' "$description"
        printf 'start on (local-filesystems and net-device-up IFACE!=lo)\n'
        printf 'stop on runlevel [!2345]\n'
        printf 'respawn\n'
        if [ -n "$variables" ]; then
            printf '%s\n' "$variables"
        fi
        printf 'exec %s\n' "$command"
    } >"$MAGNUM_ROOT/etc/init/$name.conf"
}

# Installs and starts the service NAME described by the systemd unit on
# stdin: as that unit under systemd, as an upstart job otherwise.
install_unit() {
    local name=$1
    if has_systemd; then
        mkdir -p "$MAGNUM_ROOT/etc/systemd/system"
        cat >"$MAGNUM_ROOT/etc/systemd/system/$name.service"
        systemctl daemon-reload
        systemctl enable --now "$name.service"
    else
        upstart_job "$name"
        service_enable "$name"
        service_restart "$name"
    fi
}

# Starts the packaged service NAME at boot: systemctl enable, or on upstart
# removing the /etc/init/NAME.override ("manual") the image ships.
service_enable() {
    if has_systemd; then
        systemctl enable "$1.service"
    else
        rm -f "$MAGNUM_ROOT/etc/init/$1.override"
    fi
}

# Stops the packaged service NAME and keeps it from starting at boot.
service_disable() {
    if has_systemd; then
        systemctl disable --now "$1.service" || true
    else
        mkdir -p "$MAGNUM_ROOT/etc/init"
        echo manual >"$MAGNUM_ROOT/etc/init/$1.override"
        service "$1" stop || true
    fi
}

# (Re)starts service NAME with its current configuration.
service_restart() {
    if has_systemd; then
        systemctl restart "$1.service"
    else
        service "$1" restart || service "$1" start
    fi
}

# ---- The cluster's own endpoints ---------------------------------------------
# This node's private address: the metadata service, else the first address.
node_ip() {
    local ip
    ip=$(curl -fsS --max-time 5 http://169.254.169.254/latest/meta-data/local-ipv4 || true)
    if [ -z "$ip" ]; then
        ip=$(hostname -I | awk '{print $1}')
    fi
    echo "$ip"
}

node_name() {
    hostname -s | tr '[:upper:]' '[:lower:]'
}

# curl against the magnum API with the cluster credential. The token goes
# through a private header file: never on a command line (ps) nor in a log.
magnum_api() {
    local headers rc=0
    local -a tls=()
    headers=$(mktemp)
    printf 'X-Auth-Token: %s\nOpenStack-API-Version: container-infra latest\nContent-Type: application/json\nAccept: application/json\n' \
        "$CLUSTER_CREDENTIAL" >"$headers"
    read -r -a tls <<<"$(cloud_tls_options)"
    # ${tls[@]+...}: an empty array is "unbound" to bash 4.3's set -u.
    curl -fsS --retry 10 --retry-delay 5 ${tls[@]+"${tls[@]}"} -H "@$headers" "$@" || rc=$?
    rm -f "$headers"
    return "$rc"
}

# The "pem" member of the JSON document on stdin.
pem_field() {
    python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["pem"])'
}

# Waits until URL answers (up to about ten minutes).
wait_for() {
    local url=$1
    shift
    local i
    for i in $(seq 1 120); do
        if curl -fsS --max-time 5 "$@" "$url" >/dev/null 2>&1; then
            return 0
        fi
        log "waiting for $url ($i)"
        sleep 5
    done
    log "$url did not come up"
    return 1
}

# $1 as a JSON string literal (quotes included): backslashes, quotes and the
# common control characters escaped, any other control character dropped,
# so that a fragment's output can never break the signal's JSON.
json_string() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    s=$(printf '%s' "$s" | LC_ALL=C tr -d '\000-\010\013\014\016-\037')
    printf '"%s"' "$s"
}

# Signals this node's Heat wait condition: STATUS (SUCCESS or FAILURE),
# REASON (text) and DATA (a JSON value). The handle's token goes through a
# private header file: never on a command line (ps) nor in a log.
signal_heat() {
    local status=$1 reason=$2 data=$3 headers rc=0
    local -a tls=()
    if [ -z "${WAIT_HANDLE_ENDPOINT:-}" ]; then
        log "no wait condition handle to signal $status to"
        return 0
    fi
    headers=$(mktemp)
    printf 'X-Auth-Token: %s\nContent-Type: application/json\nAccept: application/json\n' \
        "$WAIT_HANDLE_TOKEN" >"$headers"
    read -r -a tls <<<"$(cloud_tls_options)"
    # The same id on every signal: a rerun replaces its earlier signal.
    # ${tls[@]+...}: an empty array is "unbound" to bash 4.3's set -u.
    printf '{"status": "%s", "reason": %s, "data": %s, "id": "1"}' \
        "$status" "$(json_string "$reason")" "$data" |
        curl -fsS --retry 10 --retry-delay 5 ${tls[@]+"${tls[@]}"} -H "@$headers" -X POST \
            --data-binary @- -o /dev/null "$WAIT_HANDLE_ENDPOINT" || rc=$?
    rm -f "$headers"
    return "$rc"
}
