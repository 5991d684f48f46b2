//! Issue 18 item 2: adopting an upstream Magnum database. Upstream Magnum
//! 23.0.0 from PyPI (tests/upstream-magnum/install.sh) makes its schema on
//! this machine's MariaDB with its own `magnum-db-manage upgrade`, and
//! tests/upstream-magnum/fill.py fills it through upstream's object layer
//! and its conductor's certificate code (x509keypair cert manager). Then
//! `magnumd db import` runs on it: a dry run that writes nothing, the import,
//! a second import that finds everything present. The imported clusters are
//! then listed, shown, their CA fetched and a CSR signed with the imported
//! CA key, and deleted, all through the real `openstack coe` client.
//!
//! Needs MariaDB at TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306/),
//! PyPI for the two venvs: without them it skips saying why, except under
//! CI=true, where it fails.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::clients::{client_venv, output_within};
use crate::support::*;

fn harness_dir() -> PathBuf {
    workspace().join("tests/upstream-magnum")
}

/// Skips (returns `None`) or, under CI=true, fails.
fn prerequisite<T>(what: Result<T, String>) -> Option<T> {
    match what {
        Ok(v) => Some(v),
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and the import test cannot run: {why}")
        }
        Err(why) => {
            eprintln!("SKIP upstream_database_is_imported: {why}");
            None
        }
    }
}

fn magnum_venv() -> Result<PathBuf, String> {
    let out = output_within(
        Command::new("bash").arg(harness_dir().join("install.sh")),
        Duration::from_secs(15 * 60),
    );
    if !out.status.success() {
        return Err(format!("install.sh failed: {}", stderr(&out)));
    }
    stdout(&out)
        .lines()
        .last()
        .map(PathBuf::from)
        .ok_or_else(|| "install.sh printed no venv path".to_owned())
}

/// `(user, host, port)` of TEST_MYSQL_URL (mysql://USER@HOST:PORT/).
fn mysql_server() -> (String, String, u16) {
    let url = std::env::var("TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".to_owned());
    let rest = url.trim_start_matches("mysql://");
    let authority = rest.split('/').next().unwrap_or_default();
    let (user, hostport) = authority.split_once('@').unwrap_or(("root", authority));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    (
        user.split(':').next().unwrap_or("root").to_owned(),
        host.to_owned(),
        port.parse().unwrap_or(3306),
    )
}

/// Runs SQL on the server through PyMySQL (from the upstream venv).
fn mysql(venv: &Path, sql: &str) -> Result<(), String> {
    let (user, host, port) = mysql_server();
    let script = format!(
        "import pymysql,sys\nc=pymysql.connect(host={host:?},port={port},user={user:?},connect_timeout=5)\n\
         c.cursor().execute(sys.argv[1])\nc.commit()\n"
    );
    let out = output_within(
        Command::new(venv.join("bin/python"))
            .args(["-c", &script, sql])
            .env("PYTHONWARNINGS", "ignore"),
        Duration::from_secs(60),
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("MariaDB at {host}:{port}: {}", stderr(&out)))
    }
}

