//! The `heat` orchestrator's own paths on real Heat, on the services
//! realcloud.rs started (one Keystone, Heat, Glance, Nova, Neutron): what
//! the driver stacks with real Nova and Neutron there do not reach. The k8s
//! driver's real plans with Nova, Neutron, Cinder, Octavia and software
//! deployments mapped to `OS::Heat::None` (cheap stacks: no server boots),
//! their nodes played: a stack in the user's project through a trust found,
//! re-created after a crash (409), scaled and upgraded through the trust
//! and deleted; bootstrap failures and a silent node; Heat's 404s and
//! refusals; the API's checks against the real Glance, Nova and Neutron
//! (the openstack catalog). `refused_trust_stores_nothing` needs no Heat (a
//! fake Keystone that refuses trusts). Was tests/heat.rs, whose own
//! harness start this saves.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::common::{orchestrator, play_nodes, stop_playing, wait, Harness, Play, Times};

use magnum_driver_abi::{
    Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig, HostContext, NodeGroup,
    ResizeRequest, StackOperation, StackPlan, StackSnapshot, StatusRequest, UpgradeRequest,
};
use magnum_driver_k8s_fedora_atomic::K8sFedoraAtomicDriver;
use magnum_host::{
    conductor::{Orchestrator, OrchestratorError},
    db::{self, DbConnection},
    keystone::{KeystoneClient, ServiceAuth},
    orchestrator::{HeatOrchestrator, HeatSettings},
};
use serde_json::{json, Map, Value};

const MASTERS: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const WORKERS: &str = "aaaaaaaa-0000-0000-0000-000000000002";

/// What a Heat without Nova, Neutron, Cinder and Octavia cannot create.
const NONE_TYPES: &[&str] = &[
    "OS::Nova::Server",
    "OS::Nova::ServerGroup",
    "OS::Neutron::Net",
    "OS::Neutron::Subnet",
    "OS::Neutron::Router",
    "OS::Neutron::RouterInterface",
    "OS::Neutron::FloatingIP",
    "OS::Neutron::FloatingIPAssociation",
    "OS::Neutron::SecurityGroup",
    "OS::Neutron::SecurityGroupRule",
    "OS::Cinder::Volume",
    "OS::Cinder::VolumeAttachment",
    "OS::Octavia::LoadBalancer",
    "OS::Octavia::Listener",
    "OS::Octavia::Pool",
    "OS::Octavia::PoolMember",
    "OS::Octavia::HealthMonitor",
    "OS::Heat::SoftwareDeployment",
    "OS::Heat::SoftwareDeployments",
];

/// `OS::Neutron::Port` as a provider template with a made-up fixed IP: the
/// worker template's `kube_master_ip` has no default and comes from the
/// master port's `fixed_ips`, which `OS::Heat::None` leaves null, and Heat
/// refuses a nested stack whose required parameter is null ("Property
/// kube_master_ip not assigned"). With real Neutron the address exists.
const FAKE_PORT_FILE: &str = "magnum-test-fake-port.yaml";
const FAKE_PORT: &str = r#"heat_template_version: 2018-08-31
description: a Neutron port stand-in for a Heat without Neutron (tests only)
parameters:
  network: {type: string, default: ""}
  fixed_ips: {type: comma_delimited_list, default: []}
  security_groups: {type: comma_delimited_list, default: []}
  # The pod network's CIDR on every node port (calico, flannel host-gw): a
  # list, as Heat's own facade has it (json gives a Map: "type mismatch
  # between facade OS::Neutron::Port (List) and provider (Map)" on Heat 27).
  allowed_address_pairs: {type: comma_delimited_list, default: []}
  replacement_policy: {type: string, default: AUTO}
resources:
  host:
    type: OS::Heat::RandomString
    properties:
      length: 2
      character_classes: [{class: digits, min: 2}]
outputs:
  fixed_ips:
    value:
      - ip_address: {list_join: ["", ["10.0.0.1", {get_resource: host}]]}
  # Heat checks that a stand-in for a built-in type has all its attributes.
  admin_state_up: {value: null}
  device_id: {value: null}
  device_owner: {value: null}
  mac_address: {value: null}
  name: {value: null}
  network_id: {value: null}
  security_groups: {value: null}
  status: {value: null}
  tenant_id: {value: null}
  allowed_address_pairs: {value: null}
  subnets: {value: null}
  port_security_enabled: {value: null}
  qos_policy_id: {value: null}
  dns_assignment: {value: null}
  network: {value: null}
  propagate_uplink_status: {value: null}
"#;

fn nodegroup(uuid: &str, name: &str, role: &str, count: i64) -> NodeGroup {
    NodeGroup {
        uuid: uuid.into(),
        name: name.into(),
        role: role.into(),
        is_default: true,
        node_count: count,
        ..Default::default()
    }
}

fn request(name: &str, uuid: &str, extra: Map<String, Value>) -> ClusterRequest {
    ClusterRequest {
        template: ClusterTemplate {
            name: "k8s-template".into(),
            coe: "kubernetes".into(),
            server_type: "vm".into(),
            cluster_distro: "fedora-atomic".into(),
            image_id: "fedora-atomic-38".into(),
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
            project_id: "demo".into(),
            master_count: 1,
            node_count: 1,
            create_timeout: Some(30),
            discovery_url: Some("https://discovery.etcd.io/abc".into()),
            ..Default::default()
        },
        nodegroups: vec![
            nodegroup(MASTERS, "default-master", "master", 1),
            nodegroup(WORKERS, "default-worker", "worker", 1),
        ],
        context: HostContext {
            magnum_url: Some("http://127.0.0.1:9511/v1".into()),
            auth_url: None,
            verify_ca: false,
            openstack_ca: None,
            extra,
        },
    }
}

