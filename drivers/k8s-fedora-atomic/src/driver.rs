//! `k8s_fedora_atomic_v1`: Kubernetes on Fedora Atomic (upstream's
//! `FedoraKubernetesDriver`). One Heat stack holds the network, the masters
//! and the default workers; every additional worker nodegroup gets its own
//! stack built from the same template with `is_cluster_stack=false`.

use magnum_driver_sdk::{
    boot_volume, bootstrap, capability as op, environment,
    helpers::{
        self, check_at_least, cluster_stack_name, default_nodegroup, effective_template,
        find_nodegroup, label_spec as label, stack_plan, sub_driver_info, StackRef,
    },
    node_setup::{self, Download},
    scale,
    serde_json::{Map, Value},
    ClusterRequest, ClusterTemplate, ClusterUpdate, CoeDriver, DriverConfig, DriverError,
    DriverInfo, DriverResult, LabelType, Labels, NodeGroup, NodeGroupRequest, NodeTemplate,
    NodeTemplateRequest, Provides, ResizeRequest, StackOperation, StackPlan, StackSnapshot,
    StackTarget, StatusRequest, StatusUpdate, SubDriverConfig, SubDriverRequest, TemplateRequest,
    UpgradeRequest, Validation,
};

pub const DRIVER_NAME: &str = "k8s_fedora_atomic_v1";
/// The description `magnum-driver-manage show` prints: what the nodes'
/// image must be, and that the named one is no longer maintained.
const IMAGE_NOTE: &str = "Kubernetes on Fedora Atomic, orchestrated with Heat. \
    Image: Fedora Atomic Host (os_distro fedora-atomic), END OF LIFE since 2019 (no security updates); \
    any systemd image with bash 4, curl, python3, openssl, sha256sum, tar and Docker boots the nodes. \
    Binaries come from download_mirror_url (or upstream's sites) and are checked by sha256.";
const SERVER_TYPE: &str = "vm";
const OS: &str = "fedora-atomic";
const COE: &str = "kubernetes";
const CONTAINER_VERSION: &str = "1.12.6";

const MASTER: &str = helpers::MASTER_ROLE;
const WORKER: &str = "worker";

/// The top-level template, the key of [`TEMPLATES`] a plan starts from.
pub const CLUSTER_FILE: &str = "cluster.yaml";
/// `(role, file)` of the node templates the cluster template nests.
const NODE_FILES: [(&str, &str); 2] = [(MASTER, "master.yaml"), (WORKER, "worker.yaml")];
/// Every file of a stack, as `(file name, text)`: the HOT templates, and the
/// node bootstrap fragments the node templates' user data takes with
/// `get_file` (the nodes read their values from /etc/sysconfig/heat-params).
pub const TEMPLATES: [(&str, &str); 20] = [
    (CLUSTER_FILE, include_str!("templates/cluster.yaml")),
    environment::NETWORK_FILES[0],
    environment::NETWORK_FILES[1],
    environment::MASTER_PORT_FILE,
    environment::SECGROUP_PEER_FILE,
    ("master.yaml", include_str!("templates/master.yaml")),
    ("worker.yaml", include_str!("templates/worker.yaml")),
    (
        "fragments/lib-common.sh",
        include_str!("../../common/fragments/lib-common.sh"),
    ),
    (
        "fragments/bootstrap.sh",
        include_str!("../../common/fragments/bootstrap.sh"),
    ),
    ("fragments/lib.sh", include_str!("fragments/lib.sh")),
    (
        "fragments/configure-host.sh",
        include_str!("../../common/fragments/configure-host.sh"),
    ),
    (
        "fragments/make-certs.sh",
        include_str!("fragments/make-certs.sh"),
    ),
    (
        "fragments/configure-etcd.sh",
        include_str!("../../common/fragments/configure-etcd.sh"),
    ),
    (
        "fragments/configure-master.sh",
        include_str!("fragments/configure-master.sh"),
    ),
    (
        "fragments/install-cri.sh",
        include_str!("fragments/install-cri.sh"),
    ),
    (
        "fragments/configure-dns.sh",
        include_str!("fragments/configure-dns.sh"),
    ),
    (
        "fragments/configure-cloud-provider.sh",
        include_str!("fragments/configure-cloud-provider.sh"),
    ),
    (
        "fragments/configure-node.sh",
        include_str!("fragments/configure-node.sh"),
    ),
    (
        "fragments/configure-network.sh",
        include_str!("fragments/configure-network.sh"),
    ),
    (
        "fragments/configure-storage.sh",
        include_str!("../../common/fragments/configure-storage.sh"),
    ),
];

