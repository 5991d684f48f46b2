//! What the real-service tests share (`mod common;` in realcloud.rs, whose
//! `heat` module uses it too): the harness of tests/heat + tests/cloud on one Keystone,
//! step wall times, stack polling and the node player that signals the
//! stacks' wait condition handles in place of booting nodes.
#![allow(
    dead_code,
    reason = "each test binary that includes this module uses part of it"
)]

pub mod sandbox;

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use magnum_driver_abi::StackSnapshot;
use magnum_host::{
    conductor::Orchestrator,
    db::DbConnection,
    keystone::{KeystoneClient, ServiceAuth},
    orchestrator::{HeatOrchestrator, HeatSettings},
};
use serde_json::{json, Value};

/// Bounds start.sh (pip install included) so a hung download cannot hang the
/// test run; `timeout` signals the script's whole process group.
pub const START_TIMEOUT_S: u32 = 1200;

pub struct Harness {
    dir: PathBuf,
    pub state: tempfile::TempDir,
    env: HashMap<String, String>,
    running: bool,
    cloud_running: bool,
    /// The cloud harness runs Nova's compute services and placement too
    /// (`CLOUD_COMPUTE=1`).
    compute: bool,
}

impl Harness {
    /// `Err` only when Python cannot run the harness at all (the skip case).
    pub fn start(compute: bool) -> Result<Self, String> {
        let python = Command::new("python3")
            .args([
                "-c",
                "import venv, ensurepip, sys; sys.exit(sys.version_info < (3, 10))",
            ])
            .status();
        if !matches!(python, Ok(s) if s.success()) {
            return Err(format!(
                "python3 (3.10+, with venv and ensurepip) is not available: {python:?}"
            ));
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/heat");
        let state = tempfile::Builder::new()
            .prefix("magnum-heat-")
            .tempdir()
            .expect("temporary directory");
        let started = Instant::now();
        let output = Command::new("timeout")
            .args(["-k", "10", &START_TIMEOUT_S.to_string(), "bash"])
            .arg(dir.join("start.sh"))
            .env("HEAT_STATE", state.path())
            .output()
            .expect("cannot run timeout/bash");
        let mut harness = Self {
            dir,
            state,
            env: HashMap::new(),
            running: true,
            cloud_running: false,
            compute,
        };
        assert!(
            output.status.success(),
            "tests/heat/start.sh failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        harness.read_env("heat.env");
        eprintln!(
            "heat harness up in {:.1?} (keystone {})",
            started.elapsed(),
            harness.get("KEYSTONE_URL")
        );

        // Glance, Nova's API and Neutron on the same Keystone (tests/cloud),
        // for the openstack catalog; with `compute`, also placement and Nova's
        // conductor, scheduler and compute (fake virt driver).
        let started = Instant::now();
        let output = Command::new("timeout")
            .args(["-k", "10", &START_TIMEOUT_S.to_string(), "bash"])
            .arg(harness.cloud_dir().join("start.sh"))
            .env("CLOUD_COMPUTE", if compute { "1" } else { "0" })
            .env("CLOUD_STATE", harness.state.path().join("cloud"))
            .env(
                "CLOUD_KEYSTONE_ENV",
                harness.state.path().join("keystone/keystone.env"),
            )
            .output()
            .expect("cannot run timeout/bash");
        harness.cloud_running = true;
        assert!(
            output.status.success(),
            "tests/cloud/start.sh failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        harness.read_env("cloud/cloud.env");
        eprintln!(
            "cloud harness up in {:.1?} (glance {}, nova {}, neutron {})",
            started.elapsed(),
            harness.get("GLANCE_URL"),
            harness.get("NOVA_URL"),
            harness.get("NEUTRON_URL")
        );
        Ok(harness)
    }

    pub fn cloud_dir(&self) -> PathBuf {
        self.dir.join("../cloud")
    }

    /// Adds the `KEY=VALUE` lines of a file of the state directory.
    pub fn read_env(&mut self, file: &str) {
        let path = self.state.path().join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.env.extend(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
    }

    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} missing from heat.env"))
    }

    pub fn auth(&self, user: &str, password_key: &str, project: &str) -> ServiceAuth {
        let mut auth = ServiceAuth::new(
            self.get("KEYSTONE_URL"),
            user,
            self.get(password_key),
            project,
        );
        auth.region = Some(self.get("KEYSTONE_REGION").to_owned());
        auth
    }

    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        if self.cloud_running {
            self.cloud_running = false;
            let started = Instant::now();
            let status = Command::new("bash")
                .arg(self.cloud_dir().join("stop.sh"))
                .env("CLOUD_COMPUTE", if self.compute { "1" } else { "0" })
                .env("CLOUD_STATE", self.state.path().join("cloud"))
                .status();
            if !matches!(status, Ok(s) if s.success()) {
                eprintln!("tests/cloud/stop.sh: {status:?}");
            }
            eprintln!("cloud harness stopped in {:.1?}", started.elapsed());
        }
        let started = Instant::now();
        let status = Command::new("bash")
            .arg(self.dir.join("stop.sh"))
            .env("HEAT_STATE", self.state.path())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("tests/heat/stop.sh: {status:?}");
        }
        eprintln!("heat harness stopped in {:.1?}", started.elapsed());
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "heat logs: {}/log (kept until the harness stops)",
                self.state.path().display()
            );
        }
        self.stop();
    }
}