/// The plan's only operation, with Neutron ports faked (see [`FAKE_PORT`])
/// and the other types Heat cannot create mapped to `OS::Heat::None` in its
/// environment.
fn mapped(plan: StackPlan) -> StackOperation {
    assert_eq!(plan.operations.len(), 1, "{plan:?}");
    let mut op = plan.operations.into_iter().next().expect("one operation");
    // Added to the driver's own registry (its optional pieces), as
    // `[heat] resource_registry` does.
    let registry = op
        .environment
        .entry("resource_registry")
        .or_insert_with(|| Value::Object(Map::new()));
    let registry = registry
        .as_object_mut()
        .expect("resource_registry is a map");
    for t in NONE_TYPES {
        registry.insert((*t).to_owned(), json!("OS::Heat::None"));
    }
    registry.insert("OS::Neutron::Port".into(), json!(FAKE_PORT_FILE));
    op.files.insert(FAKE_PORT_FILE.into(), FAKE_PORT.into());
    op
}

/// `[heat]` settings mapping Nova/Neutron/Cinder/Octavia types for a Heat
/// without those services, as an operator would configure magnumd; the
/// fake port template lives as long as the returned file.
fn mapped_settings() -> (HeatSettings, tempfile::NamedTempFile) {
    let port_file = tempfile::NamedTempFile::new().expect("temporary file");
    std::fs::write(port_file.path(), FAKE_PORT).expect("write the fake port");
    let mut registry: std::collections::BTreeMap<String, String> = NONE_TYPES
        .iter()
        .map(|t| ((*t).to_owned(), "OS::Heat::None".to_owned()))
        .collect();
    registry.insert("OS::Neutron::Port".into(), FAKE_PORT_FILE.into());
    let settings = HeatSettings {
        resource_registry: registry,
        files: [(FAKE_PORT_FILE.to_owned(), port_file.path().to_owned())].into(),
        ..Default::default()
    };
    (settings, port_file)
}

/// Every check of this module, in order, on `h`'s services.
pub fn mapped_heat_checks(
    h: &Harness,
    rt: &tokio::runtime::Runtime,
    conn: &mut DbConnection,
    times: &mut Times,
) {
    lifecycle_through_a_trust(h, rt, conn, times);
    bootstrap_failures(h, rt, conn, times);
    errors_are_clear(h, rt, conn, times);
    catalog_checks(h, rt, times);
}

