//! Everything on real Heat, in one run of the services: Heat (tests/heat)
//! and the cloud harness (tests/cloud) with `CLOUD_COMPUTE=1` (placement,
//! nova-conductor, nova-scheduler, nova-compute with Nova's fake virt
//! driver, Neutron binding ports) share one Keystone. Three parts, in
//! order (`REALCLOUD_ONLY=heat|stacks|nodes` runs one):
//!
//! `heat` ([`heat`], was tests/heat.rs): the heat orchestrator's own paths
//! on cheap stacks whose Nova, Neutron, Cinder and Octavia types are mapped
//! to `OS::Heat::None` (a stack in the user's project through a trust,
//! found, re-created after a crash, scaled and upgraded; bootstrap failures;
//! Heat's 404s and refusals; the API's catalog checks on real Glance, Nova
//! and Neutron).
//!
//! `stacks`: the bundled drivers' real plans whose Nova and Neutron
//! resources are real. Only Cinder and Octavia, which do not run here, are
//! mapped to `OS::Heat::None`, except Octavia's VIP port, which a stand-in
//! makes in Neutron (see [`STAND_IN_LB`]). Servers, server groups,
//! networks, subnets, routers, ports, security groups and floating IPs are
//! made by Nova and Neutron, which judge every property; the outcome is
//! then read back from them (servers per role and their user data, ports
//! and address pairs, rules, floating IPs, the router's gateway) and, after
//! delete, found gone. In those seven stacks no node boots an OS: a node
//! player signals each stack's wait condition handles.
//!
//! `nodes` ([`nodes_in_the_sandbox`]): the nodes run for real. magnumd in
//! this process (keystone mode, heat orchestrator, its API on a 127.0.0.1
//! port its `public_url` names) creates a cluster of each driver in the
//! demo project, through the cluster's trust; each server's user data,
//! read back from Nova, runs in tests/sandbox's sandbox against that
//! magnumd (CA, CSRs), the test's mirror and proxy, and real heat-api, whose
//! wait conditions complete the stacks only because the nodes signalled;
//! a failing step makes the stack and the cluster CREATE_FAILED naming it.
//!
//! Skips (saying why) only when Python cannot make a venv, and the sandbox
//! part when it cannot run (not root, no unshare); under CI=true both
//! fail. One #[test]: starting the services costs more than the stacks.
//! Wall times are printed at the end.

mod common;
#[path = "realcloud/heat.rs"]
mod heat;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use common::{orchestrator, play_nodes, sandbox, stop_playing, wait, Harness, Play, Times};
use magnum_driver_abi::{
    Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig, HostContext, NodeGroup,
    NodeGroupRequest, StackOperation, StackPlan, StackSnapshot,
};
use magnum_driver_k8s_fedora_atomic::K8sFedoraAtomicDriver;
use magnum_driver_mesos_ubuntu::MesosUbuntuDriver;
use magnum_driver_swarm_fedora_atomic::SwarmFedoraAtomicDriver;
use magnum_host::{
    conductor::Orchestrator,
    db::{self, DbConnection, DbTarget},
    keystone::KeystoneClient,
    orchestrator::{HeatOrchestrator, HeatSettings},
};
use serde_json::{json, Map, Value};

const MASTERS: &str = "bbbbbbbb-0000-0000-0000-000000000001";
const WORKERS: &str = "bbbbbbbb-0000-0000-0000-000000000002";
const EXTRA: &str = "bbbbbbbb-0000-0000-0000-000000000003";
/// The service user's own keypair: keypairs belong to a user, and the
/// stacks are the service user's (the seeded `default` is demo's).
const KEYPAIR: &str = "magnum-realcloud";
/// Test-only; Nova checks that it parses. Nobody holds the private half.
const PUBLIC_KEY: &str = "ssh-ed25519 \
    AAAAC3NzaC1lZDI1NTE5AAAAIHucLlR3XfZtwrpjQy7ufqCSPi1SuIIeO1pLpJgC5gMc magnum-realcloud";
/// Admin-only server fields (user data) need microversion 2.3 or later.
const NOVA_MICROVERSION: &str = "2.92";

/// What cannot run here, and only that: Cinder (no volume service: its
/// volumes need a storage backend and an attach path) and Octavia (its
/// load balancers are amphora VMs or OVN, neither of which runs here).
const NONE_TYPES: &[&str] = &[
    "OS::Cinder::Volume",
    "OS::Cinder::VolumeAttachment",
    "OS::Octavia::LoadBalancer",
    "OS::Octavia::Listener",
    "OS::Octavia::Pool",
    "OS::Octavia::PoolMember",
    "OS::Octavia::HealthMonitor",
];

/// The drivers' type for the API load balancer.
const LB: &str = "Magnum::Optional::Neutron::LBaaS::LoadBalancer";
/// What Octavia makes in Neutron for a load balancer, and only that: its
/// VIP port on the VIP subnet (a real port, so the VIP address the workers
/// are given and the floating IP Neutron associates with it are real). No
/// listener, pool or health check: those stay `OS::Heat::None`.
const STAND_IN_LB_FILE: &str = "magnum-test-octavia-vip.yaml";
const STAND_IN_LB: &str = r#"heat_template_version: 2018-08-31
description: Octavia's VIP port, without Octavia (tests only)
parameters:
  name: {type: string, default: ""}
  vip_subnet: {type: string}
  vip_network: {type: string}
  provider: {type: string, default: ""}
resources:
  vip:
    type: OS::Neutron::Port
    properties:
      name: {get_param: name}
      network: {get_param: vip_network}
      fixed_ips:
        - subnet: {get_param: vip_subnet}
outputs:
  vip_address:
    value: {get_attr: [vip, fixed_ips, 0, ip_address]}
  vip_port_id:
    value: {get_resource: vip}
  vip_subnet_id:
    value: {get_param: vip_subnet}
"#;

/// The plan's only operation with Cinder and Octavia mapped to
/// `OS::Heat::None` (added to the driver's own registry, as magnumd's
/// `[heat] resource_registry` does).
fn mapped(plan: StackPlan) -> StackOperation {
    assert_eq!(plan.operations.len(), 1, "{plan:?}");
    let mut op = plan.operations.into_iter().next().expect("one operation");
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
    // The load balancer itself becomes its VIP port (see STAND_IN_LB):
    // the workers reach the API at its address, and its floating IP goes
    // on that port, as with Octavia.
    if registry.get(LB) == Some(&json!("OS::Octavia::LoadBalancer")) {
        registry.insert(LB.into(), json!(STAND_IN_LB_FILE));
        op.files.insert(STAND_IN_LB_FILE.into(), STAND_IN_LB.into());
        // A port needs its network, which Octavia finds from the subnet
        // and HOT cannot: the stand-in alone gets it.
        let cluster = op
            .files
            .get_mut(&op.template)
            .expect("the cluster template");
        let subnet = "      vip_subnet: {get_attr: [network, fixed_subnet]}\n";
        assert!(cluster.contains(subnet), "api_lb's vip_subnet");
        *cluster = cluster.replace(
            subnet,
            &format!("{subnet}      vip_network: {{get_attr: [network, fixed_network]}}\n"),
        );
    }
    op
}

fn nodegroup(uuid: &str, name: &str, role: &str, count: i64, default: bool) -> NodeGroup {
    NodeGroup {
        uuid: uuid.into(),
        name: name.into(),
        role: role.into(),
        is_default: default,
        node_count: count,
        ..Default::default()
    }
}

/// A cluster of `coe` on the seeded images, flavors and networks: a
/// private network of its own with floating IPs, unless the caller changes
/// the template.
fn request(coe: &str, name: &str, uuid: &str, masters: i64, workers: i64) -> ClusterRequest {
    let (distro, image) = match coe {
        "mesos" => ("ubuntu", "ubuntu-mesos"),
        _ => ("fedora-atomic", "fedora-atomic-latest"),
    };
    ClusterRequest {
        template: ClusterTemplate {
            name: format!("{coe}-template"),
            coe: coe.into(),
            server_type: "vm".into(),
            cluster_distro: distro.into(),
            image_id: image.into(),
            flavor_id: Some("m1.small".into()),
            master_flavor_id: Some("m1.medium".into()),
            keypair_id: Some(KEYPAIR.into()),
            external_network_id: Some("public".into()),
            floating_ip_enabled: true,
            ..Default::default()
        },
        cluster: Cluster {
            uuid: uuid.into(),
            name: name.into(),
            project_id: "service".into(),
            master_count: masters,
            node_count: workers,
            create_timeout: Some(30),
            discovery_url: Some("https://discovery.etcd.io/abc".into()),
            ..Default::default()
        },
        nodegroups: vec![
            nodegroup(MASTERS, "default-master", "master", masters, true),
            nodegroup(WORKERS, "default-worker", "worker", workers, true),
        ],
        context: HostContext {
            magnum_url: Some("http://127.0.0.1:9511/v1".into()),
            auth_url: None,
            verify_ca: false,
            openstack_ca: None,
            extra: Map::new(),
        },
    }
}

/// REST access to the real services, as Heat's Keystone sees them.
struct Cloud {
    http: reqwest::Client,
    /// admin in the admin project: reads every project's resources.
    admin: String,
    /// The service user (magnum) in the service project: owns the stacks.
    service: String,
    project: String,
    /// The demo project: where magnumd's clusters (the demo user's) are.
    demo_project: String,
    heat: String,
    nova: String,
    neutron: String,
}

impl Cloud {
    fn new(h: &Harness, rt: &tokio::runtime::Runtime) -> Self {
        // First: the Keystone client installs the process's rustls crypto
        // provider, which reqwest needs.
        let admin = KeystoneClient::new(h.auth("admin", "KEYSTONE_ADMIN_PASSWORD", "admin"))
            .expect("admin client");
        let service = KeystoneClient::new(h.auth("magnum", "KEYSTONE_MAGNUM_PASSWORD", "service"))
            .expect("service client");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http");
        let admin = rt.block_on(admin.service_token()).expect("admin token");
        let service = rt.block_on(service.service_token()).expect("service token");
        Self {
            http,
            admin: admin.expose().to_owned(),
            service: service.expose().to_owned(),
            project: h.get("KEYSTONE_SERVICE_PROJECT_ID").to_owned(),
            demo_project: h.get("KEYSTONE_DEMO_PROJECT_ID").to_owned(),
            heat: h.get("HEAT_URL").to_owned(),
            nova: h.get("NOVA_URL").to_owned(),
            neutron: h.get("NEUTRON_URL").to_owned(),
        }
    }

