//! Pure helpers every Heat-based COE driver needs. They encode upstream
//! Magnum's conventions that every such driver shares (how a cluster
//! overrides its template, how stacks are named and updated, how nodegroup
//! status is read from stack outputs), so that each driver holds only what is
//! really its own. Not part of the ABI: they may change in any SDK release
//! without affecting loaded libraries. (Until magnum-driver-abi 1.0.1 they
//! were its `helpers` module.)

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub use crate::convention::{choose_sub_driver, parse_version, stack_name};
use crate::{
    ClusterRequest, ClusterTemplate, ClusterUpdate, DriverConfig, DriverError, DriverInfo,
    DriverResult, HostContext, LabelSpec, LabelType, Labels, NodeGroup, NodeGroupUpdate,
    NodeTemplate, ResizeRequest, StackAction, StackOperation, StackPlan, StackSnapshot,
    StackTarget, SubDriverConfig, SubDriverInfo,
};

/// Checks `labels` against `schema`: known labels must parse as their type and
/// be among the allowed values. Unknown labels pass, as upstream lets users
/// carry arbitrary labels.
pub fn validate_labels(schema: &[LabelSpec], labels: &Labels) -> DriverResult<()> {
    for spec in schema {
        let Some(value) = labels.get(&spec.name) else {
            continue;
        };
        let field = format!("labels.{}", spec.name);
        let ok = match spec.kind {
            LabelType::String => true,
            LabelType::Integer => value.parse::<i64>().is_ok(),
            LabelType::Boolean => matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
            LabelType::Semver => parse_version(value).is_some(),
            LabelType::Cidr => is_ipv4_cidr(value),
        };
        if !ok {
            let kind = format!("{:?}", spec.kind).to_lowercase();
            return Err(DriverError::invalid(
                &field,
                format!("label {} must be a {kind}, got '{value}'", spec.name),
            ));
        }
        if !spec.allowed.is_empty() && !spec.allowed.iter().any(|a| a == value) {
            return Err(DriverError::invalid(
                &field,
                format!(
                    "label {} must be one of {}, got '{value}'",
                    spec.name,
                    spec.allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The label's value, else its schema default.
pub fn label<'a>(schema: &'a [LabelSpec], labels: &'a Labels, name: &str) -> Option<&'a str> {
    labels.get(name).map(String::as_str).or_else(|| {
        schema
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.default.as_deref())
    })
}

fn is_ipv4_cidr(value: &str) -> bool {
    let Some((addr, len)) = value.split_once('/') else {
        return false;
    };
    addr.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 32)
}

// ---- Describing a driver -------------------------------------------------

/// Builds a [`LabelSpec`] from borrowed parts, so a driver's `info()` can list
/// its labels one line each.
pub fn label_spec(
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

/// Builds a [`SubDriverInfo`] from borrowed parts. Empty `coes` means the
/// sub-driver applies to every COE the driver provides.
pub fn sub_driver_info(
    name: &str,
    default: bool,
    coes: &[&str],
    labels: &[&str],
    description: &str,
) -> SubDriverInfo {
    SubDriverInfo {
        name: name.into(),
        default,
        coes: coes.iter().map(|s| s.to_string()).collect(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
        description: description.into(),
    }
}

/// The server-group policies upstream's `[cluster] nodes_affinity_policy`
/// accepts.
pub const NODES_AFFINITY_POLICIES: &[&str] = &[
    "affinity",
    "anti-affinity",
    "soft-affinity",
    "soft-anti-affinity",
];

/// Reads upstream's `[cluster] nodes_affinity_policy` from a driver's config:
/// `soft-anti-affinity` when absent, an `Invalid` error on
/// `config.nodes_affinity_policy` when not one of
/// [`NODES_AFFINITY_POLICIES`].
pub fn nodes_affinity_policy(config: &DriverConfig) -> DriverResult<String> {
    match config.get("nodes_affinity_policy") {
        None => Ok("soft-anti-affinity".to_owned()),
        Some(Value::String(p)) if NODES_AFFINITY_POLICIES.contains(&p.as_str()) => Ok(p.clone()),
        Some(_) => Err(DriverError::invalid(
            "config.nodes_affinity_policy",
            format!("must be one of {}", NODES_AFFINITY_POLICIES.join(", ")),
        )),
    }
}

// ---- Validation ------------------------------------------------------------

/// The template as the cluster sees it: the cluster's own values override the
/// template's, and its labels are merged over the template's. Drivers
/// validate and build parameters from this, never from the bare template.
pub fn effective_template(req: &ClusterRequest) -> ClusterTemplate {
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

fn joined<'a>(values: impl IntoIterator<Item = &'a str>, separator: &str) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for value in values {
        if !unique.contains(&value) {
            unique.push(value);
        }
    }
    unique.join(separator)
}

/// Checks that `template` asks for what `info.provides`: its coe, then its
/// server type, then (when the template names one; the distro usually comes
/// from the image) its os. Errors are `Invalid` on the offending field.
pub fn check_provides(info: &DriverInfo, template: &ClusterTemplate) -> DriverResult<()> {
    let name = &info.name;
    let provides = &info.provides;
    let same_coe: Vec<_> = provides.iter().filter(|p| p.coe == template.coe).collect();
    if same_coe.is_empty() {
        let coes = joined(provides.iter().map(|p| p.coe.as_str()), " and ");
        return Err(DriverError::invalid(
            "coe",
            format!("{name} provides coe {coes}, not '{}'", template.coe),
        ));
    }
    let same_server: Vec<_> = same_coe
        .iter()
        .filter(|p| p.server_type == template.server_type)
        .collect();
    if same_server.is_empty() {
        let server_types = joined(same_coe.iter().map(|p| p.server_type.as_str()), " and ");
        return Err(DriverError::invalid(
            "server_type",
            format!(
                "{name} provides server_type {server_types}, not '{}'",
                template.server_type
            ),
        ));
    }
    let distro = &template.cluster_distro;
    if !distro.is_empty() && !same_server.iter().any(|p| &p.os == distro) {
        let oses = joined(same_server.iter().map(|p| p.os.as_str()), " and ");
        return Err(DriverError::invalid(
            "cluster_distro",
            format!("{name} provides os {oses}, not '{distro}'"),
        ));
    }
    Ok(())
}

/// Upstream's network rules for Heat drivers: an external network is
/// required, and a fixed network needs its subnet named too.
pub fn check_networks(template: &ClusterTemplate) -> DriverResult<()> {
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
    Ok(())
}

/// The warning for a Docker storage driver upstream deprecated
/// (`devicemapper`, `overlay`), if the template uses one.
pub fn storage_driver_warning(template: &ClusterTemplate) -> Option<String> {
    match template.docker_storage_driver.as_deref() {
        Some(storage @ ("devicemapper" | "overlay")) => Some(format!(
            "docker_storage_driver {storage} is deprecated; use overlay2"
        )),
        _ => None,
    }
}

/// An `Invalid` error on `field` unless `value >= min`; node and master
/// counts are checked with it.
pub fn check_at_least(field: &str, value: i64, min: i64) -> DriverResult<()> {
    if value < min {
        return Err(DriverError::invalid(
            field,
            format!("{field} must be at least {min}, got {value}"),
        ));
    }
    Ok(())
}

/// Checks a requested size of `group`: not negative, and within the group's
/// `min_node_count..=max_node_count`. Errors are `Invalid` on `node_count`.
pub fn check_group_node_count(group: &NodeGroup, node_count: i64) -> DriverResult<()> {
    check_at_least("node_count", node_count, 0)?;
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

/// Checks a resize of a driver whose one cluster stack holds every node:
/// only the default worker nodegroup can be resized (an `Invalid` error on
/// `nodegroup` otherwise), within its range (see
/// [`check_group_node_count`]).
pub fn check_default_worker_resize(req: &ResizeRequest) -> DriverResult<()> {
    let group = find_nodegroup(&req.base, &req.nodegroup)?;
    if group.role == MASTER_ROLE || !group.is_default {
        return Err(DriverError::invalid(
            "nodegroup",
            "only the default worker nodegroup can be resized",
        ));
    }
    check_group_node_count(group, req.node_count)
}

// ---- Labels and sub-drivers ------------------------------------------------

/// A label's value (or schema default) as the JSON type its Heat parameter
/// expects: integers and booleans typed, anything else a string. Labels are
/// validated before plans are built, so an unparsable integer stays a string.
pub fn label_value(schema: &[LabelSpec], labels: &Labels, name: &str) -> Option<Value> {
    let value = label(schema, labels, name)?;
    let kind = schema.iter().find(|s| s.name == name).map(|s| s.kind);
    Some(match kind {
        Some(LabelType::Integer) => value
            .parse::<i64>()
            .map_or_else(|_| value.into(), Value::from),
        Some(LabelType::Boolean) => value.eq_ignore_ascii_case("true").into(),
        _ => value.into(),
    })
}

/// The Heat parameters for the labels `names` that have a value or a
/// default, each typed as [`label_value`] does; the others are left out so
/// the template's own default applies.
pub fn label_parameters<I>(schema: &[LabelSpec], labels: &Labels, names: I) -> Map<String, Value>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    names
        .into_iter()
        .filter_map(|name| {
            let name = name.as_ref();
            label_value(schema, labels, name).map(|value| (name.to_owned(), value))
        })
        .collect()
}

/// The network sub-driver `name` (or the default for `coe`) with its Heat
/// parameters; see [`sub_driver_config`].
pub fn network_config(
    info: &DriverInfo,
    coe: &str,
    name: Option<&str>,
    labels: &Labels,
) -> DriverResult<SubDriverConfig> {
    sub_driver_config(
        &info.labels,
        "network_driver",
        &info.network_drivers,
        coe,
        name,
        labels,
    )
}

/// The volume sub-driver `name` (or the default for `coe`) with its Heat
/// parameters; see [`sub_driver_config`].
pub fn volume_config(
    info: &DriverInfo,
    coe: &str,
    name: Option<&str>,
    labels: &Labels,
) -> DriverResult<SubDriverConfig> {
    sub_driver_config(
        &info.labels,
        "volume_driver",
        &info.volume_drivers,
        coe,
        name,
        labels,
    )
}

/// The network and volume sub-drivers `template` names (or the defaults for
/// its coe), resolved with its labels.
pub fn template_sub_drivers(
    info: &DriverInfo,
    template: &ClusterTemplate,
    labels: &Labels,
) -> DriverResult<(SubDriverConfig, SubDriverConfig)> {
    let coe = template.coe.as_str();
    let network = network_config(info, coe, template.network_driver.as_deref(), labels)?;
    let volume = volume_config(info, coe, template.volume_driver.as_deref(), labels)?;
    Ok((network, volume))
}

/// The chosen sub-driver's Heat parameters: its name under `field` and the
/// labels it reads (value or default, typed by `schema`). No sub-driver (none
/// named and none default) adds nothing; an unknown one is an `Invalid` error
/// from [`choose_sub_driver`].
pub fn sub_driver_config(
    schema: &[LabelSpec],
    field: &str,
    offered: &[SubDriverInfo],
    coe: &str,
    name: Option<&str>,
    labels: &Labels,
) -> DriverResult<SubDriverConfig> {
    let Some(chosen) = choose_sub_driver(field, offered, coe, name)? else {
        return Ok(SubDriverConfig::default());
    };
    let mut parameters = Map::new();
    parameters.insert(field.into(), chosen.name.as_str().into());
    parameters.extend(label_parameters(schema, labels, &chosen.labels));
    Ok(SubDriverConfig {
        name: chosen.name.clone(),
        parameters,
        files: BTreeMap::new(),
    })
}

// ---- Nodegroups ------------------------------------------------------------

pub use crate::basics::MASTER_ROLE;

/// The cluster's nodegroup `uuid`, or an `Invalid` error on `nodegroup`.
pub fn find_nodegroup<'a>(req: &'a ClusterRequest, uuid: &str) -> DriverResult<&'a NodeGroup> {
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

/// The cluster's default nodegroup for `role`: the default master group for
/// [`MASTER_ROLE`], the default non-master group for any other role.
pub fn default_nodegroup<'a>(req: &'a ClusterRequest, role: &str) -> Option<&'a NodeGroup> {
    let is_master = role == MASTER_ROLE;
    req.nodegroups
        .iter()
        .find(|g| g.is_default && (g.role == MASTER_ROLE) == is_master)
}

// ---- Heat parameters -------------------------------------------------------

/// The Heat parameters every upstream cluster template declares under the
/// same name: identity, networking, proxies, the master image and flavor,
/// the master count and the default nodegroups' names. Drivers add their own
/// (worker count, image and flavor, labels, sub-drivers) on top.
pub fn common_parameters(
    req: &ClusterRequest,
    template: &ClusterTemplate,
    nodes_affinity_policy: &str,
) -> Map<String, Value> {
    let cluster = &req.cluster;
    let mut p = Map::new();
    let mut set = |name: &str, value: Value| {
        p.insert(name.into(), value);
    };
    set("cluster_uuid", cluster.uuid.as_str().into());
    set("fixed_network_name", cluster_stack_name(req).into());
    set("nodes_affinity_policy", nodes_affinity_policy.into());
    set("floating_ip_enabled", template.floating_ip_enabled.into());
    set("verify_ca", req.context.verify_ca.into());
    set("number_of_masters", cluster.master_count.into());
    set("master_image", template.image_id.as_str().into());
    let optional = [
        ("ssh_key_name", &template.keypair_id),
        ("external_network", &template.external_network_id),
        ("fixed_network", &template.fixed_network),
        ("fixed_subnet", &template.fixed_subnet),
        ("dns_nameserver", &template.dns_nameserver),
        ("http_proxy", &template.http_proxy),
        ("https_proxy", &template.https_proxy),
        ("no_proxy", &template.no_proxy),
        ("master_flavor", &template.master_flavor_id),
        ("auth_url", &req.context.auth_url),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            set(name, value.as_str().into());
        }
    }
    if let Some(group) = default_nodegroup(req, MASTER_ROLE) {
        set("master_nodegroup_name", group.name.as_str().into());
    }
    if let Some(group) = default_nodegroup(req, "worker") {
        set("worker_nodegroup_name", group.name.as_str().into());
    }
    if let Some(seconds) = crate::bootstrap::wait_condition_timeout(cluster.create_timeout) {
        set(crate::bootstrap::TIMEOUT_PARAMETER, seconds.into());
    }
    p
}

/// The Heat parameters of Docker hosts (upstream's Fedora Atomic
/// templates): TLS, the registry, Docker storage and the discovery and
/// Magnum URLs.
pub fn docker_parameters(req: &ClusterRequest, template: &ClusterTemplate) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("tls_disabled".into(), template.tls_disabled.into());
    p.insert("registry_enabled".into(), template.registry_enabled.into());
    let optional = [
        ("docker_storage_driver", &template.docker_storage_driver),
        ("insecure_registry_url", &template.insecure_registry),
        ("discovery_url", &req.cluster.discovery_url),
        ("magnum_url", &req.context.magnum_url),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            p.insert(name.into(), value.as_str().into());
        }
    }
    if let Some(size) = template.docker_volume_size {
        p.insert("docker_volume_size".into(), size.into());
    }
    p
}

