//! The three bundled drivers through the real binaries: registration, the
//! upstream listing, the conformance run, and `magnumd serve`.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use serde_json::Value;

use crate::support::*;

#[test]
fn list_drivers_shows_upstream_columns_and_tuples() {
    let dir = tempfile::tempdir().unwrap();
    register_bundled(dir.path());
    let names = ok(manage(dir.path(), &["list-drivers", "-f", "value"]));
    assert_eq!(
        names,
        "k8s_fedora_atomic_v1\nmesos_ubuntu_v1\nswarm_fedora_atomic_v1\n"
    );

    let json: Value = serde_json::from_str(&ok(manage(
        dir.path(),
        &["list-drivers", "-d", "-f", "json"],
    )))
    .unwrap();
    let tuples: Vec<(String, String, String, String)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_owned();
            (s("Name"), s("Server_Type"), s("OS"), s("COE"))
        })
        .collect();
    let expected = [
        ("k8s_fedora_atomic_v1", "vm", "fedora-atomic", "kubernetes"),
        ("mesos_ubuntu_v1", "vm", "ubuntu", "mesos"),
        ("swarm_fedora_atomic_v1", "vm", "fedora-atomic", "swarm"),
        (
            "swarm_fedora_atomic_v1",
            "vm",
            "fedora-atomic",
            "swarm-mode",
        ),
    ];
    for (n, st, os, coe) in expected {
        assert!(
            tuples.contains(&(n.into(), st.into(), os.into(), coe.into())),
            "missing ({st}, {os}, {coe}) for {n} in {tuples:?}"
        );
    }
    assert_eq!(tuples.len(), 4);

    let table = ok(manage(dir.path(), &["list-drivers", "-d", "-p"]));
    let header = table.lines().nth(1).unwrap();
    assert!(
        header.contains("| Name")
            && header.contains("| Server_Type")
            && header.contains("| OS")
            && header.contains("| COE")
            && header.contains("| Template Path"),
        "{table}"
    );
}

