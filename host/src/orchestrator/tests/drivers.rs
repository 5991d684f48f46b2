//! The bundled drivers' real plans through the local cloud: create, status
//! mapping, resize up and down (with nodes to remove), k8s nodegroups and
//! upgrade, delete.

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use magnum_driver_abi::{
    Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig, HostContext, NodeGroup,
    NodeGroupRequest, ResizeRequest, StackPlan, StackSnapshot, StatusRequest, StatusUpdate,
    UpgradeRequest,
};
use magnum_driver_k8s_fedora_atomic::K8sFedoraAtomicDriver;
use magnum_driver_mesos_ubuntu::MesosUbuntuDriver;
use magnum_driver_swarm_fedora_atomic::SwarmFedoraAtomicDriver;
use serde_json::{json, Map};

use crate::db::testing::{db_test, TestDatabase};
use crate::db::DbConnection;
use crate::orchestrator::{LocalCloud, LocalError};

const MASTERS: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const WORKERS: &str = "aaaaaaaa-0000-0000-0000-000000000002";
const EXTRA: &str = "bbbbbbbb-0000-0000-0000-000000000003";
const PROJECT: &str = "p-1";

fn at(seconds: i64) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 23)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .expect("a valid time")
        + TimeDelta::seconds(seconds)
}

fn nodegroup(uuid: &str, name: &str, role: &str, is_default: bool, count: i64) -> NodeGroup {
    NodeGroup {
        uuid: uuid.into(),
        name: name.into(),
        role: role.into(),
        is_default,
        node_count: count,
        min_node_count: 0,
        ..Default::default()
    }
}

fn request(coe: &str, distro: &str, name: &str, uuid: &str) -> ClusterRequest {
    let mut extra = Map::new();
    extra.insert("trust_id".into(), "t-123".into());
    ClusterRequest {
        template: ClusterTemplate {
            name: format!("{coe}-template"),
            coe: coe.into(),
            server_type: "vm".into(),
            cluster_distro: distro.into(),
            image_id: "image-1".into(),
            flavor_id: Some("m1.small".into()),
            master_flavor_id: Some("m1.medium".into()),
            keypair_id: Some("ops".into()),
            external_network_id: Some("public".into()),
            floating_ip_enabled: true,
            ..Default::default()
        },
        cluster: Cluster {
            uuid: uuid.into(),
            name: name.into(),
            project_id: PROJECT.into(),
            master_count: 1,
            node_count: 2,
            create_timeout: Some(60),
            discovery_url: Some("https://discovery.etcd.io/abc".into()),
            ..Default::default()
        },
        nodegroups: vec![
            nodegroup(MASTERS, "default-master", "master", true, 1),
            nodegroup(WORKERS, "default-worker", "worker", true, 2),
        ],
        context: HostContext {
            magnum_url: Some("http://magnum:9511/v1".into()),
            auth_url: Some("http://keystone:5000/v3".into()),
            verify_ca: true,
            openstack_ca: None,
            extra,
        },
    }
}

/// The drivers' templates name a group's first member `{get_attr: [group,
/// attr, 0]}`, which Heat evaluates as `[member[attr][0] for each member]`
/// (see `driver_templates_index_groups_as_heat_does`). This rewrites it to
/// Heat's form, `{get_attr: [group, resource.0.attr]}`, so that the rest of
/// the lifecycle can be checked; it changes nothing once the drivers do so.
fn first_member_fixed(mut plan: StackPlan) -> StackPlan {
    let pattern = regex::Regex::new(r"\{get_attr: \[(\w+), (\w+), 0\]\}").expect("regex");
    for operation in &mut plan.operations {
        for text in operation.files.values_mut() {
            *text = pattern
                .replace_all(text, "{get_attr: [$1, resource.0.$2]}")
                .into_owned();
        }
    }
    plan
}

fn uses_per_member_index(plan: &StackPlan) -> bool {
    let pattern = regex::Regex::new(r"\{get_attr: \[(\w+), (\w+), 0\]\}").expect("regex");
    plan.operations
        .iter()
        .any(|o| o.files.values().any(|t| pattern.is_match(t)))
}

