//! `magnum-driver-manage verify`: calls every operation a driver declares on
//! sample inputs and checks that each plan is a well-formed HOT plan that the
//! `local` orchestrator and Heat can both take.

use std::collections::BTreeMap;

use magnum_driver_abi::{capability as op, payload::*, DriverError, ErrorKind, LabelType};
use serde_json::Value;

use super::call::LoadedDriver;

/// One check and its outcome.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub result: Result<(), String>,
}

/// Runs the conformance suite against every tuple the driver provides.
pub fn run(driver: &LoadedDriver) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut push = |name: String, result: Result<(), String>| checks.push(Check { name, result });
    if driver.info.provides.is_empty() {
        push("info".into(), Err("driver provides no tuple".into()));
    }
    for tuple in &driver.info.provides {
        let s = Sample::new(&driver.info, tuple);
        let tag = |what: &str| format!("{what} {tuple}");
        let supports = |o: &str| driver.info.supports(o);

        if supports(op::VALIDATE_TEMPLATE) {
            push(
                tag("validate_template"),
                ok_or(driver.validate_template(&s.template_req())),
            );
            let mut bad = s.template_req();
            bad.template.network_driver = Some("no-such-network-driver".into());
            push(
                tag("validate_template rejects an unknown network driver"),
                expect_invalid(driver.validate_template(&bad)),
            );
        }
        if supports(op::VALIDATE_CLUSTER) {
            push(
                tag("validate_cluster"),
                ok_or(driver.validate_cluster(&s.cluster_req())),
            );
        }
        let mut node_files = Vec::new();
        if supports(op::NODE_TEMPLATE) {
            for role in &driver.info.node_roles {
                let req = NodeTemplateRequest {
                    role: role.clone(),
                    base: s.cluster_req(),
                };
                let res: Result<NodeTemplate, _> = driver.call(op::NODE_TEMPLATE, &req);
                push(
                    tag(&format!("node_template {role}")),
                    res.as_ref().map_err(|e| e.to_string()).and_then(|t| {
                        magnum_hot::check::parse_template(&t.file_name, &t.template)
                            .map(|_| ())
                            .map_err(|e| format!("{}: {e}", t.file_name))
                    }),
                );
                if let Ok(t) = res {
                    node_files.push(t.file_name);
                }
            }
        }
        for (operation, offered) in [
            (op::NETWORK_DRIVER, &driver.info.network_drivers),
            (op::VOLUME_DRIVER, &driver.info.volume_drivers),
        ] {
            if !supports(operation) {
                continue;
            }
            for sub in offered
                .iter()
                .filter(|d| d.coes.is_empty() || d.coes.contains(&tuple.coe))
            {
                let req = SubDriverRequest {
                    name: Some(sub.name.clone()),
                    coe: tuple.coe.clone(),
                    labels: Labels::new(),
                };
                push(
                    tag(&format!("{operation} {}", sub.name)),
                    ok_or(driver.call::<_, SubDriverConfig>(operation, &req)),
                );
            }
            let req = SubDriverRequest {
                name: Some("no-such-driver".into()),
                coe: tuple.coe.clone(),
                labels: Labels::new(),
            };
            push(
                tag(&format!("{operation} rejects an unknown name")),
                expect_invalid(driver.call::<_, SubDriverConfig>(operation, &req)),
            );
        }

        let mut create_params = serde_json::Map::new();
        for (operation, request) in s.plan_requests(&driver.info) {
            if !supports(operation) {
                continue;
            }
            let result = driver
                .call::<_, StackPlan>(operation, &request)
                .map_err(|e| e.to_string())
                .and_then(|plan| {
                    if operation == op::CREATE_CLUSTER {
                        if let Some(first) = plan.operations.first() {
                            create_params = first.parameters.clone();
                        }
                        for file in &node_files {
                            if !plan.operations.iter().any(|o| o.files.contains_key(file)) {
                                return Err(format!(
                                    "node template {file} is not among the plan's files"
                                ));
                            }
                        }
                    }
                    check_plan(&plan, operation)?;
                    Ok(plan)
                });
            let sizes = match &result {
                Ok(plan) if supports(op::MAP_STATUS) => {
                    s.expected_sizes(operation).map(|expected| {
                        check_sizes(
                            driver,
                            &s,
                            operation,
                            &request,
                            &create_params,
                            plan,
                            &expected,
                        )
                    })
                }
                _ => None,
            };
            push(tag(operation), result.map(|_| ()));
            if let Some(sizes) = sizes {
                push(
                    tag(&format!("{operation} keeps every nodegroup's size")),
                    sizes,
                );
            }
        }
        if supports(op::MAP_STATUS) {
            let req = StatusRequest {
                base: s.cluster_req(),
                stacks: vec![StackSnapshot {
                    target: StackTarget::default(),
                    stack_id: s.cluster.stack_id.clone().unwrap_or_default(),
                    status: "CREATE_COMPLETE".into(),
                    status_reason: "Stack CREATE completed successfully".into(),
                    outputs: serde_json::Map::new(),
                    parameters: create_params,
                }],
            };
            push(tag(op::MAP_STATUS), ok_or(driver.map_status(&req)));
        }
    }
    checks
}