/// Host-supplied parameters (`HostContext::extra`) that the cluster template
/// declares. Heat rejects a stack given an undeclared parameter, so any other
/// key is not passed on.
pub const HOST_PARAMETERS: &[&str] = &[
    "ca_rotation_id",
    "cluster_credential",
    "openstack_app_cred_id",
    "openstack_app_cred_secret",
    "ssh_public_key",
    "trust_id",
    "trustee_domain_id",
    "trustee_password",
    "trustee_user_id",
    "trustee_username",
];

/// What the nodes download, each site with its version label (kube_tag and
/// containerd_version are labels of their own) and its artifacts, named as
/// the node scripts name them (their `<name>_sha256` labels pin them).
pub const DOWNLOADS: &[Download] = &[
    Download {
        parameter: "kube_download_url",
        mirror_dir: "kubernetes",
        tag: None,
        artifacts: &[
            "kube_apiserver",
            "kube_controller_manager",
            "kube_scheduler",
            "kubectl",
            "kubelet",
            "kube_proxy",
        ],
    },
    magnum_driver_sdk::node_setup::ETCD,
    magnum_driver_sdk::node_setup::FLANNEL,
    Download {
        parameter: "flannel_cni_download_url",
        mirror_dir: "flannel-cni-plugin",
        tag: Some(("flannel_cni_tag", "v1.2.0")),
        artifacts: &["flannel_cni"],
    },
    Download {
        parameter: "cni_download_url",
        mirror_dir: "cni-plugins",
        tag: Some(("cni_tag", "v1.3.0")),
        artifacts: &["cni_plugins"],
    },
    Download {
        parameter: "containerd_download_url",
        mirror_dir: "containerd",
        tag: None,
        artifacts: &["containerd"],
    },
    Download {
        parameter: "runc_download_url",
        mirror_dir: "runc",
        tag: Some(("runc_tag", "v1.1.9")),
        artifacts: &["runc"],
    },
    Download {
        parameter: "cri_dockerd_download_url",
        mirror_dir: "cri-dockerd",
        tag: Some(("cri_dockerd_tag", "0.3.4")),
        artifacts: &["cri_dockerd"],
    },
    Download {
        parameter: "calico_download_url",
        mirror_dir: "calico",
        tag: Some(("calico_tag", "v3.26.1")),
        artifacts: &["calico"],
    },
];

/// Host parameters that change when the host rotates the cluster's CAs or
/// credential; an update passes them to every stack so nodes pick them up.
const ROTATION_PARAMETERS: &[&str] = &[
    "ca_rotation_id",
    "cluster_credential",
    "openstack_app_cred_id",
    "openstack_app_cred_secret",
];

pub struct K8sFedoraAtomicDriver {
    info: DriverInfo,
    /// Upstream's `[trust] cluster_user_trust`: whether nodes may hold the
    /// user's trust, which the in-tree cloud provider needs (CVE-2016-7404).
    cluster_user_trust: bool,
    /// Upstream's `[cluster] nodes_affinity_policy`.
    nodes_affinity_policy: String,
}