/// Runs every operation of `plan` at `now`; the snapshots in order.
fn run(
    cloud: &LocalCloud,
    conn: &mut DbConnection,
    plan: StackPlan,
    now: NaiveDateTime,
) -> Vec<StackSnapshot> {
    plan.operations
        .iter()
        .map(|op| match cloud.execute(conn, PROJECT, op, now) {
            Ok(snapshot) => snapshot,
            Err(e) => panic!("{:?} of {} failed: {e}", op.action, op.stack_name),
        })
        .collect()
}

fn status<D: CoeDriver>(
    driver: &D,
    req: &ClusterRequest,
    stacks: Vec<StackSnapshot>,
) -> StatusUpdate {
    driver
        .map_status(&StatusRequest {
            base: req.clone(),
            stacks,
        })
        .expect("map_status")
}

fn addresses(update: &StatusUpdate, uuid: &str) -> Vec<String> {
    update
        .nodegroups
        .iter()
        .find(|g| g.uuid == uuid)
        .and_then(|g| g.node_addresses.clone())
        .unwrap_or_else(|| panic!("no addresses for {uuid}: {update:?}"))
}

fn count(update: &StatusUpdate, uuid: &str) -> Option<i64> {
    update
        .nodegroups
        .iter()
        .find(|g| g.uuid == uuid)
        .and_then(|g| g.node_count)
}

/// The id of the server of the worker group's member `index`.
fn worker_server(
    cloud: &LocalCloud,
    conn: &mut DbConnection,
    stack: &str,
    group: &str,
    index: u32,
    now: NaiveDateTime,
) -> String {
    let prefix = format!("{group}.{index}.");
    cloud
        .servers(conn, stack, now)
        .expect("servers")
        .into_iter()
        .find(|s| s.resource.starts_with(&prefix))
        .map(|s| s.id)
        .unwrap_or_else(|| panic!("no server {prefix}*"))
}

/// Create, resize up, resize down removing the first worker, delete: the
/// lifecycle every driver goes through. `group` is the worker
/// ResourceGroup's name; `api` the API address the driver should report.
#[allow(clippy::too_many_arguments)]
fn lifecycle<D: CoeDriver>(
    driver: &D,
    conn: &mut DbConnection,
    mut req: ClusterRequest,
    group: &str,
    api: &str,
) -> ClusterRequest {
    let cloud = LocalCloud::default();
    let plan = first_member_fixed(driver.create_cluster(&req).expect("create plan"));
    let created = run(&cloud, conn, plan, at(0));
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].status, "CREATE_IN_PROGRESS", "{:?}", created[0]);
    let id = created[0].stack_id.clone();
    req.cluster.stack_id = Some(id.clone());

    let midway = cloud.get(conn, &id, at(4)).unwrap();
    assert_eq!(
        status(driver, &req, vec![midway]).cluster.status.as_deref(),
        Some("CREATE_IN_PROGRESS")
    );
    let done = cloud.get(conn, &id, at(6)).unwrap();
    let update = status(driver, &req, vec![done.clone()]);
    assert_eq!(
        update.cluster.status.as_deref(),
        Some("CREATE_COMPLETE"),
        "{done:?}"
    );
    assert_eq!(update.cluster.api_address.as_deref(), Some(api));
    assert_eq!(addresses(&update, MASTERS), ["127.24.0.2"]);
    assert_eq!(addresses(&update, WORKERS), ["127.24.0.3", "127.24.0.4"]);
    assert_eq!(count(&update, MASTERS), Some(1));
    assert_eq!(count(&update, WORKERS), Some(2));
    req.cluster.api_address = update.cluster.api_address.clone();

    // Resize up: the new worker boots, the others stay as they were.
    let resize = |req: &ClusterRequest, node_count, nodes_to_remove: Vec<String>| {
        driver
            .resize_cluster(&ResizeRequest {
                base: req.clone(),
                nodegroup: WORKERS.into(),
                node_count,
                nodes_to_remove,
            })
            .expect("resize plan")
    };
    let updating = run(&cloud, conn, resize(&req, 3, Vec::new()), at(10));
    assert_eq!(updating[0].status, "UPDATE_IN_PROGRESS");
    let update = status(driver, &req, vec![cloud.get(conn, &id, at(13)).unwrap()]);
    assert_eq!(update.cluster.status.as_deref(), Some("UPDATE_COMPLETE"));
    assert_eq!(
        addresses(&update, WORKERS),
        ["127.24.0.3", "127.24.0.4", "127.24.0.5"]
    );
    assert_eq!(count(&update, WORKERS), Some(3));
    req.cluster.node_count = 3;
    req.nodegroups[1].node_count = 3;

    // Resize down removing the first worker (by its server id, as Magnum's
    // nodes_to_remove): the others keep their addresses.
    let first = worker_server(&cloud, conn, &id, group, 0, at(20));
    let done = run(&cloud, conn, resize(&req, 2, vec![first]), at(20));
    let update = status(driver, &req, done);
    assert_eq!(update.cluster.status.as_deref(), Some("UPDATE_COMPLETE"));
    assert_eq!(addresses(&update, WORKERS), ["127.24.0.4", "127.24.0.5"]);
    assert_eq!(count(&update, WORKERS), Some(2));
    req.cluster.node_count = 2;
    req.nodegroups[1].node_count = 2;
    req
}