#[test]
fn bundled_drivers_pass_verify() {
    let dir = tempfile::tempdir().unwrap();
    register_bundled(dir.path());
    let out = ok(manage(dir.path(), &["verify"]));
    for name in [
        "k8s_fedora_atomic_v1",
        "swarm_fedora_atomic_v1",
        "mesos_ubuntu_v1",
    ] {
        assert!(
            out.contains(&format!("PASS {name}: create_cluster")),
            "{out}"
        );
        assert!(out.contains(&format!("PASS {name}: map_status")), "{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    // k8s declares nodegroups and upgrade, so verify exercised them.
    assert!(
        out.contains("PASS k8s_fedora_atomic_v1: create_nodegroup"),
        "{out}"
    );
    assert!(
        out.contains("PASS k8s_fedora_atomic_v1: upgrade_cluster"),
        "{out}"
    );
    assert!(!out.contains("mesos_ubuntu_v1: upgrade_cluster"), "{out}");
    // Outcomes, not only shapes: every plan leaves each nodegroup the size
    // the request asks for (a rotation or an upgrade never resizes).
    for operation in [
        "create_cluster",
        "update_cluster",
        "resize_cluster",
        "upgrade_cluster",
    ] {
        assert!(
            out.contains(&format!(
                "PASS k8s_fedora_atomic_v1: {operation} keeps every nodegroup's size"
            )),
            "{out}"
        );
    }
    assert!(
        out.contains("PASS swarm_fedora_atomic_v1: update_cluster keeps every nodegroup's size"),
        "{out}"
    );
}

/// A minimal HTTP/1.1 GET (no client library needed): status head and body.
pub(crate) fn http_get(addr: &str, path: &str) -> (String, String) {
    http_get_with(addr, path, "")
}

/// `extra` is whole header lines, each ending in `\r\n`.
fn http_get_with(addr: &str, path: &str, extra: &str) -> (String, String) {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"),
    )
}

/// Sends one whole request, reads the answer to EOF: head and body.
fn exchange(addr: &str, request: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("http response");
    (head.to_owned(), body.trim().to_owned())
}

pub(crate) fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn magnumd_serves_version_documents_and_logs_loaded_drivers() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    register_bundled(&plugins);
    // A broken manifest beside them must not stop the service.
    std::fs::write(plugins.join("broken.toml"), "not toml at all [").unwrap();
    let server = Magnumd::start(&plugins, &dir.path().join("var"));
    let addr = server.addr.clone();
    let (head, root) = http_get(&addr, "/");
    let (v1_head, v1) = http_get_with(
        &addr,
        "/v1",
        "OpenStack-API-Version: container-infra latest\r\n",
    );
    let (bad_head, bad) = http_get_with(
        &addr,
        "/v1",
        "OpenStack-API-Version: container-infra 1.999\r\n",
    );
    let (missing_head, missing) = http_get(&addr, "/v1/no-such-resource");
    let (health_head, health) = http_get(&addr, "/healthcheck");
    let (root, v1, missing, bad) = (json(&root), json(&v1), json(&missing), json(&bad));
    // SIGTERM is a clean shutdown.
    let (status, log) = server.stop();
    assert!(status.success(), "magnumd exit after SIGTERM: {status}");

    assert!(log.contains("shutting down"), "{log}");
    for name in [
        "k8s_fedora_atomic_v1",
        "swarm_fedora_atomic_v1",
        "mesos_ubuntu_v1",
    ] {
        assert!(
            log.contains("driver loaded") && log.contains(name),
            "{name} not logged as loaded:\n{log}"
        );
    }
    assert!(
        log.contains("driver=broken") && log.contains("bad manifest"),
        "{log}"
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-openstack-request-id: req-"),
        "{head}"
    );
    assert_eq!(root["versions"][0]["max_version"], "1.14");
    assert_eq!(root["versions"][0]["min_version"], "1.1");
    assert_eq!(v1["id"], "v1");
    assert_eq!(v1["clusters"][0]["rel"], "self");
    assert!(missing_head.starts_with("HTTP/1.1 404"), "{missing_head}");
    assert!(health_head.starts_with("HTTP/1.1 200"), "{health_head}");
    assert_eq!(health, "OK");
    assert!(
        dir.path().join("var/magnum.sqlite").exists(),
        "SQLite created in the data dir"
    );
    assert_eq!(missing["errors"][0]["status"], 404);
    assert_eq!(missing["errors"][0]["code"], "client");
    assert_eq!(missing["errors"][0]["request_id"], "");
    // Microversions: GET / has no version headers, /v1 echoes the negotiated one.
    let lower = |h: &str| h.to_ascii_lowercase();
    assert!(!lower(&head).contains("openstack-api-version"), "{head}");
    assert!(
        lower(&v1_head).contains("openstack-api-version: container-infrastructure-management 1.14"),
        "{v1_head}"
    );
    assert!(
        lower(&missing_head)
            .contains("openstack-api-version: container-infrastructure-management 1.1\r\n"),
        "no header means 1.1: {missing_head}"
    );
    assert!(bad_head.starts_with("HTTP/1.1 406"), "{bad_head}");
    assert_eq!(bad["errors"][0]["code"], "magnum.microversion-unsupported");
    assert_eq!(bad["errors"][0]["max_version"], "1.14");
}

