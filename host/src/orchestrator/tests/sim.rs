//! The evaluator (`magnum-hot`) over the simulated cloud with in-memory
//! address pools: what depends on the sim's addresses, boot times and
//! faults. The evaluator's own tests are in hot/tests/evaluate.rs.

use serde_json::{json, Value};

use super::{files, hot, NODE};
use crate::orchestrator::sim::{nth_address, MemoryIpam, SimConfig, SimProvider};
use magnum_hot::testing::{self, run_with, T0};
use magnum_hot::{Evaluation, Files, HotError};

const BOOT: i64 = 3_000;

fn provider() -> SimProvider<MemoryIpam> {
    SimProvider::new(SimConfig::default(), MemoryIpam::default(), "stack-1", 0)
}

fn eval(body: &str, parameters: Value) -> Result<Evaluation, HotError> {
    testing::eval(&mut provider(), body, parameters)
}

fn outputs(body: &str, parameters: Value) -> Value {
    testing::outputs(&mut provider(), body, parameters)
}

fn error(body: &str, parameters: Value) -> String {
    testing::error(&mut provider(), body, parameters)
}

// ---- Conditions --------------------------------------------------------------------------------

#[test]
fn conditions_choose_resources_outputs_and_branches() {
    let body = r#"
parameters:
  env: {type: string, default: prod}
  ha: {type: boolean, default: true}
  zero: {type: number, default: 0}
conditions:
  is_prod: {equals: [{get_param: env}, prod]}
  is_ha: {get_param: ha}
  prod_ha: {and: [is_prod, is_ha]}
  dev: {not: is_prod}
  either: {or: [dev, {equals: [{get_param: zero}, 0.0]}]}
resources:
  lb:
    type: OS::Octavia::LoadBalancer
    condition: prod_ha
    properties: {vip_subnet: private}
  single:
    type: OS::Heat::Value
    condition: {not: prod_ha}
    properties: {value: single}
outputs:
  flags: {value: [{if: [is_prod, yes, no]}, {if: [dev, yes, no]}, {if: [either, yes, no]}, {if: [{equals: [1, 1]}, inline, no]}]}
  address: {value: {if: [prod_ha, {get_attr: [lb, vip_address]}, {get_attr: [single, value]}]}}
  lb_ref: {value: {get_resource: lb}}
  only_dev: {condition: dev, value: dev-only}
"#;
    let prod = outputs(body, json!({}));
    assert_eq!(prod["flags"], json!(["yes", "no", "yes", "inline"]));
    assert_eq!(prod["address"], json!("127.10.0.3"));
    assert!(prod["lb_ref"].is_string());
    assert_eq!(prod["only_dev"], Value::Null);
    let dev = outputs(body, json!({"env": "dev"}));
    assert_eq!(dev["flags"], json!(["no", "yes", "yes", "inline"]));
    assert_eq!(dev["address"], json!("single"));
    assert_eq!(
        dev["lb_ref"],
        Value::Null,
        "a disabled resource's ref is null"
    );
    assert_eq!(dev["only_dev"], json!("dev-only"));

    assert_eq!(
        error(
            "resources:\n  r: {type: OS::Heat::None, condition: nope}\n",
            json!({})
        ),
        "resources.r.condition: Invalid condition \"nope\""
    );
    assert_eq!(
        error("conditions:\n  a: b\n  b: a\n", json!({})),
        "conditions.a: Circular definition of conditions: a -> b -> a"
    );
    assert_eq!(
        error(
            "parameters:\n  s: {type: string, default: x}\nconditions:\n  c: {get_param: s}\n",
            json!({})
        ),
        "conditions.c: The definition of condition is invalid: get_param must give a boolean, got 'x'"
    );
}

// ---- References and dependencies ---------------------------------------------------------

const NETWORK: &str = r#"
parameters:
  cidr: {type: string, default: 192.168.7.0/24}