fn delete<D: CoeDriver>(driver: &D, conn: &mut DbConnection, req: &ClusterRequest, stacks: usize) {
    let cloud = LocalCloud::default();
    let plan = driver.delete_cluster(req).expect("delete plan");
    assert_eq!(plan.operations.len(), stacks);
    let ids: Vec<String> = run(&cloud, conn, plan, at(100))
        .into_iter()
        .map(|s| {
            assert_eq!(s.status, "DELETE_IN_PROGRESS");
            s.stack_id
        })
        .collect();
    for id in ids {
        assert!(matches!(
            cloud.get(conn, &id, at(102)),
            Err(LocalError::NotFound(_))
        ));
    }
}

db_test!(
    k8s_clusters_live_and_die_in_the_local_cloud,
    |db: &TestDatabase| {
        let conn: &mut DbConnection = &mut db.conn();
        let driver = K8sFedoraAtomicDriver::new(&DriverConfig::new()).unwrap();
        let req = request(
            "kubernetes",
            "fedora-atomic",
            "prod_k8s",
            "3f2a9c1e-77aa-4b0e-9d1f-0123456789ab",
        );
        let mut req = lifecycle(
            &driver,
            conn,
            req,
            "kube_minions",
            "https://127.24.0.2:6443",
        );
        let cloud = LocalCloud::default();

        // An additional nodegroup: its own stack on the cluster's network.
        let mut extra = nodegroup(EXTRA, "gpu_nodes", "worker", false, 2);
        let plan = first_member_fixed(
            driver
                .create_nodegroup(&NodeGroupRequest {
                    base: req.clone(),
                    nodegroup: extra.clone(),
                })
                .expect("nodegroup plan"),
        );
        let created = run(&cloud, conn, plan, at(30));
        assert_eq!(created[0].target.nodegroup.as_deref(), Some(EXTRA));
        let stack = cloud.get(conn, &created[0].stack_id, at(33)).unwrap();
        assert_eq!(stack.status, "CREATE_COMPLETE", "{stack:?}");
        assert_eq!(stack.outputs["api_address"], json!(null));
        extra.stack_id = Some(stack.stack_id.clone());
        req.nodegroups.push(extra);
        let cluster = cloud
            .get(conn, req.cluster.stack_id.as_deref().unwrap(), at(33))
            .unwrap();
        let update = status(&driver, &req, vec![cluster, stack]);
        assert_eq!(addresses(&update, EXTRA), ["127.24.0.6", "127.24.0.7"]);
        assert_eq!(count(&update, EXTRA), Some(2));

        // Upgrade: the workers are replaced one at a time with the new
        // kube_tag; the master is not.
        let mut new_template = req.template.clone();
        new_template
            .labels
            .insert("kube_tag".into(), "v1.27.8".into());
        let plan = driver
            .upgrade_cluster(&UpgradeRequest {
                base: req.clone(),
                new_template,
                nodegroup: WORKERS.into(),
                max_batch_size: 1,
            })
            .expect("upgrade plan");
        let id = req.cluster.stack_id.clone().unwrap();
        run(&cloud, conn, plan, at(40));
        assert_eq!(
            cloud.get(conn, &id, at(42)).unwrap().status,
            "UPDATE_IN_PROGRESS"
        );
        let upgraded = cloud.get(conn, &id, at(46)).unwrap();
        assert_eq!(upgraded.status, "UPDATE_COMPLETE");
        let update = status(&driver, &req, vec![upgraded.clone()]);
        // The cluster's version is what its master reports: unchanged.
        assert_eq!(update.cluster.coe_version.as_deref(), Some("v1.27.3"));
        let workers = upgraded.outputs["worker_bootstrap_data"].to_string();
        assert_eq!(workers.matches("v1.27.8").count(), 2, "{workers}");
        // Replaced servers on the same ports: the same addresses.
        assert_eq!(addresses(&update, WORKERS), ["127.24.0.4", "127.24.0.5"]);

        delete(&driver, conn, &req, 2);
    }
);