fn run_ok(what: &str, cmd: &mut Command) -> String {
    let out = output_within(cmd, Duration::from_secs(600));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn import(plugins: &Path, data_dir: &Path, config: &Path, from: &str, dry: bool) -> String {
    let mut cmd = Command::new(bin("magnumd"));
    cmd.arg("--config")
        .arg(config)
        .arg("--plugins-dir")
        .arg(plugins)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("MAGNUM_CONFIG")
        .env_remove("MAGNUM_DATABASE_URL")
        .args(["db", "import", "--from", from]);
    if dry {
        cmd.arg("--dry-run");
    }
    run_ok("magnumd db import", &mut cmd)
}

/// The `<table>: <verb> N, already present M` line of a report.
fn counts(report: &str, table: &str) -> (usize, usize) {
    let line = report
        .lines()
        .find(|l| l.starts_with(&format!("{table}: ")))
        .unwrap_or_else(|| panic!("no {table} line in:\n{report}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

struct Cli {
    openstack: PathBuf,
    python: PathBuf,
    endpoint: String,
}

impl Cli {
    fn output(&self, args: &[&str]) -> Output {
        output_within(
            Command::new(&self.python)
                .arg(&self.openstack)
                .args([
                    "--os-auth-type",
                    "none",
                    "--os-endpoint",
                    &self.endpoint,
                    "coe",
                ])
                .args(args)
                .env("OS_CLIENT_CONFIG_FILE", "/dev/null")
                .env("PYTHONWARNINGS", "ignore"),
            Duration::from_secs(120),
        )
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "openstack coe {args:?} failed ({}): {}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-f", "json"]);
        let out = self.run(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }
}

#[test]
fn upstream_database_is_imported() {
    let Some(clients) = prerequisite(client_venv()) else {
        return;
    };
    let Some(venv) = prerequisite(magnum_venv()) else {
        return;
    };
    let database = format!("magnum_import_{}", std::process::id());
    let Some(()) = prerequisite(mysql(&venv, &format!("DROP DATABASE IF EXISTS {database}")))
    else {
        return;
    };
    mysql(
        &venv,
        &format!("CREATE DATABASE {database} CHARACTER SET utf8mb4"),
    )
    .unwrap();
    let (user, host, port) = mysql_server();
    // What an operator has in magnum.conf.
    let oslo_url = format!("mysql+pymysql://{user}@{host}:{port}/{database}?charset=utf8");

    let dir = tempfile::tempdir().unwrap();
    let magnum_conf = dir.path().join("magnum.conf");
    std::fs::write(
        &magnum_conf,
        format!("[DEFAULT]\n[database]\nconnection = {oslo_url}\n"),
    )
    .unwrap();
    run_ok(
        "magnum-db-manage upgrade",
        Command::new(venv.join("bin/magnum-db-manage"))
            .arg("--config-file")
            .arg(&magnum_conf)
            .arg("upgrade"),
    );
    let filled: Value = serde_json::from_str(&run_ok(
        "fill.py",
        Command::new(venv.join("bin/python"))
            .arg(harness_dir().join("fill.py"))
            .arg("--config-file")
            .arg(&magnum_conf)
            .env("PYTHONWARNINGS", "ignore"),
    ))
    .expect("fill.py prints JSON");
    let project = filled["project"].as_str().unwrap().to_owned();
    let uuid_of = |name: &str| filled["clusters"][name].as_str().unwrap().to_owned();
    let (prod, web, busy, coreos) = (
        uuid_of("prod"),
        uuid_of("web"),
        uuid_of("busy"),
        uuid_of("coreos"),
    );

    let plugins = dir.path().join("plugins.d");
    register_bundled(&plugins);
    let data_dir = dir.path().join("var");
    let config = dir.path().join("magnum.toml");
    // Noauth acting as the upstream clusters' project, so the CLI sees them
    // as their owner would.
    std::fs::write(
        &config,
        format!("log = \"info\"\n[auth]\ndefault_project_id = \"{project}\"\n"),
    )
    .unwrap();

    // A dry run reports everything and writes nothing: the real run after
    // it imports the same counts.
    let dry = import(&plugins, &data_dir, &config, &oslo_url, true);
    println!("dry run:\n{dry}");
    assert!(dry.contains("dry run: nothing was written"), "{dry}");
    assert!(dry.contains("alembic revision b3e1cf4a2d5e"), "{dry}");
    let expected = [
        ("cluster_template", 3),
        ("cluster", 2),
        ("nodegroup", 5),
        ("quotas", 2),
        ("federation", 1),
        ("certificate", 8),
    ];
    for (table, n) in expected {
        assert_eq!(counts(&dry, table), (n, 0), "dry run, {table}:\n{dry}");
    }
    let real = import(&plugins, &data_dir, &config, &oslo_url, false);
    println!("import:\n{real}");
    for (table, n) in expected {
        assert_eq!(counts(&real, table), (n, 0), "import, {table}:\n{real}");
    }
    // Left out, each with its reason.
    assert!(
        real.lines()
            .any(|l| l.contains(&busy) && l.contains("CREATE_IN_PROGRESS")),
        "{real}"
    );
    assert!(
        real.lines()
            .any(|l| l.contains(&coreos) && l.contains("(vm, fedora-coreos, kubernetes)")),
        "{real}"
    );
    // Idempotent: a second run finds every row.
    let again = import(&plugins, &data_dir, &config, &oslo_url, false);
    for (table, n) in expected {
        assert_eq!(
            counts(&again, table),
            (0, n),
            "second import, {table}:\n{again}"
        );
    }

    // The same import into a magnum-rs database on MariaDB (the backend of
    // Kolla and openstack-ansible sites) rather than SQLite.
    let ours = format!("magnum_rs_{}", std::process::id());
    mysql(&venv, &format!("DROP DATABASE IF EXISTS {ours}")).unwrap();
    mysql(&venv, &format!("CREATE DATABASE {ours}")).unwrap();
    let maria_config = dir.path().join("magnum-mariadb.toml");
    std::fs::write(
        &maria_config,
        format!("log = \"warn\"\ndatabase_url = \"mysql://{user}@{host}:{port}/{ours}\"\n"),
    )
    .unwrap();
    let maria_dir = dir.path().join("var-mariadb");
    let mut upgrade = Command::new(bin("magnumd"));
    upgrade
        .arg("--config")
        .arg(&maria_config)
        .arg("--data-dir")
        .arg(&maria_dir)
        .env_remove("MAGNUM_DATABASE_URL")
        .args(["db", "upgrade"]);
    run_ok("magnumd db upgrade (MariaDB)", &mut upgrade);
    let into_maria = import(&plugins, &maria_dir, &maria_config, &oslo_url, false);
    for (table, n) in expected {
        assert_eq!(
            counts(&into_maria, table),
            (n, 0),
            "into MariaDB, {table}:\n{into_maria}"
        );
    }
    mysql(&venv, &format!("DROP DATABASE IF EXISTS {ours}")).unwrap();

    let mut server = Magnumd::start_with(&plugins, &data_dir, Some(&config));
    let cli = Cli {
        openstack: clients.join("bin/openstack"),
        python: clients.join("bin/python"),
        endpoint: format!("http://{}/v1", server.addr),
    };

    let listed = cli.json(&["cluster", "list"]);
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    names.sort();
    assert_eq!(names, ["prod", "web"], "{listed}");

    // Sizes are sums over the imported nodegroups, as upstream shows them.
    let shown = cli.json(&["cluster", "show", &prod]);
    assert_eq!(shown["status"], "CREATE_COMPLETE", "{shown}");
    assert_eq!(shown["master_count"], 1, "{shown}");
    assert_eq!(shown["node_count"], 3, "{shown}");
    assert_eq!(
        shown["cluster_template_id"],
        filled["templates"]["k8s-atomic"]
    );
    // The client shows the stack id as `cluster_id`: upstream's stack.
    assert!(
        shown["cluster_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("5e1b8c4a-")),
        "{shown}"
    );
    assert_eq!(shown["master_addresses"], serde_json::json!(["10.0.0.5"]));
    assert_eq!(
        shown["node_addresses"],
        serde_json::json!(["10.0.0.6", "10.0.0.7", "10.0.0.8"])
    );
    let groups = cli.json(&["nodegroup", "list", &prod]);
    let mut sizes: Vec<(String, i64)> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap_or_default().to_owned(),
                g["node_count"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    sizes.sort();
    assert_eq!(
        sizes,
        [
            ("default-master".to_owned(), 1),
            ("default-worker".to_owned(), 2),
            ("gpu".to_owned(), 1)
        ],
        "{groups}"
    );
    let web_shown = cli.json(&["cluster", "show", &web]);
    assert_eq!(web_shown["status"], "UPDATE_FAILED", "{web_shown}");
    assert_eq!(
        web_shown["status_reason"], "Resource UPDATE failed: timed out",
        "{web_shown}"
    );
    let templates = cli.json(&["cluster", "template", "list"]);
    assert_eq!(templates.as_array().map(Vec::len), Some(3), "{templates}");

    // The CA the API hands out is the one upstream made, and its imported
    // key signs: a CSR signed through the API verifies against it.
    let upstream_ca = filled["certs"][&prod]["ca_cert_ref"]["certificate"]
        .as_str()
        .unwrap();
    let ca = cli.run(&["ca", "show", &prod]);
    assert_eq!(ca.trim(), upstream_ca.trim(), "ca show of {prod}");
    let key = dir.path().join("node.key");
    let csr = dir.path().join("node.csr");
    run_ok(
        "openssl req",
        Command::new("openssl")
            .args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj"])
            .arg("/CN=node-1")
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    let signed = cli.run(&["ca", "sign", &prod, csr.to_str().unwrap()]);
    let cert = dir.path().join("node.crt");
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&cert, signed.trim()).unwrap();
    std::fs::write(&ca_file, upstream_ca).unwrap();
    let verified = run_ok(
        "openssl verify",
        Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&ca_file)
            .arg(&cert),
    );
    assert!(verified.contains(": OK"), "{verified}");

    // `quotas list` prints a table only.
    let quotas = cli.run(&["quotas", "list", "--all-tenants"]);
    let row = |p: &str, limit: &str| {
        quotas.lines().any(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            cells.get(1) == Some(&p)
                && cells.get(2) == Some(&"Cluster")
                && cells.get(3) == Some(&limit)
        })
    };
    assert!(row(&project, "7"), "{quotas}");
    assert!(row("9a0b1c2d3e4f405162738495a6b7c8d9", "3"), "{quotas}");

    // This conductor takes the clusters over: deletes run to the end.
    for uuid in [&prod, &web] {
        cli.run(&["cluster", "delete", uuid]);
    }
    let start = Instant::now();
    loop {
        let left = cli.json(&["cluster", "list"]);
        if left.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "imported clusters not deleted after 120 s: {left}\nlog:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, log) = server.stop();
    assert!(status.success(), "magnumd exit: {status}");
    assert!(!log.contains("PRIVATE KEY"), "magnumd logged a key");
    // A database that is not upstream Magnum's is refused, writing nothing.
    let mut cmd = Command::new(bin("magnumd"));
    cmd.arg("--config")
        .arg(&config)
        .arg("--plugins-dir")
        .arg(&plugins)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["db", "import", "--from"])
        .arg(format!("mysql://{user}@{host}:{port}/mysql"));
    let refused = output_within(&mut cmd, Duration::from_secs(60));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("does not look like an upstream Magnum database"),
        "{}",
        stderr(&refused)
    );
    mysql(&venv, &format!("DROP DATABASE IF EXISTS {database}")).unwrap();
}
