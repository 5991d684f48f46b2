//! Every loader failure, each with a real file or library, side by side with a
//! good driver that must still load; duplicate tuples; panics in operations.

use std::{collections::BTreeMap, fs, path::Path};

use magnum_driver_abi::{capability as op, payload::*, ErrorKind, Provides};
use magnum_host::plugins::{
    manifest::{self, Manifest, Registered},
    DriverState, Registry,
};

use crate::support::*;

/// A cluster request of `node_count` nodes for the fake driver.
fn fake_request(node_count: i64) -> ClusterRequest {
    ClusterRequest {
        template: ClusterTemplate {
            coe: "fake".into(),
            ..Default::default()
        },
        cluster: Cluster {
            name: "c1".into(),
            uuid: "0b1f6a52-3c1d-4e7a-9f0b-2d6c8e4a5b01".into(),
            node_count,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn manifest_for(name: &str, library: &Path, config: &[(&str, &str)]) -> Manifest {
    Manifest {
        name: name.into(),
        library: library.to_owned(),
        sha256: manifest::sha256_file(library).unwrap_or_else(|_| "0".repeat(64)),
        enabled: true,
        draining: false,
        isolation: Default::default(),
        abi: "^1.0".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
            .collect::<BTreeMap<_, _>>(),
        registered: Registered {
            version: "0.1.0".into(),
            abi_version: "1.0.0".into(),
            provides: vec![Provides::new("vm", name, name)],
            registered_at: "2026-11-22T00:00:00Z".into(),
            ..Default::default()
        },
    }
}

fn reason<'a>(registry: &'a Registry, name: &str) -> &'a str {
    let entry = registry
        .entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no entry {name}"));
    match &entry.state {
        DriverState::Failed(reason) => reason,
        other => panic!("{name} should have failed, is {other:?}"),
    }
}

#[test]
fn each_broken_driver_fails_alone_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    let fake = workspace_lib("magnum_fixture_fake_driver");
    let compat = build_external("tests/fixtures/abi-compat/major2-driver");
    build_external("tests/fixtures/abi-compat/bad-layout");

    // The good one.
    manifest::write(plugins, &manifest_for("good", &fake, &[])).unwrap();
    // Missing file.
    manifest::write(
        plugins,
        &manifest_for("missing", &plugins.join("nope.so"), &[]),
    )
    .unwrap();
    // Not a shared library at all.
    let text = plugins.join("text.so");
    fs::write(&text, "this is not an ELF file\n").unwrap();
    manifest::write(plugins, &manifest_for("notelf", &text, &[])).unwrap();
    // A shared library without our root module.
    let plain = workspace_lib("magnum_fixture_no_root_module");
    manifest::write(plugins, &manifest_for("noroot", &plain, &[])).unwrap();
    // Built against ABI 2.0.
    let major2 = compat.join("libmagnum_fixture_major2_driver.so");
    manifest::write(plugins, &manifest_for("major2", &major2, &[])).unwrap();
    // Claims ABI 1.0.0 with another root-module layout.
    let bad = compat.join("libmagnum_fixture_bad_layout.so");
    manifest::write(plugins, &manifest_for("layout", &bad, &[])).unwrap();
    // A copy changed after registration.
    let copy = plugins.join("copy.so");
    fs::copy(&fake, &copy).unwrap();
    manifest::write(plugins, &manifest_for("changed", &copy, &[])).unwrap();
    let mut bytes = fs::read(&copy).unwrap();
    bytes.extend_from_slice(b"tampered");
    fs::write(&copy, bytes).unwrap();
    // Constructors that fail and panic.
    manifest::write(
        plugins,
        &manifest_for("ctorerr", &fake, &[("constructor", "error")]),
    )
    .unwrap();
    manifest::write(
        plugins,
        &manifest_for("ctorpanic", &fake, &[("constructor", "panic")]),
    )
    .unwrap();
    // Manifests that are not TOML, lack fields, or have unknown ones.
    fs::write(
        plugins.join("nottoml.toml"),
        "name = \"nottoml\"\nthis is not toml",
    )
    .unwrap();
    fs::write(
        plugins.join("partial.toml"),
        "name = \"partial\"\nenabled = true\n",
    )
    .unwrap();

    let registry = Registry::load(plugins).expect("a broken driver never fails the whole load");
    let loaded: Vec<&str> = registry.loaded().map(|d| d.name()).collect();
    assert_eq!(loaded, ["good"], "only the good driver loads");

    let expect = [
        ("missing", "does not exist"),
        ("notelf", "is not a loadable shared library"),
        ("noroot", "not a magnum driver (no abi_stable root module)"),
        ("major2", "incompatible driver ABI: library built against magnum-driver-abi 2.0.0, this host speaks 1.2.0"),
        ("layout", "incompatible driver ABI layout"),
        ("changed", "changed after registration"),
        ("ctorerr", "driver constructor failed: invalid config.constructor: scripted constructor error"),
        ("ctorpanic", "driver panicked in new: scripted constructor panic"),
        ("nottoml", "bad manifest"),
        ("partial", "bad manifest: line 1: missing field `library`"),
    ];
    for (name, text) in expect {
        let why = reason(&registry, name);
        assert!(why.contains(text), "{name}: expected '{text}' in '{why}'");
        assert!(
            !why.contains('\n'),
            "{name}: reason must be one line: {why}"
        );
    }

    // The operator sees the same reasons, one line each, and exit status 1.
    let out = manage(plugins, &["verify"]);
    let err = fails(out);
    for (name, _) in expect
        .iter()
        .filter(|(n, _)| !matches!(*n, "nottoml" | "partial"))
    {
        assert!(
            err.contains(&format!("FAIL {name}:")),
            "verify must report {name}: {err}"
        );
    }
    let listed = ok(manage(plugins, &["list-drivers", "--all", "-f", "csv"]));
    assert!(
        listed.contains("\"partial\",\"broken: bad manifest"),
        "{listed}"
    );
}

