//! The node scripts' shared helpers (drivers/common/fragments/lib-common.sh)
//! and fragments, run with bash in a scratch root (`MAGNUM_ROOT`) so that
//! nothing touches this machine: downloads against a small HTTP server on
//! 127.0.0.1 (which also serves as the proxy), and the host setup
//! (configure-host.sh: proxy, the cloud's CA, the registry) of each driver.
//! Commands that would change the machine (systemctl, service,
//! update-ca-trust, update-ca-certificates) are stubs that record their
//! arguments. This crate hosts the test for the three drivers, as it does
//! shellcheck's.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use magnum_driver_sdk::serde_json;

fn drivers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in drivers/")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A file server on 127.0.0.1 that also answers proxy requests (absolute
/// URIs), logging every request line.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

const SERVER: &str = r#"
import http.server, os, sys, urllib.parse
root, log = sys.argv[1], sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.requestline + "\n")
        path = os.path.join(root, urllib.parse.urlsplit(self.path).path.lstrip("/"))
        if os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read()
            self.send_response(200)
        else:
            data = b""
            self.send_response(404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

impl Server {
    fn start(root: &Path, log: &Path) -> Self {
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(root)
            .arg(log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server prints its port");
        let port = line.trim().parse().expect("a port");
        Self {
            child,
            port,
            log: log.to_path_buf(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn requests(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node in a scratch directory: `root` is its `/`, with heat-params, the
/// driver's lib.sh as the user data writes it, and stub commands.
struct Node {
    _dir: tempfile::TempDir,
    root: PathBuf,
    stubs: PathBuf,
    /// What the mirror serves.
    files: PathBuf,
}

impl Node {
    /// A node of `driver` (its fragments/lib.sh after lib-common.sh) with
    /// `params` as heat-params; `systemd` makes it look booted by systemd.
    fn new(driver: &str, params: &str, systemd: bool) -> Self {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let root = dir.path().join("root");
        let stubs = dir.path().join("stubs");
        let files = dir.path().join("files");
        for d in [&stubs, &files] {
            fs::create_dir_all(d).unwrap();
        }
        let node = Self {
            _dir: dir,
            root,
            stubs,
            files,
        };
        node.write("etc/sysconfig/heat-params", params);
        let lib = read(&drivers_dir().join("common/fragments/lib-common.sh"))
            + &read(&drivers_dir().join(driver).join("src/fragments/lib.sh"))
            // The node's address without the metadata service.
            + "node_ip() { echo 10.0.0.3; }\nnode_name() { echo node-0; }\n";
        node.write("var/lib/magnum/lib.sh", &lib);
        if systemd {
            fs::create_dir_all(node.root.join("run/systemd/system")).unwrap();
        }
        for stub in [
            "systemctl",
            "service",
            "update-ca-trust",
            "update-ca-certificates",
        ] {
            node.stub(stub, "");
        }
        node
    }

    /// A stub command that records its arguments in calls.log and runs
    /// `body`.
    fn stub(&self, name: &str, body: &str) {
        let path = self.stubs.join(name);
        fs::write(
            &path,
            format!(
                "#!/bin/bash\necho \"{name} $*\" >>\"{}\"\n{body}\n",
                self.calls_log().display()
            ),
        )
        .unwrap();
        make_executable(&path);
    }

    fn unstub(&self, name: &str) {
        fs::remove_file(self.stubs.join(name)).unwrap();
    }

    fn calls_log(&self) -> PathBuf {
        self.root.parent().unwrap().join("calls.log")
    }

    fn calls(&self) -> String {
        fs::read_to_string(self.calls_log()).unwrap_or_default()
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn file(&self, path: &str) -> String {
        read(&self.root.join(path))
    }

    fn serve(&self, path: &str, data: &[u8]) {
        let path = self.files.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    fn server(&self) -> Server {
        Server::start(
            &self.files,
            &self.root.parent().unwrap().join("requests.log"),
        )
    }

    /// Runs `script` with bash as a fragment would: strict, lib.sh sourced.
    fn run(&self, script: &str) -> Output {
        let path = format!(
            "{}:{}",
            self.stubs.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!(
                "set -euo pipefail\n. \"$MAGNUM_ROOT/var/lib/magnum/lib.sh\"\n{script}"
            ))
            .env("MAGNUM_ROOT", &self.root)
            .env("PATH", path);
        // This machine's proxy settings must not leak into the node's.
        for var in [
            "http_proxy",
            "https_proxy",
            "no_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            command.env_remove(var);
        }
        command.output().expect("bash runs")
    }

    /// Runs the shared or driver fragment at `relative` (under drivers/).
    fn run_fragment(&self, relative: &str) -> Output {
        let path = drivers_dir().join(relative);
        self.run(&format!(
            "MAGNUM_ROOT=\"$MAGNUM_ROOT\" bash {}",
            path.display()
        ))
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn sha256(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

/// Every file under `dir`, relative.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, found: &mut Vec<String>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, found);
            } else {
                found.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

const TOOL: &[u8] = b"#!/bin/sh\necho tool 1.0\n";
const PEM: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2xvdWQgQ0E=\n-----END CERTIFICATE-----";

// ---- Downloads ---------------------------------------------------------------

#[test]
fn a_published_bare_checksum_installs_the_binary() {
    let node = Node::new("k8s-fedora-atomic", "", true);
    node.serve("v1/tool", TOOL);
    node.serve("v1/tool.sha256", format!("{}\n", sha256(TOOL)).as_bytes());
    let server = node.server();
    let out = node.run(&format!("install_binary tool {}", server.url("v1/tool")));
    assert_ok(&out);
    let installed = node.root.join("usr/local/bin/tool");
    assert_eq!(fs::read(&installed).unwrap(), TOOL);
    let runs = Command::new(&installed).output().expect("the binary runs");
    assert_eq!(String::from_utf8_lossy(&runs.stdout), "tool 1.0\n");
    assert_eq!(listing(&node.root.join("usr/local/bin")), ["tool"]);
}

#[test]
fn a_sha256sums_file_verifies_a_tarball() {
    let node = Node::new("k8s-fedora-atomic", "", true);
    // etcd's layout: a tarball and one SHA256SUMS for the release.
    let staging = node.files.join("staging/etcd-v9-linux-amd64");
    fs::create_dir_all(&staging).unwrap();
    fs::write(staging.join("etcd"), TOOL).unwrap();
    fs::write(staging.join("etcdctl"), TOOL).unwrap();
    let tarball = node.files.join("v9/etcd-v9-linux-amd64.tar.gz");
    fs::create_dir_all(tarball.parent().unwrap()).unwrap();
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(node.files.join("staging"))
        .arg("etcd-v9-linux-amd64")
        .status()
        .unwrap();
    assert!(tar.success());
    let digest = sha256(&fs::read(&tarball).unwrap());
    node.serve(
        "v9/SHA256SUMS",
        format!(
            "{}  etcd-v9-linux-arm64.tar.gz\n{digest}  etcd-v9-linux-amd64.tar.gz\n",
            "0".repeat(64)
        )
        .as_bytes(),
    );
    let server = node.server();
    let out = node.run(&format!(
        "install_tarball etcd {} \"$BIN_DIR\" --strip-components=1 etcd-v9-linux-amd64/etcd etcd-v9-linux-amd64/etcdctl",
        server.url("v9/etcd-v9-linux-amd64.tar.gz")
    ));
    assert_ok(&out);
    assert_eq!(
        listing(&node.root.join("usr/local/bin")),
        ["etcd", "etcdctl"]
    );
    assert!(server.requests().contains("GET /v9/SHA256SUMS"));
}

#[test]
fn a_bad_checksum_fails_clearly_and_leaves_nothing() {
    let node = Node::new("k8s-fedora-atomic", "", true);
    node.serve("v1/tool", TOOL);
    node.serve(
        "v1/tool.sha256",
        format!("{}\n", sha256(b"another file")).as_bytes(),
    );
    let server = node.server();
    let out = node.run(&format!("install_binary tool {}", server.url("v1/tool")));
    assert!(!out.status.success(), "a mismatch must fail");
    let err = stderr(&out);
    assert!(err.contains("tool: sha256 mismatch"), "{err}");
    assert!(err.contains("nothing installed"), "{err}");
    assert!(
        err.contains(&sha256(TOOL)),
        "the message names what arrived: {err}"
    );
    assert_eq!(
        listing(&node.root.join("usr/local/bin")),
        Vec::<String>::new()
    );
}

#[test]
fn no_checksum_means_no_download() {
    let node = Node::new("k8s-fedora-atomic", "", true);
    node.serve("v1/tool", TOOL);
    let server = node.server();
    let out = node.run(&format!("install_binary tool {}", server.url("v1/tool")));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no sha256") && err.contains("tool_sha256"),
        "{err}"
    );
    assert!(
        !server.requests().contains("GET /v1/tool HTTP"),
        "{}",
        server.requests()
    );
    assert_eq!(
        listing(&node.root.join("usr/local/bin")),
        Vec::<String>::new()
    );
}

#[test]
fn the_label_pins_the_artifact_over_the_published_checksum() {
    // A mirror publishing a wrong checksum cannot override the label...
    let params = format!(
        "ARTIFACT_SHA256=\"other=abc tool={}\"\n",
        sha256(TOOL).to_uppercase()
    );
    let node = Node::new("k8s-fedora-atomic", &params, true);
    node.serve("v1/tool", TOOL);
    node.serve("v1/tool.sha256", sha256(b"tampered").as_bytes());
    let server = node.server();
    assert_ok(&node.run(&format!("install_binary tool {}", server.url("v1/tool"))));
    assert!(
        !server.requests().contains("tool.sha256"),
        "the label is enough"
    );

    // ...and a tampered artifact with a matching published checksum fails
    // against the label.
    let params = format!("ARTIFACT_SHA256=\"tool={}\"\n", sha256(TOOL));
    let node = Node::new("k8s-fedora-atomic", &params, true);
    node.serve("v1/tool", b"tampered");
    node.serve("v1/tool.sha256", sha256(b"tampered").as_bytes());
    let server = node.server();
    let out = node.run(&format!("install_binary tool {}", server.url("v1/tool")));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("label tool_sha256"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        listing(&node.root.join("usr/local/bin")),
        Vec::<String>::new()
    );
}

#[test]
fn downloads_go_through_the_proxy() {
    let probe = Node::new("k8s-fedora-atomic", "", true);
    let proxy = probe.server();
    let params = format!(
        "HTTP_PROXY=\"http://127.0.0.1:{port}\"\nHTTPS_PROXY=\"http://127.0.0.1:{port}\"\nNO_PROXY=\"internal.example\"\n",
        port = proxy.port
    );
    let node = Node::new("k8s-fedora-atomic", &params, true);
    // The proxy serves the mirror's files: only through it does the name
    // mirror.invalid resolve at all.
    fs::create_dir_all(probe.files.join("v1")).unwrap();
    fs::write(probe.files.join("v1/tool"), TOOL).unwrap();
    fs::write(probe.files.join("v1/tool.sha256"), sha256(TOOL)).unwrap();
    let out = node.run(
        "install_binary tool http://mirror.invalid/v1/tool\n\
         echo \"no_proxy=$no_proxy\"",
    );
    assert_ok(&out);
    let requests = proxy.requests();
    assert!(
        requests.contains("GET http://mirror.invalid/v1/tool.sha256 "),
        "{requests}"
    );
    assert!(
        requests.contains("GET http://mirror.invalid/v1/tool "),
        "{requests}"
    );
    assert_eq!(
        fs::read(node.root.join("usr/local/bin/tool")).unwrap(),
        TOOL
    );
    // The node's own endpoints never go to the proxy.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("no_proxy=internal.example,localhost,127.0.0.1,169.254.169.254"),
        "{stdout}"
    );
}

// ---- configure-host.sh -----------------------------------------------------------

fn host_params(runtime: &str) -> String {
    format!(
        "CONTAINER_RUNTIME=\"{runtime}\"\n\
         HTTP_PROXY=\"http://proxy.example:3128\"\n\
         HTTPS_PROXY=\"http://proxy.example:3129\"\n\
         NO_PROXY=\"10.0.0.0/24\"\n\
         KUBE_MASTER_IP=\"10.0.0.9\"\n\
         INSECURE_REGISTRY_URL=\"10.0.0.5:5000\"\n\
         REGISTRY_ENABLED=\"True\"\n\
         OPENSTACK_CA=\"{PEM}\"\n"
    )
}

#[test]
fn configure_host_gives_docker_the_proxy_registry_and_ca_on_fedora() {
    let node = Node::new("k8s-fedora-atomic", &host_params("host-docker"), true);
    // The image's own Docker settings stay.
    node.write("etc/docker/daemon.json", "{\"log-driver\": \"journald\"}\n");
    node.write("etc/environment", "LANG=C.UTF-8\nhttp_proxy=http://old:1\n");
    assert_ok(&node.run_fragment("common/fragments/configure-host.sh"));

    let dropin = node.file("etc/systemd/system/docker.service.d/magnum-proxy.conf");
    assert!(dropin.starts_with("[Service]\n"), "{dropin}");
    assert!(
        dropin.contains("\"HTTP_PROXY=http://proxy.example:3128\""),
        "{dropin}"
    );
    assert!(
        dropin.contains("\"HTTPS_PROXY=http://proxy.example:3129\""),
        "{dropin}"
    );
    assert!(
        dropin.contains("NO_PROXY=10.0.0.0/24,localhost,127.0.0.1,169.254.169.254,10.0.0.9"),
        "{dropin}"
    );

    let daemon: serde_json::Value =
        serde_json::from_str(&node.file("etc/docker/daemon.json")).expect("daemon.json is JSON");
    assert_eq!(
        daemon["insecure-registries"],
        serde_json::json!(["10.0.0.5:5000"])
    );
    assert_eq!(
        daemon["registry-mirrors"],
        serde_json::json!(["http://10.0.0.5:5000"])
    );
    assert_eq!(daemon["log-driver"], "journald");

    let environment = node.file("etc/environment");
    assert!(environment.contains("LANG=C.UTF-8\n"), "{environment}");
    assert!(
        environment.contains("\nhttp_proxy=http://proxy.example:3128\n"),
        "{environment}"
    );
    assert!(
        environment.contains("\nHTTPS_PROXY=http://proxy.example:3129\n"),
        "{environment}"
    );
    assert!(!environment.contains("old:1"), "{environment}");

    assert_eq!(
        node.file("etc/pki/ca-trust/source/anchors/magnum-openstack-ca.pem"),
        format!("{PEM}\n")
    );
    let calls = node.calls();
    assert!(calls.contains("update-ca-trust extract\n"), "{calls}");
    assert!(calls.contains("systemctl daemon-reload\n"), "{calls}");
    assert!(
        calls.contains("systemctl try-restart docker.service\n"),
        "{calls}"
    );

    // Run twice (a rebooted node): one line per setting.
    assert_ok(&node.run_fragment("common/fragments/configure-host.sh"));
    let environment = node.file("etc/environment");
    assert_eq!(
        environment.matches("http_proxy=").count(),
        1,
        "{environment}"
    );
}

#[test]
fn an_insecure_registry_the_image_sets_in_sysconfig_stays_there() {
    let node = Node::new("swarm-fedora-atomic", &host_params("docker"), true);
    node.write(
        "etc/sysconfig/docker",
        "OPTIONS='--selinux-enabled'\nINSECURE_REGISTRY='--insecure-registry old:5000'\n",
    );
    for _ in 0..2 {
        assert_ok(&node.run_fragment("common/fragments/configure-host.sh"));
    }
    assert_eq!(
        node.file("etc/sysconfig/docker"),
        "OPTIONS='--selinux-enabled'\n\
         INSECURE_REGISTRY='--insecure-registry old:5000 --insecure-registry 10.0.0.5:5000'\n"
    );
    let daemon: serde_json::Value =
        serde_json::from_str(&node.file("etc/docker/daemon.json")).unwrap();
    assert!(daemon.get("insecure-registries").is_none(), "{daemon}");
    assert_eq!(
        daemon["registry-mirrors"],
        serde_json::json!(["http://10.0.0.5:5000"])
    );
}

#[test]
fn configure_host_gives_containerd_the_proxy_and_registry() {
    let node = Node::new("k8s-fedora-atomic", &host_params("containerd"), true);
    assert_ok(&node.run_fragment("common/fragments/configure-host.sh"));
    let dropin = node.file("etc/systemd/system/containerd.service.d/magnum-proxy.conf");
    assert!(
        dropin.contains("\"HTTP_PROXY=http://proxy.example:3128\""),
        "{dropin}"
    );
    let registry = node.file("etc/containerd/certs.d/10.0.0.5:5000/hosts.toml");
    assert!(
        registry.contains("[host.\"http://10.0.0.5:5000\"]"),
        "{registry}"
    );
    assert!(registry.contains("skip_verify = true"), "{registry}");
    let mirror = node.file("etc/containerd/certs.d/docker.io/hosts.toml");
    assert!(
        mirror.contains("server = \"https://registry-1.docker.io\""),
        "{mirror}"
    );
    assert!(
        mirror.contains("[host.\"http://10.0.0.5:5000\"]"),
        "{mirror}"
    );
    assert!(!node
        .root
        .join("etc/systemd/system/docker.service.d")
        .exists());
    assert!(node
        .calls()
        .contains("systemctl try-restart containerd.service\n"));
}

#[test]
fn configure_host_on_ubuntu_upstart_uses_etc_default_and_update_ca_certificates() {
    let node = Node::new("mesos-ubuntu", &host_params("docker"), false);
    node.unstub("update-ca-trust");
    node.write("etc/default/docker", "DOCKER_OPTS=\"--dns 8.8.8.8\"\n");
    assert_ok(&node.run_fragment("common/fragments/configure-host.sh"));
    let defaults = node.file("etc/default/docker");
    assert!(
        defaults.starts_with("DOCKER_OPTS=\"--dns 8.8.8.8\"\n"),
        "{defaults}"
    );
    assert!(
        defaults.contains("export http_proxy=\"http://proxy.example:3128\"\n"),
        "{defaults}"
    );
    assert!(
        defaults.contains("export https_proxy=\"http://proxy.example:3129\"\n"),
        "{defaults}"
    );
    assert!(
        defaults.contains(
            "DOCKER_OPTS=\"$DOCKER_OPTS --insecure-registry=10.0.0.5:5000 --registry-mirror=http://10.0.0.5:5000\"\n"
        ),
        "{defaults}"
    );
    assert_eq!(
        node.file("usr/local/share/ca-certificates/magnum-openstack-ca.crt"),
        format!("{PEM}\n")
    );
    let calls = node.calls();
    assert!(calls.contains("update-ca-certificates"), "{calls}");
    assert!(
        !calls.contains("systemctl"),
        "no systemd on upstart: {calls}"
    );
    // The defaults file still parses, with the proxy and options it holds.
    let out = node.run(&format!(
        ". {}\necho \"$https_proxy|$DOCKER_OPTS\"",
        node.root.join("etc/default/docker").display()
    ));
    assert_ok(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "http://proxy.example:3129|--dns 8.8.8.8 --insecure-registry=10.0.0.5:5000 --registry-mirror=http://10.0.0.5:5000\n"
    );
}

#[test]
fn configure_host_without_settings_changes_nothing() {
    let node = Node::new("swarm-fedora-atomic", "TLS_DISABLED=\"False\"\n", true);
    assert_ok(&node.run_fragment("common/fragments/configure-host.sh"));
    let written: Vec<String> = listing(&node.root)
        .into_iter()
        .filter(|f| !f.starts_with("etc/sysconfig/") && !f.starts_with("var/lib/magnum/"))
        .collect();
    assert_eq!(written, Vec::<String>::new());
    assert!(!node.calls().contains("update-ca"));
}

#[test]
fn the_cloud_is_verified_unless_the_operator_turned_it_off() {
    let node = Node::new("k8s-fedora-atomic", "VERIFY_CA=\"True\"\n", true);
    let out = node.run("echo \"[$(cloud_tls_options)]\"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    let node = Node::new("k8s-fedora-atomic", "VERIFY_CA=\"False\"\n", true);
    let out = node.run("echo \"[$(cloud_tls_options)]\"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[--insecure]\n");
}

// ---- Services on upstart (the Mesos image) and systemd ----------------------------

#[test]
fn upstart_services_are_enabled_by_removing_their_override() {
    let node = Node::new("mesos-ubuntu", "", false);
    node.write("etc/init/zookeeper.override", "manual\n");
    node.write("etc/init/marathon.override", "manual\n");
    let out = node.run(
        "service_enable zookeeper\nservice_restart zookeeper\nservice_disable mesos-slave\n\
         install_unit rexray <<'UNIT'\n[Unit]\nDescription=REX-Ray\n\n[Service]\n\
         Environment=A=1\nExecStart=/usr/local/bin/rexray start \\\n  -f\nRestart=always\nUNIT",
    );
    assert_ok(&out);
    assert!(!node.root.join("etc/init/zookeeper.override").exists());
    assert!(node.root.join("etc/init/marathon.override").exists());
    assert_eq!(node.file("etc/init/mesos-slave.override"), "manual\n");
    let job = node.file("etc/init/rexray.conf");
    assert!(job.contains("description \"REX-Ray\"\n"), "{job}");
    assert!(job.contains("respawn\n"), "{job}");
    assert!(job.contains("env A=1\n"), "{job}");
    assert!(
        job.contains("exec /usr/local/bin/rexray start   -f\n"),
        "{job}"
    );
    let calls = node.calls();
    assert!(calls.contains("service zookeeper restart\n"), "{calls}");
    assert!(calls.contains("service mesos-slave stop\n"), "{calls}");
    assert!(calls.contains("service rexray restart\n"), "{calls}");
    assert!(!calls.contains("systemctl"), "{calls}");
}

#[test]
fn systemd_services_use_systemctl() {
    let node = Node::new("mesos-ubuntu", "", true);
    assert_ok(
        &node.run(
            "service_enable zookeeper\nservice_restart zookeeper\nservice_disable mesos-slave",
        ),
    );
    let calls = node.calls();
    assert!(
        calls.contains("systemctl enable zookeeper.service\n"),
        "{calls}"
    );
    assert!(
        calls.contains("systemctl restart zookeeper.service\n"),
        "{calls}"
    );
    assert!(
        calls.contains("systemctl disable --now mesos-slave.service\n"),
        "{calls}"
    );
}

// ---- Swarm: the packaged Docker unit, etcd's v2 API --------------------------------

fn swarm_params(swarm_mode: &str) -> String {
    format!(
        "TLS_DISABLED=\"True\"\nSWARM_MODE=\"{swarm_mode}\"\nDOCKER_STORAGE_DRIVER=\"overlay2\"\n\
         INSECURE_REGISTRY_URL=\"10.0.0.5:5000\"\nETCD_TAG=\"v3.5.9\"\n"
    )
}

#[test]
fn swarm_keeps_fedoras_packaged_docker_unit() {
    let node = Node::new("swarm-fedora-atomic", &swarm_params("False"), true);
    // Fedora Atomic's unit: no -H, options from /etc/sysconfig/docker.
    node.stub(
        "systemctl",
        "if [ \"$1\" = cat ]; then printf '%s\\n' '[Service]' 'ExecStart=/usr/bin/dockerd-current \\' '  $OPTIONS $DOCKER_STORAGE_OPTIONS'; fi",
    );
    assert_ok(&node.run_fragment("common/fragments/configure-host.sh"));
    assert_ok(&node.run_fragment("swarm-fedora-atomic/src/fragments/configure-docker.sh"));
    let dropin = node.file("etc/systemd/system/docker.service.d/magnum.conf");
    assert!(
        !dropin.contains("ExecStart"),
        "the packaged ExecStart stays: {dropin}"
    );
    assert!(dropin.contains("After=flanneld.service"), "{dropin}");
    let daemon: serde_json::Value =
        serde_json::from_str(&node.file("etc/docker/daemon.json")).unwrap();
    assert_eq!(
        daemon["hosts"],
        serde_json::json!(["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375"])
    );
    // configure-host.sh's registry survives configure-docker.sh.
    assert_eq!(
        daemon["insecure-registries"],
        serde_json::json!(["10.0.0.5:5000"])
    );
    assert_eq!(daemon["storage-driver"], "overlay2");
    assert!(node.calls().contains("systemctl restart docker.service\n"));
}

#[test]
fn swarm_adds_its_address_to_a_unit_that_sets_hosts() {
    let node = Node::new("swarm-fedora-atomic", &swarm_params("True"), true);
    node.stub(
        "systemctl",
        "if [ \"$1\" = cat ]; then printf '%s\\n' '[Service]' 'ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock'; fi",
    );
    assert_ok(&node.run_fragment("swarm-fedora-atomic/src/fragments/configure-docker.sh"));
    let dropin = node.file("etc/systemd/system/docker.service.d/magnum.conf");
    assert!(
        dropin.contains(
            "ExecStart=\nExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock -H tcp://0.0.0.0:2375\n"
        ),
        "{dropin}"
    );
    let daemon: serde_json::Value =
        serde_json::from_str(&node.file("etc/docker/daemon.json")).unwrap();
    assert!(
        daemon.get("hosts").is_none(),
        "hosts twice would stop Docker: {daemon}"
    );
}

#[test]
fn swarm_adds_its_address_to_image_options_that_set_hosts() {
    let node = Node::new("swarm-fedora-atomic", &swarm_params("True"), true);
    node.stub(
        "systemctl",
        "if [ \"$1\" = cat ]; then printf '%s\\n' '[Service]' 'ExecStart=/usr/bin/dockerd-current $OPTIONS'; fi",
    );
    node.write(
        "etc/sysconfig/docker",
        "# image defaults\nOPTIONS='--selinux-enabled -H fd:// --live-restore'\n",
    );
    for _ in 0..2 {
        assert_ok(&node.run_fragment("swarm-fedora-atomic/src/fragments/configure-docker.sh"));
    }
    // Once, inside the quotes; swarm mode drops live-restore.
    assert_eq!(
        node.file("etc/sysconfig/docker"),
        "# image defaults\nOPTIONS='--selinux-enabled -H fd:// -H tcp://0.0.0.0:2375'\n"
    );
    let daemon: serde_json::Value =
        serde_json::from_str(&node.file("etc/docker/daemon.json")).unwrap();
    assert!(daemon.get("hosts").is_none(), "{daemon}");
    let dropin = node.file("etc/systemd/system/docker.service.d/magnum.conf");
    assert!(!dropin.contains("ExecStart"), "{dropin}");
}

/// The etcd unit configure-etcd.sh writes on a node of `driver`.
fn etcd_unit(driver: &str, params: &str) -> String {
    let node = Node::new(driver, params, true);
    // Installed already: no download.
    node.write("usr/local/bin/etcd", "");
    make_executable(&node.root.join("usr/local/bin/etcd"));
    assert_ok(&node.run_fragment("common/fragments/configure-etcd.sh"));
    node.file("etc/systemd/system/etcd.service")
}

#[test]
fn etcd_serves_the_v2_api_only_to_standalone_swarm() {
    let standalone = etcd_unit("swarm-fedora-atomic", &swarm_params("False"));
    assert!(standalone.contains("--enable-v2=true"), "{standalone}");
    assert!(
        standalone.contains("--listen-client-urls=http://0.0.0.0:2379"),
        "{standalone}"
    );
    let kubernetes = etcd_unit("k8s-fedora-atomic", "TLS_DISABLED=\"True\"\n");
    assert!(kubernetes.contains("--name=node-0"), "{kubernetes}");
    assert!(!kubernetes.contains("enable-v2"), "{kubernetes}");
}

#[test]
fn magnum_api_calls_verify_tls_by_default() {
    // With verify_ca on, magnum_api passes curl no TLS option at all (an
    // empty option list, which bash 4.3's set -u would call unbound).
    let node = Node::new(
        "k8s-fedora-atomic",
        "VERIFY_CA=\"True\"\nCLUSTER_CREDENTIAL=\"secret-token\"\n",
        true,
    );
    node.serve("v1/certificates/c1", b"{\"pem\": \"PEM\"}");
    let server = node.server();
    let out = node.run(&format!(
        "magnum_api {} | pem_field",
        server.url("v1/certificates/c1")
    ));
    assert_ok(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PEM");
}

fn cloud_params(extra: &str) -> String {
    format!(
        "CLUSTER_UUID=\"c-1\"\n\
         CLOUD_PROVIDER_ENABLED=\"True\"\n\
         CINDER_CSI_ENABLED=\"True\"\n\
         CLOUD_PROVIDER_TAG=\"v1.28.0\"\n\
         CINDER_CSI_PLUGIN_TAG=\"v1.28.1\"\n\
         AUTH_URL=\"https://keystone.example:5000/v3\"\n\
         OPENSTACK_APP_CRED_ID=\"ac-123\"\n\
         OPENSTACK_APP_CRED_SECRET=\"s3cret-value\"\n\
         EXTERNAL_NETWORK=\"public-net\"\n\
         OCTAVIA_PROVIDER=\"ovn\"\n\
         OCTAVIA_LB_ALGORITHM=\"SOURCE_IP_PORT\"\n\
         {extra}"
    )
}

/// kubectl on the node: answers the health check and keeps what it applies.
fn stub_kubectl(node: &Node) {
    let applied = node.root.parent().unwrap().join("applied");
    fs::create_dir_all(&applied).unwrap();
    let kubectl = node.root.join("usr/local/bin/kubectl");
    fs::create_dir_all(kubectl.parent().unwrap()).unwrap();
    fs::write(
        &kubectl,
        format!(
            "#!/bin/bash\nfor a in \"$@\"; do\n  if [ \"$prev\" = -f ]; then cat \"$a\" >>\"{}/manifests.yaml\"; echo --- >>\"{}/manifests.yaml\"; fi\n  prev=$a\ndone\n",
            applied.display(),
            applied.display()
        ),
    )
    .unwrap();
    make_executable(&kubectl);
}

fn applied(node: &Node) -> String {
    read(&node.root.parent().unwrap().join("applied/manifests.yaml"))
}

#[test]
fn the_cloud_provider_gets_the_application_credential_on_the_masters() {
    let node = Node::new(
        "k8s-fedora-atomic",
        &cloud_params(&format!(
            "VERIFY_CA=\"False\"\nOPENSTACK_CA=\"{PEM}\"\nCONTAINER_INFRA_PREFIX=\"mirror.example/magnum/\"\n"
        )),
        true,
    );
    stub_kubectl(&node);
    assert_ok(&node.run_fragment("k8s-fedora-atomic/src/fragments/configure-cloud-provider.sh"));

    let config = node.file("etc/kubernetes/cloud-config");
    for line in [
        "[Global]\n",
        "auth-url=https://keystone.example:5000/v3\n",
        "application-credential-id=ac-123\n",
        "application-credential-secret=s3cret-value\n",
        "ca-file=/etc/kubernetes/openstack-ca.pem\n",
        "tls-insecure=true\n",
        "[LoadBalancer]\n",
        "floating-network-id=public-net\n",
        "lb-provider=ovn\n",
        "lb-method=SOURCE_IP_PORT\n",
    ] {
        assert!(config.contains(line), "{line} missing from\n{config}");
    }
    // No password, no trust: the application credential alone.
    assert!(
        !config.contains("password") && !config.contains("trust"),
        "{config}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(node.root.join("etc/kubernetes/cloud-config"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        node.file("etc/kubernetes/openstack-ca.pem"),
        format!("{PEM}\n")
    );

    // The Secret the controller manager and Cinder CSI read holds the same
    // text; images come from the mirror.
    let manifests = applied(&node);
    let encoded = manifests
        .lines()
        .find_map(|l| l.trim().strip_prefix("cloud.conf: "))
        .expect("the cloud-config Secret");
    let decoded = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(encoded.as_bytes())?;
            c.wait_with_output()
        })
        .expect("base64 -d");
    assert_eq!(String::from_utf8_lossy(&decoded.stdout), config);
    for image in [
        "image: mirror.example/magnum/openstack-cloud-controller-manager:v1.28.0",
        "image: mirror.example/magnum/cinder-csi-plugin:v1.28.1",
        "image: mirror.example/magnum/csi-attacher:",
        "image: mirror.example/magnum/csi-node-driver-registrar:",
    ] {
        assert!(manifests.contains(image), "{image} missing");
    }
    assert!(manifests.contains("kind: DaemonSet\nmetadata:\n  name: csi-cinder-nodeplugin"));
    assert!(manifests.contains("--cluster-name=c-1"));
    // The secret never reaches a manifest in the clear.
    assert!(!manifests.contains("s3cret-value"));
}

#[test]
fn without_mirror_and_csi_the_upstream_images_and_no_csi() {
    let params = cloud_params("").replace(
        "CINDER_CSI_ENABLED=\"True\"",
        "CINDER_CSI_ENABLED=\"False\"",
    );
    let node = Node::new("k8s-fedora-atomic", &params, true);
    stub_kubectl(&node);
    assert_ok(&node.run_fragment("k8s-fedora-atomic/src/fragments/configure-cloud-provider.sh"));
    let config = node.file("etc/kubernetes/cloud-config");
    assert!(
        !config.contains("tls-insecure") && !config.contains("ca-file"),
        "{config}"
    );
    let manifests = applied(&node);
    assert!(manifests
        .contains("image: registry.k8s.io/provider-os/openstack-cloud-controller-manager:v1.28.0"));
    assert!(!manifests.contains("cinder-csi-plugin"), "{manifests}");
}

#[test]
fn kubelet_runs_with_an_external_cloud_provider_only_when_enabled() {
    let on = Node::new("k8s-fedora-atomic", &cloud_params(""), true);
    let out = on.run("kubelet_cloud_flags");
    assert_ok(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "--cloud-provider=external\n"
    );
    let off = Node::new(
        "k8s-fedora-atomic",
        "CLOUD_PROVIDER_ENABLED=\"False\"\n",
        true,
    );
    let out = off.run("kubelet_cloud_flags");
    assert_ok(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    // Without the credential the fragment fails clearly instead of
    // starting a provider that cannot authenticate.
    let params = cloud_params("").replace("OPENSTACK_APP_CRED_SECRET=\"s3cret-value\"\n", "");
    let node = Node::new("k8s-fedora-atomic", &params, true);
    let out = node.run_fragment("k8s-fedora-atomic/src/fragments/configure-cloud-provider.sh");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("application credential"),
        "{}",
        stderr(&out)
    );
}
