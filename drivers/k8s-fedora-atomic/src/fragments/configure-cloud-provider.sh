#!/bin/bash
# The OpenStack cloud provider on the masters (upstream's
# kube-openstack-cloud-controller-manager.sh and enable-cinder-csi.sh):
# /etc/kubernetes/cloud-config from the cluster's Keystone application
# credential (OPENSTACK_APP_CRED_ID/SECRET at AUTH_URL), the same text as the
# kube-system Secret cloud-config, openstack-cloud-controller-manager
# (CLOUD_PROVIDER_TAG) on the control plane, and with CINDER_CSI_ENABLED the
# Cinder CSI controller and node plugins (CINDER_CSI_PLUGIN_TAG). kubelet
# runs with --cloud-provider=external (lib.sh's kubelet_cloud_flags). Images
# come from CONTAINER_INFRA_PREFIX when set. kubectl apply is idempotent, so
# every master applies the same objects. Nothing to do unless
# CLOUD_PROVIDER_ENABLED.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "${MAGNUM_ROOT:-}/var/lib/magnum/lib.sh"

if ! is_true "${CLOUD_PROVIDER_ENABLED:-false}"; then
    exit 0
fi
if [ -z "${AUTH_URL:-}" ] || [ -z "${OPENSTACK_APP_CRED_ID:-}" ] || [ -z "${OPENSTACK_APP_CRED_SECRET:-}" ]; then
    log "the cloud provider needs the cluster's application credential and AUTH_URL"
    exit 1
fi

cloud_config=$MAGNUM_ROOT$KUBE_DIR/cloud-config
install -d -m 0755 "$MAGNUM_ROOT$KUBE_DIR"
# The file holds the credential's secret: private to root.
(
    umask 077
    {
        echo "[Global]"
        echo "auth-url=$AUTH_URL"
        echo "application-credential-id=$OPENSTACK_APP_CRED_ID"
        echo "application-credential-secret=$OPENSTACK_APP_CRED_SECRET"
        if [ -n "${OPENSTACK_CA:-}" ]; then
            echo "ca-file=/etc/kubernetes/openstack-ca.pem"
        fi
        if ! is_true "${VERIFY_CA:-true}"; then
            echo "tls-insecure=true"
        fi
        echo
        echo "[LoadBalancer]"
        if [ -n "${EXTERNAL_NETWORK:-}" ]; then
            echo "floating-network-id=$EXTERNAL_NETWORK"
        fi
        echo "lb-provider=${OCTAVIA_PROVIDER:-amphora}"
        echo "lb-method=${OCTAVIA_LB_ALGORITHM:-ROUND_ROBIN}"
        echo "create-monitor=true"
        echo
        echo "[BlockStorage]"
        echo "bs-version=v3"
    } >"$cloud_config.new"
    if [ -n "${OPENSTACK_CA:-}" ]; then
        printf '%s\n' "$OPENSTACK_CA" >"$MAGNUM_ROOT$KUBE_DIR/openstack-ca.pem"
    fi
)
chmod 0600 "$cloud_config.new"
mv "$cloud_config.new" "$cloud_config"

kubectl=("$BIN_DIR/kubectl" --kubeconfig="$KUBE_DIR/admin.conf")
attempt=0
until "${kubectl[@]}" get --raw /healthz >/dev/null 2>&1; do
    attempt=$((attempt + 1))
    if [ "$attempt" -gt 120 ]; then
        log "the API never answered: no cloud controller manager"
        exit 1
    fi
    sleep 5
done

manifest=$(mktemp)
chmod 0600 "$manifest"
trap 'rm -f "$manifest"' EXIT
ca_data=""
if [ -n "${OPENSTACK_CA:-}" ]; then
    ca_data="  ca.pem: $(printf '%s\n' "$OPENSTACK_CA" | base64 | tr -d '\n')"
fi
cat >"$manifest" <<MANIFEST
apiVersion: v1
kind: Secret
metadata:
  name: cloud-config
  namespace: kube-system
type: Opaque
data:
  cloud.conf: $(base64 <"$cloud_config" | tr -d '\n')