resources:
  net: {type: OS::Neutron::Net, properties: {name: private}}
  subnet:
    type: OS::Neutron::Subnet
    properties: {network: {get_resource: net}, cidr: {get_param: cidr}}
  port:
    type: OS::Neutron::Port
    properties:
      network: {get_resource: net}
      fixed_ips: [{subnet: {get_resource: subnet}}]
  fip:
    type: OS::Neutron::FloatingIP
    properties: {floating_network: public, port_id: {get_resource: port}}
  server:
    type: OS::Nova::Server
    properties:
      name: node-0
      image: fedora
      networks: [{port: {get_resource: port}}]
  after:
    type: OS::Heat::Value
    depends_on: server
    properties: {value: done}
outputs:
  ip: {value: {get_attr: [port, fixed_ips, 0, ip_address]}}
  first: {value: {get_attr: [server, first_address]}}
  networks: {value: {get_attr: [server, networks]}}
  name: {value: {get_attr: [server, name]}}
  status: {value: {get_attr: [server, show, status]}}
  public: {value: {get_attr: [fip, floating_ip_address]}}
  fixed: {value: {get_attr: [fip, fixed_ip_address]}}
  gateway: {value: {get_attr: [subnet, gateway_ip]}}
  char: {value: {get_attr: [server, first_address, 0]}}
  nowhere: {value: {get_attr: [server, show, nothing, 3]}}
"#;

#[test]
fn references_resolve_in_dependency_order_with_boot_times() {
    let e = eval(NETWORK, json!({})).unwrap();
    let net = e.resources.resources["net"].ref_id.clone();
    let mut networks = serde_json::Map::new();
    networks.insert(net, json!(["127.104.7.3"]));
    assert_eq!(
        Value::Object(e.outputs.clone()),
        json!({
            "ip": "127.104.7.3", "first": "127.104.7.3", "networks": networks,
            "name": "node-0", "status": "ACTIVE", "public": "127.24.0.2",
            "fixed": "127.104.7.3", "gateway": "127.104.7.1",
            // A path into a string indexes it, as Python does.
            "char": "1", "nowhere": null,
        })
    );
    let r = &e.resources.resources;
    assert_eq!(r["server"].ready_ms, T0 + BOOT);
    assert_eq!(
        r["after"].ready_ms,
        T0 + BOOT,
        "depends_on waits for the boot"
    );
    assert_eq!(r["port"].ready_ms, T0);
    assert_eq!(e.ready_ms, T0 + BOOT);
    assert_eq!(e.failure, None);
}

// ---- Nested stacks ---------------------------------------------------------------------------

fn group_template(count: &str, removal: &str) -> String {
    hot(&format!(
        r#"
parameters:
  count: {{type: number, default: {count}}}
  to_remove: {{type: comma_delimited_list, default: "{removal}"}}
resources:
  subnet: {{type: OS::Neutron::Subnet, properties: {{name: nodes, cidr: 10.1.0.0/24}}}}
  master:
    type: node.yaml
    properties: {{name: master, subnet: {{get_resource: subnet}}, role: master}}
  nodes:
    type: OS::Heat::ResourceGroup
    properties:
      count: {{get_param: count}}
      removal_policies: [{{resource_list: {{get_param: to_remove}}}}]
      resource_def:
        type: node.yaml
        properties:
          name: {{list_join: ['-', [node, '%index%']]}}
          subnet: {{get_resource: subnet}}
          peer: {{get_attr: [master, ip]}}
outputs:
  master: {{value: {{get_attr: [master, external_ip]}}}}
  master_ref: {{value: {{get_resource: master}}}}
  ips: {{value: {{get_attr: [nodes, ip]}}}}
  external: {{value: {{get_attr: [nodes, external_ip]}}}}
  names: {{value: {{get_attr: [nodes, name]}}}}
  refs: {{value: {{get_attr: [nodes, refs]}}}}
  first_ref: {{value: {{get_attr: [nodes, refs, 0]}}}}
  refs_map: {{value: {{get_attr: [nodes, refs_map]}}}}
  by_member: {{value: {{get_attr: [nodes, attributes, ip]}}}}
  member_1: {{value: {{get_attr: [nodes, resource.1.ip]}}}}
  member_1_ref: {{value: {{get_attr: [nodes, resource.1]}}}}
  heat_index: {{value: {{get_attr: [nodes, ip, 0]}}}}
  removed: {{value: {{get_attr: [nodes, removed_rsrc_list]}}}}
"#
    ))
}