impl CoeDriver for K8sFedoraAtomicDriver {
    fn info() -> DriverInfo {
        DriverInfo {
            name: DRIVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: IMAGE_NOTE.into(),
            provides: vec![Provides::new(SERVER_TYPE, OS, COE)],
            capabilities: [
                op::VALIDATE_TEMPLATE,
                op::VALIDATE_CLUSTER,
                op::CREATE_CLUSTER,
                op::UPDATE_CLUSTER,
                op::RESIZE_CLUSTER,
                op::UPGRADE_CLUSTER,
                op::DELETE_CLUSTER,
                op::CREATE_NODEGROUP,
                op::UPDATE_NODEGROUP,
                op::DELETE_NODEGROUP,
                op::NODE_TEMPLATE,
                op::NETWORK_DRIVER,
                op::VOLUME_DRIVER,
                op::MAP_STATUS,
                // A credential rotation is an update whose host context
                // changed: nodes booted from then on get the new
                // credential; running nodes used theirs at bootstrap and
                // are not replaced for it (worker.yaml: only a new node
                // generation replaces a worker). CA rotation is not declared: running
                // nodes keep the CA they fetched at boot (user data is not
                // re-run, see master.yaml), so kubeconfigs signed by a new
                // CA would be rejected and later nodes could not join.
                // Upstream's fedora-atomic driver kept the NotSupported of
                // magnum/drivers/common/driver.py (only fedora-coreos
                // overrode rotate_ca_certificate); the host refuses it
                // before making any CA.
                op::ROTATE_CREDENTIAL,
            ]
            .map(String::from)
            .to_vec(),
            network_drivers: vec![
                sub_driver_info(
                    "flannel",
                    true,
                    &[COE],
                    &[
                        "flannel_network_cidr",
                        "flannel_backend",
                        "flannel_network_subnetlen",
                        "flannel_tag",
                    ],
                    "flannel overlay network",
                ),
                sub_driver_info(
                    "calico",
                    false,
                    &[COE],
                    &["calico_ipv4pool", "calico_ipv4pool_ipip", "calico_tag"],
                    "Calico BGP network with network policies",
                ),
            ],
            volume_drivers: vec![sub_driver_info(
                "cinder",
                false,
                &[COE],
                &[],
                "Cinder volumes (needs the cloud provider)",
            )],
            labels: vec![
                label(
                    "kube_tag",
                    LabelType::Semver,
                    Some("v1.27.3"),
                    &[],
                    "Kubernetes release tag with its leading v (v1.27.3; 1.27.3 is refused); upgrades only move it forward",
                ),
                label(
                    "container_runtime",
                    LabelType::String,
                    Some("host-docker"),
                    &["host-docker", "docker", "containerd"],
                    "container runtime of the nodes: containerd, or the host's Docker behind cri-dockerd (docker is host-docker)",
                ),
                label(
                    "containerd_version",
                    LabelType::String,
                    Some("1.7.3"),
                    &[],
                    "containerd release installed with container_runtime containerd",
                ),
                label(
                    "coredns_tag",
                    LabelType::String,
                    Some("1.10.1"),
                    &[],
                    "CoreDNS image tag",
                ),
                label(
                    "dns_service_ip",
                    LabelType::String,
                    None,
                    &[],
                    "CoreDNS's service address, a host of service_cluster_ip_range (default its 10th: 10.254.0.10)",
                ),
                label(
                    "dns_cluster_domain",
                    LabelType::String,
                    Some("cluster.local"),
                    &[],
                    "the cluster's DNS domain",
                ),
                label(
                    "flannel_network_cidr",
                    LabelType::Cidr,
                    Some("10.100.0.0/16"),
                    &[],
                    "flannel pod network",
                ),
                label(
                    "flannel_backend",
                    LabelType::String,
                    Some("vxlan"),
                    &["udp", "vxlan", "host-gw"],
                    "flannel backend",
                ),
                label(
                    "flannel_network_subnetlen",
                    LabelType::Integer,
                    Some("24"),
                    &[],
                    "prefix length of each node's pod subnet",
                ),
                label(
                    "calico_ipv4pool",
                    LabelType::Cidr,
                    Some("10.100.0.0/16"),
                    &[],
                    "Calico pod network",
                ),
                label(
                    "calico_ipv4pool_ipip",
                    LabelType::String,
                    Some("Off"),
                    &["Always", "CrossSubnet", "Never", "Off"],
                    "Calico IP-in-IP mode",
                ),
                label(
                    "fixed_subnet_cidr",
                    LabelType::Cidr,
                    Some("10.0.0.0/24"),
                    &[],
                    "CIDR of the private subnet the driver creates",
                ),
                label(
                    "etcd_volume_size",
                    LabelType::Integer,
                    Some("0"),
                    &[],
                    "etcd Cinder volume size in GB (0: none)",
                ),
                label(
                    "docker_volume_type",
                    LabelType::String,
                    None,
                    &[],
                    "Cinder volume type of the docker volume",
                ),
                label(
                    "cloud_provider_enabled",
                    LabelType::Boolean,
                    None,
                    &[],
                    "run the OpenStack cloud provider; defaults to the driver's cluster_user_trust",
                ),
                label(
                    "cloud_provider_tag",
                    LabelType::String,
                    Some("v1.28.0"),
                    &[],
                    "openstack-cloud-controller-manager image tag (cloud_provider_enabled)",
                ),
                label(
                    "cinder_csi_plugin_tag",
                    LabelType::String,
                    Some("v1.28.0"),
                    &[],
                    "cinder-csi-plugin image tag (cinder_csi_enabled)",
                ),
                label(
                    "master_lb_floating_ip_enabled",
                    LabelType::Boolean,
                    None,
                    &[],
                    "give the API load balancer a floating IP; defaults to floating_ip_enabled",
                ),
            ]
            .into_iter()
            .chain(crate::labels::specs())
            .chain(boot_volume::label_specs())
            .chain(node_setup::label_specs(DOWNLOADS))
            .collect(),
            node_roles: vec![MASTER.into(), WORKER.into()],
            template_path: Some(format!("templates/{CLUSTER_FILE}")),
            beta: false,
        }
    }