/// A minimal HTTP/1.1 POST of a JSON body: status head and body.
pub(crate) fn http_post(addr: &str, path: &str, body: &Value) -> (String, String) {
    let body = body.to_string();
    exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             OpenStack-API-Version: container-infra latest\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

// Issue 17, item 3: overwriting a registered library in place (`cat other.so
// > driver.so`, as a careless package upgrade does) while magnumd runs. With
// the file itself mapped, the next call into the driver ran whatever the new
// bytes held at the old offsets and killed magnumd with SIGSEGV; the loader
// now maps a private copy of the bytes whose sha256 it checked.
#[test]
fn a_library_overwritten_in_place_does_not_touch_the_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    let lib = dir.path().join("libk8s.so");
    std::fs::copy(workspace_lib(BUNDLED[0]), &lib).unwrap();
    ok(manage(
        &plugins,
        &["register", lib.to_str().unwrap(), "--enable"],
    ));
    let server = Magnumd::start(&plugins, &dir.path().join("var"));
    let addr = server.addr.clone();
    let create = |name: &str| {
        http_post(
            &addr,
            "/v1/clustertemplates",
            &crate::api::template_body(name, "kubernetes", "fedora-atomic-latest"),
        )
    };
    // Template create runs the driver's own validation.
    let (head, body) = create("before");
    assert!(head.starts_with("HTTP/1.1 201"), "{head}\n{body}");

    // Same inode, other bytes: another driver's library written over it.
    let other = std::fs::read(workspace_lib(BUNDLED[1])).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&lib)
        .unwrap();
    f.write_all(&other).unwrap();
    f.sync_all().unwrap();
    drop(f);

    for name in ["after-1", "after-2"] {
        let (head, body) = create(name);
        assert!(head.starts_with("HTTP/1.1 201"), "{head}\n{body}");
        assert_eq!(json(&body)["name"], name);
    }
    let (head, _) = http_get(&addr, "/healthcheck");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (status, log) = server.stop();
    assert!(
        status.success(),
        "magnumd survived and stopped cleanly: {status}\n{log}"
    );
    // The change is picked up only through registration: the pinned sha256
    // no longer matches the file.
    let verified = manage(&plugins, &["verify", "k8s_fedora_atomic_v1"]);
    let said = stdout(&verified) + &stderr(&verified);
    assert!(!verified.status.success(), "{said}");
    assert!(said.contains("changed after registration"), "{said}");
}

// Issue 17, item 5: SIGHUP (logrotate, `systemctl reload`) killed magnumd
// with exit 129. It now re-applies the configuration file's log filter and
// logs what changed in plugins.d (applied at the next restart), and the
// service keeps serving.
#[test]
fn sighup_reloads_the_log_filter_and_never_kills() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    register_bundled(&plugins);
    let config = dir.path().join("magnum.toml");
    std::fs::write(&config, "log = \"info\"\n").unwrap();
    let mut server = Magnumd::start_with(&plugins, &dir.path().join("var"), Some(&config));
    let addr = server.addr.clone();
    let pid = server.pid().to_string();
    let hup = || {
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    let wait_log = |server: &mut Magnumd, needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let log = server.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle:?} in:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // A debug filter from the file applies without a restart.
    std::fs::write(&config, "log = \"debug\"\n").unwrap();
    hup();
    wait_log(&mut server, "SIGHUP: log filter applied");
    wait_log(&mut server, "SIGHUP: plugins.d unchanged");
    let (head, _) = http_get(&addr, "/healthcheck");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // A driver disabled on disk: said, not applied until a restart.
    ok(manage(&plugins, &["disable", "mesos_ubuntu_v1", "--force"]));
    hup();
    let log = wait_log(&mut server, "plugins.d changed");
    assert!(log.contains("mesos_ubuntu_v1: disabled"), "{log}");
    // A bad filter keeps the one in force.
    std::fs::write(&config, "log = \"info,[=\"\n").unwrap();
    hup();
    wait_log(&mut server, "SIGHUP: log filter not changed");
    let (head, _) = http_get(&addr, "/healthcheck");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (status, log) = server.stop();
    assert!(
        status.success(),
        "clean stop after three SIGHUPs: {status}\n{log}"
    );
}

// Issue 18, item 8: start-up rough edges. A taken port fails before
// anything is created on disk; a missing plugins directory is refused with
// the heat orchestrator and logged loudly otherwise; magnum-driver-manage
// takes `plugins_dir` from --config as magnumd does.
#[test]
fn start_up_fails_early_and_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    register_bundled(&plugins);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let data = dir.path().join("var-taken");
    let out = std::process::Command::new(bin("magnumd"))
        .args(["serve", "--bind", &port, "--data-dir"])
        .arg(&data)
        .arg("--plugins-dir")
        .arg(&plugins)
        .env_remove("MAGNUM_CONFIG")
        .env_remove("MAGNUM_DATABASE_URL")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {port}")), "{err}");
    assert!(!data.exists(), "nothing created before the bind: {err}");

    // No plugins directory: heat refuses to start, local starts and says so.
    let missing = dir.path().join("no-plugins.d");
    let config = dir.path().join("heat.toml");
    std::fs::write(
        &config,
        "[conductor]\norchestrator = \"heat\"\n[api]\npublic_url = \"http://127.0.0.1:9511\"\n\
         [keystone]\nauth_url = \"http://127.0.0.1:1/v3\"\nusername = \"magnum\"\n\
         password = \"x\"\nproject_name = \"service\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin("magnumd"))
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("var-heat"))
        .arg("--plugins-dir")
        .arg(&missing)
        .env_remove("MAGNUM_DATABASE_URL")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no-plugins.d does not exist: no driver can load"),
        "{err}"
    );
    let mut server = Magnumd::start(&missing, &dir.path().join("var-local"));
    let log = server.log();
    assert!(
        log.contains("no-plugins.d does not exist") && log.contains("no driver is loaded"),
        "{log}"
    );
    drop(server);

    // magnum-driver-manage reads plugins_dir from --config.
    let config = dir.path().join("magnum.toml");
    std::fs::write(
        &config,
        format!("plugins_dir = \"{}\"\n", plugins.display()),
    )
    .unwrap();
    let out = std::process::Command::new(bin("magnum-driver-manage"))
        .arg("--config")
        .arg(&config)
        .args(["list-drivers", "-f", "value"])
        .env_remove("MAGNUM_PLUGINS_DIR")
        .env_remove("MAGNUM_CONFIG")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        ok(out),
        "k8s_fedora_atomic_v1\nmesos_ubuntu_v1\nswarm_fedora_atomic_v1\n"
    );
}

