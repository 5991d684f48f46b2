//! What the API and the conductor share about the domain, apart from
//! HTTP: the status sets of upstream's state machine (§2.3), the label
//! codec of the JSON columns, and the rows turned into the driver payloads
//! every operation hands a driver.

use std::collections::BTreeMap;

use magnum_driver_abi::payload;
use serde_json::Value;

use crate::{
    app::AppState,
    catalog::CloudCatalog,
    db::models::{Cluster, ClusterTemplate, NodeGroup},
    status::Status,
};

/// Statuses from which update, upgrade and CA rotation may start.
pub const UPDATE_ALLOWED: &[Status] = Status::UPDATE_ALLOWED;

/// Resize also retries from a failed or running update (upstream, for autoscalers).
pub fn resize_allowed(status: Status) -> bool {
    status.resize_allowed()
}

pub const FAILED: &[Status] = Status::FAILED;

/// A JSON column holding an object of strings.
pub fn labels_of(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

/// The sums over nodegroups upstream computes for the cluster object.
pub struct Counts {
    pub node_count: i64,
    pub master_count: i64,
    pub node_addresses: Vec<String>,
    pub master_addresses: Vec<String>,
}

pub fn counts<'a>(groups: impl IntoIterator<Item = &'a NodeGroup>) -> Counts {
    let mut c = Counts {
        node_count: 0,
        master_count: 0,
        node_addresses: Vec::new(),
        master_addresses: Vec::new(),
    };
    for g in groups {
        let addrs: Vec<String> = serde_json::from_str(&g.node_addresses).unwrap_or_default();
        if g.role == "master" {
            c.master_count += i64::from(g.node_count);
            c.master_addresses.extend(addrs);
        } else {
            c.node_count += i64::from(g.node_count);
            c.node_addresses.extend(addrs);
        }
    }
    c
}

/// The driver payload for a template row; a fixed network without its
/// subnet gets the network's first subnet from the catalog, which a pure
/// driver cannot look up.
pub fn template_payload(state: &AppState, t: &ClusterTemplate) -> payload::ClusterTemplate {
    let mut fixed_subnet = t.fixed_subnet.clone();
    // Only the embedded catalog answers without I/O; with OpenStack the
    // driver's template picks the network's subnet itself.
    if let (Some(net), None, CloudCatalog::Embedded(catalog)) =
        (&t.fixed_network, &fixed_subnet, &state.catalog)
    {
        fixed_subnet = catalog
            .fixed_network(net)
            .ok()
            .and_then(|n| n.subnets.first())
            .map(|s| s.name.clone());
    }
    payload::ClusterTemplate {
        uuid: t.uuid.clone(),
        name: t.name.clone(),
        coe: t.coe.clone(),
        server_type: t.server_type.clone(),
        cluster_distro: t.cluster_distro.clone().unwrap_or_default(),
        image_id: t.image_id.clone(),
        flavor_id: t.flavor_id.clone(),
        master_flavor_id: t.master_flavor_id.clone(),
        keypair_id: t.keypair_id.clone(),
        external_network_id: t.external_network_id.clone(),
        fixed_network: t.fixed_network.clone(),
        fixed_subnet,
        network_driver: t.network_driver.clone(),
        volume_driver: t.volume_driver.clone(),
        docker_volume_size: t.docker_volume_size.map(i64::from),
        docker_storage_driver: t.docker_storage_driver.clone(),
        dns_nameserver: t.dns_nameserver.clone(),
        http_proxy: t.http_proxy.clone(),
        https_proxy: t.https_proxy.clone(),
        no_proxy: t.no_proxy.clone(),
        labels: labels_of(&t.labels),
        tls_disabled: t.tls_disabled,
        public: t.public,
        registry_enabled: t.registry_enabled,
        master_lb_enabled: t.master_lb_enabled,
        floating_ip_enabled: t.floating_ip_enabled,
        insecure_registry: t.insecure_registry.clone(),
        driver: t.driver.clone(),
    }
}