    fn new(config: &DriverConfig) -> DriverResult<Self> {
        let cluster_user_trust = match config.get("cluster_user_trust") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(DriverError::invalid(
                    "config.cluster_user_trust",
                    "must be a boolean",
                ))
            }
        };
        Ok(Self {
            info: Self::info(),
            cluster_user_trust,
            nodes_affinity_policy: helpers::nodes_affinity_policy(config)?,
        })
    }

    fn validate_template(&self, req: &TemplateRequest) -> DriverResult<Validation> {
        self.check_template(&req.template)
    }

    fn validate_cluster(&self, req: &ClusterRequest) -> DriverResult<Validation> {
        let validation = self.check_template(&effective_template(req))?;
        let cluster = &req.cluster;
        if cluster.master_count < 1 || cluster.master_count % 2 == 0 {
            return Err(DriverError::invalid(
                "master_count",
                format!(
                    "master_count must be an odd number of at least 1, got {}",
                    cluster.master_count
                ),
            ));
        }
        check_at_least("node_count", cluster.node_count, 0)?;
        crate::node_labels::check(&req.nodegroups)?;
        // The cloud provider (and Cinder CSI, deployed with it) call
        // OpenStack from the nodes: the host then gives them an application
        // credential.
        let labels = effective_template(req).labels;
        Ok(Validation {
            cloud_credential: self.cloud_provider_enabled(&labels),
            ..validation
        })
    }

    fn create_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        self.validate_cluster(req)?;
        let parameters = self.parameters(req, None)?;
        let mut operation = StackRef::cluster(req).create(
            CLUSTER_FILE,
            &TEMPLATES,
            parameters,
            req.cluster.create_timeout,
        );
        // A private network unless the cluster names one.
        let private_network = effective_template(req).fixed_network.is_none();
        operation.environment =
            optional_pieces(&operation.parameters, private_network).environment();
        Ok(stack_plan([operation]))
    }

    fn update_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        let workers = scale::default_worker_count(req);
        check_at_least("node_count", workers, 0)?;
        let rotation = helpers::host_parameters(&req.context, ROTATION_PARAMETERS);
        let mut parameters = scale_parameters(workers, &[]);
        parameters.extend(rotation.clone());
        let mut operations = vec![StackRef::cluster(req).update(parameters)?];
        if !rotation.is_empty() {
            for group in req
                .nodegroups
                .iter()
                .filter(|g| !g.is_default && g.stack_id.is_some())
            {
                operations.push(nodegroup_stack(req, group).update(rotation.clone())?);
            }
        }
        Ok(stack_plan(operations))
    }

    fn resize_cluster(&self, req: &ResizeRequest) -> DriverResult<StackPlan> {
        let group = find_nodegroup(&req.base, &req.nodegroup)?;
        Ok(stack_plan([scale_group(
            &req.base,
            group,
            req.node_count,
            &req.nodes_to_remove,
        )?]))
    }

    /// Upgrades a worker nodegroup by replacing its nodes: the group's
    /// ResourceGroup replaces `max_batch_size` workers at a time (Heat's
    /// rolling update), each new worker boots the new kube_tag and signals
    /// a fresh wait condition, and a batch starts only when the one before
    /// it has signalled. Masters are refused: replacing one loses etcd's
    /// data on a single master and needs etcd membership changes on three,
    /// which the node scripts do not make.
    fn upgrade_cluster(&self, req: &UpgradeRequest) -> DriverResult<StackPlan> {
        let base = &req.base;
        let group = find_nodegroup(base, &req.nodegroup)?;
        if group.role == MASTER {
            return Err(DriverError::invalid(
                "nodegroup",
                format!(
                    "Upgrading the master nodegroup {} is not supported by {DRIVER_NAME}: \
                     it would replace the masters, and with them etcd's data. Upgrade the \
                     worker nodegroups (omit nodegroup for {}), or create a cluster from \
                     the new cluster template and move the workloads to it.",
                    group.name,
                    default_nodegroup(base, WORKER).map_or("default-worker", |g| g.name.as_str()),
                ),
            ));
        }
        self.check_template(&req.new_template)?;
        let field = "labels.kube_tag";
        let new_tag = req.new_template.labels.get("kube_tag").ok_or_else(|| {
            DriverError::invalid(field, "the new cluster template must set kube_tag")
        })?;
        let labels = effective_template(base).labels;
        let current = group
            .labels
            .get("kube_tag")
            .map(String::as_str)
            .or_else(|| helpers::label(&self.info.labels, &labels, "kube_tag"))
            .unwrap_or_default();
        let newer = match (
            helpers::parse_version(current),
            helpers::parse_version(new_tag),
        ) {
            (Some(from), Some(to)) => to > from,
            _ => false,
        };
        if !newer {
            let message = format!("cannot upgrade from {current} to {new_tag}");
            return Err(DriverError::invalid(
                field,
                format!("Received invalid tag for kube_tag: {message}"),
            ));
        }
        // Kubernetes' version skew policy: a kubelet must not be newer than
        // its API server (it may be older). The masters are never replaced
        // here, so workers may move up only within the masters' minor
        // release: a patch release, or back to the masters' own.
        let masters = self.masters_kube_tag(base);
        let minor = |tag: &str| helpers::parse_version(tag).map(|(major, minor, _)| (major, minor));
        if let (Some((major, masters_minor)), Some(to)) = (minor(masters), minor(new_tag)) {
            if to > (major, masters_minor) {
                return Err(DriverError::invalid(
                    field,
                    format!(
                        "Received invalid tag for kube_tag: cannot upgrade workers to {new_tag}: \
                         the masters run {masters}, and Kubernetes does not support a kubelet \
                         newer than its API server (version skew policy). {DRIVER_NAME} does \
                         not upgrade masters, so workers may move only within \
                         v{major}.{masters_minor}.x; create a cluster from the new cluster \
                         template to move to {new_tag}."
                    ),
                ));
            }
        }
        if req.max_batch_size < 1 {
            return Err(DriverError::invalid(
                "max_batch_size",
                "max_batch_size must be at least 1",
            ));
        }
        let mut parameters = helpers::next_generation(&base.context, "worker_generation");
        parameters.insert("kube_tag".into(), new_tag.as_str().into());
        parameters.insert("update_max_batch_size".into(), req.max_batch_size.into());
        Ok(stack_plan([
            nodegroup_stack(base, group).update(parameters)?
        ]))
    }

    fn delete_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        let groups = req
            .nodegroups
            .iter()
            .filter(|g| !g.is_default)
            .map(|g| nodegroup_stack(req, g));
        Ok(stack_plan(
            groups
                .chain([StackRef::cluster(req)])
                .filter_map(StackRef::delete),
        ))
    }

    fn create_nodegroup(&self, req: &NodeGroupRequest) -> DriverResult<StackPlan> {
        let group = &req.nodegroup;
        if group.is_default || group.role == MASTER {
            return Err(DriverError::invalid(
                "nodegroup.role",
                "only additional worker nodegroups can be created",
            ));
        }
        check_at_least("nodegroup.node_count", group.node_count, 0)?;
        crate::node_labels::check_group(group)?;
        self.check_template(&effective_template(&req.base))?;
        let mut operation = nodegroup_stack(&req.base, group).create(
            CLUSTER_FILE,
            &TEMPLATES,
            self.parameters(&req.base, Some(group))?,
            req.base.cluster.create_timeout,
        );
        // The group's nodes join the cluster's network.
        operation.environment = optional_pieces(&operation.parameters, false).environment();
        Ok(stack_plan([operation]))
    }

    fn update_nodegroup(&self, req: &NodeGroupRequest) -> DriverResult<StackPlan> {
        let group = &req.nodegroup;
        crate::node_labels::check_group(group)?;
        // A master group's stack has nothing a nodegroup update can change.
        if group.role == MASTER {
            return Ok(StackPlan::default());
        }
        let mut operation = scale_group(&req.base, group, group.node_count, &[])?;
        // Nodes that join from now on register with the group's current
        // labels and taints (kubelet takes them at registration only).
        operation.parameters.insert(
            "worker_node_labels".into(),
            crate::node_labels::kubelet_labels(&group.node_labels).into(),
        );
        operation.parameters.insert(
            "worker_node_taints".into(),
            crate::node_labels::kubelet_taints(&group.node_taints).into(),
        );
        Ok(stack_plan([operation]))
    }

    fn delete_nodegroup(&self, req: &NodeGroupRequest) -> DriverResult<StackPlan> {
        let group = &req.nodegroup;
        if group.is_default {
            return Err(DriverError::invalid(
                "nodegroup",
                "a default nodegroup is deleted with its cluster",
            ));
        }
        Ok(stack_plan(nodegroup_stack(&req.base, group).delete()))
    }

    fn node_template(&self, req: &NodeTemplateRequest) -> DriverResult<NodeTemplate> {
        helpers::node_template(&NODE_FILES, &TEMPLATES, &req.role)
    }

    fn network_driver(&self, req: &SubDriverRequest) -> DriverResult<SubDriverConfig> {
        self.network_config(req.name.as_deref(), &req.labels)
    }

    fn volume_driver(&self, req: &SubDriverRequest) -> DriverResult<SubDriverConfig> {
        self.volume_config(req.name.as_deref(), &req.labels)
    }

    fn map_status(&self, req: &StatusRequest) -> DriverResult<StatusUpdate> {
        let base = &req.base;
        let public = effective_template(base).floating_ip_enabled;
        let mut update = StatusUpdate::default();
        for stack in &req.stacks {
            match &stack.target.nodegroup {
                None => {
                    update.cluster = self.cluster_status(base, stack);
                    let defaults = [
                        (MASTER, "kube_masters", "number_of_masters"),
                        (WORKER, "kube_minions", "number_of_minions"),
                    ];
                    update
                        .nodegroups
                        .extend(helpers::default_nodegroup_statuses(
                            base, stack, public, &defaults,
                        ));
                }
                Some(uuid) => {
                    update.nodegroups.push(helpers::nodegroup_status(
                        uuid,
                        stack,
                        "kube_minions",
                        "number_of_minions",
                        public,
                    ));
                }
            }
        }
        Ok(update)
    }
}