db_test!(
    swarm_clusters_live_and_die_in_the_local_cloud,
    |db: &TestDatabase| {
        let conn: &mut DbConnection = &mut db.conn();
        let driver = SwarmFedoraAtomicDriver::new(&DriverConfig::new()).unwrap();
        let req = request(
            "swarm",
            "fedora-atomic",
            "swarm.test",
            "5d12f6fd-a196-4bf0-ae4c-1f639a523a52",
        );
        let req = lifecycle(&driver, conn, req, "swarm_nodes", "tcp://127.24.0.2:2376");
        delete(&driver, conn, &req, 1);
    }
);

db_test!(
    mesos_clusters_live_and_die_in_the_local_cloud,
    |db: &TestDatabase| {
        let conn: &mut DbConnection = &mut db.conn();
        let driver = MesosUbuntuDriver::new(&DriverConfig::new()).unwrap();
        let req = request(
            "mesos",
            "ubuntu",
            "marathon",
            "9e0c1e5a-7c55-4a8b-a1d3-5b0d8d6a9c10",
        );
        let req = lifecycle(&driver, conn, req, "mesos_slaves", "127.24.0.2");
        delete(&driver, conn, &req, 1);
    }
);

// What the drivers' templates give on Heat as they are: a worker's string
// parameter fed `[group, attr, 0]` (a list of each master's first
// character) fails the stack; an output built so lists first characters.
db_test!(
    driver_templates_index_groups_as_heat_does,
    |db: &TestDatabase| {
        let conn: &mut DbConnection = &mut db.conn();
        let cloud = LocalCloud::default();
        let k8s = K8sFedoraAtomicDriver::new(&DriverConfig::new()).unwrap();
        let swarm = SwarmFedoraAtomicDriver::new(&DriverConfig::new()).unwrap();
        let mesos = MesosUbuntuDriver::new(&DriverConfig::new()).unwrap();
        let plans = [
        (
            k8s.create_cluster(&request("kubernetes", "fedora-atomic", "raw-k8s", "11111111-0000-0000-0000-000000000001")).unwrap(),
            "resources.kube_minions.resources[0]: Property error: kube_master_ip: Value must be a string; got ['1']",
        ),
        (
            swarm.create_cluster(&request("swarm", "fedora-atomic", "raw-swarm", "11111111-0000-0000-0000-000000000002")).unwrap(),
            "resources.swarm_nodes.resources[0]: Property error: swarm_api_ip: Value must be a string; got ['1']",
        ),
        (
            mesos.create_cluster(&request("mesos", "ubuntu", "raw-mesos", "11111111-0000-0000-0000-000000000003")).unwrap(),
            "",
        ),
    ];
        for (plan, reason) in plans {
            let uses = uses_per_member_index(&plan);
            let created = run(&cloud, conn, plan, at(0));
            let stack = cloud.get(conn, &created[0].stack_id, at(10)).unwrap();
            if !uses {
                assert_eq!(stack.status, "CREATE_COMPLETE", "{stack:?}");
                assert!(stack.outputs["api_address"].is_string(), "{stack:?}");
            } else if reason.is_empty() {
                assert_eq!(stack.status, "CREATE_COMPLETE", "{stack:?}");
                assert_eq!(stack.outputs["api_address"], json!(["1"]));
            } else {
                assert_eq!(
                    (stack.status.as_str(), stack.status_reason.as_str()),
                    ("CREATE_FAILED", reason)
                );
            }
        }
    }
);