#[test]
fn register_refuses_what_cannot_load_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    let text = dir.path().join("text.so");
    fs::write(&text, "plain text").unwrap();
    let plain = workspace_lib("magnum_fixture_no_root_module");
    for (path, why) in [
        (dir.path().join("absent.so"), "does not exist"),
        (text, "is not a loadable shared library"),
        (plain, "not a magnum driver"),
    ] {
        let err = fails(manage(&plugins, &["register", path.to_str().unwrap()]));
        assert!(err.contains(why), "expected '{why}' in '{err}'");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    let fake = workspace_lib("magnum_fixture_fake_driver");
    let err = fails(manage(
        &plugins,
        &[
            "register",
            fake.to_str().unwrap(),
            "--driver-config",
            "constructor=panic",
        ],
    ));
    assert!(err.contains("driver panicked in new"), "{err}");
    assert!(
        manifest::read_dir(&plugins).unwrap().is_empty(),
        "nothing registered"
    );
}

#[test]
fn two_enabled_drivers_never_share_a_tuple() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    let fake = workspace_lib("magnum_fixture_fake_driver");
    let fake = fake.to_str().unwrap();
    ok(manage(plugins, &["register", fake, "--enable"]));
    ok(manage(plugins, &["register", fake, "--name", "fake_copy"]));
    let err = fails(manage(plugins, &["enable", "fake_copy"]));
    assert!(
        err.contains(
            "cannot enable fake_copy: enabled driver fake already provides (vm, fake-os, fake)"
        ),
        "{err}"
    );
    let err = fails(manage(
        plugins,
        &["register", fake, "--name", "fake_third", "--enable"],
    ));
    assert!(
        err.contains("fake_third") && err.contains("enabled driver fake"),
        "{err}"
    );

    // After disabling the first, the copy may be enabled (no database here:
    // --force skips the clusters-in-use check).
    ok(manage(plugins, &["disable", "fake", "--force"]));
    ok(manage(plugins, &["enable", "fake_copy"]));
    let names = ok(manage(plugins, &["list-drivers", "-f", "value"]));
    assert_eq!(names, "fake_copy\n");

    // Hand-edited manifests that collide: the host refuses the later one by name.
    let mut m = Manifest::parse(&fs::read_to_string(plugins.join("fake.toml")).unwrap()).unwrap();
    m.enabled = true;
    manifest::write(plugins, &m).unwrap();
    let registry = Registry::load(plugins).unwrap();
    let why = reason(&registry, "fake_copy");
    assert!(
        why.contains("enabled driver fake already provides"),
        "{why}"
    );
    assert_eq!(registry.loaded().count(), 1);
}

