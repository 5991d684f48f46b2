//! The node sandbox of tests/sandbox for the real-service tests: the cached
//! debootstrap root, the download mirror and proxy (mirror.py), and one
//! node's user data run by run-node with only the given 127.0.0.1 ports
//! forwarded in. The e2e tests' counterpart is tests/src/sandbox.rs.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};

/// The host the mirror answers to through the proxy (mirror.py --host):
/// not resolvable anywhere, so only a download through the proxy reaches it.
pub const MIRROR_HOST: &str = "mirror.sandbox.test";
/// Seconds one node may take in the sandbox.
pub const NODE_TIMEOUT_S: u64 = 300;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn sandbox_dir() -> PathBuf {
    repo().join("tests/sandbox")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Why the sandbox cannot run here, if it cannot (root, unshare, a root
/// cached or a way to build it).
pub fn missing_prerequisite() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (namespaces, mounts and chroot need it)".into());
    }
    for tool in ["unshare", "chroot", "mount", "ip", "python3"] {
        if !have(tool) {
            return Some(format!("{tool} is not installed"));
        }
    }
    // build-root.sh's default, or where scripts/test keeps it.
    let root = std::env::var_os("SANDBOX_ROOT")
        .map_or_else(|| repo().join("target/sandbox-root"), PathBuf::from);
    let cached = root.join(".sandbox-stamp").exists();
    if !cached && !have("debootstrap") && !have("apt-get") {
        return Some("no cached sandbox root and neither debootstrap nor apt-get".into());
    }
    match Command::new("unshare")
        .args(["--net", "--mount", "--pid", "--cgroup", "--fork", "true"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "unshare cannot make namespaces: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("unshare: {e}")),
    }
}

/// The cached root (built on first use; build-root.sh holds a lock, so the
/// e2e tests may ask at the same time).
pub fn root() -> PathBuf {
    let started = Instant::now();
    let out = Command::new(sandbox_dir().join("build-root.sh"))
        .output()
        .expect("run build-root.sh");
    assert!(
        out.status.success(),
        "build-root.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let root = stdout.lines().last().unwrap_or_default().trim().to_owned();
    eprintln!(
        "sandbox root: {} ({:.1?})",
        String::from_utf8_lossy(&out.stderr).trim(),
        started.elapsed()
    );
    PathBuf::from(root)
}

/// tests/sandbox/mirror.py: the files the nodes download, served on one
/// port and through a forward proxy on another, every request logged.
pub struct Mirror {
    child: Child,
    log: PathBuf,
    pub mirror_port: u16,
    pub proxy_port: u16,
    /// The version labels the mirror's layout follows.
    pub tags: Map<String, Value>,
    /// Each artifact's sha256 (the `<artifact>_sha256` labels).
    pub sha256: Map<String, Value>,
}

impl Mirror {
    pub fn start(root: &Path, dir: &Path) -> Self {
        let script = sandbox_dir().join("mirror.py");
        let files = dir.join("mirror");
        let out = Command::new(&script)
            .args(["populate", "--dir"])
            .arg(&files)
            .arg("--root")
            .arg(root)
            .output()
            .expect("run mirror.py populate");
        assert!(
            out.status.success(),
            "mirror.py populate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let layout: Value = serde_json::from_slice(&out.stdout).expect("populate's JSON");
        let ports_file = dir.join("mirror-ports.json");
        let log = dir.join("mirror-log.jsonl");
        let child = Command::new(&script)
            .args(["serve", "--dir"])
            .arg(&files)
            .arg("--port-file")
            .arg(&ports_file)
            .arg("--log")
            .arg(&log)
            .args(["--host", MIRROR_HOST])
            .stdin(Stdio::null())
            .spawn()
            .expect("start mirror.py serve");
        let mut mirror = Self {
            child,
            log,
            mirror_port: 0,
            proxy_port: 0,
            tags: layout["tags"].as_object().cloned().unwrap_or_default(),
            sha256: layout["sha256"].as_object().cloned().unwrap_or_default(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ports_file.exists() {
            assert!(Instant::now() < deadline, "mirror.py serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let ports: Value =
            serde_json::from_str(&std::fs::read_to_string(&ports_file).expect("ports"))
                .expect("ports JSON");
        let port = |key: &str| -> u16 {
            ports[key]
                .as_u64()
                .and_then(|p| p.try_into().ok())
                .expect("port")
        };
        mirror.mirror_port = port("mirror");
        mirror.proxy_port = port("proxy");
        mirror
    }

    /// Every request the mirror and the proxy answered so far.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("mirror log line"))
            .collect()
    }

    /// The labels pointing a cluster at this mirror, pinning every artifact
    /// (`all`), or only the mirror and the image prefix.
    pub fn labels(&self, all: bool) -> Map<String, Value> {
        let mut labels = Map::new();
        if all {
            labels = self.tags.clone();
            for (artifact, sha) in &self.sha256 {
                labels.insert(format!("{artifact}_sha256"), sha.clone());
            }
        }
        labels.insert(
            "download_mirror_url".into(),
            json!(format!("http://{MIRROR_HOST}/")),
        );
        labels.insert(
            "container_infra_prefix".into(),
            json!(format!("{MIRROR_HOST}:5000/magnum/")),
        );
        labels
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of KEY in the heat-params the user data writes.
pub fn heat_param(user_data: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=\"");
    user_data
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&prefix))
        .and_then(|rest| rest.strip_suffix('"'))
        .map(str::to_owned)
}

/// One node to run: a server's name, its fixed address and the user data
/// Nova holds for it.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub address: String,
    pub user_data: String,
}

/// What one run of tests/sandbox/run-node left.
#[derive(Debug)]
pub struct NodeRun {
    pub status: Option<i32>,
    /// run-node's own report (exit status and the last lines of output).
    pub report: String,
    pub console: String,
    /// The node's files: the overlay's upper layer.
    pub upper: PathBuf,
    pub seconds: f64,
}

/// Runs `node`'s user data as it is in the sandbox, reaching only the
/// host's 127.0.0.1 ports in `forward`; `extra` run-node arguments.
pub fn run_node(node: &Node, dir: &Path, forward: &[u16], extra: &[String]) -> NodeRun {
    use std::os::unix::fs::PermissionsExt;
    let log_dir = dir.join(&node.name);
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let file = log_dir.join("user-data");
    std::fs::write(&file, &node.user_data).expect("write user data");
    // It holds the cluster credential and the handle's token: root's only.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut cmd = Command::new(sandbox_dir().join("run-node"));
    cmd.arg("--user-data")
        .arg(&file)
        .arg("--log-dir")
        .arg(&log_dir)
        .args(["--timeout", &NODE_TIMEOUT_S.to_string()])
        .args(["--hostname", &node.name]);
    // A cluster network's arguments give the address with its prefix.
    if !extra.iter().any(|a| a == "--address") {
        cmd.args(["--address", &node.address]);
    }
    for port in forward {
        cmd.args(["--forward", &port.to_string()]);
    }
    cmd.args(extra);
    let started = Instant::now();
    let out = cmd.output().expect("run run-node");
    let seconds = started.elapsed().as_secs_f64();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    NodeRun {
        status: out.status.code(),
        report,
        console: std::fs::read_to_string(log_dir.join("console.log")).unwrap_or_default(),
        upper: log_dir.join("upper"),
        seconds,
    }
}

/// A cluster network of run-node (`--network`): the sandboxes plugged into
/// it reach each other at their addresses, as the servers of one Neutron
/// network do, and nothing else. Deleted on drop.
pub struct ClusterNetwork {
    name: String,
}

impl ClusterNetwork {
    pub fn new(name: &str) -> Self {
        Self {
            name: format!("{name}-{}", std::process::id()),
        }
    }

    /// run-node arguments plugging a node at `address`, on a /`prefix`
    /// subnet, into this network.
    pub fn args(&self, address: &str, prefix: u8) -> Vec<String> {
        vec![
            "--network".into(),
            self.name.clone(),
            "--address".into(),
            format!("{address}/{prefix}"),
        ]
    }
}

impl Drop for ClusterNetwork {
    fn drop(&mut self) {
        let _ = Command::new(sandbox_dir().join("run-node"))
            .args(["--remove-network", &self.name])
            .output();
    }
}

/// run-node's arguments for an upstart node (the Mesos image, Ubuntu
/// 14.04): no /run/systemd/system, and its `service` and jobs.
pub fn upstart() -> Vec<String> {
    vec![
        "--no-systemd".to_owned(),
        "--stand-ins".to_owned(),
        sandbox_dir().join("stand-ins/image").display().to_string(),
        "--stand-ins".to_owned(),
        sandbox_dir()
            .join("stand-ins/upstart")
            .display()
            .to_string(),
    ]
}

/// The (artifact, URL) of every "downloading NAME from URL" line.
pub fn downloads(console: &str) -> Vec<(String, String)> {
    console
        .lines()
        .filter_map(|l| l.split_once("]: downloading ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once(" from "))
        .map(|(name, url)| (name.to_owned(), url.trim().to_owned()))
        .collect()
}
