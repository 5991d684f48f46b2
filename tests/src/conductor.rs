//! The conductor with the `local` orchestrator, in process, on both
//! database backends: every cluster operation reaches a terminal state
//! through the real drivers' plans, faults and deadlines included.

use std::{sync::Arc, time::Duration};

use axum::http::StatusCode;
use magnum_host::{
    conductor::{Conductor, Settings},
    db::testing::TestDatabase,
    orchestrator::local::{LocalCloud, LocalCloudConfig},
};
use serde_json::{json, Value};

use crate::api::{template_body, TestApp};

pub(crate) fn fast_cloud() -> LocalCloudConfig {
    LocalCloudConfig {
        boot_seconds: 0.3,
        delete_seconds: 0.2,
        ..Default::default()
    }
}

/// A TestApp with a conductor running on it.
pub(crate) fn app_with_conductor(db: TestDatabase, cloud: LocalCloudConfig) -> TestApp {
    let app = TestApp::new(db);
    let settings = Settings {
        host: "test-conductor".to_owned(),
        idle_poll: Duration::from_millis(50),
        poll_cap: Duration::from_millis(500),
        health_interval: Duration::from_millis(300),
        // Each running job holds a pooled connection; the test pool has 6.
        concurrency: 2,
        ..Default::default()
    };
    let conductor = Arc::new(Conductor::new(
        app.state.clone(),
        Arc::new(LocalCloud::new(cloud)),
        settings,
    ));
    let (tx, rx) = tokio::sync::watch::channel(false);
    // Kept alive for the test's duration: dropping the sender stops it.
    std::mem::forget(tx);
    app.spawn(conductor.run(rx));
    app
}

/// Polls `path` until `done(body)` (30 s at most).
pub(crate) fn wait_for(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let r = app.get(path);
        last = r.body;
        if done(&last) {
            return last;
        }
        app.wait(100);
    }
    panic!("{path} did not reach the expected state in 30 s; last: {last}");
}

macro_rules! conductor_test {
    ($name:ident, $cloud:expr, $body:expr) => {
        mod $name {
            use super::*;

            fn body(app: &TestApp) {
                let f: &dyn Fn(&TestApp) = &$body;
                f(app)
            }

            #[test]
            fn sqlite() {
                if let Some(db) =
                    magnum_host::db::testing::TestDatabase::new(magnum_host::db::Backend::Sqlite)
                {
                    body(&crate::conductor::app_with_conductor(db, $cloud));
                }
            }

            #[test]
            fn postgres() {
                if let Some(db) =
                    magnum_host::db::testing::TestDatabase::new(magnum_host::db::Backend::Postgres)
                {
                    body(&crate::conductor::app_with_conductor(db, $cloud));
                }
            }
        }
    };
}
pub(crate) use conductor_test;

