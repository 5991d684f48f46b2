//! `k8s_fedora_atomic_v1`: Kubernetes on Fedora Atomic (upstream's
//! `FedoraKubernetesDriver`). One Heat stack holds the network, the masters
//! and the default workers; every additional worker nodegroup gets its own
//! stack built from the same template with `is_cluster_stack=false`.

use std::collections::BTreeMap;

use magnum_driver_abi::{
    capability as op, helpers,
    serde_json::{Map, Value},
    ClusterRequest, ClusterTemplate, ClusterUpdate, CoeDriver, DriverConfig, DriverError,
    DriverInfo, DriverResult, LabelSpec, LabelType, Labels, NodeGroup, NodeGroupRequest,
    NodeGroupUpdate, NodeTemplate, NodeTemplateRequest, Provides, ResizeRequest, StackAction,
    StackOperation, StackPlan, StackSnapshot, StackTarget, StatusRequest, StatusUpdate,
    SubDriverConfig, SubDriverInfo, SubDriverRequest, TemplateRequest, UpgradeRequest, Validation,
};

pub const DRIVER_NAME: &str = "k8s_fedora_atomic_v1";
const SERVER_TYPE: &str = "vm";
const OS: &str = "fedora-atomic";
const COE: &str = "kubernetes";
const CONTAINER_VERSION: &str = "1.12.6";

const MASTER: &str = "master";
const WORKER: &str = "worker";

/// The top-level template, the key of [`TEMPLATES`] a plan starts from.
pub const CLUSTER_FILE: &str = "cluster.yaml";
/// `(role, file)` of the node templates the cluster template nests.
const NODE_FILES: [(&str, &str); 2] = [(MASTER, "master.yaml"), (WORKER, "worker.yaml")];
/// Every file of a stack, as `(file name, HOT text)`.
pub const TEMPLATES: [(&str, &str); 3] = [
    (CLUSTER_FILE, include_str!("templates/cluster.yaml")),
    ("master.yaml", include_str!("templates/master.yaml")),
    ("worker.yaml", include_str!("templates/worker.yaml")),
];

/// Host-supplied parameters (`HostContext::extra`) that the cluster template
/// declares. Heat rejects a stack given an undeclared parameter, so any other
/// key is not passed on.
pub const HOST_PARAMETERS: &[&str] = &[
    "openstack_ca",
    "ssh_public_key",
    "trust_id",
    "trustee_domain_id",
    "trustee_password",
    "trustee_user_id",
    "trustee_username",
];

const AFFINITY_POLICIES: &[&str] = &[
    "affinity",
    "anti-affinity",
    "soft-affinity",
    "soft-anti-affinity",
];

pub struct K8sFedoraAtomicDriver {
    info: DriverInfo,
    /// Upstream's `[trust] cluster_user_trust`: whether nodes may hold the
    /// user's trust, which the in-tree cloud provider needs (CVE-2016-7404).
    cluster_user_trust: bool,
    /// Upstream's `[cluster] nodes_affinity_policy`.
    nodes_affinity_policy: String,
}

fn label(
    name: &str,
    kind: LabelType,
    default: Option<&str>,
    allowed: &[&str],
    description: &str,
) -> LabelSpec {
    LabelSpec {
        name: name.into(),
        kind,
        default: default.map(Into::into),
        allowed: allowed.iter().map(|s| s.to_string()).collect(),
        description: description.into(),
    }
}

fn sub_driver(name: &str, default: bool, labels: &[&str], description: &str) -> SubDriverInfo {
    SubDriverInfo {
        name: name.into(),
        default,
        coes: vec![COE.into()],
        labels: labels.iter().map(|s| s.to_string()).collect(),
        description: description.into(),
    }
}

