//! The model-based operations test: outcomes, not shapes.
//!
//! Random sequences of every cluster operation — create, `PATCH
//! node_count`, resize of any nodegroup, nodegroup create and delete,
//! upgrade, CA and credential rotation, delete — go through the real router
//! (in process, or to `magnumd` processes over HTTP) against the local
//! cloud, often back to back on a busy cluster, on clusters with 0–3 extra
//! nodegroups. A model records what each accepted request asked for. Once
//! everything has settled (no job left, every status terminal), every
//! cluster and nodegroup must match it: the row's `node_count`, the servers
//! the local cloud holds for the group, and the node addresses shown. No
//! fault is injected, so every status must be `*_COMPLETE`: a 202 that was
//! lost or half done shows as a count, a template or a status that differs.
//! A refused request must be a 4xx in Magnum's error envelope; the model
//! ignores it, so anything it changed shows up as a mismatch too.
//!
//! The requests are reproducible from the seed (their timing against the
//! conductor is not): the seed is printed first and named in every failure.
//! `MAGNUM_MODEL_SEED` and `MAGNUM_MODEL_OPS` set them; `scripts/soak-model`
//! loops over seeds for long runs.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::http::Method;
use magnum_host::{
    certs::{Authority, CertificateConfig, KeyAlgorithm},
    conductor::{Conductor, Settings},
    db::{testing::TestDatabase, Backend, DbConnection},
    orchestrator::local::{LocalCloud, LocalCloudConfig},
};
use serde_json::{json, Value};

use crate::api::{template_body, TestApp};

/// splitmix64: small, seedable, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How the test reaches the API.
pub(crate) trait Api {
    /// One request at the latest microversion: (status, JSON body or Null).
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value);
    /// Lets time pass (the in-process conductor runs meanwhile).
    fn pause(&self, ms: u64);
}

impl Api for TestApp {
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let r = self.call(method, path, body);
        (r.status.as_u16(), r.body)
    }

    fn pause(&self, ms: u64) {
        self.wait(ms);
    }
}

/// `magnumd serve` at `addr`, through curl.
pub(crate) struct Http(pub String);

impl Api for Http {
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-s",
            "-X",
            method,
            "--max-time",
            "20",
            "-w",
            "\n%{http_code}",
        ])
        .args(["-H", "Content-Type: application/json"])
        .args(["-H", "OpenStack-API-Version: container-infra latest"])
        .arg(format!("http://{}{path}", self.0));
        if let Some(b) = body {
            cmd.args(["-d", &b.to_string()]);
        }
        let out = cmd.output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let status = code.trim().parse().unwrap_or(0);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn pause(&self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Templates of increasing `kube_tag`: upgrades go forward only.
const TEMPLATES: [(&str, &str); 3] = [
    ("k8s-a", "v1.27.3"),
    ("k8s-b", "v1.27.5"),
    ("k8s-c", "v1.27.9"),
];

#[derive(Debug, Clone)]
struct Group {
    name: String,
    count: i64,
}

#[derive(Debug, Clone)]
struct ModelCluster {
    uuid: String,
    name: String,
    template: usize,
    /// `default-worker` first; extra groups after it.
    groups: Vec<Group>,
}

impl ModelCluster {
    fn group_mut(&mut self, name: &str) -> Option<&mut Group> {
        self.groups.iter_mut().find(|g| g.name == name)
    }
}

/// What the accepted requests asked for.
#[derive(Default)]
struct Model {
    clusters: Vec<ModelCluster>,
    deleted: Vec<String>,
    /// Every request sent and its answer, for the failure message.
    log: Vec<String>,
    names: u64,
    accepted: usize,
    refused: usize,
}

pub(crate) struct Run {
    pub seed: u64,
    pub operations: usize,
    /// At most this many live clusters.
    pub max_clusters: usize,
}

impl Run {
    /// Seed and operation count from the environment, else the defaults
    /// (a seed from the clock, printed).
    pub fn from_env(operations: usize) -> Self {
        let seed = std::env::var("MAGNUM_MODEL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        let operations = std::env::var("MAGNUM_MODEL_OPS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(operations);
        println!("model test: seed {seed}, {operations} operations (MAGNUM_MODEL_SEED={seed} reproduces the requests)");
        Self {
            seed,
            operations,
            max_clusters: 5,
        }
    }
}

/// A failure that names the seed and the request log.
macro_rules! model_assert {
    ($model:expr, $run:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            let tail: Vec<&String> = $model.log.iter().rev().take(60).collect();
            let tail: Vec<&String> = tail.into_iter().rev().collect();
            panic!(
                "model test (seed {}, MAGNUM_MODEL_SEED={} reproduces the requests): {}\nlast requests:\n{}",
                $run.seed,
                $run.seed,
                format!($($fmt)+),
                tail.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
            );
        }
    };
}

fn accepted(status: u16) -> bool {
    matches!(status, 200..=299)
}

/// Sends one request; a refusal must be a client error in the envelope.
fn send(
    api: &dyn Api,
    run: &Run,
    model: &mut Model,
    what: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, answer) = api.send(method, path, body.clone());
    let detail = answer["errors"][0]["detail"].as_str().unwrap_or_default();
    model.log.push(format!(
        "{what}: {method} {path} {} -> {status} {detail}",
        body.map(|b| b.to_string()).unwrap_or_default()
    ));
    if accepted(status) {
        model.accepted += 1;
    } else {
        model.refused += 1;
        model_assert!(
            model,
            run,
            matches!(status, 400 | 404 | 409) && answer["errors"][0]["status"] == status,
            "{what} was answered {status} (a refusal must be a 400, 404 or 409 in the error envelope): {answer}"
        );
    }
    (status, answer)
}

