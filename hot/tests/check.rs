//! The static check: each rule on a small plan (a cluster template with a
//! resource group of nested node templates).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use magnum_hot::check::{check, nested_templates, parse_template, Stack};
use magnum_hot::testing::map;
use magnum_hot::Environment;

const MAIN: &str = "heat_template_version: 2018-08-31
parameters:
  count: {type: number}
  flavor: {type: string, default: m1.small}
conditions:
  many: {not: {equals: [{get_param: count}, 1]}}
resources:
  net: {type: 'OS::Neutron::Net'}
  group:
    type: OS::Heat::ResourceGroup
    depends_on: net
    properties:
      count: {get_param: count}
      resource_def:
        type: node.yaml
        properties: {network: {get_resource: net}, flavor: {get_param: flavor}}
  lb:
    type: Magnum::LoadBalancer
    condition: many
outputs:
  ips: {value: {get_attr: [group, ip]}}
  lb: {value: {if: [many, {get_resource: lb}, '']}}
  script: {value: {get_file: boot.sh}}
";

const NODE: &str = "heat_template_version: 2018-08-31
parameters:
  network: {type: string}
  flavor: {type: string}
resources:
  server: {type: 'OS::Nova::Server', properties: {networks: [{network: {get_param: network}}]}}
";

/// The problems of MAIN (after `edit`) with those of NODE and a script that
/// `files` names, given `count`.
fn problems(edit: impl Fn(&str) -> String, files: &[&str]) -> Vec<String> {
    let mut all: BTreeMap<String, String> = BTreeMap::new();
    all.insert("cluster.yaml".into(), edit(MAIN));
    all.insert("node.yaml".into(), NODE.into());
    all.insert("boot.sh".into(), "#!/bin/sh\n".into());
    all.retain(|name, _| name == "cluster.yaml" || files.contains(&name.as_str()));
    let environment =
        map(json!({"resource_registry": {"Magnum::LoadBalancer": "OS::Octavia::LoadBalancer"}}));
    let parameters = map(json!({"count": 2}));
    let stack = Stack {
        template: "cluster.yaml",
        files: &all,
        environment: &environment,
        parameters: &parameters,
    };
    check(&stack).iter().map(ToString::to_string).collect()
}

fn same(text: &str) -> String {
    text.to_owned()
}

#[test]
fn a_well_formed_stack_passes() {
    assert_eq!(
        problems(same, &["node.yaml", "boot.sh"]),
        Vec::<String>::new()
    );
}

/// A resource's `type` property (a health monitor's HTTP, TCP or PING)
/// is data, not a resource type: upstream's lb_api.yaml monitor passes, as
/// it does mapped through the environment.
#[test]
fn a_type_property_is_not_a_resource_type() {
    let monitors = |text: &str| {
        text.replace(
            "outputs:",
            "  pool: {type: 'OS::Octavia::Pool', properties: {lb_algorithm: ROUND_ROBIN, protocol: TCP}}
  monitor:
    type: OS::Octavia::HealthMonitor
    properties: {pool: {get_resource: pool}, type: HTTP, delay: 5, max_retries: 5, timeout: 5}
  mapped:
    type: Magnum::LoadBalancer
    properties: {type: PING, pool: {get_resource: pool}}
outputs:",
        )
    };
    assert_eq!(
        problems(monitors, &["node.yaml", "boot.sh"]),
        Vec::<String>::new()
    );
    // A resource whose own type is no type is still found.
    let bogus =
        |text: &str| monitors(text).replace("type: OS::Octavia::HealthMonitor", "type: HTTP");
    assert_eq!(
        problems(bogus, &["node.yaml", "boot.sh"]),
        ["cluster.yaml: resource type HTTP is neither an OS:: type, a file nor in the environment's resource_registry"]
    );
}

