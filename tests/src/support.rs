//! Paths, fixture builds and process helpers shared by the tests.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Mutex, OnceLock},
};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// `target/<profile>`, found from this test binary (`target/<profile>/deps/e2e-…`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_owned()
}

fn built(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, as scripts/test does)",
        path.display()
    );
    path
}

/// A workspace cdylib, e.g. `magnum_driver_k8s_fedora_atomic`.
pub fn workspace_lib(crate_name: &str) -> PathBuf {
    built(profile_dir().join(format!("lib{crate_name}.so")))
}

pub fn bin(name: &str) -> PathBuf {
    built(profile_dir().join(name))
}

/// Builds a crate that lives outside the workspace (its own `[workspace]`)
/// into `target/fixtures`, once per test run, and returns that profile dir.
pub fn build_external(dir: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let lock = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut done = lock.lock().unwrap_or_else(|e| e.into_inner());
    let target = workspace().join("target/fixtures");
    if !done.iter().any(|d| d == dir) {
        let manifest = workspace().join(dir).join("Cargo.toml");
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "building {dir} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        done.push(dir.to_owned());
    }
    target.join("debug")
}

/// Runs `magnum-driver-manage --plugins-dir DIR ARGS…`.
pub fn manage(plugins: &Path, args: &[&str]) -> Output {
    Command::new(bin("magnum-driver-manage"))
        .arg("--plugins-dir")
        .arg(plugins)
        .args(args)
        .env_remove("MAGNUM_PLUGINS_DIR")
        .env_remove("MAGNUM_CONFIG")
        .env_remove("MAGNUM_DATABASE_URL")
        // The default database (for the clusters-in-use check) is then one
        // inside this test's own directory, absent unless the test makes it.
        .env("MAGNUM_DATA_DIR", plugins.join("var"))
        .output()
        .expect("run magnum-driver-manage")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts exit status 1 and returns stderr.
pub fn fails(o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1:\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

/// Registers the three bundled drivers (enabled) into `plugins`.
pub fn register_bundled(plugins: &Path) {
    for lib in BUNDLED {
        let path = workspace_lib(lib);
        ok(manage(
            plugins,
            &["register", path.to_str().expect("utf-8 path"), "--enable"],
        ));
    }
}

pub const BUNDLED: [&str; 3] = [
    "magnum_driver_k8s_fedora_atomic",
    "magnum_driver_swarm_fedora_atomic",
    "magnum_driver_mesos_ubuntu",
];