fn ok_or<T>(r: Result<T, DriverError>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| e.to_string())
}

fn expect_invalid<T>(r: Result<T, DriverError>) -> Result<(), String> {
    match r {
        Err(e) if e.kind == ErrorKind::INVALID => Ok(()),
        Err(e) => Err(format!(
            "expected an invalid-input error, got {} error: {e}",
            e.kind.name()
        )),
        Ok(_) => Err("accepted it".into()),
    }
}

/// Sample inputs for one tuple: one master, two workers, default labels.
struct Sample {
    template: ClusterTemplate,
    cluster: Cluster,
    nodegroups: Vec<NodeGroup>,
}

impl Sample {
    fn new(info: &DriverInfo, tuple: &Provides) -> Self {
        let template = ClusterTemplate {
            uuid: "6a4a0bb5-8a40-4d3c-8b5e-0c2f2b0f1a01".into(),
            name: "conformance-template".into(),
            coe: tuple.coe.clone(),
            server_type: tuple.server_type.clone(),
            cluster_distro: tuple.os.clone(),
            image_id: "conformance-image".into(),
            flavor_id: Some("m1.small".into()),
            master_flavor_id: Some("m1.medium".into()),
            keypair_id: Some("default".into()),
            external_network_id: Some("public".into()),
            dns_nameserver: Some("8.8.8.8".into()),
            driver: Some(info.name.clone()),
            ..Default::default()
        };
        let cluster = Cluster {
            uuid: "0b1f6a52-3c1d-4e7a-9f0b-2d6c8e4a5b01".into(),
            name: "conformance".into(),
            project_id: "conformance-project".into(),
            keypair: Some("default".into()),
            master_count: 1,
            node_count: 2,
            create_timeout: Some(60),
            stack_id: Some("5d0c8f1e-6b7a-4c3d-9e2f-1a0b9c8d7e01".into()),
            status: "CREATE_COMPLETE".into(),
            ..Default::default()
        };
        let ng = |uuid: &str, name: &str, role: &str, count: i64| NodeGroup {
            uuid: uuid.into(),
            name: name.into(),
            role: role.into(),
            is_default: true,
            node_count: count,
            min_node_count: if role == "master" { 1 } else { 0 },
            stack_id: cluster.stack_id.clone(),
            status: "CREATE_COMPLETE".into(),
            ..Default::default()
        };
        let mut nodegroups = vec![
            ng(
                "c5e1a0b2-0001-4000-8000-000000000001",
                "default-master",
                "master",
                1,
            ),
            ng(
                "c5e1a0b2-0002-4000-8000-000000000002",
                "default-worker",
                "worker",
                2,
            ),
        ];
        let mut cluster = cluster;
        // With an extra worker group the cluster's node_count (the sum over
        // worker groups, as the host and upstream show it) differs from the
        // default worker group's size: a plan that scales the cluster stack
        // to the sum is caught by the size checks.
        if info.supports(op::CREATE_NODEGROUP) {
            nodegroups.push(NodeGroup {
                uuid: "c5e1a0b2-0004-4000-8000-000000000004".into(),
                name: "more".into(),
                role: "worker".into(),
                node_count: 1,
                stack_id: Some("7e2d9a0b-1c3f-4a5e-8b6d-0f1e2d3c4b02".into()),
                status: "CREATE_COMPLETE".into(),
                ..Default::default()
            });
            cluster.node_count = 3;
        }
        Self {
            template,
            cluster,
            nodegroups,
        }
    }

    fn template_req(&self) -> TemplateRequest {
        TemplateRequest {
            template: self.template.clone(),
        }
    }