// Issue 18, item 3: `magnumd policy sample` needs no configuration and
// prints every rule; a policy file with an unknown rule stops the start
// with the rule's name, before anything is created.
#[test]
fn policy_sample_and_a_bad_policy_file() {
    let out = std::process::Command::new(bin("magnumd"))
        .args(["policy", "sample"])
        .env("MAGNUM_CONFIG", "/nonexistent/magnum.toml")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let sample = String::from_utf8_lossy(&out.stdout);
    for (name, default, _) in magnum_host::policy::DEFAULTS {
        assert!(
            sample.contains(&format!("#\"{name}\": \"{default}\"")),
            "{name} missing from the sample"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "\"cluster:craete\": \"role:admin\"\n").unwrap();
    let config = dir.path().join("magnum.toml");
    std::fs::write(
        &config,
        format!("[policy]\nfile = {:?}\n", policy.display().to_string()),
    )
    .unwrap();
    let data = dir.path().join("var");
    let out = std::process::Command::new(bin("magnumd"))
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env_remove("MAGNUM_DATABASE_URL")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown rule 'cluster:craete'"), "{err}");
    assert!(!data.exists(), "nothing created: {err}");
}

// Issue 18, item 6: `log_format = "json"` writes one JSON object per line,
// and a request's lines carry its request id; `log_file` appends to a file
// that SIGHUP reopens, so logrotate may move it away.
#[test]
fn json_logs_to_a_file_that_sighup_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    register_bundled(&plugins);
    let log_file = dir.path().join("magnumd.log");
    let config = dir.path().join("magnum.toml");
    std::fs::write(
        &config,
        format!(
            "log = \"info\"\nlog_format = \"json\"\nlog_file = {:?}\n",
            log_file.display().to_string()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(bin("magnumd"))
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--plugins-dir")
        .arg(&plugins)
        .arg("--data-dir")
        .arg(dir.path().join("var"))
        .env_remove("MAGNUM_LOG")
        .env_remove("MAGNUM_CONFIG")
        .env_remove("MAGNUM_DATABASE_URL")
        .env_remove("MAGNUM_BIND")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Every line of `path` as JSON, once `found` holds for one (20 s at most).
    let wait_for = |path: &std::path::Path, found: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
                .collect();
            if lines.iter().any(found) {
                return lines;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not found in {}:\n{text}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let lines = wait_for(&log_file, &|l| l["fields"]["listening"].is_string());
    let addr = lines
        .iter()
        .find_map(|l| l["fields"]["listening"].as_str())
        .unwrap()
        .to_owned();
    let id = "req-0f8e2c44-6a4b-4f1e-9d8a-2b6c1e0a9f31";
    let (head, _) = http_get_with(
        &addr,
        "/v1/clustertemplates",
        &format!("X-OpenStack-Request-ID: {id}\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lines = wait_for(&log_file, &|l| l["target"] == "magnum::access");
    let access = lines
        .iter()
        .find(|l| l["target"] == "magnum::access")
        .unwrap();
    assert_eq!(access["span"]["id"], id, "{access}");
    assert_eq!(access["fields"]["path"], "/v1/clustertemplates");
    assert_eq!(access["fields"]["status"], 200);
    assert_eq!(access["level"], "INFO");

    // logrotate: move the file away, SIGHUP, and the log goes on in a new
    // file at the configured path; the moved one keeps the old lines.
    let rotated = dir.path().join("magnumd.log.1");
    std::fs::rename(&log_file, &rotated).unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    wait_for(&log_file, &|l| {
        l["fields"]["message"] == "SIGHUP: log file reopened"
    });
    let (head, _) = http_get(&addr, "/healthcheck");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    wait_for(&log_file, &|l| l["fields"]["path"] == "/healthcheck");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains(id) && !old.contains("/healthcheck"), "{old}");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Nothing went to stderr: the file has the log.
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.is_empty(), "{err}");
}

// Issue 18, item 7: `magnumd config sample` is a file `config check` and
// `serve` accept as it is; `config check` names the first problem.
#[test]
fn config_sample_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin("magnumd"))
        .args(["config", "sample"])
        .env("MAGNUM_CONFIG", "/nonexistent/magnum.toml")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let sample = dir.path().join("magnum.toml");
    std::fs::write(&sample, &out.stdout).unwrap();
    let check = |file: &std::path::Path| {
        std::process::Command::new(bin("magnumd"))
            .args(["config", "check"])
            .arg(file)
            .env_remove("MAGNUM_CONFIG")
            .output()
            .unwrap()
    };
    let out = check(&sample);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains(": ok") && said.contains("orchestrator      local"),
        "{said}"
    );

    // serve starts from the sample as it is (data_dir overridden by flag).
    let plugins = dir.path().join("plugins.d");
    register_bundled(&plugins);
    let server = Magnumd::start_with(&plugins, &dir.path().join("var"), Some(&sample));
    let (head, _) = http_get(&server.addr.clone(), "/v1/clustertemplates");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");

    // Problems are named, with the file.
    for (text, expected) in [
        (
            "[conductor]\nconcurency = 4\n",
            "unknown field `concurency`",
        ),
        (
            "[auth]\nmode = \"ldap\"\n",
            "[auth] mode 'ldap' is not supported",
        ),
        (
            "[conductor]\norchestrator = \"heat\"\n",
            "needs a [keystone] section",
        ),
        (
            "[policy]\nfile = \"/nonexistent/policy.yaml\"\n",
            "cannot read the policy file",
        ),
    ] {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        let out = check(&bad);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{text}: {err}");
        assert!(
            err.contains(expected) && err.contains("bad.toml"),
            "{text}: {err}"
        );
    }
}