#[test]
fn nested_templates_take_properties_and_give_outputs() {
    let main = group_template("2", "");
    let files = files(&[("main.yaml", &main), ("node.yaml", NODE)]);
    let e = run_with(&mut provider(), &files, json!({}), json!({}), None, T0).unwrap();
    assert_eq!(e.outputs["master"], json!("127.24.0.2"));
    let master = &e.resources.resources["master"];
    let server = &master.nested.as_ref().unwrap().resources["server"];
    assert_eq!(
        e.outputs["master_ref"],
        json!(server.ref_id),
        "OS::stack_id"
    );
    assert_eq!(master.attributes["ip"], json!("127.65.0.3"));

    // A property the nested template does not declare, or of the wrong type.
    let bad = main.replace("role: master}", "role: master, colour: red}");
    let files_bad = files_with(&bad);
    let err = run_with(&mut provider(), &files_bad, json!({}), json!({}), None, T0).unwrap_err();
    assert_eq!(err.to_string(), "resources.master: Unknown Property colour");
    let bad = main.replace("role: master}", "role: boss}");
    let err = run_with(
        &mut provider(),
        &files_with(&bad),
        json!({}),
        json!({}),
        None,
        T0,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "resources.master: Property error: role: \"boss\" is not an allowed value [worker, master]"
    );
    let bad = main.replace("role: master}", "role: [master]}");
    let err = run_with(
        &mut provider(),
        &files_with(&bad),
        json!({}),
        json!({}),
        None,
        T0,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "resources.master: Property error: role: Value must be a string; got ['master']"
    );
    let bad = main.replace("name: master, ", "");
    let err = run_with(
        &mut provider(),
        &files_with(&bad),
        json!({}),
        json!({}),
        None,
        T0,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "resources.master: Property name not assigned"
    );
}

fn files_with(main: &str) -> Files {
    files(&[("main.yaml", main), ("node.yaml", NODE)])
}

#[test]
fn resource_groups_expose_members_as_heat_does() {
    let files = files_with(&group_template("3", ""));
    let e = run_with(&mut provider(), &files, json!({}), json!({}), None, T0).unwrap();
    let o = &e.outputs;
    assert_eq!(o["ips"], json!(["127.65.0.4", "127.65.0.5", "127.65.0.6"]));
    assert_eq!(
        o["external"],
        json!(["127.24.0.3", "127.24.0.4", "127.24.0.5"])
    );
    assert_eq!(o["names"], json!(["node-0", "node-1", "node-2"]));
    let refs = o["refs"].as_array().unwrap().clone();
    assert_eq!(refs.len(), 3);
    assert_eq!(o["first_ref"], refs[0]);
    assert_eq!(
        o["refs_map"],
        json!({"0": refs[0], "1": refs[1], "2": refs[2]})
    );
    assert_eq!(
        o["by_member"],
        json!({"0": "127.65.0.4", "1": "127.65.0.5", "2": "127.65.0.6"})
    );
    assert_eq!(o["member_1"], json!("127.65.0.5"));
    assert_eq!(o["member_1_ref"], refs[1]);
    // Heat applies a path after the attribute to each member's value.
    assert_eq!(o["heat_index"], json!(["1", "1", "1"]));
    assert_eq!(o["removed"], json!([]));
    // The members start when the master (their dependency) has booted.
    assert_eq!(e.ready_ms, T0 + 2 * BOOT);

    let err = run_with(
        &mut provider(),
        &files_with(&group_template("3", "").replace("resource.1.ip", "resource.7.ip")),
        json!({}),
        json!({}),
        None,
        T0,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "outputs.member_1: Member '7' not found in group resource 'nodes'."
    );
    let err = run_with(
        &mut provider(),
        &files_with(&group_template("2", "").replace("[nodes, name]", "[nodes, colour]")),
        json!({}),
        json!({}),
        None,
        T0,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "outputs.names: The Referenced Attribute (0 colour) is incorrect."
    );
}

