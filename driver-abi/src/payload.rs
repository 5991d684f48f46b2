//! Domain payloads. They cross the ABI as JSON, so a field added in a later
//! minor is `#[serde(default)]` and an older peer simply ignores or defaults it.
//! Field names follow Magnum's API and DB columns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Free-form `key=value` labels, as in Magnum.
pub type Labels = BTreeMap<String, String>;

/// One `(server_type, os, coe)` tuple a driver provides.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Provides {
    pub server_type: String,
    pub os: String,
    pub coe: String,
}

impl Provides {
    pub fn new(server_type: &str, os: &str, coe: &str) -> Self {
        Self {
            server_type: server_type.into(),
            os: os.into(),
            coe: coe.into(),
        }
    }
}

impl std::fmt::Display for Provides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {}, {})", self.server_type, self.os, self.coe)
    }
}

/// Operation names, used both as capability strings and in errors.
pub mod capability {
    pub const VALIDATE_TEMPLATE: &str = "validate_template";
    pub const VALIDATE_CLUSTER: &str = "validate_cluster";
    pub const CREATE_CLUSTER: &str = "create_cluster";
    pub const UPDATE_CLUSTER: &str = "update_cluster";
    pub const RESIZE_CLUSTER: &str = "resize_cluster";
    pub const UPGRADE_CLUSTER: &str = "upgrade_cluster";
    pub const DELETE_CLUSTER: &str = "delete_cluster";
    pub const CREATE_NODEGROUP: &str = "create_nodegroup";
    pub const UPDATE_NODEGROUP: &str = "update_nodegroup";
    pub const DELETE_NODEGROUP: &str = "delete_nodegroup";
    pub const NODE_TEMPLATE: &str = "node_template";
    pub const NETWORK_DRIVER: &str = "network_driver";
    pub const VOLUME_DRIVER: &str = "volume_driver";
    pub const MAP_STATUS: &str = "map_status";
    /// Host-side features a driver can take part in (issue: certificates).
    pub const ROTATE_CA_CERTIFICATE: &str = "rotate_ca_certificate";
    pub const ROTATE_CREDENTIAL: &str = "rotate_credential";

    /// Every operation of ABI 1.0, in call order for a conformance run.
    pub const ABI_1_0_OPERATIONS: &[&str] = &[
        VALIDATE_TEMPLATE,
        VALIDATE_CLUSTER,
        NODE_TEMPLATE,
        NETWORK_DRIVER,
        VOLUME_DRIVER,
        CREATE_CLUSTER,
        UPDATE_CLUSTER,
        RESIZE_CLUSTER,
        UPGRADE_CLUSTER,
        CREATE_NODEGROUP,
        UPDATE_NODEGROUP,
        DELETE_NODEGROUP,
        DELETE_CLUSTER,
        MAP_STATUS,
    ];
}

/// The value type of a label, for validation and documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelType {
    #[default]
    String,
    Integer,
    Boolean,
    /// A version such as `v1.27.3` (leading `v` optional).
    Semver,
    /// An IPv4 network such as `10.100.0.0/16`.
    Cidr,
}

/// One label a driver understands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LabelSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: LabelType,
    pub default: Option<String>,
    /// Empty means any value of `kind`.
    pub allowed: Vec<String>,
    pub description: String,
}

/// A named network or volume driver offered by a COE driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubDriverInfo {
    pub name: String,
    /// The driver used when the template names none.
    pub default: bool,
    /// COEs (from `provides`) it applies to; empty means all.
    pub coes: Vec<String>,
    /// Labels this sub-driver reads.
    pub labels: Vec<String>,
    pub description: String,
}

/// Static description of a driver, read at registration and load.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriverInfo {
    /// The driver key, e.g. `k8s_fedora_atomic_v1`.
    pub name: String,
    /// The driver's own version (not the ABI's).
    pub version: String,
    pub description: String,
    pub provides: Vec<Provides>,
    /// Operation names from [`capability`] this driver implements.
    pub capabilities: Vec<String>,
    pub network_drivers: Vec<SubDriverInfo>,
    pub volume_drivers: Vec<SubDriverInfo>,
    pub labels: Vec<LabelSpec>,
    /// Node template roles, e.g. `master`, `worker`.
    pub node_roles: Vec<String>,
    /// Where the driver's main template lives inside the driver (for `-p`).
    pub template_path: Option<String>,
    /// A beta driver must be enabled explicitly by the operator.
    pub beta: bool,
}