#[test]
fn each_rule_is_enforced() {
    let both = &["node.yaml", "boot.sh"][..];
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            problems(same, &["boot.sh"]),
            "cluster.yaml: resource type node.yaml is not among the files",
        ),
        (
            problems(|t| t.replace("get_file: boot.sh", "get_file: boot.bash"), both),
            "cluster.yaml: get_file boot.bash: not among the files",
        ),
        (
            problems(|t| t.replace("count: {get_param: count}", "count: {get_param: cnt}"), both),
            "cluster.yaml: get_param cnt: no such parameter",
        ),
        (
            problems(|t| t.replace("{get_resource: net}", "{get_resource: nett}"), both),
            "cluster.yaml: get_resource nett: no such resource",
        ),
        (
            problems(|t| t.replace("[group, ip]", "[grp, ip]"), both),
            "cluster.yaml: get_attr grp: no such resource",
        ),
        (
            problems(|t| t.replace("depends_on: net", "depends_on: [nett]"), both),
            "cluster.yaml: depends_on nett: no such resource",
        ),
        (
            problems(|t| t.replace("condition: many", "condition: few"), both),
            "cluster.yaml: condition few: no such condition",
        ),
        (
            problems(|t| t.replace("flavor: {get_param: flavor}}", "flavour: x}"), both),
            "cluster.yaml: passes property flavour to node.yaml, which declares no such parameter",
        ),
        (
            problems(|t| t.replace("flavor: {get_param: flavor}}", "flavour: x}"), both),
            "cluster.yaml: node.yaml requires parameter flavor but it is not passed",
        ),
        (
            problems(|t| t.replace("count: {get_param: count}", "count: {repeat: {}}"), both),
            "cluster.yaml: uses repeat, which the local orchestrator does not evaluate",
        ),
        (
            problems(|t| t.replace("{get_file: boot.sh}", "{'Fn::Base64': x}"), both),
            "cluster.yaml: uses Fn::Base64, which the local orchestrator does not evaluate",
        ),
        (
            problems(|t| t.replace("{get_file: boot.sh}", "{and: [many, many]}"), both),
            "cluster.yaml: uses and outside a condition",
        ),
        (
            problems(|t| t.replace(", '']}", "]}"), both),
            "cluster.yaml: two-argument `if` on `many` needs heat_template_version 2021-04-16",
        ),
        (
            problems(|t| t.replace(", '']}", ", a, b]}"), both),
            "cluster.yaml: `if` on `many` has 4 arguments",
        ),
        (
            problems(|t| t.replace("Magnum::LoadBalancer\n", "Magnum::Balancer\n"), both),
            "cluster.yaml: resource type Magnum::Balancer is neither an OS:: type, a file nor in the environment's resource_registry",
        ),
        (
            problems(|t| t.replace("2018-08-31", "2016-10-14"), both),
            "cluster.yaml: heat_template_version 2016-10-14 is older than 2018-08-31",
        ),
        (
            problems(|t| t.replace("  count: {type: number}\n", ""), both),
            "parameter count is passed but cluster.yaml does not declare it",
        ),
        (
            problems(|t| t.replace("{type: number}", "{type: number}\n  image: {type: string}"), both),
            "cluster.yaml requires parameter image but the plan does not pass it",
        ),
        (
            problems(|t| t.replace("outputs:", "output:"), both),
            "cluster.yaml: The template section is invalid: output",
        ),
    ];
    for (found, expected) in cases {
        assert!(
            found.iter().any(|p| p == expected),
            "expected `{expected}` in {found:#?}"
        );
    }
}

#[test]
fn the_environment_is_checked() {
    let files = BTreeMap::from([("cluster.yaml".to_owned(), NODE.to_owned())]);
    let parameters = map(json!({"network": "n", "flavor": "f"}));
    let problems = |environment: Value| {
        let environment = map(environment);
        let stack = Stack {
            template: "cluster.yaml",
            files: &files,
            environment: &environment,
            parameters: &parameters,
        };
        check(&stack)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        problems(json!({"resource_registry": {"My::Volume": "volume.yaml"}})),
        ["environment maps My::Volume to volume.yaml, which is not among the files"]
    );
    assert_eq!(
        problems(json!({"paramters": {}})),
        ["environment: environment has wrong section \"paramters\""]
    );
    // A parameter_defaults entry stands for a parameter not passed.
    let parameters = map(json!({"network": "n"}));
    let environment = map(json!({"parameter_defaults": {"flavor": "f"}}));
    let stack = Stack {
        template: "cluster.yaml",
        files: &files,
        environment: &environment,
        parameters: &parameters,
    };
    assert_eq!(check(&stack), []);
}

#[test]
fn nested_templates_are_listed_with_their_properties() {
    let files = BTreeMap::from([
        ("cluster.yaml".to_owned(), MAIN.to_owned()),
        ("node.yaml".to_owned(), NODE.to_owned()),
    ]);
    let template = parse_template("cluster.yaml", MAIN).unwrap();
    let nested = nested_templates(&template, &files, &Environment::default());
    assert_eq!(nested.len(), 1);
    assert_eq!(nested[0].resource, "group");
    assert_eq!(nested[0].file, "node.yaml");
    assert_eq!(nested[0].properties, ["flavor", "network"]);
}
