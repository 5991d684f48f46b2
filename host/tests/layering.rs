//! The host's layering, checked on its sources: nothing below the HTTP layer
//! (`api`) reaches into it — the conductor, the orchestrators, the cloud
//! catalog, the shared state and domain, jobs, configuration, the OpenStack
//! session, Keystone, certificates and the plugin loader. What they share
//! with the API lives in `app`, `domain` and `jobs`; a use of `api` there
//! would make them depend on request handling again.

use std::path::Path;

/// Lines of Rust code (comments dropped) of every file under `dir`.
fn code_lines(dir: &Path) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries: Vec<_> = if d.is_file() {
            vec![d.clone()]
        } else {
            std::fs::read_dir(&d)
                .expect("read_dir")
                .map(|e| e.expect("entry").path())
                .collect()
        };
        for path in entries {
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                for (i, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or_default();
                    if !code.trim().is_empty() {
                        out.push((path.display().to_string(), i + 1, code.to_owned()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn conductor_and_orchestrators_do_not_import_the_api() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for layer in [
        "conductor",
        "orchestrator",
        "catalog",
        "openstack",
        "plugins",
        "certs",
        "db",
        "app.rs",
        "domain.rs",
        "jobs.rs",
        "config.rs",
        "status.rs",
        "keystone.rs",
    ] {
        for (file, line, code) in code_lines(&src.join(layer)) {
            let uses_api = code.contains("crate::api")
                || code.contains("super::api")
                || code.trim_start().starts_with("api::")
                || code.contains(" api::")
                || code.contains("(api::")
                || code.contains("{api");
            if uses_api {
                found.push(format!("{file}:{line}: {}", code.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "only the API layer (and the binaries) may import the API layer:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_an_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("x.rs"),
        "use crate::api::clusters; // a use\n// crate::api in a comment\n",
    )
    .expect("write");
    let lines = code_lines(dir.path());
    assert_eq!(lines.len(), 1);
    assert!(lines[0].2.contains("crate::api"));
}