$ca_data
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: cloud-controller-manager
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:cloud-controller-manager
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, create, update]
  - apiGroups: [""]
    resources: [events]
    verbs: [create, patch, update]
  - apiGroups: [""]
    resources: [nodes]
    verbs: ["*"]
  - apiGroups: [""]
    resources: [nodes/status, services/status]
    verbs: [patch]
  - apiGroups: [""]
    resources: [services]
    verbs: [list, patch, update, watch]
  - apiGroups: [""]
    resources: [serviceaccounts, serviceaccounts/token]
    verbs: [create, get]
  - apiGroups: [""]
    resources: [persistentvolumes]
    verbs: ["*"]
  - apiGroups: [""]
    resources: [endpoints]
    verbs: [create, get, list, watch, update]
  - apiGroups: [""]
    resources: [configmaps, secrets]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:cloud-controller-manager
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:cloud-controller-manager
subjects:
  - kind: ServiceAccount
    name: cloud-controller-manager
    namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: openstack-cloud-controller-manager
  namespace: kube-system
  labels: {k8s-app: openstack-cloud-controller-manager}
spec:
  selector:
    matchLabels: {k8s-app: openstack-cloud-controller-manager}
  template:
    metadata:
      labels: {k8s-app: openstack-cloud-controller-manager}
    spec:
      nodeSelector:
        node-role.kubernetes.io/control-plane: ""
      tolerations:
        - {key: node.cloudprovider.kubernetes.io/uninitialized, value: "true", effect: NoSchedule}
        - {key: node-role.kubernetes.io/control-plane, effect: NoSchedule}
        - {key: node-role.kubernetes.io/master, effect: NoSchedule}
      serviceAccountName: cloud-controller-manager
      hostNetwork: true
      containers:
        - name: openstack-cloud-controller-manager
          image: $(image registry.k8s.io/provider-os/ "openstack-cloud-controller-manager:$CLOUD_PROVIDER_TAG")
          args:
            - /bin/openstack-cloud-controller-manager
            - --cloud-config=/etc/config/cloud.conf
            - --cloud-provider=openstack
            - --cluster-name=$CLUSTER_UUID
            - --use-service-account-credentials=true
            - --bind-address=127.0.0.1
          volumeMounts:
            - {name: cloud-config, mountPath: /etc/config, readOnly: true}
          resources:
            requests: {cpu: 200m}
      volumes:
        - name: cloud-config
          secret: {secretName: cloud-config}
MANIFEST
"${kubectl[@]}" apply -f "$manifest"
log "openstack-cloud-controller-manager $CLOUD_PROVIDER_TAG deployed"

if ! is_true "${CINDER_CSI_ENABLED:-false}"; then
    exit 0
fi
sidecar() {
    image registry.k8s.io/sig-storage/ "$1"
}
cat >"$manifest" <<MANIFEST
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: cinder.csi.openstack.org
spec:
  attachRequired: true
  podInfoOnMount: true
  volumeLifecycleModes: [Persistent, Ephemeral]
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: csi-cinder-controller-sa
  namespace: kube-system
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: csi-cinder-node-sa
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: csi-cinder-controller
rules:
  - apiGroups: [""]
    resources: [persistentvolumes]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [""]
    resources: [persistentvolumeclaims]
    verbs: [get, list, watch, update]
  - apiGroups: [""]
    resources: [persistentvolumeclaims/status]
    verbs: [patch]
  - apiGroups: [""]
    resources: [nodes, pods, secrets]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [events]
    verbs: [list, watch, create, update, patch]
  - apiGroups: [storage.k8s.io]
    resources: [storageclasses, csinodes, volumeattachments, volumeattachments/status]
    verbs: [get, list, watch, update, patch]
  - apiGroups: [snapshot.storage.k8s.io]
    resources: [volumesnapshots, volumesnapshotclasses, volumesnapshotcontents, volumesnapshotcontents/status]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, watch, list, delete, update, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: csi-cinder-controller
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: csi-cinder-controller
subjects:
  - kind: ServiceAccount
    name: csi-cinder-controller-sa
    namespace: kube-system
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: csi-cinder-controllerplugin
  namespace: kube-system
