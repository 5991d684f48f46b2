//! A plan's stacks evaluated by magnum-hot (the evaluator the `local`
//! orchestrator runs) over a small cloud that records every resource it
//! is asked for, and the network those resources make: which ports carry
//! which security groups and address pairs, and which traffic the groups'
//! rules admit, as Neutron reads them. Tests assert on this outcome
//! rather than on the templates' text.

use std::collections::BTreeMap;

use magnum_driver_sdk::{
    serde_json::{json, Map, Value},
    StackOperation,
};
pub use magnum_hot::Evaluation;

use magnum_hot::{
    evaluate, Action, Applied, HotError, Provider, ProviderError, ResourceRequest, ResourceState,
    StackRequest,
};

/// A cloud that makes every `OS::` resource at once, with addresses for
/// ports, floating IPs and load balancers, and records each one.
#[derive(Debug, Default)]
pub struct Cloud {
    next_id: u64,
    next_ip: u32,
    /// By ref id.
    made: BTreeMap<String, Record>,
}

/// A resource as asked for and made.
#[derive(Debug, Clone)]
struct Record {
    type_name: String,
    properties: Map<String, Value>,
    attributes: Map<String, Value>,
}

impl Provider for Cloud {
    fn supports(&self, type_name: &str) -> bool {
        type_name.starts_with("OS::")
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("id-{}", self.next_id)
    }

    fn apply(&mut self, request: &ResourceRequest<'_>) -> Result<Applied, ProviderError> {
        let id = self.new_id();
        let p = request.properties;
        let mut attributes = p.clone();
        let address = |cloud: &mut Self, prefix: &str| {
            cloud.next_ip += 1;
            format!("{prefix}.{}", cloud.next_ip)
        };
        match request.type_name {
            "OS::Neutron::Port" => {
                let subnet = p
                    .get("fixed_ips")
                    .and_then(|ips| ips.get(0))
                    .and_then(|ip| ip.get("subnet"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let ip = address(self, "10.0.0");
                attributes.insert(
                    "fixed_ips".into(),
                    json!([{"ip_address": ip, "subnet_id": subnet}]),
                );
            }
            "OS::Neutron::FloatingIP" => {
                let ip = address(self, "172.24.4");
                attributes.insert("floating_ip_address".into(), ip.into());
            }
            "OS::Octavia::LoadBalancer" => {
                let ip = address(self, "10.0.0");
                attributes.insert("vip_address".into(), ip.into());
                attributes.insert("vip_port_id".into(), format!("{id}-vip").into());
            }
            _ => {}
        }
        self.made.insert(
            id.clone(),
            Record {
                type_name: request.type_name.to_owned(),
                properties: p.clone(),
                attributes: attributes.clone(),
            },
        );
        Ok(Applied {
            ref_id: id,
            attributes,
            open_attributes: true,
            ready_ms: request.start_ms,
        })
    }

    fn remove(&mut self, resource: &ResourceState) -> Result<(), HotError> {
        self.made.remove(&resource.ref_id);
        Ok(())
    }
}

/// A stack created from `operation` in `cloud`; panics on an invalid plan
/// or a failed resource.
pub fn create(cloud: &mut Cloud, operation: &StackOperation) -> Evaluation {
    let request = StackRequest {
        stack_name: &operation.stack_name,
        stack_id: &operation.stack_name,
        project_id: "project-1",
        template: &operation.template,
        files: &operation.files,
        environment: &operation.environment,
        parameters: &operation.parameters,
        action: Action::Create,
        start_ms: 0,
    };
    let evaluation =
        evaluate(&request, None, cloud).unwrap_or_else(|e| panic!("{}: {e}", operation.stack_name));
    assert_eq!(evaluation.failure, None, "{}", operation.stack_name);
    evaluation
}

/// One resource as made: where it is in its stack, its type and properties.
#[derive(Debug, Clone)]
pub struct Made {
    /// The dotted resource names from its stack's top
    /// (`kube_minions.0.kube_minion_eth0`).
    pub path: String,
    pub type_name: String,
    pub id: String,
    pub properties: Map<String, Value>,
    pub attributes: Map<String, Value>,
}

/// Where an ingress rule admits traffic from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// Addresses in a CIDR (`0.0.0.0/0`: anywhere).
    Cidr(String),
    /// The ports of a security group (its id).
    Group(String),
}

/// What a rule opens: protocol number (None: any) and port range (None:
/// all), e.g. `(Some(6), Some((22, 22)))`.
pub type Opening = (Option<u8>, Option<(u16, u16)>);

/// An ingress rule: protocol (None: any) as a number, ports (None: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub protocol: Option<u8>,
    pub ports: Option<(u16, u16)>,
    pub remote: Remote,
}

