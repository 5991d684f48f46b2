//! Issue 16, part 2: the node scripts are executed, not only linted. A real
//! `magnumd` (local orchestrator, a TLS cluster template, `[api] public_url`
//! so the nodes get a `magnum_url`) creates a Kubernetes cluster; each
//! server's rendered user data, as the local cloud stored it, then runs for
//! real in `tests/sandbox/run-node`: a debootstrap root (cached in
//! target/sandbox-root), network, mount and PID namespaces with only the
//! magnumd API, a download mirror, a forward proxy and a stand-in for Heat's
//! signal endpoint forwarded in. The nodes fetch their CA and have their
//! CSRs signed by this magnumd with the cluster credential, download every
//! binary through the proxy from the mirror with the sha256 the labels pin,
//! run real etcd, and signal their wait condition. Then one node is broken
//! on purpose per failure class. See tests/sandbox/README.md for what runs
//! for real and what is a stand-in.
//!
//! Needs root, `unshare` and Debian's debootstrap (installed by
//! build-root.sh when apt-get can): without them the tests are skipped with
//! the reason, except under CI=true, where they fail.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use base64::Engine as _;
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use magnum_host::{
    db::{schema::local_stack, DbConnection, DbPool},
    orchestrator::{local::LocalCloud, sim::USER_DATA_ATTRIBUTE},
};
use serde_json::{json, Map, Value};

use crate::support::{register_bundled, workspace, Magnumd};

/// One sandbox test at a time: each runs several nodes, and the machine
/// has two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The host the mirror answers to through the proxy (mirror.py --host):
/// not resolvable anywhere, so only a download through the proxy reaches it.
const MIRROR_HOST: &str = "mirror.sandbox.test";
/// Where the local cloud's wait condition handles point (sim.rs): no Heat
/// listens there, so the test's signal receiver replaces it.
const LOCAL_SIGNAL_BASE: &str = "http://127.0.0.1:8004/";
/// Where a k8s node keeps its certificates (its lib.sh's CERT_DIR).
const K8S_CERTS: &str = "etc/kubernetes/certs";
/// Seconds one node may take in the sandbox.
const NODE_TIMEOUT_S: u64 = 300;

fn sandbox_dir() -> PathBuf {
    workspace().join("tests/sandbox")
}

/// Why the sandbox cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (namespaces, mounts and chroot need it)".into());
    }
    for tool in ["unshare", "chroot", "mount", "ip", "openssl", "python3"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    // build-root.sh's default, or where scripts/test keeps it.
    let root = std::env::var_os("SANDBOX_ROOT")
        .map_or_else(|| workspace().join("target/sandbox-root"), PathBuf::from);
    let cached = root.join(".sandbox-stamp").exists();
    let can_build = ["debootstrap", "apt-get"].iter().any(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !cached && !can_build {
        return Some("no cached sandbox root and neither debootstrap nor apt-get".into());
    }
    let probe = Command::new("unshare")
        .args(["--net", "--mount", "--pid", "--cgroup", "--fork", "true"])
        .output();
    match probe {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "unshare cannot make namespaces: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("unshare: {e}")),
    }
}

/// Skips (returns false) with the reason, or fails under CI=true.
fn can_run(test: &str) -> bool {
    let Some(reason) = missing_prerequisite() else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: the sandbox cannot run under CI: {reason}"
    );
    eprintln!("{test}: skipped: {reason}");
    false
}

/// The cached root (built on first use), and how long getting it took.
fn sandbox_root() -> (PathBuf, Duration) {
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
        "sandbox root: {} ({:.1}s)",
        String::from_utf8_lossy(&out.stderr).trim(),
        started.elapsed().as_secs_f64()
    );
    (PathBuf::from(root), started.elapsed())
}

/// target/sandbox-runs/NAME, emptied: every log of a test's nodes (and
/// their files) stays there after the test, for a look at a failure.
fn runs_dir(name: &str) -> PathBuf {
    let dir = workspace().join("target/sandbox-runs").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("runs dir");
    dir
}

/// A free port on 127.0.0.1 (for magnumd, whose public_url must name it
/// before it starts).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// tests/sandbox/mirror.py: the files the nodes download, served on one
/// port and through a forward proxy on another, every request logged.
struct Mirror {
    child: Child,
    log: PathBuf,
    mirror_port: u16,
    proxy_port: u16,
    /// The version labels the mirror's layout follows.
    tags: Map<String, Value>,
    /// Each artifact's sha256 (the `<artifact>_sha256` labels).
    sha256: Map<String, Value>,
}

impl Mirror {
    fn start(root: &Path, dir: &Path) -> Self {
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
        mirror.mirror_port = ports["mirror"]
            .as_u64()
            .and_then(|p| p.try_into().ok())
            .expect("port");
        mirror.proxy_port = ports["proxy"]
            .as_u64()
            .and_then(|p| p.try_into().ok())
            .expect("port");
        mirror
    }