    /// One call; `Ok(None)` for a 404, `Err` names any other failure.
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>, String> {
        let mut request = self
            .http
            .request(method.clone(), url)
            .header("X-Auth-Token", token)
            .header(
                "OpenStack-API-Version",
                format!("compute {NOVA_MICROVERSION}"),
            );
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!("{method} {url}: {status} {text}"));
        }
        if text.is_empty() {
            return Ok(Some(Value::Null));
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{method} {url}: {e}: {text}"))
    }

    /// GET as admin; a 404 is an error here.
    async fn get(&self, url: &str) -> Result<Value, String> {
        self.call(reqwest::Method::GET, url, &self.admin, None)
            .await?
            .ok_or_else(|| format!("GET {url}: 404"))
    }

    async fn gone(&self, url: &str) -> Result<bool, String> {
        Ok(self
            .call(reqwest::Method::GET, url, &self.admin, None)
            .await?
            .is_none())
    }

    /// Every resource of the stack and its nested stacks, as Heat lists them.
    async fn resources(&self, name: &str, id: &str) -> Result<Vec<Value>, String> {
        let url = format!(
            "{}/{}/stacks/{name}/{id}/resources?nested_depth=5",
            self.heat, self.project
        );
        let listing = self
            .call(reqwest::Method::GET, &url, &self.service, None)
            .await?
            .ok_or_else(|| format!("GET {url}: 404"))?;
        Ok(listing["resources"].as_array().cloned().unwrap_or_default())
    }
}

/// The physical ids Heat reports for resources of `kind`.
fn ids_of(resources: &[Value], kind: &str) -> Vec<String> {
    resources
        .iter()
        .filter(|r| r["resource_type"] == kind)
        .filter_map(|r| r["physical_resource_id"].as_str())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The physical id of the resource named `name` (a top-level one).
fn id_named(resources: &[Value], name: &str) -> Option<String> {
    resources
        .iter()
        .find(|r| r["resource_name"] == name)
        .and_then(|r| r["physical_resource_id"].as_str())
        .map(str::to_owned)
}

/// What a stack should have made, as the driver's plan intends it.
#[derive(Debug, Clone, Default)]
struct Expect {
    master_group: String,
    worker_group: String,
    masters: usize,
    workers: usize,
    /// The network every node is on; None: the stack's own OS::Neutron::Net.
    network: Option<String>,
    /// A security group every worker port is in (an extra nodegroup joins
    /// the cluster's).
    worker_secgroup: Option<String>,
    /// The pod network every node port must allow as an address pair.
    pod_cidr: Option<String>,
    /// Every master port has a floating IP.
    floating_ips: bool,
    /// The stack's router has its gateway on this network.
    router_gateway: Option<String>,
}

/// What the real services hold for one stack, for the delete check and the
/// report.
#[derive(Debug, Default)]
struct Found {
    servers: Vec<String>,
    ports: Vec<String>,
    networks: Vec<String>,
    secgroups: Vec<String>,
    routers: Vec<String>,
    floating_ips: Vec<String>,
    rules: usize,
}

/// Reads the stack's resources back from Nova and Neutron and checks them
/// against `expect`; `Err` names the first resource that is not as
/// intended.
async fn check_stack(
    cloud: &Cloud,
    name: &str,
    id: &str,
    expect: &Expect,
) -> Result<Found, String> {
    let resources = cloud.resources(name, id).await?;
    let mut found = Found {
        servers: ids_of(&resources, "OS::Nova::Server"),
        networks: ids_of(&resources, "OS::Neutron::Net"),
        secgroups: ids_of(&resources, "OS::Neutron::SecurityGroup"),
        routers: ids_of(&resources, "OS::Neutron::Router"),
        ..Default::default()
    };
    let network = match &expect.network {
        Some(n) => n.clone(),
        None => match found.networks.as_slice() {
            [one] => one.clone(),
            other => return Err(format!("stack {name}: networks {other:?}, want one")),
        },
    };

    // Roles by server group: Heat put each server in its nodegroup's group.
    let groups = cloud
        .get(&format!(
            "{}/os-server-groups?all_projects=true",
            cloud.nova
        ))
        .await?;
    let stack_groups = ids_of(&resources, "OS::Nova::ServerGroup");
    let mut per_role = [0usize; 2];
    for server_id in &found.servers {
        let server = cloud
            .get(&format!("{}/servers/{server_id}", cloud.nova))
            .await?;
        let server = &server["server"];
        let server_name = server["name"].as_str().unwrap_or_default();
        if server["status"] != "ACTIVE" {
            return Err(format!(
                "server {server_name} ({server_id}) is {} ({})",
                server["status"], server["fault"]
            ));
        }
        if server["OS-EXT-SRV-ATTR:user_data"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            return Err(format!("server {server_name} has no user data"));
        }
        let group = groups["server_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| {
                g["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m == server_id.as_str()))
            })
            .ok_or_else(|| format!("server {server_name} is in no server group"))?;
        let group_id = group["id"].as_str().unwrap_or_default();
        if !stack_groups.iter().any(|g| g == group_id) {
            return Err(format!(
                "server {server_name} is in group {group_id}, not one of the stack's"
            ));
        }
        let group_name = group["name"].as_str().unwrap_or_default();
        let master = !expect.master_group.is_empty() && group_name.ends_with(&expect.master_group);
        if !master && !group_name.ends_with(&expect.worker_group) {
            return Err(format!(
                "server {server_name} is in group {group_name}, neither {} nor {}",
                expect.master_group, expect.worker_group
            ));
        }
        per_role[usize::from(!master)] += 1;

        let ports = cloud
            .get(&format!(
                "{}/v2.0/ports?device_id={server_id}",
                cloud.neutron
            ))
            .await?;
        let ports = ports["ports"].as_array().cloned().unwrap_or_default();
        if ports.is_empty() {
            return Err(format!("server {server_name} has no port"));
        }
        for port in &ports {
            let port_id = port["id"].as_str().unwrap_or_default().to_owned();
            if port["network_id"] != network.as_str() {
                return Err(format!(
                    "port {port_id} of {server_name} is on network {}, not {network}",
                    port["network_id"]
                ));
            }
            if port["binding:vif_type"] != "ovs" || port["binding:host_id"].as_str().is_none() {
                return Err(format!(
                    "port {port_id} of {server_name} is not bound: {} on {}",
                    port["binding:vif_type"], port["binding:host_id"]
                ));
            }
            if let Some(cidr) = &expect.pod_cidr {
                let pairs = &port["allowed_address_pairs"];
                let has = pairs
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p["ip_address"] == cidr.as_str()));
                if !has {
                    return Err(format!(
                        "port {port_id} of server {server_name} lacks the address pair \
                         {cidr} (allowed_address_pairs: {pairs})"
                    ));
                }
            }
            if !master {
                if let Some(sg) = &expect.worker_secgroup {
                    let in_group = port["security_groups"]
                        .as_array()
                        .is_some_and(|g| g.iter().any(|g| g == sg.as_str()));
                    if !in_group {
                        return Err(format!(
                            "port {port_id} of {server_name} is not in security group {sg}"
                        ));
                    }
                }
            }
            if master && expect.floating_ips {
                let fips = cloud
                    .get(&format!(
                        "{}/v2.0/floatingips?port_id={port_id}",
                        cloud.neutron
                    ))
                    .await?;
                let fips = fips["floatingips"].as_array().cloned().unwrap_or_default();
                if fips.is_empty() {
                    return Err(format!(
                        "master port {port_id} of {server_name} has no floating IP"
                    ));
                }
                found.floating_ips.extend(
                    fips.iter()
                        .filter_map(|f| f["id"].as_str())
                        .map(str::to_owned),
                );
            }
            found.ports.push(port_id);
        }
    }
    if per_role != [expect.masters, expect.workers] {
        return Err(format!(
            "stack {name}: {} masters and {} workers in Nova, want {} and {}",
            per_role[0], per_role[1], expect.masters, expect.workers
        ));
    }
    if let Some(public) = &expect.router_gateway {
        if found.routers.is_empty() {
            return Err(format!("stack {name} made no router"));
        }
        for router_id in &found.routers {
            let router = cloud
                .get(&format!("{}/v2.0/routers/{router_id}", cloud.neutron))
                .await?;
            let gateway = &router["router"]["external_gateway_info"]["network_id"];
            if gateway != public.as_str() {
                return Err(format!(
                    "router {router_id} has its gateway on {gateway}, not {public}"
                ));
            }
        }
    }
    for sg in &found.secgroups {
        found.rules += secgroup_rules(cloud, sg).await?.len();
    }
    Ok(found)
}

