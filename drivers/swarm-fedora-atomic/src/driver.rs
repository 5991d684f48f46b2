//! `swarm_fedora_atomic_v1`: Docker Swarm on Fedora Atomic, both legacy
//! standalone Swarm (coe `swarm`, upstream's v1 driver) and Docker swarm mode
//! (coe `swarm-mode`, upstream's v2). One Heat stack per cluster; like
//! upstream, no additional nodegroups and no upgrades.

use magnum_driver_sdk::{
    capability as op,
    helpers::{
        self, check_at_least, effective_template, label_spec as label, stack_plan, sub_driver_info,
        StackRef,
    },
    serde_json::{Map, Value},
    ClusterRequest, ClusterTemplate, ClusterUpdate, CoeDriver, DriverConfig, DriverInfo,
    DriverResult, LabelType, NodeTemplate, NodeTemplateRequest, Provides, ResizeRequest, StackPlan,
    StatusRequest, StatusUpdate, SubDriverConfig, SubDriverRequest, TemplateRequest, Validation,
};

#[path = "../../common/boot_volume.rs"]
mod boot_volume;
#[path = "../../common/environment.rs"]
mod environment;
#[path = "../../common/rexray.rs"]
mod rexray;
#[path = "../../common/scale.rs"]
mod scale;

pub const DRIVER_NAME: &str = "swarm_fedora_atomic_v1";
const SERVER_TYPE: &str = "vm";
const OS: &str = "fedora-atomic";
const SWARM: &str = "swarm";
const SWARM_MODE: &str = "swarm-mode";
const SWARM_VERSION: &str = "1.2.5";
const CONTAINER_VERSION: &str = "1.12.6";

const MASTER: &str = helpers::MASTER_ROLE;
const WORKER: &str = "worker";

/// The top-level template, the key of [`TEMPLATES`] a plan starts from.
pub const CLUSTER_FILE: &str = "cluster.yaml";
/// `(role, file)` of the node templates the cluster template nests.
const NODE_FILES: [(&str, &str); 2] = [(MASTER, "master.yaml"), (WORKER, "worker.yaml")];
/// Every file of the stack, as `(file name, text)`: the HOT templates, and
/// the node bootstrap fragments the node templates' user data takes with
/// `get_file` (the nodes read their values from /etc/sysconfig/heat-params).
pub const TEMPLATES: [(&str, &str); 15] = [
    (CLUSTER_FILE, include_str!("templates/cluster.yaml")),
    environment::NETWORK_FILES[0],
    environment::NETWORK_FILES[1],
    environment::MASTER_PORT_FILE,
    ("master.yaml", include_str!("templates/master.yaml")),
    ("worker.yaml", include_str!("templates/worker.yaml")),
    (
        "fragments/lib-common.sh",
        include_str!("../../common/fragments/lib-common.sh"),
    ),
    ("fragments/lib.sh", include_str!("fragments/lib.sh")),
    (
        "fragments/make-certs.sh",
        include_str!("fragments/make-certs.sh"),
    ),
    (
        "fragments/configure-etcd.sh",
        include_str!("../../common/fragments/configure-etcd.sh"),
    ),
    (
        "fragments/configure-flannel.sh",
        include_str!("fragments/configure-flannel.sh"),
    ),
    (
        "fragments/configure-docker.sh",
        include_str!("fragments/configure-docker.sh"),
    ),
    (
        "fragments/configure-storage.sh",
        include_str!("../../common/fragments/configure-storage.sh"),
    ),
    (
        "fragments/configure-rexray.sh",
        include_str!("../../common/fragments/configure-rexray.sh"),
    ),
    (
        "fragments/configure-swarm.sh",
        include_str!("fragments/configure-swarm.sh"),
    ),
];

/// Host-supplied parameters (`HostContext::extra`) that the cluster template
/// declares. Heat rejects a stack given an undeclared parameter, so any other
/// key is not passed on.
pub const HOST_PARAMETERS: &[&str] = &[
    "cluster_credential",
    "openstack_ca",
    "ssh_public_key",
    "trust_id",
    "trustee_domain_id",
    "trustee_password",
    "trustee_user_id",
    "trustee_username",
];

pub struct SwarmFedoraAtomicDriver {
    info: DriverInfo,
    /// Upstream's `[cluster] nodes_affinity_policy`.
    nodes_affinity_policy: String,
    /// Upstream's `[trust] cluster_user_trust`: whether nodes get the
    /// user's trust, which the rexray volume driver needs.
    cluster_user_trust: bool,
}