impl DriverInfo {
    pub fn supports(&self, operation: &str) -> bool {
        self.capabilities.iter().any(|c| c == operation)
    }
}

/// A cluster template as the driver sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterTemplate {
    pub uuid: String,
    pub name: String,
    pub coe: String,
    pub server_type: String,
    pub cluster_distro: String,
    pub image_id: String,
    pub flavor_id: Option<String>,
    pub master_flavor_id: Option<String>,
    pub keypair_id: Option<String>,
    pub external_network_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub network_driver: Option<String>,
    pub volume_driver: Option<String>,
    pub docker_volume_size: Option<i64>,
    pub docker_storage_driver: Option<String>,
    pub dns_nameserver: Option<String>,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub labels: Labels,
    pub tls_disabled: bool,
    pub public: bool,
    pub registry_enabled: bool,
    pub master_lb_enabled: bool,
    pub floating_ip_enabled: bool,
    pub insecure_registry: Option<String>,
    pub driver: Option<String>,
}

/// A cluster as the driver sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cluster {
    pub uuid: String,
    pub name: String,
    pub project_id: String,
    pub keypair: Option<String>,
    pub master_count: i64,
    pub node_count: i64,
    pub create_timeout: Option<i64>,
    pub discovery_url: Option<String>,
    pub docker_volume_size: Option<i64>,
    pub labels: Labels,
    pub master_flavor_id: Option<String>,
    pub flavor_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub floating_ip_enabled: Option<bool>,
    pub master_lb_enabled: Option<bool>,
    pub stack_id: Option<String>,
    pub status: String,
    pub api_address: Option<String>,
    pub coe_version: Option<String>,
    pub container_version: Option<String>,
}

/// A nodegroup as the driver sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeGroup {
    pub uuid: String,
    pub name: String,
    /// `master`, `worker` or a user-chosen role.
    pub role: String,
    pub is_default: bool,
    pub node_count: i64,
    pub min_node_count: i64,
    pub max_node_count: Option<i64>,
    pub flavor_id: Option<String>,
    pub image_id: Option<String>,
    pub docker_volume_size: Option<i64>,
    pub labels: Labels,
    pub node_addresses: Vec<String>,
    pub stack_id: Option<String>,
    pub status: String,
    /// Since 1.1: labels the nodes of this group carry in the COE (Kubernetes
    /// node labels), as the user set them. The driver judges which keys its
    /// COE lets a node set.
    pub node_labels: Labels,
    /// Since 1.1: taints of this group's nodes, as the user set them.
    pub node_taints: Vec<Taint>,
}

/// Since 1.1: a node taint as the API takes it (`key`, optional `value`,
/// `effect`). The driver judges the effect against its COE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Taint {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

/// What the host knows that nodes need (URLs, credentials). Filled by the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostContext {
    /// The magnum API URL nodes call for CA and CSR signing.
    pub magnum_url: Option<String>,
    /// Keystone v3 URL, `/v3` included.
    pub auth_url: Option<String>,
    pub verify_ca: bool,
    /// Since 1.1: the PEM bundle of the CAs the cloud's endpoints (Keystone,
    /// the magnum API, Heat) are signed by, for nodes to trust;
    /// `[drivers] openstack_ca_file`. `None`: the nodes' system trust store.
    pub openstack_ca: Option<String>,
    /// Host-supplied parameters passed through unchanged (trust, credentials;
    /// since 1.2 the application credential, see `Validation`).
    pub extra: Map<String, Value>,
}

/// Input of template validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TemplateRequest {
    pub template: ClusterTemplate,
}

/// Input of cluster validation and of cluster create/update/delete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterRequest {
    pub template: ClusterTemplate,
    pub cluster: Cluster,
    pub nodegroups: Vec<NodeGroup>,
    pub context: HostContext,
}