impl K8sFedoraAtomicDriver {
    /// The release the masters run: the master group's `kube_tag` label
    /// (set from the cluster's labels at create and never moved, as masters
    /// are not upgraded), else the `master_kube_tag` of the stack being
    /// upgraded, else this driver's default. Not the cluster template's: an
    /// upgrade of the workers moves the cluster to the new template.
    fn masters_kube_tag<'a>(&'a self, req: &'a ClusterRequest) -> &'a str {
        default_nodegroup(req, MASTER)
            .and_then(|g| g.labels.get("kube_tag"))
            .map(String::as_str)
            .or_else(|| {
                helpers::nodegroup_stack_parameter(&req.context, "master_kube_tag")
                    .and_then(Value::as_str)
            })
            .or_else(|| {
                self.info
                    .labels
                    .iter()
                    .find(|s| s.name == "kube_tag")
                    .and_then(|s| s.default.as_deref())
            })
            .unwrap_or_default()
    }

    /// Template-level rules; cluster requests pass their effective template.
    fn check_template(&self, template: &ClusterTemplate) -> DriverResult<Validation> {
        helpers::check_provides(&self.info, template)?;
        let labels = &template.labels;
        helpers::validate_labels(&self.info.labels, labels)?;
        boot_volume::check(labels)?;
        let network = self.network_config(template.network_driver.as_deref(), labels)?;
        let volume = self.volume_config(template.volume_driver.as_deref(), labels)?;
        helpers::check_networks(template)?;
        check_dns_domain(labels)?;
        let pods = network
            .parameters
            .get("pods_network_cidr")
            .and_then(Value::as_str);
        let mut warnings = crate::labels::check(template, pods)?;
        let cloud_provider = self.cloud_provider_enabled(labels);
        if cloud_provider && !self.cluster_user_trust {
            return Err(DriverError::invalid(
                "labels.cloud_provider_enabled",
                "cloud_provider_enabled=true needs cluster_user_trust to be enabled in the driver config",
            ));
        }
        let csi = labels
            .get("cinder_csi_enabled")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if csi && !cloud_provider {
            warnings.push(
                "cinder_csi_enabled=true needs cloud_provider_enabled=true: the Cinder CSI plugin is deployed with the cloud provider, so without it there is none".to_owned(),
            );
        }
        if volume.name == "cinder" && !cloud_provider {
            return Err(DriverError::invalid(
                "labels.cloud_provider_enabled",
                "the cinder volume driver needs cloud_provider_enabled=true",
            ));
        }
        warnings.extend(node_setup::check(template, DOWNLOADS)?);
        warnings.extend(helpers::storage_driver_warning(template));
        Ok(Validation {
            warnings,
            ..Default::default()
        })
    }