/// The host-supplied values (`HostContext::extra`) that the template
/// `declares`. Heat rejects a stack given an undeclared parameter, so any
/// other key is dropped.
pub fn host_parameters(context: &HostContext, declared: &[&str]) -> Map<String, Value> {
    context
        .extra
        .iter()
        .filter(|(name, _)| declared.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The `HostContext::extra` key under which the host gives a nodegroup
/// operation the cluster stack's outputs (a JSON object), as upstream's
/// drivers read the cluster stack for `get_nodegroup_extra_params`: what
/// the nodegroup's stack joins (network, subnet, security group ids).
pub const CLUSTER_STACK_OUTPUTS: &str = "cluster_stack_outputs";

/// The cluster stack's output `name` as the host gave it
/// ([`CLUSTER_STACK_OUTPUTS`]), when it is a non-empty string.
pub fn cluster_stack_output<'a>(context: &'a HostContext, name: &str) -> Option<&'a str> {
    context
        .extra
        .get(CLUSTER_STACK_OUTPUTS)?
        .get(name)?
        .as_str()
        .filter(|value| !value.is_empty())
}

/// The `HostContext::extra` key under which the host gives an upgrade the
/// current parameters of the upgraded nodegroup's stack (a JSON object, as
/// Heat's stack show gives them: strings): what the driver moves on from,
/// such as a node generation.
pub const NODEGROUP_STACK_PARAMETERS: &str = "nodegroup_stack_parameters";