impl CoeDriver for K8sFedoraAtomicDriver {
    fn info() -> DriverInfo {
        DriverInfo {
            name: DRIVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Kubernetes on Fedora Atomic, orchestrated with Heat".into(),
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
            ]
            .map(String::from)
            .to_vec(),
            network_drivers: vec![
                sub_driver(
                    "flannel",
                    true,
                    &[
                        "flannel_network_cidr",
                        "flannel_backend",
                        "flannel_network_subnetlen",
                    ],
                    "flannel overlay network",
                ),
                sub_driver(
                    "calico",
                    false,
                    &["calico_ipv4pool", "calico_ipv4pool_ipip"],
                    "Calico BGP network with network policies",
                ),
            ],
            volume_drivers: vec![sub_driver(
                "cinder",
                false,
                &[],
                "Cinder volumes (needs the cloud provider)",
            )],
            labels: vec![
                label(
                    "kube_tag",
                    LabelType::Semver,
                    Some("v1.27.3"),
                    &[],
                    "Kubernetes version; upgrades only move it forward",
                ),
                label(
                    "container_runtime",
                    LabelType::String,
                    Some("host-docker"),
                    &["host-docker", "docker", "containerd"],
                    "container runtime of the nodes (docker is host-docker)",
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
                    "master_lb_floating_ip_enabled",
                    LabelType::Boolean,
                    None,
                    &[],
                    "give the API load balancer a floating IP; defaults to floating_ip_enabled",
                ),
            ],
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
        let nodes_affinity_policy = match config.get("nodes_affinity_policy") {
            None => "soft-anti-affinity".to_owned(),
            Some(Value::String(p)) if AFFINITY_POLICIES.contains(&p.as_str()) => p.clone(),
            Some(_) => {
                return Err(DriverError::invalid(
                    "config.nodes_affinity_policy",
                    format!("must be one of {}", AFFINITY_POLICIES.join(", ")),
                ))
            }
        };
        Ok(Self {
            info: Self::info(),
            cluster_user_trust,
            nodes_affinity_policy,
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
        check_count("node_count", cluster.node_count)?;
        Ok(validation)
    }

    fn create_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        self.validate_cluster(req)?;
        let operation = create_operation(
            StackTarget::default(),
            cluster_stack_name(req),
            self.parameters(req, None)?,
            req.cluster.create_timeout,
        );
        Ok(plan([operation]))
    }

    fn update_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        check_count("node_count", req.cluster.node_count)?;
        let stack = StackRef::cluster(req);
        Ok(plan([
            stack.update(scale_parameters(req.cluster.node_count, &[]))?
        ]))
    }

    fn resize_cluster(&self, req: &ResizeRequest) -> DriverResult<StackPlan> {
        let group = find_group(&req.base, &req.nodegroup)?;
        Ok(plan([scale_group(
            &req.base,
            group,
            req.node_count,
            &req.nodes_to_remove,
        )?]))
    }

    fn upgrade_cluster(&self, req: &UpgradeRequest) -> DriverResult<StackPlan> {
        let base = &req.base;
        let group = find_group(base, &req.nodegroup)?;
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
        if req.max_batch_size < 1 {
            return Err(DriverError::invalid(
                "max_batch_size",
                "max_batch_size must be at least 1",
            ));
        }
        let mut parameters = Map::new();
        parameters.insert("kube_tag".into(), new_tag.as_str().into());
        parameters.insert("update_max_batch_size".into(), req.max_batch_size.into());
        Ok(plan([StackRef::of_group(base, group).update(parameters)?]))
    }