    fn cloud_provider_enabled(&self, labels: &Labels) -> bool {
        labels
            .get("cloud_provider_enabled")
            .map_or(self.cluster_user_trust, |v| v.eq_ignore_ascii_case("true"))
    }

    fn network_config(&self, name: Option<&str>, labels: &Labels) -> DriverResult<SubDriverConfig> {
        let mut config = helpers::network_config(&self.info, COE, name, labels)?;
        let pods = match config.name.as_str() {
            "calico" => "calico_ipv4pool",
            _ => "flannel_network_cidr",
        };
        if let Some(cidr) = config.parameters.get(pods).cloned() {
            config.parameters.insert("pods_network_cidr".into(), cidr);
        }
        Ok(config)
    }

    fn volume_config(&self, name: Option<&str>, labels: &Labels) -> DriverResult<SubDriverConfig> {
        helpers::volume_config(&self.info, COE, name, labels)
    }

    /// Heat parameters of the cluster stack (`group` None) or of the stack of
    /// the additional worker nodegroup `group`.
    fn parameters(
        &self,
        req: &ClusterRequest,
        group: Option<&NodeGroup>,
    ) -> DriverResult<Map<String, Value>> {
        let template = effective_template(req);
        let cluster = &req.cluster;
        let mut labels = template.labels.clone();
        if let Some(group) = group {
            labels.extend(group.labels.clone());
        }
        let network_name = cluster_stack_name(req);
        let mut p = helpers::common_parameters(req, &template, &self.nodes_affinity_policy);
        p.extend(helpers::docker_parameters(req, &template));
        let mut set = |name: &str, value: Value| {
            p.insert(name.into(), value);
        };
        set("is_cluster_stack", group.is_none().into());
        set(
            "kubernetes_port",
            if template.tls_disabled { 8080 } else { 6443 }.into(),
        );
        set(
            "cloud_provider_enabled",
            self.cloud_provider_enabled(&labels).into(),
        );
        // The API load balancer belongs to the cluster stack; a nodegroup's
        // workers reach the API at the cluster's api_address.
        let master_lb = group.is_none() && template.master_lb_enabled;
        let lb_floating_ip = labels
            .get("master_lb_floating_ip_enabled")
            .map_or(template.floating_ip_enabled, |v| {
                v.eq_ignore_ascii_case("true")
            });
        set("master_lb_enabled", master_lb.into());
        set(
            "master_lb_floating_ip_enabled",
            (master_lb && lb_floating_ip).into(),
        );
        set("number_of_minions", scale::default_worker_count(req).into());
        set("minion_image", template.image_id.as_str().into());
        if let Some(flavor) = &template.flavor_id {
            set("minion_flavor", flavor.as_str().into());
        }
        if let Some(group) = default_nodegroup(req, WORKER) {
            set("worker_role", group.role.as_str().into());
        }
        // kubelet registers the workers with their group's labels and taints
        // (a nodegroup stack's own group, else the default worker group).
        if let Some(workers) = group.or_else(|| default_nodegroup(req, WORKER)) {
            set(
                "worker_node_labels",
                crate::node_labels::kubelet_labels(&workers.node_labels).into(),
            );
            set(
                "worker_node_taints",
                crate::node_labels::kubelet_taints(&workers.node_taints).into(),
            );
        }
        let passed_labels = [
            "kube_tag",
            "container_runtime",
            "fixed_subnet_cidr",
            "etcd_volume_size",
            "docker_volume_type",
            "containerd_version",
            "coredns_tag",
            "dns_cluster_domain",
            "cloud_provider_tag",
            "cinder_csi_plugin_tag",
        ];
        p.extend(helpers::label_parameters(
            &self.info.labels,
            &labels,
            passed_labels.into_iter().chain(boot_volume::LABELS),
        ));
        // The masters start on the workers' release; an upgrade moves only
        // kube_tag (the workers').
        if let Some(tag) = p.get("kube_tag").cloned() {
            p.insert("master_kube_tag".into(), tag);
        }
        p.extend(crate::labels::parameters(
            &self.info.labels,
            &labels,
            &template,
        )?);
        p.extend(
            self.network_config(template.network_driver.as_deref(), &labels)?
                .parameters,
        );
        p.extend(
            self.volume_config(template.volume_driver.as_deref(), &labels)?
                .parameters,
        );
        p.extend(node_setup::parameters(
            &template,
            &labels,
            &req.context,
            DOWNLOADS,
        ));
        p.extend(helpers::host_parameters(&req.context, HOST_PARAMETERS));
        if let Some(group) = group {
            // The group's nodes join the network, subnet and worker
            // security group of the cluster stack by id, from its outputs
            // (upstream's get_nodegroup_extra_params reads the same from
            // the stack). A cluster stack made before it had these outputs
            // is joined by name: the names it gave them (or the cluster's
            // own fixed network).
            let output = |name: &str, fallback: String| -> Value {
                helpers::cluster_stack_output(&req.context, name)
                    .map_or(fallback, str::to_owned)
                    .into()
            };
            let by_name = |existing: &Option<String>| {
                existing.clone().unwrap_or_else(|| network_name.clone())
            };
            let overrides = [
                (
                    "fixed_network",
                    output("fixed_network", by_name(&template.fixed_network)),
                ),
                (
                    "fixed_subnet",
                    output("fixed_subnet", by_name(&template.fixed_subnet)),
                ),
                (
                    "existing_security_group",
                    output("secgroup_minion", format!("{network_name}-minion")),
                ),
                (
                    "existing_master_address",
                    cluster
                        .api_address
                        .as_deref()
                        .map(address_host)
                        .unwrap_or_default()
                        .into(),
                ),
                ("number_of_minions", group.node_count.into()),
                ("worker_nodegroup_name", group.name.as_str().into()),
                ("worker_role", group.role.as_str().into()),
                (
                    "minion_image",
                    group
                        .image_id
                        .as_deref()
                        .unwrap_or(&template.image_id)
                        .into(),
                ),
            ];
            p.extend(overrides.map(|(k, v): (&str, Value)| (k.to_owned(), v)));
            if let Some(flavor) = group.flavor_id.as_deref().or(template.flavor_id.as_deref()) {
                p.insert("minion_flavor".into(), flavor.into());
            }
            if let Some(size) = group.docker_volume_size.or(template.docker_volume_size) {
                p.insert("docker_volume_size".into(), size.into());
            }
        }
        // Volumes are made only for a positive size.
        for (enabled, size) in [
            ("docker_volume_enabled", "docker_volume_size"),
            ("etcd_volume_enabled", "etcd_volume_size"),
        ] {
            let positive = p
                .get(size)
                .and_then(helpers::integer)
                .is_some_and(|n| n > 0);
            p.insert(enabled.into(), positive.into());
        }
        Ok(p)
    }

