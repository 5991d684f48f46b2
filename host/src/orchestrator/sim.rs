//! The simulated cloud behind the `local` orchestrator: the primitive
//! resource types it "creates" and their attributes. It creates no real
//! machines: servers are records with addresses and a boot time.
//!
//! Supported types ([`SUPPORTED_TYPES`]):
//!
//! - `OS::Nova::Server` — addresses from its ports or networks, ready after
//!   the configured boot time; attributes `first_address`, `networks`,
//!   `addresses`, `name`, `show`, `accessIPv4`, `accessIPv6`,
//!   `instance_name`, `console_urls`, `os_collect_config`;
//! - `OS::Nova::ServerGroup`, `OS::Nova::KeyPair`;
//! - `OS::Neutron::Net`, `OS::Neutron::Subnet` (its `cidr`, carved into
//!   the subnet pool by [`local_cidr`], is the pool its ports draw fixed
//!   addresses from, `.3` upwards), `OS::Neutron::Router`,
//!   `OS::Neutron::RouterInterface`, `OS::Neutron::Port` (`fixed_ips`),
//!   `OS::Neutron::FloatingIP` (from the floating pool;
//!   `floating_ip_address`), `OS::Neutron::FloatingIPAssociation`,
//!   `OS::Neutron::SecurityGroup`, `OS::Neutron::SecurityGroupRule`;
//! - `OS::Octavia::{LoadBalancer, Listener, Pool, PoolMember, HealthMonitor}`
//!   and `OS::Neutron::LBaaS::{LoadBalancer, Listener, Pool, PoolMember,
//!   HealthMonitor}` (`vip_address` from the VIP subnet);
//! - `OS::Heat::{SoftwareConfig, StructuredConfig, MultipartMime,
//!   CloudConfig, SoftwareDeployment, StructuredDeployment, RandomString,
//!   None, Value, WaitCondition, WaitConditionHandle}`;
//! - `OS::Cinder::Volume`, `OS::Cinder::VolumeAttachment`.
//!
//! Every one but the server and the wait condition is ready at once. A
//! server whose update Heat could not make in place (a property of
//! [`SERVER_REPLACED_ON`], or user data, image or flavor under a `REPLACE`
//! update policy) is replaced: a new server, booted and signalling anew,
//! the old one deleted once the new one is up; [`ServerEvent`]s record the
//! order. A
//! server whose user data carries a wait condition handle's endpoint or
//! token "runs" its bootstrap: it signals that handle SUCCESS when it has
//! booted (data `{"node": <name>, "coe_version": <its KUBE_TAG>}`: the
//! simulation runs no COE, so it reports the release its heat-params name,
//! as lib.sh does when kubelet cannot say), or FAILURE naming itself when
//! `fail_bootstrap_role` picks it. An `OS::Heat::WaitCondition` is ready
//! when its handle has been signalled SUCCESS, fails with the signal's
//! reason on FAILURE, and fails with Heat's "0 of 1 received" after its
//! `timeout` when nothing signals. Properties are not checked
//! beyond what the simulation reads. A subnet or network the stack did not
//! create (an existing `fixed_network`, a cluster's network a nodegroup
//! stack joins by name) is found by id or name among the subnets of every
//! local stack, else becomes a pool of the cloud with the default CIDR.
//!
//! Every address handed out lies in 127.0.0.0/8 (the configured pools must;
//! a template's CIDRs and explicit addresses are carved into the subnet
//! pool), so a client following a simulated address never leaves the
//! machine. A live address is never handed out twice; one whose resource
//! or stack was deleted is handed out again; a full pool fails the
//! resource with Neutron's "No more IP addresses available on network …".

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use magnum_hot::{Applied, Provider, ProviderError, ResourceRequest, ResourceState};

/// The primitive resource types of the simulated cloud.
pub const SUPPORTED_TYPES: &[&str] = &[
    "OS::Nova::Server",
    "OS::Nova::ServerGroup",
    "OS::Nova::KeyPair",
    "OS::Neutron::Net",
    "OS::Neutron::Subnet",
    "OS::Neutron::Router",
    "OS::Neutron::RouterInterface",
    "OS::Neutron::Port",
    "OS::Neutron::FloatingIP",
    "OS::Neutron::FloatingIPAssociation",
    "OS::Neutron::SecurityGroup",
    "OS::Neutron::SecurityGroupRule",
    "OS::Neutron::LBaaS::LoadBalancer",
    "OS::Neutron::LBaaS::Listener",
    "OS::Neutron::LBaaS::Pool",
    "OS::Neutron::LBaaS::PoolMember",
    "OS::Neutron::LBaaS::HealthMonitor",
    "OS::Octavia::LoadBalancer",
    "OS::Octavia::Listener",
    "OS::Octavia::Pool",
    "OS::Octavia::PoolMember",
    "OS::Octavia::HealthMonitor",
    "OS::Heat::SoftwareConfig",
    "OS::Heat::StructuredConfig",
    "OS::Heat::MultipartMime",
    "OS::Heat::CloudConfig",
    "OS::Heat::SoftwareDeployment",
    "OS::Heat::StructuredDeployment",
    "OS::Heat::RandomString",
    "OS::Heat::None",
    "OS::Heat::Value",
    "OS::Heat::WaitCondition",
    "OS::Heat::WaitConditionHandle",
    "OS::Cinder::Volume",
    "OS::Cinder::VolumeAttachment",
];

pub const SERVER: &str = "OS::Nova::Server";
/// The server attribute (in `show`) holding its user data, base64.
pub const USER_DATA_ATTRIBUTE: &str = "OS-EXT-SRV-ATTR:user_data";
const WAIT_HANDLE: &str = "OS::Heat::WaitConditionHandle";
/// The node roles `fail_bootstrap_role` may name (servers' metadata
/// `nodegroup_role`).
pub const BOOTSTRAP_ROLES: &[&str] = &["master", "worker"];
/// Heat's default wait condition timeout, in seconds.
const DEFAULT_WAIT_TIMEOUT_S: i64 = 3600;
const SUBNET: &str = "OS::Neutron::Subnet";

/// Neutron keeps `.1` for the gateway and `.2` for DHCP.
const FIRST_FIXED_HOST: u32 = 3;
const FIRST_FLOATING_HOST: u32 = 2;
/// The pool a server or port with no network draws from.
const DEFAULT_NETWORK: &str = "private";