#[test]
fn resource_groups_scale_honouring_removal_policies() {
    // Member 1 goes away below: drop the outputs naming it.
    let main: String = group_template("3", "")
        .lines()
        .filter(|l| !l.contains("resource.1"))
        .map(|l| format!("{l}\n"))
        .collect();
    let files = files_with(&main);
    let mut p = provider();
    let created = run_with(&mut p, &files, json!({}), json!({}), None, T0).unwrap();
    let refs = created.outputs["refs"].clone();

    // Scale up: members 0-2 are kept as they were; 3 and 4 boot.
    let t1 = T0 + 60_000;
    let up = run_with(
        &mut p,
        &files,
        json!({}),
        json!({"count": 5}),
        Some(&created.resources),
        t1,
    )
    .unwrap();
    assert_eq!(
        up.outputs["ips"],
        json!([
            "127.65.0.4",
            "127.65.0.5",
            "127.65.0.6",
            "127.65.0.7",
            "127.65.0.8"
        ])
    );
    assert_eq!(
        up.outputs["refs"].as_array().unwrap()[..3],
        refs.as_array().unwrap()[..]
    );
    assert_eq!(up.ready_ms, t1 + BOOT, "only the new members boot");
    let members = &up.resources.resources["nodes"];
    let old_member = &members.nested.as_ref().unwrap().resources["0"];
    assert_eq!(old_member.ready_ms, T0 + 2 * BOOT);

    // Scale down without a list: the highest indexes go.
    let t2 = t1 + 60_000;
    let down = run_with(
        &mut p,
        &files,
        json!({}),
        json!({"count": 2}),
        Some(&up.resources),
        t2,
    )
    .unwrap();
    assert_eq!(down.outputs["names"], json!(["node-0", "node-1"]));
    assert!(down.ready_ms < t2, "nothing to boot");

    // Remove member 0 by name and member 1 by ref: never reused, and the
    // count is met with new names.
    let ref_1 = down.outputs["refs"][1].as_str().unwrap().to_owned();
    let t3 = t2 + 60_000;
    let removed = run_with(
        &mut p,
        &files,
        json!({}),
        json!({"count": 2, "to_remove": ["0", ref_1]}),
        Some(&down.resources),
        t3,
    )
    .unwrap();
    assert_eq!(removed.outputs["names"], json!(["node-2", "node-3"]));
    assert_eq!(removed.outputs["removed"], json!(["0", "1"]));
    assert_eq!(
        removed.outputs["ips"],
        json!(["127.65.0.9", "127.65.0.10"]),
        "2 and 3 are new"
    );
    assert_eq!(removed.ready_ms, t3 + BOOT);

    // The blacklist stays: growing again skips 0 and 1.
    let again = run_with(
        &mut p,
        &files,
        json!({}),
        json!({"count": 3, "to_remove": []}),
        Some(&removed.resources),
        t3 + 60_000,
    )
    .unwrap();
    assert_eq!(
        again.outputs["names"],
        json!(["node-2", "node-3", "node-4"])
    );
    // An unchanged update changes nothing.
    let same = run_with(
        &mut p,
        &files,
        json!({}),
        json!({"count": 3, "to_remove": []}),
        Some(&again.resources),
        t3 + 120_000,
    )
    .unwrap();
    assert_eq!(same.resources, again.resources);
    assert_eq!(same.ready_ms, again.ready_ms);
}

// ---- Faults ------------------------------------------------------------------------------------

