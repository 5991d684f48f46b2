//! `mesos_ubuntu_v1`: Apache Mesos with Marathon on Ubuntu. One Heat stack
//! per cluster; like upstream, no additional nodegroups, no upgrades and no
//! TLS.

use std::collections::BTreeMap;

use magnum_driver_abi::{
    capability as op, helpers,
    serde_json::{Map, Value},
    ClusterRequest, ClusterTemplate, ClusterUpdate, CoeDriver, DriverConfig, DriverError,
    DriverInfo, DriverResult, LabelSpec, LabelType, Labels, NodeGroup, NodeGroupUpdate,
    NodeTemplate, NodeTemplateRequest, Provides, ResizeRequest, StackAction, StackOperation,
    StackPlan, StackSnapshot, StackTarget, StatusRequest, StatusUpdate, SubDriverConfig,
    SubDriverInfo, SubDriverRequest, TemplateRequest, Validation,
};

pub const DRIVER_NAME: &str = "mesos_ubuntu_v1";
const SERVER_TYPE: &str = "vm";
const OS: &str = "ubuntu";
const COE: &str = "mesos";
const CONTAINER_VERSION: &str = "1.9.1";

/// What `mesos_slave_isolation` may list (comma-separated).
const ISOLATIONS: &[&str] = &[
    "filesystem/posix",
    "filesystem/linux",
    "filesystem/shared",
    "posix/cpu",
    "posix/mem",
    "posix/disk",
    "cgroups/cpu",
    "cgroups/mem",
    "docker/runtime",
    "namespaces/pid",
];

const MASTER: &str = "master";
const WORKER: &str = "worker";

/// The top-level template, the key of [`TEMPLATES`] a plan starts from.
pub const CLUSTER_FILE: &str = "cluster.yaml";
/// `(role, file)` of the node templates the cluster template nests.
const NODE_FILES: [(&str, &str); 2] = [(MASTER, "master.yaml"), (WORKER, "worker.yaml")];
/// Every file of the stack, as `(file name, HOT text)`.
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
    "region_name",
    "domain_name",
    "username",
];

const AFFINITY_POLICIES: &[&str] = &[
    "affinity",
    "anti-affinity",
    "soft-affinity",
    "soft-anti-affinity",
];

pub struct MesosUbuntuDriver {
    info: DriverInfo,
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

impl CoeDriver for MesosUbuntuDriver {
    fn info() -> DriverInfo {
        DriverInfo {
            name: DRIVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Apache Mesos and Marathon on Ubuntu, orchestrated with Heat".into(),
            provides: vec![Provides::new(SERVER_TYPE, OS, COE)],
            capabilities: [
                op::VALIDATE_TEMPLATE,
                op::VALIDATE_CLUSTER,
                op::CREATE_CLUSTER,
                op::UPDATE_CLUSTER,
                op::RESIZE_CLUSTER,
                op::DELETE_CLUSTER,
                op::NODE_TEMPLATE,
                op::NETWORK_DRIVER,
                op::VOLUME_DRIVER,
                op::MAP_STATUS,
            ]
            .map(String::from)
            .to_vec(),
            network_drivers: vec![sub_driver("docker", true, &[], "Docker's own networking")],
            volume_drivers: vec![sub_driver("rexray", false, &["rexray_preempt"], "REX-Ray with Cinder volumes")],
            labels: vec![
                label(
                    "mesos_slave_isolation",
                    LabelType::String,
                    None,
                    &[],
                    "comma-separated isolators of the slaves (filesystem/posix, posix/cpu, docker/runtime, ...)",
                ),
                label(
                    "mesos_slave_image_providers",
                    LabelType::String,
                    None,
                    &["appc", "docker", "appc,docker", "docker,appc"],
                    "container image providers of the slaves; docker needs the docker/runtime isolator",
                ),
                label("mesos_slave_work_dir", LabelType::String, None, &[], "the slaves' work directory"),
                label(
                    "mesos_slave_executor_env_variables",
                    LabelType::String,
                    None,
                    &[],
                    "JSON object of environment variables for executors",
                ),
                label("rexray_preempt", LabelType::Boolean, Some("false"), &[], "let REX-Ray take volumes over from other hosts"),
                label(
                    "fixed_subnet_cidr",
                    LabelType::Cidr,
                    Some("10.0.0.0/24"),
                    &[],
                    "CIDR of the private subnet the driver creates",
                ),
            ],
            node_roles: vec![MASTER.into(), WORKER.into()],
            template_path: Some(format!("templates/{CLUSTER_FILE}")),
            beta: false,
        }
    }