/// Input of a resize.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResizeRequest {
    #[serde(flatten)]
    pub base: ClusterRequest,
    /// The nodegroup being resized (uuid).
    pub nodegroup: String,
    pub node_count: i64,
    pub nodes_to_remove: Vec<String>,
}

/// Input of an upgrade.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpgradeRequest {
    #[serde(flatten)]
    pub base: ClusterRequest,
    /// The template to upgrade to.
    pub new_template: ClusterTemplate,
    pub nodegroup: String,
    pub max_batch_size: i64,
}

/// Input of a nodegroup create/update/delete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeGroupRequest {
    #[serde(flatten)]
    pub base: ClusterRequest,
    pub nodegroup: NodeGroup,
}

/// Input of a node-template request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeTemplateRequest {
    pub role: String,
    #[serde(flatten)]
    pub base: ClusterRequest,
}

/// A nested template for one node role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeTemplate {
    pub role: String,
    /// The file name the cluster template refers to it by.
    pub file_name: String,
    /// HOT text (YAML or JSON).
    pub template: String,
}

/// Input of a network- or volume-driver configuration request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubDriverRequest {
    /// The sub-driver chosen (None = the default).
    pub name: Option<String>,
    pub coe: String,
    pub labels: Labels,
}

/// A sub-driver's resolved configuration: the parameters and files it adds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubDriverConfig {
    pub name: String,
    pub parameters: Map<String, Value>,
    pub files: BTreeMap<String, String>,
}

/// Outcome of a validation: OK, possibly with warnings for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Validation {
    pub warnings: Vec<String>,
    /// Since 1.2, `validate_cluster` only: this cluster's nodes need an
    /// OpenStack credential (a cloud provider, a volume driver). The host
    /// then creates a Keystone application credential for the cluster and
    /// passes it in `HostContext.extra` as `openstack_app_cred_id` and
    /// `openstack_app_cred_secret`; without Keystone there is none.
    pub cloud_credential: bool,
}

/// What one stack operation does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StackAction {
    #[default]
    Create,
    Update,
    Delete,
}

/// Which row a stack belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StackTarget {
    /// The nodegroup uuid whose stack this is; None for the cluster stack.
    pub nodegroup: Option<String>,
}

/// One step of a plan, for the orchestrator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StackOperation {
    pub action: StackAction,
    pub target: StackTarget,
    pub stack_name: String,
    /// Set for update and delete.
    pub stack_id: Option<String>,
    /// Key in `files` of the top-level template (create; update unless `existing`).
    pub template: String,
    /// Every template file, nested node templates included, as HOT text.
    pub files: BTreeMap<String, String>,
    /// Heat environment (`resource_registry`, `parameter_defaults`).
    pub environment: Map<String, Value>,
    pub parameters: Map<String, Value>,
    /// Reuse the stack's stored template (Heat `existing=True`).
    pub existing: bool,
    pub disable_rollback: bool,
    pub timeout_mins: Option<i64>,
}

/// What a driver asks the orchestrator to do, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StackPlan {
    pub operations: Vec<StackOperation>,
}

/// A stack as the orchestrator last saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StackSnapshot {
    pub target: StackTarget,
    pub stack_id: String,
    pub status: String,
    pub status_reason: String,
    pub outputs: Map<String, Value>,
    pub parameters: Map<String, Value>,
}

/// Input of a status mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusRequest {
    #[serde(flatten)]
    pub base: ClusterRequest,
    pub stacks: Vec<StackSnapshot>,
}

/// Cluster fields the host should set (None = leave unchanged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterUpdate {
    pub status: Option<String>,
    pub status_reason: Option<String>,
    pub api_address: Option<String>,
    pub coe_version: Option<String>,
    pub container_version: Option<String>,
    pub discovery_url: Option<String>,
}

/// Nodegroup fields the host should set (None = leave unchanged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeGroupUpdate {
    pub uuid: String,
    pub status: Option<String>,
    pub status_reason: Option<String>,
    pub node_addresses: Option<Vec<String>>,
    pub node_count: Option<i64>,
}

/// Output of a status mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusUpdate {
    pub cluster: ClusterUpdate,
    pub nodegroups: Vec<NodeGroupUpdate>,
}
