//! The driver test kit: what the bundled drivers' tests (and a vendor's)
//! share — sample nodegroups and stacks, the HOT static check of a plan's
//! files (`magnum-hot`'s, the one `magnum-driver-manage verify` runs), and
//! plan snapshots. A dev-dependency; each driver's tests use a subset of it.

pub mod cloud;
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

/// The CA bundle [`with_node_settings`] gives the host context: a comment
/// (which must not reach the nodes) and one certificate.
pub const OPENSTACK_CA_BUNDLE: &str =
    "# Issuer: CN=Cloud CA \"test\"\n-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2xvdWQgQ0E=\n-----END CERTIFICATE-----\n";

/// `request` with every node setting set: the template's proxy and
/// registry, the labels pointing downloads at a mirror, images at a prefix
/// and pinning `artifact` (`<artifact>_sha256`), and the host's CA bundle.
/// [`assert_node_settings`] checks what the nodes get of it.
pub fn with_node_settings(mut request: ClusterRequest, artifact: &str) -> ClusterRequest {
    let t = &mut request.template;
    t.http_proxy = Some("http://proxy.example:3128".into());
    t.https_proxy = Some("http://proxy.example:3129".into());
    t.no_proxy = Some("10.0.0.0/24,.example".into());
    t.insecure_registry = Some("10.0.0.5:5000".into());
    t.registry_enabled = true;
    for (name, value) in [
        ("download_mirror_url", "https://mirror.example/magnum/"),
        ("container_infra_prefix", "registry.example/magnum/"),
    ] {
        t.labels.insert(name.into(), value.into());
    }
    t.labels
        .insert(format!("{artifact}_sha256"), "AB".repeat(32));
    request.context.openstack_ca = Some(OPENSTACK_CA_BUNDLE.into());
    request
}

/// Every server of `plan` (made from a [`with_node_settings`] request
/// pinning `artifact`) is one of `servers`, each of which is there, and its
/// user data writes heat-params that, sourced by bash, hold the node
/// settings, and the `expected` `(variable, value)` pairs too; and it runs
/// configure-host.sh first.
pub fn assert_node_settings(
    plan: &StackPlan,
    servers: &[&str],
    artifact: &str,
    expected: &[(&str, &str)],
) {
    let user_data = hot::user_data(plan);
    for server in servers {
        assert!(
            user_data.iter().any(|(name, _)| name == server),
            "no {server} among {:?}",
            user_data.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
    }
    let certificate =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2xvdWQgQ0E=\n-----END CERTIFICATE-----";
    let pin = format!("{artifact}={}", "ab".repeat(32));
    let settings = [
        ("HTTP_PROXY", "http://proxy.example:3128"),
        ("HTTPS_PROXY", "http://proxy.example:3129"),
        ("NO_PROXY", "10.0.0.0/24,.example"),
        ("INSECURE_REGISTRY_URL", "10.0.0.5:5000"),
        ("CONTAINER_INFRA_PREFIX", "registry.example/magnum/"),
        ("ARTIFACT_SHA256", pin.as_str()),
        ("OPENSTACK_CA", certificate),
    ];
    for (server, text) in &user_data {
        assert!(
            servers.contains(&server.as_str()),
            "unexpected server {server}"
        );
        let params =
            heat_params(text).unwrap_or_else(|| panic!("{server}: no heat-params in {text}"));
        let sourced = source(&params, settings.iter().chain(expected).map(|(k, _)| *k));
        for (name, value) in settings.iter().chain(expected) {
            assert_eq!(
                sourced.get(*name).map(String::as_str),
                Some(*value),
                "{server}: {name} in heat-params:\n{params}"
            );
        }
        let registry = sourced.get("REGISTRY_ENABLED").map(String::as_str);
        assert!(
            matches!(registry, Some("True" | "true")),
            "{server}: REGISTRY_ENABLED={registry:?}"
        );
        let host = text
            .find("/var/lib/magnum/fragments/00-configure-host.sh")
            .unwrap_or_else(|| panic!("{server}: configure-host.sh is not written"));
        let first = text
            .find("/var/lib/magnum/fragments/")
            .expect("fragments are written");
        assert!(
            text[host..].contains("install_openstack_ca") && host == first,
            "{server}: configure-host.sh is not the first fragment"
        );
    }
}

/// The heat-params the user data writes (its MAGNUM_PARAMS heredoc).
fn heat_params(user_data: &str) -> Option<String> {
    let start = user_data.find("<<'MAGNUM_PARAMS'\n")? + "<<'MAGNUM_PARAMS'\n".len();
    let end = user_data[start..].find("\nMAGNUM_PARAMS\n")? + start;
    Some(user_data[start..end].to_owned())
}

/// The values of `names` after bash sources `params` (as lib-common.sh
/// does on the node).
fn source<'a>(
    params: &str,
    names: impl Iterator<Item = &'a str>,
) -> std::collections::BTreeMap<String, String> {
    let mut names: Vec<&str> = names.collect();
    names.push("REGISTRY_ENABLED");
    let script: String = names
        .iter()
        .map(|n| format!("printf '%s\\0%s\\0' {n} \"${{{n}-}}\"\n"))
        .collect();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -eu\n. /dev/stdin\n{script}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(params.as_bytes())?;
            child.wait_with_output()
        })
        .expect("bash runs");
    assert!(
        out.status.success(),
        "heat-params does not source: {}\n{params}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let fields: Vec<&str> = text.split('\0').collect();
    fields
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
        .collect()
}
