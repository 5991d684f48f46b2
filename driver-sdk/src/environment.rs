//! The Heat environment that switches a cluster stack's optional pieces, as
//! upstream's `common/templates/environments/*.yaml` do: the templates name
//! `Magnum::*` types, and the environment's `resource_registry` maps each to
//! its real type (or nested template) or to `OS::Heat::None`.
//!
//! A driver whose templates name these types lists [`NETWORK_FILES`] (the
//! templates `Magnum::NetworkSwitcher` maps to) and [`MASTER_PORT_FILE`] (the
//! masters' ports, made first so that every master knows all their
//! addresses) and [`SECGROUP_PEER_FILE`] (the rules between the cluster's
//! security groups) among its stack files. Their HOT text is in this crate's
//! `templates/`.

use serde_json::{Map, Value};

/// The nested templates `Magnum::NetworkSwitcher` maps to, as
/// `(file name, HOT text)`: a private network the stack creates, or the
/// cluster's fixed network passed through.
pub const NETWORK_FILES: [(&str, &str); 2] = [
    (
        PRIVATE_NETWORK,
        include_str!("../templates/network_private.yaml"),
    ),
    (
        EXISTING_NETWORK,
        include_str!("../templates/network_existing.yaml"),
    ),
];
/// A master's port, made before the masters so that each one's user data
/// can list every master's address (`(file name, HOT text)`).
pub const MASTER_PORT_FILE: (&str, &str) = (
    "master_port.yaml",
    include_str!("../templates/master_port.yaml"),
);
/// Every node of one security group admitted to another's on any port
/// (TCP, UDP, ICMP, IP-in-IP): a cluster template names it once per pair of
/// its groups that talk (`(file name, HOT text)`).
pub const SECGROUP_PEER_FILE: (&str, &str) = (
    "secgroup_peer.yaml",
    include_str!("../templates/secgroup_peer.yaml"),
);
const PRIVATE_NETWORK: &str = "network_private.yaml";
const EXISTING_NETWORK: &str = "network_existing.yaml";
const NONE: &str = "OS::Heat::None";

/// `real` when the piece is `on`, else `OS::Heat::None`.
fn pick(on: bool, real: &'static str) -> &'static str {
    if on {
        real
    } else {
        NONE
    }
}

/// Which optional pieces a stack has; each maps its `Magnum::*` types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Optional {
    /// Create a private network (`with_private_network.yaml`), else join
    /// the cluster's fixed network (`no_private_network.yaml`).
    pub private_network: bool,
    /// Floating IPs for the nodes (`enable_floating_ip.yaml`).
    pub floating_ip: bool,
    /// An Octavia load balancer in front of the masters
    /// (`with_master_lb_octavia.yaml`).
    pub master_lb: bool,
    /// A floating IP for that load balancer (`enable_lb_floating_ip.yaml`).
    pub master_lb_floating_ip: bool,
    /// A Cinder volume per node for Docker's storage (`with_volume.yaml`).
    pub docker_volume: bool,
    /// A Cinder volume per master for etcd (`with_etcd_volume.yaml`); None
    /// for drivers without etcd volumes, whose environment leaves its types
    /// out.
    pub etcd_volume: Option<bool>,
}

impl Optional {
    /// The environment (`{"resource_registry": {...}}`) of these pieces.
    pub fn environment(&self) -> Map<String, Value> {
        let lb = |real: &'static str| pick(self.master_lb, real);
        let mut entries = vec![
            (
                "Magnum::NetworkSwitcher",
                if self.private_network {
                    PRIVATE_NETWORK
                } else {
                    EXISTING_NETWORK
                },
            ),
            (
                "Magnum::Optional::Neutron::FloatingIP",
                pick(self.floating_ip, "OS::Neutron::FloatingIP"),
            ),
            (
                "Magnum::Optional::Neutron::LBaaS::LoadBalancer",
                lb("OS::Octavia::LoadBalancer"),
            ),
            (
                "Magnum::Optional::Neutron::LBaaS::Listener",
                lb("OS::Octavia::Listener"),
            ),
            (
                "Magnum::Optional::Neutron::LBaaS::Pool",
                lb("OS::Octavia::Pool"),
            ),
            (
                "Magnum::Optional::Neutron::LBaaS::PoolMember",
                lb("OS::Octavia::PoolMember"),
            ),
            (
                "Magnum::Optional::Neutron::LBaaS::HealthMonitor",
                lb("OS::Octavia::HealthMonitor"),
            ),
            (
                "Magnum::Optional::Neutron::LBaaS::FloatingIP",
                pick(
                    self.master_lb && self.master_lb_floating_ip,
                    "OS::Neutron::FloatingIP",
                ),
            ),
            (
                "Magnum::Optional::Cinder::Volume",
                pick(self.docker_volume, "OS::Cinder::Volume"),
            ),
            (
                "Magnum::Optional::Cinder::VolumeAttachment",
                pick(self.docker_volume, "OS::Cinder::VolumeAttachment"),
            ),
        ];
        if let Some(etcd) = self.etcd_volume {
            entries.push((
                "Magnum::Optional::Etcd::Volume",
                pick(etcd, "OS::Cinder::Volume"),
            ));
            entries.push((
                "Magnum::Optional::Etcd::VolumeAttachment",
                pick(etcd, "OS::Cinder::VolumeAttachment"),
            ));
        }
        let registry: Map<String, Value> = entries
            .into_iter()
            .map(|(from, to)| (from.to_owned(), Value::from(to)))
            .collect();
        let mut environment = Map::new();
        environment.insert("resource_registry".into(), Value::Object(registry));
        environment
    }
}
