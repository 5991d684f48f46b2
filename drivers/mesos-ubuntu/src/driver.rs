//! `mesos_ubuntu_v1`: Apache Mesos with Marathon on Ubuntu. One Heat stack
//! per cluster; like upstream, no additional nodegroups, no upgrades and no
//! TLS. The driver is its names, labels, templates and parameters; the rest
//! is the SDK's one-stack Heat driver.

use magnum_driver_sdk::{
    bootstrap, environment,
    heat::{HeatCoeDriver, HeatDriver, WorkerParameters, MASTER, WORKER},
    helpers::{self, label_spec as label, sub_driver_info},
    node_setup::Download,
    serde_json::{Map, Value},
    ClusterRequest, ClusterTemplate, ClusterUpdate, DriverError, DriverResult, LabelSpec,
    LabelType, Labels, Provides, StackSnapshot, StatusRequest, SubDriverInfo,
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

/// What the nodes download: rexray (the rexray volume driver). ZooKeeper,
/// Mesos, Marathon and Docker come with the image.
pub const DOWNLOADS: &[Download] = &[magnum_driver_sdk::node_setup::REXRAY];

/// The driver, as the host loads it.
pub type MesosUbuntuDriver = HeatCoeDriver<MesosUbuntu>;

/// What `mesos_ubuntu_v1` has of its own.
pub struct MesosUbuntu;

impl HeatDriver for MesosUbuntu {
    const NAME: &'static str = DRIVER_NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    /// What `magnum-driver-manage show` prints: the nodes' image, and that
    /// it is no longer maintained.
    const DESCRIPTION: &'static str = "Apache Mesos and Marathon on Ubuntu, orchestrated with Heat. \
        Image: upstream's ubuntu-mesos (Ubuntu 14.04, upstart, with ZooKeeper, Mesos, Marathon and Docker), \
        END OF LIFE (Ubuntu 14.04 standard support ended 2019; upstream Magnum refuses coe mesos since 14.0.0).";
    const CONTAINER_VERSION: &'static str = CONTAINER_VERSION;
    const CLUSTER_FILE: &'static str = CLUSTER_FILE;
    const NODE_FILES: &'static [(&'static str, &'static str)] = &NODE_FILES;
    const TEMPLATES: &'static [(&'static str, &'static str)] = &TEMPLATES;
    const HOST_PARAMETERS: &'static [&'static str] = HOST_PARAMETERS;
    const LABEL_PARAMETERS: &'static [&'static str] = &[
        "fixed_subnet_cidr",
        "mesos_slave_isolation",
        "mesos_slave_image_providers",
        "mesos_slave_work_dir",
        "mesos_slave_executor_env_variables",
    ];
    const WORKERS: WorkerParameters = WorkerParameters {
        count: "number_of_slaves",
        to_remove: "slaves_to_remove",
        image: "slave_image",
        flavor: "slave_flavor",
    };
    const NODE_OUTPUTS: [(&'static str, &'static str); 2] = [
        ("mesos_master", "number_of_masters"),
        ("mesos_slaves", "number_of_slaves"),
    ];
    const DOWNLOADS: &'static [Download] = DOWNLOADS;

    fn provides() -> Vec<Provides> {
        vec![Provides::new(SERVER_TYPE, OS, COE)]
    }

    fn network_drivers() -> Vec<SubDriverInfo> {
        vec![sub_driver_info(
            "docker",
            true,
            &[COE],
            &[],
            "Docker's own networking",
        )]
    }

    fn volume_drivers() -> Vec<SubDriverInfo> {
        vec![sub_driver_info(
            "rexray",
            false,
            &[COE],
            &["rexray_preempt"],
            "REX-Ray with Cinder volumes",
        )]
    }

    fn labels() -> Vec<LabelSpec> {
        vec![
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
    }

    fn check_template(template: &ClusterTemplate) -> DriverResult<Vec<String>> {
        check_mesos_labels(&template.labels)?;
        Ok(Vec::new())
    }

    fn parameters(req: &ClusterRequest, template: &ClusterTemplate, p: &mut Map<String, Value>) {
        if let Some(size) = template.docker_volume_size {
            p.insert("docker_volume_size".into(), size.into());
        }
        p.insert("cluster_name".into(), req.cluster.name.as_str().into());
        p.insert("tenant_name".into(), req.cluster.project_id.as_str().into());
    }

    fn cluster_status(_req: &StatusRequest, stack: &StackSnapshot, update: &mut ClusterUpdate) {
        // Upstream stores Mesos' API address as the bare master IP.
        update.api_address = helpers::output_str(stack, "api_address").map(str::to_owned);
        // The Mesos version the nodes reported at the end of their bootstrap.
        update.coe_version = bootstrap::reported_coe_version(stack);
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