async fn secgroup_rules(cloud: &Cloud, sg: &str) -> Result<Vec<Value>, String> {
    let rules = cloud
        .get(&format!(
            "{}/v2.0/security-group-rules?security_group_id={sg}",
            cloud.neutron
        ))
        .await?;
    Ok(rules["security_group_rules"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// An ingress rule of `rules` matching protocol, port and source.
fn has_rule(
    rules: &[Value],
    protocol: &str,
    port: Option<u16>,
    remote_group: Option<&str>,
) -> bool {
    rules.iter().any(|r| {
        r["direction"] == "ingress"
            && r["ethertype"] == "IPv4"
            && r["protocol"] == protocol
            // Neutron stores 1-65535 as no range (null): every port.
            && port.is_none_or(|p| {
                r["port_range_min"].as_u64().unwrap_or(1) <= p.into()
                    && r["port_range_max"].as_u64().unwrap_or(65535) >= p.into()
            })
            && match remote_group {
                Some(g) => r["remote_group_id"] == g,
                None => r["remote_group_id"].is_null(),
            }
    })
}

/// No ingress rule opens every TCP port to any address.
fn open_to_world(rules: &[Value]) -> Option<&Value> {
    rules.iter().find(|r| {
        r["direction"] == "ingress"
            && r["remote_group_id"].is_null()
            && matches!(r["remote_ip_prefix"].as_str(), None | Some("0.0.0.0/0"))
            && (r["protocol"].is_null() || r["protocol"] == "tcp")
            && r["port_range_min"].as_u64().unwrap_or(1) <= 1
            && r["port_range_max"].as_u64().unwrap_or(65535) >= 65535
    })
}

/// After a delete: none of the stack's servers, ports, networks, security
/// groups, routers or floating IPs is left in Nova or Neutron.
async fn check_gone(cloud: &Cloud, found: &Found) -> Result<usize, String> {
    let urls = found
        .servers
        .iter()
        .map(|id| format!("{}/servers/{id}", cloud.nova))
        .chain(
            found
                .ports
                .iter()
                .map(|id| format!("{}/v2.0/ports/{id}", cloud.neutron)),
        )
        .chain(
            found
                .networks
                .iter()
                .map(|id| format!("{}/v2.0/networks/{id}", cloud.neutron)),
        )
        .chain(
            found
                .secgroups
                .iter()
                .map(|id| format!("{}/v2.0/security-groups/{id}", cloud.neutron)),
        )
        .chain(
            found
                .routers
                .iter()
                .map(|id| format!("{}/v2.0/routers/{id}", cloud.neutron)),
        )
        .chain(
            found
                .floating_ips
                .iter()
                .map(|id| format!("{}/v2.0/floatingips/{id}", cloud.neutron)),
        )
        .collect::<Vec<_>>();
    for url in &urls {
        if !cloud.gone(url).await? {
            return Err(format!("{url} is still there after the stack's delete"));
        }
    }
    Ok(urls.len())
}

/// What the test ran, for the totals at the end.
#[derive(Default)]
struct Totals {
    stacks: usize,
    servers: usize,
    ports: usize,
    rules: usize,
    floating_ips: usize,
    gone: usize,
}

struct Run<'a> {
    h: &'a Harness,
    rt: &'a tokio::runtime::Runtime,
    heat: HeatOrchestrator,
    conn: DbConnection,
    cloud: Cloud,
    times: Times,
    totals: Totals,
}

impl Run<'_> {
    /// Creates the stack with its nodes played; the snapshot once Heat is
    /// done (whatever the status).
    fn create(
        &mut self,
        what: &str,
        op: &StackOperation,
    ) -> Result<(String, StackSnapshot), String> {
        let (id, snapshot) = self.create_once(what, op)?;
        // A service's 500 while Heat made a resource (seen: Keystone, on
        // SQLite, creating a wait condition handle's user on a loaded
        // machine) is what an operator answers by creating again; once,
        // and said. A reason without "(HTTP 500)" is the plan's.
        if snapshot.status == "CREATE_FAILED" && snapshot.status_reason.contains("(HTTP 500)") {
            eprintln!(
                "  {what}: CREATE_FAILED on a service's 500, deleting and creating again: {}",
                brief(&snapshot)
            );
            // Its delete may meet the same 500: up to three, until the
            // stack (and so its name) is gone.
            let mut left = None;
            for _ in 0..3 {
                self.heat.delete(&mut self.conn, &id).expect("delete");
                left = wait(&self.heat, &mut self.conn, &id);
                if left.is_none() {
                    break;
                }
            }
            assert!(
                left.is_none(),
                "{what}: the failed stack cannot be deleted: {:?}",
                left.as_ref().map(brief)
            );
            // Heat marks a stack DELETE_COMPLETE a moment before it frees
            // the name (soft delete), so a create at once can meet 409
            // StackExists (seen in CI); a few more tries, 2 s apart.
            let mut tries = 0;
            loop {
                match self.create_once(what, op) {
                    Err(e) if e.contains("(409)") && tries < 5 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_secs(2));
                    }
                    other => return other,
                }
            }
        }
        Ok((id, snapshot))
    }

    fn create_once(
        &mut self,
        what: &str,
        op: &StackOperation,
    ) -> Result<(String, StackSnapshot), String> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let t = Instant::now();
        let id = self
            .heat
            .create(&mut self.conn, "ignored", None, op)
            .map_err(|e| e.to_string())?;
        let player = play_nodes(
            self.h,
            self.rt,
            &self.cloud.project,
            &self.cloud.service,
            &self.cloud.service,
            &op.stack_name,
            Play::Succeed {
                coe_version: "played".into(),
            },
            stop.clone(),
        );
        let snapshot = wait(&self.heat, &mut self.conn, &id);
        let signalled = stop_playing(self.rt, &stop, player);
        self.times.record(
            &format!("{what}: create ({signalled} nodes signalled)"),
            t.elapsed(),
        );
        let snapshot = snapshot.ok_or_else(|| format!("stack {id} vanished"))?;
        self.totals.stacks += 1;
        Ok((id, snapshot))
    }

    fn check(&mut self, what: &str, op: &StackOperation, id: &str, expect: &Expect) -> Found {
        let t = Instant::now();
        let found = self
            .rt
            .block_on(check_stack(&self.cloud, &op.stack_name, id, expect))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        self.times.record(&format!("{what}: check"), t.elapsed());
        eprintln!(
            "  {what}: {} servers, {} ports, {} security group rules, {} floating IPs checked",
            found.servers.len(),
            found.ports.len(),
            found.rules,
            found.floating_ips.len()
        );
        self.totals.servers += found.servers.len();
        self.totals.ports += found.ports.len();
        self.totals.rules += found.rules;
        self.totals.floating_ips += found.floating_ips.len();
        found
    }

    fn delete(&mut self, what: &str, id: &str, found: &Found) {
        let t = Instant::now();
        self.heat.delete(&mut self.conn, id).expect("delete");
        let mut after = wait(&self.heat, &mut self.conn, id);
        // A service's 500 during the delete (seen: Keystone, on SQLite,
        // deleting a wait condition handle's user on a loaded machine) is
        // what an operator answers by deleting again; once, and said.
        if let Some(failed) = after
            .as_ref()
            .filter(|s| s.status == "DELETE_FAILED" && s.status_reason.contains("(HTTP 500)"))
        {
            eprintln!(
                "  {what}: DELETE_FAILED on a service's 500, deleting again: {}",
                failed.status_reason
            );
            self.heat.delete(&mut self.conn, id).expect("delete again");
            after = wait(&self.heat, &mut self.conn, id);
        }
        assert!(
            after.is_none(),
            "{what}: the deleted stack is still there: {after:?}"
        );
        let gone = self
            .rt
            .block_on(check_gone(&self.cloud, found))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        self.totals.gone += gone;
        self.times.record(&format!("{what}: delete"), t.elapsed());
    }

    fn rules(&self, resources: &[Value], name: &str) -> (String, Vec<Value>) {
        let sg = id_named(resources, name).unwrap_or_else(|| panic!("no {name}"));
        let rules = self
            .rt
            .block_on(secgroup_rules(&self.cloud, &sg))
            .expect("rules");
        (sg, rules)
    }

    fn resources(&self, op: &StackOperation, id: &str) -> Vec<Value> {
        self.rt
            .block_on(self.cloud.resources(&op.stack_name, id))
            .expect("resources")
    }
}

/// A stack's status and the start of its reason, for assertion messages:
/// Nova's and Heat's reasons can quote the whole user data, whose
/// heat-params hold the wait handle's token and the cluster credential.
fn brief(s: &StackSnapshot) -> String {
    let reason: String = s.status_reason.chars().take(300).collect();
    format!("{} {}: {reason}", s.stack_id, s.status)
}