/// Drives `run.operations` random operations, then waits for the system to
/// settle and checks every cluster against the model. `between` runs after
/// each operation (the crash variant kills a conductor there).
pub(crate) fn drive(
    api: &dyn Api,
    conn: &mut dyn FnMut() -> magnum_host::db::PooledConnection,
    cloud: &LocalCloud,
    run: &Run,
    between: &mut dyn FnMut(usize),
) {
    let mut rng = Rng(run.seed);
    let mut model = Model::default();
    let mut uuids = BTreeMap::new();
    for (name, tag) in TEMPLATES {
        let mut body = template_body(name, "kubernetes", "fedora-atomic-latest");
        body["labels"]["kube_tag"] = json!(tag);
        let (status, t) = send(
            api,
            run,
            &mut model,
            "template",
            "POST",
            "/v1/clustertemplates",
            Some(body),
        );
        model_assert!(model, run, status == 201, "template create: {status} {t}");
        uuids.insert(name, t["uuid"].as_str().unwrap_or_default().to_owned());
    }
    let mut last: Option<usize> = None;
    for step in 0..run.operations {
        operate(api, run, &mut rng, &mut model, &mut last);
        between(step);
        match rng.below(10) {
            0..=3 => {}
            4..=7 => api.pause(20 + rng.below(180)),
            _ => api.pause(300 + rng.below(1200)),
        }
    }
    settle(api, run, &mut model, conn);
    check(api, run, &model, conn, cloud, &uuids);
    println!(
        "model test (seed {}): {} operations, {} accepted, {} refused, {} clusters live, {} deleted",
        run.seed,
        run.operations,
        model.accepted,
        model.refused,
        model.clusters.len(),
        model.deleted.len()
    );
}