conductor_test!(kubernetes_lifecycle, fast_cloud(), |app: &TestApp| {
    app.k8s_template("k8s");
    let c = app.cluster("c1", "k8s", json!({"node_count": 2}));
    let path = format!("/v1/clusters/{}", c["uuid"].as_str().unwrap());
    let done = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
    assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
    let api = done["api_address"].as_str().expect("api_address");
    assert!(
        api.starts_with("https://") && api.ends_with(":6443"),
        "{api}"
    );
    assert_eq!(
        done["node_addresses"].as_array().unwrap().len(),
        2,
        "{done}"
    );
    assert_eq!(
        done["master_addresses"].as_array().unwrap().len(),
        1,
        "{done}"
    );
    assert!(done["cluster_id"].is_string(), "the stack id is recorded");
    let healthy = wait_for(app, &path, |b| b["health_status"] == "HEALTHY");
    let reason = healthy["health_status_reason"].as_object().unwrap();
    assert_eq!(reason["api"], "ok");
    assert_eq!(reason.len(), 4, "api + one entry per server: {reason:?}");
    let groups = app.get(&format!("{path}/nodegroups")).body;
    assert!(
        groups["nodegroups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["status"] == "CREATE_COMPLETE"),
        "{groups}"
    );

    // Resize up, then update down: the addresses follow.
    assert_eq!(
        app.post(&format!("{path}/actions/resize"), json!({"node_count": 3}))
            .status,
        StatusCode::ACCEPTED
    );
    let resized = wait_for(app, &path, |b| b["status"] != "UPDATE_IN_PROGRESS");
    assert_eq!(resized["status"], "UPDATE_COMPLETE", "{resized}");
    assert_eq!(resized["node_addresses"].as_array().unwrap().len(), 3);
    assert_eq!(resized["node_count"], 3);
    let r = app.patch(
        &path,
        json!([{"op": "replace", "path": "/node_count", "value": 1}]),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let shrunk = wait_for(app, &path, |b| b["status"] != "UPDATE_IN_PROGRESS");
    assert_eq!(shrunk["status"], "UPDATE_COMPLETE", "{shrunk}");
    assert_eq!(shrunk["node_addresses"].as_array().unwrap().len(), 1);

    // An extra nodegroup gets its own stack.
    let r = app.post(
        &format!("{path}/nodegroups"),
        json!({"name": "extra", "node_count": 2}),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let ng = wait_for(app, &format!("{path}/nodegroups/extra"), |b| {
        b["status"] != "CREATE_IN_PROGRESS"
    });
    assert_eq!(ng["status"], "CREATE_COMPLETE", "{ng}");
    assert_eq!(ng["node_addresses"].as_array().unwrap().len(), 2, "{ng}");
    assert_ne!(ng["stack_id"], done["cluster_id"]);
    let after = wait_for(app, &path, |b| b["status"] != "UPDATE_IN_PROGRESS");
    assert_eq!(after["status"], "UPDATE_COMPLETE", "{after}");
    assert_eq!(
        app.delete(&format!("{path}/nodegroups/extra")).status,
        StatusCode::NO_CONTENT
    );
    wait_for(app, &format!("{path}/nodegroups"), |b| {
        b["nodegroups"].as_array().is_some_and(|a| a.len() == 2)
    });

    // Delete: the cluster, its nodegroups and its stacks go.
    assert_eq!(app.delete(&path).status, StatusCode::NO_CONTENT);
    wait_for(app, &path, |b| b["errors"][0]["status"] == 404);
    assert_eq!(app.count("nodegroup"), 0);
    // The job ends just after the row goes (its own write): bounded wait.
    let mut jobs = app.count("jobs");
    for _ in 0..100 {
        if jobs == 0 {
            break;
        }
        app.wait(100);
        jobs = app.count("jobs");
    }
    assert_eq!(jobs, 0, "every job finished");
    let mservices = app.get("/v1/mservices").body;
    assert_eq!(mservices["mservices"][0]["host"], "test-conductor");
    assert_eq!(mservices["mservices"][0]["state"], "up");
});

conductor_test!(
    health_passes_read_only_what_changed,
    fast_cloud(),
    |app: &TestApp| {
        app.k8s_template("k8s");
        let paths: Vec<String> = ["ha", "hb"]
            .iter()
            .map(|name| {
                let c = app.cluster(name, "k8s", json!({"node_count": 1}));
                format!("/v1/clusters/{}", c["uuid"].as_str().unwrap())
            })
            .collect();
        for path in &paths {
            wait_for(app, path, |b| b["health_status"] == "HEALTHY");
        }
        // A second conductor on the same database and cloud, whose passes the
        // test runs itself; the running one keeps doing its own.
        let observer = Conductor::new(
            app.state.clone(),
            Arc::new(LocalCloud::new(fast_cloud())),
            Settings::default(),
        );
        let pass = || observer.health_pass().expect("health pass");
        let first = pass();
        assert_eq!((first.clusters, first.examined, first.changed), (2, 2, 0));
        let second = pass();
        assert_eq!(
            (second.clusters, second.examined),
            (2, 0),
            "nothing changed"
        );

        let r = app.post(
            &format!("{}/actions/resize", paths[0]),
            json!({"node_count": 2}),
        );
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let resized = wait_for(app, &paths[0], |b| b["status"] == "UPDATE_COMPLETE");
        let third = pass();
        assert_eq!(
            (third.clusters, third.examined),
            (2, 1),
            "only the resized one"
        );
        // The running conductor's passes saw the change too: api, the master
        // and both nodes.
        let healthy = wait_for(app, &paths[0], |b| {
            b["health_status_reason"].as_object().map(|r| r.len()) == Some(4)
        });
        assert_eq!(healthy["health_status"], "HEALTHY", "{resized}");
        let fourth = pass();
        assert_eq!((fourth.clusters, fourth.examined), (2, 0));
    }
);

conductor_test!(swarm_and_mesos_complete, fast_cloud(), |app: &TestApp| {
    for (name, coe, image, prefix) in [
        ("swarm", "swarm", "fedora-atomic-latest", "tcp://"),
        ("swarm-mode", "swarm-mode", "fedora-atomic-latest", "tcp://"),
        ("mesos", "mesos", "ubuntu-mesos", ""),
    ] {
        let r = app.post("/v1/clustertemplates", json!({"name": name, "coe": coe, "image_id": image, "external_network_id": "public", "flavor_id": "m1.small"}));
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let c = app.cluster(
            &format!("{name}-c").replace('-', "x"),
            name,
            json!({"node_count": 1}),
        );
        let path = format!("/v1/clusters/{}", c["uuid"].as_str().unwrap());
        let done = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
        assert_eq!(done["status"], "CREATE_COMPLETE", "{coe}: {done}");
        let api = done["api_address"].as_str().unwrap_or_default();
        assert!(api.starts_with(prefix) && !api.is_empty(), "{coe}: {api}");
        assert_eq!(
            done["node_addresses"].as_array().map(Vec::len),
            Some(1),
            "{coe}: {done}"
        );
    }
});

conductor_test!(
    faults_fail_with_a_reason_and_failed_clusters_delete,
    LocalCloudConfig {
        fail_resource_type: Some("OS::Nova::Server".to_owned()),
        ..fast_cloud()
    },
    |app: &TestApp| {
        app.k8s_template("k8s");
        let c = app.cluster("c1", "k8s", json!({}));
        let path = format!("/v1/clusters/{}", c["uuid"].as_str().unwrap());
        let failed = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
        assert_eq!(failed["status"], "CREATE_FAILED", "{failed}");
        let reason = failed["status_reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("injected fault") && reason.contains("OS::Nova::Server"),
            "{reason}"
        );
        assert!(
            failed["faults"].as_object().is_some_and(|f| !f.is_empty()),
            "faults name the failed nodegroups: {failed}"
        );
        // A resize of a failed cluster is refused; a delete works.
        assert_eq!(
            app.post(&format!("{path}/actions/resize"), json!({"node_count": 2}))
                .status,
            StatusCode::CONFLICT
        );
        assert_eq!(app.delete(&path).status, StatusCode::NO_CONTENT);
        wait_for(app, &path, |b| b["errors"][0]["status"] == 404);
    }
);

conductor_test!(
    a_stack_that_never_finishes_times_out,
    LocalCloudConfig {
        never_finish: true,
        ..fast_cloud()
    },
    |app: &TestApp| {
        app.k8s_template("k8s");
        let c = app.cluster("c1", "k8s", json!({"create_timeout": 5}));
        let uuid = c["uuid"].as_str().unwrap().to_owned();
        let path = format!("/v1/clusters/{uuid}");
        app.wait(1500);
        assert_eq!(app.get(&path).body["status"], "CREATE_IN_PROGRESS");
        // Six minutes later, as far as the deadline is concerned.
        let earlier = match app.db.backend() {
            magnum_host::db::Backend::Sqlite => "datetime(created_at, '-6 minutes')",
            magnum_host::db::Backend::Postgres => "created_at - INTERVAL '6 minutes'",
            magnum_host::db::Backend::Mysql => "created_at - INTERVAL 6 MINUTE",
        };
        app.sql(&format!(
            "UPDATE cluster SET created_at = {earlier} WHERE uuid = '{uuid}'"
        ));
        let failed = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
        assert_eq!(failed["status"], "CREATE_FAILED");
        assert_eq!(
            failed["status_reason"],
            "Timed out after 5 minutes (create_timeout) waiting for the cluster's stacks to be created"
        );
    }
);

/// `curl` (on every machine this runs on) as the HTTP client of the
/// process-level tests.
fn curl(addr: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-X", method, "--max-time", "10"])
        .args(["-H", "Content-Type: application/json"])
        .args(["-H", "OpenStack-API-Version: container-infra latest"])
        .arg(format!("http://{addr}{path}"));
    if let Some(b) = body {
        cmd.args(["-d", &b.to_string()]);
    }
    let out = cmd.output().expect("run curl");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// `kill -9` right after a cluster create was accepted: after a restart the
/// cluster completes, with exactly one stack (found by name, not recreated).
#[test]
fn kill_9_mid_create_resumes_without_a_second_stack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    crate::support::register_bundled(&plugins);
    let data = dir.path().join("var");
    let config = dir.path().join("magnum.toml");
    std::fs::write(
        &config,
        "[local]\nboot_seconds = 2.0\n\n[conductor]\nlease_seconds = 2\n",
    )
    .expect("config");
    let server = crate::support::Magnumd::start_with(&plugins, &data, Some(&config));
    let t = curl(
        &server.addr,
        "POST",
        "/v1/clustertemplates",
        Some(template_body("k8s", "kubernetes", "fedora-atomic-latest")),
    );
    assert!(t["uuid"].is_string(), "{t}");
    let c = curl(
        &server.addr,
        "POST",
        "/v1/clusters",
        Some(json!({"name": "c1", "cluster_template_id": "k8s", "node_count": 1})),
    );
    let uuid = c["uuid"].as_str().expect("202 with uuid").to_owned();
    // Long enough for the conductor to create the stack, far shorter than its boot.
    let mut stack = Value::Null;
    for _ in 0..50 {
        stack =
            curl(&server.addr, "GET", &format!("/v1/clusters/{uuid}"), None)["cluster_id"].clone();
        if stack.is_string() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(stack.is_string(), "the stack was created before the kill");
    drop(server); // SIGKILL

    let mut server = crate::support::Magnumd::start_with(&plugins, &data, Some(&config));
    let mut last = Value::Null;
    for _ in 0..300 {
        last = curl(&server.addr, "GET", &format!("/v1/clusters/{uuid}"), None);
        if last["status"] != "CREATE_IN_PROGRESS" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        last["status"],
        "CREATE_COMPLETE",
        "{last}\n{}",
        server.log()
    );
    assert_eq!(
        last["cluster_id"], stack,
        "the same stack, not a second one"
    );
    let pool = magnum_host::db::DbPool::connect(&format!(
        "sqlite://{}",
        data.join("magnum.sqlite").display()
    ))
    .expect("db");
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let conn: &mut magnum_host::db::DbConnection = &mut pool.get().expect("conn");
    let n = diesel::sql_query("SELECT COUNT(*) AS n FROM local_stack")
        .get_result::<N>(conn)
        .expect("count")
        .n;
    assert_eq!(n, 1, "exactly one stack");
    let (status, _) = server.stop();
    assert!(status.success());
}

/// Two conductors on one PostgreSQL database (as `magnumd conductor`
/// processes would be): every cluster completes, each stack is created once.
#[test]
fn two_conductors_share_one_postgres() {
    let Some(db) = TestDatabase::new(magnum_host::db::Backend::Postgres) else {
        return;
    };
    let app = app_with_conductor(db, fast_cloud());
    let second = Arc::new(Conductor::new(
        app.state.clone(),
        Arc::new(LocalCloud::new(fast_cloud())),
        Settings {
            host: "test-conductor-2".to_owned(),
            concurrency: 2,
            idle_poll: Duration::from_millis(50),
            poll_cap: Duration::from_millis(500),
            ..Default::default()
        },
    ));
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    app.spawn(second.run(rx));
    app.k8s_template("k8s");
    let uuids: Vec<String> = (0..4)
        .map(|i| {
            app.cluster(&format!("c{i}"), "k8s", json!({"node_count": 1}))["uuid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for uuid in &uuids {
        let done = wait_for(&app, &format!("/v1/clusters/{uuid}"), |b| {
            b["status"] != "CREATE_IN_PROGRESS"
        });
        assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
    }
    assert_eq!(app.count("local_stack"), 4, "one stack per cluster");
    let services = app.get("/v1/mservices").body;
    assert_eq!(
        services["mservices"].as_array().map(Vec::len),
        Some(2),
        "{services}"
    );
}

/// Milliseconds in `lo..hi`, from the clock (no RNG crate needed).
fn jitter(lo: u64, hi: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    lo + nanos % (hi - lo).max(1)
}

/// Waits (bounded) until no cluster is in an *_IN_PROGRESS state; returns
/// the final list.
fn settle(addr: &str, what: &str) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..600 {
        last = curl(addr, "GET", "/v1/clusters?limit=1000", None)["clusters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if last
            .iter()
            .all(|c| !c["status"].as_str().unwrap_or("").ends_with("_IN_PROGRESS"))
        {
            return last;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let stuck: Vec<&Value> = last
        .iter()
        .filter(|c| c["status"].as_str().unwrap_or("").ends_with("_IN_PROGRESS"))
        .collect();
    panic!(
        "{what}: {} clusters still in progress after 120 s: {stuck:?}",
        stuck.len()
    );
}

/// The processes of a crash test: the API (with or without a conductor in
/// it) and any `magnumd conductor` processes; `crash` SIGKILLs one and
/// starts it again.
pub(crate) struct Crashable {
    plugins: std::path::PathBuf,
    data: std::path::PathBuf,
    api_config: std::path::PathBuf,
    conductor_configs: Vec<std::path::PathBuf>,
    api: crate::support::Magnumd,
    conductors: Vec<crate::support::Magnumd>,
    kills: usize,
}

impl Crashable {
    pub(crate) fn start(
        plugins: std::path::PathBuf,
        data: std::path::PathBuf,
        api_config: std::path::PathBuf,
        conductor_configs: Vec<std::path::PathBuf>,
    ) -> Self {
        let api = crate::support::Magnumd::start_with(&plugins, &data, Some(&api_config));
        let conductors = conductor_configs
            .iter()
            .map(|c| crate::support::Magnumd::conductor(&plugins, &data, c))
            .collect();
        Self {
            plugins,
            data,
            api_config,
            conductor_configs,
            api,
            conductors,
            kills: 0,
        }
    }

    pub(crate) fn addr(&self) -> String {
        self.api.addr.clone()
    }

    /// `kill -9` of the process that runs conductors (the API process when
    /// it is the only one, else the conductors in turn), then a restart.
    pub(crate) fn crash(&mut self) {
        self.kills += 1;
        if self.conductors.is_empty() {
            // The new process reuses the data directory.
            self.api.kill();
            self.api = crate::support::Magnumd::start_with(
                &self.plugins,
                &self.data,
                Some(&self.api_config),
            );
        } else {
            let i = self.kills % self.conductors.len();
            self.conductors[i].kill();
            self.conductors[i] = crate::support::Magnumd::conductor(
                &self.plugins,
                &self.data,
                &self.conductor_configs[i],
            );
        }
    }
}

/// 100 creates in flight, `kill -9` three times at random moments; then 50
/// resizes and 50 deletes in flight, killed twice more. Everything reaches a
/// terminal state, no cluster has two stacks, no job is left.
fn hundred_operations_with_kills(procs: &mut Crashable, conn: &mut magnum_host::db::DbConnection) {
    let t = curl(
        &procs.addr(),
        "POST",
        "/v1/clustertemplates",
        Some(template_body("k8s", "kubernetes", "fedora-atomic-latest")),
    );
    assert!(t["uuid"].is_string(), "{t}");
    let mut uuids = Vec::new();
    for i in 0..100 {
        let c = curl(
            &procs.addr(),
            "POST",
            "/v1/clusters",
            Some(json!({"name": format!("c{i}"), "cluster_template_id": "k8s", "node_count": 1})),
        );
        uuids.push(
            c["uuid"]
                .as_str()
                .unwrap_or_else(|| panic!("create {i}: {c}"))
                .to_owned(),
        );
    }
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(jitter(200, 1500)));
        procs.crash();
    }
    let clusters = settle(&procs.addr(), "creates");
    assert_eq!(clusters.len(), 100);
    assert_all(&procs.addr(), &clusters, "CREATE_COMPLETE", 1);

    for (i, uuid) in uuids.iter().enumerate() {
        if i % 2 == 0 {
            let r = curl(
                &procs.addr(),
                "POST",
                &format!("/v1/clusters/{uuid}/actions/resize"),
                Some(json!({"node_count": 2})),
            );
            assert_eq!(r["uuid"].as_str(), Some(uuid.as_str()), "{r}");
        } else {
            curl(
                &procs.addr(),
                "DELETE",
                &format!("/v1/clusters/{uuid}"),
                None,
            );
        }
    }
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(jitter(200, 1000)));
        procs.crash();
    }
    let clusters = settle(&procs.addr(), "resizes and deletes");
    assert_eq!(clusters.len(), 50, "the deleted half is gone");
    assert_all(&procs.addr(), &clusters, "UPDATE_COMPLETE", 2);

    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let stacks = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM local_stack WHERE status <> 'DELETE_COMPLETE'",
    )
    .get_result::<N>(conn)
    .expect("count")
    .n;
    assert_eq!(
        stacks, 50,
        "one stack per remaining cluster, none for deleted ones"
    );
    // A delete job ends just after its cluster row goes (or, when a kill
    // fell in between, once its lease expires and a conductor retries it).
    let count_jobs = |conn: &mut magnum_host::db::DbConnection| {
        diesel::sql_query("SELECT COUNT(*) AS n FROM jobs")
            .get_result::<N>(conn)
            .expect("count")
            .n
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut jobs = count_jobs(conn);
    while jobs != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        jobs = count_jobs(conn);
    }
    assert_eq!(jobs, 0, "every job finished");
    let certs = diesel::sql_query("SELECT COUNT(*) AS n FROM certificate")
        .get_result::<N>(conn)
        .expect("count")
        .n;
    assert_eq!(certs, 50 * 5, "the deleted clusters' certificates are gone");
}

/// Every cluster is `status` with `node_count` nodes; the message names
/// the others with their status_reason (from the detail view).
fn assert_all(addr: &str, clusters: &[Value], status: &str, node_count: i64) {
    let wrong: Vec<String> = clusters
        .iter()
        .filter(|c| c["status"] != status || c["node_count"] != node_count)
        .map(|c| {
            let uuid = c["uuid"].as_str().unwrap_or_default();
            let detail = curl(addr, "GET", &format!("/v1/clusters/{uuid}"), None);
            format!(
                "{} {uuid}: {} node_count {} ({})",
                c["name"], c["status"], c["node_count"], detail["status_reason"]
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} clusters are not {status} with {node_count} nodes:\n{}",
        wrong.len(),
        clusters.len(),
        wrong.join("\n")
    );
}

// ECDSA CAs: the test is about crashes; 400 RSA keys would make it mostly a
// key-generation benchmark on 2 cores.
const CRASH_CONFIG: &str = "[local]\nboot_seconds = 0.3\ndelete_seconds = 0.2\n\n[api]\nmax_clusters_per_project = 1000\n\n[certificates]\nkey_algorithm = \"ecdsa-p256\"\n\n# A loaded test machine: PostgreSQL may take more than 2 s to accept.\n[database]\nconnect_timeout_seconds = 10\n";

/// The crash test on SQLite: one `magnumd serve` with its
/// in-process conductor, killed and restarted.
#[test]
fn a_hundred_operations_survive_repeated_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    crate::support::register_bundled(&plugins);
    let data = dir.path().join("var");
    let config = dir.path().join("magnum.toml");
    std::fs::write(
        &config,
        format!("{CRASH_CONFIG}\n[conductor]\nlease_seconds = 1\n"),
    )
    .expect("config");
    let mut procs = Crashable::start(plugins, data.clone(), config, Vec::new());
    let pool = magnum_host::db::DbPool::connect(&format!(
        "sqlite://{}",
        data.join("magnum.sqlite").display()
    ))
    .expect("db");
    hundred_operations_with_kills(&mut procs, &mut pool.get().expect("conn"));
    let (status, _) = procs.api.stop();
    assert!(status.success());
}

/// The same on PostgreSQL with the work shared: the API without a
/// conductor, two `magnumd conductor` processes, killed in turn.
#[test]
fn two_conductor_processes_on_postgres_survive_repeated_kill_9() {
    let Some(db) = TestDatabase::new(magnum_host::db::Backend::Postgres) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    crate::support::register_bundled(&plugins);
    let data = dir.path().join("var");
    let url = db.url();
    let write = |name: &str, conductor: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("database_url = \"{url}\"\n{CRASH_CONFIG}\n[conductor]\nlease_seconds = 1\n{conductor}"),
        )
        .expect("config");
        path
    };
    let api = write("api.toml", "in_process = false\n");
    let conductors = vec![
        write("conductor-a.toml", "host = \"conductor-a\"\n"),
        write("conductor-b.toml", "host = \"conductor-b\"\n"),
    ];
    let mut procs = Crashable::start(plugins, data, api, conductors);
    hundred_operations_with_kills(&mut procs, &mut db.conn());
    let services = curl(&procs.addr(), "GET", "/v1/mservices", None);
    let hosts: Vec<&str> = services["mservices"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["host"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        hosts.contains(&"conductor-a") && hosts.contains(&"conductor-b"),
        "{services}"
    );
    for c in procs.conductors.drain(..) {
        let (status, _) = c.stop();
        assert!(status.success());
    }
    let (status, _) = procs.api.stop();
    assert!(status.success());
}

/// The local cloud behind a switch: while `down`, every call answers as an
/// orchestrator that cannot be reached (an outage, injected). Each stack
/// create takes `create_delay` longer, and is counted in `creates`.
struct Outage {
    cloud: LocalCloud,
    down: std::sync::atomic::AtomicBool,
    create_delay: Duration,
    creates: std::sync::atomic::AtomicUsize,
}

impl Outage {
    fn new(create_delay: Duration) -> Self {
        Self {
            cloud: LocalCloud::new(fast_cloud()),
            down: std::sync::atomic::AtomicBool::new(false),
            create_delay,
            creates: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn check(&self) -> Result<(), magnum_host::conductor::OrchestratorError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(magnum_host::conductor::OrchestratorError::Unavailable(
                "injected outage".into(),
            ))
        } else {
            Ok(())
        }
    }
}

impl magnum_host::conductor::Orchestrator for Outage {
    fn name(&self) -> &'static str {
        "outage"
    }
    fn create(
        &self,
        conn: &mut magnum_host::db::DbConnection,
        project_id: &str,
        trust_id: Option<&str>,
        op: &magnum_driver_abi::payload::StackOperation,
    ) -> Result<String, magnum_host::conductor::OrchestratorError> {
        self.check()?;
        self.creates
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(self.create_delay);
        magnum_host::conductor::Orchestrator::create(&self.cloud, conn, project_id, trust_id, op)
    }
    fn find(
        &self,
        conn: &mut magnum_host::db::DbConnection,
        name: &str,
        trust_id: Option<&str>,
    ) -> Result<Option<String>, magnum_host::conductor::OrchestratorError> {
        self.check()?;
        magnum_host::conductor::Orchestrator::find(&self.cloud, conn, name, trust_id)
    }
    fn get(
        &self,
        conn: &mut magnum_host::db::DbConnection,
        id: &str,
    ) -> Result<
        Option<magnum_driver_abi::payload::StackSnapshot>,
        magnum_host::conductor::OrchestratorError,
    > {
        self.check()?;
        magnum_host::conductor::Orchestrator::get(&self.cloud, conn, id)
    }
    fn update(
        &self,
        conn: &mut magnum_host::db::DbConnection,
        id: &str,
        trust_id: Option<&str>,
        op: &magnum_driver_abi::payload::StackOperation,
    ) -> Result<(), magnum_host::conductor::OrchestratorError> {
        self.check()?;
        magnum_host::conductor::Orchestrator::update(&self.cloud, conn, id, trust_id, op)
    }
    fn delete(
        &self,
        conn: &mut magnum_host::db::DbConnection,
        id: &str,
    ) -> Result<(), magnum_host::conductor::OrchestratorError> {
        self.check()?;
        magnum_host::conductor::Orchestrator::delete(&self.cloud, conn, id)
    }
}

/// An orchestrator that stays unreachable does not keep an operation in
/// progress: retries keep the operation's start, so its deadline fires.
#[test]
fn an_unreachable_orchestrator_meets_the_deadline() {
    let Some(db) = TestDatabase::new(magnum_host::db::Backend::Sqlite) else {
        return;
    };
    let app = TestApp::new(db);
    let outage = Arc::new(Outage::new(Duration::ZERO));
    let conductor = Arc::new(Conductor::new(
        app.state.clone(),
        outage.clone(),
        Settings {
            host: "outage-conductor".to_owned(),
            idle_poll: Duration::from_millis(50),
            poll_cap: Duration::from_millis(500),
            operation_timeout: Duration::from_secs(2),
            concurrency: 2,
            ..Default::default()
        },
    ));
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    app.spawn(conductor.run(rx));
    app.k8s_template("k8s");
    let c = app.cluster("c1", "k8s", json!({"node_count": 1}));
    let path = format!("/v1/clusters/{}", c["uuid"].as_str().unwrap());
    let done = wait_for(&app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
    assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");

    outage.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = app.patch(
        &path,
        json!([{"op": "replace", "path": "/node_count", "value": 2}]),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    // First run: unreachable, retried after the queue's first backoff (5 s);
    // that run finds the 2 s deadline passed.
    let done = wait_for(&app, &path, |b| b["status"] != "UPDATE_IN_PROGRESS");
    assert_eq!(done["status"], "UPDATE_FAILED", "{done}");
    let reason = done["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Timed out"), "{reason}");
}

/// A run that outlasts its lease keeps it: with a 300 ms lease and stack
/// creates that take 2 s, a second conductor on the same database never
/// starts the same create (which would make a second stack, or fail the
/// cluster on the name the first one took).
fn long_runs_keep_their_lease(db: TestDatabase) {
    let app = TestApp::new(db);
    let cloud = Arc::new(Outage::new(Duration::from_secs(2)));
    for host in ["lease-a", "lease-b"] {
        let conductor = Arc::new(Conductor::new(
            app.state.clone(),
            cloud.clone(),
            Settings {
                host: host.to_owned(),
                idle_poll: Duration::from_millis(50),
                poll_cap: Duration::from_millis(500),
                lease: Duration::from_millis(300),
                concurrency: 2,
                ..Default::default()
            },
        ));
        let (tx, rx) = tokio::sync::watch::channel(false);
        std::mem::forget(tx);
        app.spawn(conductor.run(rx));
    }
    app.k8s_template("k8s");
    let uuids: Vec<String> = (0..2)
        .map(|i| {
            app.cluster(&format!("slow{i}"), "k8s", json!({"node_count": 1}))["uuid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for uuid in &uuids {
        let done = wait_for(&app, &format!("/v1/clusters/{uuid}"), |b| {
            b["status"] != "CREATE_IN_PROGRESS"
        });
        assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
    }
    assert_eq!(
        cloud.creates.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one stack create per cluster"
    );
    assert_eq!(app.count("local_stack"), 2);
}

#[test]
fn long_runs_keep_their_lease_on_sqlite() {
    if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Sqlite) {
        long_runs_keep_their_lease(db);
    }
}

#[test]
fn long_runs_keep_their_lease_on_postgres() {
    if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Postgres) {
        long_runs_keep_their_lease(db);
    }
}

/// The local cloud, recording what the conductor passed it: each create,
/// update and lookup with the trust given, and whether the plan's
/// parameters held a `trust_id` (which would reach the nodes).
struct Recorder {
    cloud: LocalCloud,
    calls: std::sync::Mutex<Vec<(&'static str, Option<String>, bool)>>,
}

impl Recorder {
    fn record(&self, call: &'static str, trust_id: Option<&str>, plan_trust: bool) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push((
            call,
            trust_id.map(str::to_owned),
            plan_trust,
        ));
    }
}

impl magnum_host::conductor::Orchestrator for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn create(
        &self,
        conn: &mut magnum_host::db::DbConnection,
        project_id: &str,
        trust_id: Option<&str>,
        op: &magnum_driver_abi::payload::StackOperation,
    ) -> Result<String, magnum_host::conductor::OrchestratorError> {
        self.record("create", trust_id, op.parameters.contains_key("trust_id"));
        magnum_host::conductor::Orchestrator::create(&self.cloud, conn, project_id, trust_id, op)
    }
    fn find(
        &self,
        conn: &mut magnum_host::db::DbConnection,
        name: &str,
        trust_id: Option<&str>,
    ) -> Result<Option<String>, magnum_host::conductor::OrchestratorError> {
        self.record("find", trust_id, false);
        magnum_host::conductor::Orchestrator::find(&self.cloud, conn, name, trust_id)
    }
    fn get(
        &self,
        conn: &mut magnum_host::db::DbConnection,
        id: &str,
    ) -> Result<
        Option<magnum_driver_abi::payload::StackSnapshot>,
        magnum_host::conductor::OrchestratorError,
    > {
        magnum_host::conductor::Orchestrator::get(&self.cloud, conn, id)
    }
    fn update(
        &self,
        conn: &mut magnum_host::db::DbConnection,
        id: &str,
        trust_id: Option<&str>,
        op: &magnum_driver_abi::payload::StackOperation,
    ) -> Result<(), magnum_host::conductor::OrchestratorError> {
        self.record("update", trust_id, op.parameters.contains_key("trust_id"));
        magnum_host::conductor::Orchestrator::update(&self.cloud, conn, id, trust_id, op)
    }
    fn delete(
        &self,
        conn: &mut magnum_host::db::DbConnection,
        id: &str,
    ) -> Result<(), magnum_host::conductor::OrchestratorError> {
        magnum_host::conductor::Orchestrator::delete(&self.cloud, conn, id)
    }
}