fn pod_cidr(op: &StackOperation, parameter: &str) -> Option<String> {
    op.parameters
        .get(parameter)
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

#[test]
fn driver_stacks_on_real_nova_and_neutron() {
    let mut harness = match Harness::start(true) {
        Ok(h) => h,
        Err(reason) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping the real cloud tests: {reason}");
            return;
        }
        Err(reason) => panic!("CI=true and the harnesses cannot run: {reason}"),
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let target = DbTarget::parse(&format!("sqlite://{}/unused.sqlite", dir.path().display()))
        .expect("db target");
    // The Heat orchestrator keeps nothing in the database; the trait passes one.
    let conn = db::establish(&target).expect("sqlite connection");
    let cloud = Cloud::new(&harness, &rt);
    rt.block_on(cloud.call(
        reqwest::Method::POST,
        &format!("{}/os-keypairs", cloud.nova),
        &cloud.service,
        Some(json!({"keypair": {"name": KEYPAIR, "type": "ssh", "public_key": PUBLIC_KEY}})),
    ))
    .expect("the service user's keypair");
    let mut run = Run {
        h: &harness,
        rt: &rt,
        heat: orchestrator(&harness, HeatSettings::default(), &rt),
        conn,
        cloud,
        times: Times::default(),
        totals: Totals::default(),
    };

    // REALCLOUD_ONLY=heat|stacks|nodes: only that part (a quicker run
    // while working on one; CI runs everything).
    let only = std::env::var("REALCLOUD_ONLY").ok();
    let part = |p: &str| only.as_deref().is_none_or(|o| o == p);
    if part("heat") {
        let t = Instant::now();
        heat::mapped_heat_checks(&harness, &rt, &mut run.conn, &mut run.times);
        run.times
            .record("heat: the orchestrator's own paths (mapped)", t.elapsed());
    }
    if part("stacks") {
        k8s_single_master_and_nodegroup(&mut run);
        k8s_three_masters_behind_a_load_balancer(&mut run);
        k8s_fixed_network(&mut run);
        swarm_and_mesos(&mut run);
        broken_on_purpose(&mut run);
    }
    if part("nodes") {
        nodes_in_the_sandbox(&mut run);
    }

    // Nothing of any stack is left.
    let servers = rt
        .block_on(
            run.cloud
                .get(&format!("{}/servers?all_tenants=true", run.cloud.nova)),
        )
        .expect("servers");
    assert_eq!(servers["servers"], json!([]), "servers left in Nova");

    let t = &run.totals;
    eprintln!(
        "checked in real Nova/Neutron: {} stacks, {} servers, {} ports, {} security group \
         rules, {} floating IPs; {} resources found gone after delete",
        t.stacks, t.servers, t.ports, t.rules, t.floating_ips, t.gone
    );
    eprintln!("wall times against real Heat, Nova and Neutron:");
    for (what, took) in &run.times.0 {
        eprintln!("  {what:<55} {took:>10.2?}");
    }
    drop(run);
    harness.stop();
}

fn k8s_expect(op: &StackOperation, masters: usize, workers: usize) -> Expect {
    Expect {
        master_group: "default-master".into(),
        worker_group: "default-worker".into(),
        masters,
        workers,
        pod_cidr: pod_cidr(op, "pods_network_cidr"),
        floating_ips: true,
        ..Default::default()
    }
}

/// One master and one worker on a private network of the stack's own, with
/// floating IPs; then an extra worker nodegroup (its own stack) that joins
/// the cluster's network and worker security group.
fn k8s_single_master_and_nodegroup(run: &mut Run) {
    let driver = K8sFedoraAtomicDriver::new(&DriverConfig::new()).expect("driver");
    let req = request(
        "kubernetes",
        "rc-k8s",
        "cccccccc-2222-0000-0000-000000000001",
        1,
        1,
    );
    let op = mapped(driver.create_cluster(&req).expect("create plan"));
    assert_eq!(
        run.heat
            .find(&mut run.conn, &op.stack_name, None)
            .expect("find"),
        None
    );
    let (id, created) = run.create("k8s 1 master", &op).expect("create");
    assert_eq!(created.status, "CREATE_COMPLETE", "{}", brief(&created));
    // Without a trust the stack is the service project's, found there.
    assert_eq!(
        run.heat
            .find(&mut run.conn, &op.stack_name, None)
            .expect("find"),
        Some(id.clone())
    );
    let mut expect = k8s_expect(&op, 1, 1);
    expect.router_gateway = Some(run.h.get("NET_PUBLIC_ID").to_owned());
    assert!(expect.pod_cidr.is_some(), "{:?}", op.parameters);
    let found = run.check("k8s 1 master", &op, &id, &expect);

    // The rules the driver intends (cluster.yaml, secgroup_peer.yaml).
    let resources = run.resources(&op, &id);
    let (master_sg, master_rules) = run.rules(&resources, "secgroup_kube_master");
    let (minion_sg, minion_rules) = run.rules(&resources, "secgroup_kube_minion");
    assert!(
        has_rule(&master_rules, "tcp", Some(6443), None),
        "{master_rules:?}"
    );
    // Kubelets (10250) and etcd peers between masters, from workers too.
    for (rules, from) in [
        (&master_rules, &master_sg),
        (&master_rules, &minion_sg),
        (&minion_rules, &master_sg),
        (&minion_rules, &minion_sg),
    ] {
        assert!(has_rule(rules, "tcp", Some(10250), Some(from)), "{rules:?}");
        assert!(has_rule(rules, "udp", Some(8472), Some(from)), "{rules:?}");
        // Calico's IP-in-IP (protocol 4; Neutron names it ipip).
        assert!(
            has_rule(rules, "4", None, Some(from)) || has_rule(rules, "ipip", None, Some(from)),
            "{rules:?}"
        );
    }
    assert_eq!(
        open_to_world(&minion_rules),
        None,
        "workers open to the world"
    );
    assert_eq!(
        open_to_world(&master_rules),
        None,
        "masters open to the world"
    );

    // An extra worker nodegroup, as the conductor creates it: with the
    // cluster stack's outputs.
    let mut base = req.clone();
    base.cluster.stack_id = Some(id.clone());
    base.cluster.api_address = created.outputs["api_address"]
        .as_str()
        .map(|a| format!("https://{a}:6443"));
    base.context.extra.insert(
        "cluster_stack_outputs".into(),
        Value::Object(created.outputs.clone()),
    );
    let ng_req = NodeGroupRequest {
        base,
        nodegroup: nodegroup(EXTRA, "extra", "worker", 2, false),
    };
    let ng_op = mapped(driver.create_nodegroup(&ng_req).expect("nodegroup plan"));
    assert_ne!(ng_op.stack_name, op.stack_name);
    let (ng_id, ng) = run
        .create("k8s nodegroup", &ng_op)
        .expect("create nodegroup");
    assert_eq!(ng.status, "CREATE_COMPLETE", "{}", brief(&ng));
    let ng_expect = Expect {
        master_group: String::new(),
        worker_group: "extra".into(),
        masters: 0,
        workers: 2,
        network: found.networks.first().cloned(),
        worker_secgroup: Some(minion_sg),
        pod_cidr: expect.pod_cidr.clone(),
        ..Default::default()
    };
    let ng_found = run.check("k8s nodegroup", &ng_op, &ng_id, &ng_expect);
    run.delete("k8s nodegroup", &ng_id, &ng_found);
    run.delete("k8s 1 master", &id, &found);
}

/// Three masters behind a load balancer (Octavia mapped to None) with
/// floating IPs.
fn k8s_three_masters_behind_a_load_balancer(run: &mut Run) {
    let driver = K8sFedoraAtomicDriver::new(&DriverConfig::new()).expect("driver");
    let mut req = request(
        "kubernetes",
        "rc-k8s-ha",
        "cccccccc-2222-0000-0000-000000000002",
        3,
        1,
    );
    req.template.master_lb_enabled = true;
    let op = mapped(driver.create_cluster(&req).expect("create plan"));
    let (id, created) = run.create("k8s 3 masters + lb", &op).expect("create");
    assert_eq!(created.status, "CREATE_COMPLETE", "{}", brief(&created));
    let mut expect = k8s_expect(&op, 3, 1);
    expect.router_gateway = Some(run.h.get("NET_PUBLIC_ID").to_owned());
    let mut found = run.check("k8s 3 masters + lb", &op, &id, &expect);
    // The API's floating IP is on the load balancer's VIP port, and the
    // stack's api_address is that floating IP.
    let resources = run.resources(&op, &id);
    let vip = id_named(&resources, "vip").expect("the VIP port");
    let fip = id_named(&resources, "api_lb_floating").expect("the API's floating IP");
    let shown = run
        .rt
        .block_on(
            run.cloud
                .get(&format!("{}/v2.0/floatingips/{fip}", run.cloud.neutron)),
        )
        .expect("the floating IP");
    assert_eq!(shown["floatingip"]["port_id"], vip.as_str(), "{shown}");
    assert_eq!(
        created.outputs["api_address"],
        shown["floatingip"]["floating_ip_address"]
    );
    found.ports.push(vip);
    found.floating_ips.push(fip);
    run.delete("k8s 3 masters + lb", &id, &found);
}

/// The seeded `private` network as the cluster's fixed network: no network
/// or router of its own, no floating IPs.
fn k8s_fixed_network(run: &mut Run) {
    let driver = K8sFedoraAtomicDriver::new(&DriverConfig::new()).expect("driver");
    let mut req = request(
        "kubernetes",
        "rc-k8s-fixed",
        "cccccccc-2222-0000-0000-000000000003",
        1,
        1,
    );
    req.template.fixed_network = Some("private".into());
    req.template.fixed_subnet = Some("private-subnet".into());
    req.template.floating_ip_enabled = false;
    let op = mapped(driver.create_cluster(&req).expect("create plan"));
    let (id, created) = run.create("k8s fixed network", &op).expect("create");
    assert_eq!(created.status, "CREATE_COMPLETE", "{}", brief(&created));
    let mut expect = k8s_expect(&op, 1, 1);
    expect.network = Some(run.h.get("NET_PRIVATE_ID").to_owned());
    expect.floating_ips = false;
    expect.router_gateway = None;
    let found = run.check("k8s fixed network", &op, &id, &expect);
    assert!(
        found.networks.is_empty() && found.routers.is_empty(),
        "{found:?}"
    );
    run.delete("k8s fixed network", &id, &found);
    // The seeded network outlives the cluster.
    assert!(!rt_gone(
        run,
        &format!(
            "{}/v2.0/networks/{}",
            run.cloud.neutron,
            run.h.get("NET_PRIVATE_ID")
        )
    ));
}

fn rt_gone(run: &Run, url: &str) -> bool {
    run.rt.block_on(run.cloud.gone(url)).expect("GET")
}

/// Swarm (flannel: the pod network as an address pair) and Mesos, one
/// master and one worker each.
fn swarm_and_mesos(run: &mut Run) {
    let swarm = SwarmFedoraAtomicDriver::new(&DriverConfig::new()).expect("driver");
    // Classic Swarm: its flannel network (swarm-mode has Docker's own
    // overlay, and no address pairs) is what needs the pair.
    let mut req = request(
        "swarm",
        "rc-swarm",
        "cccccccc-2222-0000-0000-000000000004",
        1,
        1,
    );
    req.template.network_driver = Some("flannel".into());
    let op = mapped(swarm.create_cluster(&req).expect("swarm plan"));
    let (id, created) = run.create("swarm", &op).expect("create");
    assert_eq!(created.status, "CREATE_COMPLETE", "{}", brief(&created));
    let expect = Expect {
        master_group: "default-master".into(),
        worker_group: "default-worker".into(),
        masters: 1,
        workers: 1,
        pod_cidr: pod_cidr(&op, "flannel_network_cidr"),
        floating_ips: true,
        router_gateway: Some(run.h.get("NET_PUBLIC_ID").to_owned()),
        ..Default::default()
    };
    assert!(expect.pod_cidr.is_some(), "{:?}", op.parameters);
    let found = run.check("swarm", &op, &id, &expect);
    let resources = run.resources(&op, &id);
    let (_, node_rules) = run.rules(&resources, "secgroup_swarm_node");
    assert_eq!(
        open_to_world(&node_rules),
        None,
        "swarm workers open to the world"
    );
    run.delete("swarm", &id, &found);

    let mesos = MesosUbuntuDriver::new(&DriverConfig::new()).expect("driver");
    let req = request(
        "mesos",
        "rc-mesos",
        "cccccccc-2222-0000-0000-000000000005",
        1,
        1,
    );
    let op = mapped(mesos.create_cluster(&req).expect("mesos plan"));
    let (id, created) = run.create("mesos", &op).expect("create");
    assert_eq!(created.status, "CREATE_COMPLETE", "{}", brief(&created));
    let expect = Expect {
        master_group: "default-master".into(),
        worker_group: "default-worker".into(),
        masters: 1,
        workers: 1,
        floating_ips: true,
        router_gateway: Some(run.h.get("NET_PUBLIC_ID").to_owned()),
        ..Default::default()
    };
    let found = run.check("mesos", &op, &id, &expect);
    let resources = run.resources(&op, &id);
    let (master_sg, master_rules) = run.rules(&resources, "secgroup_master");
    assert!(
        has_rule(&master_rules, "tcp", Some(5050), None),
        "{master_rules:?}"
    );
    assert!(
        has_rule(&master_rules, "tcp", Some(2181), Some(&master_sg)),
        "{master_rules:?}"
    );
    let (_, slave_rules) = run.rules(&resources, "secgroup_slave");
    assert_eq!(
        open_to_world(&slave_rules),
        None,
        "mesos agents open to the world"
    );
    run.delete("mesos", &id, &found);
}

/// One thing broken on purpose per class: a property name Heat's real
/// resource type does not have, and a port without its address pair.
fn broken_on_purpose(run: &mut Run) {
    let driver = K8sFedoraAtomicDriver::new(&DriverConfig::new()).expect("driver");

    // `fixed_ip` for `fixed_ips` on the masters' ports.
    let mut req = request(
        "kubernetes",
        "rc-bad-property",
        "cccccccc-2222-0000-0000-000000000006",
        1,
        1,
    );
    req.template.fixed_network = Some("private".into());
    req.template.fixed_subnet = Some("private-subnet".into());
    req.template.floating_ip_enabled = false;
    let mut op = mapped(driver.create_cluster(&req).expect("create plan"));
    let port = op
        .files
        .get_mut("master_port.yaml")
        .expect("master_port.yaml in the plan");
    assert!(port.contains("      fixed_ips:\n"), "{port}");
    *port = port.replace("      fixed_ips:\n", "      fixed_ip:\n");
    let message = match run.create("broken: property name", &op) {
        Err(rejected) => rejected,
        Ok((id, failed)) => {
            assert_eq!(failed.status, "CREATE_FAILED", "{}", brief(&failed));
            run.heat.delete(&mut run.conn, &id).expect("delete");
            assert_eq!(wait(&run.heat, &mut run.conn, &id), None);
            failed.status_reason
        }
    };
    let shown: String = message.chars().take(300).collect();
    eprintln!("  bad property name fails as: {shown}");
    assert!(message.contains("fixed_ip"), "{shown}");

    // The workers' ports without allowed_address_pairs: Neutron takes
    // them, the check names the port.
    let mut req = request(
        "kubernetes",
        "rc-no-pair",
        "cccccccc-2222-0000-0000-000000000007",
        1,
        1,
    );
    req.template.fixed_network = Some("private".into());
    req.template.fixed_subnet = Some("private-subnet".into());
    req.template.floating_ip_enabled = false;
    let mut op = mapped(driver.create_cluster(&req).expect("create plan"));
    let worker = op
        .files
        .get_mut("worker.yaml")
        .expect("worker.yaml in the plan");
    let pairs =
        "      allowed_address_pairs:\n        - ip_address: {get_param: pod_network_cidr}\n";
    assert!(worker.contains(pairs), "{worker}");
    *worker = worker.replace(pairs, "");
    let (id, created) = run.create("broken: no address pair", &op).expect("create");
    assert_eq!(created.status, "CREATE_COMPLETE", "{}", brief(&created));
    let mut expect = k8s_expect(&op, 1, 1);
    expect.network = Some(run.h.get("NET_PRIVATE_ID").to_owned());
    expect.floating_ips = false;
    expect.router_gateway = None;
    let resources = run.resources(&op, &id);
    let worker_port = id_named(&resources, "kube_minion_eth0").expect("the worker's port");
    let err = run
        .rt
        .block_on(check_stack(&run.cloud, &op.stack_name, &id, &expect))
        .expect_err("a port without its address pair must fail the check");
    eprintln!("  missing address pair fails as: {err}");
    assert!(
        err.contains(&worker_port) && err.contains("address pair"),
        "{err}"
    );
    let mut found = Found {
        servers: ids_of(&resources, "OS::Nova::Server"),
        ports: vec![worker_port],
        ..Default::default()
    };
    found.secgroups = ids_of(&resources, "OS::Neutron::SecurityGroup");
    run.delete("broken: no address pair", &id, &found);
}

/// The bundled drivers' libraries (`cdylib`s, dev-dependencies of this
/// crate, so cargo builds them for this test), registered in a plugins dir
/// as magnumd loads them.
fn bundled_registry() -> (tempfile::TempDir, magnum_host::plugins::Registry) {
    use magnum_host::plugins::{
        manifest::{self, Manifest, Registered},
        Registry,
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let plugins = tempfile::tempdir().expect("plugins dir");
    for (name, lib) in [
        ("k8s_fedora_atomic_v1", "magnum_driver_k8s_fedora_atomic"),
        (
            "swarm_fedora_atomic_v1",
            "magnum_driver_swarm_fedora_atomic",
        ),
        ("mesos_ubuntu_v1", "magnum_driver_mesos_ubuntu"),
    ] {
        let file = format!("lib{lib}.so");
        let library = [
            target.join("debug/deps").join(&file),
            target.join("debug").join(&file),
        ]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{file} not built; run cargo build --workspace"));
        let m = Manifest {
            name: name.into(),
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
    }
    let registry = Registry::load(plugins.path()).expect("registry");
    assert_eq!(registry.loaded().count(), 3, "{registry:?}");
    (plugins, registry)
}

/// The keypair of the clusters magnumd makes.
const NODES_KEYPAIR: &str = "magnum-realnodes";

/// magnumd in keystone mode with the heat orchestrator, in this process:
/// its API served on a 127.0.0.1 port that its `[api] public_url` names
/// (the nodes' `MAGNUM_URL`), a conductor creating each cluster's stack in
/// the demo project through the cluster's trust, with only Cinder and
/// Octavia mapped to `OS::Heat::None` (`[heat] resource_registry`).
struct Magnum {
    port: u16,
    /// The demo user's token: the clusters are demo's.
    demo: String,
    /// magnumd's database (the rows' trusts).
    pool: magnum_host::db::DbPool,
    http: reqwest::Client,
    stop: tokio::sync::watch::Sender<bool>,
    conductor: Option<tokio::task::JoinHandle<()>>,
    _plugins: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Magnum {
    fn start(h: &Harness, rt: &tokio::runtime::Runtime) -> Self {
        use magnum_host::{
            api::{router, AppState, Identity},
            conductor::{Conductor, Settings},
        };
        use std::sync::Arc;

        // The conductor's and API's log (no secret is ever logged), shown
        // when the test fails.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("MAGNUM_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("magnum_host=info")),
            )
            .with_test_writer()
            .try_init();
        let (plugins, registry) = bundled_registry();
        let data = tempfile::tempdir().expect("data dir");
        let pool = magnum_host::db::DbPool::connect(&format!(
            "sqlite://{}",
            data.path().join("magnum.sqlite").display()
        ))
        .expect("sqlite");
        db::migrate(&mut pool.get().expect("conn")).expect("migrate");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();

        let service = KeystoneClient::new(h.auth("magnum", "KEYSTONE_MAGNUM_PASSWORD", "service"))
            .expect("service client");
        let mut state = AppState::new(registry, pool.clone());
        state.identity = Identity::Keystone(service.clone());
        state.settings.cluster_trusts = true;
        state.settings.public_url = Some(format!("http://127.0.0.1:{port}/v1"));
        state.catalog = magnum_host::api::CloudCatalog::OpenStack(
            magnum_host::api::OpenStackCatalog::new(service, Duration::from_secs(10))
                .expect("catalog"),
        );
        let state = Arc::new(state);
        let settings = HeatSettings {
            resource_registry: NONE_TYPES
                .iter()
                .map(|t| ((*t).to_owned(), "OS::Heat::None".to_owned()))
                .collect(),
            ..Default::default()
        };
        let heat = Arc::new(orchestrator(h, settings, rt));
        let conductor = Arc::new(Conductor::new(
            state.clone(),
            heat,
            Settings {
                host: "realcloud".into(),
                idle_poll: Duration::from_millis(200),
                poll_cap: Duration::from_secs(2),
                concurrency: 2,
                ..Default::default()
            },
        ));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let conductor = rt.spawn(conductor.run(stop_rx.clone()));
        let app = router(state);
        let mut server_stop = stop_rx;
        rt.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = server_stop.changed().await;
                })
                .await;
        });
        let demo = KeystoneClient::new(h.auth("demo", "KEYSTONE_DEMO_PASSWORD", "demo"))
            .expect("demo client");
        let demo = rt
            .block_on(demo.service_token())
            .expect("demo login")
            .expose()
            .to_owned();
        Self {
            port,
            demo,
            pool,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http"),
            stop,
            conductor: Some(conductor),
            _plugins: plugins,
            _data: data,
        }
    }

    /// One API call as the demo user: the status and the JSON body.
    fn call(
        &self,
        rt: &tokio::runtime::Runtime,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("http://127.0.0.1:{}{path}", self.port))
            .header("X-Auth-Token", &self.demo)
            .header("OpenStack-API-Version", "container-infra latest");
        if let Some(body) = body {
            request = request.json(&body);
        }
        rt.block_on(async {
            let r = request.send().await.expect("magnumd answers");
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or_default())
        })
    }

    fn stop(&mut self, rt: &tokio::runtime::Runtime) {
        let _ = self.stop.send(true);
        if let Some(conductor) = self.conductor.take() {
            rt.block_on(conductor).expect("conductor stops");
        }
    }
}