    fn delete_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        let groups = req
            .nodegroups
            .iter()
            .filter(|g| !g.is_default)
            .map(|g| StackRef::of_group(req, g));
        Ok(plan(
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
        check_count("nodegroup.node_count", group.node_count)?;
        self.check_template(&effective_template(&req.base))?;
        let stack = StackRef::of_group(&req.base, group);
        let operation = create_operation(
            stack.target,
            stack.name,
            self.parameters(&req.base, Some(group))?,
            req.base.cluster.create_timeout,
        );
        Ok(plan([operation]))
    }

    fn update_nodegroup(&self, req: &NodeGroupRequest) -> DriverResult<StackPlan> {
        let group = &req.nodegroup;
        // A master group's stack has nothing a nodegroup update can change.
        if group.role == MASTER {
            return Ok(StackPlan::default());
        }
        Ok(plan([scale_group(
            &req.base,
            group,
            group.node_count,
            &[],
        )?]))
    }

    fn delete_nodegroup(&self, req: &NodeGroupRequest) -> DriverResult<StackPlan> {
        let group = &req.nodegroup;
        if group.is_default {
            return Err(DriverError::invalid(
                "nodegroup",
                "a default nodegroup is deleted with its cluster",
            ));
        }
        Ok(plan(StackRef::of_group(&req.base, group).delete()))
    }

    fn node_template(&self, req: &NodeTemplateRequest) -> DriverResult<NodeTemplate> {
        let file = NODE_FILES
            .iter()
            .find(|(role, _)| *role == req.role)
            .map(|(_, file)| *file)
            .ok_or_else(|| {
                DriverError::invalid(
                    "role",
                    format!("unknown role '{}'; known: {MASTER}, {WORKER}", req.role),
                )
            })?;
        Ok(NodeTemplate {
            role: req.role.clone(),
            file_name: file.into(),
            template: template_text(file).into(),
        })
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
                    for (role, output, count) in defaults {
                        if let Some(group) = default_group(base, role) {
                            update.nodegroups.push(group_status(
                                &group.uuid,
                                stack,
                                output,
                                count,
                                public,
                            ));
                        }
                    }
                }
                Some(uuid) => {
                    update.nodegroups.push(group_status(
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
    /// Template-level rules; cluster requests pass their effective template.
    fn check_template(&self, template: &ClusterTemplate) -> DriverResult<Validation> {
        check_provides(template)?;
        let labels = &template.labels;
        helpers::validate_labels(&self.info.labels, labels)?;
        self.network_config(template.network_driver.as_deref(), labels)?;
        let volume = self.volume_config(template.volume_driver.as_deref(), labels)?;
        if template
            .external_network_id
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return Err(DriverError::invalid(
                "external_network_id",
                "Required parameter external_network not provided.",
            ));
        }
        if template.fixed_network.is_some() && template.fixed_subnet.is_none() {
            return Err(DriverError::invalid(
                "fixed_subnet",
                "fixed_subnet is required when fixed_network is set",
            ));
        }
        let cloud_provider = self.cloud_provider_enabled(labels);
        if cloud_provider && !self.cluster_user_trust {
            return Err(DriverError::invalid(
                "labels.cloud_provider_enabled",
                "cloud_provider_enabled=true needs cluster_user_trust to be enabled in the driver config",
            ));
        }
        if volume.name == "cinder" && !cloud_provider {
            return Err(DriverError::invalid(
                "labels.cloud_provider_enabled",
                "the cinder volume driver needs cloud_provider_enabled=true",
            ));
        }
        let mut validation = Validation::default();
        if let Some(storage @ ("devicemapper" | "overlay")) =
            template.docker_storage_driver.as_deref()
        {
            validation.warnings.push(format!(
                "docker_storage_driver {storage} is deprecated; use overlay2"
            ));
        }
        Ok(validation)
    }

    fn cloud_provider_enabled(&self, labels: &Labels) -> bool {
        labels
            .get("cloud_provider_enabled")
            .map_or(self.cluster_user_trust, |v| v.eq_ignore_ascii_case("true"))
    }

    fn network_config(&self, name: Option<&str>, labels: &Labels) -> DriverResult<SubDriverConfig> {
        let mut config =
            self.sub_driver_config("network_driver", &self.info.network_drivers, name, labels)?;
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
        self.sub_driver_config("volume_driver", &self.info.volume_drivers, name, labels)
    }

    /// The chosen sub-driver's Heat parameters: its name under `field` and
    /// the labels it reads (value or default, typed). No sub-driver (none
    /// named and none default) adds nothing.
    fn sub_driver_config(
        &self,
        field: &str,
        offered: &[SubDriverInfo],
        name: Option<&str>,
        labels: &Labels,
    ) -> DriverResult<SubDriverConfig> {
        let Some(chosen) = helpers::choose_sub_driver(field, offered, COE, name)? else {
            return Ok(SubDriverConfig::default());
        };
        let mut parameters = Map::new();
        parameters.insert(field.into(), chosen.name.as_str().into());
        for name in &chosen.labels {
            if let Some(value) = self.label_value(labels, name) {
                parameters.insert(name.clone(), value);
            }
        }
        Ok(SubDriverConfig {
            name: chosen.name.clone(),
            parameters,
            files: BTreeMap::new(),
        })
    }

    /// A label's value (or schema default) as the JSON type its Heat
    /// parameter expects. Labels are validated before plans are built.
    fn label_value(&self, labels: &Labels, name: &str) -> Option<Value> {
        let value = helpers::label(&self.info.labels, labels, name)?;
        let kind = self
            .info
            .labels
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.kind);
        Some(match kind {
            Some(LabelType::Integer) => value
                .parse::<i64>()
                .map_or_else(|_| value.into(), Value::from),
            Some(LabelType::Boolean) => value.eq_ignore_ascii_case("true").into(),
            _ => value.into(),
        })
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
        let mut p = Map::new();
        let mut set = |name: &str, value: Value| {
            p.insert(name.into(), value);
        };
        set("is_cluster_stack", group.is_none().into());
        set("cluster_uuid", cluster.uuid.as_str().into());
        set("fixed_network_name", network_name.as_str().into());
        set(
            "nodes_affinity_policy",
            self.nodes_affinity_policy.as_str().into(),
        );
        set("floating_ip_enabled", template.floating_ip_enabled.into());
        set("tls_disabled", template.tls_disabled.into());
        set(
            "kubernetes_port",
            if template.tls_disabled { 8080 } else { 6443 }.into(),
        );
        set("registry_enabled", template.registry_enabled.into());
        set(
            "cloud_provider_enabled",
            self.cloud_provider_enabled(&labels).into(),
        );
        set("verify_ca", req.context.verify_ca.into());
        set("number_of_masters", cluster.master_count.into());
        set("number_of_minions", cluster.node_count.into());
        set("master_image", template.image_id.as_str().into());
        set("minion_image", template.image_id.as_str().into());
        let optional = [
            ("ssh_key_name", template.keypair_id.clone()),
            ("external_network", template.external_network_id.clone()),
            ("fixed_network", template.fixed_network.clone()),
            ("fixed_subnet", template.fixed_subnet.clone()),
            ("dns_nameserver", template.dns_nameserver.clone()),
            ("http_proxy", template.http_proxy.clone()),
            ("https_proxy", template.https_proxy.clone()),
            ("no_proxy", template.no_proxy.clone()),
            ("master_flavor", template.master_flavor_id.clone()),
            ("minion_flavor", template.flavor_id.clone()),
            (
                "docker_storage_driver",
                template.docker_storage_driver.clone(),
            ),
            ("insecure_registry_url", template.insecure_registry.clone()),
            ("discovery_url", cluster.discovery_url.clone()),
            ("magnum_url", req.context.magnum_url.clone()),
            ("auth_url", req.context.auth_url.clone()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                set(name, value.into());
            }
        }
        if let Some(size) = template.docker_volume_size {
            set("docker_volume_size", size.into());
        }
        for name in [
            "kube_tag",
            "container_runtime",
            "fixed_subnet_cidr",
            "etcd_volume_size",
            "docker_volume_type",
        ] {
            if let Some(value) = self.label_value(&labels, name) {
                set(name, value);
            }
        }
        if let Some(group) = default_group(req, MASTER) {
            set("master_nodegroup_name", group.name.as_str().into());
        }
        if let Some(group) = default_group(req, WORKER) {
            set("worker_nodegroup_name", group.name.as_str().into());
            set("worker_role", group.role.as_str().into());
        }
        p.extend(
            self.network_config(template.network_driver.as_deref(), &labels)?
                .parameters,
        );
        p.extend(
            self.volume_config(template.volume_driver.as_deref(), &labels)?
                .parameters,
        );
        for (name, value) in &req.context.extra {
            if HOST_PARAMETERS.contains(&name.as_str()) {
                p.insert(name.clone(), value.clone());
            }
        }
        p.insert(
            "create_network".into(),
            (group.is_none() && template.fixed_network.is_none()).into(),
        );
        if let Some(group) = group {
            // The group's nodes join the network and security group the
            // cluster stack created (or the cluster's own fixed network).
            let join = |existing: &Option<String>| {
                existing.clone().unwrap_or_else(|| network_name.clone())
            };
            let overrides = [
                ("fixed_network", join(&template.fixed_network).into()),
                ("fixed_subnet", join(&template.fixed_subnet).into()),
                (
                    "existing_security_group",
                    format!("{network_name}-minion").into(),
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
        Ok(p)
    }

    fn cluster_status(&self, req: &ClusterRequest, stack: &StackSnapshot) -> ClusterUpdate {
        let template = effective_template(req);
        let api_address = output_str(stack, "api_address").map(|ip| {
            let host = bracket_ipv6(ip);
            if template.tls_disabled {
                format!("http://{host}:8080")
            } else {
                format!("https://{host}:6443")
            }
        });
        let coe_version = stack
            .parameters
            .get("kube_tag")
            .and_then(Value::as_str)
            .or_else(|| helpers::label(&self.info.labels, &template.labels, "kube_tag"))
            .map(str::to_owned);
        ClusterUpdate {
            status: Some(stack.status.clone()),
            status_reason: Some(stack.status_reason.clone()),
            api_address,
            coe_version,
            container_version: Some(CONTAINER_VERSION.into()),
            discovery_url: None,
        }
    }
}

/// The template as the cluster sees it: the cluster's own values override the
/// template's, and its labels are merged over the template's.
fn effective_template(req: &ClusterRequest) -> ClusterTemplate {
    let cluster = &req.cluster;
    let mut template = req.template.clone();
    template.labels.extend(cluster.labels.clone());
    let overrides = [
        (&mut template.keypair_id, &cluster.keypair),
        (&mut template.master_flavor_id, &cluster.master_flavor_id),
        (&mut template.flavor_id, &cluster.flavor_id),
        (&mut template.fixed_network, &cluster.fixed_network),
        (&mut template.fixed_subnet, &cluster.fixed_subnet),
    ];
    for (field, value) in overrides {
        if value.is_some() {
            field.clone_from(value);
        }
    }
    template.docker_volume_size = cluster.docker_volume_size.or(template.docker_volume_size);
    template.floating_ip_enabled = cluster
        .floating_ip_enabled
        .unwrap_or(template.floating_ip_enabled);
    template.master_lb_enabled = cluster
        .master_lb_enabled
        .unwrap_or(template.master_lb_enabled);
    template
}

fn check_provides(template: &ClusterTemplate) -> DriverResult<()> {
    let given = [
        ("coe", &template.coe, COE),
        ("server_type", &template.server_type, SERVER_TYPE),
    ];
    for (field, value, expected) in given {
        if value != expected {
            return Err(DriverError::invalid(
                field,
                format!("{DRIVER_NAME} provides {field} {expected}, not '{value}'"),
            ));
        }
    }
    // The distro comes from the image; a template that names none is fine.
    if !template.cluster_distro.is_empty() && template.cluster_distro != OS {
        return Err(DriverError::invalid(
            "cluster_distro",
            format!(
                "{DRIVER_NAME} provides os {OS}, not '{}'",
                template.cluster_distro
            ),
        ));
    }
    Ok(())
}

fn check_count(field: &str, count: i64) -> DriverResult<()> {
    if count < 0 {
        return Err(DriverError::invalid(
            field,
            format!("{field} must be at least 0, got {count}"),
        ));
    }
    Ok(())
}

fn template_text(file: &str) -> &'static str {
    TEMPLATES
        .iter()
        .find(|(name, _)| *name == file)
        .map_or("", |(_, text)| *text)
}

fn plan(operations: impl IntoIterator<Item = StackOperation>) -> StackPlan {
    StackPlan {
        operations: operations.into_iter().collect(),
    }
}

fn create_operation(
    target: StackTarget,
    stack_name: String,
    parameters: Map<String, Value>,
    timeout_mins: Option<i64>,
) -> StackOperation {
    StackOperation {
        action: StackAction::Create,
        target,
        stack_name,
        template: CLUSTER_FILE.into(),
        files: TEMPLATES
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        parameters,
        disable_rollback: true,
        timeout_mins,
        ..Default::default()
    }
}

fn scale_parameters(node_count: i64, nodes_to_remove: &[String]) -> Map<String, Value> {
    let mut parameters = Map::new();
    parameters.insert("number_of_minions".into(), node_count.into());
    if !nodes_to_remove.is_empty() {
        parameters.insert("minions_to_remove".into(), nodes_to_remove.to_vec().into());
    }
    parameters
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
    check_count("node_count", node_count)?;
    let too_big = group.max_node_count.is_some_and(|max| node_count > max);
    if node_count < group.min_node_count || too_big {
        return Err(DriverError::invalid(
            "node_count",
            format!(
                "node_count {node_count} is outside nodegroup {}'s range {}..{}",
                group.name,
                group.min_node_count,
                group.max_node_count.map_or("".into(), |m| m.to_string())
            ),
        ));
    }
    StackRef::of_group(req, group).update(scale_parameters(node_count, nodes_to_remove))
}

fn find_group<'a>(req: &'a ClusterRequest, uuid: &str) -> DriverResult<&'a NodeGroup> {
    req.nodegroups
        .iter()
        .find(|g| g.uuid == uuid)
        .ok_or_else(|| {
            DriverError::invalid(
                "nodegroup",
                format!("nodegroup {uuid} is not part of the cluster"),
            )
        })
}

fn default_group<'a>(req: &'a ClusterRequest, role: &str) -> Option<&'a NodeGroup> {
    let is_master = role == MASTER;
    req.nodegroups
        .iter()
        .find(|g| g.is_default && (g.role == MASTER) == is_master)
}