#[test]
fn a_panic_in_an_operation_is_an_error_for_that_operation_only() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    let fake = workspace_lib("magnum_fixture_fake_driver");
    ok(manage(
        plugins,
        &[
            "register",
            fake.to_str().unwrap(),
            "--enable",
            "--driver-config",
            "panic_in=create_cluster",
        ],
    ));
    let registry = Registry::load(plugins).unwrap();
    let driver = registry.get("fake").expect("fake loads");

    let req = fake_request(2);
    for _ in 0..3 {
        let err = driver.create_cluster(&req).expect_err("scripted panic");
        assert_eq!(err.kind, ErrorKind::PANICKED);
        assert_eq!(err.operation.as_str(), op::CREATE_CLUSTER);
        assert!(
            err.message.contains("scripted panic in create_cluster"),
            "{err}"
        );
    }
    // The same driver instance still answers its other operations.
    let plan: StackPlan = driver
        .call(op::DELETE_CLUSTER, &req)
        .expect("delete still works");
    assert_eq!(plan.operations[0].action, StackAction::Delete);
    // Undeclared operations are refused by the host without calling the driver.
    let err = driver
        .call::<_, StackPlan>(op::UPGRADE_CLUSTER, &req)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNSUPPORTED);
    assert!(
        err.message.contains("not supported by driver fake"),
        "{err}"
    );
}

#[test]
fn re_registration_needs_replace_and_keeps_the_operators_choice() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    let fake = workspace_lib("magnum_fixture_fake_driver");
    let fake = fake.to_str().unwrap();
    ok(manage(plugins, &["register", fake, "--enable"]));
    let err = fails(manage(plugins, &["register", fake]));
    assert!(err.contains("already registered; use --replace"), "{err}");

    ok(manage(plugins, &["disable", "fake", "--force"]));
    let said = ok(manage(plugins, &["register", fake, "--replace"]));
    assert!(
        said.ends_with("disabled\n"),
        "a disabled driver stays disabled: {said}"
    );

    // A broken manifest is repaired by --replace, and only by it.
    fs::write(plugins.join("fake.toml"), "garbage").unwrap();
    fails(manage(plugins, &["register", fake]));
    ok(manage(
        plugins,
        &["register", fake, "--replace", "--enable"],
    ));
    let registry = Registry::load(plugins).unwrap();
    assert!(registry.get("fake").is_some());

    let err = fails(manage(plugins, &["enable", "nosuch"]));
    assert!(err.contains("no driver named nosuch"), "{err}");
    let err = fails(manage(plugins, &["unregister", "nosuch"]));
    assert!(err.contains("no driver named nosuch"), "{err}");
    ok(manage(plugins, &["unregister", "fake", "--force"]));
    assert!(!plugins.join("fake.toml").exists());
}

#[test]
fn a_driver_that_owns_clusters_is_kept_unless_forced() {
    use magnum_host::db::{
        self,
        models::{
            cluster::{Cluster, NewCluster},
            cluster_template::{ClusterTemplate, NewClusterTemplate},
        },
        DbPool,
    };
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    let fake = workspace_lib("magnum_fixture_fake_driver");
    ok(manage(
        plugins,
        &["register", fake.to_str().unwrap(), "--enable"],
    ));

    let url = format!("sqlite://{}", dir.path().join("magnum.sqlite").display());
    let pool = DbPool::connect(&url).unwrap();
    let mut conn = pool.get().unwrap();
    db::migrate(&mut conn).unwrap();
    let t = ClusterTemplate::insert(
        &mut conn,
        &NewClusterTemplate::new("p1", "u1", "t1", "fake", "img"),
    )
    .unwrap();
    Cluster::insert(
        &mut conn,
        &NewCluster::new("p1", "u1", "c1", &t.uuid, "fake"),
    )
    .unwrap();
    drop(conn);

    for command in ["disable", "unregister"] {
        let err = fails(manage(plugins, &["--database-url", &url, command, "fake"]));
        assert!(
            err.contains("driver fake still owns 1 cluster(s)"),
            "{command}: {err}"
        );
    }
    assert!(
        Registry::load(plugins).unwrap().get("fake").is_some(),
        "still enabled"
    );
    // Nor is a database that is not there: a wrong (or no) --data-dir looks
    // just like that.
    let err = fails(manage(
        plugins,
        &["--data-dir", "/nonexistent/magnum", "disable", "fake"],
    ));
    assert!(
        err.contains("cannot check whether clusters still use driver fake")
            && err.contains("/nonexistent/magnum/magnum.sqlite does not exist")
            && err.contains("--force"),
        "{err}"
    );
    // An unreachable database is no licence to strand clusters either.
    let err = fails(manage(
        plugins,
        &[
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "disable",
            "fake",
        ],
    ));
    assert!(
        err.contains("cannot check whether clusters still use driver fake"),
        "{err}"
    );
    assert!(!err.contains("password"), "{err}");

    ok(manage(
        plugins,
        &["--database-url", &url, "disable", "fake", "--force"],
    ));
    ok(manage(
        plugins,
        &["--database-url", &url, "unregister", "fake", "--force"],
    ));
}