/// A server of a cluster as Nova shows it to an admin: its name, role
/// (`nodegroup_role` metadata), fixed address and user data.
#[derive(Debug, Clone)]
struct NovaServer {
    id: String,
    role: String,
    node: sandbox::Node,
}

/// The stack named `name` in `project`, as `token` (of that project) sees
/// it (`Ok(None)` when Heat has no such stack there).
async fn find_stack(
    cloud: &Cloud,
    project: &str,
    token: &str,
    name: &str,
) -> Result<Option<Value>, String> {
    let url = format!("{}/{project}/stacks/{name}", cloud.heat);
    let r = cloud
        .http
        .get(&url)
        .header("X-Auth-Token", token)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let Some(location) = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned)
    else {
        return Ok(None);
    };
    Ok(cloud
        .call(reqwest::Method::GET, &location, token, None)
        .await?
        .map(|s| s["stack"].clone()))
}

/// The stacks named `name` that `project` lists (as `token`, of that
/// project) and Heat has not deleted (it keeps deleted ones).
async fn live_stacks(
    cloud: &Cloud,
    project: &str,
    token: &str,
    name: &str,
) -> Result<Vec<Value>, String> {
    let url = format!("{}/{project}/stacks?name={name}", cloud.heat);
    let listing = cloud
        .call(reqwest::Method::GET, &url, token, None)
        .await?
        .ok_or_else(|| format!("GET {url}: 404"))?;
    Ok(listing["stacks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["stack_status"] != "DELETE_COMPLETE")
        .cloned()
        .collect())
}

/// Every resource of the demo project's stack `stack` (its `links.self`)
/// and of its nested stacks.
async fn demo_resources(cloud: &Cloud, token: &str, stack: &Value) -> Result<Vec<Value>, String> {
    let href = stack["links"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["rel"] == "self"))
        .and_then(|l| l["href"].as_str())
        .ok_or_else(|| format!("no self link: {stack}"))?;
    let url = format!("{href}/resources?nested_depth=5");
    let listing = cloud
        .call(reqwest::Method::GET, &url, token, None)
        .await?
        .ok_or_else(|| format!("GET {url}: 404"))?;
    Ok(listing["resources"].as_array().cloned().unwrap_or_default())
}

/// The servers of `stack` that Nova has ACTIVE, with their user data as
/// Nova holds it (`OS-EXT-SRV-ATTR:user_data`, base64,
/// admin at microversion 2.92).
async fn nova_servers(
    cloud: &Cloud,
    token: &str,
    stack: &Value,
) -> Result<Vec<NovaServer>, String> {
    use base64::Engine as _;
    let resources = demo_resources(cloud, token, stack).await?;
    let ids = ids_of(&resources, "OS::Nova::Server");
    let mut servers = Vec::new();
    for id in ids {
        let shown = cloud.get(&format!("{}/servers/{id}", cloud.nova)).await?;
        let server = &shown["server"];
        match server["status"].as_str() {
            Some("ACTIVE") => {}
            Some("ERROR") => {
                return Err(format!(
                    "server {id} is ERROR: {}",
                    server["fault"]["message"]
                ))
            }
            _ => continue,
        }
        let user_data = server["OS-EXT-SRV-ATTR:user_data"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|raw| String::from_utf8_lossy(&raw).into_owned())
            .ok_or_else(|| format!("server {id}: no user data in Nova"))?;
        let address = server["addresses"]
            .as_object()
            .into_iter()
            .flat_map(|nets| nets.values())
            .filter_map(Value::as_array)
            .flatten()
            .find(|a| a["OS-EXT-IPS:type"] == "fixed" && a["version"] == 4)
            .and_then(|a| a["addr"].as_str())
            .ok_or_else(|| format!("server {id}: no fixed IPv4 address"))?
            .to_owned();
        servers.push(NovaServer {
            id: id.clone(),
            role: server["metadata"]["nodegroup_role"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            node: sandbox::Node {
                name: server["name"].as_str().unwrap_or_default().to_owned(),
                address,
                user_data,
            },
        });
    }
    // Masters first, when both are new.
    servers.sort_by(|a, b| {
        (a.role != "master", &a.node.name).cmp(&(b.role != "master", &b.node.name))
    });
    Ok(servers)
}

/// The ACTIVE servers of the stack `name` of `project` (none before Heat
/// has the stack).
async fn stack_servers(
    cloud: &Cloud,
    project: &str,
    token: &str,
    name: &str,
) -> Result<Vec<NovaServer>, String> {
    match find_stack(cloud, project, token, name).await? {
        Some(stack) => nova_servers(cloud, token, &stack).await,
        None => Ok(Vec::new()),
    }
}

/// What the nodes of each `OS::Heat::WaitCondition` of the stack told
/// Heat: the `data` attribute (a JSON text: signal id -> the node's data).
async fn wait_condition_data(
    cloud: &Cloud,
    token: &str,
    stack: &Value,
) -> Result<Vec<String>, String> {
    let mut data = Vec::new();
    for r in demo_resources(cloud, token, stack)
        .await?
        .iter()
        .filter(|r| r["resource_type"] == "OS::Heat::WaitCondition")
    {
        let Some(show) = r["links"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["rel"] == "self"))
            .and_then(|l| l["href"].as_str())
        else {
            continue;
        };
        let shown = cloud
            .call(reqwest::Method::GET, show, token, None)
            .await?
            .unwrap_or_default();
        let value = &shown["resource"]["attributes"]["data"];
        data.push(
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned),
        );
    }
    Ok(data)
}