#[test]
fn injected_faults_stop_the_stack_at_their_time() {
    let config = SimConfig {
        fail_resource_type: Some("OS::Nova::Server".into()),
        ..SimConfig::default()
    };
    let mut p = SimProvider::new(config, MemoryIpam::default(), "stack-1", 0);
    let files = files(&[("main.yaml", &hot(NETWORK))]);
    let e = run_with(&mut p, &files, json!({}), json!({}), None, T0).unwrap();
    let failure = e.failure.unwrap();
    assert_eq!(failure.at_ms, T0 + BOOT);
    assert_eq!(
        failure.reason,
        "Resource CREATE failed: OS::Nova::Server server: injected fault"
    );
    assert!(e.outputs.is_empty());
    assert!(!e.resources.resources.contains_key("server"));
    assert!(!e.resources.resources.contains_key("after"));
    assert!(e.resources.resources.contains_key("port"));

    let config = SimConfig {
        fail_after_servers: Some(2),
        ..SimConfig::default()
    };
    let mut p = SimProvider::new(config, MemoryIpam::default(), "stack-1", 0);
    let files = files_with(&group_template("3", ""));
    let e = run_with(&mut p, &files, json!({}), json!({}), None, T0).unwrap();
    let failure = e.failure.unwrap();
    assert_eq!(
        failure.reason,
        "Resource CREATE failed: OS::Nova::Server server: injected fault after 2 servers"
    );
    assert_eq!(failure.at_ms, T0 + 2 * BOOT, "the third server, a worker");
    assert_eq!(p.servers_created, 2);
}

// ---- Bootstrap signals -------------------------------------------------------------------------

/// A node as the drivers' node templates make one: a handle whose URL and
/// token ride in the user data, and a wait condition on the server.
const SIGNALLING_NODE: &str = r#"
heat_template_version: 2021-04-16
parameters:
  name: {type: string}
  role: {type: string, default: worker}
  signal: {type: boolean, default: true}
conditions:
  signal: {get_param: signal}
resources:
  handle: {type: OS::Heat::WaitConditionHandle}
  server:
    type: OS::Nova::Server
    properties:
      name: {get_param: name}
      image: fedora
      metadata: {nodegroup_role: {get_param: role}}
      user_data:
        str_replace:
          template: "WAIT_HANDLE_ENDPOINT=$URL WAIT_HANDLE_TOKEN=$TOKEN"
          params:
            $URL: {if: [signal, {get_attr: [handle, endpoint]}, ""]}
            $TOKEN: {if: [signal, {get_attr: [handle, token]}, ""]}
  wait:
    type: OS::Heat::WaitCondition
    depends_on: server
    properties: {handle: {get_resource: handle}, count: 1, timeout: 600}
outputs:
  data: {value: {get_attr: [wait, data]}}
"#;

fn signalling_cluster(signal: bool) -> Files {
    files(&[
        (
            "main.yaml",
            &hot(&format!(
                r#"
resources:
  masters:
    type: OS::Heat::ResourceGroup
    properties:
      count: 1
      resource_def: {{type: node.yaml, properties: {{name: m-%index%, role: master, signal: {signal}}}}}
  workers:
    type: OS::Heat::ResourceGroup
    depends_on: masters
    properties:
      count: 2
      resource_def: {{type: node.yaml, properties: {{name: w-%index%}}}}
outputs:
  data: {{value: {{get_attr: [workers, data]}}}}
"#
            )),
        ),
        ("node.yaml", SIGNALLING_NODE),
    ])
}

#[test]
fn nodes_signal_their_wait_conditions_when_booted() {
    let mut p = provider();
    let e = run_with(
        &mut p,
        &signalling_cluster(true),
        json!({}),
        json!({}),
        None,
        T0,
    )
    .unwrap();
    assert_eq!(e.failure, None);
    // The masters' signal comes at their boot, the workers' after theirs.
    assert_eq!(e.ready_ms, T0 + 2 * BOOT);
    let data: Vec<Value> = e.outputs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| serde_json::from_str(d.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        data,
        [json!({"1": {"node": "w-0"}}), json!({"1": {"node": "w-1"}})]
    );
}