// Issue 18, item 4: `magnumd conductor` serves no API; `[metrics] bind`
// gives it /metrics (and /healthcheck) of its own, and `[metrics] enabled =
// false` turns the API's /metrics into a 404.
#[test]
fn a_conductor_alone_serves_metrics_at_its_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    register_bundled(&plugins);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("conductor.toml");
    std::fs::write(&config, format!("[metrics]\nbind = \"{addr}\"\n")).unwrap();
    let server = Magnumd::conductor(&plugins, &dir.path().join("var"), &config);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (head, body) = loop {
        let answer = std::panic::catch_unwind(|| http_get(&addr, "/metrics"));
        match answer {
            Ok(a) => break a,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => std::panic::resume_unwind(e),
        }
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.contains("magnum_db_pool_connections{state=\"max\"}"),
        "{body}"
    );
    let (head, _) = http_get(&addr, "/healthcheck");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, _) = http_get(&addr, "/v1/clusters");
    assert!(head.starts_with("HTTP/1.1 404"), "no API here: {head}");
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");

    let config = dir.path().join("off.toml");
    std::fs::write(&config, "[metrics]\nenabled = false\n").unwrap();
    let server = Magnumd::start_with(&plugins, &dir.path().join("var2"), Some(&config));
    let (head, _) = http_get(&server.addr.clone(), "/metrics");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    drop(server);
}