    fn new(config: &DriverConfig) -> DriverResult<Self> {
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
            nodes_affinity_policy,
        })
    }

    fn validate_template(&self, req: &TemplateRequest) -> DriverResult<Validation> {
        self.check_template(&req.template)
    }

    fn validate_cluster(&self, req: &ClusterRequest) -> DriverResult<Validation> {
        let validation = self.check_template(&effective_template(req))?;
        let cluster = &req.cluster;
        if cluster.master_count < 1 {
            return Err(DriverError::invalid(
                "master_count",
                format!(
                    "master_count must be at least 1, got {}",
                    cluster.master_count
                ),
            ));
        }
        check_count("node_count", cluster.node_count)?;
        Ok(validation)
    }

    fn create_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        self.validate_cluster(req)?;
        let operation = StackOperation {
            action: StackAction::Create,
            target: StackTarget::default(),
            stack_name: stack_name(req),
            template: CLUSTER_FILE.into(),
            files: TEMPLATES
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            parameters: self.parameters(req)?,
            disable_rollback: true,
            timeout_mins: req.cluster.create_timeout,
            ..Default::default()
        };
        Ok(plan([operation]))
    }

    fn update_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        check_count("node_count", req.cluster.node_count)?;
        Ok(plan([update_operation(
            req,
            scale_parameters(req.cluster.node_count, &[]),
        )?]))
    }

    fn resize_cluster(&self, req: &ResizeRequest) -> DriverResult<StackPlan> {
        let group = find_group(&req.base, &req.nodegroup)?;
        if group.role == MASTER || !group.is_default {
            return Err(DriverError::invalid(
                "nodegroup",
                "only the default worker nodegroup can be resized",
            ));
        }
        check_count("node_count", req.node_count)?;
        check_range(group, req.node_count)?;
        let parameters = scale_parameters(req.node_count, &req.nodes_to_remove);
        Ok(plan([update_operation(&req.base, parameters)?]))
    }

    fn delete_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        let Some(stack_id) = req.cluster.stack_id.clone() else {
            // Never created: nothing to delete.
            return Ok(StackPlan::default());
        };
        Ok(plan([StackOperation {
            action: StackAction::Delete,
            target: StackTarget::default(),
            stack_name: stack_name(req),
            stack_id: Some(stack_id),
            ..Default::default()
        }]))
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
        self.sub_driver_config(
            "network_driver",
            &self.info.network_drivers,
            &req.coe,
            req.name.as_deref(),
            &req.labels,
        )
    }

    fn volume_driver(&self, req: &SubDriverRequest) -> DriverResult<SubDriverConfig> {
        self.sub_driver_config(
            "volume_driver",
            &self.info.volume_drivers,
            &req.coe,
            req.name.as_deref(),
            &req.labels,
        )
    }

    fn map_status(&self, req: &StatusRequest) -> DriverResult<StatusUpdate> {
        let base = &req.base;
        let public = effective_template(base).floating_ip_enabled;
        let mut update = StatusUpdate::default();
        // Upstream never creates nodegroup stacks for Mesos.
        let Some(stack) = req.stacks.iter().find(|s| s.target.nodegroup.is_none()) else {
            return Ok(update);
        };
        update.cluster = ClusterUpdate {
            status: Some(stack.status.clone()),
            status_reason: Some(stack.status_reason.clone()),
            // Upstream stores Mesos' API address as the bare master IP.
            api_address: output_str(stack, "api_address").map(str::to_owned),
            coe_version: None,
            container_version: Some(CONTAINER_VERSION.into()),
            discovery_url: None,
        };
        let defaults = [
            (MASTER, "mesos_master", "number_of_masters"),
            (WORKER, "mesos_slaves", "number_of_slaves"),
        ];
        for (role, output, count) in defaults {
            if let Some(group) = default_group(base, role) {
                update
                    .nodegroups
                    .push(group_status(&group.uuid, stack, output, count, public));
            }
        }
        Ok(update)
    }
}

impl MesosUbuntuDriver {
    /// Template-level rules; cluster requests pass their effective template.
    fn check_template(&self, template: &ClusterTemplate) -> DriverResult<Validation> {
        check_provides(template)?;
        let labels = &template.labels;
        helpers::validate_labels(&self.info.labels, labels)?;
        self.sub_drivers(template, labels)?;
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
        check_mesos_labels(labels)?;
        Ok(Validation::default())
    }

    /// The template's network and volume drivers, resolved.
    fn sub_drivers(
        &self,
        template: &ClusterTemplate,
        labels: &Labels,
    ) -> DriverResult<(SubDriverConfig, SubDriverConfig)> {
        let coe = template.coe.as_str();
        let network = self.sub_driver_config(
            "network_driver",
            &self.info.network_drivers,
            coe,
            template.network_driver.as_deref(),
            labels,
        )?;
        let volume = self.sub_driver_config(
            "volume_driver",
            &self.info.volume_drivers,
            coe,
            template.volume_driver.as_deref(),
            labels,
        )?;
        Ok((network, volume))
    }