/// An address pool: a subnet, or a network the cloud provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub id: String,
    pub name: String,
    pub network: String,
    pub cidr: String,
    /// The local stack that created it; `None` for pools of the cloud.
    pub stack_id: Option<String>,
}

/// Address bookkeeping shared by every stack of the cloud.
pub trait Ipam {
    /// The pool with id `key`, else one named `key` or on network `key`.
    fn find(&mut self, key: &str) -> Result<Option<Pool>, String>;
    fn add(&mut self, pool: Pool) -> Result<(), String>;
    /// Drops the pool and the addresses handed out from it.
    fn remove(&mut self, id: &str) -> Result<(), String>;
    /// Hands a free address of `pool`, from host `first` up, to `owner` (a
    /// resource); `None` when the pool is full.
    fn allocate(
        &mut self,
        pool: &Pool,
        first: u32,
        owner: &str,
    ) -> Result<Option<Ipv4Addr>, String>;
    /// Gives back the addresses `owner` holds.
    fn release(&mut self, owner: &str) -> Result<(), String>;
}

/// An [`Ipam`] in memory, for tests of the evaluator. It hands out as
/// `local_ipam` does: the host after the last one handed out, wrapping
/// around onto released ones.
#[derive(Debug, Default)]
pub struct MemoryIpam {
    /// Each pool with its live hosts (and their owners) and its cursor.
    pools: BTreeMap<String, (Pool, BTreeMap<u32, String>, u32)>,
}

impl Ipam for MemoryIpam {
    fn find(&mut self, key: &str) -> Result<Option<Pool>, String> {
        if let Some((pool, ..)) = self.pools.get(key) {
            return Ok(Some(pool.clone()));
        }
        Ok(self
            .pools
            .values()
            .find(|(p, ..)| !key.is_empty() && (p.name == key || p.network == key))
            .map(|(p, ..)| p.clone()))
    }

    fn add(&mut self, pool: Pool) -> Result<(), String> {
        self.pools
            .entry(pool.id.clone())
            .or_insert_with(|| (pool, BTreeMap::new(), 0));
        Ok(())
    }

    fn remove(&mut self, id: &str) -> Result<(), String> {
        self.pools.remove(id);
        Ok(())
    }

    fn allocate(
        &mut self,
        pool: &Pool,
        first: u32,
        owner: &str,
    ) -> Result<Option<Ipv4Addr>, String> {
        let (network, first, last) = host_range(&pool.cidr, first)?;
        let (_, live, cursor) = self
            .pools
            .get_mut(&pool.id)
            .ok_or_else(|| format!("no address pool {}", pool.id))?;
        let start = first + *cursor % (last - first + 1);
        let Some(host) = (start..=last)
            .chain(first..start)
            .find(|h| !live.contains_key(h))
        else {
            return Ok(None);
        };
        live.insert(host, owner.to_owned());
        *cursor = host - first + 1;
        Ok(Some(Ipv4Addr::from(network + host)))
    }

    fn release(&mut self, owner: &str) -> Result<(), String> {
        for (_, live, _) in self.pools.values_mut() {
            live.retain(|_, o| o != owner);
        }
        Ok(())
    }
}

/// What the simulated cloud does, from the orchestrator's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    pub boot_ms: i64,
    pub fail_resource_type: Option<String>,
    pub fail_after_servers: Option<u32>,
    /// The first new server of this role in an operation fails its
    /// bootstrap ([`BOOTSTRAP_ROLES`]).
    pub fail_bootstrap_role: Option<String>,
    pub floating_ip_cidr: String,
    pub default_subnet_cidr: String,
    /// Where the subnets stacks create are carved from ([`local_cidr`]).
    pub subnet_pool_cidr: String,
}

/// The default pools: disjoint, inside 127.0.0.0/8, away from 127.0.0.x.
pub const DEFAULT_FLOATING_IP_CIDR: &str = "127.24.0.0/16";
pub const DEFAULT_SUBNET_CIDR: &str = "127.10.0.0/24";
pub const DEFAULT_SUBNET_POOL_CIDR: &str = "127.64.0.0/10";

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            boot_ms: 3000,
            fail_resource_type: None,
            fail_after_servers: None,
            fail_bootstrap_role: None,
            floating_ip_cidr: DEFAULT_FLOATING_IP_CIDR.into(),
            default_subnet_cidr: DEFAULT_SUBNET_CIDR.into(),
            subnet_pool_cidr: DEFAULT_SUBNET_POOL_CIDR.into(),
        }
    }
}

/// The netmask of a prefix length (0 to 32).
fn netmask(length: u32) -> u32 {
    u32::MAX.checked_shl(32 - length.min(32)).unwrap_or(0)
}

/// `(network address, prefix length)` of an IPv4 CIDR.
pub fn parse_cidr(cidr: &str) -> Result<(u32, u32), String> {
    let invalid = || format!("Invalid CIDR {cidr}: the local cloud simulates IPv4 subnets only");
    let (address, length) = cidr.trim().split_once('/').ok_or_else(invalid)?;
    let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
    let length: u32 = length.parse().map_err(|_| invalid())?;
    if length > 30 {
        return Err(format!("Invalid CIDR {cidr}: too small for hosts"));
    }
    Ok((u32::from(address) & netmask(length), length))
}

/// `(network, first host, last host)` of `cidr` for hosts from `first` up
/// to the one before the broadcast address.
pub fn host_range(cidr: &str, first: u32) -> Result<(u32, u32, u32), String> {
    let (network, length) = parse_cidr(cidr)?;
    let last = u32::try_from((1u64 << (32 - length)) - 2)
        .map_err(|_| format!("Invalid CIDR {cidr}: too large"))?;
    if first > last {
        return Err(format!("Invalid CIDR {cidr}: too small for hosts"));
    }
    Ok((network, first, last))
}

/// Whether `cidr` lies inside 127.0.0.0/8.
pub fn on_loopback(cidr: &str) -> Result<bool, String> {
    let (network, length) = parse_cidr(cidr)?;
    Ok(length >= 8 && network >> 24 == 127)
}

