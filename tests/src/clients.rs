//! The real OpenStack CLI (`openstack coe …`, python-openstackclient with
//! python-magnumclient, pinned in tests/clients/requirements.txt) against
//! `magnumd serve`, without Keystone: tests/clients/coe_cli_test.py drives
//! every command and checks what the CLI prints field by field.
//!
//! The clients live in a venv made by tests/clients/setup-venv.sh
//! (`$CLIENT_VENV`, default target/client-venv, reused while requirements.txt
//! is unchanged). When it cannot be made, for want of PyPI, the test says why
//! and passes, except under CI=true, where it fails. The in-process conductor
//! drives clusters through the `local` orchestrator, so the script runs with
//! WAIT_FOR_COMPLETE=1: clusters must reach CREATE_COMPLETE, and update,
//! resize and nodegroups run on complete clusters.

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::Duration,
};

use crate::support::*;

fn clients_dir() -> PathBuf {
    workspace().join("tests/clients")
}

/// The venv's directory, or why there is none.
pub(crate) fn client_venv() -> Result<PathBuf, String> {
    let out = output_within(
        Command::new("bash").arg(clients_dir().join("setup-venv.sh")),
        Duration::from_secs(15 * 60),
    );
    if !out.status.success() {
        return Err(format!(
            "setup-venv.sh failed ({}):\n{}",
            out.status,
            stderr(&out)
        ));
    }
    let venv = stdout(&out)
        .lines()
        .last()
        .map(PathBuf::from)
        .ok_or("setup-venv.sh printed no venv path")?;
    if venv.join("bin/openstack").is_file() {
        Ok(venv)
    } else {
        Err(format!("{} has no bin/openstack", venv.display()))
    }
}

#[test]
fn openstack_coe_cli_against_magnumd() {
    let venv = match client_venv() {
        Ok(venv) => venv,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and the client venv cannot be made: {why}")
        }
        Err(why) => {
            eprintln!("SKIP openstack_coe_cli_against_magnumd: {why}");
            return;
        }
    };

    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    register_bundled(&plugins);
    // Debug logging of the host, so the secret scan below sees everything
    // it could print.
    let config = dir.path().join("magnum.toml");
    std::fs::write(&config, "log = \"info,magnum_host=debug\"\n").unwrap();
    let data_dir = dir.path().join("var");
    let mut server = Magnumd::start_with(&plugins, &data_dir, Some(&config));
    let endpoint = format!("http://{}/v1", server.addr);

    // The script bounds each CLI call and each wait; this bounds the whole.
    let out = output_within(
        Command::new(venv.join("bin/python"))
            .env("WAIT_FOR_COMPLETE", "1")
            .env("WAIT_TIMEOUT", "120")
            .arg(clients_dir().join("coe_cli_test.py"))
            .args(["--endpoint", &endpoint, "--openstack"])
            .arg(venv.join("bin/openstack")),
        Duration::from_secs(30 * 60),
    );
    let report = stdout(&out);
    println!("{report}");
    if !out.status.success() {
        let log = server.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        // The failed checks with their details come last in the panic
        // message: a CI log that keeps only the end of the output shows them.
        let mut failures = Vec::new();
        let mut in_failure = false;
        for line in report.lines() {
            if line.starts_with("FAIL - ") {
                in_failure = true;
            } else if !line.starts_with("    ") {
                in_failure = false;
            }
            if in_failure {
                failures.push(line);
            }
        }
        panic!(
            "coe_cli_test.py failed ({}): {}\nstderr: {}\nmagnumd log (last 40 lines):\n{}\n\nfailed checks:\n{}",
            out.status,
            report
                .lines()
                .rev()
                .find(|l| l.contains(" passed, "))
                .unwrap_or("no summary line"),
            stderr(&out),
            tail.join("\n"),
            failures.join("\n"),
        );
    }
    let (status, log) = server.stop();
    assert!(status.success(), "magnumd exit after SIGTERM: {status}");

    // The run made CAs, signed CSRs, rotated the credential, wrote a
    // kubeconfig: none of the key material or credentials may have reached
    // the log.
    assert!(
        log.contains("cluster certificates generated"),
        "the scan covers the certificate work"
    );
    for needle in [
        "PRIVATE KEY",
        "mcc1.",
        "aesgcm1:",
        "BEGIN CERTIFICATE REQUEST",
    ] {
        assert!(!log.contains(needle), "magnumd logged {needle:?}");
    }
    use std::os::unix::fs::PermissionsExt;
    let key_file = data_dir.join("certificate.key");
    let mode = std::fs::metadata(&key_file)
        .expect("the key file was created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", key_file.display());
}

/// Runs `cmd` to completion with stdout and stderr captured, killing it once
/// `limit` has passed (the output then ends with a note saying so).
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = std::time::Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = err.join().unwrap_or_default();
    if timed_out {
        stderr.extend_from_slice(format!("\n(killed after {limit:?})\n").as_bytes());
    }
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr,
    }
}
