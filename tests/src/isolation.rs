//! Issue 17, items 1 and 4: drivers in process isolation, through a real
//! `magnumd serve`, the real loader and the fake driver's `.so`. A driver
//! that segfaults, aborts, overflows its stack, loops for ever or
//! allocates without bound costs the one call it did it in; the service
//! keeps serving and the driver's next call gets a new runner.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::{
    bundled::{http_get, http_post, json},
    support::*,
};

/// A config for a fast local cloud whose catalog has an image of the fake
/// driver's os (`fake-os`), with driver calls cut at `timeout` seconds.
fn config(dir: &Path, timeout: u64) -> std::path::PathBuf {
    let path = dir.join("magnum.toml");
    std::fs::write(
        &path,
        format!(
            "log = \"info\"\n\
             [local]\nboot_seconds = 0.2\ndelete_seconds = 0.1\n\
             [certificates]\nkey_algorithm = \"ecdsa-p256\"\n\
             [drivers]\ncall_timeout_seconds = {timeout}\n\
             [[catalog.images]]\nid = \"fake-image\"\nname = \"fake-image\"\nos_distro = \"fake-os\"\n\
             [[catalog.images]]\nid = \"ubuntu-mesos\"\nname = \"ubuntu-mesos\"\nos_distro = \"ubuntu\"\n"
        ),
    )
    .unwrap();
    path
}