/// The k8s driver's plan in the demo project through a trust
/// (redelegatable, as Heat needs), which the orchestrator is given, not the
/// plan: create, outputs, the nodes' version through Heat's wait condition
/// data, found by name through the trust (and not in the service project),
/// a retried create (409) answering the same stack, scale 1 -> 2 workers
/// and an upgrade through the trust, polled and deleted as the service
/// user. Nodes boot from volumes: Heat parses the node templates' HOT
/// 2021-04-16 two-argument `if`s (server image omitted, a block device
/// mapping added) and resolves them in every member's properties.
fn lifecycle_through_a_trust(
    h: &Harness,
    rt: &tokio::runtime::Runtime,
    conn: &mut DbConnection,
    times: &mut Times,
) {
    let demo =
        KeystoneClient::new(h.auth("demo", "KEYSTONE_DEMO_PASSWORD", "demo")).expect("demo client");
    let (demo_token, demo_info) = rt.block_on(async {
        let token = demo.service_token().await.expect("demo login");
        (
            token,
            demo.service_token_info().await.expect("demo token info"),
        )
    });
    let trust_body = json!({"trust": {
        "trustor_user_id": demo_info.user_id,
        "trustee_user_id": h.get("KEYSTONE_MAGNUM_USER_ID"),
        "project_id": h.get("KEYSTONE_DEMO_PROJECT_ID"),
        "impersonation": true,
        "allow_redelegation": true,
        "roles": demo_info.roles.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
    }});
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let trust_url = format!("{}/OS-TRUST/trusts", h.get("KEYSTONE_URL"));
    let trust: Value = rt.block_on(async {
        let r = http
            .post(&trust_url)
            .header("X-Auth-Token", demo_token.expose())
            .json(&trust_body)
            .send()
            .await
            .expect("trust create");
        assert_eq!(r.status().as_u16(), 201);
        r.json().await.expect("trust body")
    });
    let trust_id = trust["trust"]["id"].as_str().expect("trust id").to_owned();
    let trust = Some(trust_id.as_str());

    // The mapping from [heat] this time (resource_registry and files), as
    // an operator would configure magnumd, not the plan's own.
    let (settings, _port_file) = mapped_settings();
    let heat = orchestrator(h, settings, rt);
    let driver = K8sFedoraAtomicDriver::new(&DriverConfig::new()).expect("driver");
    let mut req = request(
        "heat-k8s",
        "cccccccc-1111-0000-0000-000000000001",
        Map::new(),
    );
    req.cluster
        .labels
        .extend([("boot_volume_size".to_owned(), "10".to_owned())]);
    let plan = driver.create_cluster(&req).expect("create plan");
    let op = &plan.operations[0];
    let name = op.stack_name.clone();
    // The plan carries no trust: the orchestrator is given it.
    assert!(
        !op.parameters.contains_key("trust_id"),
        "{:?}",
        op.parameters
    );

    let t = Instant::now();
    assert_eq!(heat.find(conn, &name, trust).expect("find"), None);
    times.record("find (absent)", t.elapsed());

    // The nodes' resources are read as the service user (an admin); the
    // stack is found by name in the demo project with the demo user's token.
    let service = KeystoneClient::new(h.auth("magnum", "KEYSTONE_MAGNUM_PASSWORD", "service"))
        .expect("service client");
    let service_token = rt.block_on(service.service_token()).expect("service token");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let player = play_nodes(
        h,
        rt,
        h.get("KEYSTONE_DEMO_PROJECT_ID"),
        demo_token.expose(),
        service_token.expose(),
        &name,
        Play::Succeed {
            coe_version: "v1.27.3-played".into(),
        },
        stop.clone(),
    );
    let t = Instant::now();
    let id = heat
        .create(conn, "ignored", trust, op)
        .expect("create with a trust");
    times.record("create with trust (token + POST)", t.elapsed());
    let created = wait(&heat, conn, &id).expect("visible to the service user");
    times.record("create -> CREATE_COMPLETE (nodes signalled)", t.elapsed());
    assert_eq!(created.status, "CREATE_COMPLETE", "{created:?}");
    assert_eq!(created.stack_id, id);
    for key in [
        "kube_minions",
        "kube_minions_private",
        "kube_masters",
        "api_address",
    ] {
        assert!(
            created.outputs.contains_key(key),
            "output {key}: {created:?}"
        );
    }
    let master_ip = created.outputs["kube_masters_private"][0].as_str();
    assert!(
        master_ip.is_some_and(|a| a.starts_with("10.0.0.1")),
        "{:?}",
        created.outputs
    );
    assert_eq!(created.parameters["number_of_minions"], json!("1"));
    assert!(!created.parameters.contains_key("OS::stack_id"));

    // The driver maps Heat's snapshot as it maps the local cloud's; the COE
    // version is what the nodes reported through Heat's wait condition data.
    req.cluster.stack_id = Some(id.clone());
    let update = driver
        .map_status(&StatusRequest {
            base: req.clone(),
            stacks: vec![created.clone()],
        })
        .expect("map_status");
    assert_eq!(update.cluster.status.as_deref(), Some("CREATE_COMPLETE"));
    assert_eq!(
        update.cluster.coe_version.as_deref(),
        Some("v1.27.3-played"),
        "{:?}",
        created.outputs
    );

    // The stack is the demo project's: the demo user (no admin, so Heat
    // shows it its own project's stacks only) finds it by name, at its
    // canonical URL in the demo project. (The service user, an admin,
    // would find it by name from any project.)
    let url = format!(
        "{}/{}/stacks/{name}",
        h.get("HEAT_URL"),
        h.get("KEYSTONE_DEMO_PROJECT_ID"),
    );
    let (status, location) = rt.block_on(async {
        let r = http
            .get(&url)
            .header("X-Auth-Token", demo_token.expose())
            .send()
            .await
            .expect("demo GET");
        let location = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (r.status().as_u16(), location)
    });
    assert_eq!(status, 302, "the demo project holds the stack");
    assert!(
        location.ends_with(&format!(
            "/{}/stacks/{name}/{id}",
            h.get("KEYSTONE_DEMO_PROJECT_ID")
        )),
        "{location}"
    );

    // A crash before the id was recorded: the conductor finds the stack by
    // name through the trust, in the project that holds it.
    let t = Instant::now();
    assert_eq!(
        heat.find(conn, &name, trust).expect("find with the trust"),
        Some(id.clone())
    );
    times.record("find (present)", t.elapsed());
    // A retried create (crash after POST) answers the same stack.
    let t = Instant::now();
    assert_eq!(
        heat.create(conn, "ignored", trust, op)
            .expect("create again"),
        id
    );
    times.record("create again (409 -> lookup)", t.elapsed());
    let t = Instant::now();
    heat.get(conn, &id).expect("get");
    times.record("get (GET /stacks/{id}, 302 followed)", t.elapsed());

    let plan = driver
        .resize_cluster(&ResizeRequest {
            base: req.clone(),
            nodegroup: WORKERS.into(),
            node_count: 2,
            nodes_to_remove: vec![],
        })
        .expect("resize plan");
    assert_eq!(plan.operations.len(), 1);
    let scale = &plan.operations[0];
    assert!(scale.existing);
    let t = Instant::now();
    heat.update(conn, &id, trust, scale)
        .expect("update through the trust");
    times.record("update (PATCH)", t.elapsed());
    let scaled = wait(&heat, conn, &id).expect("the stack exists");
    times.record("update 1 -> 2 workers -> UPDATE_COMPLETE", t.elapsed());
    assert_eq!(scaled.status, "UPDATE_COMPLETE", "{scaled:?}");
    assert_eq!(scaled.parameters["number_of_minions"], json!("2"));
    assert_eq!(
        scaled.outputs["kube_minions_private"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{scaled:?}"
    );
    // A master and two workers (one from the scale-up) signalled.
    assert_eq!(stop_playing(rt, &stop, player), 3);

    let owner = Owner {
        trust,
        project: h.get("KEYSTONE_DEMO_PROJECT_ID"),
        token: demo_token.expose(),
    };
    upgrade_replays_workers(h, rt, conn, times, &heat, &driver, &req, &owner, &scaled);

    let t = Instant::now();
    heat.delete(conn, &id).expect("delete");
    times.record("delete (DELETE)", t.elapsed());
    assert_eq!(wait(&heat, conn, &id), None, "a deleted stack is gone");
    times.record("delete -> gone", t.elapsed());
    assert_eq!(heat.find(conn, &name, trust).expect("find"), None);
    // Deleting again is not an error.
    heat.delete(conn, &id).expect("second delete");
}

/// Whose stack: the trust it is updated through, its project and a token
/// of that project (which finds it by name).
struct Owner<'a> {
    trust: Option<&'a str>,
    project: &'a str,
    token: &'a str,
}