fn cluster_stack_name(req: &ClusterRequest) -> String {
    helpers::stack_name(&req.cluster.name, &req.cluster.uuid)
}

/// The Heat stack holding a set of nodes.
struct StackRef {
    target: StackTarget,
    name: String,
    id: Option<String>,
}

impl StackRef {
    fn cluster(req: &ClusterRequest) -> Self {
        Self {
            target: StackTarget::default(),
            name: cluster_stack_name(req),
            id: req.cluster.stack_id.clone(),
        }
    }

    /// Default groups live in the cluster stack; others have their own,
    /// named `<cluster[:20]>-<group[:9]>-<id>` as upstream.
    fn of_group(req: &ClusterRequest, group: &NodeGroup) -> Self {
        if group.is_default {
            return Self::cluster(req);
        }
        let prefix: String = req.cluster.name.chars().take(20).collect();
        let suffix: String = group.name.chars().take(9).collect();
        Self {
            target: StackTarget {
                nodegroup: Some(group.uuid.clone()),
            },
            name: helpers::stack_name(&format!("{prefix}-{suffix}"), &group.uuid),
            id: group.stack_id.clone(),
        }
    }

    /// Updates the stack in place, reusing its stored template.
    fn update(self, parameters: Map<String, Value>) -> DriverResult<StackOperation> {
        let Some(id) = self.id else {
            return Err(DriverError::invalid(
                "stack_id",
                format!("stack {} has not been created yet", self.name),
            ));
        };
        Ok(StackOperation {
            action: StackAction::Update,
            target: self.target,
            stack_name: self.name,
            stack_id: Some(id),
            parameters,
            existing: true,
            disable_rollback: true,
            ..Default::default()
        })
    }