/// Wall times of the steps, printed at the end.
#[derive(Default)]
pub struct Times(pub Vec<(String, Duration)>);

impl Times {
    pub fn record(&mut self, what: &str, took: Duration) {
        eprintln!("  {what}: {took:.2?}");
        self.0.push((what.to_owned(), took));
    }
}

/// Polls `get` until the stack leaves `*_IN_PROGRESS` (or is gone).
pub fn wait(heat: &HeatOrchestrator, conn: &mut DbConnection, id: &str) -> Option<StackSnapshot> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let snapshot = heat.get(conn, id).expect("get");
        match &snapshot {
            Some(s) if s.status.ends_with("_IN_PROGRESS") => {}
            _ => return snapshot,
        }
        assert!(Instant::now() < deadline, "stack {id} still {snapshot:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What a played node signals its wait condition handle.
#[derive(Debug, Clone)]
pub enum Play {
    /// SUCCESS from every node, reporting `coe_version`.
    Succeed { coe_version: String },
    /// FAILURE with this reason from every worker (their handles are the
    /// node templates' `worker_wait_handle`), SUCCESS from the masters.
    FailWorkers { reason: String },
    /// Only the workers' handles of one wait slot (`worker_wait_handle`
    /// or `worker_wait_handle_b`, which an upgrade switches): SUCCESS
    /// reporting `coe_version`, as workers an upgrade replaced; the masters
    /// and the other slot are left alone.
    UpgradedWorkers {
        slot: &'static str,
        coe_version: String,
    },
    /// Only the workers' handles of one wait slot: FAILURE with this reason.
    FailUpgradedWorkers { slot: &'static str, reason: String },
}

/// Plays the nodes of the stack `name` in `project` (Heat has no Nova
/// here, so no node boots to do it): polls the stack's nested resources for
/// wait condition handles, reads each one's signal URL and token as a node
/// finds them in its heat-params, and POSTs the signal there with that
/// token, once per handle, until `stop`. `owner` (a token of the project)
/// finds the stack by name; `token` lists and reads its resources. Returns
/// the task, which ends with how many handles it signalled.
#[expect(
    clippy::too_many_arguments,
    reason = "a test helper; each is one fact of the played stack"
)]
pub fn play_nodes(
    h: &Harness,
    rt: &tokio::runtime::Runtime,
    project: &str,
    owner: &str,
    token: &str,
    name: &str,
    play: Play,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let stack_url = format!("{}/{project}/stacks/{name}", h.get("HEAT_URL"));
    let token = token.to_owned();
    let owner = owner.to_owned();
    rt.spawn(async move {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http");
        let get_as = |url: String, token: &str| {
            let request = http.get(url).header("X-Auth-Token", token);
            async move {
                let r = request.send().await.ok()?;
                let location = r
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .map(str::to_owned);
                let status = r.status().as_u16();
                Some((
                    status,
                    location,
                    r.json::<Value>().await.unwrap_or_default(),
                ))
            }
        };
        let mut signalled = std::collections::HashSet::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            // /stacks/{name} redirects to /stacks/{name}/{id}.
            let Some((302, Some(full), _)) = get_as(stack_url.clone(), &owner).await else {
                continue;
            };
            let Some((200, _, listing)) =
                get_as(format!("{full}/resources?nested_depth=5"), &token).await
            else {
                continue;
            };
            let handles = listing["resources"].as_array().cloned().unwrap_or_default();
            for handle in handles
                .iter()
                .filter(|r| r["resource_type"] == "OS::Heat::WaitConditionHandle")
                .filter(|r| r["resource_status"] == "CREATE_COMPLETE")
            {
                let id = handle["physical_resource_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if id.is_empty() || signalled.contains(&id) {
                    continue;
                }
                let Some(show) = handle["links"]
                    .as_array()
                    .and_then(|l| l.iter().find(|l| l["rel"] == "self"))
                    .and_then(|l| l["href"].as_str())
                else {
                    continue;
                };
                let Some((200, _, shown)) = get_as(show.to_owned(), &token).await else {
                    continue;
                };
                let attributes = &shown["resource"]["attributes"];
                let (Some(endpoint), Some(handle_token)) = (
                    attributes["endpoint"].as_str(),
                    attributes["token"].as_str(),
                ) else {
                    continue;
                };
                let worker = handle["resource_name"] == "worker_wait_handle";
                let in_slot = |slot: &str| handle["resource_name"] == slot;
                let body = match &play {
                    Play::UpgradedWorkers { slot, .. } | Play::FailUpgradedWorkers { slot, .. }
                        if !in_slot(slot) =>
                    {
                        continue
                    }
                    Play::UpgradedWorkers { coe_version, .. } => json!({
                        "status": "SUCCESS", "reason": "bootstrap complete", "id": "1",
                        "data": {"node": id, "coe_version": coe_version},
                    }),
                    Play::FailUpgradedWorkers { reason, .. } => {
                        json!({"status": "FAILURE", "reason": reason, "data": null, "id": "1"})
                    }
                    Play::FailWorkers { reason } if worker => {
                        json!({"status": "FAILURE", "reason": reason, "data": null, "id": "1"})
                    }
                    Play::Succeed { coe_version } => json!({
                        "status": "SUCCESS", "reason": "bootstrap complete", "id": "1",
                        "data": {"node": id, "coe_version": coe_version},
                    }),
                    Play::FailWorkers { .. } => json!({
                        "status": "SUCCESS", "reason": "bootstrap complete", "id": "1",
                        "data": {"node": id},
                    }),
                };
                let sent = http
                    .post(endpoint)
                    .header("X-Auth-Token", handle_token)
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        signalled.insert(id);
                    }
                    Ok(r) => eprintln!("  signal {endpoint}: {}", r.status()),
                    Err(e) => eprintln!("  signal {endpoint}: {e}"),
                }
            }
        }
        signalled.len()
    })
}

/// Stops a node player; how many handles it signalled.
pub fn stop_playing(
    rt: &tokio::runtime::Runtime,
    stop: &std::sync::atomic::AtomicBool,
    player: tokio::task::JoinHandle<usize>,
) -> usize {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(player).expect("the node player ends")
}

pub fn orchestrator(
    h: &Harness,
    settings: HeatSettings,
    rt: &tokio::runtime::Runtime,
) -> HeatOrchestrator {
    let auth = h.auth("magnum", "KEYSTONE_MAGNUM_PASSWORD", "service");
    let keystone = KeystoneClient::new(auth).expect("keystone client");
    HeatOrchestrator::new(
        keystone,
        settings,
        "public",
        Some(h.get("KEYSTONE_REGION")),
        rt.handle().clone(),
    )
    .expect("heat orchestrator")
}