/// One random operation, on the cluster of the last one half of the time
/// (back to back on a busy cluster).
fn operate(api: &dyn Api, run: &Run, rng: &mut Rng, model: &mut Model, last: &mut Option<usize>) {
    let live = model.clusters.len();
    if live == 0 || live < run.max_clusters && rng.chance(10) {
        create_cluster(api, run, rng, model);
        *last = Some(model.clusters.len() - 1);
        return;
    }
    let i = match *last {
        Some(i) if i < live && rng.chance(50) => i,
        _ => rng.below(live as u64) as usize,
    };
    *last = Some(i);
    let uuid = model.clusters[i].uuid.clone();
    let path = format!("/v1/clusters/{uuid}");
    match rng.below(100) {
        0..=13 => {
            let n = rng.below(4) as i64;
            let body = json!([{"op": "replace", "path": "/node_count", "value": n}]);
            let (status, _) = send(
                api,
                run,
                model,
                "patch node_count",
                "PATCH",
                &path,
                Some(body),
            );
            if accepted(status) {
                model.clusters[i].groups[0].count = n;
            }
        }
        14..=41 => {
            let c = &model.clusters[i];
            let g = c.groups[rng.below(c.groups.len() as u64) as usize]
                .name
                .clone();
            let n = rng.below(4) as i64;
            let body = if g == "default-worker" && rng.chance(30) {
                json!({"node_count": n})
            } else {
                json!({"node_count": n, "nodegroup": g})
            };
            let (status, _) = send(
                api,
                run,
                model,
                "resize",
                "POST",
                &format!("{path}/actions/resize"),
                Some(body),
            );
            if accepted(status) {
                if let Some(group) = model.clusters[i].group_mut(&g) {
                    group.count = n;
                }
            }
        }
        42..=56 => {
            if model.clusters[i].groups.len() > 3 {
                return;
            }
            model.names += 1;
            let name = format!("ng{}", model.names);
            let n = rng.below(4) as i64;
            let (status, _) = send(
                api,
                run,
                model,
                "nodegroup create",
                "POST",
                &format!("{path}/nodegroups"),
                Some(json!({"name": name, "node_count": n})),
            );
            if accepted(status) {
                model.clusters[i].groups.push(Group { name, count: n });
            }
        }
        57..=64 => {
            let extra: Vec<String> = model.clusters[i].groups[1..]
                .iter()
                .map(|g| g.name.clone())
                .collect();
            if extra.is_empty() {
                return;
            }
            let g = extra[rng.below(extra.len() as u64) as usize].clone();
            let (status, _) = send(
                api,
                run,
                model,
                "nodegroup delete",
                "DELETE",
                &format!("{path}/nodegroups/{g}"),
                None,
            );
            if accepted(status) {
                model.clusters[i].groups.retain(|x| x.name != g);
            }
        }
        65..=67 => {
            // Nodegroup PATCH: bounds only, never a size; the bound keeps
            // the model's count inside it.
            let c = &model.clusters[i];
            let g = &c.groups[rng.below(c.groups.len() as u64) as usize];
            let (name, max) = (g.name.clone(), g.count + rng.below(3) as i64);
            send(
                api,
                run,
                model,
                "nodegroup update",
                "PATCH",
                &format!("{path}/nodegroups/{name}"),
                Some(json!([{"op": "replace", "path": "/max_node_count", "value": max}])),
            );
        }
        68..=72 => {
            let to = 1 + rng.below(2) as usize;
            let (status, _) = send(
                api,
                run,
                model,
                "upgrade",
                "POST",
                &format!("{path}/actions/upgrade"),
                Some(json!({"cluster_template": TEMPLATES[to].0, "max_batch_size": 1})),
            );
            if accepted(status) {
                model.clusters[i].template = to;
            }
        }
        73..=82 => {
            // No bundled driver can move running nodes to a new CA: always
            // refused, and nothing may change (the final check sees it).
            let (status, answer) = send(
                api,
                run,
                model,
                "rotate CA",
                "PATCH",
                &format!("/v1/certificates/{uuid}"),
                None,
            );
            model_assert!(
                model,
                run,
                !accepted(status),
                "a CA rotation was accepted: {answer}"
            );
        }
        83..=92 => {
            send(
                api,
                run,
                model,
                "rotate credential",
                "PATCH",
                &format!("/v1/credentials/{uuid}"),
                None,
            );
        }
        _ => {
            let (status, _) = send(api, run, model, "delete", "DELETE", &path, None);
            if accepted(status) {
                let gone = model.clusters.remove(i);
                model.deleted.push(gone.uuid);
                *last = None;
            }
        }
    }
}

