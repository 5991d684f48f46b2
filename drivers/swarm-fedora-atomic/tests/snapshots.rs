//! Snapshots of `swarm_fedora_atomic_v1`'s plans for representative inputs
//! (standalone Swarm and swarm mode) and of its status mapping. Inputs are
//! fixed, so the snapshots need no redactions. Review changes with
//! `cargo insta review`.

// The driver test kit (driver-testkit/).
use magnum_driver_testkit as support;

use magnum_driver_sdk::{
    serde_json::{json, Map},
    Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig, HostContext, StatusRequest,
};
use magnum_driver_swarm_fedora_atomic::SwarmFedoraAtomicDriver;
use support::{cluster_stack, default_nodegroups, lint, plan_snapshot};

fn driver() -> SwarmFedoraAtomicDriver {
    SwarmFedoraAtomicDriver::new(&DriverConfig::new()).unwrap()
}

fn request(coe: &str) -> ClusterRequest {
    let mut extra = Map::new();
    extra.insert("trustee_user_id".into(), "u-1".into());
    extra.insert("cluster_credential".into(), "credential-0".into());
    ClusterRequest {
        template: ClusterTemplate {
            name: "swarm".into(),
            coe: coe.into(),
            server_type: "vm".into(),
            cluster_distro: "fedora-atomic".into(),
            image_id: "fedora-atomic-27".into(),
            flavor_id: Some("m1.small".into()),
            keypair_id: Some("ops".into()),
            external_network_id: Some("public".into()),
            floating_ip_enabled: true,
            ..Default::default()
        },
        cluster: Cluster {
            uuid: "5d12f6fd-a196-4bf0-ae4c-1f639a523a52".into(),
            name: "swarm.test".into(),
            master_count: 1,
            node_count: 2,
            create_timeout: Some(30),
            discovery_url: Some("https://discovery.etcd.io/abc".into()),
            ..Default::default()
        },
        nodegroups: default_nodegroups(2),
        context: HostContext {
            magnum_url: Some("http://magnum:9511/v1".into()),
            verify_ca: true,
            extra,
            ..Default::default()
        },
    }
}

fn create(req: &ClusterRequest) -> magnum_driver_sdk::serde_json::Value {
    let plan = driver().create_cluster(req).unwrap();
    lint(&plan);
    plan_snapshot(&plan)
}

#[test]
fn plan_with_defaults() {
    insta::assert_json_snapshot!(create(&request("swarm")));
}

#[test]
fn plan_of_swarm_mode_with_defaults() {
    insta::assert_json_snapshot!(create(&request("swarm-mode")));
}

#[test]
fn plan_with_tls_disabled() {
    let mut req = request("swarm");
    req.template.tls_disabled = true;
    insta::assert_json_snapshot!(create(&req));
}

#[test]
fn plan_with_a_master_load_balancer_and_three_masters() {
    let mut req = request("swarm-mode");
    req.template.master_lb_enabled = true;
    req.cluster.master_count = 3;
    req.nodegroups[0].node_count = 3;
    insta::assert_json_snapshot!(create(&req));
}

#[test]
fn plan_with_flannel() {
    let mut req = request("swarm");
    req.template.network_driver = Some("flannel".into());
    let labels = [
        ("flannel_network_cidr", "10.200.0.0/16"),
        ("flannel_backend", "vxlan"),
        ("flannel_network_subnetlen", "26"),
        ("swarm_strategy", "binpack"),
    ];
    for (name, value) in labels {
        req.template.labels.insert(name.into(), value.into());
    }
    insta::assert_json_snapshot!(create(&req));
}

#[test]
fn plan_with_volumes() {
    // Docker's volumes on Cinder; rexray is refused (no credential it can use).
    let mut req = request("swarm");
    req.template.docker_volume_size = Some(20);
    let labels = [("docker_volume_type", "ssd")];
    for (name, value) in labels {
        req.template.labels.insert(name.into(), value.into());
    }
    insta::assert_json_snapshot!(create(&req));
}

/// Every node boots from a Cinder volume made from the image.
#[test]
fn plan_with_boot_volumes() {
    let mut req = request("swarm-mode");
    let labels = [("boot_volume_size", "20"), ("boot_volume_type", "ssd")];
    for (name, value) in labels {
        req.template.labels.insert(name.into(), value.into());
    }
    insta::assert_json_snapshot!(create(&req));
}

/// Swarm has no additional nodegroups (as upstream): the empty group is the
/// default worker group at zero nodes.
#[test]
fn plan_with_no_nodes() {
    let mut req = request("swarm");
    req.cluster.node_count = 0;
    req.nodegroups = default_nodegroups(0);
    insta::assert_json_snapshot!(create(&req));
}

fn stack() -> magnum_driver_sdk::StackSnapshot {
    let mut stack = cluster_stack(
        "UPDATE_COMPLETE",
        "Stack UPDATE completed successfully",
        json!({
            "api_address": "172.24.4.20",
            "swarm_masters": ["172.24.4.20"],
            "swarm_masters_private": ["10.0.0.4"],
            "swarm_nodes": ["172.24.4.21", "172.24.4.22"],
            "swarm_nodes_private": ["10.0.0.5", "10.0.0.6"],
            "discovery_url": "https://discovery.etcd.io/abc",
        }),
        json!({"number_of_masters": "1", "number_of_nodes": "2", "swarm_version": "1.2.5"}),
    );
    stack.stack_id = "stack-1".into();
    stack
}

#[test]
fn status_of_standalone_swarm() {
    let update = driver()
        .map_status(&StatusRequest {
            base: request("swarm"),
            stacks: vec![stack()],
        })
        .unwrap();
    insta::assert_json_snapshot!(update);
}

#[test]
fn status_of_swarm_mode_without_floating_ips() {
    let mut base = request("swarm-mode");
    base.template.floating_ip_enabled = false;
    let update = driver()
        .map_status(&StatusRequest {
            base,
            stacks: vec![stack()],
        })
        .unwrap();
    insta::assert_json_snapshot!(update);
}