impl CoeDriver for SwarmFedoraAtomicDriver {
    fn info() -> DriverInfo {
        DriverInfo {
            name: DRIVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Docker Swarm and swarm mode on Fedora Atomic, orchestrated with Heat"
                .into(),
            provides: vec![
                Provides::new(SERVER_TYPE, OS, SWARM),
                Provides::new(SERVER_TYPE, OS, SWARM_MODE),
            ],
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
            network_drivers: vec![
                sub_driver_info("docker", true, &[], &[], "Docker's own networking"),
                sub_driver_info(
                    "flannel",
                    false,
                    &[],
                    &[
                        "flannel_network_cidr",
                        "flannel_backend",
                        "flannel_network_subnetlen",
                    ],
                    "flannel overlay network",
                ),
            ],
            volume_drivers: vec![sub_driver_info(
                "rexray",
                false,
                &[],
                &["rexray_preempt"],
                "REX-Ray with Cinder volumes",
            )],
            labels: vec![
                label(
                    "swarm_strategy",
                    LabelType::String,
                    Some("spread"),
                    &["spread", "binpack", "random"],
                    "standalone Swarm's scheduling strategy",
                ),
                label(
                    "docker_volume_type",
                    LabelType::String,
                    None,
                    &[],
                    "Cinder volume type of the docker volume",
                ),
                label(
                    "rexray_preempt",
                    LabelType::Boolean,
                    Some("false"),
                    &[],
                    "let REX-Ray take volumes over from other hosts",
                ),
                label(
                    "flannel_network_cidr",
                    LabelType::Cidr,
                    Some("10.100.0.0/16"),
                    &[],
                    "flannel container network",
                ),
                label(
                    "flannel_backend",
                    LabelType::String,
                    Some("udp"),
                    &["udp", "vxlan", "host-gw"],
                    "flannel backend",
                ),
                label(
                    "flannel_network_subnetlen",
                    LabelType::Integer,
                    Some("24"),
                    &[],
                    "prefix length of each node's container subnet",
                ),
                label(
                    "fixed_subnet_cidr",
                    LabelType::Cidr,
                    Some("10.0.0.0/24"),
                    &[],
                    "CIDR of the private subnet the driver creates",
                ),
            ]
            .into_iter()
            .chain(boot_volume::label_specs())
            .collect(),
            node_roles: vec![MASTER.into(), WORKER.into()],
            template_path: Some(format!("templates/{CLUSTER_FILE}")),
            beta: false,
        }
    }

    fn new(config: &DriverConfig) -> DriverResult<Self> {
        Ok(Self {
            info: Self::info(),
            nodes_affinity_policy: helpers::nodes_affinity_policy(config)?,
            cluster_user_trust: rexray::cluster_user_trust(config)?,
        })
    }

    fn validate_template(&self, req: &TemplateRequest) -> DriverResult<Validation> {
        self.check_template(&req.template)
    }

    fn validate_cluster(&self, req: &ClusterRequest) -> DriverResult<Validation> {
        let validation = self.check_template(&effective_template(req))?;
        check_at_least("master_count", req.cluster.master_count, 1)?;
        check_at_least("node_count", req.cluster.node_count, 0)?;
        Ok(validation)
    }

    fn create_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        self.validate_cluster(req)?;
        let mut operation = StackRef::cluster(req).create(
            CLUSTER_FILE,
            &TEMPLATES,
            self.parameters(req)?,
            req.cluster.create_timeout,
        );
        operation.environment = optional_pieces(&effective_template(req)).environment();
        Ok(stack_plan([operation]))
    }

    fn update_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        let workers = scale::default_worker_count(req);
        check_at_least("node_count", workers, 0)?;
        let parameters = scale_parameters(workers, &[]);
        Ok(stack_plan([StackRef::cluster(req).update(parameters)?]))
    }

    fn resize_cluster(&self, req: &ResizeRequest) -> DriverResult<StackPlan> {
        helpers::check_default_worker_resize(req)?;
        let parameters = scale_parameters(req.node_count, &req.nodes_to_remove);
        Ok(stack_plan([
            StackRef::cluster(&req.base).update(parameters)?
        ]))
    }

    fn delete_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        // Never created: nothing to delete.
        Ok(stack_plan(StackRef::cluster(req).delete()))
    }

    fn node_template(&self, req: &NodeTemplateRequest) -> DriverResult<NodeTemplate> {
        helpers::node_template(&NODE_FILES, &TEMPLATES, &req.role)
    }

    fn network_driver(&self, req: &SubDriverRequest) -> DriverResult<SubDriverConfig> {
        helpers::network_config(&self.info, &req.coe, req.name.as_deref(), &req.labels)
    }

    fn volume_driver(&self, req: &SubDriverRequest) -> DriverResult<SubDriverConfig> {
        helpers::volume_config(&self.info, &req.coe, req.name.as_deref(), &req.labels)
    }

    fn map_status(&self, req: &StatusRequest) -> DriverResult<StatusUpdate> {
        let base = &req.base;
        let public = effective_template(base).floating_ip_enabled;
        let mut update = StatusUpdate::default();
        // Upstream never creates nodegroup stacks for Swarm.
        let Some(stack) = helpers::cluster_snapshot(&req.stacks) else {
            return Ok(update);
        };
        let port = if base.template.coe == SWARM_MODE {
            2375
        } else {
            2376
        };
        update.cluster = ClusterUpdate {
            api_address: helpers::output_str(stack, "api_address")
                .map(|ip| format!("tcp://{}:{port}", helpers::bracket_ipv6(ip))),
            coe_version: Some(
                stack
                    .parameters
                    .get("swarm_version")
                    .and_then(Value::as_str)
                    .unwrap_or(SWARM_VERSION)
                    .to_owned(),
            ),
            container_version: Some(CONTAINER_VERSION.into()),
            discovery_url: helpers::output_str(stack, "discovery_url").map(str::to_owned),
            ..helpers::cluster_stack_status(stack)
        };
        let defaults = [
            (MASTER, "swarm_masters", "number_of_masters"),
            (WORKER, "swarm_nodes", "number_of_nodes"),
        ];
        update.nodegroups = helpers::default_nodegroup_statuses(base, stack, public, &defaults);
        Ok(update)
    }
}

