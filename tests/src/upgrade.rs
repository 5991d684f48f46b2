//! Issue 15 defect 6: an upgrade replaces a worker nodegroup's nodes in
//! batches of `max_batch_size`, every new node signals its bootstrap again,
//! and only what the nodes report counts. Through the conductor, the k8s
//! driver's templates and the local cloud (which replaces servers and rolls
//! groups as Heat does), on both database backends.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::http::StatusCode;
use magnum_host::{
    conductor::{Conductor, Settings},
    db::{testing::TestDatabase, DbConnection},
    orchestrator::{
        local::{LocalCloud, LocalCloudConfig},
        sim::ServerEvent,
    },
};
use serde_json::{json, Value};

use crate::api::{template_body, TestApp};
use crate::conductor::{conductor_test, fast_cloud, wait_for};

/// Server name → id of the local stack `stack`.
fn servers(app: &TestApp, stack: &str) -> BTreeMap<String, String> {
    let conn: &mut DbConnection = &mut app.db.conn();
    LocalCloud::new(fast_cloud())
        .servers(conn, stack, magnum_host::db::models::now())
        .expect("servers")
        .into_iter()
        .map(|s| (s.name, s.id))
        .collect()
}

fn events(app: &TestApp, stack: &str) -> Vec<ServerEvent> {
    let conn: &mut DbConnection = &mut app.db.conn();
    LocalCloud::new(fast_cloud())
        .server_events(conn, stack, magnum_host::db::models::now())
        .expect("server events")
}