    fn cluster_req(&self) -> ClusterRequest {
        ClusterRequest {
            template: self.template.clone(),
            cluster: self.cluster.clone(),
            nodegroups: self.nodegroups.clone(),
            context: HostContext {
                magnum_url: Some("http://127.0.0.1:9511/v1".into()),
                auth_url: Some("http://127.0.0.1:5000/v3".into()),
                ..Default::default()
            },
        }
    }

    /// Every plan-producing operation with its request, in lifecycle order.
    fn plan_requests(&self, info: &DriverInfo) -> Vec<(&'static str, Value)> {
        let base = self.cluster_req();
        let worker = self.nodegroups[1].uuid.clone();
        let mut create = base.clone();
        create.cluster.stack_id = None;
        create.cluster.status = "CREATE_IN_PROGRESS".into();
        // `PATCH node_count` as the host hands it over: the default worker
        // group's row holds the new size, the cluster's sum follows.
        let mut update = base.clone();
        update.nodegroups[1].node_count = 3;
        update.cluster.node_count += 1;
        let resize = ResizeRequest {
            base: base.clone(),
            nodegroup: worker.clone(),
            node_count: 1,
            nodes_to_remove: vec![],
        };
        let upgrade = UpgradeRequest {
            base: base.clone(),
            new_template: newer_template(info, &self.template),
            nodegroup: worker,
            max_batch_size: 1,
        };
        // A 0-node extra nodegroup exercises nodegroup stacks at their edge.
        let extra = NodeGroup {
            uuid: "c5e1a0b2-0003-4000-8000-000000000003".into(),
            name: "extra".into(),
            role: "worker".into(),
            node_count: 0,
            stack_id: Some("7e2d9a0b-1c3f-4a5e-8b6d-0f1e2d3c4b01".into()),
            status: "CREATE_COMPLETE".into(),
            ..Default::default()
        };
        let ng_req = |with_stack: bool| {
            let mut ng = extra.clone();
            if !with_stack {
                ng.stack_id = None;
            }
            NodeGroupRequest {
                base: base.clone(),
                nodegroup: ng,
            }
        };
        let json = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
        vec![
            (op::CREATE_CLUSTER, json(serde_json::to_value(&create))),
            (op::UPDATE_CLUSTER, json(serde_json::to_value(&update))),
            (op::RESIZE_CLUSTER, json(serde_json::to_value(&resize))),
            (op::UPGRADE_CLUSTER, json(serde_json::to_value(&upgrade))),
            (
                op::CREATE_NODEGROUP,
                json(serde_json::to_value(ng_req(false))),
            ),
            (
                op::UPDATE_NODEGROUP,
                json(serde_json::to_value(ng_req(true))),
            ),
            (
                op::DELETE_NODEGROUP,
                json(serde_json::to_value(ng_req(true))),
            ),
            (op::DELETE_CLUSTER, json(serde_json::to_value(&base))),
        ]
    }
}

impl Sample {
    /// Each worker nodegroup's size after `operation` as `plan_requests`
    /// asks it: the rows' sizes, but for the group a resize or a `PATCH
    /// node_count` changes. `None` for operations whose plans do not scale.
    fn expected_sizes(&self, operation: &str) -> Option<BTreeMap<String, i64>> {
        let mut sizes: BTreeMap<String, i64> = self
            .nodegroups
            .iter()
            .filter(|g| g.role != "master")
            .map(|g| (g.uuid.clone(), g.node_count))
            .collect();
        let worker = self.nodegroups[1].uuid.clone();
        match operation {
            op::CREATE_CLUSTER | op::UPGRADE_CLUSTER => {}
            op::UPDATE_CLUSTER => {
                sizes.insert(worker, 3);
            }
            op::RESIZE_CLUSTER => {
                sizes.insert(worker, 1);
            }
            _ => return None,
        }
        Some(sizes)
    }
}

