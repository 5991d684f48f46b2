//! Issue 15 defect 1: a cluster is CREATE_COMPLETE only when its nodes say
//! so. Every node template has a Heat wait condition its node signals at
//! the end of its bootstrap; the local cloud plays the nodes, and
//! `[local] fail_bootstrap_role` makes the first node of a role signal
//! FAILURE. On both database backends, through the conductor and the
//! bundled drivers.

use axum::http::StatusCode;
use diesel::{QueryDsl, RunQueryDsl};
use magnum_host::{
    db::{schema::local_stack, DbConnection},
    orchestrator::local::{LocalCloud, LocalCloudConfig},
};
use serde_json::{json, Value};

use crate::api::TestApp;
use crate::conductor::{conductor_test, fast_cloud, wait_for};

/// The `data` of every `OS::Heat::WaitCondition` in `value` (a stack's
/// stored resources).
fn wait_condition_data(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("OS::Heat::WaitCondition") {
                let data = map
                    .get("attributes")
                    .and_then(|a| a.get("data"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                found.push(data.to_owned());
            }
            map.values().for_each(|v| wait_condition_data(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| wait_condition_data(v, found)),
        _ => {}
    }
}

/// What every wait condition of every local stack received.
fn signals(app: &TestApp) -> Vec<String> {
    let conn: &mut DbConnection = &mut app.db.conn();
    let ids: Vec<String> = local_stack::table
        .select(local_stack::id)
        .load(conn)
        .expect("local stacks");
    let mut found = Vec::new();
    for id in ids {
        let state = LocalCloud::default()
            .stored_state(conn, &id)
            .expect("a stored state");
        let value: Value = serde_json::from_str(&state).expect("JSON state");
        wait_condition_data(&value, &mut found);
    }
    found
}

/// The names of the servers the local cloud holds in `stack`.
fn server_names(app: &TestApp, stack: &str) -> Vec<String> {
    let conn: &mut DbConnection = &mut app.db.conn();
    LocalCloud::new(fast_cloud())
        .servers(conn, stack, magnum_host::db::models::now())
        .expect("servers")
        .into_iter()
        .map(|s| s.name)
        .collect()
}

conductor_test!(
    a_cluster_completes_when_every_node_has_signalled,
    fast_cloud(),
    |app: &TestApp| {
        app.k8s_template("k8s");
        let c = app.cluster("c1", "k8s", json!({"node_count": 2}));
        let path = format!("/v1/clusters/{}", c["uuid"].as_str().unwrap_or_default());
        let done = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
        assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
        // A second worker nodegroup, in a stack of its own.
        let r = app.post(
            &format!("{path}/nodegroups"),
            json!({"name": "ng", "node_count": 2}),
        );
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let ng = wait_for(app, &format!("{path}/nodegroups/ng"), |b| {
            b["status"] != "CREATE_IN_PROGRESS"
        });
        assert_eq!(ng["status"], "CREATE_COMPLETE", "{ng}");

        // Every server of both stacks signalled its wait condition, which
        // holds what the node reported (its name).
        let mut servers = server_names(app, done["cluster_id"].as_str().unwrap_or_default());
        servers.extend(server_names(
            app,
            ng["stack_id"].as_str().unwrap_or_default(),
        ));
        assert_eq!(servers.len(), 5, "1 master, 2 + 2 workers: {servers:?}");
        let signals = signals(app);
        assert_eq!(signals.len(), 5, "one wait condition per node: {signals:?}");
        for server in &servers {
            let reported = signals.iter().filter(|data| {
                serde_json::from_str::<Value>(data).is_ok_and(|d| d["1"]["node"] == **server)
            });
            assert_eq!(reported.count(), 1, "{server} signalled once: {signals:?}");
        }
        let groups = app.get(&format!("{path}/nodegroups")).body;
        for g in groups["nodegroups"].as_array().into_iter().flatten() {
            assert_eq!(g["status"], "CREATE_COMPLETE", "{g}");
        }
    }
);

/// Creates a cluster of `coe` (template `name`) with two workers under
/// `fail_bootstrap_role`, waits for it to fail, and checks the outcome:
/// CREATE_FAILED, the failing server (the first of `role`'s default
/// nodegroup) named in status_reason and faults, and only the failing
/// nodegroup in faults.
fn fails_at_the_first(app: &TestApp, template: &str, role: &str) {
    let c = app.cluster(
        &format!("{template}-{role}"),
        template,
        json!({"node_count": 2}),
    );
    let path = format!("/v1/clusters/{}", c["uuid"].as_str().unwrap_or_default());
    let failed = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
    assert_eq!(failed["status"], "CREATE_FAILED", "{template}: {failed}");
    let stack = failed["cluster_id"].as_str().unwrap_or_default();
    let group = format!("default-{role}");
    let servers = server_names(app, stack);
    let failing = servers
        .iter()
        .find(|s| s.ends_with(&format!("-{group}-0")))
        .unwrap_or_else(|| panic!("{template}: no {group}-0 server among {servers:?}"));
    let reason = failed["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("{failing}: bootstrap failed"))
            && reason.contains("fail_bootstrap_role"),
        "{template}: the reason names the failing server {failing}: {reason}"
    );
    let faults = failed["faults"].as_object().cloned().unwrap_or_default();
    let fault = faults
        .get(&group)
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        fault.contains(failing.as_str()),
        "{template}: faults name {group} with the failing server: {failed}"
    );
    if role == "worker" {
        // The masters had bootstrapped: only the workers failed.
        assert_eq!(
            faults.len(),
            1,
            "{template}: only {group} failed: {faults:?}"
        );
        let masters = app.get(&format!("{path}/nodegroups/default-master")).body;
        assert_eq!(
            masters["status"], "CREATE_COMPLETE",
            "{template}: {masters}"
        );
    } else {
        // Only the first master failed; its workers were never built.
        let workers = servers.iter().filter(|s| s.contains("-default-worker-"));
        assert_eq!(workers.count(), 0, "{template}: {servers:?}");
    }
}

conductor_test!(
    a_worker_that_fails_its_bootstrap_fails_the_cluster,
    LocalCloudConfig {
        fail_bootstrap_role: Some("worker".to_owned()),
        ..fast_cloud()
    },
    |app: &TestApp| {
        app.k8s_template("k8s");
        fails_at_the_first(app, "k8s", "worker");
        for (name, coe, image) in [
            ("swarm", "swarm", "fedora-atomic-latest"),
            ("mesos", "mesos", "ubuntu-mesos"),
        ] {
            let template = json!({"name": name, "coe": coe, "image_id": image, "external_network_id": "public", "flavor_id": "m1.small"});
            let r = app.post("/v1/clustertemplates", template);
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            fails_at_the_first(app, name, "worker");
        }
    }
);

conductor_test!(
    a_master_that_fails_its_bootstrap_fails_the_cluster,
    LocalCloudConfig {
        fail_bootstrap_role: Some("master".to_owned()),
        ..fast_cloud()
    },
    |app: &TestApp| {
        app.k8s_template("k8s");
        fails_at_the_first(app, "k8s", "master");
    }
);

/// A bootstrap fault naming a role the templates do not have stops magnumd
/// at start, saying why, rather than injecting nothing.
#[test]
fn an_unknown_bootstrap_role_stops_magnumd_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("magnum.toml");
    std::fs::write(&config, "[local]\nfail_bootstrap_role = \"etcd\"\n").expect("config");
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).expect("plugins dir");
    let mut child = std::process::Command::new(crate::support::bin("magnumd"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--bind", "127.0.0.1:0", "--plugins-dir"])
        .arg(&plugins)
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("MAGNUM_CONFIG")
        .env_remove("MAGNUM_DATABASE_URL")
        .env_remove("MAGNUM_BIND")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start magnumd");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("magnumd started with fail_bootstrap_role = \"etcd\"");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        pipe.read_to_string(&mut stderr).expect("stderr");
    }
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("[local] fail_bootstrap_role = \"etcd\": must be one of master, worker"),
        "{stderr}"
    );
}