/// The local cloud's CIDR for a subnet a template asks for (say the k8s
/// templates' 10.0.0.0/24): the subnet pool's network bits replace the
/// requested CIDR's leading bits, and its prefix length is kept (but never
/// shorter than the pool's). So every address lies in the pool, a stack's
/// distinct subnets stay distinct, and the same request always gives the
/// same subnet (stacks' subnets overlap as Neutron tenant networks do).
pub fn local_cidr(requested: &str, pool: &str) -> Result<String, String> {
    let (network, length) = parse_cidr(requested)?;
    let (pool_network, pool_length) = parse_cidr(pool)?;
    let length = length.max(pool_length);
    let pool_mask = netmask(pool_length);
    let local = pool_network | (network & !pool_mask & netmask(length));
    Ok(format!("{}/{length}", Ipv4Addr::from(local)))
}

/// An address a template names explicitly, moved into the subnet pool
/// (host bits kept) unless it is on loopback already.
pub fn local_address(requested: &str, pool: &str) -> Result<String, String> {
    let address: Ipv4Addr = requested
        .trim()
        .parse()
        .map_err(|_| format!("Invalid IP address {requested}"))?;
    if address.octets()[0] == 127 {
        return Ok(address.to_string());
    }
    let (pool_network, pool_length) = parse_cidr(pool)?;
    let pool_mask = netmask(pool_length);
    Ok(Ipv4Addr::from(pool_network | (u32::from(address) & !pool_mask)).to_string())
}

/// The `n`th (from 1) address of `cidr` from host `first` up, wrapping
/// around (a subnet's gateway and the start of its allocation pool).
pub fn nth_address(cidr: &str, first: u32, n: i64) -> Result<Ipv4Addr, String> {
    let (network, length) = parse_cidr(cidr)?;
    let size = 1u64 << (32 - length);
    // Hosts first..=size-2 (the last is the broadcast address).
    let usable = size.saturating_sub(u64::from(first) + 1);
    if usable == 0 {
        return Err(format!("Invalid CIDR {cidr}: too small for hosts"));
    }
    let index = u64::try_from(n.max(1) - 1).unwrap_or_default() % usable;
    let host = u32::try_from(u64::from(first) + index).map_err(|e| e.to_string())?;
    Ok(Ipv4Addr::from(network + host))
}

/// The simulated cloud as the evaluator's [`Provider`], for one stack
/// operation.
pub struct SimProvider<I> {
    config: SimConfig,
    ipam: I,
    stack_id: String,
    /// Servers this stack has created so far (for `fail_after_servers`).
    pub servers_created: u64,
    /// Attributes by ref id, for resources that read others (a server its
    /// port, a floating IP its port's address).
    known: HashMap<String, (String, Map<String, Value>)>,
    /// The resource being built (its ref id holds what it allocates) and
    /// when its operation started.
    owner: String,
    start_ms: i64,
    /// Bootstrap signals by wait condition handle ref id, sent by the
    /// servers of this operation.
    signals: HashMap<String, Signal>,
    /// Whether `fail_bootstrap_role` has picked its server already.
    bootstrap_failed: bool,
    /// Servers created and deleted by this operation, in the order the
    /// simulated cloud did it.
    pub server_events: Vec<ServerEvent>,
}

/// A server the simulated cloud created or deleted, and when: what a test
/// of a rolling replacement reads (which servers, how many at a time).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerEvent {
    pub at_ms: i64,
    /// `create` or `delete`.
    pub action: String,
    pub id: String,
    pub name: String,
    /// For a create: when the server booted; for the delete of a replaced
    /// server: the id of the one that replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

/// Heat's `OS::Nova::Server` properties an update cannot change in place
/// (no `update_allowed` in heat/engine/resources/openstack/nova/server.py):
/// a change replaces the server.
const SERVER_REPLACED_ON: &[&str] = &[
    "block_device_mapping",
    "block_device_mapping_v2",
    "key_name",
    "admin_user",
    "availability_zone",
    "scheduler_hints",
    "user_data_format",
    "reservation_id",
    "config_drive",
    "diskConfig",
    "personality",
];

/// The attribute under which a simulated server keeps a digest of what
/// would make Heat replace it.
const REPLACEMENT_DIGEST: &str = "replacement_digest";

/// A digest of the properties whose change replaces a server: those of
/// [`SERVER_REPLACED_ON`], plus `user_data`, `image` and `flavor` when
/// their update policy is `REPLACE` (Heat's default for user data; a
/// template's `IGNORE` keeps the server).
fn replacement_digest(p: &Map<String, Value>) -> String {
    use sha2::Digest;
    let mut key = Map::new();
    for name in SERVER_REPLACED_ON {
        if let Some(v) = p.get(*name) {
            key.insert((*name).to_owned(), v.clone());
        }
    }
    for (name, policy, default) in [
        ("user_data", "user_data_update_policy", "REPLACE"),
        ("image", "image_update_policy", "REBUILD"),
        ("flavor", "flavor_update_policy", "RESIZE"),
    ] {
        let policy = p.get(policy).and_then(Value::as_str).unwrap_or(default);
        if policy == "REPLACE" {
            if let Some(v) = p.get(name) {
                key.insert(name.to_owned(), v.clone());
            }
        }
    }
    // 8 bytes, as the evaluator's property digests: it only tells a change.
    hex::encode(&sha2::Sha256::digest(Value::Object(key).to_string().as_bytes())[..8])
}

/// What a simulated node signals its wait condition handle.
#[derive(Debug, Clone, PartialEq)]
struct Signal {
    at_ms: i64,
    /// `Err(reason)` for a FAILURE.
    outcome: Result<Value, String>,
}

fn prop<'a>(properties: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| properties.get(*n))
        .filter(|v| !v.is_null())
}