/// One cluster made through magnumd's API whose nodes ran in the sandbox.
struct Booted {
    uuid: String,
    stack_name: String,
    /// A token of the stack's project.
    token: String,
    /// The cluster once it left CREATE_IN_PROGRESS.
    cluster: Value,
    /// The stack as Heat shows it then.
    stack: Value,
    servers: Vec<NovaServer>,
    runs: Vec<sandbox::NodeRun>,
}

impl Booted {
    /// Asserts that the cluster's first master, and no node before it,
    /// failed `step` and that real Heat failed the stack, and magnumd the
    /// cluster, with a reason naming that node's step and `detail`; returns
    /// the failed node's index.
    fn failed_master_naming(&self, what: &str, step: &str, detail: &str) -> usize {
        let failed = self
            .runs
            .iter()
            .position(|r| r.status != Some(0))
            .unwrap_or_else(|| panic!("no node failed: {:?}", self.runs));
        assert_eq!(self.servers[failed].role, "master");
        let step = format!(
            "{}: bootstrap step {step} failed",
            self.servers[failed].node.name
        );
        let stack_reason = self.stack["stack_status_reason"]
            .as_str()
            .unwrap_or_default();
        let shown: String = stack_reason.chars().take(400).collect();
        eprintln!("  {what} fails the stack as: {shown}");
        assert_eq!(self.stack["stack_status"], "CREATE_FAILED", "{shown}");
        assert!(
            stack_reason.contains(&step) && stack_reason.contains(detail),
            "{shown}"
        );
        let reason = self.cluster["status_reason"].as_str().unwrap_or_default();
        assert_eq!(self.cluster["status"], "CREATE_FAILED", "{}", self.cluster);
        assert!(
            reason.contains(&step) && reason.contains(detail),
            "{reason}"
        );
        failed
    }
}

/// The sandbox's side of the test: the mirror and the ports a node reaches.
struct Nodes {
    dir: PathBuf,
    mirror: sandbox::Mirror,
    magnum: Magnum,
    heat_port: u16,
}

impl Nodes {
    /// Template `name` with `fields`, a cluster of it with `masters` and
    /// `workers`; once Nova has every server, each one's user data runs in
    /// the sandbox (`extra`: run-node arguments), reaching only magnumd,
    /// the mirror's proxy and heat-api on 127.0.0.1. Returns when the
    /// cluster has left CREATE_IN_PROGRESS.
    fn boot(
        &self,
        run: &mut Run,
        name: &str,
        fields: Value,
        masters: usize,
        workers: usize,
        extra: &[String],
    ) -> Booted {
        self.boot_on(run, name, fields, masters, workers, extra, None)
    }

