//! `mesos_ubuntu_v1`: Apache Mesos with Marathon on Ubuntu. One Heat stack
//! per cluster; like upstream, no additional nodegroups, no upgrades and no
//! TLS.

use magnum_driver_sdk::{
    capability as op,
    helpers::{
        self, check_at_least, effective_template, label_spec as label, stack_plan, sub_driver_info,
        StackRef,
    },
    serde_json::{Map, Value},
    ClusterRequest, ClusterTemplate, ClusterUpdate, CoeDriver, DriverConfig, DriverError,
    DriverInfo, DriverResult, LabelType, Labels, NodeTemplate, NodeTemplateRequest, Provides,
    ResizeRequest, StackPlan, StatusRequest, StatusUpdate, SubDriverConfig, SubDriverRequest,
    TemplateRequest, Validation,
};

#[path = "../../common/boot_volume.rs"]
mod boot_volume;
#[path = "../../common/environment.rs"]
mod environment;
#[path = "../../common/rexray.rs"]
mod rexray;
#[path = "../../common/scale.rs"]
mod scale;

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

const MASTER: &str = helpers::MASTER_ROLE;
const WORKER: &str = "worker";

/// The top-level template, the key of [`TEMPLATES`] a plan starts from.
pub const CLUSTER_FILE: &str = "cluster.yaml";
/// `(role, file)` of the node templates the cluster template nests.
const NODE_FILES: [(&str, &str); 2] = [(MASTER, "master.yaml"), (WORKER, "worker.yaml")];
/// Every file of the stack, as `(file name, text)`: the HOT templates, and
/// the node bootstrap fragments the node templates' user data takes with
/// `get_file` (the nodes read their values from /etc/sysconfig/heat-params).
pub const TEMPLATES: [(&str, &str); 12] = [
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
        "fragments/configure-storage.sh",
        include_str!("../../common/fragments/configure-storage.sh"),
    ),
    (
        "fragments/configure-rexray.sh",
        include_str!("../../common/fragments/configure-rexray.sh"),
    ),
    (
        "fragments/configure-master.sh",
        include_str!("fragments/configure-master.sh"),
    ),
    (
        "fragments/configure-slave.sh",
        include_str!("fragments/configure-slave.sh"),
    ),
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

pub struct MesosUbuntuDriver {
    info: DriverInfo,
    /// Upstream's `[cluster] nodes_affinity_policy`.
    nodes_affinity_policy: String,
    /// Upstream's `[trust] cluster_user_trust`: whether nodes get the
    /// user's trust, which the rexray volume driver needs.
    cluster_user_trust: bool,
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
            network_drivers: vec![sub_driver_info("docker", true, &[COE], &[], "Docker's own networking")],
            volume_drivers: vec![sub_driver_info("rexray", false, &[COE], &["rexray_preempt"], "REX-Ray with Cinder volumes")],
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
        // Upstream never creates nodegroup stacks for Mesos.
        let Some(stack) = helpers::cluster_snapshot(&req.stacks) else {
            return Ok(update);
        };
        update.cluster = ClusterUpdate {
            // Upstream stores Mesos' API address as the bare master IP.
            api_address: helpers::output_str(stack, "api_address").map(str::to_owned),
            container_version: Some(CONTAINER_VERSION.into()),
            ..helpers::cluster_stack_status(stack)
        };
        let defaults = [
            (MASTER, "mesos_master", "number_of_masters"),
            (WORKER, "mesos_slaves", "number_of_slaves"),
        ];
        update.nodegroups = helpers::default_nodegroup_statuses(base, stack, public, &defaults);
        Ok(update)
    }
}

impl MesosUbuntuDriver {
    /// Template-level rules; cluster requests pass their effective template.
    fn check_template(&self, template: &ClusterTemplate) -> DriverResult<Validation> {
        helpers::check_provides(&self.info, template)?;
        let labels = &template.labels;
        helpers::validate_labels(&self.info.labels, labels)?;
        boot_volume::check(labels)?;
        let (_, volume) = helpers::template_sub_drivers(&self.info, template, labels)?;
        helpers::check_networks(template)?;
        check_mesos_labels(labels)?;
        Ok(Validation {
            warnings: rexray::trust_warning(&volume.name, self.cluster_user_trust)
                .into_iter()
                .collect(),
        })
    }

    fn parameters(&self, req: &ClusterRequest) -> DriverResult<Map<String, Value>> {
        let template = effective_template(req);
        let cluster = &req.cluster;
        let labels = &template.labels;
        let mut p = helpers::common_parameters(req, &template, &self.nodes_affinity_policy);
        let mut set = |name: &str, value: Value| {
            p.insert(name.into(), value);
        };
        set("is_cluster_stack", true.into());
        let optional = optional_pieces(&template);
        set("master_lb_enabled", optional.master_lb.into());
        set("docker_volume_enabled", optional.docker_volume.into());
        if let Some(size) = template.docker_volume_size {
            set("docker_volume_size", size.into());
        }
        set(
            "master_lb_floating_ip_enabled",
            (optional.master_lb && optional.master_lb_floating_ip).into(),
        );
        set("cluster_name", cluster.name.as_str().into());
        set("tenant_name", cluster.project_id.as_str().into());
        set("number_of_slaves", scale::default_worker_count(req).into());
        set("slave_image", template.image_id.as_str().into());
        if let Some(flavor) = &template.flavor_id {
            set("slave_flavor", flavor.as_str().into());
        }
        let passed_labels = [
            "fixed_subnet_cidr",
            "mesos_slave_isolation",
            "mesos_slave_image_providers",
            "mesos_slave_work_dir",
            "mesos_slave_executor_env_variables",
        ];
        p.extend(helpers::label_parameters(
            &self.info.labels,
            labels,
            passed_labels.into_iter().chain(boot_volume::LABELS),
        ));
        let (network, volume) = helpers::template_sub_drivers(&self.info, &template, labels)?;
        p.extend(network.parameters);
        p.extend(volume.parameters);
        p.extend(helpers::host_parameters(&req.context, HOST_PARAMETERS));
        // The trustee's password and the trust reach the slaves only for
        // the rexray volume driver, the one node service that calls
        // OpenStack with them.
        if volume.name != rexray::REXRAY {
            p.remove("trustee_password");
            p.remove("trust_id");
        }
        Ok(p)
    }
}

/// The optional pieces of the cluster stack, switched by its environment.
/// The load balancer has a floating IP when the nodes have.
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
        if magnum_driver_sdk::serde_json::from_str::<Value>(env).is_err() {
            return Err(DriverError::invalid(
                "labels.mesos_slave_executor_env_variables",
                "mesos_slave_executor_env_variables must be valid JSON",
            ));
        }
    }
    Ok(())
}

/// The parameters scaling the slaves to `node_count`.
fn scale_parameters(node_count: i64, nodes_to_remove: &[String]) -> Map<String, Value> {
    helpers::scale_parameters(
        "number_of_slaves",
        "slaves_to_remove",
        node_count,
        nodes_to_remove,
    )
}
