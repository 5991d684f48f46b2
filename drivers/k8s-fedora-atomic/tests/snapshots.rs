//! Snapshots of `k8s_fedora_atomic_v1`'s plans for representative inputs
//! and of its status mapping. Inputs are fixed (no random uuids), so the
//! snapshots need no redactions. Review changes with `cargo insta review`.

use magnum_driver_testkit as support;

use magnum_driver_k8s_fedora_atomic::K8sFedoraAtomicDriver;
use magnum_driver_sdk::{
    serde_json::{json, Map},
    Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig, HostContext,
    NodeGroupRequest, StackPlan, StatusRequest,
};
use support::{default_nodegroups, lint, nodegroup, plan_snapshot};

const EXTRA: &str = "bbbbbbbb-0000-0000-0000-000000000003";

fn driver() -> K8sFedoraAtomicDriver {
    K8sFedoraAtomicDriver::new(&DriverConfig::new()).unwrap()
}

/// The driver of a deployment that lets nodes hold the user's trust, which
/// the cloud provider (and so cinder volumes) needs.
fn trusted_driver() -> K8sFedoraAtomicDriver {
    let config = json!({"cluster_user_trust": true});
    K8sFedoraAtomicDriver::new(config.as_object().unwrap()).unwrap()
}

fn request() -> ClusterRequest {
    let mut extra = Map::new();
    extra.insert("trust_id".into(), "t-123".into());
    extra.insert("ca_rotation_id".into(), "rotation-0".into());
    ClusterRequest {
        template: ClusterTemplate {
            uuid: "0b5e6a2c-1111-4a4a-9d9d-222233334444".into(),
            name: "k8s-atomic".into(),
            coe: "kubernetes".into(),
            server_type: "vm".into(),
            cluster_distro: "fedora-atomic".into(),
            image_id: "fedora-atomic-27".into(),
            flavor_id: Some("m1.medium".into()),
            master_flavor_id: Some("m1.large".into()),
            keypair_id: Some("ops".into()),
            external_network_id: Some("public".into()),
            floating_ip_enabled: true,
            ..Default::default()
        },
        cluster: Cluster {
            uuid: "3f2a9c1e-77aa-4b0e-9d1f-0123456789ab".into(),
            name: "prod_k8s".into(),
            project_id: "p-1".into(),
            master_count: 1,
            node_count: 2,
            create_timeout: Some(60),
            discovery_url: Some("https://discovery.etcd.io/0123456789abcdef".into()),
            ..Default::default()
        },
        nodegroups: default_nodegroups(2),
        context: HostContext {
            magnum_url: Some("http://magnum:9511/v1".into()),
            auth_url: Some("http://keystone:5000/v3".into()),
            verify_ca: true,
            extra,
            openstack_ca: None,
        },
    }
}

fn create(driver: &K8sFedoraAtomicDriver, req: &ClusterRequest) -> StackPlan {
    let plan = driver.create_cluster(req).unwrap();
    lint(&plan);
    plan
}

#[test]
fn plan_with_defaults() {
    insta::assert_json_snapshot!(plan_snapshot(&create(&driver(), &request())));
}

#[test]
fn plan_with_tls_disabled() {
    let mut req = request();
    req.template.tls_disabled = true;
    insta::assert_json_snapshot!(plan_snapshot(&create(&driver(), &req)));
}

#[test]
fn plan_with_a_master_load_balancer_and_three_masters() {
    let mut req = request();
    req.template.master_lb_enabled = true;
    req.cluster.master_count = 3;
    req.nodegroups[0].node_count = 3;
    insta::assert_json_snapshot!(plan_snapshot(&create(&driver(), &req)));
}

#[test]
fn plan_with_calico() {
    let mut req = request();
    req.template.network_driver = Some("calico".into());
    let labels = [
        ("calico_ipv4pool", "10.200.0.0/16"),
        ("calico_ipv4pool_ipip", "CrossSubnet"),
    ];
    for (name, value) in labels {
        req.template.labels.insert(name.into(), value.into());
    }
    insta::assert_json_snapshot!(plan_snapshot(&create(&driver(), &req)));
}