/// An upgrade of the workers on real Heat: the worker generation moves, so
/// every worker gets a fresh wait condition (the other slot's handle, the
/// old one deleted) and the update stays `UPDATE_IN_PROGRESS` until the
/// replaced workers signal, one batch at a time; it completes with what
/// they reported while the masters keep theirs. A second upgrade whose
/// workers signal FAILURE fails with their reason. (Nova is mapped to
/// `OS::Heat::None` here, which Heat never replaces; that a new
/// `scheduler_hints` replaces a real server is Heat's rule, `SCHEDULER_HINTS`
/// without `update_allowed` in heat/engine/resources/openstack/nova/server.py.)
#[expect(
    clippy::too_many_arguments,
    reason = "a test step; each is one fact of the stack it upgrades"
)]
fn upgrade_replays_workers(
    h: &Harness,
    rt: &tokio::runtime::Runtime,
    conn: &mut DbConnection,
    times: &mut Times,
    heat: &HeatOrchestrator,
    driver: &K8sFedoraAtomicDriver,
    req: &ClusterRequest,
    owner: &Owner,
    current: &StackSnapshot,
) {
    let id = current.stack_id.clone();
    let name = magnum_driver_abi::convention::stack_name(&req.cluster.name, &req.cluster.uuid);
    let service = KeystoneClient::new(h.auth("magnum", "KEYSTONE_MAGNUM_PASSWORD", "service"))
        .expect("service client");
    let token = rt.block_on(service.service_token()).expect("service token");
    let upgrade = |tag: &str, stack: &StackSnapshot| {
        let mut base = req.clone();
        base.context.extra.insert(
            "nodegroup_stack_parameters".into(),
            Value::Object(stack.parameters.clone()),
        );
        let mut new_template = base.template.clone();
        new_template.labels.insert("kube_tag".into(), tag.into());
        let plan = driver
            .upgrade_cluster(&UpgradeRequest {
                base,
                new_template,
                nodegroup: WORKERS.into(),
                max_batch_size: 1,
            })
            .expect("upgrade plan");
        assert_eq!(plan.operations.len(), 1, "{plan:?}");
        plan.operations.into_iter().next().expect("one operation")
    };
    let player = |play: Play, stop: &std::sync::Arc<std::sync::atomic::AtomicBool>| {
        play_nodes(
            h,
            rt,
            owner.project,
            owner.token,
            token.expose(),
            &name,
            play,
            stop.clone(),
        )
    };

    let op = upgrade("v1.27.8", current);
    assert_eq!(op.parameters["worker_generation"], json!(1));
    let t = Instant::now();
    heat.update(conn, &id, owner.trust, &op)
        .expect("upgrade update");
    // No worker has signalled its new wait condition: the update waits.
    let quiet = Instant::now() + Duration::from_secs(15);
    while Instant::now() < quiet {
        let s = heat.get(conn, &id).expect("get").expect("the stack exists");
        assert_eq!(s.status, "UPDATE_IN_PROGRESS", "{s:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let playing = player(
        Play::UpgradedWorkers {
            slot: "worker_wait_handle_b",
            coe_version: "v1.27.8-played".into(),
        },
        &stop,
    );
    let upgraded = wait(heat, conn, &id).expect("the stack exists");
    times.record("upgrade 2 workers, batch 1 -> COMPLETE", t.elapsed());
    assert_eq!(upgraded.status, "UPDATE_COMPLETE", "{upgraded:?}");
    // Two fresh handles (the other slot's), one per replaced worker.
    assert_eq!(stop_playing(rt, &stop, playing), 2);
    let workers = upgraded.outputs["worker_bootstrap_data"].to_string();
    assert_eq!(workers.matches("v1.27.8-played").count(), 2, "{workers}");
    let masters = upgraded.outputs["master_bootstrap_data"].to_string();
    assert!(masters.contains("v1.27.3-played"), "{masters}");
    assert_eq!(upgraded.parameters["kube_tag"], json!("v1.27.8"));
    assert_eq!(upgraded.parameters["master_kube_tag"], json!("v1.27.3"));
    // The cluster's version is its masters' (the control plane's).
    let mapped = driver
        .map_status(&StatusRequest {
            base: req.clone(),
            stacks: vec![upgraded.clone()],
        })
        .expect("map_status");
    assert_eq!(
        mapped.cluster.coe_version.as_deref(),
        Some("v1.27.3-played")
    );

    // The next generation goes back to the first slot; failing workers
    // fail the update with their reason.
    let op = upgrade("v1.27.9", &upgraded);
    assert_eq!(op.parameters["worker_generation"], json!(2));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = Instant::now();
    heat.update(conn, &id, owner.trust, &op)
        .expect("second upgrade update");
    let playing = player(
        Play::FailUpgradedWorkers {
            slot: "worker_wait_handle",
            reason: "worker-x: bootstrap step 40-configure-node.sh failed: no kubelet".into(),
        },
        &stop,
    );
    let failed = wait(heat, conn, &id).expect("the stack exists");
    times.record("upgrade, worker FAILURE -> UPDATE_FAILED", t.elapsed());
    assert_eq!(failed.status, "UPDATE_FAILED", "{failed:?}");
    assert!(
        failed
            .status_reason
            .contains("worker-x: bootstrap step 40-configure-node.sh failed")
            && failed.status_reason.contains("worker_wait_condition"),
        "{failed:?}"
    );
    // Batches of one: the first replaced worker failed, the second was
    // never started.
    assert_eq!(stop_playing(rt, &stop, playing), 1);
}

/// A node that signals FAILURE fails the stack, and the cluster, with its
/// reason, and only its nodegroup; a node that never signals times its wait
/// condition out, and the cluster's reason names it (Heat says only "0 of
/// 1 received").
fn bootstrap_failures(
    h: &Harness,
    rt: &tokio::runtime::Runtime,
    conn: &mut DbConnection,
    times: &mut Times,
) {
    let heat = orchestrator(h, HeatSettings::default(), rt);
    let driver = K8sFedoraAtomicDriver::new(&DriverConfig::new()).expect("driver");
    let service = KeystoneClient::new(h.auth("magnum", "KEYSTONE_MAGNUM_PASSWORD", "service"))
        .expect("service client");
    let service_token = rt.block_on(service.service_token()).expect("service token");
    let status_of = |req: &ClusterRequest, stack: &StackSnapshot| {
        driver
            .map_status(&StatusRequest {
                base: req.clone(),
                stacks: vec![stack.clone()],
            })
            .expect("map_status")
    };

    // A worker fails its bootstrap.
    let mut req = request(
        "heat-fail",
        "cccccccc-3333-0000-0000-000000000003",
        Map::new(),
    );
    let op = mapped(driver.create_cluster(&req).expect("create plan"));
    let server = format!(
        "{}-default-worker-0",
        op.parameters["fixed_network_name"].as_str().expect("name")
    );
    let reason = format!(
        "{server}: bootstrap step 40-configure-node.sh failed: kubelet: \"exit 1\"\nno route to host"
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = Instant::now();
    let id = heat.create(conn, "ignored", None, &op).expect("create");
    let player = play_nodes(
        h,
        rt,
        h.get("KEYSTONE_SERVICE_PROJECT_ID"),
        service_token.expose(),
        service_token.expose(),
        &op.stack_name,
        Play::FailWorkers {
            reason: reason.clone(),
        },
        stop.clone(),
    );
    let failed = wait(&heat, conn, &id).expect("the stack exists");
    times.record(
        "create -> CREATE_FAILED (worker signals FAILURE)",
        t.elapsed(),
    );
    assert_eq!(stop_playing(rt, &stop, player), 2, "a master and a worker");
    eprintln!("  Heat's reason: {}", failed.status_reason);
    assert_eq!(failed.status, "CREATE_FAILED", "{failed:?}");
    assert!(failed.status_reason.contains(&reason), "{failed:?}");
    req.cluster.stack_id = Some(id.clone());
    let update = status_of(&req, &failed);
    assert_eq!(update.cluster.status.as_deref(), Some("CREATE_FAILED"));
    assert!(
        update
            .cluster
            .status_reason
            .as_deref()
            .is_some_and(|r| r.contains(&reason)),
        "{update:?}"
    );
    let group = |uuid: &str| {
        update
            .nodegroups
            .iter()
            .find(|g| g.uuid == uuid)
            .and_then(|g| g.status.clone())
    };
    assert_eq!(
        group(WORKERS).as_deref(),
        Some("CREATE_FAILED"),
        "{update:?}"
    );
    assert_eq!(
        group(MASTERS).as_deref(),
        Some("CREATE_COMPLETE"),
        "{update:?}"
    );
    heat.delete(conn, &id).expect("delete");
    assert_eq!(wait(&heat, conn, &id), None);

    // No node signals: the first master's wait condition times out.
    let mut req = request(
        "heat-silent",
        "cccccccc-4444-0000-0000-000000000004",
        Map::new(),
    );
    let mut op = mapped(driver.create_cluster(&req).expect("create plan"));
    op.parameters
        .insert("wait_condition_timeout".into(), json!(5));
    let master = format!(
        "{}-default-master-0",
        op.parameters["fixed_network_name"].as_str().expect("name")
    );
    let t = Instant::now();
    let id = heat.create(conn, "ignored", None, &op).expect("create");
    let silent = wait(&heat, conn, &id).expect("the stack exists");
    times.record(
        "create -> CREATE_FAILED (wait condition timeout)",
        t.elapsed(),
    );
    eprintln!("  Heat's reason: {}", silent.status_reason);
    assert_eq!(silent.status, "CREATE_FAILED", "{silent:?}");
    req.cluster.stack_id = Some(id.clone());
    let update = status_of(&req, &silent);
    let reason = update.cluster.status_reason.clone().unwrap_or_default();
    assert!(
        reason.ends_with(&format!("(no bootstrap signal from {master})")),
        "{reason}"
    );
    heat.delete(conn, &id).expect("delete");
    assert_eq!(wait(&heat, conn, &id), None);
}

/// 404s, and a template Heat refuses: a clear, final reason.
fn errors_are_clear(
    h: &Harness,
    rt: &tokio::runtime::Runtime,
    conn: &mut DbConnection,
    times: &mut Times,
) {
    let heat = orchestrator(h, HeatSettings::default(), rt);
    let unknown = "0b7c2ad8-7e4c-4a43-9f1c-000000000000";
    let t = Instant::now();
    assert_eq!(heat.get(conn, unknown).expect("get unknown"), None);
    times.record("get (404)", t.elapsed());
    assert_eq!(heat.find(conn, "no-such-stack", None).expect("find"), None);
    heat.delete(conn, unknown).expect("delete unknown");
    let update = StackOperation {
        existing: true,
        ..Default::default()
    };
    assert!(matches!(
        heat.update(conn, unknown, None, &update),
        Err(OrchestratorError::Rejected(m)) if m.contains("404")
    ));

    let mut bad = StackOperation {
        stack_name: "bad-template".into(),
        template: "bad.yaml".into(),
        ..Default::default()
    };
    bad.files.insert(
        "bad.yaml".into(),
        "heat_template_version: 2018-08-31\nresources:\n  x:\n    type: OS::Magnum::NoSuchThing\n"
            .into(),
    );
    let t = Instant::now();
    match heat.create(conn, "ignored", None, &bad) {
        Err(OrchestratorError::Rejected(m)) => {
            assert!(m.contains("OS::Magnum::NoSuchThing"), "{m}");
            eprintln!("  rejected as: {m}");
        }
        other => panic!("a bad template must be rejected: {other:?}"),
    }
    times.record("create rejected (400)", t.elapsed());
}

/// The k8s driver's library (`cdylib`), as cargo built it for this test
/// (a dev-dependency's `.so` lands in `deps/`).
fn k8s_library() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let name = "libmagnum_driver_k8s_fedora_atomic.so";
    let candidates = [
        target.join("debug/deps").join(name),
        target.join("debug").join(name),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!("{name} not built; run cargo build -p magnum-driver-k8s-fedora-atomic")
        })
}