#[test]
fn the_first_node_of_the_failing_role_signals_failure() {
    for (role, at, server) in [
        ("worker", T0 + 2 * BOOT, "w-0"),
        ("master", T0 + BOOT, "m-0"),
    ] {
        let config = SimConfig {
            fail_bootstrap_role: Some(role.into()),
            ..SimConfig::default()
        };
        let mut p = SimProvider::new(config, MemoryIpam::default(), "stack-1", 0);
        let e = run_with(
            &mut p,
            &signalling_cluster(true),
            json!({}),
            json!({}),
            None,
            T0,
        )
        .unwrap();
        let failure = e.failure.expect("the stack fails");
        assert_eq!(failure.at_ms, at, "{role}");
        assert_eq!(
            failure.reason,
            format!(
                "Resource CREATE failed: OS::Heat::WaitCondition wait: {server}: bootstrap failed: injected fault (fail_bootstrap_role = \"{role}\")"
            )
        );
    }
}

#[test]
fn a_wait_condition_nobody_signals_times_out() {
    let mut p = provider();
    let e = run_with(
        &mut p,
        &signalling_cluster(false),
        json!({}),
        json!({}),
        None,
        T0,
    )
    .unwrap();
    let failure = e.failure.expect("the stack fails");
    assert_eq!(
        failure.at_ms,
        T0 + BOOT + 600_000,
        "the timeout counts from the boot"
    );
    assert_eq!(
        failure.reason,
        "Resource CREATE failed: OS::Heat::WaitCondition wait: 0 of 1 received"
    );
}

#[test]
fn the_bootstrap_fault_names_a_role_of_the_templates() {
    use crate::orchestrator::LocalCloudConfig;
    for role in ["master", "worker"] {
        let config = LocalCloudConfig {
            fail_bootstrap_role: Some(role.into()),
            ..Default::default()
        };
        assert_eq!(config.validate(), Ok(()));
    }
    let bad = LocalCloudConfig {
        fail_bootstrap_role: Some("etcd".into()),
        ..Default::default()
    };
    assert_eq!(
        bad.validate().unwrap_err(),
        "[local] fail_bootstrap_role = \"etcd\": must be one of master, worker"
    );
}

// ---- Helpers -------------------------------------------------------------------------------------

#[test]
fn addresses_count_from_the_first_of_their_pool() {
    assert_eq!(
        nth_address("10.0.0.0/24", 3, 1).unwrap().to_string(),
        "10.0.0.3"
    );
    assert_eq!(
        nth_address("10.0.0.0/30", 1, 3).unwrap().to_string(),
        "10.0.0.1",
        "wraps"
    );
    assert!(nth_address("fd00::/64", 3, 1).is_err());
}

#[test]
fn template_cidrs_and_addresses_are_carved_into_the_loopback_pool() {
    use crate::orchestrator::sim::{local_address, local_cidr};
    let pool = "127.64.0.0/10";
    // The k8s templates' default, and distinct subnets stay distinct.
    assert_eq!(local_cidr("10.0.0.0/24", pool).unwrap(), "127.64.0.0/24");
    assert_eq!(local_cidr("10.0.1.0/24", pool).unwrap(), "127.64.1.0/24");
    assert_eq!(
        local_cidr("192.168.0.0/16", pool).unwrap(),
        "127.104.0.0/16"
    );
    // Never wider than the pool.
    assert_eq!(local_cidr("10.0.0.0/8", pool).unwrap(), "127.64.0.0/10");
    assert_eq!(local_cidr("0.0.0.0/0", pool).unwrap(), "127.64.0.0/10");
    assert_eq!(local_address("10.0.0.7", pool).unwrap(), "127.64.0.7");
    assert_eq!(local_address("127.0.0.9", pool).unwrap(), "127.0.0.9");
    assert!(local_address("nowhere", pool).is_err());
}

#[test]
fn the_local_clouds_pools_must_be_disjoint_and_on_loopback() {
    use crate::orchestrator::LocalCloudConfig;
    assert_eq!(LocalCloudConfig::default().validate(), Ok(()));
    let off = LocalCloudConfig {
        floating_ip_cidr: "172.24.4.0/22".into(),
        ..Default::default()
    };
    let err = off.validate().unwrap_err();
    assert!(
        err.contains("floating_ip_cidr") && err.contains("127.0.0.0/8"),
        "{err}"
    );
    let overlapping = LocalCloudConfig {
        default_subnet_cidr: "127.24.1.0/24".into(),
        ..Default::default()
    };
    let err = overlapping.validate().unwrap_err();
    assert!(err.contains("overlap"), "{err}");
}