/// Outcome check: the size each nodegroup has once the plan's stacks are
/// done, read back through the driver's own status mapping of each stack's
/// parameters (an update's merged over the cluster stack's create
/// parameters, as Heat's PATCH update keeps them). A plan that changes a
/// group the request did not resize — a rotation or an upgrade that scales,
/// a cluster stack scaled to the sum over every worker group — fails.
fn check_sizes(
    driver: &LoadedDriver,
    sample: &Sample,
    operation: &str,
    request: &Value,
    create_params: &serde_json::Map<String, Value>,
    plan: &StackPlan,
    expected: &BTreeMap<String, i64>,
) -> Result<(), String> {
    let base: ClusterRequest = match operation {
        op::CREATE_CLUSTER | op::UPDATE_CLUSTER => serde_json::from_value(request.clone()),
        _ => request
            .get("base")
            .cloned()
            .map_or_else(|| Ok(sample.cluster_req()), serde_json::from_value),
    }
    .map_err(|e| format!("request: {e}"))?;
    for step in &plan.operations {
        if step.action == StackAction::Delete {
            continue;
        }
        let mut parameters = if step.existing && step.target.nodegroup.is_none() {
            create_params.clone()
        } else {
            serde_json::Map::new()
        };
        parameters.extend(step.parameters.clone());
        let snapshot = StackSnapshot {
            target: step.target.clone(),
            stack_id: step.stack_id.clone().unwrap_or_default(),
            status: match step.action {
                StackAction::Create => "CREATE_COMPLETE",
                _ => "UPDATE_COMPLETE",
            }
            .into(),
            status_reason: String::new(),
            outputs: serde_json::Map::new(),
            parameters,
        };
        let mapped = driver
            .map_status(&StatusRequest {
                base: base.clone(),
                stacks: vec![snapshot],
            })
            .map_err(|e| format!("map_status: {e}"))?;
        for group in &mapped.nodegroups {
            let (Some(size), Some(want)) = (group.node_count, expected.get(&group.uuid)) else {
                continue;
            };
            if size != *want {
                let name = base
                    .nodegroups
                    .iter()
                    .find(|g| g.uuid == group.uuid)
                    .map_or(group.uuid.as_str(), |g| g.name.as_str());
                return Err(format!(
                    "stack {} leaves nodegroup {name} with {size} nodes; the request asks for {want}",
                    step.stack_name
                ));
            }
        }
    }
    Ok(())
}

/// The template with every semver label one patch release above its
/// default, which is what a legitimate upgrade looks like to any driver (a
/// new minor need not be: k8s keeps workers within the masters' minor).
fn newer_template(info: &DriverInfo, template: &ClusterTemplate) -> ClusterTemplate {
    let mut newer = template.clone();
    newer.uuid = "6a4a0bb5-8a40-4d3c-8b5e-0c2f2b0f1a02".into();
    for spec in info.labels.iter().filter(|l| l.kind == LabelType::Semver) {
        if let Some((major, minor, patch)) = spec
            .default
            .as_deref()
            .and_then(magnum_driver_abi::convention::parse_version)
        {
            newer
                .labels
                .insert(spec.name.clone(), format!("v{major}.{minor}.{}", patch + 1));
        }
    }
    newer
}

/// Checks every operation of a plan; the first problem found is reported.
pub fn check_plan(plan: &StackPlan, operation: &str) -> Result<(), String> {
    if plan.operations.is_empty() {
        return Err(format!("{operation} returned an empty plan"));
    }
    for (i, step) in plan.operations.iter().enumerate() {
        let at = |m: String| format!("step {i} ({:?} {}): {m}", step.action, step.stack_name);
        match step.action {
            StackAction::Delete => {
                if step.stack_id.is_none() && step.stack_name.is_empty() {
                    return Err(at("delete names no stack".into()));
                }
                continue;
            }
            StackAction::Update if step.existing => {
                if step.stack_id.is_none() {
                    return Err(at("update names no stack_id".into()));
                }
                continue;
            }
            _ => {}
        }
        if step.stack_name.is_empty() {
            return Err(at("no stack_name".into()));
        }
        check_files(step).map_err(at)?;
    }
    Ok(())
}