    /// The chosen sub-driver's Heat parameters: its name under `field` and
    /// the labels it reads (value or default, typed). No sub-driver (none
    /// named and none default) adds nothing.
    fn sub_driver_config(
        &self,
        field: &str,
        offered: &[SubDriverInfo],
        coe: &str,
        name: Option<&str>,
        labels: &Labels,
    ) -> DriverResult<SubDriverConfig> {
        let Some(chosen) = helpers::choose_sub_driver(field, offered, coe, name)? else {
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

    fn parameters(&self, req: &ClusterRequest) -> DriverResult<Map<String, Value>> {
        let template = effective_template(req);
        let cluster = &req.cluster;
        let labels = &template.labels;
        let mut p = Map::new();
        let mut set = |name: &str, value: Value| {
            p.insert(name.into(), value);
        };
        set("is_cluster_stack", true.into());
        set("create_network", template.fixed_network.is_none().into());
        set("cluster_uuid", cluster.uuid.as_str().into());
        set("cluster_name", cluster.name.as_str().into());
        set("tenant_name", cluster.project_id.as_str().into());
        set("fixed_network_name", stack_name(req).into());
        set(
            "nodes_affinity_policy",
            self.nodes_affinity_policy.as_str().into(),
        );
        set("floating_ip_enabled", template.floating_ip_enabled.into());
        set("verify_ca", req.context.verify_ca.into());
        set("number_of_masters", cluster.master_count.into());
        set("number_of_slaves", cluster.node_count.into());
        set("master_image", template.image_id.as_str().into());
        set("slave_image", template.image_id.as_str().into());
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
            ("slave_flavor", template.flavor_id.clone()),
            ("auth_url", req.context.auth_url.clone()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                set(name, value.into());
            }
        }
        let passed_labels = [
            "fixed_subnet_cidr",
            "mesos_slave_isolation",
            "mesos_slave_image_providers",
            "mesos_slave_work_dir",
            "mesos_slave_executor_env_variables",
        ];
        for name in passed_labels {
            if let Some(value) = self.label_value(labels, name) {
                set(name, value);
            }
        }
        if let Some(group) = default_group(req, MASTER) {
            set("master_nodegroup_name", group.name.as_str().into());
        }
        if let Some(group) = default_group(req, WORKER) {
            set("worker_nodegroup_name", group.name.as_str().into());
        }
        let (network, volume) = self.sub_drivers(&template, labels)?;
        p.extend(network.parameters);
        p.extend(volume.parameters);
        for (name, value) in &req.context.extra {
            if HOST_PARAMETERS.contains(&name.as_str()) {
                p.insert(name.clone(), value.clone());
            }
        }
        Ok(p)
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
    if template.coe != COE {
        return Err(DriverError::invalid(
            "coe",
            format!("{DRIVER_NAME} provides coe {COE}, not '{}'", template.coe),
        ));
    }
    if template.server_type != SERVER_TYPE {
        return Err(DriverError::invalid(
            "server_type",
            format!(
                "{DRIVER_NAME} provides server_type {SERVER_TYPE}, not '{}'",
                template.server_type
            ),
        ));
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

/// Upstream's Mesos label rules: isolators from a fixed set, the docker image
/// provider only with the docker/runtime isolator, executor variables as JSON.
fn check_mesos_labels(labels: &Labels) -> DriverResult<()> {
    let isolation: Vec<&str> = labels
        .get("mesos_slave_isolation")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(unknown) = isolation.iter().find(|i| !ISOLATIONS.contains(i)) {
        return Err(DriverError::invalid(
            "labels.mesos_slave_isolation",
            format!(
                "isolator '{unknown}' is not one of {}",
                ISOLATIONS.join(", ")
            ),
        ));
    }
    let providers = labels
        .get("mesos_slave_image_providers")
        .map_or("", String::as_str);
    if providers.split(',').any(|p| p == "docker") && !isolation.contains(&"docker/runtime") {
        return Err(DriverError::invalid(
            "labels.mesos_slave_isolation",
            "the docker image provider needs the docker/runtime isolator in mesos_slave_isolation",
        ));
    }
    if let Some(env) = labels.get("mesos_slave_executor_env_variables") {
        if magnum_driver_abi::serde_json::from_str::<Value>(env).is_err() {
            return Err(DriverError::invalid(
                "labels.mesos_slave_executor_env_variables",
                "mesos_slave_executor_env_variables must be valid JSON",
            ));
        }
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

fn check_range(group: &NodeGroup, node_count: i64) -> DriverResult<()> {
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

fn stack_name(req: &ClusterRequest) -> String {
    helpers::stack_name(&req.cluster.name, &req.cluster.uuid)
}

fn scale_parameters(node_count: i64, nodes_to_remove: &[String]) -> Map<String, Value> {
    let mut parameters = Map::new();
    parameters.insert("number_of_slaves".into(), node_count.into());
    if !nodes_to_remove.is_empty() {
        parameters.insert("slaves_to_remove".into(), nodes_to_remove.to_vec().into());
    }
    parameters
}

/// Updates the cluster stack in place, reusing its stored template.
fn update_operation(
    req: &ClusterRequest,
    parameters: Map<String, Value>,
) -> DriverResult<StackOperation> {
    let name = stack_name(req);
    let Some(id) = req.cluster.stack_id.clone() else {
        return Err(DriverError::invalid(
            "stack_id",
            format!("stack {name} has not been created yet"),
        ));
    };
    Ok(StackOperation {
        action: StackAction::Update,
        target: StackTarget::default(),
        stack_name: name,
        stack_id: Some(id),
        parameters,
        existing: true,
        disable_rollback: true,
        ..Default::default()
    })
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
