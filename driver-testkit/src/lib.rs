//! The driver test kit: what the bundled drivers' tests (and a vendor's)
//! share — sample nodegroups and stacks, the HOT static check of a plan's
//! files (`magnum-hot`'s, the one `magnum-driver-manage verify` runs), and
//! plan snapshots. A dev-dependency; each driver's tests use a subset of it.

pub mod hot;

use magnum_driver_sdk::{
    serde_json::Value, ClusterRequest, DriverError, ErrorKind, NodeGroup, NodeGroupUpdate,
    StackPlan, StackSnapshot, StackTarget, StatusUpdate,
};

/// The uuids of the default master and worker nodegroups.
pub const MASTERS: &str = "aaaaaaaa-0000-0000-0000-000000000001";
pub const WORKERS: &str = "aaaaaaaa-0000-0000-0000-000000000002";

pub fn nodegroup(uuid: &str, name: &str, role: &str, is_default: bool, count: i64) -> NodeGroup {
    NodeGroup {
        uuid: uuid.into(),
        name: name.into(),
        role: role.into(),
        is_default,
        node_count: count,
        ..Default::default()
    }
}

/// The default nodegroups: one master ([`MASTERS`]) and `workers` workers
/// ([`WORKERS`]), named `default-master` and `default-worker`.
pub fn default_nodegroups(workers: i64) -> Vec<NodeGroup> {
    vec![
        nodegroup(MASTERS, "default-master", "master", true, 1),
        nodegroup(WORKERS, "default-worker", "worker", true, workers),
    ]
}

/// The cluster stack as Heat reports it.
pub fn cluster_stack(
    status: &str,
    reason: &str,
    outputs: Value,
    parameters: Value,
) -> StackSnapshot {
    StackSnapshot {
        target: StackTarget::default(),
        stack_id: "stack-1".into(),
        status: status.into(),
        status_reason: reason.into(),
        outputs: outputs.as_object().unwrap().clone(),
        parameters: parameters.as_object().unwrap().clone(),
    }
}

/// Asserts `err` is `Invalid` on `field`; returns its message.
pub fn invalid(err: DriverError, field: &str) -> String {
    assert_eq!(err.kind, ErrorKind::INVALID, "{err}");
    assert_eq!(err.field.as_str(), field, "{err}");
    err.message.to_string()
}

/// Asserts every operation's HOT files pass [`hot::lint`] with its parameters
/// and environment.
pub fn lint(plan: &StackPlan) {
    for operation in &plan.operations {
        let passed: Vec<String> = operation.parameters.keys().cloned().collect();
        let registry = operation
            .environment
            .get("resource_registry")
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .filter_map(|(from, to)| Some((from.clone(), to.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let problems = hot::lint(&operation.files, &operation.template, &passed, &registry);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

/// Nodes boot from a Cinder volume made from the image when the
/// boot_volume_size label is above 0: the size reaches the cluster stack as
/// a number (0 by default), the volume type only when a label sets it, and
/// every node template can boot either way. Returns `request` with both
/// labels set (the size on the template, the type on the cluster).
pub fn check_boot_volume_labels(
    request: ClusterRequest,
    create: impl Fn(&ClusterRequest) -> StackPlan,
) -> ClusterRequest {
    let plan = create(&request);
    let p = &plan.operations[0].parameters;
    assert_eq!(p["boot_volume_size"], 0);
    assert!(!p.contains_key("boot_volume_type"));
    assert_nodes_can_boot_from_volumes(&plan);

    let mut request = request;
    request
        .template
        .labels
        .insert("boot_volume_size".into(), "20".into());
    request
        .cluster
        .labels
        .insert("boot_volume_type".into(), "ssd".into());
    let plan = create(&request);
    lint(&plan);
    let p = &plan.operations[0].parameters;
    assert_eq!(p["boot_volume_size"], 20);
    assert_eq!(p["boot_volume_type"], "ssd");
    request
}

/// Asserts every node template of the plan's operations is given
/// `boot_volume_size` and `boot_volume_type` by the top-level template, and
/// boots its one server from the image or from a volume made from it.
pub fn assert_nodes_can_boot_from_volumes(plan: &StackPlan) {
    for operation in &plan.operations {
        let nested = hot::nested(&operation.files, &operation.template);
        let nodes: Vec<_> = nested
            .iter()
            .filter(|(file, _)| file == "master.yaml" || file == "worker.yaml")
            .collect();
        assert!(!nodes.is_empty(), "no node templates in {nested:?}");
        for (file, properties) in nodes {
            for name in ["boot_volume_size", "boot_volume_type"] {
                assert!(properties.contains(&name.to_owned()), "{file}: {name}");
            }
            let text = &operation.files[file];
            assert_eq!(text.matches("type: OS::Nova::Server").count(), 1, "{file}");
            for line in [
                "condition: boot_from_volume",
                "image: {if: [image_based, {get_param: server_image}]}",
                "- - volume_id: {get_resource: boot_volume}",
            ] {
                assert!(text.contains(line), "{file} lacks {line}");
            }
        }
    }
}

/// The update of nodegroup `uuid`; panics when there is none.
pub fn nodegroup_update<'a>(update: &'a StatusUpdate, uuid: &str) -> &'a NodeGroupUpdate {
    update
        .nodegroups
        .iter()
        .find(|g| g.uuid == uuid)
        .unwrap_or_else(|| panic!("no update for nodegroup {uuid}: {update:?}"))
}

/// A plan as its snapshots show it: every field, each file's text replaced
/// by the file's name (the templates and scripts are reviewed as files).
pub fn plan_snapshot(plan: &StackPlan) -> Value {
    let mut value = magnum_driver_sdk::serde_json::to_value(plan).expect("plans serialize");
    if let Some(operations) = value["operations"].as_array_mut() {
        for operation in operations {
            let names: Vec<Value> = operation["files"]
                .as_object()
                .map(|files| files.keys().cloned().map(Value::from).collect())
                .unwrap_or_default();
            operation["files"] = Value::Array(names);
        }
    }
    value
}