    /// Deletes the stack; a stack never created needs no operation.
    fn delete(self) -> Option<StackOperation> {
        Some(StackOperation {
            action: StackAction::Delete,
            target: self.target,
            stack_name: self.name,
            stack_id: Some(self.id?),
            ..Default::default()
        })
    }
}

/// A nodegroup's status, addresses (`output`, or `output_private` when nodes
/// have no floating IP) and size (stack parameter `count`).
fn group_status(
    uuid: &str,
    stack: &StackSnapshot,
    output: &str,
    count: &str,
    public: bool,
) -> NodeGroupUpdate {
    let output = if public {
        output.to_owned()
    } else {
        format!("{output}_private")
    };
    NodeGroupUpdate {
        uuid: uuid.into(),
        status: Some(stack.status.clone()),
        status_reason: Some(stack.status_reason.clone()),
        node_addresses: stack.outputs.get(&output).and_then(string_list),
        node_count: stack.parameters.get(count).and_then(integer),
    }
}

fn output_str<'a>(stack: &'a StackSnapshot, name: &str) -> Option<&'a str> {
    stack
        .outputs
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        Value::String(s) if !s.is_empty() => Some(vec![s.clone()]),
        _ => None,
    }
}

/// Heat reports parameters as strings; a local orchestrator may not.
fn integer(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str()?.trim().parse().ok())
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
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