/// The upgraded nodegroup stack's current parameter `name`, as the host
/// gave it ([`NODEGROUP_STACK_PARAMETERS`]).
pub fn nodegroup_stack_parameter<'a>(context: &'a HostContext, name: &str) -> Option<&'a Value> {
    context.extra.get(NODEGROUP_STACK_PARAMETERS)?.get(name)
}

/// A rolling replacement of a group's nodes: the parameters raising the
/// node generation `parameter` (a number) one above the stack's current
/// one, with `<parameter>_odd`, its parity (HOT has no arithmetic: the node
/// templates pick their wait condition slot by it). A template that puts
/// the generation where a change replaces the server (k8s worker.yaml:
/// Nova scheduler hints) and keeps one wait condition per parity slot gets,
/// from real Heat, a rolling replacement in which every new node must
/// signal again. Any operation that must roll nodes (an upgrade; a
/// credential nodes hold, should it rotate) can pass these.
pub fn next_generation(context: &HostContext, parameter: &str) -> Map<String, Value> {
    let current = nodegroup_stack_parameter(context, parameter)
        .and_then(integer)
        .unwrap_or(0);
    let next = current.saturating_add(1);
    let mut parameters = Map::new();
    parameters.insert(parameter.into(), next.into());
    parameters.insert(format!("{parameter}_odd"), (next % 2 != 0).into());
    parameters
}

