//! Shared by the benches: pinned manifests for the release builds of the
//! three bundled drivers, written by hand into a temporary plugins dir (so
//! no `magnum-driver-manage` run is needed, and the bench's first
//! `Registry::load` is the process's first `dlopen` of each library).
//!
//! Not a bench target itself: cargo only discovers `benches/*.rs` and
//! `benches/*/main.rs`.

use std::path::{Path, PathBuf};

use magnum_host::plugins::manifest::{self, Isolation, Manifest, Registered};

/// Driver name and library stem of each bundled driver.
pub const BUNDLED: [(&str, &str); 3] = [
    ("k8s_fedora_atomic_v1", "magnum_driver_k8s_fedora_atomic"),
    (
        "swarm_fedora_atomic_v1",
        "magnum_driver_swarm_fedora_atomic",
    ),
    ("mesos_ubuntu_v1", "magnum_driver_mesos_ubuntu"),
];

/// `target/release` (or `$CARGO_TARGET_DIR/release`).
pub fn release_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release")
}

/// A temporary plugins dir with an enabled, pinned manifest for each
/// bundled driver's release `.so`. `script` names the script that builds
/// them, for the panic message when one is missing.
pub fn plugins_dir(script: &str) -> tempfile::TempDir {
    plugins_dir_isolated(script, Isolation::InProcess)
}

/// As [`plugins_dir`], every driver in `isolation`.
pub fn plugins_dir_isolated(script: &str, isolation: Isolation) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, lib) in BUNDLED {
        let library = release_dir().join(format!("lib{lib}.so"));
        let sha256 = manifest::sha256_file(&library)
            .unwrap_or_else(|e| panic!("{}: {e}; run {script}", library.display()));
        let m = Manifest {
            name: name.into(),
            library,
            sha256,
            enabled: true,
            draining: false,
            isolation,
            abi: "^1.0".into(),
            config: Default::default(),
            registered: Registered::default(),
        };
        manifest::write(dir.path(), &m).expect("write manifest");
    }
    dir
}