#[test]
fn two_argument_if_omits_the_key_or_item_from_hot_2021_04_16() {
    let body = r#"
parameters:
  size: {type: number, default: 0}
  kind: {type: string, default: ""}
conditions:
  image_based: {equals: [{get_param: size}, 0]}
  from_volume: {not: image_based}
  kind_set: {not: {equals: [{get_param: kind}, ""]}}
resources:
  value:
    type: OS::Heat::Value
    properties:
      value:
        image: {if: [image_based, fedora]}
        volumes:
          - {if: [from_volume, {size: {get_param: size}, type: {if: [kind_set, {get_param: kind}]}}]}
          - always
        chosen: {if: [image_based, image, volume]}
  server:
    type: OS::Nova::Server
    properties:
      image: {if: [image_based, fedora]}
      flavor: m1.small
      block_device_mapping_v2:
        if:
          - from_volume
          - - image: fedora
              volume_size: {get_param: size}
              volume_type: {if: [kind_set, {get_param: kind}]}
              boot_index: 0
outputs:
  value: {value: {get_attr: [value, value]}}
  shown_image: {value: {get_attr: [server, show, image]}}
  omitted: {value: {if: [from_volume, volume]}}
"#;
    let run = |parameters: Value| {
        let files = files(&[(
            "main.yaml",
            &format!("heat_template_version: 2021-04-16\n{body}"),
        )]);
        match run_with(&mut provider(), &files, json!({}), parameters, None, T0) {
            Ok(e) => Value::Object(e.outputs),
            Err(e) => panic!("evaluation failed: {e}"),
        }
    };
    let image = run(json!({}));
    assert_eq!(
        image["value"],
        json!({"image": "fedora", "volumes": ["always"], "chosen": "image"})
    );
    assert_eq!(image["shown_image"], json!("fedora"));
    assert_eq!(image["omitted"], Value::Null, "an omitted output is null");
    // Parameters arrive as strings, as through Heat's API; a number
    // parameter compares as a number.
    assert_eq!(run(json!({"size": "0"}))["value"]["chosen"], json!("image"));
    let volume = run(json!({"size": "20", "kind": "ssd"}));
    assert_eq!(
        volume["value"],
        json!({"volumes": [{"size": 20, "type": "ssd"}, "always"], "chosen": "volume"})
    );
    assert_eq!(
        volume["shown_image"],
        json!(""),
        "volume-backed, as Nova shows it"
    );
    assert_eq!(
        run(json!({"size": 20}))["value"]["volumes"][0],
        json!({"size": 20})
    );

    // Before 2021-04-16, Heat wants all three arguments.
    assert_eq!(
        error("outputs:\n  o: {value: {if: [{equals: [1, 1]}, x]}}\n", json!({})),
        "outputs.o: Arguments to \"if\" must be of the form: [condition_name, value_if_true, value_if_false]"
    );
}

#[test]
fn a_server_needs_exactly_one_boot_source() {
    let server = |properties: &str| {
        format!("resources:\n  node:\n    type: OS::Nova::Server\n    properties: {properties}\n")
    };
    let neither = error(&server("{flavor: m1.small}"), json!({}));
    assert!(
        neither.contains("Neither image nor bootable volume is specified for instance node"),
        "{neither}"
    );
    let both = error(
        &server("{image: fedora, flavor: m1.small, block_device_mapping_v2: [{image: fedora, volume_size: 10}]}"),
        json!({}),
    );
    assert!(
        both.contains("Multiple bootable sources for instance node."),
        "{both}"
    );
    // A non-boot volume beside the image is fine.
    eval(
        &server("{image: fedora, flavor: m1.small, block_device_mapping_v2: [{volume_id: v1, boot_index: 1}]}"),
        json!({}),
    )
    .expect("image plus a data volume");
}