fn prop_str(properties: &Map<String, Value>, names: &[&str]) -> Option<String> {
    prop(properties, names).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Heat's validation of a server's boot source, with its messages: the
/// `image`, or exactly one `block_device_mapping_v2` entry from a volume,
/// snapshot or image with `boot_index` 0 (or none), never both.
fn check_boot_source(p: &Map<String, Value>, resource: &str) -> Result<(), ProviderError> {
    let image = prop(p, &["image"]);
    let mut sources = usize::from(image.is_some());
    if let Some(mappings) = prop(p, &["block_device_mapping_v2"]) {
        let Value::Array(mappings) = mappings else {
            return Err(ProviderError::Invalid(format!(
                "Property error: {resource}.Properties.block_device_mapping_v2: must be a list"
            )));
        };
        for mapping in mappings {
            let source = ["volume_id", "snapshot_id", "image", "image_id"]
                .iter()
                .any(|k| mapping.get(*k).is_some_and(|v| !v.is_null()));
            let boot_index = mapping.get("boot_index").and_then(Value::as_i64);
            if source && matches!(boot_index, None | Some(0)) {
                sources += 1;
            }
        }
    }
    match sources {
        0 => Err(ProviderError::Invalid(format!(
            "Neither image nor bootable volume is specified for instance {resource}"
        ))),
        1 => Ok(()),
        _ => Err(ProviderError::Invalid(format!(
            "Multiple bootable sources for instance {resource}."
        ))),
    }
}

fn short(id: &str) -> String {
    id.chars().filter(|c| *c != '-').take(12).collect()
}

/// A MAC address in OpenStack's `fa:16:3e` range, from the address.
fn mac_for(ip: &str) -> String {
    let octets: Vec<u8> = ip
        .parse::<Ipv4Addr>()
        .map(|a| a.octets().to_vec())
        .unwrap_or_else(|_| vec![0; 4]);
    format!(
        "fa:16:3e:{:02x}:{:02x}:{:02x}",
        octets[1], octets[2], octets[3]
    )
}

fn random_string(length: usize) -> String {
    let mut out = String::with_capacity(length);
    while out.len() < length {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(length);
    out
}

impl<I: Ipam> SimProvider<I> {
    pub fn new(config: SimConfig, ipam: I, stack_id: &str, servers_created: u64) -> Self {
        Self {
            config,
            ipam,
            stack_id: stack_id.to_owned(),
            servers_created,
            known: HashMap::new(),
            owner: String::new(),
            start_ms: 0,
            signals: HashMap::new(),
            server_events: Vec::new(),
            bootstrap_failed: false,
        }
    }

    pub fn into_ipam(self) -> I {
        self.ipam
    }

    fn invalid(message: impl Into<String>) -> ProviderError {
        ProviderError::Invalid(message.into())
    }

    /// A fixed address from the subnet or network `key` (a pool of the
    /// cloud with the default CIDR when no stack created it), for the
    /// resource being built.
    fn allocate(&mut self, key: &str) -> Result<(String, String), ProviderError> {
        let mut pool = match self.ipam.find(key).map_err(Self::invalid)? {
            Some(pool) => pool,
            None => {
                let pool = Pool {
                    id: key.to_owned(),
                    name: key.to_owned(),
                    network: key.to_owned(),
                    cidr: self.config.default_subnet_cidr.clone(),
                    stack_id: None,
                };
                self.ipam.add(pool.clone()).map_err(Self::invalid)?;
                pool
            }
        };
        // A pool recorded before the cloud kept to loopback.
        if !on_loopback(&pool.cidr).map_err(Self::invalid)? {
            pool.cidr =
                local_cidr(&pool.cidr, &self.config.subnet_pool_cidr).map_err(Self::invalid)?;
        }
        let network = if pool.network.is_empty() {
            pool.id.clone()
        } else {
            pool.network.clone()
        };
        let address = self.take(&pool, FIRST_FIXED_HOST, &network)?;
        Ok((pool.id, address))
    }

    /// A floating IP from the floating pool of network `network`.
    fn allocate_floating(&mut self, network: Option<String>) -> Result<String, ProviderError> {
        let cidr = self.config.floating_ip_cidr.clone();
        let id = format!("floating:{cidr}");
        let pool = Pool {
            id: id.clone(),
            name: String::new(),
            network: String::new(),
            cidr: cidr.clone(),
            stack_id: None,
        };
        if self.ipam.find(&id).map_err(Self::invalid)?.is_none() {
            self.ipam.add(pool.clone()).map_err(Self::invalid)?;
        }
        let network = network.filter(|n| !n.is_empty()).unwrap_or(cidr);
        self.take(&pool, FIRST_FLOATING_HOST, &network)
    }

    /// A free address of `pool` for the resource being built; a full pool
    /// fails that resource as Neutron would.
    fn take(&mut self, pool: &Pool, first: u32, network: &str) -> Result<String, ProviderError> {
        let owner = self.owner.clone();
        match self
            .ipam
            .allocate(pool, first, &owner)
            .map_err(Self::invalid)?
        {
            Some(address) => Ok(address.to_string()),
            None => Err(ProviderError::Fault {
                at_ms: self.start_ms,
                message: format!("No more IP addresses available on network {network}."),
            }),
        }
    }

    /// An address the template names, inside the subnet pool.
    fn explicit(&self, address: &str) -> Result<String, ProviderError> {
        local_address(address, &self.config.subnet_pool_cidr).map_err(Self::invalid)
    }

    /// The fixed addresses of the port `id`, with its network.
    fn port_addresses(&self, id: &str) -> Option<(String, Vec<String>)> {
        let (_, port) = self.known.get(id)?;
        let ips = port
            .get("fixed_ips")?
            .as_array()?
            .iter()
            .filter_map(|f| f.get("ip_address")?.as_str().map(str::to_owned))
            .collect();
        let network = port
            .get("network_id")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_NETWORK)
            .to_owned();
        Some((network, ips))
    }

    fn fault(&self, request: &ResourceRequest<'_>) -> Option<ProviderError> {
        let boot = if request.type_name == SERVER {
            self.config.boot_ms
        } else {
            0
        };
        let at_ms = request.start_ms + boot;
        if self.config.fail_resource_type.as_deref() == Some(request.type_name) {
            return Some(ProviderError::Fault {
                at_ms,
                message: "injected fault".into(),
            });
        }
        let creating_server = request.type_name == SERVER && request.previous.is_none();
        if let Some(limit) = self.config.fail_after_servers {
            if creating_server && self.servers_created >= u64::from(limit) {
                return Some(ProviderError::Fault {
                    at_ms,
                    message: format!("injected fault after {limit} servers"),
                });
            }
        }
        None
    }

    fn build(
        &mut self,
        request: &ResourceRequest<'_>,
        id: &str,
    ) -> Result<(Map<String, Value>, i64, bool), ProviderError> {
        self.owner = id.to_owned();
        self.start_ms = request.start_ms;
        let p = request.properties;
        let old = request.previous.map(|r| &r.attributes);
        let kept = |key: &str| old.and_then(|a| a.get(key)).cloned();
        let name = prop_str(p, &["name"])
            .unwrap_or_else(|| format!("{}-{}-{}", request.stack_name, request.name, short(id)));
        let start = request.start_ms;
        let mut open = false;
        let mut ready = start;
        let mut attributes = match request.type_name {
            SERVER => {
                check_boot_source(p, request.name)?;
                let (networks, addresses) = match (kept("networks"), kept("addresses")) {
                    (Some(n), Some(a)) => (n, a),
                    _ => self.server_addresses(p)?,
                };
                let first = networks
                    .as_object()
                    .and_then(|n| n.values().next())
                    .and_then(|ips| ips.get(0))
                    .cloned()
                    .unwrap_or_else(|| Value::String(String::new()));
                ready = start + self.config.boot_ms;
                if request.previous.is_none() {
                    self.servers_created += 1;
                }
                self.bootstrap(p, &name, request.previous.is_none(), ready);
                // Nova's `OS-EXT-SRV-ATTR:user_data` (admins, microversion
                // 2.3+): base64 of what the server booted with, kept across
                // updates as Nova keeps it. Tests run it in a sandbox
                // (tests/sandbox). It holds the cluster credential, as the
                // stack's own parameters do.
                let user_data = kept("show")
                    .and_then(|show| show.get(USER_DATA_ATTRIBUTE).cloned())
                    .unwrap_or_else(|| {
                        let raw = prop_str(p, &["user_data"]).unwrap_or_default();
                        json!(base64::engine::general_purpose::STANDARD.encode(raw))
                    });
                let show = json!({
                    "id": id, "name": name, "status": "ACTIVE", "addresses": addresses,
                    USER_DATA_ATTRIBUTE: user_data,
                    // Nova shows a volume-backed server's image as "".
                    "image": prop(p, &["image"]).cloned().unwrap_or_else(|| json!("")),
                    "flavor": prop(p, &["flavor"]),
                    "key_name": prop(p, &["key_name"]), "metadata": prop(p, &["metadata"]).cloned().unwrap_or_else(|| json!({})),
                });
                json!({
                    "name": name, "first_address": first, "networks": networks,
                    "addresses": addresses, "accessIPv4": "", "accessIPv6": "",
                    "instance_name": format!("instance-{}", short(id).get(..8).unwrap_or_default()),
                    "console_urls": {}, "os_collect_config": {}, "show": show,
                })
            }
            "OS::Neutron::Port" => {
                let network = prop_str(p, &["network", "network_id"])
                    .unwrap_or_else(|| DEFAULT_NETWORK.into());
                let fixed_ips = match kept("fixed_ips") {
                    Some(ips) => ips,
                    None => self.port_addresses_for(p, &network)?,
                };
                let first = fixed_ips
                    .get(0)
                    .and_then(|f| f.get("ip_address"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let mac = mac_for(&first);
                let security_groups = prop(p, &["security_groups"])
                    .cloned()
                    .unwrap_or_else(|| json!([]));
                let subnets: Vec<Value> = fixed_ips
                    .as_array()
                    .map(|ips| {
                        ips.iter()
                            .filter_map(|f| f.get("subnet_id").cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "name": name, "network_id": network, "network": {"id": network},
                    "fixed_ips": fixed_ips, "mac_address": mac, "status": "ACTIVE",
                    "admin_state_up": true, "device_id": "", "device_owner": "",
                    "security_groups": security_groups, "port_security_enabled": true,
                    "allowed_address_pairs": [], "dns_assignment": [], "qos_policy_id": null,
                    "subnets": subnets, "tenant_id": "",
                    "show": {"id": id, "name": name, "network_id": network, "fixed_ips": fixed_ips, "mac_address": mac, "status": "ACTIVE"},
                })
            }
            "OS::Neutron::FloatingIP" => {
                let address = match kept("floating_ip_address") {
                    Some(Value::String(a)) => a,
                    _ => self.allocate_floating(prop_str(
                        p,
                        &["floating_network", "floating_network_id"],
                    ))?,
                };
                let port = prop_str(p, &["port_id", "port"]);
                let fixed = prop_str(p, &["fixed_ip_address"]).or_else(|| {
                    let (_, ips) = self.port_addresses(port.as_deref()?)?;
                    ips.into_iter().next()
                });
                let network = prop_str(p, &["floating_network", "floating_network_id"]);
                json!({
                    "floating_ip_address": address, "fixed_ip_address": fixed, "port_id": port,
                    "floating_network_id": network, "router_id": null, "tenant_id": "",
                    "show": {"id": id, "floating_ip_address": address, "fixed_ip_address": fixed, "port_id": port, "status": "ACTIVE"},
                })
            }
            SUBNET => {
                let cidr = match prop_str(p, &["cidr"]) {
                    Some(requested) => local_cidr(&requested, &self.config.subnet_pool_cidr)
                        .map_err(|e| Self::invalid(format!("Property error: cidr: {e}")))?,
                    None => self.config.default_subnet_cidr.clone(),
                };
                let gateway = nth_address(&cidr, 1, 1)
                    .map_err(|e| Self::invalid(format!("Property error: cidr: {e}")))?;
                let network = prop_str(p, &["network", "network_id"]).unwrap_or_default();
                if request.previous.is_none() {
                    self.ipam
                        .add(Pool {
                            id: id.to_owned(),
                            name: prop_str(p, &["name"]).unwrap_or_default(),
                            network: network.clone(),
                            cidr: cidr.clone(),
                            stack_id: Some(self.stack_id.clone()),
                        })
                        .map_err(Self::invalid)?;
                }
                let (base, length) = parse_cidr(&cidr).map_err(Self::invalid)?;
                let last = Ipv4Addr::from(base + (1u32 << (32 - length)) - 2);
                let dns = prop(p, &["dns_nameservers"])
                    .cloned()
                    .unwrap_or_else(|| json!([]));
                let pools = json!([{"start": nth_address(&cidr, 2, 1).map_err(Self::invalid)?.to_string(), "end": last.to_string()}]);
                json!({
                    "name": name, "cidr": cidr, "network_id": network, "gateway_ip": gateway.to_string(),
                    "ip_version": 4, "enable_dhcp": true, "dns_nameservers": dns,
                    "allocation_pools": pools, "host_routes": [], "subnetpool_id": null, "tenant_id": "",
                    "show": {"id": id, "name": name, "cidr": cidr, "network_id": network, "gateway_ip": gateway.to_string()},
                })
            }
            "OS::Neutron::Net" => json!({
                "name": name, "status": "ACTIVE", "admin_state_up": true, "mtu": 1450,
                "subnets": [], "port_security_enabled": true, "qos_policy_id": null,
                "segments": [], "l2_adjacency": true, "tenant_id": "",
                "show": {"id": id, "name": name, "status": "ACTIVE"},
            }),
            "OS::Neutron::Router" => {
                let gateway = prop(p, &["external_gateway_info"])
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                json!({
                    "name": name, "status": "ACTIVE", "admin_state_up": true,
                    "external_gateway_info": gateway, "tenant_id": "",
                    "show": {"id": id, "name": name, "status": "ACTIVE", "external_gateway_info": gateway},
                })
            }
            "OS::Neutron::SecurityGroup" => json!({
                "show": {"id": id, "name": name, "rules": prop(p, &["rules"]).cloned().unwrap_or_else(|| json!([]))},
            }),
            "OS::Nova::ServerGroup" => json!({
                "show": {"id": id, "name": name, "policies": prop(p, &["policies", "policy"]).cloned().unwrap_or_else(|| json!([]))},
            }),
            "OS::Nova::KeyPair" => json!({
                "public_key": prop(p, &["public_key"]).cloned().unwrap_or_else(|| json!("ssh-rsa AAAA... simulated")),
                "private_key": "", "show": {"id": id, "name": name},
            }),
            "OS::Octavia::LoadBalancer" | "OS::Neutron::LBaaS::LoadBalancer" => {
                let address = match kept("vip_address") {
                    Some(Value::String(a)) => a,
                    _ => match prop_str(p, &["vip_address"]) {
                        Some(a) => self.explicit(&a)?,
                        None => {
                            let subnet = prop_str(p, &["vip_subnet", "vip_network"])
                                .unwrap_or_else(|| DEFAULT_NETWORK.into());
                            self.allocate(&subnet)?.1
                        }
                    },
                };
                let port =
                    kept("vip_port_id").unwrap_or_else(|| json!(uuid::Uuid::new_v4().to_string()));
                let subnet = prop(p, &["vip_subnet"]).cloned();
                json!({
                    "vip_address": address, "vip_port_id": port, "vip_subnet_id": subnet,
                    "pools": [], "listeners": [], "flavor_id": prop(p, &["flavor"]),
                    "availability_zone": null, "provider": "amphora",
                    "show": {"id": id, "name": name, "vip_address": address, "provisioning_status": "ACTIVE", "operating_status": "ONLINE"},
                })
            }
            "OS::Octavia::Listener" | "OS::Neutron::LBaaS::Listener" => json!({
                "loadbalancers": [prop(p, &["loadbalancer"])], "default_pool_id": prop(p, &["default_pool"]),
                "show": {"id": id, "name": name, "protocol_port": prop(p, &["protocol_port"])},
            }),
            "OS::Octavia::Pool" | "OS::Neutron::LBaaS::Pool" => json!({
                "listeners": [prop(p, &["listener"])], "members": [], "healthmonitor_id": null,
                "show": {"id": id, "name": name, "lb_algorithm": prop(p, &["lb_algorithm"])},
            }),
            "OS::Octavia::PoolMember" | "OS::Neutron::LBaaS::PoolMember" => json!({
                "address": prop(p, &["address"]), "pool_id": prop(p, &["pool"]),
                "show": {"id": id, "address": prop(p, &["address"]), "protocol_port": prop(p, &["protocol_port"])},
            }),
            "OS::Octavia::HealthMonitor" | "OS::Neutron::LBaaS::HealthMonitor" => json!({
                "pools": [prop(p, &["pool"])], "show": {"id": id, "type": prop(p, &["type"])},
            }),
            "OS::Heat::SoftwareConfig" | "OS::Heat::StructuredConfig" => {
                let config = prop(p, &["config"]).cloned().unwrap_or_else(|| json!(""));
                json!({
                    "config": config,
                    "show": {"id": id, "name": name, "group": prop(p, &["group"]).cloned().unwrap_or_else(|| json!("Heat::Ungrouped")), "config": config},
                })
            }
            "OS::Heat::CloudConfig" => {
                let body = prop(p, &["cloud_config"])
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let yaml =
                    serde_norway::to_string(&body).map_err(|e| Self::invalid(e.to_string()))?;
                let config = format!("#cloud-config\n{yaml}");
                json!({"config": config, "show": {"id": id, "config": config}})
            }
            "OS::Heat::MultipartMime" => {
                let config = self.multipart(p, id);
                json!({"config": config, "show": {"id": id, "config": config}})
            }
            "OS::Heat::SoftwareDeployment" | "OS::Heat::StructuredDeployment" => {
                // Its other attributes are the config's outputs: any name.
                open = true;
                json!({
                    "deploy_stdout": "", "deploy_stderr": "", "deploy_status_code": 0,
                    "show": {"id": id, "status": "COMPLETE", "config_id": prop(p, &["config"])},
                })
            }
            "OS::Heat::RandomString" => {
                let value = match kept("value") {
                    Some(v) => v,
                    None => {
                        let length = prop(p, &["length"]).and_then(Value::as_u64).unwrap_or(32);
                        json!(random_string(
                            usize::try_from(length.min(512)).unwrap_or(32)
                        ))
                    }
                };
                json!({"value": value, "show": {"id": id, "value": value}})
            }
            "OS::Heat::None" => {
                // Stubs out any resource: every attribute is null.
                open = true;
                Value::Object(Map::new())
            }
            "OS::Heat::Value" => {
                let value = prop(p, &["value"]).cloned().unwrap_or(Value::Null);
                json!({"value": value, "show": {"id": id, "value": value}})
            }
            "OS::Heat::WaitConditionHandle" => {
                let token = kept("token").unwrap_or_else(|| json!(random_string(32)));
                let endpoint = format!("http://127.0.0.1:8004/v1/signal/{id}");
                let curl = format!(
                    "curl -i -X POST -H 'X-Auth-Token: {}' -H 'Content-Type: application/json' -H 'Accept: application/json' {endpoint}",
                    token.as_str().unwrap_or_default()
                );
                json!({
                    "endpoint": endpoint, "token": token, "curl_cli": curl,
                    "signal": {"alarm_url": endpoint}, "show": {"id": id},
                })
            }
            "OS::Heat::WaitCondition" => {
                let (data, at_ms) = self.wait(request)?;
                ready = at_ms;
                json!({"data": data, "show": {"id": id, "data": data}})
            }
            "OS::Cinder::Volume" => json!({
                "display_name": name, "display_description": prop(p, &["description"]),
                "size": prop(p, &["size"]), "status": "available", "availability_zone": "nova",
                "bootable": false, "volume_type": prop(p, &["volume_type"]), "encrypted": false,
                "metadata": prop(p, &["metadata"]).cloned().unwrap_or_else(|| json!({})),
                "attachments": [], "attachments_list": [], "created_at": "",
                "show": {"id": id, "name": name, "size": prop(p, &["size"]), "status": "available"},
            }),
            // RouterInterface, FloatingIPAssociation, SecurityGroupRule,
            // VolumeAttachment: only `show`.
            _ => json!({"show": {"id": id}}),
        };
        if let Value::Object(map) = &mut attributes {
            return Ok((std::mem::take(map), ready, open));
        }
        Ok((Map::new(), ready, open))
    }

    /// The server `name` (booted at `ready_ms`) signals every wait condition
    /// handle its user data carries: SUCCESS, or FAILURE when it is the
    /// first `new` server of the `fail_bootstrap_role`.
    fn bootstrap(&mut self, p: &Map<String, Value>, name: &str, new: bool, ready_ms: i64) {
        let user_data = prop_str(p, &["user_data"]).unwrap_or_default();
        let handles: Vec<String> = self
            .known
            .iter()
            .filter(|(_, (type_name, _))| type_name == WAIT_HANDLE)
            .filter(|(_, (_, attributes))| {
                ["endpoint", "token"].iter().any(|key| {
                    attributes
                        .get(*key)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.is_empty() && user_data.contains(v))
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        if handles.is_empty() {
            return;
        }
        let role = p
            .get("metadata")
            .and_then(|m| m.get("nodegroup_role"))
            .and_then(Value::as_str);
        let fails = new
            && !self.bootstrap_failed
            && role.is_some()
            && self.config.fail_bootstrap_role.as_deref() == role;
        let outcome = if fails {
            self.bootstrap_failed = true;
            Err(format!(
                "{name}: bootstrap failed: injected fault (fail_bootstrap_role = \"{}\")",
                role.unwrap_or_default()
            ))
        } else {
            // What a k8s node's lib.sh `coe_version` falls back to: the
            // release its heat-params name.
            let version = user_data
                .split_once("KUBE_TAG=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(tag, _)| tag.to_owned())
                .filter(|tag| !tag.is_empty() && !tag.starts_with('$'));
            match version {
                Some(v) => Ok(json!({ "node": name, "coe_version": v })),
                None => Ok(json!({ "node": name })),
            }
        };
        for handle in handles {
            self.signals.insert(
                handle,
                Signal {
                    at_ms: ready_ms,
                    outcome: outcome.clone(),
                },
            );
        }
    }

    /// A wait condition: its `data` (Heat's JSON text, `{"1": <data>}`) and
    /// when it is ready, by what its handle was signalled. One whose node
    /// did not signal in this operation keeps what it had (an update that
    /// left the node alone); a new one with no signal times out.
    fn wait(&self, request: &ResourceRequest<'_>) -> Result<(String, i64), ProviderError> {
        let p = request.properties;
        let handle = prop_str(p, &["handle"]).unwrap_or_default();
        match self.signals.get(&handle) {
            Some(Signal {
                at_ms,
                outcome: Ok(data),
            }) => {
                let data = json!({ "1": data }).to_string();
                Ok((data, (*at_ms).max(request.start_ms)))
            }
            Some(Signal {
                at_ms,
                outcome: Err(reason),
            }) => Err(ProviderError::Fault {
                at_ms: (*at_ms).max(request.start_ms),
                message: reason.clone(),
            }),
            None => {
                if let Some(previous) = request.previous {
                    let data = previous
                        .attributes
                        .get("data")
                        .and_then(Value::as_str)
                        .unwrap_or("{}")
                        .to_owned();
                    return Ok((data, request.start_ms));
                }
                let timeout_s = prop(p, &["timeout"])
                    .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
                    .filter(|s| *s > 0)
                    .unwrap_or(DEFAULT_WAIT_TIMEOUT_S);
                Err(ProviderError::Fault {
                    at_ms: request
                        .start_ms
                        .saturating_add(timeout_s.saturating_mul(1000)),
                    message: "0 of 1 received".into(),
                })
            }
        }
    }

    /// `networks` and `addresses` of a server from its `networks` property.
    fn server_addresses(
        &mut self,
        p: &Map<String, Value>,
    ) -> Result<(Value, Value), ProviderError> {
        let mut entries: Vec<(String, Vec<String>)> = Vec::new();
        let listed = prop(p, &["networks"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for entry in &listed {
            let Some(entry) = entry.as_object() else {
                continue;
            };
            if let Some(port) = prop_str(entry, &["port"]) {
                match self.port_addresses(&port) {
                    Some(found) => entries.push(found),
                    // A port the stack did not create.
                    None => entries.push((
                        DEFAULT_NETWORK.into(),
                        vec![self.allocate(DEFAULT_NETWORK)?.1],
                    )),
                }
                continue;
            }
            let network =
                prop_str(entry, &["network", "uuid"]).unwrap_or_else(|| DEFAULT_NETWORK.into());
            let address = match prop_str(entry, &["fixed_ip"]) {
                Some(ip) => self.explicit(&ip)?,
                None => {
                    let key = prop_str(entry, &["subnet"]).unwrap_or_else(|| network.clone());
                    self.allocate(&key)?.1
                }
            };
            entries.push((network, vec![address]));
        }
        if entries.is_empty() {
            entries.push((
                DEFAULT_NETWORK.into(),
                vec![self.allocate(DEFAULT_NETWORK)?.1],
            ));
        }
        let mut networks = Map::new();
        let mut addresses = Map::new();
        for (network, ips) in entries {
            let list = networks.entry(network.clone()).or_insert_with(|| json!([]));
            let detail = addresses.entry(network).or_insert_with(|| json!([]));
            for ip in ips {
                if let (Value::Array(l), Value::Array(d)) = (&mut *list, &mut *detail) {
                    d.push(json!({"addr": ip, "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac_for(&ip)}));
                    l.push(Value::String(ip));
                }
            }
        }
        Ok((Value::Object(networks), Value::Object(addresses)))
    }

    /// A port's `fixed_ips` from its properties.
    fn port_addresses_for(
        &mut self,
        p: &Map<String, Value>,
        network: &str,
    ) -> Result<Value, ProviderError> {
        let mut fixed = Vec::new();
        let requested = prop(p, &["fixed_ips"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for entry in requested.iter().filter_map(Value::as_object) {
            let subnet = prop_str(entry, &["subnet", "subnet_id"]);
            let (subnet_id, address) = match (prop_str(entry, &["ip_address"]), subnet) {
                (Some(ip), Some(subnet)) => (subnet, self.explicit(&ip)?),
                (Some(ip), None) => (network.to_owned(), self.explicit(&ip)?),
                (None, Some(subnet)) => self.allocate(&subnet)?,
                (None, None) => self.allocate(network)?,
            };
            fixed.push(json!({"subnet_id": subnet_id, "ip_address": address}));
        }
        if fixed.is_empty() {
            let (subnet_id, address) = self.allocate(network)?;
            fixed.push(json!({"subnet_id": subnet_id, "ip_address": address}));
        }
        Ok(Value::Array(fixed))
    }

    /// A simplified MIME multipart of the parts' configs.
    fn multipart(&self, p: &Map<String, Value>, id: &str) -> String {
        let boundary = format!("==============={}==", short(id));
        let mut out =
            format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n");
        let parts = prop(p, &["parts"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for part in parts.iter().filter_map(Value::as_object) {
            let config = prop_str(part, &["config"]).unwrap_or_default();
            let body = self
                .known
                .get(&config)
                .and_then(|(_, a)| a.get("config"))
                .map(|c| match c {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or(config);
            let subtype = prop_str(part, &["subtype"]).unwrap_or_else(|| "x-shellscript".into());
            out.push_str(&format!(
                "\n--{boundary}\nContent-Type: text/{subtype}; charset=\"us-ascii\"\nMIME-Version: 1.0\n\n{body}\n"
            ));
        }
        out.push_str(&format!("\n--{boundary}--\n"));
        out
    }
}

impl<I: Ipam> Provider for SimProvider<I> {
    fn supports(&self, type_name: &str) -> bool {
        SUPPORTED_TYPES.contains(&type_name)
    }

    fn new_id(&mut self) -> String {
        uuid::Uuid::new_v4().to_string()
    }

    fn apply(&mut self, request: &ResourceRequest<'_>) -> Result<Applied, ProviderError> {
        if let (Some(previous), true) = (request.previous, request.unchanged) {
            self.known.insert(
                previous.ref_id.clone(),
                (previous.type_name.clone(), previous.attributes.clone()),
            );
            return Ok(Applied {
                ref_id: previous.ref_id.clone(),
                attributes: previous.attributes.clone(),
                open_attributes: previous.open_attributes,
                ready_ms: previous.ready_ms,
            });
        }
        // A server whose update Heat cannot make in place is replaced: a
        // new server (new id, new boot, a new bootstrap signal), the old
        // one deleted once the new one is up.
        let replaced = request.type_name == SERVER
            && request.previous.is_some_and(|p| {
                // A server made before the digest existed is kept.
                p.attributes
                    .get(REPLACEMENT_DIGEST)
                    .and_then(Value::as_str)
                    // One stored before digests were shortened begins
                    // with the short one.
                    .is_some_and(|d| !d.starts_with(&replacement_digest(request.properties)))
            });
        let replacing = request.previous.filter(|_| replaced);
        let as_new;
        let request = if replaced {
            as_new = ResourceRequest {
                previous: None,
                unchanged: false,
                ..*request
            };
            &as_new
        } else {
            request
        };
        if let Some(fault) = self.fault(request) {
            return Err(fault);
        }
        let id = request
            .previous
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), |p| p.ref_id.clone());
        let (mut attributes, ready_ms, open_attributes) = self.build(request, &id)?;
        if request.type_name == SERVER {
            attributes.insert(
                REPLACEMENT_DIGEST.into(),
                replacement_digest(request.properties).into(),
            );
            let name = attributes
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if request.previous.is_none() {
                self.server_events.push(ServerEvent {
                    at_ms: request.start_ms,
                    action: "create".into(),
                    id: id.clone(),
                    name: name.clone(),
                    ready_ms: Some(ready_ms),
                    replaced_by: None,
                });
            }
            if let Some(old) = replacing {
                self.ipam
                    .release(&old.ref_id)
                    .map_err(|e| ProviderError::Invalid(e.to_string()))?;
                self.server_events.push(ServerEvent {
                    at_ms: ready_ms,
                    action: "delete".into(),
                    id: old.ref_id.clone(),
                    name,
                    ready_ms: None,
                    replaced_by: Some(id.clone()),
                });
            }
        }
        self.known.insert(
            id.clone(),
            (request.type_name.to_owned(), attributes.clone()),
        );
        Ok(Applied {
            ref_id: id,
            attributes,
            open_attributes,
            ready_ms,
        })
    }

    fn remove(&mut self, resource: &ResourceState) -> Result<(), magnum_hot::HotError> {
        if resource.type_name == SUBNET {
            self.ipam
                .remove(&resource.ref_id)
                .map_err(magnum_hot::HotError::new)?;
        }
        // A server, port, floating IP or load balancer gives its addresses back.
        self.ipam
            .release(&resource.ref_id)
            .map_err(magnum_hot::HotError::new)
    }
}