    /// [`Self::boot`], each node plugged into `network` (its Neutron fixed
    /// address on the cluster's /24) when given, so that the nodes reach
    /// each other. Each node runs as soon as Nova has its server, while
    /// the others still run.
    #[expect(clippy::too_many_arguments, reason = "boot's, and the network")]
    fn boot_on(
        &self,
        run: &mut Run,
        name: &str,
        fields: Value,
        masters: usize,
        workers: usize,
        extra: &[String],
        network: Option<&sandbox::ClusterNetwork>,
    ) -> Booted {
        let mut template = json!({
            "name": name, "image_id": "fedora-atomic-latest",
            "external_network_id": "public", "flavor_id": "m1.small",
            "master_flavor_id": "m1.medium", "keypair_id": NODES_KEYPAIR,
        });
        if let (Some(t), Some(f)) = (template.as_object_mut(), fields.as_object()) {
            t.extend(f.clone());
        }
        let (status, body) = self.magnum.call(
            run.rt,
            reqwest::Method::POST,
            "/v1/clustertemplates",
            Some(template),
        );
        assert_eq!(status, 201, "template {name}: {body}");
        let t = Instant::now();
        let (status, body) = self.magnum.call(
            run.rt,
            reqwest::Method::POST,
            "/v1/clusters",
            Some(json!({"name": name, "cluster_template_id": name,
                        "master_count": masters, "node_count": workers})),
        );
        assert_eq!(status, 202, "cluster {name}: {body}");
        let uuid = body["uuid"].as_str().expect("uuid").to_owned();
        let stack_name = magnum_driver_abi::convention::stack_name(name, &uuid);
        let path = format!("/v1/clusters/{uuid}");
        let tls = fields["coe"] != "mesos";
        // The conductor makes every driver's stack in the demo project
        // through the cluster's trust, which it gives the orchestrator (the
        // plans carry none): the demo user, who is no admin and so sees
        // only its project's stacks, finds it by name, and its canonical
        // link is in the demo project. (The service user is an admin: Heat
        // would find the stack by name from any project.)
        let project = run.cloud.demo_project.clone();
        let token = self.magnum.demo.clone();
        let deadline = Instant::now() + Duration::from_secs(120);
        let found = loop {
            let stack = run
                .rt
                .block_on(find_stack(&run.cloud, &project, &token, &stack_name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(stack) = stack {
                break stack;
            }
            let (_, cluster) = self.magnum.call(run.rt, reqwest::Method::GET, &path, None);
            assert!(
                cluster["status"] == "CREATE_IN_PROGRESS" && Instant::now() < deadline,
                "{name}: the demo project has no stack {stack_name}: {cluster}"
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        let link = found["links"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["rel"] == "self"))
            .and_then(|l| l["href"].as_str())
            .unwrap_or_default();
        assert!(
            link.contains(&format!("/{project}/stacks/{stack_name}/")),
            "{name}: the stack is not the demo project's: {link}"
        );
        eprintln!("  {name}: stack {stack_name} in the demo project, through the cluster's trust");

        // Each server as soon as Nova has it ACTIVE: a worker's server is
        // made only once the masters' wait conditions completed (the k8s
        // workers depend on the masters), that is once the masters ran.
        let forward = [self.magnum.port, self.mirror.proxy_port, self.heat_port];
        let mut servers: Vec<NovaServer> = Vec::new();
        let mut running = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(600);
        while servers.len() < masters + workers {
            let active = run
                .rt
                .block_on(stack_servers(&run.cloud, &project, &token, &stack_name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let new: Vec<NovaServer> = active
                .into_iter()
                .filter(|s| !servers.iter().any(|r| r.id == s.id))
                .collect();
            if new.is_empty() {
                let (_, cluster) = self.magnum.call(run.rt, reqwest::Method::GET, &path, None);
                if cluster["status"] != "CREATE_IN_PROGRESS" {
                    // Done (or failed) before every node ran: said by the
                    // checks of the caller.
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name}: Nova never had all its servers ACTIVE ({} ran)",
                    servers.len()
                );
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            for server in new {
                let node = &server.node;
                // The user data as Heat rendered it and Nova holds it: the
                // API it fetches its certificates from, and the wait
                // condition handle of real Heat, both on ports forwarded
                // into the sandbox.
                // (Mesos nodes have no certificates, and no MAGNUM_URL.)
                let magnum_url = sandbox::heat_param(&node.user_data, "MAGNUM_URL");
                if tls || magnum_url.is_some() {
                    assert_eq!(
                        magnum_url,
                        Some(format!("http://127.0.0.1:{}/v1", self.magnum.port)),
                        "{}",
                        node.name
                    );
                }
                let endpoint = sandbox::heat_param(&node.user_data, "WAIT_HANDLE_ENDPOINT")
                    .unwrap_or_default();
                assert!(
                    endpoint.starts_with(&format!("http://127.0.0.1:{}/", self.heat_port)),
                    "{}: the handle is real Heat's: {endpoint}",
                    node.name
                );
                let mut args = extra.to_vec();
                if let Some(network) = network {
                    args.extend(network.args(&node.address, 24));
                }
                let (node, dir, role) = (node.clone(), self.dir.join(name), server.role.clone());
                let label = name.to_owned();
                running.push(std::thread::spawn(move || {
                    let node_run = sandbox::run_node(&node, &dir, &forward, &args);
                    eprintln!(
                        "  {label}: {} ({role}) ran in the sandbox, done {:.1?} after the API \
                         create: {:.1}s, exit {:?}",
                        node.name,
                        t.elapsed(),
                        node_run.seconds,
                        node_run.status
                    );
                    node_run
                }));
                servers.push(server);
            }
        }
        let runs: Vec<sandbox::NodeRun> = running
            .into_iter()
            .map(|r| r.join().expect("a node's thread"))
            .collect();
        run.times
            .record(&format!("{name}: nodes in the sandbox"), t.elapsed());

        let deadline = Instant::now() + Duration::from_secs(300);
        let cluster = loop {
            let (status, cluster) = self.magnum.call(run.rt, reqwest::Method::GET, &path, None);
            assert_eq!(status, 200, "{cluster}");
            if cluster["status"] != "CREATE_IN_PROGRESS" {
                break cluster;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never finished: {cluster}"
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        run.times.record(
            &format!(
                "{name}: API create -> {}",
                cluster["status"].as_str().unwrap_or_default()
            ),
            t.elapsed(),
        );
        let stack = run
            .rt
            .block_on(find_stack(&run.cloud, &project, &token, &stack_name))
            .expect("the stack")
            .expect("Heat has the stack");
        Booted {
            uuid,
            stack_name,
            token,
            cluster,
            stack,
            servers,
            runs,
        }
    }

    /// Each node bootstrapped: exit 0, "bootstrap complete", every download
    /// through the proxy from the mirror with the pinned sha256; the
    /// cluster and its real Heat stack CREATE_COMPLETE, and each of Heat's
    /// wait conditions holds a node's own signal.
    fn assert_booted(&self, run: &Run, name: &str, b: &Booted) {
        for (server, node_run) in b.servers.iter().zip(&b.runs) {
            let node = &server.node.name;
            assert_eq!(
                node_run.status,
                Some(0),
                "{name}: {node} failed:\n{}",
                node_run.report
            );
            assert!(
                node_run.console.contains("bootstrap complete"),
                "{name}: {node}:\n{}",
                node_run.report
            );
            let requests = self.mirror.requests();
            for (artifact, url) in sandbox::downloads(&node_run.console) {
                assert!(
                    url.starts_with(&format!("http://{}/", sandbox::MIRROR_HOST)),
                    "{node}: {artifact} from {url}, not the mirror"
                );
                let served = requests
                    .iter()
                    .find(|r| r["url"] == url.as_str() && r["status"] == 200)
                    .unwrap_or_else(|| panic!("{node}: {url} was not served by the mirror"));
                assert_eq!(served["role"], "proxy", "{node}: {url} bypassed the proxy");
                assert_eq!(
                    served["sha256"],
                    self.mirror.sha256[artifact.as_str()],
                    "{node}: {artifact} is not the file its label pins"
                );
            }
        }
        assert_eq!(
            b.cluster["status"], "CREATE_COMPLETE",
            "{name}: {}",
            b.cluster
        );
        assert_eq!(
            b.stack["stack_status"], "CREATE_COMPLETE",
            "{name}: {}",
            b.stack["stack_status_reason"]
        );
        let data = run
            .rt
            .block_on(wait_condition_data(&run.cloud, &b.token, &b.stack))
            .expect("wait conditions");
        assert_eq!(
            data.len(),
            b.servers.len(),
            "{name}: one wait condition per node: {data:?}"
        );
        for server in &b.servers {
            let signalled = format!("\"node\": \"{}\"", server.node.name);
            assert!(
                data.iter().any(|d| d.contains(&signalled)),
                "{name}: Heat holds no signal of {}: {data:?}",
                server.node.name
            );
        }
        eprintln!(
            "  {name}: CREATE_COMPLETE on real Heat, signalled by {}",
            b.servers
                .iter()
                .map(|s| format!("{} ({})", s.node.name, s.role))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    /// Deletes the cluster through the API and waits until it is gone,
    /// and its stack with it: the demo project lists no live stack of
    /// that name.
    fn delete(&self, run: &mut Run, name: &str, b: &Booted) {
        let uuid = &b.uuid;
        // Heat may hold the stack's lock a moment after it completes (see
        // heat.rs): a delete then is retried after the job queue's backoff.
        std::thread::sleep(Duration::from_secs(3));
        let t = Instant::now();
        let path = format!("/v1/clusters/{uuid}");
        let (status, body) = self
            .magnum
            .call(run.rt, reqwest::Method::DELETE, &path, None);
        assert_eq!(status, 204, "{name}: {body}");
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (status, cluster) = self.magnum.call(run.rt, reqwest::Method::GET, &path, None);
            if status == 404 {
                break;
            }
            assert!(
                cluster["status"] == "DELETE_IN_PROGRESS" && Instant::now() < deadline,
                "{name}: {cluster}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        run.times
            .record(&format!("{name}: API delete -> gone"), t.elapsed());
        let left = run
            .rt
            .block_on(live_stacks(
                &run.cloud,
                &run.cloud.demo_project,
                &self.magnum.demo,
                &b.stack_name,
            ))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            left,
            Vec::<Value>::new(),
            "{name}: the stack outlived its cluster"
        );
    }
}

/// Keystone's URL of the trust `id`.
fn trust_url(run: &Run, id: &str) -> String {
    format!("{}/OS-TRUST/trusts/{id}", run.h.get("KEYSTONE_URL"))
}

/// A GET as the demo user: the status and the JSON body.
async fn as_demo(run: &Run<'_>, magnum: &Magnum, url: &str) -> (u16, Value) {
    let r = run
        .cloud
        .http
        .get(url)
        .header("X-Auth-Token", &magnum.demo)
        .send()
        .await
        .expect("GET as demo");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// The trusts from demo to magnum, as the service user (an admin) lists
/// them: a user may not list their own (Keystone's policy), and Heat's
/// trusts from demo go to Heat's user.
fn demo_trusts(run: &Run) -> Vec<String> {
    let url = format!(
        "{}/OS-TRUST/trusts?trustor_user_id={}",
        run.h.get("KEYSTONE_URL"),
        run.h.get("KEYSTONE_DEMO_USER_ID")
    );
    let body = run
        .rt
        .block_on(
            run.cloud
                .call(reqwest::Method::GET, &url, &run.cloud.service, None),
        )
        .expect("list trusts")
        .expect("trusts");
    let mut ids: Vec<String> = body["trusts"]
        .as_array()
        .expect("trusts")
        .iter()
        .filter(|t| t["trustee_user_id"] == json!(run.h.get("KEYSTONE_MAGNUM_USER_ID")))
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

impl Nodes {
    /// The cluster's trust as magnumd's API made and stored it: demo ->
    /// magnum on the demo project, impersonating, redelegatable (Heat
    /// makes its own from it), with demo's roles, implied ones included; a
    /// create that cannot be stored (its UUID is taken) deletes the trust
    /// it made again. Returns the trust's id.
    fn cluster_trust(&self, run: &Run, b: &Booted, before: &[String]) -> String {
        use magnum_host::db::models::Cluster;
        let row = Cluster::find_by_uuid(&mut self.magnum.pool.get().expect("conn"), &b.uuid)
            .expect("row");
        let trust_id = row.trust_id.clone().expect("the cluster has a trust");
        assert_eq!(
            row.trustee_user_id.as_deref(),
            Some(run.h.get("KEYSTONE_MAGNUM_USER_ID"))
        );
        assert_eq!(row.trustee_username.as_deref(), Some("magnum"));
        let (status, trust) =
            run.rt
                .block_on(as_demo(run, &self.magnum, &trust_url(run, &trust_id)));
        assert_eq!(status, 200, "{trust}");
        let trust = &trust["trust"];
        assert_eq!(
            trust["trustor_user_id"],
            json!(run.h.get("KEYSTONE_DEMO_USER_ID"))
        );
        assert_eq!(
            trust["trustee_user_id"],
            json!(run.h.get("KEYSTONE_MAGNUM_USER_ID"))
        );
        assert_eq!(trust["project_id"], json!(run.cloud.demo_project));
        assert_eq!(trust["impersonation"], json!(true));
        // Keystone shows a redelegatable trust by its remaining depth.
        let redelegatable = trust["allow_redelegation"] == json!(true)
            || trust["redelegation_count"].as_u64().is_some_and(|n| n > 0);
        assert!(redelegatable, "{trust}");
        let roles: Vec<&str> = trust["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(
            roles.contains(&"member") && roles.contains(&"reader"),
            "{roles:?}"
        );

        let (status, body) = self.magnum.call(
            run.rt,
            reqwest::Method::POST,
            "/v1/clusters",
            Some(json!({"name": "rn-dup", "uuid": b.uuid, "cluster_template_id": "rn-k8s"})),
        );
        assert_eq!(status, 409, "{body}");
        let mut expected = before.to_vec();
        expected.push(trust_id.clone());
        expected.sort();
        assert_eq!(
            demo_trusts(run),
            expected,
            "the failed create's trust is deleted"
        );
        trust_id
    }
}

/// The nodes' scripts, run for real: magnumd (in-process, keystone mode,
/// heat orchestrator) creates a cluster of each driver in the demo project
/// on real Heat, Nova and Neutron; each server's user data, read back from
/// Nova, runs in the sandbox of tests/sandbox, fetches its CA and has its
/// CSRs signed by this magnumd, downloads through the test's mirror and
/// proxy, and signals real Heat's wait condition handle: the stacks, and
/// so the clusters, complete only because the nodes said so. Then a node
/// whose step fails makes the stack and the cluster CREATE_FAILED naming
/// the step.
/// run-node's arguments for tests/sandbox/probes/SCRIPT on a cluster of
/// `nodes` nodes, with time for real Heat to make the later servers.
fn probe_args(script: &str, nodes: usize) -> Vec<String> {
    vec![
        "--probe".to_owned(),
        sandbox::sandbox_dir()
            .join("probes")
            .join(script)
            .display()
            .to_string(),
        "--probe-arg".to_owned(),
        nodes.to_string(),
        "--probe-timeout".to_owned(),
        "300".to_owned(),
    ]
}

fn nodes_in_the_sandbox(run: &mut Run) {
    if let Some(reason) = sandbox::missing_prerequisite() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and the node sandbox cannot run: {reason}"
        );
        eprintln!("skipping the nodes in the sandbox: {reason}");
        return;
    }
    let t = Instant::now();
    let root = sandbox::root();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/sandbox-runs/realcloud");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("runs dir");
    let mirror = sandbox::Mirror::start(&root, &dir);
    let magnum = Magnum::start(run.h, run.rt);
    // A keypair of that name for the demo user only: magnumd checks it as
    // the user, and Nova finds it for the servers of every driver's stack
    // because they are demo's (made through the cluster's trust).
    run.rt
        .block_on(run.cloud.call(
            reqwest::Method::POST,
            &format!("{}/os-keypairs", run.cloud.nova),
            &magnum.demo,
            Some(json!({"keypair": {"name": NODES_KEYPAIR, "type": "ssh",
                                    "public_key": PUBLIC_KEY}})),
        ))
        .expect("the nodes' keypair");
    run.times
        .record("sandbox root, mirror and magnumd", t.elapsed());
    let proxy = format!("http://127.0.0.1:{}", mirror.proxy_port);
    let nodes = Nodes {
        dir,
        heat_port: run.h.get("HEAT_PORT").parse().expect("HEAT_PORT"),
        mirror,
        magnum,
    };

    // Kubernetes: one master, one worker.
    let mut labels = nodes.mirror.labels(true);
    labels.insert("container_runtime".into(), json!("containerd"));
    labels.insert("cloud_provider_enabled".into(), json!("false"));
    let k8s_fields = json!({
        "coe": "kubernetes", "network_driver": "flannel", "labels": labels,
        "http_proxy": proxy, "https_proxy": proxy,
    });
    let trusts_before = demo_trusts(run);
    let b = nodes.boot(run, "rn-k8s", k8s_fields.clone(), 1, 1, &[]);
    nodes.assert_booted(run, "rn-k8s", &b);
    let master = &b.runs[0];
    assert!(
        master.console.contains("control plane is up"),
        "{}",
        master.report
    );
    let trust = nodes.cluster_trust(run, &b, &trusts_before);
    nodes.delete(run, "rn-k8s", &b);
    let (status, body) = run
        .rt
        .block_on(as_demo(run, &nodes.magnum, &trust_url(run, &trust)));
    assert_eq!(status, 404, "the trust is deleted with the cluster: {body}");

    // Swarm mode: a manager and a worker on one cluster network (the
    // sandboxes reach each other at their Neutron addresses, nothing
    // else). Debian's real dockerd, on overlay2 (devicemapper, the default,
    // needs the image's docker-storage-setup). The manager initialises the
    // swarm and signals; real Heat then makes the worker's server, whose
    // node asks the manager's TLS API for the join token and joins. Each
    // node's tests/sandbox/probes/swarm-node.sh, run once its user data
    // has ended, waits until the swarm lists both nodes Ready and records
    // what its engine answers; the manager's keeps it running meanwhile.
    let network = sandbox::ClusterNetwork::new("rn-swarm");
    let probe = probe_args("swarm-node.sh", 2);
    let b = nodes.boot_on(
        run,
        "rn-swarm",
        json!({"coe": "swarm-mode", "labels": nodes.mirror.labels(false),
               "docker_storage_driver": "overlay2",
               "http_proxy": proxy, "https_proxy": proxy}),
        1,
        1,
        &probe,
        Some(&network),
    );
    nodes.assert_booted(run, "rn-swarm", &b);
    let manager = &b.servers[0].node;
    assert_eq!(b.servers[0].role, "master");
    let worker = &b.servers[1].node;
    let same_net = |a: &str| a.rsplit_once('.').map(|(n, _)| n.to_owned());
    assert_eq!(same_net(&manager.address), same_net(&worker.address));
    assert_eq!(
        sandbox::heat_param(&worker.user_data, "SWARM_API_IP").as_deref(),
        Some(manager.address.as_str()),
        "the worker is told the manager's address"
    );
    let mut expected = vec![
        format!("{} Leader Ready", manager.name),
        format!("{} - Ready", worker.name),
    ];
    expected.sort();
    for (server, node_run) in b.servers.iter().zip(&b.runs) {
        let node = &server.node;
        let is_manager = server.role == "master";
        let probed = node_run.upper.join("var/log/sandbox/probe");
        let probe_log = node_run
            .upper
            .parent()
            .map(|d| std::fs::read_to_string(d.join("probe.log")).unwrap_or_default())
            .unwrap_or_default();
        assert!(
            probe_log.contains("nodes ready: 2 of 2") && probe_log.contains("docker info: 0"),
            "{}: {probe_log}",
            node.name
        );
        if is_manager {
            assert!(probe_log.contains("GET /swarm over TLS: 0"), "{probe_log}");
        }
        // The swarm as each node sees it (the manager its own engine, the
        // worker the manager's TLS API): both nodes Ready, the manager its
        // leader.
        let listed = std::fs::read_to_string(probed.join("nodes.txt")).unwrap_or_default();
        let listed: Vec<&str> = listed.lines().collect();
        assert_eq!(listed, expected, "{}: {probe_log}", node.name);
        let info: Value = serde_json::from_str(
            &std::fs::read_to_string(probed.join("info.json")).unwrap_or_default(),
        )
        .unwrap_or(Value::Null);
        let swarm = &info["Swarm"];
        assert_eq!(swarm["LocalNodeState"], "active", "{swarm}");
        assert_eq!(
            swarm["ControlAvailable"], is_manager,
            "{}: {swarm}",
            node.name
        );
        assert_eq!(swarm["NodeAddr"], node.address.as_str(), "{swarm}");
        assert!(
            swarm["RemoteManagers"]
                .to_string()
                .contains(&format!("{}:2377", manager.address)),
            "{swarm}"
        );
        assert_eq!(info["Driver"], "overlay2", "{info}");
        assert!(
            !node_run.console.contains("SWMTKN-"),
            "{}: a join token in the console:\n{}",
            node.name,
            node_run.console
        );
    }
    assert!(
        b.runs[1].console.contains(&format!(
            "joined the swarm of {} as a worker",
            manager.address
        )),
        "{}",
        b.runs[1].console
    );
    nodes.delete(run, "rn-swarm", &b);
    drop(network);

    // Standalone Swarm (coe=swarm): a manager (real etcd, the Swarm manager
    // and agent containers) and a node (an agent) on one cluster network.
    // Docker pulls Swarm's image from the mirror's registry through the
    // proxy (`insecure_registry`: over HTTP) and runs it; the image is a
    // stand-in (tests/sandbox/README.md). flannel: the manager stores the
    // network in its etcd, and each node's flanneld (a stand-in) leases a
    // subnet there, which its Docker's bridge then uses.
    // tests/sandbox/probes/swarm-standalone.sh has each node put a
    // mark in the manager's etcd over TLS with its own certificate (the
    // agents' discovery backend), wait for both marks, and list what its
    // engine runs.
    let network = sandbox::ClusterNetwork::new("rn-standalone");
    let registry = format!("{}:5000", sandbox::MIRROR_HOST);
    let mut labels = nodes.mirror.labels(true);
    labels.retain(|k, _| {
        [
            "download_mirror_url",
            "container_infra_prefix",
            "etcd_tag",
            "etcd_sha256",
            "flannel_tag",
            "flanneld_sha256",
        ]
        .contains(&k.as_str())
    });
    let probe = probe_args("swarm-standalone.sh", 2);
    let b = nodes.boot_on(
        run,
        "rn-standalone",
        json!({"coe": "swarm", "network_driver": "flannel", "labels": labels,
               "docker_storage_driver": "overlay2", "insecure_registry": registry,
               "http_proxy": proxy, "https_proxy": proxy}),
        1,
        1,
        &probe,
        Some(&network),
    );
    nodes.assert_booted(run, "rn-standalone", &b);
    let manager = &b.servers[0].node;
    let image = format!("{registry}/magnum/swarm:1.2.5");
    let mut subnets = Vec::new();
    for (server, node_run) in b.servers.iter().zip(&b.runs) {
        let node = &server.node;
        let probed = node_run.upper.join("var/log/sandbox/probe");
        let read = |f: &str| std::fs::read_to_string(probed.join(f)).unwrap_or_default();
        let probe_log = node_run
            .upper
            .parent()
            .map(|d| std::fs::read_to_string(d.join("probe.log")).unwrap_or_default())
            .unwrap_or_default();
        for line in [
            "etcd put over TLS: yes",
            "nodes marked: 2 of 2",
            "docker ps: 0",
        ] {
            assert!(
                probe_log.contains(line),
                "{}: {line:?} not in {probe_log}\n{}",
                node.name,
                read("etcd.err")
            );
        }
        let mut wanted = vec![format!("swarm-agent {image} running")];
        if server.role == "master" {
            wanted.push(format!("swarm-manager {image} running"));
        }
        let containers = read("containers.txt");
        assert_eq!(
            containers.lines().collect::<Vec<_>>(),
            wanted,
            "{}",
            node.name
        );
        let agent: Vec<String> =
            serde_json::from_str(&read("swarm-agent.args")).unwrap_or_default();
        assert!(
            agent.first().is_some_and(|a| a == "join")
                && agent.contains(&format!("--addr={}:2375", node.address))
                && agent.contains(&format!("etcd://{}:2379/swarm", manager.address)),
            "{}: {agent:?}",
            node.name
        );
        // The subnet flanneld leased in the manager's etcd is the bridge's.
        let env = read("subnet.env");
        let subnet = env
            .lines()
            .find_map(|l| l.strip_prefix("FLANNEL_SUBNET="))
            .unwrap_or_default()
            .to_owned();
        assert!(
            subnet.starts_with("10.100.") && subnet.ends_with(".1/24"),
            "{env:?}"
        );
        let network = subnet.replace(".1/24", ".0/24");
        assert!(
            read("bridge.json").contains(&format!("\"Subnet\":\"{network}\"")),
            "{}: {}",
            node.name,
            read("bridge.json")
        );
        subnets.push(subnet);
    }
    assert_ne!(subnets.first(), subnets.get(1), "a subnet per node");
    nodes.delete(run, "rn-standalone", &b);
    drop(network);

    // Mesos: a master and an agent on the upstart image.
    let b = nodes.boot(
        run,
        "rn-mesos",
        json!({"coe": "mesos", "image_id": "ubuntu-mesos", "labels": nodes.mirror.labels(false),
               "http_proxy": proxy, "https_proxy": proxy}),
        1,
        1,
        &sandbox::upstart(),
    );
    nodes.assert_booted(run, "rn-mesos", &b);
    nodes.delete(run, "rn-mesos", &b);

    // A download that bypasses the mirror: the mirror label names another
    // host. The node's only way out is the proxy, which serves the mirror
    // alone and refuses it; the master's etcd step fails naming the URL,
    // it signals FAILURE, and real Heat fails the stack (and magnumd the
    // cluster) with that reason.
    let elsewhere = "http://downloads.example.com/";
    let mut bypass = k8s_fields.clone();
    bypass["labels"]["download_mirror_url"] = json!(elsewhere);
    let b = nodes.boot(run, "rn-bypass", bypass, 1, 1, &[]);
    // Heat keeps the start of a long reason; the step and the host come
    // first, the rest of the URL may be cut.
    let failed = b.failed_master_naming(
        "a download bypassing the mirror",
        "20-configure-etcd.sh",
        "downloads.example.com",
    );
    let url = format!("{elsewhere}etcd/");
    assert!(
        b.runs[failed]
            .report
            .contains(&format!("cannot download {url}")),
        "the node names the download: {}",
        b.runs[failed].report
    );
    let requests = nodes.mirror.requests();
    let refusal = requests
        .iter()
        .find(|r| r["url"].as_str().is_some_and(|u| u.starts_with(&url)))
        .unwrap_or_else(|| panic!("the proxy saw {url}: {requests:?}"));
    assert_eq!(refusal["status"], 403, "{refusal}");
    assert_eq!(refusal["refused"], "not the mirror", "{refusal}");
    nodes.delete(run, "rn-bypass", &b);

    // A failing step: the kubelet label pins another file, so the first
    // node's 40-configure-node.sh fails on the checksum and it signals
    // FAILURE naming it; real Heat fails the stack with that reason, and
    // magnumd the cluster.
    let mut broken = k8s_fields.clone();
    broken["labels"]["kubelet_sha256"] = nodes.mirror.sha256["kube_proxy"].clone();
    let b = nodes.boot(run, "rn-bad-step", broken, 1, 1, &[]);
    // The master runs 40-configure-node.sh (a kubelet) too, and first: it
    // is the node that fails, and the workers' servers are never made.
    b.failed_master_naming(
        "a failing step",
        "40-configure-node.sh",
        "kubelet: sha256 mismatch",
    );
    nodes.delete(run, "rn-bad-step", &b);

    let Nodes { mut magnum, .. } = nodes;
    magnum.stop(run.rt);
}