/// The k8s driver from a plugins dir, as magnumd loads it.
fn k8s_registry() -> (tempfile::TempDir, magnum_host::plugins::Registry) {
    use magnum_host::plugins::{
        manifest::{self, Manifest, Registered},
        Registry,
    };
    let plugins = tempfile::tempdir().expect("plugins dir");
    let library = k8s_library();
    let m = Manifest {
        name: "k8s_fedora_atomic_v1".into(),
        sha256: manifest::sha256_file(&library).expect("sha256"),
        library,
        enabled: true,
        draining: false,
        isolation: Default::default(),
        abi: "^1.0".into(),
        config: Default::default(),
        registered: Registered::default(),
    };
    manifest::write(plugins.path(), &m).expect("manifest");
    let registry = Registry::load(plugins.path()).expect("registry");
    assert_eq!(registry.loaded().count(), 1, "{registry:?}");
    (plugins, registry)
}

/// A migrated SQLite database in a temporary directory (kept while the
/// directory lives).
fn sqlite_pool() -> (tempfile::TempDir, magnum_host::db::DbPool) {
    let dir = tempfile::tempdir().expect("data dir");
    let pool = magnum_host::db::DbPool::connect(&format!(
        "sqlite://{}",
        dir.path().join("magnum.sqlite").display()
    ))
    .expect("sqlite");
    db::migrate(&mut pool.get().expect("conn")).expect("migrate");
    (dir, pool)
}