/// The conductor gives each cluster's trust to the orchestrator on every
/// create, lookup and update of its stacks, for every driver (swarm's and
/// Mesos's plans once lost it: their stacks went to the service project),
/// and never puts it in a plan; a cluster without a trust passes none.
#[test]
fn the_conductor_passes_the_clusters_trust_not_the_plan() {
    let Some(db) = TestDatabase::new(magnum_host::db::Backend::Sqlite) else {
        return;
    };
    let app = TestApp::new(db);
    let recorder = Arc::new(Recorder {
        cloud: LocalCloud::new(fast_cloud()),
        calls: std::sync::Mutex::new(Vec::new()),
    });
    // The rows get their trusts before any conductor runs (the API makes
    // trusts only in keystone mode).
    let mut clusters = Vec::new();
    for (coe, image, trust) in [
        ("kubernetes", "fedora-atomic-latest", Some("trust-k8s")),
        ("swarm-mode", "fedora-atomic-latest", Some("trust-swarm")),
        ("mesos", "ubuntu-mesos", Some("trust-mesos")),
        ("kubernetes", "fedora-atomic-latest", None),
    ] {
        let name = format!("t-{}-{}", coe, trust.is_some());
        let r = app.post("/v1/clustertemplates", template_body(&name, coe, image));
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let c = app.cluster(&name, &name, json!({"node_count": 1}));
        let uuid = c["uuid"].as_str().expect("uuid").to_owned();
        if let Some(t) = trust {
            app.sql(&format!(
                "UPDATE cluster SET trust_id = '{t}' WHERE uuid = '{uuid}'"
            ));
        }
        clusters.push((uuid, trust));
    }
    let conductor = Arc::new(Conductor::new(
        app.state.clone(),
        recorder.clone(),
        Settings {
            host: "trust-conductor".to_owned(),
            idle_poll: Duration::from_millis(50),
            poll_cap: Duration::from_millis(500),
            concurrency: 2,
            ..Default::default()
        },
    ));
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    app.spawn(conductor.run(rx));
    for (uuid, _) in &clusters {
        let path = format!("/v1/clusters/{uuid}");
        let done = wait_for(&app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
        assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
        let r = app.patch(
            &path,
            json!([{"op": "replace", "path": "/node_count", "value": 2}]),
        );
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let done = wait_for(&app, &path, |b| b["status"] != "UPDATE_IN_PROGRESS");
        assert_eq!(done["status"], "UPDATE_COMPLETE", "{done}");
    }

    let calls = recorder
        .calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for kind in ["find", "create", "update"] {
        let mut trusts: Vec<Option<String>> = calls
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, t, _)| t.clone())
            .collect();
        trusts.sort();
        trusts.dedup();
        let mut want: Vec<Option<String>> =
            clusters.iter().map(|(_, t)| t.map(str::to_owned)).collect();
        want.sort();
        assert_eq!(trusts, want, "{kind}: {calls:?}");
    }
    assert!(
        calls.iter().all(|(_, _, in_plan)| !in_plan),
        "a plan carried the trust: {calls:?}"
    );
}
