#!/bin/bash
# Runs the control plane on a master: kube-apiserver, kube-controller-manager
# and kube-scheduler. With TLS the API server authenticates clients by the
# cluster CA's certificates; with TLS disabled it serves only itself on 6443
# (a throw-away self-signed certificate, every request allowed) and a
# kubectl proxy publishes it as plain HTTP on KUBE_API_PORT, the only API
# port the security group opens in that mode.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. /var/lib/magnum/lib.sh

umask 077
install -d -m 0700 "$CERT_DIR"
ip=$(node_ip)
for component in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    install_kube_binary "$component"
done

etcd_flags="--etcd-servers=http://127.0.0.1:2379"
etcdctl=("$BIN_DIR/etcdctl" --endpoints=http://127.0.0.1:2379)
if tls_enabled; then
    etcd_flags="--etcd-servers=https://127.0.0.1:2379 --etcd-cafile=$CERT_DIR/etcd-ca.crt"
    etcd_flags="$etcd_flags --etcd-certfile=$CERT_DIR/etcd.crt --etcd-keyfile=$CERT_DIR/etcd.key"
    etcdctl=("$BIN_DIR/etcdctl" --endpoints=https://127.0.0.1:2379 --cacert="$CERT_DIR/etcd-ca.crt"
        --cert="$CERT_DIR/etcd.crt" --key="$CERT_DIR/etcd.key")
fi

# Every master must sign and check service-account tokens with one key: the
# first master to get here publishes a fresh key in etcd, the others take it.
sa_key=$CERT_DIR/service-account.key
sa_path=/magnum/service-account-key
if [ ! -s "$sa_key" ]; then
    wait_for_etcd=0
    until "${etcdctl[@]}" endpoint health >/dev/null 2>&1; do
        wait_for_etcd=$((wait_for_etcd + 1))
        if [ "$wait_for_etcd" -gt 120 ]; then
            log "etcd is not healthy"
            exit 1
        fi
        sleep 5
    done
    fresh=$(openssl genrsa 2048 2>/dev/null | base64 -w0)
    # Three sections (compares, success, failure), each ended by an empty
    # line: etcdctl 3.4 fails with "Error: EOF" on a missing last one.
    printf 'create("%s") = "0"\n\nput %s %s\n\n\n' "$sa_path" "$sa_path" "$fresh" |
        "${etcdctl[@]}" txn >/dev/null
    "${etcdctl[@]}" get --print-value-only "$sa_path" | base64 -d >"$sa_key"
    openssl rsa -in "$sa_key" -pubout -out "$CERT_DIR/service-account.pub" 2>/dev/null
fi

if tls_enabled; then
    secure_port=$KUBE_API_PORT
    local_api=$(api_url 127.0.0.1)
    auth_flags="--client-ca-file=$CERT_DIR/ca.crt --authorization-mode=Node,RBAC"
    auth_flags="$auth_flags --tls-cert-file=$CERT_DIR/apiserver.crt --tls-private-key-file=$CERT_DIR/apiserver.key"
    auth_flags="$auth_flags --kubelet-client-certificate=$CERT_DIR/apiserver-kubelet-client.crt"
    auth_flags="$auth_flags --kubelet-client-key=$CERT_DIR/apiserver-kubelet-client.key"
    auth_flags="$auth_flags --kubelet-certificate-authority=$CERT_DIR/ca.crt"
    auth_flags="$auth_flags --requestheader-client-ca-file=$CERT_DIR/front-proxy-ca.crt"
    auth_flags="$auth_flags --requestheader-allowed-names=front-proxy-client"
    auth_flags="$auth_flags --requestheader-username-headers=X-Remote-User"
    auth_flags="$auth_flags --requestheader-group-headers=X-Remote-Group"
    auth_flags="$auth_flags --requestheader-extra-headers-prefix=X-Remote-Extra-"
    auth_flags="$auth_flags --proxy-client-cert-file=$CERT_DIR/front-proxy-client.crt"
    auth_flags="$auth_flags --proxy-client-key-file=$CERT_DIR/front-proxy-client.key"
    controller_ca="--root-ca-file=$CERT_DIR/ca.crt"
else
    secure_port=6443
    local_api=http://127.0.0.1:$KUBE_API_PORT
    auth_flags="--anonymous-auth=true --authorization-mode=AlwaysAllow --cert-dir=/var/lib/kube-apiserver"
    controller_ca=""
fi

# The labels' additions: admission plugins besides kube-apiserver's defaults
# (admission_control_list), and each component's *_options last, so that
# they override the flags above.
admission_flags=""
if [ -n "$ADMISSION_CONTROL_LIST" ]; then
    admission_flags="--enable-admission-plugins=$ADMISSION_CONTROL_LIST"
fi

install_unit kube-apiserver <<UNIT
[Unit]
Description=Kubernetes API server
After=etcd.service
Wants=etcd.service

[Service]
ExecStart=$BIN_DIR/kube-apiserver --advertise-address=$ip --bind-address=0.0.0.0 \\
  --secure-port=$secure_port $etcd_flags \\
  --service-cluster-ip-range=$PORTAL_NETWORK_CIDR --allow-privileged=true \\
  --service-account-issuer=https://kubernetes.default.svc.$DNS_CLUSTER_DOMAIN \\
  --service-account-key-file=$CERT_DIR/service-account.pub \\
  --service-account-signing-key-file=$sa_key \\
  $auth_flags $admission_flags $KUBEAPI_OPTIONS
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

if ! tls_enabled; then
    write_kubeconfig "$KUBE_DIR/proxy.kubeconfig" anonymous "https://127.0.0.1:6443"
    sed -i 's|^    server: .*|&\n    insecure-skip-tls-verify: true|' "$KUBE_DIR/proxy.kubeconfig"
    install_unit kube-api-http <<UNIT
[Unit]
Description=Plain HTTP front of the Kubernetes API (TLS disabled)
After=kube-apiserver.service

[Service]
ExecStart=$BIN_DIR/kubectl --kubeconfig=$KUBE_DIR/proxy.kubeconfig proxy \\
  --address=0.0.0.0 --port=$KUBE_API_PORT --accept-hosts=.* --disable-filter=true
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
fi

write_kubeconfig "$KUBE_DIR/admin.conf" admin "$local_api"
write_kubeconfig "$KUBE_DIR/controller-manager.kubeconfig" controller-manager "$local_api"
write_kubeconfig "$KUBE_DIR/scheduler.kubeconfig" scheduler "$local_api"

cidr_flags="--cluster-cidr=$PODS_NETWORK_CIDR"
if [ "$NETWORK_DRIVER" = flannel ]; then
    # flannel takes each node's subnet from the node object's podCIDR.
    cidr_flags="$cidr_flags --allocate-node-cidrs=true --node-cidr-mask-size=$FLANNEL_NETWORK_SUBNETLEN"
fi

install_unit kube-controller-manager <<UNIT
[Unit]
Description=Kubernetes controller manager
After=kube-apiserver.service

[Service]
ExecStart=$BIN_DIR/kube-controller-manager --kubeconfig=$KUBE_DIR/controller-manager.kubeconfig \\
  --leader-elect=true --use-service-account-credentials=true \\
  --service-account-private-key-file=$sa_key $controller_ca \\
  --service-cluster-ip-range=$PORTAL_NETWORK_CIDR $cidr_flags $KUBECONTROLLER_OPTIONS
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

install_unit kube-scheduler <<UNIT
[Unit]
Description=Kubernetes scheduler
After=kube-apiserver.service

[Service]
ExecStart=$BIN_DIR/kube-scheduler --kubeconfig=$KUBE_DIR/scheduler.kubeconfig --leader-elect=true \\
  $KUBESCHEDULER_OPTIONS
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

if tls_enabled; then
    wait_for "$local_api/healthz" --cacert "$CERT_DIR/ca.crt" \
        --cert "$CERT_DIR/admin.crt" --key "$CERT_DIR/admin.key"
else
    wait_for "$local_api/healthz"
fi
log "control plane is up"