// Issue 17, item 2: every driver call has a deadline. A call past it is
// abandoned on its thread and fails that operation with the driver named;
// three in a row mark the driver unhealthy: its new work is refused at once
// (not after another deadline) and `list-drivers` says so, until a probe
// call answers again.
#[test]
fn a_driver_that_stops_answering_is_cut_off_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    let fake = workspace_lib("magnum_fixture_fake_driver");
    ok(manage(
        &plugins,
        &[
            "register",
            fake.to_str().unwrap(),
            "--enable",
            "--driver-config",
            "hang_in=create_cluster",
            "--driver-config",
            "hang_ms=1500",
        ],
    ));
    let registry = Registry::load(&plugins).unwrap();
    let driver = registry.get("fake").expect("fake loads");
    driver.set_deadline(std::time::Duration::from_millis(300));
    let data = dir.path().join("var");
    driver.report_health_in(magnum_host::plugins::health_dir(&data));
    let req = fake_request(2);
    for n in 1..=3 {
        let started = std::time::Instant::now();
        let err = driver.create_cluster(&req).expect_err("past its deadline");
        let took = started.elapsed();
        assert!(
            err.message
                .contains("driver fake did not answer create_cluster within 0.3 s"),
            "{err}"
        );
        assert!(
            took < std::time::Duration::from_millis(1400),
            "call {n} took {took:?}"
        );
        assert_eq!(driver.health_report().healthy, n < 3);
    }
    assert_eq!(driver.health_report().abandoned_calls, 3);
    // Unhealthy: other operations are refused at once, naming why.
    let started = std::time::Instant::now();
    let err = driver
        .call::<_, StackPlan>(op::DELETE_CLUSTER, &req)
        .expect_err("refused while unhealthy");
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
    assert!(
        err.message.contains("driver fake is unhealthy since")
            && err.message.contains("delete_cluster is refused"),
        "{err}"
    );
    // list-drivers, reading this process's report, says so on stderr.
    let out = std::process::Command::new(bin("magnum-driver-manage"))
        .arg("--plugins-dir")
        .arg(&plugins)
        .arg("--data-dir")
        .arg(&data)
        .args(["list-drivers"])
        .env_remove("MAGNUM_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("warning: driver fake is UNHEALTHY in magnumd pid")
            && err.contains("3 calls in a row did not answer within 0.3 s"),
        "{err}"
    );
    assert!(stdout(&out).contains("fake"), "the table is unchanged");
    // After two deadlines one call goes through; the driver answers it
    // (delete does not hang) and is healthy again. The abandoned threads
    // finish on their own.
    std::thread::sleep(driver.probe_every());
    let plan: StackPlan = driver
        .call(op::DELETE_CLUSTER, &req)
        .expect("the probe call answers");
    assert_eq!(plan.operations[0].action, StackAction::Delete);
    assert!(driver.health_report().healthy);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while driver.health_report().abandoned_calls > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "abandoned calls never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = std::process::Command::new(bin("magnum-driver-manage"))
        .arg("--plugins-dir")
        .arg(&plugins)
        .arg("--data-dir")
        .arg(&data)
        .args(["list-drivers"])
        .env_remove("MAGNUM_CONFIG")
        .output()
        .unwrap();
    assert!(!stderr(&out).contains("UNHEALTHY"), "{}", stderr(&out));
}