/// The parameters of a scaling update: the new count under `count_parameter`
/// and, when some nodes are to go, their names under `remove_parameter`.
pub fn scale_parameters(
    count_parameter: &str,
    remove_parameter: &str,
    node_count: i64,
    nodes_to_remove: &[String],
) -> Map<String, Value> {
    let mut parameters = Map::new();
    parameters.insert(count_parameter.into(), node_count.into());
    if !nodes_to_remove.is_empty() {
        parameters.insert(remove_parameter.into(), nodes_to_remove.to_vec().into());
    }
    parameters
}

// ---- Stacks and plans ------------------------------------------------------

/// A plan of `operations`, run in order.
pub fn stack_plan(operations: impl IntoIterator<Item = StackOperation>) -> StackPlan {
    StackPlan {
        operations: operations.into_iter().collect(),
    }
}

/// The name of the cluster's own stack ([`stack_name`] of the cluster).
pub fn cluster_stack_name(req: &ClusterRequest) -> String {
    stack_name(&req.cluster.name, &req.cluster.uuid)
}

/// The Heat stack holding a set of nodes, and the operations on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackRef {
    pub target: StackTarget,
    pub name: String,
    /// Heat's id; `None` until the stack is created.
    pub id: Option<String>,
}

impl StackRef {
    /// The cluster's own stack (target: the cluster).
    pub fn cluster(req: &ClusterRequest) -> Self {
        Self {
            target: StackTarget::default(),
            name: cluster_stack_name(req),
            id: req.cluster.stack_id.clone(),
        }
    }

    /// Creates the stack from `template`, one of `files` (`(name, HOT text)`),
    /// without rollback so a failed stack can be inspected, as upstream. The
    /// node templates' fragment heredocs are bundled
    /// ([`crate::user_data::bundle_stack_files`]): Nova refuses user data
    /// over 64 KiB.
    pub fn create(
        self,
        template: &str,
        files: &[(&str, &str)],
        parameters: Map<String, Value>,
        timeout_mins: Option<i64>,
    ) -> StackOperation {
        let mut files = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::user_data::bundle_stack_files(&mut files);
        StackOperation {
            action: StackAction::Create,
            target: self.target,
            stack_name: self.name,
            template: template.into(),
            files,
            parameters,
            disable_rollback: true,
            timeout_mins,
            ..Default::default()
        }
    }

    /// Updates the stack in place, reusing its stored template; an `Invalid`
    /// error on `stack_id` when it was never created.
    pub fn update(self, parameters: Map<String, Value>) -> DriverResult<StackOperation> {
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
    pub fn delete(self) -> Option<StackOperation> {
        Some(StackOperation {
            action: StackAction::Delete,
            target: self.target,
            stack_name: self.name,
            stack_id: Some(self.id?),
            ..Default::default()
        })
    }
}

/// The node template of `role`: its file from `node_files` (`(role, file)`)
/// with that file's text from `templates` (`(file, HOT text)`), its fragments
/// bundled as in the stacks. An unknown
/// role is an `Invalid` error on `role` listing the known ones.
pub fn node_template(
    node_files: &[(&str, &str)],
    templates: &[(&str, &str)],
    role: &str,
) -> DriverResult<NodeTemplate> {
    let Some((_, file)) = node_files.iter().find(|(r, _)| *r == role) else {
        let known: Vec<&str> = node_files.iter().map(|(r, _)| *r).collect();
        return Err(DriverError::invalid(
            "role",
            format!("unknown role '{role}'; known: {}", known.join(", ")),
        ));
    };
    let text = templates
        .iter()
        .find(|(name, _)| name == file)
        .map_or("", |(_, text)| *text);
    // As the stacks have it: fragments bundled (StackRef::create).
    let files = templates
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(NodeTemplate {
        role: role.into(),
        file_name: (*file).into(),
        template: crate::user_data::bundle_fragments(text, &files),
    })
}

// ---- Status ----------------------------------------------------------------

/// A non-empty string output of the stack.
pub fn output_str<'a>(stack: &'a StackSnapshot, name: &str) -> Option<&'a str> {
    stack
        .outputs
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub use crate::basics::string_list;

/// An integer parameter: Heat reports parameters as strings; a local
/// orchestrator may not.
pub fn integer(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str()?.trim().parse().ok())
}