    /// Every request the mirror and the proxy answered so far.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("mirror log line"))
            .collect()
    }

    /// The labels pointing a cluster at this mirror and proxy, pinning
    /// every artifact.
    fn labels(&self) -> Map<String, Value> {
        let mut labels = self.tags.clone();
        for (artifact, sha) in &self.sha256 {
            labels.insert(format!("{artifact}_sha256"), sha.clone());
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

/// What a node POSTed to its wait condition handle.
#[derive(Debug, Clone)]
struct Signal {
    path: String,
    token: String,
    body: Value,
}

/// Stands in for Heat's wait condition signal endpoint: records every POST.
struct SignalReceiver {
    port: u16,
    received: Arc<Mutex<Vec<Signal>>>,
    stop: Arc<AtomicBool>,
}

impl SignalReceiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let received: Arc<Mutex<Vec<Signal>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            // Bounded: the test's whole budget, and stopped on drop.
            let deadline = Instant::now() + Duration::from_secs(1800);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(signal) = read_signal(stream) {
                            r.lock().unwrap_or_else(|e| e.into_inner()).push(signal);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self {
            port,
            received,
            stop,
        }
    }

    fn received(&self) -> Vec<Signal> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for SignalReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One HTTP request: path, X-Auth-Token and JSON body; answered 200.
fn read_signal(stream: TcpStream) -> Option<Signal> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let (mut token, mut length) = (String::new(), 0usize);
    for _ in 0..100 {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "x-auth-token" => token = value.trim().to_owned(),
                "content-length" => length = value.trim().parse().ok()?,
                _ => {}
            }
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .ok()?;
    Some(Signal {
        path,
        token,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

/// One request to magnumd: the status code and the JSON body (Null when
/// there is none).
fn call(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut s = TcpStream::connect(addr).expect("connect to magnumd");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         OpenStack-API-Version: container-infra latest\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (
        status,
        serde_json::from_str(body.trim()).unwrap_or(Value::Null),
    )
}

/// A magnumd serving on a port its `[api] public_url` names, with the
/// local orchestrator and the bundled drivers.
struct Service {
    magnumd: Magnumd,
    addr: String,
    port: u16,
    data_dir: PathBuf,
}

impl Service {
    fn start(dir: &Path) -> Self {
        let plugins = dir.join("plugins.d");
        register_bundled(&plugins);
        let port = free_port();
        let config = dir.join("magnum.toml");
        std::fs::write(
            &config,
            format!(
                "log = \"info\"\n[api]\npublic_url = \"http://127.0.0.1:{port}\"\n\
                 [local]\nboot_seconds = 0.2\n"
            ),
        )
        .expect("write config");
        let data_dir = dir.join("var");
        let magnumd = Magnumd::start_on(&plugins, &data_dir, &config, &format!("127.0.0.1:{port}"));
        let addr = magnumd.addr.clone();
        Self {
            magnumd,
            addr,
            port,
            data_dir,
        }
    }

    /// Creates template `name` (a Kubernetes one with flannel unless
    /// `fields` say otherwise) with `labels` and `fields`, then a cluster of
    /// it with one master and one worker; the cluster once its stack
    /// completed.
    fn cluster(&mut self, name: &str, labels: Map<String, Value>, fields: Value) -> Value {
        self.cluster_of(name, labels, fields, 1, 1)
    }

    /// [`Self::cluster`] with `masters` masters and `nodes` workers.
    fn cluster_of(
        &mut self,
        name: &str,
        labels: Map<String, Value>,
        fields: Value,
        masters: u32,
        nodes: u32,
    ) -> Value {
        let mut template = json!({
            "name": name, "coe": "kubernetes", "image_id": "fedora-atomic-latest",
            "external_network_id": "public", "flavor_id": "m1.small",
            "master_flavor_id": "m1.medium", "network_driver": "flannel",
            "labels": labels,
        });
        if let (Some(t), Some(f)) = (template.as_object_mut(), fields.as_object()) {
            for (key, value) in f {
                if value.is_null() {
                    t.remove(key);
                } else {
                    t.insert(key.clone(), value.clone());
                }
            }
        }
        let (status, body) = call(&self.addr, "POST", "/v1/clustertemplates", Some(&template));
        assert_eq!(status, 201, "template {name}: {body}");
        let (status, body) = call(
            &self.addr,
            "POST",
            "/v1/clusters",
            Some(&json!({"name": name, "cluster_template_id": name,
                        "master_count": masters, "node_count": nodes})),
        );
        assert_eq!(status, 202, "cluster {name}: {body}");
        let path = format!("/v1/clusters/{}", body["uuid"].as_str().unwrap_or_default());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, cluster) = call(&self.addr, "GET", &path, None);
            if cluster["status"] != "CREATE_IN_PROGRESS" {
                assert_eq!(
                    cluster["status"],
                    "CREATE_COMPLETE",
                    "{name}: {cluster}\n{}",
                    self.magnumd.log()
                );
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never completed: {cluster}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The servers of `stack` (a cluster's `cluster_id`, its stack's id from
    /// microversion 1.13) as the local cloud stored them.
    fn servers(&self, stack: &str) -> Vec<Server> {
        let url = format!("sqlite://{}/magnum.sqlite", self.data_dir.display());
        let pool = DbPool::connect(&url).expect("open magnumd's database");
        let mut pooled = pool.get().expect("a connection");
        let conn: &mut DbConnection = &mut pooled;
        let states: Vec<String> = local_stack::table
            .filter(local_stack::id.eq(stack))
            .select(local_stack::id)
            .load::<String>(conn)
            .expect("the local stack")
            .into_iter()
            .map(|id| {
                LocalCloud::default()
                    .stored_state(conn, &id)
                    .expect("a stored state")
            })
            .collect();
        let mut servers = Vec::new();
        for state in states {
            let value: Value = serde_json::from_str(&state).expect("JSON state");
            find_servers(&value, &mut servers);
        }
        servers
    }
}

/// A server of the local cloud, and the user data it booted with.
#[derive(Debug, Clone)]
struct Server {
    name: String,
    role: String,
    address: String,
    user_data: String,
}

/// Every `OS::Nova::Server` of a stack's state (nested stacks included),
/// with its user data as Nova shows it (`OS-EXT-SRV-ATTR:user_data`).
fn find_servers(value: &Value, found: &mut Vec<Server>) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("OS::Nova::Server") {
                let attributes = map.get("attributes").unwrap_or(&Value::Null);
                let show = &attributes["show"];
                let user_data = show[USER_DATA_ATTRIBUTE]
                    .as_str()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .map(|raw| String::from_utf8_lossy(&raw).into_owned())
                    .unwrap_or_default();
                found.push(Server {
                    name: show["name"].as_str().unwrap_or_default().to_owned(),
                    role: show["metadata"]["nodegroup_role"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    address: attributes["first_address"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    user_data,
                });
                return;
            }
            map.values().for_each(|v| find_servers(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| find_servers(v, found)),
        _ => {}
    }
}

/// The value of KEY in the heat-params the user data writes.
fn heat_param(user_data: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=\"");
    user_data
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.strip_suffix('"'))
        .map(str::to_owned)
}

/// What one run of tests/sandbox/run-node left.
struct NodeRun {
    status: Option<i32>,
    /// run-node's own report (exit status and the last lines of output).
    report: String,
    console: String,
    /// The node's files: the overlay's upper layer.
    upper: PathBuf,
    processes: String,
    seconds: f64,
}

/// Runs `server`'s user data in the sandbox, its wait condition handle
/// pointed at `signals`, reaching only the ports in `forward`.
fn run_node(server: &Server, dir: &Path, forward: &[u16], signals: &SignalReceiver) -> NodeRun {
    run_node_with(server, dir, forward, signals, &[])
}

/// [`run_node`] with further run-node arguments.
fn run_node_with(
    server: &Server,
    dir: &Path,
    forward: &[u16],
    signals: &SignalReceiver,
    extra: &[String],
) -> NodeRun {
    let endpoint = heat_param(&server.user_data, "WAIT_HANDLE_ENDPOINT").unwrap_or_default();
    assert!(
        endpoint.starts_with(LOCAL_SIGNAL_BASE),
        "{}: the local cloud's handle moved ({endpoint}); update LOCAL_SIGNAL_BASE",
        server.name
    );
    // Only the handle's endpoint line changes: the rest runs as rendered.
    let user_data = server.user_data.replace(
        &format!("WAIT_HANDLE_ENDPOINT=\"{LOCAL_SIGNAL_BASE}"),
        &format!("WAIT_HANDLE_ENDPOINT=\"http://127.0.0.1:{}/", signals.port),
    );
    let log_dir = dir.join(&server.name);
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let file = log_dir.join("user-data");
    std::fs::write(&file, user_data).expect("write user data");
    // It holds the cluster credential: root's only, as on a node.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut cmd = Command::new(sandbox_dir().join("run-node"));
    cmd.arg("--user-data")
        .arg(&file)
        .arg("--log-dir")
        .arg(&log_dir)
        .args(["--timeout", &NODE_TIMEOUT_S.to_string()])
        .args(["--address", &server.address])
        .args(["--hostname", &server.name]);
    for port in forward {
        cmd.args(["--forward", &port.to_string()]);
    }
    cmd.args(extra);
    let started = Instant::now();
    let out = cmd.output().expect("run run-node");
    let seconds = started.elapsed().as_secs_f64();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{}: {seconds:.1}s\n{report}", server.name);
    NodeRun {
        status: out.status.code(),
        report,
        console: std::fs::read_to_string(log_dir.join("console.log")).unwrap_or_default(),
        upper: log_dir.join("upper"),
        processes: std::fs::read_to_string(log_dir.join("processes.txt")).unwrap_or_default(),
        seconds,
    }
}

/// The (artifact, URL) of every "downloading NAME from URL" line.
fn downloads(console: &str) -> Vec<(String, String)> {
    console
        .lines()
        .filter_map(|l| l.split_once("]: downloading ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once(" from "))
        .map(|(name, url)| (name.to_owned(), url.trim().to_owned()))
        .collect()
}

/// `openssl verify -CAfile CA CERT` succeeds.
fn verifies(ca: &Path, cert: &Path) -> Result<(), String> {
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .arg(cert)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr))
    }
}

/// The signal the node of `server` sent (its handle's path), if any.
fn signal_of(server: &Server, signals: &SignalReceiver) -> Option<Signal> {
    let endpoint = heat_param(&server.user_data, "WAIT_HANDLE_ENDPOINT")?;
    let path = endpoint
        .strip_prefix(LOCAL_SIGNAL_BASE.trim_end_matches('/'))?
        .to_owned();
    signals
        .received()
        .into_iter()
        .rev()
        .find(|s| s.path == path)
}

/// Checks a node that bootstrapped: exit 0, its certificates signed by the
/// cluster's CAs that this magnumd serves, every download through the
/// proxy from the mirror with the labels' sha256, and its SUCCESS signal
/// with the handle's token.
#[expect(clippy::too_many_arguments, reason = "one check of one node run")]
fn assert_bootstrapped(
    service: &Service,
    cluster: &Value,
    server: &Server,
    run: &NodeRun,
    mirror: &Mirror,
    signals: &SignalReceiver,
    certs_dir: &str,
    certs: &[(&str, &str)],
) {
    let name = &server.name;
    assert_eq!(run.status, Some(0), "{name} failed:\n{}", run.report);
    assert!(
        run.console.contains("bootstrap complete"),
        "{name}:\n{}",
        run.report
    );

    // The CA the node fetched (the first file of `certs`) is the cluster's,
    // as magnumd serves it, and each certificate the node had signed
    // verifies against its CA.
    let uuid = cluster["uuid"].as_str().unwrap_or_default();
    let (status, ca) = call(
        &service.addr,
        "GET",
        &format!("/v1/certificates/{uuid}"),
        None,
    );
    assert_eq!(status, 200, "{ca}");
    let certs_dir = run.upper.join(certs_dir);
    let ca_file = certs.first().map(|(ca, _)| *ca).unwrap_or_default();
    let fetched = std::fs::read_to_string(certs_dir.join(ca_file)).unwrap_or_default();
    assert_eq!(
        fetched.trim(),
        ca["pem"].as_str().unwrap_or_default().trim(),
        "{name}: {ca_file} is the cluster's CA"
    );
    for (ca_file, cert) in certs {
        if let Err(e) = verifies(&certs_dir.join(ca_file), &certs_dir.join(cert)) {
            panic!("{name}: {cert} does not verify against {ca_file}: {e}");
        }
    }

    // Every download: through the proxy, from the mirror, the pinned file.
    let fetched = downloads(&run.console);
    let requests = mirror.requests();
    for (artifact, url) in &fetched {
        assert!(
            url.starts_with(&format!("http://{MIRROR_HOST}/")),
            "{name}: {artifact} from {url}, not the mirror"
        );
        let served = requests
            .iter()
            .find(|r| r["url"] == url.as_str() && r["status"] == 200)
            .unwrap_or_else(|| panic!("{name}: {url} was not served by the mirror: {requests:?}"));
        assert_eq!(served["role"], "proxy", "{name}: {url} bypassed the proxy");
        assert_eq!(
            served["sha256"],
            mirror.sha256[artifact.as_str()],
            "{name}: {artifact} is not the file its label pins"
        );
    }
    // Docker tries an insecure registry over TLS first (a CONNECT, which
    // the proxy refuses) and then over plain HTTP: that one refusal is no
    // download bypassing the mirror.
    let registry = format!("{MIRROR_HOST}:5000");
    let refused: Vec<&Value> = requests
        .iter()
        .filter(|r| r["status"] != 200)
        .filter(|r| !(r["method"] == "CONNECT" && r["url"] == registry.as_str()))
        .collect();
    assert!(
        refused.is_empty(),
        "{name}: requests the mirror refused: {refused:?}"
    );

    // The readiness signal, with the handle's token, saying SUCCESS.
    let signal = signal_of(server, signals)
        .unwrap_or_else(|| panic!("{name} never signalled its wait condition:\n{}", run.report));
    let token = heat_param(&server.user_data, "WAIT_HANDLE_TOKEN").unwrap_or_default();
    assert!(
        !token.is_empty() && signal.token == token,
        "{name}: the signal carries the handle's token"
    );
    assert_eq!(
        signal.body["status"], "SUCCESS",
        "{name}: {:?}",
        signal.body
    );
    assert_eq!(
        signal.body["data"]["node"],
        name.as_str(),
        "{:?}",
        signal.body
    );
}

/// The artifacts a node downloaded, by name.
fn artifact_names(run: &NodeRun) -> BTreeSet<String> {
    downloads(&run.console)
        .into_iter()
        .map(|(a, _)| a)
        .collect()
}

#[test]
fn k8s_nodes_bootstrap_for_real_in_the_sandbox() {
    if !can_run("k8s_nodes_bootstrap_for_real_in_the_sandbox") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let dir = runs_dir("k8s");
    let dir = &dir;
    let (root, _) = sandbox_root();
    let mirror = Mirror::start(&root, dir);
    let signals = SignalReceiver::start();
    let mut service = Service::start(dir);
    let proxy = format!("http://127.0.0.1:{}", mirror.proxy_port);
    let mut labels = mirror.labels();
    labels.insert("container_runtime".into(), json!("containerd"));
    let cluster = service.cluster(
        "k8s",
        labels,
        json!({"http_proxy": proxy, "https_proxy": proxy, "no_proxy": "10.0.0.0/8"}),
    );
    let servers = service.servers(cluster["cluster_id"].as_str().unwrap_or_default());
    let master = servers
        .iter()
        .find(|s| s.role == "master")
        .expect("a master");
    let worker = servers
        .iter()
        .find(|s| s.role == "worker")
        .expect("a worker");
    for server in [master, worker] {
        assert!(
            server.user_data.starts_with("#!/bin/bash") && !server.address.is_empty(),
            "{}: the local cloud shows its user data and address",
            server.name
        );
    }
    let magnum_url = heat_param(&master.user_data, "MAGNUM_URL").unwrap_or_default();
    assert_eq!(magnum_url, format!("http://127.0.0.1:{}/v1", service.port));
    // The proxy only: the mirror's own port is not reachable from the nodes.
    let forward = [service.port, mirror.proxy_port, signals.port];

    let run = run_node(master, dir, &forward, &signals);
    assert_bootstrapped(
        &service,
        &cluster,
        master,
        &run,
        &mirror,
        &signals,
        K8S_CERTS,
        &[
            ("ca.crt", "kubelet.crt"),
            ("ca.crt", "kube-proxy.crt"),
            ("ca.crt", "apiserver.crt"),
            ("ca.crt", "admin.crt"),
            ("etcd-ca.crt", "etcd.crt"),
            ("front-proxy-ca.crt", "front-proxy-client.crt"),
        ],
    );
    let master_took = run.seconds;
    for artifact in [
        "etcd",
        "kube_apiserver",
        "containerd",
        "runc",
        "kubelet",
        "flanneld",
    ] {
        assert!(
            artifact_names(&run).contains(artifact),
            "master fetched {artifact}: {:?}",
            artifact_names(&run)
        );
    }
    // Real etcd (Debian's, from the mirror's tarball) ran with the
    // certificates magnumd signed; the API server stand-in answered healthy
    // only because etcd did, over TLS.
    assert!(
        run.processes.contains("/usr/local/bin/etcd --name="),
        "etcd runs: {}",
        run.processes
    );
    assert!(
        run.console.contains("control plane is up"),
        "{}",
        run.report
    );

    let run = run_node(worker, dir, &forward, &signals);
    assert_bootstrapped(
        &service,
        &cluster,
        worker,
        &run,
        &mirror,
        &signals,
        K8S_CERTS,
        &[("ca.crt", "kubelet.crt"), ("ca.crt", "kube-proxy.crt")],
    );
    assert!(
        artifact_names(&run).contains("kubelet"),
        "{:?}",
        artifact_names(&run)
    );
    assert!(
        !artifact_names(&run).contains("etcd"),
        "workers run no etcd"
    );
    // lib.sh's coe_version: what the downloaded kubelet says it is.
    let signal = signal_of(worker, &signals).expect("the worker signalled");
    assert_eq!(
        signal.body["data"]["coe_version"], mirror.tags["kube_tag"],
        "{:?}",
        signal.body
    );
    eprintln!(
        "sandbox k8s: master {master_took:.1}s, worker {:.1}s, test {:.1}s",
        run.seconds,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_download_bypassing_the_mirror_and_a_failing_step_fail_the_node() {
    if !can_run("a_download_bypassing_the_mirror_and_a_failing_step_fail_the_node") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = runs_dir("failures");
    let dir = &dir;
    let (root, _) = sandbox_root();
    let mirror = Mirror::start(&root, dir);
    let signals = SignalReceiver::start();
    let mut service = Service::start(dir);
    let proxy = format!("http://127.0.0.1:{}", mirror.proxy_port);
    let fields = json!({"http_proxy": proxy, "https_proxy": proxy});
    let forward = [service.port, mirror.proxy_port, signals.port];

    // (a) The mirror at its own port, which the host reaches but the
    // sandbox does not (127.0.0.1 is in no_proxy, so curl goes direct).
    let bypass = format!("http://127.0.0.1:{}/", mirror.mirror_port);
    let mut labels = mirror.labels();
    labels.insert("container_runtime".into(), json!("containerd"));
    labels.insert("download_mirror_url".into(), json!(bypass));
    let cluster = service.cluster("bypass", labels, fields.clone());
    let servers = service.servers(cluster["cluster_id"].as_str().unwrap_or_default());
    let master = servers
        .iter()
        .find(|s| s.role == "master")
        .expect("a master");
    let run = run_node(master, &dir.join("bypass"), &forward, &signals);
    let url = format!(
        "{bypass}etcd/{}/etcd-{}-linux-amd64.tar.gz",
        mirror.tags["etcd_tag"].as_str().unwrap_or_default(),
        mirror.tags["etcd_tag"].as_str().unwrap_or_default()
    );
    assert_ne!(run.status, Some(0), "{}", run.report);
    assert!(
        run.report.contains(&format!("cannot download {url}")),
        "the run names {url}:\n{}",
        run.report
    );
    let signal = signal_of(master, &signals).expect("the master signalled its failure");
    assert_eq!(signal.body["status"], "FAILURE", "{:?}", signal.body);
    let reason = signal.body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("bootstrap step 20-configure-etcd.sh failed"),
        "{reason}"
    );
    assert!(reason.contains(&url), "{reason}");
    assert!(
        !mirror
            .requests()
            .iter()
            .any(|r| r["url"].as_str().is_some_and(|u| u.contains("/etcd/"))),
        "the host-side mirror never saw the request: it did not leave the sandbox"
    );

    // (a') The mirror label at another host: the request goes to the proxy,
    // which serves only the mirror and refuses it, naming it.
    let elsewhere = "http://downloads.example.com/";
    let mut labels = mirror.labels();
    labels.insert("container_runtime".into(), json!("containerd"));
    labels.insert("download_mirror_url".into(), json!(elsewhere));
    let cluster = service.cluster("elsewhere", labels, fields.clone());
    let servers = service.servers(cluster["cluster_id"].as_str().unwrap_or_default());
    let master = servers
        .iter()
        .find(|s| s.role == "master")
        .expect("a master");
    let run = run_node(master, &dir.join("elsewhere"), &forward, &signals);
    let url = url.replace(&bypass, elsewhere);
    assert_ne!(run.status, Some(0), "{}", run.report);
    assert!(
        run.report.contains(&format!("cannot download {url}")),
        "the run names {url}:\n{}",
        run.report
    );
    let signal = signal_of(master, &signals).expect("the master signalled its failure");
    assert_eq!(signal.body["status"], "FAILURE", "{:?}", signal.body);
    let reason = signal.body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("bootstrap step 20-configure-etcd.sh failed"),
        "{reason}"
    );
    assert!(reason.contains(&url), "{reason}");
    let requests = mirror.requests();
    let refusal = requests
        .iter()
        .find(|r| r["url"] == url.as_str())
        .unwrap_or_else(|| panic!("the proxy saw {url}: {requests:?}"));
    assert_eq!(refusal["status"], 403, "{refusal}");
    assert_eq!(refusal["refused"], "not the mirror", "{refusal}");

    // (b) A failing step: the worker's kubelet label pins another file.
    let mut labels = mirror.labels();
    labels.insert("container_runtime".into(), json!("containerd"));
    labels.insert("kubelet_sha256".into(), mirror.sha256["kube_proxy"].clone());
    let cluster = service.cluster("corrupt", labels, fields);
    let servers = service.servers(cluster["cluster_id"].as_str().unwrap_or_default());
    let worker = servers
        .iter()
        .find(|s| s.role == "worker")
        .expect("a worker");
    let run = run_node(worker, &dir.join("corrupt"), &forward, &signals);
    assert_ne!(run.status, Some(0), "{}", run.report);
    let signal = signal_of(worker, &signals).expect("the worker signalled its failure");
    assert_eq!(signal.body["status"], "FAILURE", "{:?}", signal.body);
    let reason = signal.body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "{}: bootstrap step 40-configure-node.sh failed",
            worker.name
        )),
        "{reason}"
    );
    assert!(reason.contains("kubelet: sha256 mismatch"), "{reason}");
    assert!(
        !run.upper.join("usr/local/bin/kubelet").exists(),
        "nothing installed on a mismatch"
    );
}

/// The upstream version of Debian's docker.io in `root` ("20.10.24+dfsg1"
/// of "20.10.24+dfsg1-1+deb12u1+b6"): what the real engine reports.
fn debian_docker_version(root: &Path) -> String {
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap_or_default();
    let version = status
        .split("\n\n")
        .find(|p| p.lines().any(|l| l == "Package: docker.io"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("Version: ")))
        .unwrap_or_default();
    let version = version.split_once(':').map_or(version, |(_, v)| v);
    version
        .rsplit_once('-')
        .map_or(version, |(upstream, _)| upstream)
        .to_owned()
}

/// A cluster network of run-node (`--network`): the sandboxes plugged
/// into it reach each other at their addresses, as one Neutron network's
/// servers do, and nothing else. Deleted on drop.
struct ClusterNetwork {
    name: String,
}

impl ClusterNetwork {
    fn new(test: &str) -> Self {
        // Unique per process and test; short (a namespace name).
        Self {
            name: format!("{test}-{}", std::process::id()),
        }
    }

    /// run-node arguments plugging a node at `address` (on a /`prefix`
    /// subnet) into this network.
    fn args(&self, address: &str, prefix: u8) -> Vec<String> {
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

/// Runs `servers` at once, each in its own sandbox on `network` (at its
/// address on the /24), as Nova boots a cluster's servers; each then runs
/// `probe` with the node count `n` (at most 180 s). The runs in order.
fn run_nodes_at_once(
    servers: &[&Server],
    dir: &Path,
    forward: &[u16],
    signals: &SignalReceiver,
    network: &ClusterNetwork,
    probe: &Path,
    n: usize,
) -> Vec<NodeRun> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = servers
            .iter()
            .map(|server| {
                let mut extra = network.args(&server.address, 24);
                extra.extend([
                    "--probe".to_owned(),
                    probe.display().to_string(),
                    "--probe-arg".to_owned(),
                    n.to_string(),
                    "--probe-timeout".to_owned(),
                    "180".to_owned(),
                ]);
                scope.spawn(move || run_node_with(server, dir, forward, signals, &extra))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a node thread"))
            .collect()
    })
}

/// The first three octets of an IPv4 address: its /24.
fn slash24(address: &str) -> &str {
    address.rsplit_once('.').map_or(address, |(net, _)| net)
}

/// What `probes/swarm-node.sh` recorded on a node: its exit statuses, the
/// swarm's nodes as it saw them, `docker info`, and (managers) `GET /swarm`.
struct SwarmProbe {
    log: String,
    nodes: Vec<String>,
    info: Value,
    swarm: Value,
}

impl SwarmProbe {
    fn read(dir: &Path, server: &Server, run: &NodeRun) -> Self {
        let read = |file: &str| {
            std::fs::read_to_string(run.upper.join("var/log/sandbox/probe").join(file))
                .unwrap_or_default()
        };
        Self {
            log: std::fs::read_to_string(dir.join(&server.name).join("probe.log"))
                .unwrap_or_default(),
            nodes: read("nodes.txt").lines().map(str::to_owned).collect(),
            info: serde_json::from_str(&read("info.json")).unwrap_or(Value::Null),
            swarm: serde_json::from_str(&read("swarm.json")).unwrap_or(Value::Null),
        }
    }
}

#[test]
fn swarm_mode_cluster_bootstraps_for_real_in_the_sandbox() {
    if !can_run("swarm_mode_cluster_bootstraps_for_real_in_the_sandbox") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = runs_dir("swarm-mode");
    let dir = &dir;
    let (root, _) = sandbox_root();
    let mirror = Mirror::start(&root, dir);
    let signals = SignalReceiver::start();
    let mut service = Service::start(dir);
    let proxy = format!("http://127.0.0.1:{}", mirror.proxy_port);
    let labels: Map<String, Value> = mirror
        .labels()
        .into_iter()
        .filter(|(k, _)| k == "download_mirror_url" || k == "container_infra_prefix")
        .collect();
    // overlay2: the default, devicemapper, needs a thin pool that
    // docker-storage-setup makes on a Fedora Atomic image (and Debian's
    // dockerd answers it "driver not supported"). Two managers and a
    // worker: the first manager initialises the swarm, the others join it
    // with the token its TLS API hands them.
    let cluster = service.cluster_of(
        "swarm",
        labels,
        json!({"coe": "swarm-mode", "network_driver": null, "docker_storage_driver": "overlay2",
               "master_lb_enabled": true, "http_proxy": proxy, "https_proxy": proxy}),
        2,
        1,
    );
    let servers = service.servers(cluster["cluster_id"].as_str().unwrap_or_default());
    assert_eq!(servers.len(), 3, "{servers:?}");
    let index = |s: &Server| heat_param(&s.user_data, "NODE_INDEX").unwrap_or_default();
    let names: Vec<(&str, &str)> = servers.iter().map(|s| (&*s.name, &*s.role)).collect();
    let manager = |i: &str| {
        servers
            .iter()
            .find(|s| s.role == "master" && index(s) == i)
            .unwrap_or_else(|| panic!("no manager {i}: {names:?}"))
    };
    let worker = servers
        .iter()
        .find(|s| s.role == "worker")
        .unwrap_or_else(|| panic!("no worker: {names:?}"));
    let (first, second) = (manager("0"), manager("1"));
    // Every node is told the first manager's address, and all three are on
    // one /24 (the cluster's fixed subnet).
    for node in [first, second, worker] {
        assert_eq!(
            heat_param(&node.user_data, "SWARM_API_IP").as_deref(),
            Some(first.address.as_str()),
            "{}",
            node.name
        );
        assert_eq!(slash24(&node.address), slash24(&first.address), "{names:?}");
    }
    let network = ClusterNetwork::new("swarm");
    let forward = [service.port, mirror.proxy_port, signals.port];
    // All three boot at once, as Nova boots them; each probe then waits
    // until the swarm lists the three nodes Ready.
    let probe = sandbox_dir().join("probes/swarm-node.sh");
    let runs = run_nodes_at_once(
        &[first, second, worker],
        dir,
        &forward,
        &signals,
        &network,
        &probe,
        3,
    );
    for (node, run) in [first, second, worker].into_iter().zip(&runs) {
        assert_bootstrapped(
            &service,
            &cluster,
            node,
            run,
            &mirror,
            &signals,
            "etc/docker/certs",
            &[("ca.pem", "cert.pem")],
        );
        // `docker swarm init` answers with the worker join token, and the
        // joiners hold one: secrets, kept out of every console.
        assert!(
            !run.console.contains("SWMTKN-"),
            "{}: a join token in the console:\n{}",
            node.name,
            run.console
        );
        // Debian's real dockerd ran (no stand-in), as the image's unit
        // starts it, with the settings the fragments wrote to daemon.json:
        // its TLS API on the certificates magnumd signed, the template's
        // storage driver.
        let daemon =
            std::fs::read_to_string(run.upper.join("etc/docker/daemon.json")).unwrap_or_default();
        let daemon: Value = serde_json::from_str(&daemon).unwrap_or(Value::Null);
        assert_eq!(daemon["tlsverify"], true, "{daemon}");
        assert_eq!(daemon["tlscert"], "/etc/docker/certs/cert.pem", "{daemon}");
        assert_eq!(daemon["storage-driver"], "overlay2", "{daemon}");
        let dockerd =
            std::fs::read_to_string(run.upper.join("var/log/sandbox/units/docker.service.log"))
                .unwrap_or_default();
        for line in [
            "Daemon has completed initialization",
            "API listen on /var/run/docker.sock",
            "API listen on [::]:2375",
        ] {
            assert!(
                dockerd.contains(line),
                "{}: dockerd never logged {line:?}:\n{dockerd}",
                node.name
            );
        }
        assert!(
            run.processes
                .lines()
                .any(|p| p.starts_with("/usr/sbin/dockerd")),
            "{}: dockerd ran to the end:\n{}",
            node.name,
            run.processes
        );
    }
    let systemctl = std::fs::read_to_string(runs[0].upper.join("var/log/sandbox/systemctl.log"))
        .unwrap_or_default();
    assert!(
        systemctl.contains("systemctl restart docker.service"),
        "{systemctl}"
    );
    assert!(
        runs[0]
            .console
            .contains(&format!("swarm initialised on {}", first.address)),
        "{}",
        runs[0].console
    );
    for (node, run, kind) in [(second, &runs[1], "manager"), (worker, &runs[2], "worker")] {
        assert!(
            run.console.contains(&format!(
                "joined the swarm of {} as a {kind}",
                first.address
            )),
            "{}:\n{}",
            node.name,
            run.console
        );
    }

    // What each engine answers: one swarm of three Ready nodes, the first
    // manager its leader, the second a reachable manager, the worker a
    // worker, each at its own (Neutron) address.
    let version = debian_docker_version(&root);
    assert!(!version.is_empty(), "docker.io in the root");
    let expected_nodes: Vec<String> = {
        let mut lines = vec![
            format!("{} Leader Ready", first.name),
            format!("{} Reachable Ready", second.name),
            format!("{} - Ready", worker.name),
        ];
        lines.sort();
        lines
    };
    for (node, run, manager) in [
        (first, &runs[0], true),
        (second, &runs[1], true),
        (worker, &runs[2], false),
    ] {
        let probe = SwarmProbe::read(dir, node, run);
        let name = &node.name;
        assert!(
            probe.log.contains("nodes ready: 3 of 3"),
            "{name}: the swarm never listed three nodes Ready:\n{}\n{:?}",
            probe.log,
            probe.nodes
        );
        assert_eq!(probe.nodes, expected_nodes, "{name}: {}", probe.log);
        assert!(
            probe.log.contains("docker info: 0"),
            "{name}: {}",
            probe.log
        );
        let info = &probe.info;
        assert_eq!(info["ServerVersion"], version.as_str(), "{info}");
        assert_eq!(info["Driver"], "overlay2", "{info}");
        assert_eq!(info["Name"], name.as_str(), "{info}");
        let swarm = &info["Swarm"];
        assert_eq!(swarm["LocalNodeState"], "active", "{name}: {swarm}");
        assert_eq!(swarm["ControlAvailable"], manager, "{name}: {swarm}");
        assert_eq!(swarm["NodeAddr"], node.address.as_str(), "{name}: {swarm}");
        let remotes = swarm["RemoteManagers"].to_string();
        assert!(
            remotes.contains(&format!("{}:2377", first.address)),
            "{name}: {swarm}"
        );
        if manager {
            assert_eq!(swarm["Managers"], 2, "{name}: {swarm}");
            assert_eq!(swarm["Nodes"], 3, "{name}: {swarm}");
            // The engine's TLS API hands a node holding a certificate
            // magnumd signed the join tokens, as the joiners asked.
            assert!(
                probe.log.contains("GET /swarm over TLS: 0"),
                "{name}: {}",
                probe.log
            );
            for kind in ["Worker", "Manager"] {
                let token = probe.swarm["JoinTokens"][kind].as_str().unwrap_or_default();
                assert!(token.starts_with("SWMTKN-1-"), "{name}: {kind} join token");
            }
        }
        // The node's signal reports the engine it runs.
        let signal = signal_of(node, &signals).expect("the node signalled");
        assert_eq!(
            signal.body["data"]["coe_version"],
            version.as_str(),
            "{:?}",
            signal.body
        );
    }
    eprintln!(
        "sandbox swarm-mode: first manager {:.1}s, second manager {:.1}s, worker {:.1}s",
        runs[0].seconds, runs[1].seconds, runs[2].seconds
    );
}

#[test]
fn standalone_swarm_nodes_bootstrap_for_real_in_the_sandbox() {
    if !can_run("standalone_swarm_nodes_bootstrap_for_real_in_the_sandbox") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = runs_dir("swarm-standalone");
    let dir = &dir;
    let (root, _) = sandbox_root();
    let mirror = Mirror::start(&root, dir);
    let signals = SignalReceiver::start();
    let mut service = Service::start(dir);
    let proxy = format!("http://127.0.0.1:{}", mirror.proxy_port);
    // etcd (Debian's, real) and flanneld (a stand-in that leases a subnet
    // in that etcd) from the mirror, and Swarm's image from the mirror's
    // registry: CONTAINER_INFRA_PREFIX names it, and `insecure_registry`
    // lets Docker pull it over HTTP.
    let labels: Map<String, Value> = mirror
        .labels()
        .into_iter()
        .filter(|(k, _)| {
            [
                "download_mirror_url",
                "container_infra_prefix",
                "etcd_tag",
                "etcd_sha256",
                "flannel_tag",
                "flanneld_sha256",
            ]
            .contains(&k.as_str())
        })
        .collect();
    let cluster = service.cluster(
        "standalone",
        labels,
        json!({"coe": "swarm", "network_driver": "flannel", "docker_storage_driver": "overlay2",
               "insecure_registry": format!("{MIRROR_HOST}:5000"),
               "http_proxy": proxy, "https_proxy": proxy}),
    );
    let servers = service.servers(cluster["cluster_id"].as_str().unwrap_or_default());
    let names: Vec<(&str, &str)> = servers.iter().map(|s| (&*s.name, &*s.role)).collect();
    let role = |r: &str| {
        servers
            .iter()
            .find(|s| s.role == r)
            .unwrap_or_else(|| panic!("no {r}: {names:?}"))
    };
    let (manager, node) = (role("master"), role("worker"));
    assert_eq!(
        heat_param(&node.user_data, "SWARM_API_IP").as_deref(),
        Some(manager.address.as_str())
    );
    assert_eq!(
        slash24(&node.address),
        slash24(&manager.address),
        "{names:?}"
    );
    let network = ClusterNetwork::new("standalone");
    let forward = [service.port, mirror.proxy_port, signals.port];
    let probe = sandbox_dir().join("probes/swarm-standalone.sh");
    let runs = run_nodes_at_once(
        &[manager, node],
        dir,
        &forward,
        &signals,
        &network,
        &probe,
        2,
    );
    let image = format!("{MIRROR_HOST}:5000/magnum/swarm:1.2.5");
    let discovery = format!("etcd://{}:2379/swarm", manager.address);
    let mut subnets = Vec::new();
    for (server, run) in [manager, node].into_iter().zip(&runs) {
        let name = &server.name;
        assert_bootstrapped(
            &service,
            &cluster,
            server,
            run,
            &mirror,
            &signals,
            "etc/docker/certs",
            &[("ca.pem", "cert.pem")],
        );
        let read = |file: &str| {
            std::fs::read_to_string(run.upper.join("var/log/sandbox/probe").join(file))
                .unwrap_or_default()
        };
        let probe_log =
            std::fs::read_to_string(dir.join(name).join("probe.log")).unwrap_or_default();
        // Each node reached the manager's real etcd over TLS with its own
        // certificate (the agents' discovery backend), and saw both marks.
        for line in [
            "etcd put over TLS: yes",
            "nodes marked: 2 of 2",
            "docker ps: 0",
            "docker info: 0",
        ] {
            assert!(
                probe_log.contains(line),
                "{name}: {line:?} not in:\n{probe_log}\n{}",
                read("etcd.err")
            );
        }
        // The real engine pulled Swarm's image from the registry through
        // the proxy, and runs the agent (and on the manager the manager) as
        // configure-swarm.sh started them.
        let containers = read("containers.txt");
        let expected: &[&str] = if server.role == "master" {
            &["swarm-agent", "swarm-manager"]
        } else {
            &["swarm-agent"]
        };
        let listed: Vec<String> = containers.lines().map(str::to_owned).collect();
        let wanted: Vec<String> = expected
            .iter()
            .map(|c| format!("{c} {image} running"))
            .collect();
        assert_eq!(listed, wanted, "{name}: {containers}");
        let agent: Vec<String> =
            serde_json::from_str(&read("swarm-agent.args")).unwrap_or_default();
        assert_eq!(
            agent.first().map(String::as_str),
            Some("join"),
            "{name}: {agent:?}"
        );
        assert!(
            agent.contains(&format!("--addr={}:2375", server.address))
                && agent.contains(&discovery),
            "{name}: {agent:?}"
        );
        assert!(
            read("swarm-agent.log").starts_with("swarm 1.2.5 join"),
            "{name}: {}",
            read("swarm-agent.log")
        );
        if server.role == "master" {
            let manage: Vec<String> =
                serde_json::from_str(&read("swarm-manager.args")).unwrap_or_default();
            assert_eq!(
                manage.first().map(String::as_str),
                Some("manage"),
                "{manage:?}"
            );
            assert!(
                manage.contains(&discovery) && manage.iter().any(|a| a == "--tlsverify"),
                "{manage:?}"
            );
        }
        let info: Value = serde_json::from_str(&read("info.json")).unwrap_or(Value::Null);
        assert_eq!(info["Driver"], "overlay2", "{info}");
        assert_eq!(info["Name"], name.as_str(), "{info}");
        assert_eq!(
            info["Swarm"]["LocalNodeState"], "inactive",
            "no swarm mode: {info}"
        );
        // flannel: the node leased a subnet of the template's network in
        // the manager's etcd (the node over the cluster network), and its
        // real Docker's bridge uses it.
        let env = read("subnet.env");
        let subnet = env
            .lines()
            .find_map(|l| l.strip_prefix("FLANNEL_SUBNET="))
            .unwrap_or_else(|| panic!("{name}: no flannel subnet: {env:?}"))
            .to_owned();
        assert!(
            subnet.starts_with("10.100.") && subnet.ends_with(".1/24"),
            "{subnet}"
        );
        let bridge = read("bridge.json");
        let network = subnet.replace(".1/24", ".0/24");
        assert!(
            bridge.contains(&format!("\"Subnet\":\"{network}\"")),
            "{name}: Docker's bridge is not on {subnet}: {bridge}"
        );
        subnets.push(subnet);
    }
    assert_ne!(subnets[0], subnets[1], "each node its own flannel subnet");
    // The image came from the registry through the proxy (the manifest
    // and both blobs), once per node.
    let requests = mirror.requests();
    let pulled = requests
        .iter()
        .filter(|r| {
            r["role"] == "proxy"
                && r["status"] == 200
                && r["url"]
                    .as_str()
                    .is_some_and(|u| u.contains("/v2/magnum/swarm/manifests/1.2.5"))
        })
        .count();
    assert!(
        pulled >= 2,
        "the manifest pulled by each node: {requests:?}"
    );
    // The manager's etcd is Debian's, and ran to the end.
    let manager_run = &runs[0];
    assert!(
        manager_run
            .processes
            .lines()
            .any(|p| p.contains("/etcd ") || p.ends_with("/etcd")),
        "{}",
        manager_run.processes
    );
    eprintln!(
        "sandbox standalone Swarm: manager {:.1}s, node {:.1}s",
        runs[0].seconds, runs[1].seconds
    );
    drop(network);
}

#[test]
fn mesos_nodes_bootstrap_for_real_in_the_sandbox() {
    if !can_run("mesos_nodes_bootstrap_for_real_in_the_sandbox") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = runs_dir("mesos");
    let dir = &dir;
    let (root, _) = sandbox_root();
    let mirror = Mirror::start(&root, dir);
    let signals = SignalReceiver::start();
    let mut service = Service::start(dir);
    let proxy = format!("http://127.0.0.1:{}", mirror.proxy_port);
    let labels: Map<String, Value> = mirror
        .labels()
        .into_iter()
        .filter(|(k, _)| k == "download_mirror_url" || k == "container_infra_prefix")
        .collect();
    let cluster = service.cluster(
        "mesos",
        labels,
        json!({"coe": "mesos", "image_id": "ubuntu-mesos", "network_driver": null,
               "http_proxy": proxy, "https_proxy": proxy}),
    );
    let servers = service.servers(cluster["cluster_id"].as_str().unwrap_or_default());
    let forward = [service.port, mirror.proxy_port, signals.port];
    // Ubuntu 14.04 runs upstart: no /run/systemd/system, and its `service`.
    let upstart = [
        "--no-systemd".to_owned(),
        "--stand-ins".to_owned(),
        sandbox_dir().join("stand-ins/image").display().to_string(),
        "--stand-ins".to_owned(),
        sandbox_dir()
            .join("stand-ins/upstart")
            .display()
            .to_string(),
    ];
    for (role, started, stopped) in [
        ("master", "mesos-master restart", "mesos-slave stop"),
        ("worker", "mesos-slave restart", "marathon stop"),
    ] {
        let server = servers
            .iter()
            .find(|s| s.role == role)
            .unwrap_or_else(|| panic!("a {role}"));
        let run = run_node_with(server, dir, &forward, &signals, &upstart);
        assert_eq!(run.status, Some(0), "{role} failed:\n{}", run.report);
        let signal = signal_of(server, &signals).expect("the node signalled");
        let token = heat_param(&server.user_data, "WAIT_HANDLE_TOKEN").unwrap_or_default();
        assert!(
            !token.is_empty() && signal.token == token,
            "{role}: the handle's token"
        );
        assert_eq!(signal.body["status"], "SUCCESS", "{:?}", signal.body);
        assert_eq!(
            signal.body["data"]["coe_version"], "1.4.1",
            "{:?}",
            signal.body
        );
        // The fragments drove upstart's jobs as on the image, and wrote
        // Mesos's configuration for this node's address.
        let services = std::fs::read_to_string(run.upper.join("var/log/sandbox/service.log"))
            .unwrap_or_default();
        assert!(
            services.contains(&format!("service {started}")),
            "{role}: {services}"
        );
        assert!(
            services.contains(&format!("service {stopped}")),
            "{role}: {services}"
        );
        let zk = std::fs::read_to_string(run.upper.join("etc/mesos/zk")).unwrap_or_default();
        assert!(
            zk.starts_with("zk://") && zk.contains(":2181/mesos"),
            "{role}: {zk}"
        );
        let refused: Vec<Value> = mirror
            .requests()
            .into_iter()
            .filter(|r| r["status"] != 200)
            .collect();
        assert!(refused.is_empty(), "{role}: {refused:?}");
        eprintln!("sandbox mesos {role}: {:.1}s", run.seconds);
    }
}