#[test]
fn plan_with_volumes() {
    let mut req = request();
    req.template.volume_driver = Some("cinder".into());
    req.template.docker_volume_size = Some(20);
    let labels = [
        ("cloud_provider_enabled", "true"),
        ("etcd_volume_size", "5"),
        ("docker_volume_type", "ssd"),
    ];
    for (name, value) in labels {
        req.template.labels.insert(name.into(), value.into());
    }
    insta::assert_json_snapshot!(plan_snapshot(&create(&trusted_driver(), &req)));
}

/// Every node boots from a Cinder volume made from the image.
#[test]
fn plan_with_boot_volumes() {
    let mut req = request();
    let labels = [("boot_volume_size", "20"), ("boot_volume_type", "ssd")];
    for (name, value) in labels {
        req.template.labels.insert(name.into(), value.into());
    }
    insta::assert_json_snapshot!(plan_snapshot(&create(&driver(), &req)));
}

#[test]
fn plan_of_an_empty_nodegroup() {
    let mut base = request();
    base.cluster.stack_id = Some("stack-1".into());
    base.cluster.api_address = Some("https://172.24.4.10:6443".into());
    let req = NodeGroupRequest {
        base,
        nodegroup: nodegroup(EXTRA, "spare", "worker", false, 0),
    };
    let plan = driver().create_nodegroup(&req).unwrap();
    lint(&plan);
    insta::assert_json_snapshot!(plan_snapshot(&plan));
}

#[test]
fn status_of_a_created_cluster_and_a_nodegroup_in_progress() {
    let mut base = request();
    base.cluster.stack_id = Some("stack-1".into());
    let mut spare = nodegroup(EXTRA, "spare", "worker", false, 1);
    spare.stack_id = Some("stack-ng".into());
    base.nodegroups.push(spare);
    let cluster = support::cluster_stack(
        "CREATE_COMPLETE",
        "Stack CREATE completed successfully",
        json!({
            "api_address": "172.24.4.10",
            "kube_masters": ["172.24.4.10"],
            "kube_masters_private": ["10.0.0.5"],
            "kube_minions": ["172.24.4.11", "172.24.4.12"],
            "kube_minions_private": ["10.0.0.6", "10.0.0.7"],
        }),
        json!({"number_of_masters": "1", "number_of_minions": "2", "kube_tag": "v1.27.3"}),
    );
    let mut group = support::cluster_stack(
        "UPDATE_IN_PROGRESS",
        "Stack UPDATE started",
        json!({"kube_minions": ["172.24.4.20"], "kube_minions_private": ["10.0.0.20"]}),
        json!({"number_of_minions": "1"}),
    );
    group.stack_id = "stack-ng".into();
    group.target.nodegroup = Some(EXTRA.into());
    let update = driver()
        .map_status(&StatusRequest {
            base,
            stacks: vec![cluster, group],
        })
        .unwrap();
    insta::assert_json_snapshot!(update);
}

#[test]
fn status_without_tls_or_floating_ips() {
    let mut base = request();
    base.template.tls_disabled = true;
    base.template.floating_ip_enabled = false;
    let cluster = support::cluster_stack(
        "UPDATE_FAILED",
        "Resource UPDATE failed: kube_minions",
        json!({
            "api_address": "10.0.0.5",
            "kube_masters": ["10.0.0.5"],
            "kube_masters_private": ["10.0.0.5"],
            "kube_minions": ["10.0.0.6"],
            "kube_minions_private": ["10.0.0.6"],
        }),
        json!({"number_of_masters": "1", "number_of_minions": "1"}),
    );
    let update = driver()
        .map_status(&StatusRequest {
            base,
            stacks: vec![cluster],
        })
        .unwrap();
    insta::assert_json_snapshot!(update);
}