fn create_cluster(api: &dyn Api, run: &Run, rng: &mut Rng, model: &mut Model) {
    model.names += 1;
    let name = format!("m{}", model.names);
    let n = rng.below(4) as i64;
    let body = json!({"name": name, "cluster_template_id": TEMPLATES[0].0, "node_count": n,
                      "master_count": 1, "keypair": "default"});
    let (status, answer) = send(
        api,
        run,
        model,
        "create",
        "POST",
        "/v1/clusters",
        Some(body),
    );
    if accepted(status) {
        model.clusters.push(ModelCluster {
            uuid: answer["uuid"].as_str().unwrap_or_default().to_owned(),
            name,
            template: 0,
            groups: vec![Group {
                name: "default-worker".to_owned(),
                count: n,
            }],
        });
    }
}

fn count_jobs(conn: &mut DbConnection) -> i64 {
    use diesel::{sql_types::BigInt, QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT COUNT(*) AS n FROM jobs")
        .get_result::<N>(conn)
        .map_or(-1, |r| r.n)
}

fn in_progress(status: &Value) -> bool {
    status.as_str().is_some_and(|s| s.ends_with("_IN_PROGRESS"))
}

/// Waits (at most 240 s) until no job is left and nothing is in progress.
fn settle(
    api: &dyn Api,
    run: &Run,
    model: &mut Model,
    conn: &mut dyn FnMut() -> magnum_host::db::PooledConnection,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let mut why = String::new();
    while std::time::Instant::now() < deadline {
        let jobs = count_jobs(&mut conn());
        let (_, list) = api.send("GET", "/v1/clusters?limit=1000", None);
        let busy: Vec<String> = list["clusters"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| in_progress(&c["status"]))
                    .map(|c| format!("{} {}", c["name"], c["status"]))
                    .collect()
            })
            .unwrap_or_default();
        let mut busy_groups = Vec::new();
        if busy.is_empty() && jobs == 0 {
            for c in &model.clusters {
                let (_, groups) =
                    api.send("GET", &format!("/v1/clusters/{}/nodegroups", c.uuid), None);
                for g in groups["nodegroups"].as_array().into_iter().flatten() {
                    if in_progress(&g["status"]) {
                        busy_groups.push(format!("{}/{} {}", c.name, g["name"], g["status"]));
                    }
                }
            }
            if busy_groups.is_empty() {
                return;
            }
        }
        why = format!("{jobs} jobs left; clusters in progress: {busy:?}; nodegroups in progress: {busy_groups:?}");
        api.pause(250);
    }
    model_assert!(model, run, false, "not settled after 240 s: {why}");
}

/// The servers of a stack by role: (masters, workers, worker addresses).
fn servers(cloud: &LocalCloud, conn: &mut DbConnection, stack: &str) -> (usize, usize, usize) {
    let now = magnum_host::db::models::now();
    let all = cloud.servers(conn, stack, now).unwrap_or_default();
    let masters = all
        .iter()
        .filter(|s| s.resource.starts_with("kube_masters"))
        .count();
    let workers: Vec<_> = all
        .iter()
        .filter(|s| s.resource.starts_with("kube_minions"))
        .collect();
    let inactive = all.iter().filter(|s| s.status != "ACTIVE").count();
    assert_eq!(
        inactive, 0,
        "stack {stack}: servers not ACTIVE after settling"
    );
    let addresses = workers.iter().filter(|s| !s.addresses.is_empty()).count();
    (masters, workers.len(), addresses)
}