/// The most servers being replaced at one time among `replaced` (each from
/// its create to the delete of the server it replaced).
fn most_at_once(events: &[ServerEvent], replaced: &[String]) -> usize {
    let spans: Vec<(i64, i64)> = events
        .iter()
        .filter(|e| e.action == "delete")
        .filter_map(|d| {
            let by = d.replaced_by.as_ref()?;
            let created = events
                .iter()
                .find(|e| e.action == "create" && &e.id == by)?;
            replaced.contains(&d.id).then_some((created.at_ms, d.at_ms))
        })
        .collect();
    spans
        .iter()
        .map(|(at, _)| {
            spans
                .iter()
                .filter(|(start, end)| start <= at && at < end)
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn with<'a>(all: &'a BTreeMap<String, String>, part: &str) -> BTreeMap<&'a str, &'a str> {
    all.iter()
        .filter(|(name, _)| name.contains(part))
        .map(|(n, i)| (n.as_str(), i.as_str()))
        .collect()
}

/// The COE version every wait condition of the stack holds, by the node
/// that reported it.
fn reported(app: &TestApp, stack: &str) -> BTreeMap<String, String> {
    let conn: &mut DbConnection = &mut app.db.conn();
    let resources = LocalCloud::new(fast_cloud())
        .resources(conn, stack, magnum_host::db::models::now())
        .expect("resources");
    let mut found = BTreeMap::new();
    for (_, r) in resources
        .iter()
        .filter(|(_, r)| r.type_name == "OS::Heat::WaitCondition")
    {
        let data = r.attributes.get("data").and_then(Value::as_str);
        let Some(data) = data.and_then(|d| serde_json::from_str::<Value>(d).ok()) else {
            continue;
        };
        if let (Some(node), Some(version)) = (
            data["1"]["node"].as_str(),
            data["1"]["coe_version"].as_str(),
        ) {
            found.insert(node.to_owned(), version.to_owned());
        }
    }
    found
}

fn new_template(app: &TestApp) {
    let mut body = template_body("k8s-new", "kubernetes", "fedora-atomic-latest");
    body["labels"]["kube_tag"] = json!("v1.27.8");
    let r = app.post("/v1/clustertemplates", body);
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// A cluster of 1 master and 3 default workers plus a nodegroup `extra` of
/// 2, complete: its path and the two stacks' ids.
fn cluster_with_extra(app: &TestApp) -> (String, String, String) {
    app.k8s_template("k8s");
    let c = app.cluster("up", "k8s", json!({"node_count": 3}));
    let path = format!("/v1/clusters/{}", c["uuid"].as_str().unwrap_or_default());
    let done = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
    assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
    let r = app.post(
        &format!("{path}/nodegroups"),
        json!({"name": "extra", "node_count": 2}),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let ng = wait_for(app, &format!("{path}/nodegroups/extra"), |b| {
        b["status"] != "CREATE_IN_PROGRESS"
    });
    assert_eq!(ng["status"], "CREATE_COMPLETE", "{ng}");
    let cluster = wait_for(app, &path, |b| b["status"] != "UPDATE_IN_PROGRESS");
    // The cluster view names its stack `cluster_id`, as upstream.
    let stack = cluster["cluster_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ng_stack = ng["stack_id"].as_str().unwrap_or_default().to_owned();
    (path, stack, ng_stack)
}

fn upgrade(app: &TestApp, path: &str, body: Value) -> Value {
    let r = app.post(&format!("{path}/actions/upgrade"), body);
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    wait_for(app, path, |b| b["status"] != "UPDATE_IN_PROGRESS")
}

conductor_test!(
    an_upgrade_replaces_the_workers_in_batches,
    fast_cloud(),
    |app: &TestApp| {
        let (path, stack, ng_stack) = cluster_with_extra(app);
        new_template(app);
        let before = servers(app, &stack);
        let extra_before = servers(app, &ng_stack);
        assert_eq!(with(&before, "-default-worker-").len(), 3, "{before:?}");
        assert_eq!(extra_before.len(), 2, "{extra_before:?}");

        // The master nodegroup is refused, saying what to do instead.
        let r = app.post(
            &format!("{path}/actions/upgrade"),
            json!({"cluster_template": "k8s-new", "nodegroup": "default-master"}),
        );
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let detail = r.detail().to_owned();
        assert!(
            detail.contains("master nodegroup") && detail.contains("worker nodegroups"),
            "{detail}"
        );
        assert_eq!(app.get(&path).body["status"], "UPDATE_COMPLETE");

        // No nodegroup: the default workers, two at a time.
        let done = upgrade(
            app,
            &path,
            json!({"cluster_template": "k8s-new", "max_batch_size": 2}),
        );
        assert_eq!(done["status"], "UPDATE_COMPLETE", "{done}");
        let after = servers(app, &stack);
        let (old, new) = (
            with(&before, "-default-worker-"),
            with(&after, "-default-worker-"),
        );
        assert_eq!(new.len(), 3, "{after:?}");
        for (name, id) in &new {
            assert_ne!(
                old.get(name),
                Some(id),
                "{name} was replaced: {before:?} {after:?}"
            );
        }
        assert_eq!(
            with(&before, "-default-master-"),
            with(&after, "-default-master-"),
            "the master is kept"
        );
        assert_eq!(
            servers(app, &ng_stack),
            extra_before,
            "the extra group is kept"
        );
        // Batches of two: never more than two replaced at a time, and two
        // at once in the first batch (highest index first, as Heat).
        let log = events(app, &stack);
        let replaced: Vec<String> = old.values().map(|s| (*s).to_owned()).collect();
        assert_eq!(most_at_once(&log, &replaced), 2, "{log:?}");
        let deleted: Vec<&str> = log
            .iter()
            .filter(|e| e.action == "delete" && replaced.contains(&e.id))
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(deleted.len(), 3, "{log:?}");
        assert!(deleted[2].ends_with("-default-worker-0"), "{log:?}");
        // What the nodes reported: the new workers the new release, the
        // master its own; the cluster says the masters'.
        let versions = reported(app, &stack);
        for name in new.keys() {
            assert_eq!(
                versions.get(*name).map(String::as_str),
                Some("v1.27.8"),
                "{versions:?}"
            );
        }
        for name in with(&after, "-default-master-").keys() {
            assert_eq!(
                versions.get(*name).map(String::as_str),
                Some("v1.27.3"),
                "{versions:?}"
            );
        }
        assert_eq!(done["coe_version"], "v1.27.3", "{done}");
        let workers = app.get(&format!("{path}/nodegroups/default-worker")).body;
        assert_eq!(workers["labels"]["kube_tag"], "v1.27.8", "{workers}");
        let masters = app.get(&format!("{path}/nodegroups/default-master")).body;
        assert_eq!(masters["labels"]["kube_tag"], "v1.27.3", "{masters}");

        // The extra group follows to the cluster's (now new) template;
        // the default workers stay.
        let done = upgrade(
            app,
            &path,
            json!({"cluster_template": "k8s-new", "nodegroup": "extra", "max_batch_size": 1}),
        );
        assert_eq!(done["status"], "UPDATE_COMPLETE", "{done}");
        let extra_after = servers(app, &ng_stack);
        assert_eq!(extra_after.len(), 2, "{extra_after:?}");
        for (name, id) in &extra_after {
            assert_ne!(extra_before.get(name), Some(id), "{name} was replaced");
        }
        let ng_log = events(app, &ng_stack);
        let extra_ids: Vec<String> = extra_before.values().cloned().collect();
        assert_eq!(most_at_once(&ng_log, &extra_ids), 1, "{ng_log:?}");
        assert_eq!(servers(app, &stack), after, "the default groups are kept");

        // A resize after the upgrade boots one worker and replaces none.
        let r = app.post(
            &format!("{path}/actions/resize"),
            json!({"node_count": 4, "nodegroup": "default-worker"}),
        );
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let done = wait_for(app, &path, |b| b["status"] != "UPDATE_IN_PROGRESS");
        assert_eq!(done["status"], "UPDATE_COMPLETE", "{done}");
        let resized = servers(app, &stack);
        let workers = with(&resized, "-default-worker-");
        assert_eq!(workers.len(), 4, "{resized:?}");
        for (name, id) in &new {
            assert_eq!(workers.get(name), Some(id), "{name} was kept");
        }
        let added: Vec<&&str> = workers.keys().filter(|n| !new.contains_key(**n)).collect();
        assert_eq!(added.len(), 1, "{resized:?}");
        assert_eq!(
            reported(app, &stack).get(*added[0]).map(String::as_str),
            Some("v1.27.8"),
            "the added worker boots the upgraded release"
        );
    }
);

/// Runs `first` with a fault-free conductor, stops it, then `then` with one
/// whose cloud fails `[local] fail_bootstrap_role = "worker"`.
fn in_two_phases(db: TestDatabase, first: impl Fn(&TestApp), then: impl Fn(&TestApp)) {
    let app = TestApp::new(db);
    let settings = || Settings {
        host: "test-conductor".to_owned(),
        idle_poll: Duration::from_millis(50),
        poll_cap: Duration::from_millis(500),
        health_interval: Duration::from_millis(300),
        concurrency: 2,
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let healthy = Arc::new(Conductor::new(
        app.state.clone(),
        Arc::new(LocalCloud::new(fast_cloud())),
        settings(),
    ));
    app.spawn(healthy.run(rx));
    first(&app);
    tx.send(true).expect("stop the first conductor");
    app.wait(1500);
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    let failing = Arc::new(Conductor::new(
        app.state.clone(),
        Arc::new(LocalCloud::new(LocalCloudConfig {
            fail_bootstrap_role: Some("worker".to_owned()),
            ..fast_cloud()
        })),
        settings(),
    ));
    app.spawn(failing.run(rx));
    then(&app);
}

#[test]
fn a_replaced_worker_that_fails_its_bootstrap_fails_the_upgrade() {
    let Some(db) = TestDatabase::new(magnum_host::db::Backend::Sqlite) else {
        return;
    };
    let stacks = std::sync::Mutex::new(None);
    in_two_phases(
        db,
        |app| {
            let made = cluster_with_extra(app);
            new_template(app);
            *stacks.lock().expect("lock") = Some(made);
        },
        |app| {
            let Some((path, stack, _)) = stacks.lock().expect("lock").clone() else {
                panic!("no cluster");
            };
            let before = servers(app, &stack);
            let done = upgrade(
                app,
                &path,
                json!({"cluster_template": "k8s-new", "max_batch_size": 1}),
            );
            assert_eq!(done["status"], "UPDATE_FAILED", "{done}");
            // Batches of one, highest index first: worker 2 failed.
            let after = servers(app, &stack);
            let failing = after
                .keys()
                .find(|n| n.ends_with("-default-worker-2"))
                .cloned()
                .unwrap_or_default();
            let reason = done["status_reason"].as_str().unwrap_or_default();
            assert!(
                reason.contains(&format!("{failing}: bootstrap failed")),
                "the reason names {failing}: {reason}"
            );
            // The other workers were never replaced; the cluster keeps its
            // template and the workers their release.
            for n in ["-default-worker-0", "-default-worker-1"] {
                let name = after
                    .keys()
                    .find(|k| k.ends_with(n))
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(after.get(&name), before.get(&name), "{name} kept");
            }
            let workers = app.get(&format!("{path}/nodegroups/default-worker")).body;
            assert_eq!(workers["labels"]["kube_tag"], "v1.27.3", "{workers}");
            assert_eq!(done["coe_version"], "v1.27.3", "{done}");
        },
    );
}