// Issue 17, item 4: magnum-driver-manage commands take effect in a running
// magnumd without a restart (plugins.d is checked every few seconds):
// disable and enable, and the draining state, in which a driver takes no
// new templates or clusters while its existing clusters keep being
// operated.
#[test]
fn driver_changes_apply_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    register_bundled(&plugins);
    let config = dir.path().join("magnum.toml");
    std::fs::write(
        &config,
        "[local]\nboot_seconds = 0.2\ndelete_seconds = 0.1\n[certificates]\nkey_algorithm = \"ecdsa-p256\"\n",
    )
    .unwrap();
    let mut server = Magnumd::start_with(&plugins, &dir.path().join("var"), Some(&config));
    let addr = server.addr.clone();
    let status = |head: &str| {
        head.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    };
    // Polls `f` until it holds (15 s at most): the check runs every 3 s.
    let eventually = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let template = |name: &str, coe: &str, image: &str| {
        serde_json::json!({"name": name, "coe": coe, "image_id": image,
            "external_network_id": "public", "flavor_id": "m1.small", "keypair_id": "default"})
    };
    // Disabled on disk: mesos templates are refused, without a restart.
    ok(manage(&plugins, &["disable", "mesos_ubuntu_v1", "--force"]));
    eventually("mesos refused after disable", &|| {
        let (head, _) = http_post(
            &addr,
            "/v1/clustertemplates",
            &template("m", "mesos", "ubuntu-mesos"),
        );
        status(&head) == "400"
    });
    ok(manage(&plugins, &["enable", "mesos_ubuntu_v1"]));
    eventually("mesos accepted after enable", &|| {
        let (head, _) = http_post(
            &addr,
            "/v1/clustertemplates",
            &template("m", "mesos", "ubuntu-mesos"),
        );
        status(&head) == "201"
    });

    // A k8s cluster, then the k8s driver drains.
    let (head, body) = http_post(
        &addr,
        "/v1/clustertemplates",
        &template("k", "kubernetes", "fedora-atomic-latest"),
    );
    assert_eq!(status(&head), "201", "{body}");
    let (head, body) = http_post(
        &addr,
        "/v1/clusters",
        &serde_json::json!({"name": "c1", "cluster_template_id": "k", "node_count": 1}),
    );
    assert_eq!(status(&head), "202", "{body}");
    let uuid = json(&body)["uuid"].as_str().unwrap().to_owned();
    let cluster_status = || {
        json(&http_get(&addr, &format!("/v1/clusters/{uuid}")).1)["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    eventually("c1 created", &|| cluster_status() == "CREATE_COMPLETE");
    ok(manage(&plugins, &["drain", "k8s_fedora_atomic_v1"]));
    eventually("new k8s clusters refused while draining", &|| {
        let (head, body) = http_post(
            &addr,
            "/v1/clusters",
            &serde_json::json!({"name": "c2", "cluster_template_id": "k"}),
        );
        status(&head) == "400" && body.contains("k8s_fedora_atomic_v1 is draining")
    });
    let (head, body) = http_post(
        &addr,
        "/v1/clustertemplates",
        &template("k2", "kubernetes", "fedora-atomic-latest"),
    );
    assert_eq!(status(&head), "400", "no new templates either: {body}");
    // The existing cluster is still operated: a resize goes through.
    let (head, body) = http_post(
        &addr,
        &format!("/v1/clusters/{uuid}/actions/resize"),
        &serde_json::json!({"node_count": 2}),
    );
    assert_eq!(status(&head), "202", "{body}");
    eventually("c1 resized", &|| cluster_status() == "UPDATE_COMPLETE");
    let (_, body) = http_get(&addr, &format!("/v1/clusters/{uuid}"));
    assert_eq!(json(&body)["node_count"], 2);
    ok(manage(&plugins, &["undrain", "k8s_fedora_atomic_v1"]));
    eventually("new k8s clusters accepted again", &|| {
        let (head, _) = http_post(
            &addr,
            "/v1/clusters",
            &serde_json::json!({"name": "c3", "cluster_template_id": "k", "node_count": 1}),
        );
        status(&head) == "202"
    });
    let log = server.log();
    assert!(
        log.contains("plugins.d changed; drivers reloaded")
            && log.contains("k8s_fedora_atomic_v1: draining")
            && log.contains("mesos_ubuntu_v1: disabled"),
        "{log}"
    );
    let (exit, log) = server.stop();
    assert!(exit.success(), "{log}");
}