/// Labels of a template as a map (for cluster inheritance).
pub fn template_labels(t: &ClusterTemplate) -> BTreeMap<String, String> {
    labels_of(&t.labels)
}

pub fn nodegroup_payload(g: &NodeGroup) -> payload::NodeGroup {
    payload::NodeGroup {
        uuid: g.uuid.clone(),
        name: g.name.clone(),
        role: g.role.clone(),
        is_default: g.is_default,
        node_count: g.node_count.into(),
        min_node_count: g.min_node_count.into(),
        max_node_count: g.max_node_count.map(i64::from),
        flavor_id: g.flavor_id.clone(),
        image_id: g.image_id.clone(),
        docker_volume_size: g.docker_volume_size.map(i64::from),
        labels: labels_of(&g.labels),
        node_addresses: serde_json::from_str(&g.node_addresses).unwrap_or_default(),
        stack_id: g.stack_id.clone(),
        status: g.status.map(|s| s.to_string()).unwrap_or_default(),
        node_labels: labels_of(&g.node_labels),
        node_taints: serde_json::from_str(&g.node_taints).unwrap_or_default(),
    }
}

/// The request every cluster operation hands the driver.
pub fn request(
    state: &AppState,
    t: &ClusterTemplate,
    c: &Cluster,
    groups: &[NodeGroup],
) -> payload::ClusterRequest {
    let n = counts(groups);
    payload::ClusterRequest {
        template: template_payload(state, t),
        cluster: payload::Cluster {
            uuid: c.uuid.clone(),
            name: c.name.clone(),
            project_id: c.project_id.clone(),
            keypair: c.keypair.clone(),
            master_count: n.master_count,
            node_count: n.node_count,
            // Upstream hands Heat `create_timeout or 60`
            // (magnum/drivers/heat/driver.py): a stored 0 is not "no time".
            create_timeout: c
                .create_timeout
                .map(|m| if m > 0 { m } else { 60 })
                .map(i64::from),
            discovery_url: c.discovery_url.clone(),
            docker_volume_size: c.docker_volume_size.map(i64::from),
            labels: labels_of(&c.labels),
            master_flavor_id: c.master_flavor_id.clone(),
            flavor_id: c.flavor_id.clone(),
            fixed_network: c.fixed_network.clone(),
            fixed_subnet: c.fixed_subnet.clone(),
            floating_ip_enabled: Some(c.floating_ip_enabled),
            master_lb_enabled: Some(c.master_lb_enabled),
            stack_id: c.stack_id.clone(),
            status: c.status.to_string(),
            api_address: c.api_address.clone(),
            coe_version: c.coe_version.clone(),
            container_version: c.container_version.clone(),
        },
        nodegroups: groups.iter().map(nodegroup_payload).collect(),
        context: state.host_context(),
    }
}

/// Labels the host itself reads, whatever the driver: the default worker
/// group's autoscaling bounds (upstream's cluster create,
/// magnum/api/controllers/v1/cluster.py).
pub const HOST_LABELS: &[&str] = &["min_node_count", "max_node_count"];

/// The names of `labels` that change nothing: neither `info` (the driver's
/// labels and its network and volume drivers' labels) nor the host reads
/// them. Upstream accepts any label and silently ignores the unknown ones;
/// we accept them too, and say which (issue 15, defect 9).
pub fn ignored_labels(
    info: &magnum_driver_abi::DriverInfo,
    labels: &BTreeMap<String, String>,
) -> Vec<String> {
    let sub_drivers = info.network_drivers.iter().chain(&info.volume_drivers);
    labels
        .keys()
        .filter(|name| {
            !HOST_LABELS.contains(&name.as_str())
                && !info.labels.iter().any(|s| &s.name == *name)
                && !sub_drivers.clone().any(|d| d.labels.contains(name))
        })
        .cloned()
        .collect()
}
