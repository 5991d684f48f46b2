//! Snapshots of `mesos_ubuntu_v1`'s plans for representative inputs and of
//! its status mapping. Inputs are fixed, so the snapshots need no
//! redactions. Review changes with `cargo insta review`.

// The driver test kit (driver-testkit/).
use magnum_driver_testkit as support;

use magnum_driver_mesos_ubuntu::MesosUbuntuDriver;
use magnum_driver_sdk::{
    serde_json::{json, Value},
    Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig, StatusRequest,
};
use support::{cluster_stack, default_nodegroups, lint, plan_snapshot};

fn driver() -> MesosUbuntuDriver {
    MesosUbuntuDriver::new(&DriverConfig::new()).unwrap()
}

fn request() -> ClusterRequest {
    ClusterRequest {
        template: ClusterTemplate {
            name: "mesos".into(),
            coe: "mesos".into(),
            server_type: "vm".into(),
            cluster_distro: "ubuntu".into(),
            image_id: "ubuntu-mesos".into(),
            flavor_id: Some("m1.small".into()),
            external_network_id: Some("public".into()),
            floating_ip_enabled: true,
            // Mesos has no TLS (as upstream); say so, as templates for it do.
            tls_disabled: true,
            ..Default::default()
        },
        cluster: Cluster {
            uuid: "9e0c1e5a-7c55-4a8b-a1d3-5b0d8d6a9c10".into(),
            name: "marathon".into(),
            project_id: "p-1".into(),
            master_count: 1,
            node_count: 3,
            create_timeout: Some(60),
            ..Default::default()
        },
        nodegroups: default_nodegroups(3),
        ..Default::default()
    }
}

fn create(req: &ClusterRequest) -> Value {
    let plan = driver().create_cluster(req).unwrap();
    lint(&plan);
    plan_snapshot(&plan)
}

#[test]
fn plan_with_defaults() {
    insta::assert_json_snapshot!(create(&request()));
}

#[test]
fn plan_with_a_master_load_balancer_and_three_masters() {
    let mut req = request();
    req.template.master_lb_enabled = true;
    req.cluster.master_count = 3;
    req.nodegroups[0].node_count = 3;
    insta::assert_json_snapshot!(create(&req));
}

#[test]
fn plan_with_docker_isolation_and_image_providers() {
    let mut req = request();
    let labels = [
        ("mesos_slave_isolation", "filesystem/linux,docker/runtime"),
        ("mesos_slave_image_providers", "docker"),
        ("mesos_slave_work_dir", "/srv/mesos"),
        (
            "mesos_slave_executor_env_variables",
            r#"{"PATH": "/usr/bin"}"#,
        ),
    ];
    for (name, value) in labels {
        req.template.labels.insert(name.into(), value.into());
    }
    insta::assert_json_snapshot!(create(&req));
}

#[test]
fn plan_with_volumes() {
    // Docker's volumes on Cinder; rexray is refused (no credential it can use).
    let mut req = request();
    req.template.docker_volume_size = Some(25);
    insta::assert_json_snapshot!(create(&req));
}

/// Every node boots from a Cinder volume made from the image.
#[test]
fn plan_with_boot_volumes() {
    let mut req = request();
    let labels = [("boot_volume_size", "20"), ("boot_volume_type", "ssd")];
    for (name, value) in labels {
        req.template.labels.insert(name.into(), value.into());
    }
    insta::assert_json_snapshot!(create(&req));
}

/// Mesos has no additional nodegroups (as upstream): the empty group is the
/// default worker group at zero slaves.
#[test]
fn plan_with_no_slaves() {
    let mut req = request();
    req.cluster.node_count = 0;
    req.nodegroups = default_nodegroups(0);
    insta::assert_json_snapshot!(create(&req));
}

#[test]
fn status_of_a_failed_create() {
    let stack = cluster_stack(
        "CREATE_FAILED",
        "Resource CREATE failed: mesos_slaves",
        json!({
            "api_address": "172.24.4.30",
            "mesos_master": ["172.24.4.30"],
            "mesos_master_private": ["10.0.0.3"],
            "mesos_slaves": ["172.24.4.31", "172.24.4.32"],
            "mesos_slaves_private": ["10.0.0.4", "10.0.0.5"],
        }),
        json!({"number_of_masters": "1", "number_of_slaves": "2"}),
    );
    let update = driver()
        .map_status(&StatusRequest {
            base: request(),
            stacks: vec![stack],
        })
        .unwrap();
    insta::assert_json_snapshot!(update);
}

#[test]
fn status_without_floating_ips() {
    let mut base = request();
    base.template.floating_ip_enabled = false;
    let stack = cluster_stack(
        "CREATE_COMPLETE",
        "Stack CREATE completed successfully",
        json!({
            "api_address": "10.0.0.3",
            "mesos_master": ["10.0.0.3"],
            "mesos_master_private": ["10.0.0.3"],
            "mesos_slaves": ["10.0.0.4"],
            "mesos_slaves_private": ["10.0.0.4"],
        }),
        json!({"number_of_masters": "1", "number_of_slaves": "1"}),
    );
    let update = driver()
        .map_status(&StatusRequest {
            base,
            stacks: vec![stack],
        })
        .unwrap();
    insta::assert_json_snapshot!(update);
}