/// A port: its address, groups and the CIDRs it may send from.
#[derive(Debug, Clone)]
pub struct Port {
    pub path: String,
    pub id: String,
    pub ip: String,
    pub network: Value,
    pub subnet: Value,
    pub security_groups: Vec<String>,
    pub address_pairs: Vec<String>,
}

/// The network the stacks made.
#[derive(Debug, Default)]
pub struct Network {
    pub resources: Vec<Made>,
    /// Security group id → (path, ingress rules).
    pub groups: BTreeMap<String, (String, Vec<Rule>)>,
    pub ports: Vec<Port>,
}

/// A protocol name or number as its number; None for "any".
pub fn protocol_number(protocol: &str) -> Option<u8> {
    match protocol.to_ascii_lowercase().as_str() {
        "icmp" => Some(1),
        "ipip" => Some(4),
        "tcp" => Some(6),
        "udp" => Some(17),
        "" | "any" => None,
        number => Some(
            number
                .parse()
                .unwrap_or_else(|_| panic!("unknown protocol {protocol}")),
        ),
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn port_number(value: Option<&Value>) -> Option<u16> {
    text(value).map(|p| p.parse().unwrap_or_else(|_| panic!("port {p}")))
}

/// A rule as Neutron reads it. In an `OS::Neutron::SecurityGroup`'s
/// `rules`, a missing protocol is any and a `remote_group_id` remote
/// without a group is the group itself (`own`); an
/// `OS::Neutron::SecurityGroupRule`'s protocol defaults to tcp (Heat's
/// default). No remote is anywhere. `None` for egress rules.
fn rule(p: &Map<String, Value>, own: &str, default_protocol: Option<&str>) -> Option<Rule> {
    if text(p.get("direction")).is_some_and(|d| d != "ingress") {
        return None;
    }
    let protocol = text(p.get("protocol"))
        .or(default_protocol.map(str::to_owned))
        .and_then(|p| protocol_number(&p));
    let ports = match (
        port_number(p.get("port_range_min")),
        port_number(p.get("port_range_max")),
    ) {
        (None, None) => None,
        (min, max) => Some((min.unwrap_or(1), max.or(min).unwrap_or(65535))),
    };
    let group = text(p.get("remote_group")).or_else(|| text(p.get("remote_group_id")));
    let remote = match (text(p.get("remote_mode")).as_deref(), group) {
        (_, Some(group)) => Remote::Group(group),
        (Some("remote_group_id"), None) => Remote::Group(own.to_owned()),
        _ => Remote::Cidr(text(p.get("remote_ip_prefix")).unwrap_or_else(|| "0.0.0.0/0".into())),
    };
    Some(Rule {
        protocol,
        ports,
        remote,
    })
}

/// An address on the internet, outside every cluster network.
const WORLD: &str = "203.0.113.7";

fn ipv4(address: &str) -> u32 {
    let ip: std::net::Ipv4Addr = address
        .parse()
        .unwrap_or_else(|_| panic!("address {address}"));
    u32::from(ip)
}

fn contains(cidr: &str, address: &str) -> bool {
    let (base, length) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let length: u32 = length.parse().unwrap_or_else(|_| panic!("cidr {cidr}"));
    let mask = if length == 0 {
        0
    } else {
        u32::MAX << (32 - length)
    };
    ipv4(base) & mask == ipv4(address) & mask
}

impl Network {
    /// The network of the stacks `evaluations` made in `cloud`.
    pub fn of(cloud: &Cloud, evaluations: &[&Evaluation]) -> Self {
        let mut network = Network::default();
        for evaluation in evaluations {
            for (path, state) in evaluation.resources.primitives() {
                let Some(record) = cloud.made.get(&state.ref_id) else {
                    continue;
                };
                network.resources.push(Made {
                    path,
                    type_name: record.type_name.clone(),
                    id: state.ref_id.clone(),
                    properties: record.properties.clone(),
                    attributes: record.attributes.clone(),
                });
            }
        }
        for made in &network.resources {
            let p = &made.properties;
            match made.type_name.as_str() {
                "OS::Neutron::SecurityGroup" => {
                    let rules = p
                        .get("rules")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|r| rule(r.as_object()?, &made.id, None))
                        .collect();
                    network
                        .groups
                        .entry(made.id.clone())
                        .or_insert_with(|| (made.path.clone(), Vec::new()))
                        .1
                        .extend::<Vec<Rule>>(rules);
                }
                "OS::Neutron::Port" => {
                    let list = |key: &str, field: Option<&str>| -> Vec<String> {
                        p.get(key)
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(|v| text(field.map_or(Some(v), |f| v.get(f))))
                            .collect()
                    };
                    let ip = made.attributes["fixed_ips"][0]["ip_address"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{} has no address", made.path))
                        .to_owned();
                    network.ports.push(Port {
                        path: made.path.clone(),
                        id: made.id.clone(),
                        ip,
                        network: p.get("network").cloned().unwrap_or(Value::Null),
                        subnet: p
                            .get("fixed_ips")
                            .and_then(|ips| ips.get(0))
                            .and_then(|ip| ip.get("subnet"))
                            .cloned()
                            .unwrap_or(Value::Null),
                        security_groups: list("security_groups", None),
                        address_pairs: list("allowed_address_pairs", Some("ip_address")),
                    });
                }
                _ => {}
            }
        }
        let rules: Vec<(String, Rule)> = network
            .resources
            .iter()
            .filter(|m| m.type_name == "OS::Neutron::SecurityGroupRule")
            .filter_map(|m| {
                let group = text(m.properties.get("security_group"))?;
                Some((group.clone(), rule(&m.properties, &group, Some("tcp"))?))
            })
            .collect();
        for (group, rule) in rules {
            let (_, list) = network
                .groups
                .get_mut(&group)
                .unwrap_or_else(|| panic!("a rule of {group}, which is no security group"));
            list.push(rule);
        }
        network
    }

    /// The resources of type `type_name` whose path starts with `prefix`.
    pub fn made(&self, type_name: &str, prefix: &str) -> Vec<&Made> {
        self.resources
            .iter()
            .filter(|m| m.type_name == type_name && m.path.starts_with(prefix))
            .collect()
    }

    /// The ports whose path starts with `prefix`; panics when there is none.
    pub fn ports(&self, prefix: &str) -> Vec<&Port> {
        let ports: Vec<&Port> = self
            .ports
            .iter()
            .filter(|p| p.path.starts_with(prefix))
            .collect();
        assert!(
            !ports.is_empty(),
            "no port under {prefix} among {:?}",
            self.ports.iter().map(|p| &p.path).collect::<Vec<_>>()
        );
        ports
    }

    /// The security group `id`'s path.
    pub fn group_path(&self, id: &str) -> &str {
        self.groups
            .get(id)
            .map_or_else(|| panic!("no security group {id}"), |(path, _)| path)
    }

    /// Whether `to`'s groups admit traffic from the port `from` of
    /// `protocol` to `port` (None: a protocol without ports).
    pub fn admits(&self, from: &Port, to: &Port, protocol: &str, port: Option<u16>) -> bool {
        self.admits_from(&from.ip, &from.security_groups, to, protocol, port)
    }

    /// Whether `to`'s groups admit that traffic from an address outside
    /// the cloud (in no security group).
    pub fn admits_world(&self, to: &Port, protocol: &str, port: Option<u16>) -> bool {
        self.admits_from(WORLD, &[], to, protocol, port)
    }

    fn admits_from(
        &self,
        from_ip: &str,
        from_groups: &[String],
        to: &Port,
        protocol: &str,
        port: Option<u16>,
    ) -> bool {
        let wanted = protocol_number(protocol);
        to.security_groups.iter().any(|g| {
            let Some((_, rules)) = self.groups.get(g) else {
                panic!("{} is in {g}, which is no security group", to.path)
            };
            rules.iter().any(|r| {
                let protocol_ok = r.protocol.is_none() || r.protocol == wanted;
                let port_ok = match (r.ports, port) {
                    (None, _) | (_, None) => true,
                    (Some((min, max)), Some(p)) => min <= p && p <= max,
                };
                let remote_ok = match &r.remote {
                    Remote::Group(group) => from_groups.contains(group),
                    Remote::Cidr(cidr) => contains(cidr, from_ip),
                };
                protocol_ok && port_ok && remote_ok
            })
        })
    }

    /// Every rule of `to`'s groups that admits traffic from anywhere
    /// (a CIDR remote), as `(protocol, ports)`.
    pub fn open_to_world(&self, to: &Port) -> Vec<Opening> {
        let mut open: Vec<_> = to
            .security_groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .flat_map(|(_, rules)| rules)
            .filter(|r| matches!(r.remote, Remote::Cidr(_)))
            .map(|r| (r.protocol, r.ports))
            .collect();
        open.sort();
        open.dedup();
        open
    }
}

/// `(protocol, port)` pairs: `("tcp", Some(6443))`, `("4", None)`.
pub type Traffic<'a> = &'a [(&'a str, Option<u16>)];

/// Every port under `from` reaches every port under `to` with each of
/// `traffic`.
pub fn assert_reaches(network: &Network, from: &str, to: &str, traffic: Traffic<'_>) {
    for source in network.ports(from) {
        for target in network.ports(to) {
            for &(protocol, port) in traffic {
                assert!(
                    network.admits(source, target, protocol, port),
                    "{} cannot reach {} with {protocol} {port:?}",
                    source.path,
                    target.path
                );
            }
        }
    }
}

/// Every port under `to` admits from anywhere exactly the rules `open`
/// (`(protocol number, port range)`), and none of `closed`.
pub fn assert_open_to_world(network: &Network, to: &str, open: &[Opening], closed: Traffic<'_>) {
    let mut open = open.to_vec();
    open.sort();
    for target in network.ports(to) {
        assert_eq!(network.open_to_world(target), open, "{}", target.path);
        for &(protocol, port) in closed {
            assert!(
                !network.admits_world(target, protocol, port),
                "{} admits {protocol} {port:?} from anywhere",
                target.path
            );
        }
    }
}

/// Every port under `prefix` may send from `cidr` (the pod network), or
/// from no address pair at all (`None`).
pub fn assert_address_pairs(network: &Network, prefix: &str, cidr: Option<&str>) {
    let expected: Vec<String> = cidr.into_iter().map(str::to_owned).collect();
    for port in network.ports(prefix) {
        assert_eq!(port.address_pairs, expected, "{}", port.path);
    }
}

/// The API load balancer's pool has a health monitor of `kind` (TCP,
/// HTTP...) and `members` members, the addresses of the ports under
/// `masters`.
pub fn assert_monitored_pool(network: &Network, masters: &str, members: usize, kind: &str) {
    let [pool] = network.made("OS::Octavia::Pool", "").as_slice()[..] else {
        panic!("one Octavia pool expected");
    };
    let monitors = network.made("OS::Octavia::HealthMonitor", "");
    let [monitor] = monitors.as_slice() else {
        panic!("one health monitor expected, got {monitors:?}");
    };
    assert_eq!(monitor.properties["pool"], pool.id.as_str());
    assert_eq!(monitor.properties["type"], kind);
    let mut addresses: Vec<&str> = network
        .made("OS::Octavia::PoolMember", "")
        .iter()
        .filter(|m| m.properties["pool"] == pool.id.as_str())
        .filter_map(|m| m.properties["address"].as_str())
        .collect();
    addresses.sort_unstable();
    let mut expected: Vec<&str> = network
        .ports(masters)
        .iter()
        .map(|p| p.ip.as_str())
        .collect();
    expected.sort_unstable();
    assert_eq!(addresses.len(), members);
    assert_eq!(addresses, expected);
}