// The drivers' environments switch the optional pieces: with a master load
// balancer (and its floating IP), three masters and Docker volumes, the API
// is the load balancer's floating IP; on the operator's own network without
// floating IPs, the API is the first master's private address. Either way
// each master runs on its own port.
db_test!(
    driver_environments_switch_the_optional_pieces,
    |db: &TestDatabase| {
        let conn: &mut DbConnection = &mut db.conn();
        let cloud = LocalCloud::default();
        let k8s = K8sFedoraAtomicDriver::new(&DriverConfig::new()).unwrap();
        let swarm = SwarmFedoraAtomicDriver::new(&DriverConfig::new()).unwrap();
        let mesos = MesosUbuntuDriver::new(&DriverConfig::new()).unwrap();
        let requests = [
            ("kubernetes", "fedora-atomic", "env-k8s"),
            ("swarm-mode", "fedora-atomic", "env-swarm"),
            ("mesos", "ubuntu", "env-mesos"),
        ];
        for (i, (coe, distro, name)) in requests.into_iter().enumerate() {
            for lb in [true, false] {
                let uuid = format!(
                    "2222222{}-0000-0000-0000-000000000000",
                    i * 2 + usize::from(lb)
                );
                let mut req = request(coe, distro, name, &uuid);
                if lb {
                    req.template.master_lb_enabled = true;
                    req.template.docker_volume_size = Some(10);
                    // And every node boots from a volume made from the image.
                    req.template
                        .labels
                        .insert("boot_volume_size".into(), "20".into());
                    req.template
                        .labels
                        .insert("boot_volume_type".into(), "ssd".into());
                    req.cluster.master_count = 3;
                    req.nodegroups[0].node_count = 3;
                } else {
                    req.template.fixed_network = Some("private".into());
                    req.template.fixed_subnet = Some("private-subnet".into());
                    req.template.floating_ip_enabled = false;
                }
                let plan = match coe {
                    "kubernetes" => k8s.create_cluster(&req),
                    "mesos" => mesos.create_cluster(&req),
                    _ => swarm.create_cluster(&req),
                }
                .expect("create plan");
                let created = run(&cloud, conn, plan, at(0));
                let stack = cloud.get(conn, &created[0].stack_id, at(30)).unwrap();
                assert_eq!(stack.status, "CREATE_COMPLETE", "{coe} lb={lb}: {stack:?}");
                let api = stack.outputs["api_address"].as_str().unwrap_or_default();
                let masters = stack
                    .outputs
                    .iter()
                    .find(|(k, _)| k.ends_with("masters_private") || *k == "mesos_master_private")
                    .and_then(|(_, v)| v.as_array().cloned())
                    .unwrap_or_default();
                // Each master boots on its own port, by index (swarm and
                // mesos make the ports first, so that every master knows
                // all their addresses).
                let servers = cloud.servers(conn, &stack.stack_id, at(30)).unwrap();
                for (index, private) in masters.iter().enumerate() {
                    let group = ["kube_masters", "swarm_masters", "mesos_masters"][i];
                    let server = servers
                        .iter()
                        .find(|s| s.resource.starts_with(&format!("{group}.{index}.")))
                        .unwrap_or_else(|| panic!("{coe}: no master {index}: {servers:?}"));
                    let private = private.as_str().unwrap_or_default().to_owned();
                    assert!(server.addresses.contains(&private), "{coe}: {server:?}");
                }
                let image = if lb { "" } else { "image-1" };
                assert!(!servers.is_empty(), "{coe}: {stack:?}");
                for server in &servers {
                    assert_eq!(server.image, image, "{coe} lb={lb}: {server:?}");
                }
                if lb {
                    assert_eq!(masters.len(), 3, "{coe}: {stack:?}");
                    assert!(api.starts_with("127.24.0."), "{coe}: {stack:?}");
                    assert!(!masters.iter().any(|m| m == api), "{coe}: {stack:?}");
                } else {
                    assert_eq!(masters.len(), 1, "{coe}: {stack:?}");
                    assert_eq!(masters[0], api, "{coe}: {stack:?}");
                }
            }
        }
    }
);