/// The plan step's templates, through magnum-hot's static check: the
/// first problem found.
fn check_files(step: &StackOperation) -> Result<(), String> {
    let stack = magnum_hot::check::Stack {
        template: &step.template,
        files: &step.files,
        environment: &step.environment,
        parameters: &step.parameters,
    };
    match magnum_hot::check::check(&stack).into_iter().next() {
        Some(problem) => Err(problem.to_string()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(files: &[(&str, &str)], params: &[(&str, Value)]) -> StackPlan {
        StackPlan {
            operations: vec![StackOperation {
                stack_name: "s".into(),
                template: "cluster.yaml".into(),
                files: files
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                parameters: params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                ..Default::default()
            }],
        }
    }

    const MAIN: &str = "heat_template_version: 2018-08-31\nparameters:\n  count: {type: number}\nresources:\n  net: {type: 'OS::Neutron::Net'}\n  group:\n    type: OS::Heat::ResourceGroup\n    properties:\n      count: {get_param: count}\n      resource_def:\n        type: node.yaml\n        properties: {network: {get_resource: net}}\noutputs:\n  ips: {value: {get_attr: [group, ip]}}\n";
    const NODE: &str = "heat_template_version: 2018-08-31\nparameters:\n  network: {type: string}\nresources:\n  server: {type: 'OS::Nova::Server', properties: {networks: [{network: {get_param: network}}]}}\n";

    #[test]
    fn a_well_formed_plan_passes() {
        let plan = step(
            &[("cluster.yaml", MAIN), ("node.yaml", NODE)],
            &[("count", 2.into())],
        );
        assert_eq!(check_plan(&plan, "create_cluster"), Ok(()));
    }

    /// verify takes a health monitor's `type` property (HTTP) for what it
    /// is, data, as the drivers' API load balancers have one.
    #[test]
    fn a_health_monitors_type_property_passes() {
        let main = MAIN.replace(
            "\noutputs:",
            "\n  pool: {type: 'OS::Octavia::Pool', properties: {lb_algorithm: ROUND_ROBIN, protocol: HTTP}}\n  monitor:\n    type: OS::Octavia::HealthMonitor\n    properties: {pool: {get_resource: pool}, type: HTTP, delay: 5, max_retries: 5, timeout: 5, url_path: /healthz}\noutputs:",
        );
        assert!(main.contains("type: HTTP"));
        let plan = step(
            &[("cluster.yaml", &main), ("node.yaml", NODE)],
            &[("count", 2.into())],
        );
        assert_eq!(check_plan(&plan, "create_cluster"), Ok(()));
    }

    #[test]
    fn each_rule_is_enforced() {
        let cases: Vec<(StackPlan, &str)> = vec![
            (
                step(&[("cluster.yaml", MAIN)], &[("count", 2.into())]),
                "node.yaml is not among the files",
            ),
            (
                step(&[("cluster.yaml", MAIN), ("node.yaml", NODE)], &[]),
                "requires parameter count",
            ),
            (
                step(
                    &[("cluster.yaml", MAIN), ("node.yaml", NODE)],
                    &[("count", 1.into()), ("bogus", 1.into())],
                ),
                "parameter bogus is passed",
            ),
            (
                step(
                    &[
                        (
                            "cluster.yaml",
                            &MAIN.replace("get_param: count", "get_param: cnt"),
                        ),
                        ("node.yaml", NODE),
                    ],
                    &[("count", 1.into())],
                ),
                "get_param cnt: no such parameter",
            ),
            (
                step(
                    &[
                        (
                            "cluster.yaml",
                            &MAIN.replace("get_resource: net", "get_resource: nett"),
                        ),
                        ("node.yaml", NODE),
                    ],
                    &[("count", 1.into())],
                ),
                "get_resource nett: no such resource",
            ),
            (
                step(
                    &[
                        ("cluster.yaml", &MAIN.replace("[group, ip]", "[grp, ip]")),
                        ("node.yaml", NODE),
                    ],
                    &[("count", 1.into())],
                ),
                "get_attr grp: no such resource",
            ),
            (
                step(
                    &[
                        (
                            "cluster.yaml",
                            &MAIN.replace("{network: {get_resource: net}}", "{netw: x}"),
                        ),
                        ("node.yaml", NODE),
                    ],
                    &[("count", 1.into())],
                ),
                "passes property netw",
            ),
            (
                step(
                    &[
                        (
                            "cluster.yaml",
                            &MAIN.replace("{get_param: count}", "{repeat: {}}"),
                        ),
                        ("node.yaml", NODE),
                    ],
                    &[("count", 1.into())],
                ),
                "uses repeat",
            ),
            (
                step(
                    &[
                        ("cluster.yaml", &MAIN.replace("2018-08-31", "2016-10-14")),
                        ("node.yaml", NODE),
                    ],
                    &[("count", 1.into())],
                ),
                "older than",
            ),
        ];
        for (plan, expected) in cases {
            let err = check_plan(&plan, "create_cluster").expect_err(expected);
            assert!(err.contains(expected), "expected '{expected}' in '{err}'");
        }
    }
}
