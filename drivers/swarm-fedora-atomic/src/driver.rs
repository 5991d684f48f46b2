//! `swarm_fedora_atomic_v1`: Docker Swarm on Fedora Atomic, both legacy
//! standalone Swarm (coe `swarm`, upstream's v1 driver) and Docker swarm mode
//! (coe `swarm-mode`, upstream's v2). One Heat stack per cluster; like
//! upstream, no additional nodegroups and no upgrades.
//! The driver is its names, labels, templates and parameters; the rest is
//! the SDK's one-stack Heat driver.

use magnum_driver_sdk::{
    bootstrap, environment,
    heat::{HeatCoeDriver, HeatDriver, WorkerParameters, MASTER, WORKER},
    helpers::{self, label_spec as label, sub_driver_info},
    node_setup::Download,
    serde_json::{Map, Value},
    ClusterRequest, ClusterTemplate, ClusterUpdate, DriverResult, LabelSpec, LabelType, Provides,
    StackSnapshot, StatusRequest, SubDriverInfo,
};

pub const DRIVER_NAME: &str = "swarm_fedora_atomic_v1";
const SERVER_TYPE: &str = "vm";
const OS: &str = "fedora-atomic";
const SWARM: &str = "swarm";
const SWARM_MODE: &str = "swarm-mode";
const SWARM_VERSION: &str = "1.2.5";
const CONTAINER_VERSION: &str = "1.12.6";

/// The top-level template, the key of [`TEMPLATES`] a plan starts from.
pub const CLUSTER_FILE: &str = "cluster.yaml";
/// `(role, file)` of the node templates the cluster template nests.
const NODE_FILES: [(&str, &str); 2] = [(MASTER, "master.yaml"), (WORKER, "worker.yaml")];
/// Every file of the stack, as `(file name, text)`: the HOT templates, and
/// the node bootstrap fragments the node templates' user data takes with
/// `get_file` (the nodes read their values from /etc/sysconfig/heat-params).
pub const TEMPLATES: [(&str, &str); 18] = [
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
    "ssh_public_key",
    "trust_id",
    "trustee_domain_id",
    "trustee_password",
    "trustee_user_id",
    "trustee_username",
];

/// What the nodes download: etcd (standalone Swarm's managers), flanneld
/// (the flannel network driver), rexray (the rexray volume driver).
pub const DOWNLOADS: &[Download] = &[
    magnum_driver_sdk::node_setup::ETCD,
    magnum_driver_sdk::node_setup::FLANNEL,
    magnum_driver_sdk::node_setup::REXRAY,
];

/// The driver, as the host loads it.
pub type SwarmFedoraAtomicDriver = HeatCoeDriver<SwarmFedoraAtomic>;

/// What `swarm_fedora_atomic_v1` has of its own.
pub struct SwarmFedoraAtomic;

impl HeatDriver for SwarmFedoraAtomic {
    const NAME: &'static str = DRIVER_NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    /// What `magnum-driver-manage show` prints: the nodes' image, and that
    /// the named one is no longer maintained.
    const DESCRIPTION: &'static str =
        "Docker Swarm and swarm mode on Fedora Atomic, orchestrated with Heat. \
        Image: Fedora Atomic Host (os_distro fedora-atomic) with its packaged Docker, \
        END OF LIFE since 2019 (no security updates); the legacy standalone Swarm image \
        (docker.io/library/swarm) is unmaintained too. Also serves upstream's swarm_fedora_atomic_v2 (coe swarm-mode).";
    const CONTAINER_VERSION: &'static str = CONTAINER_VERSION;
    const CLUSTER_FILE: &'static str = CLUSTER_FILE;
    const NODE_FILES: &'static [(&'static str, &'static str)] = &NODE_FILES;
    const TEMPLATES: &'static [(&'static str, &'static str)] = &TEMPLATES;
    const HOST_PARAMETERS: &'static [&'static str] = HOST_PARAMETERS;
    const LABEL_PARAMETERS: &'static [&'static str] =
        &["swarm_strategy", "fixed_subnet_cidr", "docker_volume_type"];
    const WORKERS: WorkerParameters = WorkerParameters {
        count: "number_of_nodes",
        to_remove: "nodes_to_remove",
        image: "node_image",
        flavor: "node_flavor",
    };
    const NODE_OUTPUTS: [(&'static str, &'static str); 2] = [
        ("swarm_masters", "number_of_masters"),
        ("swarm_nodes", "number_of_nodes"),
    ];
    const DOWNLOADS: &'static [Download] = DOWNLOADS;

    fn provides() -> Vec<Provides> {
        vec![
            Provides::new(SERVER_TYPE, OS, SWARM),
            Provides::new(SERVER_TYPE, OS, SWARM_MODE),
        ]
    }

    fn network_drivers() -> Vec<SubDriverInfo> {
        vec![
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
        ]
    }

    fn volume_drivers() -> Vec<SubDriverInfo> {
        vec![sub_driver_info(
            "rexray",
            false,
            &[],
            &["rexray_preempt"],
            "REX-Ray with Cinder volumes",
        )]
    }

    fn labels() -> Vec<LabelSpec> {
        vec![
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
    }

    fn check_template(template: &ClusterTemplate) -> DriverResult<Vec<String>> {
        let mut warnings = Vec::new();
        if template.coe == SWARM_MODE && template.labels.contains_key("swarm_strategy") {
            warnings.push("swarm_strategy only applies to standalone Swarm (coe swarm)".into());
        }
        warnings.extend(helpers::storage_driver_warning(template));
        Ok(warnings)
    }

    fn parameters(req: &ClusterRequest, template: &ClusterTemplate, p: &mut Map<String, Value>) {
        let swarm_mode = template.coe == SWARM_MODE;
        p.extend(helpers::docker_parameters(req, template));
        p.insert("swarm_mode".into(), swarm_mode.into());
        p.insert("swarm_port".into(), swarm_port(template).into());
    }

    fn cluster_status(req: &StatusRequest, stack: &StackSnapshot, update: &mut ClusterUpdate) {
        let port = swarm_port(&req.base.template);
        update.api_address = helpers::output_str(stack, "api_address")
            .map(|ip| format!("tcp://{}:{port}", helpers::bracket_ipv6(ip)));
        // What the nodes run, as they reported it at the end of their
        // bootstrap; else the Swarm version they were given.
        update.coe_version = bootstrap::reported_coe_version(stack).or_else(|| {
            Some(
                stack
                    .parameters
                    .get("swarm_version")
                    .and_then(Value::as_str)
                    .unwrap_or(SWARM_VERSION)
                    .to_owned(),
            )
        });
        update.discovery_url = helpers::output_str(stack, "discovery_url").map(str::to_owned);
    }
}

/// The Docker API's port: swarm mode's plain one, standalone Swarm's TLS one.
fn swarm_port(template: &ClusterTemplate) -> i64 {
    if template.coe == SWARM_MODE {
        2375
    } else {
        2376
    }
}