// Issue 17, item 4: a reload keeps the instances of unchanged drivers and
// builds a new one for a driver registered anew (`register --replace`); the
// old instance keeps answering the operations that already hold it, as a
// running job does.
#[test]
fn a_reload_replaces_only_what_changed_and_old_instances_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    register_bundled(&plugins);
    let fake = workspace_lib("magnum_fixture_fake_driver");
    ok(manage(
        &plugins,
        &["register", fake.to_str().unwrap(), "--enable"],
    ));
    let before = Registry::load(&plugins).unwrap();
    let old_fake = before.get("fake").cloned().expect("fake loads");
    let req = fake_request(1);
    old_fake
        .create_cluster(&req)
        .expect("the first instance plans");

    // Registered anew, with a configuration that makes create panic.
    ok(manage(
        &plugins,
        &[
            "register",
            fake.to_str().unwrap(),
            "--replace",
            "--driver-config",
            "panic_in=create_cluster",
        ],
    ));
    let after = before.reload(&plugins).unwrap();
    let new_fake = after.get("fake").cloned().expect("fake reloads");
    assert!(
        !std::sync::Arc::ptr_eq(&old_fake, &new_fake),
        "a new instance"
    );
    let err = new_fake
        .create_cluster(&req)
        .expect_err("new configuration");
    assert_eq!(err.kind, ErrorKind::PANICKED);
    // The old instance, still held, answers as before.
    old_fake
        .create_cluster(&req)
        .expect("the old instance still plans");
    // The bundled drivers did not change: the same instances.
    for name in [
        "k8s_fedora_atomic_v1",
        "swarm_fedora_atomic_v1",
        "mesos_ubuntu_v1",
    ] {
        assert!(
            std::sync::Arc::ptr_eq(before.get(name).unwrap(), after.get(name).unwrap()),
            "{name} was reloaded"
        );
    }
    // Disabled: gone from the next registry, not from holders of the old.
    ok(manage(&plugins, &["disable", "fake", "--force"]));
    let disabled = after.reload(&plugins).unwrap();
    assert!(disabled.get("fake").is_none());
    assert!(matches!(
        disabled
            .entries
            .iter()
            .find(|e| e.name == "fake")
            .map(|e| &e.state),
        Some(DriverState::Disabled)
    ));
    old_fake
        .create_cluster(&req)
        .expect("held instances live on");
}

// Issue 17, item 1: a driver in process isolation goes through the same
// loader checks (in its runner) with the same reasons, and its calls give
// the same answers and errors, a driver's panic included.
#[test]
fn process_isolation_loads_with_the_same_checks_and_answers_the_same() {
    use magnum_host::plugins::manifest::Isolation;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    let fake = workspace_lib("magnum_fixture_fake_driver");
    let isolated = |mut m: Manifest| {
        m.isolation = Isolation::Process;
        manifest::write(plugins, &m).unwrap();
    };
    // Chatter on stdout goes to the log, not into the runner's replies.
    isolated(manifest_for(
        "good",
        &fake,
        &[
            ("panic_in", "delete_cluster"),
            ("stdout_in", "create_cluster"),
        ],
    ));
    isolated(manifest_for("ctorerr", &fake, &[("constructor", "error")]));
    let copy = plugins.join("copy.so");
    fs::copy(&fake, &copy).unwrap();
    isolated(manifest_for("changed", &copy, &[]));
    fs::write(&copy, b"tampered").unwrap();
    let notelf = plugins.join("text.so");
    fs::write(&notelf, "not an ELF file").unwrap();
    isolated(manifest_for("notelf", &notelf, &[]));

    let registry = Registry::load(plugins).unwrap();
    for (name, text) in [
        (
            "ctorerr",
            "driver constructor failed: invalid config.constructor: scripted constructor error",
        ),
        ("changed", "changed after registration"),
        ("notelf", "text.so is not a loadable shared library"),
    ] {
        let why = reason(&registry, name);
        assert!(why.contains(text), "{name}: expected '{text}' in '{why}'");
        // The runner's descriptor of the library is named by its path.
        assert!(!why.contains("/proc/self/fd/3"), "{why}");
    }
    let driver = registry.get("good").expect("good loads in a runner");
    assert_eq!(driver.isolation, Isolation::Process);
    assert_eq!(driver.info.name, "fake");
    let req = fake_request(3);
    let plan = driver.create_cluster(&req).expect("a plan from the runner");
    assert_eq!(plan.operations[0].parameters["node_count"], 3);
    let err = driver
        .call::<_, StackPlan>(op::DELETE_CLUSTER, &req)
        .expect_err("scripted panic");
    assert_eq!(err.kind, ErrorKind::PANICKED);
    assert!(
        err.message.contains("scripted panic in delete_cluster"),
        "{err}"
    );
    // A panic is an answer: the same runner goes on serving.
    driver.create_cluster(&req).expect("still answers");
}