impl SwarmFedoraAtomicDriver {
    /// Template-level rules; cluster requests pass their effective template.
    fn check_template(&self, template: &ClusterTemplate) -> DriverResult<Validation> {
        helpers::check_provides(&self.info, template)?;
        let labels = &template.labels;
        helpers::validate_labels(&self.info.labels, labels)?;
        boot_volume::check(labels)?;
        let (_, volume) = helpers::template_sub_drivers(&self.info, template, labels)?;
        helpers::check_networks(template)?;
        let mut validation = Validation::default();
        validation
            .warnings
            .extend(rexray::trust_warning(&volume.name, self.cluster_user_trust));
        if template.coe == SWARM_MODE && labels.contains_key("swarm_strategy") {
            validation
                .warnings
                .push("swarm_strategy only applies to standalone Swarm (coe swarm)".into());
        }
        validation
            .warnings
            .extend(helpers::storage_driver_warning(template));
        Ok(validation)
    }

    fn parameters(&self, req: &ClusterRequest) -> DriverResult<Map<String, Value>> {
        let template = effective_template(req);
        let labels = &template.labels;
        let swarm_mode = template.coe == SWARM_MODE;
        let mut p = helpers::common_parameters(req, &template, &self.nodes_affinity_policy);
        p.extend(helpers::docker_parameters(req, &template));
        let mut set = |name: &str, value: Value| {
            p.insert(name.into(), value);
        };
        set("is_cluster_stack", true.into());
        let optional = optional_pieces(&template);
        set("master_lb_enabled", optional.master_lb.into());
        set("docker_volume_enabled", optional.docker_volume.into());
        set(
            "master_lb_floating_ip_enabled",
            (optional.master_lb && optional.master_lb_floating_ip).into(),
        );
        set("swarm_mode", swarm_mode.into());
        set("swarm_port", if swarm_mode { 2375 } else { 2376 }.into());
        set("number_of_nodes", scale::default_worker_count(req).into());
        set("node_image", template.image_id.as_str().into());
        if let Some(flavor) = &template.flavor_id {
            set("node_flavor", flavor.as_str().into());
        }
        p.extend(helpers::label_parameters(
            &self.info.labels,
            labels,
            ["swarm_strategy", "fixed_subnet_cidr", "docker_volume_type"]
                .into_iter()
                .chain(boot_volume::LABELS),
        ));
        let (network, volume) = helpers::template_sub_drivers(&self.info, &template, labels)?;
        p.extend(network.parameters);
        p.extend(volume.parameters);
        p.extend(helpers::host_parameters(&req.context, HOST_PARAMETERS));
        forward_trust_only_to_rexray(&mut p, &volume.name);
        Ok(p)
    }
}

/// The trustee's password and the trust reach the nodes only for the rexray
/// volume driver, the one node service that calls OpenStack with them.
fn forward_trust_only_to_rexray(parameters: &mut Map<String, Value>, volume_driver: &str) {
    if volume_driver != rexray::REXRAY {
        parameters.remove("trustee_password");
        parameters.remove("trust_id");
    }
}

/// The optional pieces of the cluster stack, switched by its environment.
/// The load balancer has a floating IP when the nodes have (upstream's
/// `floating_ip_enabled`).
fn optional_pieces(template: &ClusterTemplate) -> environment::Optional {
    environment::Optional {
        private_network: template.fixed_network.is_none(),
        floating_ip: template.floating_ip_enabled,
        master_lb: template.master_lb_enabled,
        master_lb_floating_ip: template.floating_ip_enabled,
        docker_volume: template.docker_volume_size.is_some_and(|size| size > 0),
        etcd_volume: None,
    }
}

/// The parameters scaling the nodes to `node_count`.
fn scale_parameters(node_count: i64, nodes_to_remove: &[String]) -> Map<String, Value> {
    helpers::scale_parameters(
        "number_of_nodes",
        "nodes_to_remove",
        node_count,
        nodes_to_remove,
    )
}