spec:
  replicas: 1
  selector:
    matchLabels: {app: csi-cinder-controllerplugin}
  template:
    metadata:
      labels: {app: csi-cinder-controllerplugin}
    spec:
      serviceAccountName: csi-cinder-controller-sa
      nodeSelector:
        node-role.kubernetes.io/control-plane: ""
      tolerations:
        - {key: node-role.kubernetes.io/control-plane, effect: NoSchedule}
        - {key: node-role.kubernetes.io/master, effect: NoSchedule}
      containers:
        - name: csi-attacher
          image: $(sidecar csi-attacher:v4.4.2)
          args: [--csi-address=/csi/csi.sock, --timeout=3m, --leader-election=true]
          volumeMounts: [{name: socket-dir, mountPath: /csi}]
        - name: csi-provisioner
          image: $(sidecar csi-provisioner:v3.6.2)
          args: [--csi-address=/csi/csi.sock, --timeout=3m, --default-fstype=ext4, --extra-create-metadata, --leader-election=true]
          volumeMounts: [{name: socket-dir, mountPath: /csi}]
        - name: csi-snapshotter
          image: $(sidecar csi-snapshotter:v6.3.2)
          args: [--csi-address=/csi/csi.sock, --timeout=3m, --leader-election=true]
          volumeMounts: [{name: socket-dir, mountPath: /csi}]
        - name: csi-resizer
          image: $(sidecar csi-resizer:v1.9.2)
          args: [--csi-address=/csi/csi.sock, --timeout=3m, --handle-volume-inuse-error=false, --leader-election=true]
          volumeMounts: [{name: socket-dir, mountPath: /csi}]
        - name: liveness-probe
          image: $(sidecar livenessprobe:v2.11.0)
          args: [--csi-address=/csi/csi.sock]
          volumeMounts: [{name: socket-dir, mountPath: /csi}]
        - name: cinder-csi-plugin
          image: $(image registry.k8s.io/provider-os/ "cinder-csi-plugin:$CINDER_CSI_PLUGIN_TAG")
          args: [/bin/cinder-csi-plugin, --endpoint=unix://csi/csi.sock, --cloud-config=/etc/config/cloud.conf, --cluster=$CLUSTER_UUID]
          ports: [{containerPort: 9808, name: healthz, protocol: TCP}]
          livenessProbe:
            httpGet: {path: /healthz, port: healthz}
            initialDelaySeconds: 10
            timeoutSeconds: 10
            periodSeconds: 60
            failureThreshold: 5
          volumeMounts:
            - {name: socket-dir, mountPath: /csi}
            - {name: cloud-config, mountPath: /etc/config, readOnly: true}
      volumes:
        - {name: socket-dir, emptyDir: {}}
        - {name: cloud-config, secret: {secretName: cloud-config}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: csi-cinder-nodeplugin
  namespace: kube-system
spec:
  selector:
    matchLabels: {app: csi-cinder-nodeplugin}
  template:
    metadata:
      labels: {app: csi-cinder-nodeplugin}
    spec:
      serviceAccountName: csi-cinder-node-sa
      hostNetwork: true
      tolerations:
        - operator: Exists
      containers:
        - name: node-driver-registrar
          image: $(sidecar csi-node-driver-registrar:v2.9.2)
          args: [--csi-address=/csi/csi.sock, --kubelet-registration-path=/var/lib/kubelet/plugins/cinder.csi.openstack.org/csi.sock]
          volumeMounts:
            - {name: socket-dir, mountPath: /csi}
            - {name: registration-dir, mountPath: /registration}
        - name: liveness-probe
          image: $(sidecar livenessprobe:v2.11.0)
          args: [--csi-address=/csi/csi.sock]
          volumeMounts: [{name: socket-dir, mountPath: /csi}]
        - name: cinder-csi-plugin
          securityContext:
            privileged: true
            capabilities: {add: [SYS_ADMIN]}
            allowPrivilegeEscalation: true
          image: $(image registry.k8s.io/provider-os/ "cinder-csi-plugin:$CINDER_CSI_PLUGIN_TAG")
          args: [/bin/cinder-csi-plugin, --endpoint=unix://csi/csi.sock, --cloud-config=/etc/config/cloud.conf]
          ports: [{containerPort: 9808, name: healthz, protocol: TCP}]
          livenessProbe:
            httpGet: {path: /healthz, port: healthz}
            initialDelaySeconds: 10
            timeoutSeconds: 3
            periodSeconds: 10
            failureThreshold: 5
          volumeMounts:
            - {name: socket-dir, mountPath: /csi}
            - {name: kubelet-dir, mountPath: /var/lib/kubelet, mountPropagation: Bidirectional}
            - {name: pods-probe-dir, mountPath: /dev, mountPropagation: HostToContainer}
            - {name: cloud-config, mountPath: /etc/config, readOnly: true}
      volumes:
        - {name: socket-dir, hostPath: {path: /var/lib/kubelet/plugins/cinder.csi.openstack.org, type: DirectoryOrCreate}}
        - {name: registration-dir, hostPath: {path: /var/lib/kubelet/plugins_registry/, type: Directory}}
        - {name: kubelet-dir, hostPath: {path: /var/lib/kubelet, type: Directory}}
        - {name: pods-probe-dir, hostPath: {path: /dev, type: Directory}}
        - {name: cloud-config, secret: {secretName: cloud-config}}
MANIFEST
"${kubectl[@]}" apply -f "$manifest"
log "Cinder CSI $CINDER_CSI_PLUGIN_TAG deployed"