/// What one API call answered.
struct Answer {
    status: u16,
    body: Value,
}

/// A Keystone that logs the service user in and validates the user's token
/// but refuses every trust (403), on loopback.
async fn refusing_keystone() -> String {
    use axum::{
        http::{HeaderMap, StatusCode},
        routing::{get, post},
        Json, Router,
    };
    fn token(user: &str, project: &str, roles: &[&str]) -> Value {
        json!({"token": {
            "methods": ["password"],
            "user": {"id": format!("{user}-id"), "name": user,
                     "domain": {"id": "default", "name": "Default"}},
            "project": {"id": project, "name": project,
                        "domain": {"id": "default", "name": "Default"}},
            "roles": roles.iter().map(|r| json!({"id": r, "name": r})).collect::<Vec<_>>(),
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "audit_ids": ["a"],
            "catalog": [],
        }})
    }
    let app = Router::new()
        .route(
            "/v3/auth/tokens",
            post(|| async {
                let mut headers = HeaderMap::new();
                headers.insert("X-Subject-Token", "service-token".parse().expect("header"));
                (
                    StatusCode::CREATED,
                    headers,
                    Json(token("magnum", "service", &["admin"])),
                )
            })
            .get(|| async { Json(token("demo", "p-demo", &["member", "reader"])) }),
        )
        .route(
            "/v3/OS-TRUST/trusts",
            post(|| async {
                (
                    StatusCode::FORBIDDEN,
                    Json(json!({"error": {"code": 403, "title": "Forbidden",
                        "message": "You are not authorized to perform the requested action: identity:create_trust."}})),
                )
            })
            .get(|| async { StatusCode::METHOD_NOT_ALLOWED }),
        )
        .route("/", get(|| async { "fake keystone" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// Keystone refusing the trust: the create fails in Magnum's envelope with
/// Keystone's reason, and nothing is stored. No Heat needed.
#[test]
fn refused_trust_stores_nothing() {
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use magnum_host::{
        api::{router, AppState, Identity},
        db::models::Cluster,
    };
    use tower::ServiceExt;

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = rt.block_on(refusing_keystone());
    let (_plugins, registry) = k8s_registry();
    let (_dir, pool) = sqlite_pool();
    let service =
        KeystoneClient::new(ServiceAuth::new(url, "magnum", "pw", "service")).expect("client");
    let mut state = AppState::new(registry, pool.clone());
    state.identity = Identity::Keystone(service);
    state.settings.cluster_trusts = true;
    let app = router(std::sync::Arc::new(state));
    let call = |method: &str, path: &str, body: Value| -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("x-auth-token", "demo-token")
            .body(Body::from(body.to_string()))
            .expect("request");
        rt.block_on(async {
            let resp = app.clone().oneshot(req).await.expect("infallible");
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            Answer {
                status,
                body: serde_json::from_slice(&bytes).unwrap_or_default(),
            }
        })
    };
    let template = call(
        "POST",
        "/v1/clustertemplates",
        json!({"name": "k8s", "coe": "kubernetes", "image_id": "fedora-atomic-latest",
               "external_network_id": "public", "flavor_id": "m1.small"}),
    );
    assert_eq!(template.status, 201, "{}", template.body);
    let refused = call(
        "POST",
        "/v1/clusters",
        json!({"name": "refused", "cluster_template_id": template.body["uuid"]}),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    let error = &refused.body["errors"][0];
    assert_eq!(error["status"], json!(403), "{}", refused.body);
    let detail = error["detail"].as_str().expect("detail");
    assert!(
        detail.starts_with("Keystone refused to create the trust the cluster needs")
            && detail.contains("identity:create_trust"),
        "{detail}"
    );
    assert!(!detail.contains("demo-token"), "{detail}");
    let mut conn = pool.get().expect("conn");
    assert_eq!(
        Cluster::count_by_project(&mut conn, "p-demo").expect("count"),
        0,
        "no cluster row"
    );
    assert_eq!(
        magnum_host::db::models::Job::count(&mut conn).expect("jobs"),
        0,
        "no job"
    );
}

/// One request to an in-process API, with extra headers (`X-Auth-Token`,
/// or noauth's `X-User-Id`).
fn api_call(
    rt: &tokio::runtime::Runtime,
    app: &axum::Router,
    headers: &[(&str, &str)],
    method: &str,
    path: &str,
    body: Value,
) -> Answer {
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(body.to_string())).expect("request");
    rt.block_on(async {
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or_default(),
        }
    })
}

/// The error detail of an enveloped answer.
fn detail(a: &Answer) -> &str {
    a.body["errors"][0]["detail"].as_str().unwrap_or_default()
}

/// An API over a fresh SQLite database whose catalog is the real Glance,
/// Nova and Neutron of tests/cloud, found through Keystone's catalog.
fn catalog_api(
    identity: magnum_host::api::Identity,
    auth: ServiceAuth,
) -> (axum::Router, Vec<tempfile::TempDir>) {
    use magnum_host::api::{router, AppState, CloudCatalog, OpenStackCatalog};
    let (plugins, registry) = k8s_registry();
    let (dir, pool) = sqlite_pool();
    let service = KeystoneClient::new(auth).expect("service client");
    let mut state = AppState::new(registry, pool);
    state.identity = identity;
    state.catalog = CloudCatalog::OpenStack(
        OpenStackCatalog::new(service, Duration::from_secs(10)).expect("catalog"),
    );
    (router(std::sync::Arc::new(state)), vec![plugins, dir])
}

/// Template and cluster fields checked against the real cloud: names and
/// ids resolve, `cluster_distro` comes from Glance's `os_distro`, and every
/// refusal of upstream §5.1 (missing, ambiguous, no os_distro, not
/// external, subnet of another network, someone else's keypair) is the
/// right status with a clear sentence; an unreachable service is a 503.
fn catalog_checks(h: &Harness, rt: &tokio::runtime::Runtime, times: &mut Times) {
    use magnum_host::api::Identity;

    let started = Instant::now();
    let service_auth = || h.auth("magnum", "KEYSTONE_MAGNUM_PASSWORD", "service");
    let service = KeystoneClient::new(service_auth()).expect("service client");
    let (app, _keep) = catalog_api(Identity::Keystone(service), service_auth());
    let demo =
        KeystoneClient::new(h.auth("demo", "KEYSTONE_DEMO_PASSWORD", "demo")).expect("demo client");
    let demo_token = rt
        .block_on(demo.service_token())
        .expect("demo login")
        .expose()
        .to_owned();
    let as_demo = [("x-auth-token", demo_token.as_str())];
    let template = |fields: Value| -> Answer {
        let mut body = json!({
            "coe": "kubernetes", "image_id": "fedora-atomic-latest",
            "external_network_id": "public", "flavor_id": "m1.small",
        });
        for (k, v) in fields.as_object().expect("object") {
            body[k] = v.clone();
        }
        api_call(rt, &app, &as_demo, "POST", "/v1/clustertemplates", body)
    };

    // By name, with a fixed network and its subnet.
    let t = Instant::now();
    let by_name = template(json!({
        "name": "by-name", "master_flavor_id": "m1.medium",
        "fixed_network": "private", "fixed_subnet": "private-subnet",
    }));
    times.record(
        "template create, openstack catalog (first call)",
        t.elapsed(),
    );
    assert_eq!(by_name.status, 201, "{}", by_name.body);
    assert_eq!(by_name.body["cluster_distro"], json!("fedora-atomic"));
    // By id.
    let t = Instant::now();
    let by_id = template(json!({
        "name": "by-id", "image_id": h.get("IMAGE_FEDORA_ID"),
        "flavor_id": h.get("FLAVOR_SMALL_ID"), "master_flavor_id": h.get("FLAVOR_LARGE_ID"),
        "external_network_id": h.get("NET_PUBLIC_ID"),
        "fixed_network": h.get("NET_PRIVATE_ID"), "fixed_subnet": h.get("SUBNET_PRIVATE_ID"),
    }));
    times.record("template create, openstack catalog", t.elapsed());
    assert_eq!(by_id.status, 201, "{}", by_id.body);
    assert_eq!(by_id.body["cluster_distro"], json!("fedora-atomic"));
    // The same create against the embedded catalog, side by side.
    {
        let (_plugins, registry) = k8s_registry();
        let (_dir, pool) = sqlite_pool();
        let embedded = magnum_host::api::router(std::sync::Arc::new(
            magnum_host::api::AppState::new(registry, pool),
        ));
        let t = Instant::now();
        let a = api_call(
            rt,
            &embedded,
            &[],
            "POST",
            "/v1/clustertemplates",
            json!({"name": "embedded", "coe": "kubernetes", "image_id": "fedora-atomic-latest",
                   "external_network_id": "public", "flavor_id": "m1.small",
                   "master_flavor_id": "m1.medium", "fixed_network": "private",
                   "fixed_subnet": "private-subnet"}),
        );
        times.record("template create, embedded catalog", t.elapsed());
        assert_eq!(a.status, 201, "{}", a.body);
    }

    let refusals: &[(Value, u16, &str)] = &[
        (
            json!({"image_id": "no-distro-image"}),
            400,
            "Image no-distro-image doesn't contain os_distro field.",
        ),
        (
            json!({"image_id": "dup-image"}),
            409,
            "Multiple images exist with same name dup-image. Please use the image id instead.",
        ),
        (
            json!({"image_id": "no-such-image"}),
            400,
            "Image no-such-image could not be found.",
        ),
        (
            json!({"flavor_id": "m1.nope"}),
            400,
            "Flavor m1.nope could not be found.",
        ),
        (
            json!({"master_flavor_id": "m1.nope"}),
            400,
            "Flavor m1.nope could not be found.",
        ),
        (
            json!({"flavor_id": "m1.diskless"}),
            400,
            "Flavor with zero root volume size is not supported when boot_volume_size is zero.",
        ),
        (
            json!({"external_network_id": "internal"}),
            400,
            "Network internal is not an external network (router:external is false).",
        ),
        (
            json!({"external_network_id": "no-such-net"}),
            400,
            "External network no-such-net could not be found.",
        ),
        (
            json!({"fixed_network": "no-such-net"}),
            400,
            "Fixed network no-such-net could not be found.",
        ),
        (
            json!({"fixed_network": "private", "fixed_subnet": "public-subnet"}),
            400,
            "Fixed subnet public-subnet could not be found.",
        ),
    ];
    for (fields, status, sentence) in refusals {
        let a = template(fields.clone());
        assert_eq!(a.status, *status, "{fields}: {}", a.body);
        assert_eq!(detail(&a), *sentence, "{fields}");
    }

    // The keypair is demo's own: found with demo's token, and a name demo
    // has no keypair under is upstream's 404.
    let cluster = |app: &axum::Router, headers: &[(&str, &str)], template: &str, kp: &str| {
        api_call(
            rt,
            app,
            headers,
            "POST",
            "/v1/clusters",
            json!({"cluster_template_id": template, "keypair": kp, "node_count": 1}),
        )
    };
    let template_id = by_name.body["uuid"].as_str().expect("uuid");
    let created = cluster(&app, &as_demo, template_id, "default");
    assert_eq!(created.status, 202, "{}", created.body);
    // A fixed network without a subnet: the cluster records the network's
    // subnet from Neutron, which the driver's ports then use.
    let no_subnet = template(json!({"name": "no-subnet", "fixed_network": "private"}));
    assert_eq!(no_subnet.status, 201, "{}", no_subnet.body);
    let on_private = cluster(
        &app,
        &as_demo,
        no_subnet.body["uuid"].as_str().expect("uuid"),
        "default",
    );
    assert_eq!(on_private.status, 202, "{}", on_private.body);
    let shown = api_call(
        rt,
        &app,
        &as_demo,
        "GET",
        &format!(
            "/v1/clusters/{}",
            on_private.body["uuid"].as_str().expect("uuid")
        ),
        json!({}),
    );
    assert_eq!(
        shown.body["fixed_subnet"],
        json!(h.get("SUBNET_PRIVATE_ID")),
        "{}",
        shown.body
    );
    let missing = cluster(&app, &as_demo, template_id, "nope");
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(detail(&missing), "Unable to find keypair nope.");

    // noauth: the service user asks, keypairs per the request's user id.
    let noauth = Identity::NoAuth {
        project_id: h.get("KEYSTONE_DEMO_PROJECT_ID").to_owned(),
        user_id: h.get("KEYSTONE_DEMO_USER_ID").to_owned(),
        roles: vec!["member".to_owned()],
    };
    let (open, _keep_open) = catalog_api(noauth, service_auth());
    let t = api_call(
        rt,
        &open,
        &[],
        "POST",
        "/v1/clustertemplates",
        json!({"name": "noauth", "coe": "kubernetes", "image_id": "fedora-atomic-latest",
               "external_network_id": "public", "flavor_id": "m1.small"}),
    );
    assert_eq!(t.status, 201, "{}", t.body);
    let t = t.body["uuid"].as_str().expect("uuid").to_owned();
    let mine = cluster(&open, &[], &t, "default");
    assert_eq!(mine.status, 202, "{}", mine.body);
    let other_id = h.get("KEYSTONE_READER_USER_ID").to_owned();
    let theirs = cluster(&open, &[("x-user-id", other_id.as_str())], &t, "default");
    assert_eq!(theirs.status, 404, "{}", theirs.body);

    // No image endpoint in RegionTwo: the request fails as unavailable,
    // saying which service, and stores nothing.
    let mut elsewhere = service_auth();
    elsewhere.region = Some("RegionTwo".to_owned());
    let (gone, _keep_gone) = catalog_api(
        Identity::NoAuth {
            project_id: "p".into(),
            user_id: "u".into(),
            roles: vec!["admin".into()],
        },
        elsewhere,
    );
    let a = api_call(
        rt,
        &gone,
        &[],
        "POST",
        "/v1/clustertemplates",
        json!({"name": "x", "coe": "kubernetes", "image_id": "fedora-atomic-latest",
               "external_network_id": "public", "flavor_id": "m1.small"}),
    );
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(
        detail(&a).starts_with("Glance could not be reached"),
        "{}",
        a.body
    );
    let listed = api_call(rt, &gone, &[], "GET", "/v1/clustertemplates", json!({}));
    assert_eq!(
        listed.body["clustertemplates"],
        json!([]),
        "{}",
        listed.body
    );
    times.record("catalog checks (Glance, Nova, Neutron)", started.elapsed());
}
