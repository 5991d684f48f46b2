//! The node bootstrap scripts of all three drivers (every `.sh` under
//! `drivers/*/src`, and the shared ones under `drivers/common/fragments`):
//! shellcheck-clean, strict, wired into their templates,
//! and careful with the cluster credential. This crate hosts the test for
//! the three, since drivers share no test crate.
//!
//! shellcheck is installed from Debian (`apt-get install -y shellcheck`)
//! when it is missing. When that is impossible the test prints why and
//! skips, except under `CI=true`, where it fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;

fn drivers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in drivers/")
        .to_path_buf()
}

/// Every `.sh` file under `drivers/*/src` and `drivers/common`, sorted.
fn scripts() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "sh") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    for driver in std::fs::read_dir(drivers_dir()).expect("drivers/ is readable") {
        walk(
            &driver.expect("a drivers/ entry").path().join("src"),
            &mut found,
        );
    }
    walk(&drivers_dir().join("common"), &mut found);
    found.sort();
    found
}

/// The library files the fragments source (the shared lib-common.sh and
/// each driver's lib.sh), never run themselves.
fn is_library(path: &Path) -> bool {
    path.file_name()
        .and_then(|f| f.to_str())
        .is_some_and(|f| f == "lib.sh" || f == "lib-common.sh")
}

fn shellcheck_version() -> Option<String> {
    let out = Command::new("shellcheck").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs shellcheck from Debian; why not, when it cannot.
fn install_shellcheck() -> Result<(), String> {
    let apt = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "apt-get {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    if apt(&["install", "-y", "shellcheck"]).is_err() {
        // The package lists may be missing (fresh containers).
        apt(&["update"])?;
        apt(&["install", "-y", "shellcheck"])?;
    }
    shellcheck_version()
        .map(|_| ())
        .ok_or_else(|| "shellcheck is still not runnable after apt-get install".into())
}

#[test]
fn every_script_is_shellcheck_clean() {
    let scripts = scripts();
    assert!(
        scripts.len() >= 3,
        "expected the drivers' fragments: {scripts:?}"
    );
    if shellcheck_version().is_none() {
        if let Err(reason) = install_shellcheck() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!ci, "shellcheck is required under CI=true: {reason}");
            eprintln!("SKIP every_script_is_shellcheck_clean: shellcheck is missing and {reason}");
            return;
        }
    }
    // -x follows the fragments' `source=SCRIPTDIR/lib.sh` directives.
    let out = Command::new("shellcheck")
        .arg("-x")
        .args(&scripts)
        .output()
        .expect("shellcheck runs");
    assert!(
        out.status.success(),
        "shellcheck found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn scripts_are_strict_and_never_trace_the_credential() {
    for path in scripts() {
        let name = path.display();
        let text = std::fs::read_to_string(&path).expect("script is readable");
        assert!(text.starts_with("#!/bin/bash\n"), "{name}: bash shebang");
        assert!(text.ends_with('\n'), "{name}: ends with a newline");
        let sourced = is_library(&path);
        if !sourced {
            assert!(
                text.contains("\nset -euo pipefail\n"),
                "{name}: runs with set -euo pipefail"
            );
        }
        assert!(!text.contains("set -x"), "{name}: no tracing");
        assert!(!text.contains("xtrace"), "{name}: no tracing");
        // Only lib-common.sh's magnum_api touches the credential, and it writes
        // it to a private header file, never to argv or the log.
        for (i, line) in text.lines().enumerate() {
            if line.contains("CLUSTER_CREDENTIAL") {
                assert!(
                    sourced && line.trim() == "\"$CLUSTER_CREDENTIAL\" >\"$headers\"",
                    "{name}:{}: the credential is used outside magnum_api: {line}",
                    i + 1
                );
            }
        }
        // The heredoc delimiters of the user data must not appear inside.
        for delimiter in ["MAGNUM_FRAGMENT", "MAGNUM_PARAMS"] {
            assert!(
                !text.lines().any(|l| l == delimiter),
                "{name}: a line is the user data's heredoc delimiter {delimiter}"
            );
        }
        // The host's verify tells templates from other files by this string.
        assert!(!text.contains("heat_template_version"), "{name}");
    }
}

#[test]
fn every_fragment_is_delivered_by_its_driver_templates() {
    let common = drivers_dir().join("common");
    for path in scripts() {
        if let Ok(shared) = path.strip_prefix(&common) {
            // A shared fragment rides along under the same name in every
            // driver that includes it; at least one must.
            let relative = shared.to_string_lossy().into_owned();
            let users = ["k8s-fedora-atomic", "swarm-fedora-atomic", "mesos-ubuntu"]
                .iter()
                .filter(|driver| {
                    let src = drivers_dir().join(driver).join("src");
                    let driver_rs =
                        std::fs::read_to_string(src.join("driver.rs")).unwrap_or_default();
                    let templates: String = std::fs::read_dir(src.join("templates"))
                        .map(|dir| {
                            dir.flatten()
                                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                                .collect()
                        })
                        .unwrap_or_default();
                    driver_rs.contains(&format!("include_str!(\"../../common/{relative}\")"))
                        && templates.contains(&format!("{{get_file: {relative}}}"))
                })
                .count();
            assert!(users > 0, "{}: no driver delivers it", path.display());
            continue;
        }
        let src = path
            .ancestors()
            .find(|p| p.file_name().is_some_and(|n| n == "src"))
            .expect("scripts live under src/");
        let relative = path
            .strip_prefix(src)
            .expect("under src")
            .to_string_lossy()
            .into_owned();
        let templates: String = std::fs::read_dir(src.join("templates"))
            .expect("the driver has templates")
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        assert!(
            templates.contains(&format!("{{get_file: {relative}}}")),
            "{}: no template embeds it with get_file",
            path.display()
        );
        let driver = std::fs::read_to_string(src.join("driver.rs")).expect("driver.rs");
        assert!(
            driver.contains(&format!("include_str!(\"{relative}\")")),
            "{}: driver.rs does not embed it",
            path.display()
        );
    }
}

#[test]
fn downloads_are_verified_and_scripts_fit_their_images() {
    let mut insecure = Vec::new();
    for path in scripts() {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).expect("script is readable");
        let library = path.file_name().is_some_and(|f| f == "lib-common.sh");
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            let at = format!("{name}:{}", i + 1);
            // Every download goes through lib-common.sh's download, which
            // checks a sha256: no curl writing a file or feeding tar.
            if !library && line.contains("curl ") {
                assert!(
                    !line.contains(" -o ") && !line.contains("| tar") && !line.ends_with('\\'),
                    "{at}: a download outside lib-common.sh's download: {line}"
                );
            }
            // curl 7.71; the images' curl is older.
            assert!(!line.contains("--retry-all-errors"), "{at}: {line}");
            // --insecure (not Docker's --insecure-registry) or -k.
            let flag = "--insecure";
            let skips_tls = line
                .match_indices(flag)
                .any(|(i, _)| !line[i + flag.len()..].starts_with('-'));
            if skips_tls || line.contains("curl -k") {
                insecure.push(at);
            }
        }
        // The Mesos image (Ubuntu 14.04) runs upstart: its fragments use
        // lib-common.sh's service_* helpers.
        if name.contains("mesos-ubuntu") {
            assert!(!text.contains("systemctl"), "{name}: systemctl on upstart");
        }
    }
    // Only cloud_tls_options, when the operator turned verify_ca off.
    assert_eq!(insecure.len(), 1, "{insecure:?}");
    assert!(insecure[0].contains("lib-common.sh"), "{insecure:?}");
}