    fn cluster_status(&self, req: &ClusterRequest, stack: &StackSnapshot) -> ClusterUpdate {
        let template = effective_template(req);
        let api_address = helpers::output_str(stack, "api_address").map(|ip| {
            let host = helpers::bracket_ipv6(ip);
            if template.tls_disabled {
                format!("http://{host}:8080")
            } else {
                format!("https://{host}:6443")
            }
        });
        // What the nodes run, as they reported it at the end of their
        // bootstrap; else the tag they were given.
        let coe_version = bootstrap::reported_coe_version(stack).or_else(|| {
            stack
                .parameters
                .get("kube_tag")
                .and_then(Value::as_str)
                .or_else(|| helpers::label(&self.info.labels, &template.labels, "kube_tag"))
                .map(str::to_owned)
        });
        ClusterUpdate {
            api_address,
            coe_version,
            container_version: Some(CONTAINER_VERSION.into()),
            ..helpers::cluster_stack_status(stack)
        }
    }
}

/// CoreDNS's domain must be a DNS name (its address is checked with the
/// service network, in labels.rs).
fn check_dns_domain(labels: &Labels) -> DriverResult<()> {
    if let Some(domain) = labels.get("dns_cluster_domain") {
        let valid = !domain.is_empty()
            && domain.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !valid {
            return Err(DriverError::invalid(
                "labels.dns_cluster_domain",
                format!("dns_cluster_domain must be a DNS name, got '{domain}'"),
            ));
        }
    }
    Ok(())
}