fn check(
    api: &dyn Api,
    run: &Run,
    model: &Model,
    conn: &mut dyn FnMut() -> magnum_host::db::PooledConnection,
    cloud: &LocalCloud,
    templates: &BTreeMap<&str, String>,
) {
    let mut wrong = Vec::new();
    let (_, list) = api.send("GET", "/v1/clusters?limit=1000", None);
    let mut shown: Vec<String> = list["clusters"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["uuid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    shown.sort();
    let mut expected: Vec<String> = model.clusters.iter().map(|c| c.uuid.clone()).collect();
    expected.sort();
    if shown != expected {
        wrong.push(format!("clusters listed {shown:?}, model {expected:?}"));
    }
    let mut live_stacks = 0;
    for c in &model.clusters {
        let (_, shown) = api.send("GET", &format!("/v1/clusters/{}", c.uuid), None);
        let name = &c.name;
        if shown["status"]
            .as_str()
            .is_none_or(|s| !s.ends_with("_COMPLETE"))
        {
            wrong.push(format!(
                "{name}: status {} ({})",
                shown["status"], shown["status_reason"]
            ));
        }
        let workers: i64 = c.groups.iter().map(|g| g.count).sum();
        if shown["node_count"] != workers {
            wrong.push(format!(
                "{name}: node_count {} but the model sums {workers}",
                shown["node_count"]
            ));
        }
        let addresses = shown["node_addresses"].as_array().map_or(0, Vec::len);
        if addresses as i64 != workers {
            wrong.push(format!(
                "{name}: {addresses} node_addresses, model {workers}"
            ));
        }
        if shown["master_count"] != 1
            || shown["master_addresses"].as_array().map_or(0, Vec::len) != 1
        {
            wrong.push(format!(
                "{name}: masters {} {}",
                shown["master_count"], shown["master_addresses"]
            ));
        }
        let (template, tag) = TEMPLATES[c.template];
        // An upgrade replaces the workers only: the cluster's version is
        // what its masters report, the release of the template it was
        // created from (every model cluster starts on TEMPLATES[0]).
        let masters_tag = TEMPLATES[0].1;
        if shown["cluster_template_id"].as_str() != templates.get(template).map(String::as_str)
            || shown["labels"]["kube_tag"] != tag
            || shown["coe_version"] != masters_tag
        {
            wrong.push(format!(
                "{name}: template {} kube_tag {} coe_version {}, model {template} ({tag})",
                shown["cluster_template_id"], shown["labels"]["kube_tag"], shown["coe_version"]
            ));
        }
        let main_stack = shown["cluster_id"].as_str().unwrap_or_default().to_owned();
        live_stacks += 1;
        let (_, groups) = api.send("GET", &format!("/v1/clusters/{}/nodegroups", c.uuid), None);
        let groups = groups["nodegroups"].as_array().cloned().unwrap_or_default();
        let mut names: Vec<String> = groups
            .iter()
            .filter(|g| g["role"] != "master")
            .filter_map(|g| g["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        let mut model_names: Vec<String> = c.groups.iter().map(|g| g.name.clone()).collect();
        model_names.sort();
        if names != model_names {
            // Each group's status says which way it went.
            let states: Vec<String> = groups
                .iter()
                .filter(|g| g["role"] != "master")
                .map(|g| format!("{} {} {}", g["name"], g["status"], g["status_reason"]))
                .collect();
            wrong.push(format!("{name}: nodegroup states {states:?}"));
            wrong.push(format!(
                "{name}: worker nodegroups {names:?}, model {model_names:?}"
            ));
        }
        let db = &mut conn();
        let (masters, default_workers, _) = servers(cloud, db, &main_stack);
        if masters != 1 {
            wrong.push(format!("{name}: {masters} master servers in the cloud"));
        }
        for g in &c.groups {
            let (_, row) = api.send(
                "GET",
                &format!("/v1/clusters/{}/nodegroups/{}", c.uuid, g.name),
                None,
            );
            let label = format!("{name}/{}", g.name);
            if row["status"]
                .as_str()
                .is_none_or(|s| !s.ends_with("_COMPLETE"))
            {
                wrong.push(format!(
                    "{label}: status {} ({})",
                    row["status"], row["status_reason"]
                ));
            }
            if row["node_count"] != g.count {
                wrong.push(format!(
                    "{label}: node_count {} but the model says {}",
                    row["node_count"], g.count
                ));
            }
            let shown_addresses = row["node_addresses"].as_array().map_or(0, Vec::len) as i64;
            if shown_addresses != g.count {
                wrong.push(format!(
                    "{label}: {shown_addresses} node_addresses, model {}",
                    g.count
                ));
            }
            let in_cloud = if g.name == "default-worker" {
                default_workers
            } else {
                live_stacks += 1;
                match row["stack_id"].as_str() {
                    Some(stack) => servers(cloud, db, stack).1,
                    None => {
                        wrong.push(format!("{label}: no stack"));
                        0
                    }
                }
            };
            if in_cloud as i64 != g.count {
                wrong.push(format!(
                    "{label}: {in_cloud} servers in the cloud, model {}",
                    g.count
                ));
            }
        }
    }
    for uuid in &model.deleted {
        let (status, _) = api.send("GET", &format!("/v1/clusters/{uuid}"), None);
        if status != 404 {
            wrong.push(format!("deleted cluster {uuid} answers {status}"));
        }
    }
    {
        use diesel::{sql_types::BigInt, QueryableByName, RunQueryDsl};
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let stacks = diesel::sql_query(
            "SELECT COUNT(*) AS n FROM local_stack WHERE status NOT IN ('DELETE_COMPLETE', 'DELETE_IN_PROGRESS')",
        )
        .get_result::<N>(&mut *conn())
        .map_or(-1, |r| r.n);
        if stacks != live_stacks {
            wrong.push(format!(
                "{stacks} stacks in the cloud, {live_stacks} for the live clusters and nodegroups"
            ));
        }
    }
    // Every request each differing cluster saw, in order.
    let history: Vec<&String> = model
        .clusters
        .iter()
        .filter(|c| {
            wrong.iter().any(|w| {
                w.starts_with(&format!("{}:", c.name)) || w.starts_with(&format!("{}/", c.name))
            })
        })
        .flat_map(|c| {
            model
                .log
                .iter()
                .filter(|l| l.contains(&c.uuid) || l.contains(&format!("\"name\":\"{}\"", c.name)))
                .collect::<Vec<_>>()
        })
        .collect();
    model_assert!(
        model,
        run,
        wrong.is_empty(),
        "{} differences from the model:\n{}\nrequests of those clusters:\n{}",
        wrong.len(),
        wrong.join("\n"),
        history
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn cloud_config() -> LocalCloudConfig {
    LocalCloudConfig {
        boot_seconds: 0.2,
        delete_seconds: 0.1,
        ..Default::default()
    }
}

/// In process: the real router and one conductor on `backend`.
fn in_process(backend: Backend, operations: usize) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let run = Run::from_env(operations);
    // ECDSA CAs: the test is about operations, not RSA prime searches.
    let app = TestApp::with(db, |s| {
        s.certs = Arc::new(Authority::ephemeral(CertificateConfig {
            key_algorithm: KeyAlgorithm::EcdsaP256,
            ..Default::default()
        }));
    });
    let cloud = Arc::new(LocalCloud::new(cloud_config()));
    let conductor = Arc::new(Conductor::new(
        app.state.clone(),
        cloud.clone(),
        Settings {
            host: "model-conductor".to_owned(),
            idle_poll: Duration::from_millis(50),
            poll_cap: Duration::from_millis(500),
            concurrency: 2,
            ..Default::default()
        },
    ));
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    app.spawn(conductor.run(rx));
    let pool = app.db.pool.clone();
    let mut conn = move || pool.get().expect("connection");
    // Issue 18, item 4: /metrics scraped as a Prometheus server would,
    // during the run; every family must move.
    let mut scrapes = vec![scrape(&app)];
    drive(&app, &mut conn, &cloud, &run, &mut |step| {
        if step % 3 == 0 {
            scrapes.push(scrape(&app));
        }
    });
    scrapes.push(scrape(&app));
    families_moved(&scrapes);
}

/// `GET /metrics` as (series with its labels, value) pairs.
fn scrape(app: &TestApp) -> BTreeMap<String, f64> {
    let r = app.raw(Method::GET, "/metrics", Vec::new(), &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers
    );
    let text = r.body.as_str().expect("metrics text").to_owned();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// The sum of a family's series whose labels include all of `labels`.
fn total(scrape: &BTreeMap<String, f64>, family: &str, labels: &[&str]) -> f64 {
    scrape
        .iter()
        .filter(|(s, _)| s.starts_with(&format!("{family}{{")) || *s == family)
        .filter(|(s, _)| labels.iter().all(|l| s.contains(l)))
        .map(|(_, v)| v)
        .sum()
}

fn families_moved(scrapes: &[BTreeMap<String, f64>]) {
    let (first, last) = (&scrapes[0], &scrapes[scrapes.len() - 1]);
    // Counters of what this run did (other tests of this process add to
    // them too; these only grow).
    for (family, labels) in [
        (
            "magnum_api_requests_total",
            &[
                "route=\"/v1/clusters\"",
                "method=\"POST\"",
                "status=\"202\"",
            ][..],
        ),
        (
            "magnum_api_request_duration_seconds_count",
            &["route=\"/v1/clusters/{ident}/actions/resize\""][..],
        ),
        (
            "magnum_job_steps_total",
            &["type=\"cluster_create\"", "outcome=\"done\""][..],
        ),
        ("magnum_job_step_duration_seconds_count", &[][..]),
        (
            "magnum_driver_calls_total",
            &[
                "driver=\"k8s_fedora_atomic_v1\"",
                "operation=\"create_cluster\"",
                "outcome=\"ok\"",
            ][..],
        ),
        ("magnum_driver_call_duration_seconds_count", &[][..]),
        (
            "magnum_orchestrator_calls_total",
            &["orchestrator=\"local\"", "operation=\"create\""][..],
        ),
        (
            "magnum_orchestrator_call_duration_seconds_count",
            &["operation=\"get\""][..],
        ),
    ] {
        let (before, after) = (total(first, family, labels), total(last, family, labels));
        assert!(
            after > before,
            "{family} {labels:?} did not move: {before} -> {after}"
        );
    }
    // Gauges counted in the database: clusters by status and driver, and
    // jobs queued or running while operations were in flight.
    let seen =
        |family: &str, labels: &[&str]| scrapes.iter().any(|s| total(s, family, labels) > 0.0);
    assert!(seen(
        "magnum_clusters",
        &[
            "driver=\"k8s_fedora_atomic_v1\"",
            "status=\"CREATE_COMPLETE\""
        ]
    ));
    assert!(
        seen("magnum_clusters", &["status=\"UPDATE_COMPLETE\""])
            || seen("magnum_clusters", &["status=\"UPDATE_IN_PROGRESS\""])
    );
    assert!(seen("magnum_jobs", &[]), "no job ever seen in the queue");
    assert!(seen("magnum_db_pool_connections", &["state=\"in_use\""]));
    assert!(total(last, "magnum_db_pool_connections", &["state=\"max\""]) >= 1.0);
}

#[test]
fn operations_match_the_model_on_sqlite() {
    in_process(Backend::Sqlite, 60);
}

#[test]
fn operations_match_the_model_on_postgres() {
    in_process(Backend::Postgres, 60);
}

#[test]
fn operations_match_the_model_on_mariadb() {
    in_process(Backend::Mysql, 60);
}

/// Two `magnumd conductor` processes and the API on PostgreSQL, one
/// conductor killed with `kill -9` (and restarted) every few operations.
#[test]
fn operations_match_the_model_with_two_conductors_killed() {
    let Some(db) = TestDatabase::new(Backend::Postgres) else {
        return;
    };
    let run = Run::from_env(50);
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    crate::support::register_bundled(&plugins);
    let data = dir.path().join("var");
    let url = db.url();
    let write = |name: &str, extra: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "database_url = \"{url}\"\n[local]\nboot_seconds = 0.2\ndelete_seconds = 0.1\n\n\
                 [certificates]\nkey_algorithm = \"ecdsa-p256\"\n\n[database]\nconnect_timeout_seconds = 10\n\n[conductor]\nlease_seconds = 2\n{extra}"
            ),
        )
        .expect("config");
        path
    };
    let api_config = write("api.toml", "in_process = false\n");
    let conductors = vec![
        write("conductor-a.toml", "host = \"model-a\"\n"),
        write("conductor-b.toml", "host = \"model-b\"\n"),
    ];
    let mut procs = crate::conductor::Crashable::start(plugins, data, api_config, conductors);
    let http = Http(procs.addr());
    let cloud = LocalCloud::new(cloud_config());
    let pool = db.pool.clone();
    let mut conn = move || pool.get().expect("connection");
    let mut rng = Rng(run.seed ^ 0x5EED);
    let mut kills = 0;
    drive(&http, &mut conn, &cloud, &run, &mut |_| {
        if rng.chance(12) {
            procs.crash();
            kills += 1;
        }
    });
    println!("model test (seed {}): {kills} conductor kills", run.seed);
}