/// The cluster's own stack among `stacks`: the one targeting no nodegroup.
pub fn cluster_snapshot(stacks: &[StackSnapshot]) -> Option<&StackSnapshot> {
    stacks.iter().find(|s| s.target.nodegroup.is_none())
}

/// The cluster update a driver starts from: the stack's status and reason
/// (with the nodes that never signalled their bootstrap, when a wait
/// condition timed out), nothing else; the driver adds what it reads from
/// the outputs.
pub fn cluster_stack_status(stack: &StackSnapshot) -> ClusterUpdate {
    ClusterUpdate {
        status: Some(stack.status.clone()),
        status_reason: Some(crate::bootstrap::status_reason(stack)),
        ..Default::default()
    }
}

/// A nodegroup's status, addresses (output `output`, or `output_private`
/// when nodes have no floating IP) and size (stack parameter `count`).
pub fn nodegroup_status(
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

/// The status of the default nodegroups living in the cluster `stack`, one
/// per `(role, addresses output, count parameter)` whose default group
/// exists; see [`nodegroup_status`]. A stack that failed at a node's
/// bootstrap fails the group of that node ([`bootstrap::narrow_failure`]).
///
/// [`bootstrap::narrow_failure`]: crate::bootstrap::narrow_failure
pub fn default_nodegroup_statuses(
    req: &ClusterRequest,
    stack: &StackSnapshot,
    public: bool,
    groups: &[(&str, &str, &str)],
) -> Vec<NodeGroupUpdate> {
    groups
        .iter()
        .filter_map(|(role, output, count)| {
            let group = default_nodegroup(req, role)?;
            let mut update = nodegroup_status(&group.uuid, stack, output, count, public);
            crate::bootstrap::narrow_failure(&mut update, role, stack);
            Some(update)
        })
        .collect()
}

/// `host` as it may stand before `:port` in a URL: IPv6 addresses bracketed.
pub fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: LabelType, allowed: &[&str]) -> LabelSpec {
        LabelSpec {
            name: name.into(),
            kind,
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn labels_are_checked_by_type_and_allowed_values() {
        let schema = [
            spec("strategy", LabelType::String, &["spread", "binpack"]),
            spec("size", LabelType::Integer, &[]),
            spec("cidr", LabelType::Cidr, &[]),
            spec("tag", LabelType::Semver, &[]),
        ];
        let mut labels = Labels::new();
        labels.insert("strategy".into(), "spread".into());
        labels.insert("size".into(), "3".into());
        labels.insert("cidr".into(), "10.0.0.0/8".into());
        labels.insert("tag".into(), "v1.27.3".into());
        labels.insert("unknown".into(), "anything".into());
        assert_eq!(validate_labels(&schema, &labels), Ok(()));

        labels.insert("strategy".into(), "random".into());
        let err = validate_labels(&schema, &labels).unwrap_err();
        assert_eq!(err.field.as_str(), "labels.strategy");
        assert!(err.message.contains("spread, binpack"), "{err}");

        labels.insert("strategy".into(), "spread".into());
        labels.insert("cidr".into(), "10.0.0.0/33".into());
        assert_eq!(
            validate_labels(&schema, &labels)
                .unwrap_err()
                .field
                .as_str(),
            "labels.cidr"
        );
    }

    use crate::{Cluster, Provides};
    use serde_json::json;

    fn nodegroup(uuid: &str, role: &str, is_default: bool) -> NodeGroup {
        NodeGroup {
            uuid: uuid.into(),
            name: format!("{role}-{uuid}"),
            role: role.into(),
            is_default,
            node_count: 1,
            ..Default::default()
        }
    }

    fn request() -> ClusterRequest {
        ClusterRequest {
            template: ClusterTemplate {
                image_id: "fedora".into(),
                flavor_id: Some("m1.small".into()),
                keypair_id: Some("ops".into()),
                external_network_id: Some("public".into()),
                floating_ip_enabled: true,
                ..Default::default()
            },
            cluster: Cluster {
                uuid: "3f2a9c1e-77aa-4b0e-9d1f-0123456789ab".into(),
                name: "prod".into(),
                master_count: 3,
                stack_id: Some("stack-1".into()),
                ..Default::default()
            },
            nodegroups: vec![
                nodegroup("m", "master", true),
                nodegroup("w", "worker", true),
                nodegroup("x", "worker", false),
            ],
            context: HostContext {
                magnum_url: Some("http://magnum:9511/v1".into()),
                verify_ca: true,
                ..Default::default()
            },
        }
    }

    fn invalid_field<T: std::fmt::Debug>(result: DriverResult<T>) -> String {
        let err = result.unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::INVALID, "{err}");
        err.field.to_string()
    }

    #[test]
    fn builders_copy_every_part() {
        let spec = label_spec(
            "flannel_backend",
            LabelType::String,
            Some("vxlan"),
            &["udp", "vxlan"],
            "backend",
        );
        assert_eq!(spec.name, "flannel_backend");
        assert_eq!(spec.kind, LabelType::String);
        assert_eq!(spec.default.as_deref(), Some("vxlan"));
        assert_eq!(spec.allowed, ["udp", "vxlan"]);
        assert_eq!(spec.description, "backend");

        let driver = sub_driver_info(
            "calico",
            false,
            &["kubernetes"],
            &["calico_ipv4pool"],
            "BGP",
        );
        assert_eq!(
            driver,
            SubDriverInfo {
                name: "calico".into(),
                default: false,
                coes: vec!["kubernetes".into()],
                labels: vec!["calico_ipv4pool".into()],
                description: "BGP".into(),
            }
        );
        assert!(sub_driver_info("docker", true, &[], &[], "")
            .coes
            .is_empty());
    }

    #[test]
    fn affinity_policy_defaults_and_is_checked() {
        let config = |v: Value| {
            json!({ "nodes_affinity_policy": v })
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(
            nodes_affinity_policy(&DriverConfig::new()).unwrap(),
            "soft-anti-affinity"
        );
        assert_eq!(
            nodes_affinity_policy(&config("anti-affinity".into())).unwrap(),
            "anti-affinity"
        );
        for bad in [json!("sometimes"), json!(3)] {
            let err = nodes_affinity_policy(&config(bad)).unwrap_err();
            assert_eq!(err.field.as_str(), "config.nodes_affinity_policy");
            assert!(err.message.contains("soft-affinity"), "{err}");
        }
    }

    #[test]
    fn the_cluster_overrides_its_template() {
        let mut req = request();
        req.template.labels.insert("a".into(), "template".into());
        req.template.labels.insert("b".into(), "template".into());
        req.cluster.labels.insert("b".into(), "cluster".into());
        req.cluster.flavor_id = Some("m1.large".into());
        req.cluster.docker_volume_size = Some(20);
        req.cluster.floating_ip_enabled = Some(false);
        req.cluster.master_lb_enabled = Some(true);
        let t = effective_template(&req);
        assert_eq!(t.labels["a"], "template");
        assert_eq!(t.labels["b"], "cluster");
        assert_eq!(t.flavor_id.as_deref(), Some("m1.large"));
        assert_eq!(
            t.keypair_id.as_deref(),
            Some("ops"),
            "unset keeps the template's"
        );
        assert_eq!(t.docker_volume_size, Some(20));
        assert!(!t.floating_ip_enabled);
        assert!(t.master_lb_enabled);
    }

    #[test]
    fn provides_are_checked_field_by_field() {
        let info = DriverInfo {
            name: "swarm_v1".into(),
            provides: vec![
                Provides::new("vm", "fedora-atomic", "swarm"),
                Provides::new("vm", "fedora-atomic", "swarm-mode"),
            ],
            ..Default::default()
        };
        let template = |coe: &str, server_type: &str, distro: &str| ClusterTemplate {
            coe: coe.into(),
            server_type: server_type.into(),
            cluster_distro: distro.into(),
            ..Default::default()
        };
        check_provides(&info, &template("swarm-mode", "vm", "")).unwrap();
        check_provides(&info, &template("swarm", "vm", "fedora-atomic")).unwrap();
        let err = check_provides(&info, &template("mesos", "vm", "")).unwrap_err();
        assert_eq!(err.field.as_str(), "coe");
        assert_eq!(
            err.message.as_str(),
            "swarm_v1 provides coe swarm and swarm-mode, not 'mesos'"
        );
        let err = check_provides(&info, &template("swarm", "bm", "")).unwrap_err();
        assert_eq!(
            err.message.as_str(),
            "swarm_v1 provides server_type vm, not 'bm'"
        );
        let err = check_provides(&info, &template("swarm", "vm", "ubuntu")).unwrap_err();
        assert_eq!(err.field.as_str(), "cluster_distro");
        assert_eq!(
            err.message.as_str(),
            "swarm_v1 provides os fedora-atomic, not 'ubuntu'"
        );
    }

    #[test]
    fn networks_and_storage_follow_upstream_rules() {
        let mut t = request().template;
        check_networks(&t).unwrap();
        t.fixed_network = Some("net".into());
        assert_eq!(invalid_field(check_networks(&t)), "fixed_subnet");
        t.fixed_subnet = Some("subnet".into());
        check_networks(&t).unwrap();
        t.external_network_id = Some(String::new());
        assert_eq!(invalid_field(check_networks(&t)), "external_network_id");

        assert_eq!(storage_driver_warning(&t), None);
        t.docker_storage_driver = Some("overlay2".into());
        assert_eq!(storage_driver_warning(&t), None);
        t.docker_storage_driver = Some("devicemapper".into());
        assert_eq!(
            storage_driver_warning(&t).as_deref(),
            Some("docker_storage_driver devicemapper is deprecated; use overlay2")
        );
    }

    #[test]
    fn counts_are_checked_against_their_bounds() {
        check_at_least("node_count", 0, 0).unwrap();
        let err = check_at_least("master_count", 0, 1).unwrap_err();
        assert_eq!(err.field.as_str(), "master_count");
        assert_eq!(
            err.message.as_str(),
            "master_count must be at least 1, got 0"
        );

        let mut group = nodegroup("w", "worker", true);
        group.name = "workers".into();
        group.min_node_count = 1;
        group.max_node_count = Some(3);
        check_group_node_count(&group, 3).unwrap();
        assert_eq!(
            invalid_field(check_group_node_count(&group, -1)),
            "node_count"
        );
        let err = check_group_node_count(&group, 4).unwrap_err();
        assert_eq!(
            err.message.as_str(),
            "node_count 4 is outside nodegroup workers's range 1..3"
        );
        group.max_node_count = None;
        check_group_node_count(&group, 100).unwrap();
        let err = check_group_node_count(&group, 0).unwrap_err();
        assert!(err.message.ends_with("range 1.."), "{err}");
    }

    #[test]
    fn single_stack_drivers_resize_only_the_default_workers() {
        let resize = |nodegroup: &str, node_count: i64| ResizeRequest {
            base: request(),
            nodegroup: nodegroup.into(),
            node_count,
            nodes_to_remove: Vec::new(),
        };
        check_default_worker_resize(&resize("w", 2)).unwrap();
        for other in ["m", "x", "nope"] {
            assert_eq!(
                invalid_field(check_default_worker_resize(&resize(other, 2))),
                "nodegroup"
            );
        }
        assert_eq!(
            invalid_field(check_default_worker_resize(&resize("w", -1))),
            "node_count"
        );
    }

    #[test]
    fn label_values_are_typed_by_the_schema() {
        let schema = [
            label_spec("size", LabelType::Integer, Some("24"), &[], ""),
            label_spec("preempt", LabelType::Boolean, Some("false"), &[], ""),
            label_spec("cidr", LabelType::Cidr, None, &[], ""),
        ];
        let mut labels = Labels::new();
        labels.insert("preempt".into(), "True".into());
        labels.insert("free".into(), "form".into());
        assert_eq!(label_value(&schema, &labels, "size"), Some(json!(24)));
        assert_eq!(label_value(&schema, &labels, "preempt"), Some(json!(true)));
        assert_eq!(label_value(&schema, &labels, "cidr"), None);
        assert_eq!(label_value(&schema, &labels, "free"), Some(json!("form")));
        labels.insert("size".into(), "big".into());
        assert_eq!(label_value(&schema, &labels, "size"), Some(json!("big")));
        assert_eq!(
            Value::Object(label_parameters(&schema, &labels, ["preempt", "cidr"])),
            json!({"preempt": true})
        );
    }

    #[test]
    fn sub_driver_configs_carry_their_labels() {
        let info = DriverInfo {
            labels: vec![
                label_spec("backend", LabelType::String, Some("vxlan"), &[], ""),
                label_spec("preempt", LabelType::Boolean, Some("false"), &[], ""),
            ],
            network_drivers: vec![sub_driver_info("flannel", true, &[], &["backend"], "")],
            volume_drivers: vec![sub_driver_info("rexray", false, &[], &["preempt"], "")],
            ..Default::default()
        };
        let labels = Labels::new();
        let network = network_config(&info, "swarm", None, &labels).unwrap();
        assert_eq!(network.name, "flannel");
        assert_eq!(
            Value::Object(network.parameters),
            json!({"network_driver": "flannel", "backend": "vxlan"})
        );
        assert_eq!(
            volume_config(&info, "swarm", None, &labels).unwrap(),
            SubDriverConfig::default()
        );
        let template = ClusterTemplate {
            coe: "swarm".into(),
            volume_driver: Some("rexray".into()),
            ..Default::default()
        };
        let (network, volume) = template_sub_drivers(&info, &template, &labels).unwrap();
        assert_eq!(network.name, "flannel");
        assert_eq!(volume.name, "rexray");
        let volume = volume_config(&info, "swarm", Some("rexray"), &labels).unwrap();
        assert_eq!(
            Value::Object(volume.parameters),
            json!({"volume_driver": "rexray", "preempt": false})
        );
        assert_eq!(
            invalid_field(volume_config(&info, "swarm", Some("cinder"), &labels)),
            "volume_driver"
        );
    }

    #[test]
    fn nodegroups_are_found_by_uuid_and_role() {
        let req = request();
        assert_eq!(find_nodegroup(&req, "x").unwrap().uuid, "x");
        let err = find_nodegroup(&req, "nope").unwrap_err();
        assert_eq!(err.field.as_str(), "nodegroup");
        assert!(err.message.contains("nope"), "{err}");
        assert_eq!(default_nodegroup(&req, MASTER_ROLE).unwrap().uuid, "m");
        assert_eq!(default_nodegroup(&req, "worker").unwrap().uuid, "w");
        assert_eq!(default_nodegroup(&req, "minion").unwrap().uuid, "w");
        let mut no_workers = req.clone();
        no_workers.nodegroups.retain(|g| g.role == MASTER_ROLE);
        assert_eq!(default_nodegroup(&no_workers, "worker"), None);
    }

    #[test]
    fn common_and_docker_parameters_follow_upstream_names() {
        let mut req = request();
        req.template.http_proxy = Some("http://proxy:3128".into());
        req.template.docker_volume_size = Some(10);
        req.cluster.discovery_url = Some("https://discovery.etcd.io/x".into());
        let template = effective_template(&req);
        let p = common_parameters(&req, &template, "anti-affinity");
        assert_eq!(
            Value::Object(p),
            json!({
                "cluster_uuid": "3f2a9c1e-77aa-4b0e-9d1f-0123456789ab",
                "fixed_network_name": "prod-3f2a9c1e77aa",
                "nodes_affinity_policy": "anti-affinity",
                "floating_ip_enabled": true,
                "verify_ca": true,
                "number_of_masters": 3,
                "master_image": "fedora",
                "ssh_key_name": "ops",
                "external_network": "public",
                "http_proxy": "http://proxy:3128",
                "master_nodegroup_name": "master-m",
                "worker_nodegroup_name": "worker-w",
            })
        );
        assert_eq!(
            Value::Object(docker_parameters(&req, &template)),
            json!({
                "tls_disabled": false,
                "registry_enabled": false,
                "discovery_url": "https://discovery.etcd.io/x",
                "magnum_url": "http://magnum:9511/v1",
                "docker_volume_size": 10,
            })
        );
    }

    #[test]
    fn only_declared_host_parameters_pass() {
        let mut context = HostContext::default();
        context.extra.insert("trust_id".into(), "t-1".into());
        context.extra.insert("secret".into(), "x".into());
        assert_eq!(
            Value::Object(host_parameters(&context, &["trust_id", "region_name"])),
            json!({"trust_id": "t-1"})
        );
    }

    #[test]
    fn scale_parameters_name_removed_nodes_only_when_given() {
        assert_eq!(
            Value::Object(scale_parameters(
                "number_of_nodes",
                "nodes_to_remove",
                4,
                &[]
            )),
            json!({"number_of_nodes": 4})
        );
        assert_eq!(
            Value::Object(scale_parameters(
                "number_of_slaves",
                "slaves_to_remove",
                1,
                &["n-2".to_owned()]
            )),
            json!({"number_of_slaves": 1, "slaves_to_remove": ["n-2"]})
        );
    }

    #[test]
    fn stack_refs_plan_create_update_and_delete() {
        let req = request();
        let stack = StackRef::cluster(&req);
        assert_eq!(stack.name, "prod-3f2a9c1e77aa");
        assert_eq!(stack.name, cluster_stack_name(&req));
        assert_eq!(stack.id.as_deref(), Some("stack-1"));

        let files = [("cluster.yaml", "a"), ("worker.yaml", "b")];
        let create = stack
            .clone()
            .create("cluster.yaml", &files, Map::new(), Some(30));
        assert_eq!(create.action, StackAction::Create);
        assert_eq!(create.stack_id, None);
        assert_eq!(create.template, "cluster.yaml");
        assert_eq!(create.files["worker.yaml"], "b");
        assert!(create.disable_rollback);
        assert_eq!(create.timeout_mins, Some(30));

        let update = stack.clone().update(Map::new()).unwrap();
        assert_eq!(update.action, StackAction::Update);
        assert_eq!(update.stack_id.as_deref(), Some("stack-1"));
        assert!(update.existing && update.disable_rollback);
        let delete = stack.clone().delete().unwrap();
        assert_eq!(delete.action, StackAction::Delete);
        assert_eq!(delete.stack_id.as_deref(), Some("stack-1"));

        let never_created = StackRef { id: None, ..stack };
        assert_eq!(
            invalid_field(never_created.clone().update(Map::new())),
            "stack_id"
        );
        assert_eq!(never_created.delete(), None);
        assert_eq!(stack_plan(None), StackPlan::default());
        assert_eq!(stack_plan([delete.clone(), delete]).operations.len(), 2);
    }

    #[test]
    fn node_templates_come_from_the_stack_files() {
        let node_files = [("master", "master.yaml"), ("worker", "worker.yaml")];
        let templates = [("master.yaml", "M"), ("worker.yaml", "W")];
        let node = node_template(&node_files, &templates, "worker").unwrap();
        assert_eq!(
            node,
            NodeTemplate {
                role: "worker".into(),
                file_name: "worker.yaml".into(),
                template: "W".into(),
            }
        );
        let err = node_template(&node_files, &templates, "etcd").unwrap_err();
        assert_eq!(err.field.as_str(), "role");
        assert_eq!(
            err.message.as_str(),
            "unknown role 'etcd'; known: master, worker"
        );
    }

    #[test]
    fn stack_outputs_and_parameters_are_read_leniently() {
        let stack = StackSnapshot {
            status: "CREATE_COMPLETE".into(),
            status_reason: "done".into(),
            outputs: json!({
                "api_address": "10.0.0.1",
                "empty": "",
                "nodes": ["172.24.4.1", "172.24.4.2"],
                "nodes_private": "10.0.0.2",
            })
            .as_object()
            .unwrap()
            .clone(),
            parameters: json!({"number_of_nodes": " 2 ", "number_of_masters": 1})
                .as_object()
                .unwrap()
                .clone(),
            ..Default::default()
        };
        assert_eq!(output_str(&stack, "api_address"), Some("10.0.0.1"));
        assert_eq!(output_str(&stack, "empty"), None);
        assert_eq!(output_str(&stack, "nodes"), None);
        assert_eq!(string_list(&json!("a")), Some(vec!["a".to_owned()]));
        assert_eq!(string_list(&json!("")), None);
        assert_eq!(
            string_list(&json!(["a", 1, "b"])),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(integer(&json!(3)), Some(3));
        assert_eq!(integer(&json!(" 4 ")), Some(4));
        assert_eq!(integer(&json!("four")), None);

        let cluster = cluster_stack_status(&stack);
        assert_eq!(cluster.status.as_deref(), Some("CREATE_COMPLETE"));
        assert_eq!(cluster.status_reason.as_deref(), Some("done"));
        assert_eq!(cluster.api_address, None);
        let mut nodegroup_stack = stack.clone();
        nodegroup_stack.target.nodegroup = Some("x".into());
        let stacks = [nodegroup_stack, stack.clone()];
        assert_eq!(cluster_snapshot(&stacks), Some(&stack));
        assert_eq!(cluster_snapshot(&stacks[..1]), None);

        let public = nodegroup_status("w", &stack, "nodes", "number_of_nodes", true);
        assert_eq!(public.uuid, "w");
        assert_eq!(public.status.as_deref(), Some("CREATE_COMPLETE"));
        assert_eq!(public.status_reason.as_deref(), Some("done"));
        assert_eq!(public.node_addresses.map(|a| a.len()), Some(2));
        assert_eq!(public.node_count, Some(2));
        let private = nodegroup_status("w", &stack, "nodes", "number_of_nodes", false);
        assert_eq!(private.node_addresses, Some(vec!["10.0.0.2".to_owned()]));

        let groups = [
            ("master", "masters", "number_of_masters"),
            ("worker", "nodes", "number_of_nodes"),
        ];
        let statuses = default_nodegroup_statuses(&request(), &stack, true, &groups);
        let found: Vec<_> = statuses
            .iter()
            .map(|s| (s.uuid.as_str(), s.node_count))
            .collect();
        assert_eq!(found, [("m", Some(1)), ("w", Some(2))]);
    }

    #[test]
    fn ipv6_hosts_are_bracketed_once() {
        assert_eq!(bracket_ipv6("10.0.0.1"), "10.0.0.1");
        assert_eq!(bracket_ipv6("fd00::1"), "[fd00::1]");
        assert_eq!(bracket_ipv6("[fd00::1]"), "[fd00::1]");
    }
}