/// The optional pieces of a stack, switched by its environment, read from
/// the stack's parameters so that both always agree.
fn optional_pieces(
    parameters: &Map<String, Value>,
    private_network: bool,
) -> environment::Optional {
    let flag = |name: &str| parameters.get(name).and_then(Value::as_bool) == Some(true);
    environment::Optional {
        private_network,
        floating_ip: flag("floating_ip_enabled"),
        master_lb: flag("master_lb_enabled"),
        master_lb_floating_ip: flag("master_lb_floating_ip_enabled"),
        docker_volume: flag("docker_volume_enabled"),
        etcd_volume: Some(flag("etcd_volume_enabled")),
    }
}

/// The parameters scaling the minions to `node_count`.
fn scale_parameters(node_count: i64, nodes_to_remove: &[String]) -> Map<String, Value> {
    helpers::scale_parameters(
        "number_of_minions",
        "minions_to_remove",
        node_count,
        nodes_to_remove,
    )
}

/// Scales the worker group `group` (masters cannot be resized, as upstream).
fn scale_group(
    req: &ClusterRequest,
    group: &NodeGroup,
    node_count: i64,
    nodes_to_remove: &[String],
) -> DriverResult<StackOperation> {
    if group.role == MASTER {
        return Err(DriverError::invalid(
            "nodegroup",
            "resizing a master nodegroup is not supported",
        ));
    }
    helpers::check_group_node_count(group, node_count)?;
    nodegroup_stack(req, group).update(scale_parameters(node_count, nodes_to_remove))
}

/// The stack holding `group`'s nodes: default groups live in the cluster
/// stack; others have their own, named `<cluster[:20]>-<group[:9]>-<id>` as
/// upstream.
fn nodegroup_stack(req: &ClusterRequest, group: &NodeGroup) -> StackRef {
    if group.is_default {
        return StackRef::cluster(req);
    }
    let prefix: String = req.cluster.name.chars().take(20).collect();
    let suffix: String = group.name.chars().take(9).collect();
    StackRef {
        target: StackTarget {
            nodegroup: Some(group.uuid.clone()),
        },
        name: helpers::stack_name(&format!("{prefix}-{suffix}"), &group.uuid),
        id: group.stack_id.clone(),
    }
}

/// The host part of an API URL such as `https://10.0.0.5:6443`.
fn address_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default().to_owned();
    }
    authority.split(':').next().unwrap_or_default().to_owned()
}
