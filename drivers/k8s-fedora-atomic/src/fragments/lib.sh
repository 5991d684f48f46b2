#!/bin/bash
# Helpers of the k8s_fedora_atomic_v1 node fragments, on top of
# drivers/common/fragments/lib-common.sh: the user data writes both into
# /var/lib/magnum/lib.sh, which each fragment sources and never runs.

KUBE_DIR=/etc/kubernetes
CERT_DIR=$KUBE_DIR/certs
# etcd's certificates and unit (drivers/common/fragments/configure-etcd.sh).
# shellcheck disable=SC2034  # used by the fragments that source this file
ETCD_CERT=$CERT_DIR/etcd.crt
# shellcheck disable=SC2034  # used by the fragments that source this file
ETCD_KEY=$CERT_DIR/etcd.key
# shellcheck disable=SC2034  # used by the fragments that source this file
ETCD_CA=$CERT_DIR/etcd-ca.crt
# shellcheck disable=SC2034  # used by the fragments that source this file
ETCD_DESCRIPTION="etcd for the Kubernetes control plane"

# Every master runs etcd.
etcd_wanted() {
    true
}

# Kubernetes uses etcd's v3 API only.
etcd_v2_wanted() {
    false
}

# The API server URL at HOST: https on KUBE_API_PORT, or plain http (8080)
# when the cluster's TLS is disabled.
api_url() {
    if tls_enabled; then
        echo "https://$1:$KUBE_API_PORT"
    else
        echo "http://$1:$KUBE_API_PORT"
    fi
}

# The Kubernetes binary NAME (dl.k8s.io publishes <binary>.sha256 next to
# it; the label is kube_apiserver_sha256 for kube-apiserver).
install_kube_binary() {
    install_binary "${1//-/_}" "$KUBE_DOWNLOAD_URL/$KUBE_TAG/bin/linux/$(arch)/$1" "$1"
}

# The container runtime kubelet talks to (configure-host.sh gives it the
# proxy and the registry).
container_runtimes() {
    case "$CONTAINER_RUNTIME" in
    containerd) echo containerd ;;
    *) echo docker ;;
    esac
}

# Writes CA_TYPE's CA certificate (kubernetes, etcd or front_proxy) to DEST.
fetch_ca() {
    local ca_type=$1 dest=$2
    magnum_api "$MAGNUM_URL/certificates/$CLUSTER_UUID?ca_cert_type=$ca_type" | pem_field >"$dest.part"
    mv "$dest.part" "$dest"
}

# Makes CERT_DIR/NAME.key and has CERT_DIR/NAME.crt signed by the cluster's
# CA_TYPE CA through the magnum API: subject CN (and O when not empty),
# subjectAltName SANS when not empty ("DNS:a,IP:1.2.3.4").
sign_cert() {
    local name=$1 cn=$2 org=$3 ca_type=$4 sans=$5
    local key="$CERT_DIR/$name.key" conf csr body
    conf=$(mktemp)
    csr=$(mktemp)
    {
        printf '[req]\nprompt = no\ndistinguished_name = dn\nreq_extensions = ext\n'
        printf '[dn]\nCN = %s\n' "$cn"
        if [ -n "$org" ]; then
            printf 'O = %s\n' "$org"
        fi
        printf '[ext]\nbasicConstraints = CA:FALSE\n'
        printf 'keyUsage = critical, digitalSignature, keyEncipherment\n'
        printf 'extendedKeyUsage = serverAuth, clientAuth\n'
        if [ -n "$sans" ]; then
            printf 'subjectAltName = %s\n' "$sans"
        fi
    } >"$conf"
    if [ ! -s "$key" ]; then
        openssl genrsa -out "$key" 2048 2>/dev/null
    fi
    openssl req -new -key "$key" -config "$conf" -out "$csr"
    body=$(printf '{"cluster_uuid": "%s", "ca_cert_type": "%s", "csr": "%s"}' \
        "$CLUSTER_UUID" "$ca_type" "$(awk '{printf "%s\\n", $0}' "$csr")")
    magnum_api -X POST --data-binary @- "$MAGNUM_URL/certificates" <<<"$body" |
        pem_field >"$CERT_DIR/$name.crt"
    rm -f "$conf" "$csr"
    log "signed $name ($cn) by the $ca_type CA"
}

# Writes a kubeconfig for USER (client certificate CERT_DIR/USER.crt) that
# talks to SERVER.
write_kubeconfig() {
    local file=$1 user=$2 server=$3
    if tls_enabled; then
        cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: magnum
  cluster:
    server: $server
    certificate-authority: $CERT_DIR/ca.crt
users:
- name: $user
  user:
    client-certificate: $CERT_DIR/$user.crt
    client-key: $CERT_DIR/$user.key
contexts:
- name: default
  context:
    cluster: magnum
    user: $user
current-context: default
KUBECONFIG
    else
        cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: magnum
  cluster:
    server: $server
users:
- name: $user
contexts:
- name: default
  context:
    cluster: magnum
    user: $user
current-context: default
KUBECONFIG
    fi
    chmod 0600 "$file"
}

# The Kubernetes version this node runs, for its bootstrap signal: kubelet's
# own answer ("Kubernetes v1.27.3"), else the tag it was installed from.
coe_version() {
    local version=""
    if [ -x "$BIN_DIR/kubelet" ]; then
        version=$("$BIN_DIR/kubelet" --version 2>/dev/null | awk '{print $2}' || true)
    fi
    echo "${version:-$KUBE_TAG}"
}

# kubelet's flags for the cloud provider: with CLOUD_PROVIDER_ENABLED the
# node is initialized by openstack-cloud-controller-manager
# (configure-cloud-provider.sh), so kubelet runs with an external provider.
kubelet_cloud_flags() {
    if is_true "${CLOUD_PROVIDER_ENABLED:-false}"; then
        echo "--cloud-provider=external"
    fi
}