fn status(head: &str) -> String {
    head.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// Polls cluster `uuid` until its status is one of `wanted` (30 s at most).
fn wait_for(addr: &str, uuid: &str, wanted: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = http_get(addr, &format!("/v1/clusters/{uuid}"));
        let cluster = json(&body);
        let now = cluster["status"].as_str().unwrap_or_default();
        if wanted.contains(&now) {
            return cluster;
        }
        assert!(
            Instant::now() < deadline,
            "cluster {uuid} never reached {wanted:?}: {cluster}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// POSTs a cluster of template `fake` and returns its uuid.
fn create(addr: &str, name: &str) -> String {
    let (head, body) = http_post(
        addr,
        "/v1/clusters",
        &json!({"name": name, "cluster_template_id": "fake", "node_count": 1}),
    );
    assert_eq!(status(&head), "202", "create {name}: {body}");
    json(&body)["uuid"].as_str().unwrap().to_owned()
}

fn fake_template(addr: &str) {
    let (head, body) = http_post(
        addr,
        "/v1/clustertemplates",
        &crate::api::template_body("fake", "fake", "fake-image"),
    );
    assert_eq!(status(&head), "201", "{body}");
}

#[test]
fn process_isolation_each_crash_costs_one_call_and_the_service_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    // A copy, to be overwritten in place below.
    let lib = dir.path().join("libfake.so");
    std::fs::copy(workspace_lib("magnum_fixture_fake_driver"), &lib).unwrap();
    let said = ok(manage(
        &plugins,
        &[
            "register",
            lib.to_str().unwrap(),
            "--enable",
            "--isolation",
            "process",
            "--driver-config",
            "crash_by_name=true",
        ],
    ));
    assert!(said.contains("isolation process"), "{said}");
    let listed = ok(manage(&plugins, &["list-drivers", "--all", "-f", "csv"]));
    assert!(listed.contains("\"fake\",\"true\",\"process\""), "{listed}");

    let server = Magnumd::start_with(
        &plugins,
        &dir.path().join("var"),
        Some(&config(dir.path(), 2)),
    );
    let addr = server.addr.clone();
    let pid = server.pid();
    // Template validation already goes through a runner.
    fake_template(&addr);

    let cases = [
        ("segfault", "runner killed by SIGSEGV during create_cluster"),
        ("abort", "runner killed by SIGABRT during create_cluster"),
        ("overflow", "has overflowed its stack"),
        (
            "loop",
            "runner killed at the 2 s deadline during create_cluster",
        ),
        ("alloc", "memory allocation of"),
    ];
    for (n, (kind, reason)) in cases.into_iter().enumerate() {
        let uuid = create(&addr, &format!("{kind}-1"));
        let failed = wait_for(&addr, &uuid, &["CREATE_FAILED", "CREATE_COMPLETE"]);
        assert_eq!(failed["status"], "CREATE_FAILED", "{kind}: {failed}");
        let why = failed["status_reason"].as_str().unwrap_or_default();
        assert!(
            why.contains("driver fake: runner") && why.contains(reason),
            "{kind}: expected '{reason}' in '{why}'"
        );
        // The service is still this process, and serves.
        assert_eq!(server.pid(), pid);
        let (head, _) = http_get(&addr, "/healthcheck");
        assert_eq!(status(&head), "200", "after {kind}");
        // The driver's next call gets a new runner and works.
        let uuid = create(&addr, &format!("ok-after-{kind}"));
        let done = wait_for(&addr, &uuid, &["CREATE_FAILED", "CREATE_COMPLETE"]);
        assert_eq!(done["status"], "CREATE_COMPLETE", "after {kind}: {done}");
        if n == 0 {
            // Overwritten in place (a careless package upgrade): runners
            // started from now on still run the bytes checked at load.
            let other = std::fs::read(workspace_lib(BUNDLED[1])).unwrap();
            std::fs::write(&lib, other).unwrap();
        }
    }
    let (exit, log) = server.stop();
    assert!(exit.success(), "magnumd stopped cleanly: {exit}\n{log}");
    // The crash is logged as an error once, naming the runner's pid.
    let logged: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("runner killed by SIGSEGV"))
        .collect();
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert!(logged[0].contains("pid="), "{}", logged[0]);
}

// Without a runner, the endless loop cannot be killed: the deadline
// abandons it on its thread and fails the operation; the driver's next
// call works.
#[test]
fn in_process_an_endless_loop_is_cut_by_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    let lib = workspace_lib("magnum_fixture_fake_driver");
    ok(manage(
        &plugins,
        &[
            "register",
            lib.to_str().unwrap(),
            "--enable",
            "--driver-config",
            "crash_by_name=true",
        ],
    ));
    let server = Magnumd::start_with(
        &plugins,
        &dir.path().join("var"),
        Some(&config(dir.path(), 1)),
    );
    let addr = server.addr.clone();
    fake_template(&addr);
    let started = Instant::now();
    let uuid = create(&addr, "loop-1");
    let failed = wait_for(&addr, &uuid, &["CREATE_FAILED", "CREATE_COMPLETE"]);
    assert_eq!(failed["status"], "CREATE_FAILED", "{failed}");
    let why = failed["status_reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("driver fake did not answer create_cluster within 1 s"),
        "{why}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let (head, _) = http_get(&addr, "/healthcheck");
    assert_eq!(status(&head), "200");
    let uuid = create(&addr, "ok-1");
    let done = wait_for(&addr, &uuid, &["CREATE_FAILED", "CREATE_COMPLETE"]);
    assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
    // The looping thread spins on: a kill, not a clean stop, ends it.
    drop(server);
}

// Issue 17, item 4 with process isolation: while clusters are being
// created (their create_cluster calls held in the old runners), a second
// driver is enabled and the first re-registered from a new library file
// with another configuration. Without a restart, new creates use the new
// registration; the calls in flight finish on the old runners and their
// clusters complete.
#[test]
fn an_upgrade_and_an_enable_while_creates_run_fail_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    let v1 = workspace_lib("magnum_fixture_fake_driver");
    ok(manage(
        &plugins,
        &[
            "register",
            v1.to_str().unwrap(),
            "--enable",
            "--isolation",
            "process",
            "--driver-config",
            "hang_in=create_cluster",
            "--driver-config",
            "hang_ms=6000",
        ],
    ));
    let mesos = workspace_lib(BUNDLED[2]);
    ok(manage(&plugins, &["register", mesos.to_str().unwrap()]));
    let mut server = Magnumd::start_with(
        &plugins,
        &dir.path().join("var"),
        Some(&config(dir.path(), 20)),
    );
    let addr = server.addr.clone();
    fake_template(&addr);
    let posted = Instant::now();
    let old: Vec<String> = ["old-1", "old-2"]
        .iter()
        .map(|n| create(&addr, n))
        .collect();

    // A new library file (the same code with other bytes: another sha256),
    // registered over the running one, and a second driver enabled.
    let v2 = dir.path().join("libfake-v2.so");
    let mut bytes = std::fs::read(&v1).unwrap();
    bytes.extend_from_slice(b"\0version 2");
    std::fs::write(&v2, bytes).unwrap();
    let said = ok(manage(
        &plugins,
        &[
            "register",
            v2.to_str().unwrap(),
            "--replace",
            "--name",
            "fake",
            "--driver-config",
            "hang_in=none",
        ],
    ));
    assert!(
        said.contains("isolation process"),
        "kept from the replaced registration: {said}"
    );
    ok(manage(&plugins, &["enable", "mesos_ubuntu_v1"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("plugins.d changed; drivers reloaded") {
        assert!(Instant::now() < deadline, "no reload:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The old creates are still held in their calls.
    for uuid in &old {
        let (_, body) = http_get(&addr, &format!("/v1/clusters/{uuid}"));
        assert_eq!(json(&body)["status"], "CREATE_IN_PROGRESS", "{body}");
    }
    // New creates use the new registration (which does not hang) ...
    let started = Instant::now();
    let new = create(&addr, "new-1");
    let done = wait_for(&addr, &new, &["CREATE_FAILED", "CREATE_COMPLETE"]);
    assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the new registration answered at once: {:?}",
        started.elapsed()
    );
    // ... the second driver takes templates without a restart ...
    let (head, body) = http_post(
        &addr,
        "/v1/clustertemplates",
        &crate::api::template_body("m", "mesos", "ubuntu-mesos"),
    );
    assert_eq!(status(&head), "201", "{body}");
    // ... and the calls in flight finish on the old runners (the old
    // registration's 6 s in create_cluster shows which one they ran on).
    for uuid in &old {
        let done = wait_for(&addr, uuid, &["CREATE_FAILED", "CREATE_COMPLETE"]);
        assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
    }
    assert!(
        posted.elapsed() >= Duration::from_secs(6),
        "the old creates ran on the old registration: {:?}",
        posted.elapsed()
    );
    let (exit, log) = server.stop();
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("fake: library replaced") && log.contains("mesos_ubuntu_v1: enabled"),
        "{log}"
    );
}
