//! What the real `magnumd` leaves on disk: the data directory and the
//! SQLite database hold proxy passwords, the sealing key and the cloud's
//! state, so they are the owner's alone (0700 and 0600, the SQLite -wal
//! and -shm files included), whichever subcommand created them.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use crate::support::{bin, ok, Magnumd};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn assert_private(data: &Path, with_wal: bool) {
    assert_eq!(
        format!("{:o}", mode(data)),
        "700",
        "data dir {}",
        data.display()
    );
    let mut files = vec!["magnum.sqlite".to_owned()];
    if with_wal {
        files.extend([
            "magnum.sqlite-wal".to_owned(),
            "magnum.sqlite-shm".to_owned(),
        ]);
    }
    for name in files {
        assert_eq!(format!("{:o}", mode(&data.join(&name))), "600", "{name}");
    }
}

fn conductor_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("conductor.toml");
    std::fs::write(&config, "log = \"info\"\n").expect("write config");
    config
}

#[test]
fn serve_creates_a_private_data_dir_and_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).expect("plugins dir");
    let data = dir.path().join("var");
    let server = Magnumd::start(&plugins, &data);
    // While it runs, the WAL and its index exist too.
    assert_private(&data, true);
    let key = data.join("certificate.key");
    if key.exists() {
        assert_eq!(mode(&key), 0o600);
    }
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn conductor_and_db_upgrade_create_private_files_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).expect("plugins dir");

    let data = dir.path().join("upgraded");
    ok(Command::new(bin("magnumd"))
        .args(["db", "upgrade", "--data-dir"])
        .arg(&data)
        .env_remove("MAGNUM_CONFIG")
        .env_remove("MAGNUM_DATABASE_URL")
        .output()
        .expect("run magnumd db upgrade"));
    assert_private(&data, false);

    let data = dir.path().join("conducted");
    let conductor = Magnumd::conductor(&plugins, &data, &conductor_config(dir.path()));
    assert_private(&data, true);
    drop(conductor);
}

#[test]
fn an_existing_loose_data_dir_and_database_are_tightened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).expect("plugins dir");
    let data = dir.path().join("var");
    // What an earlier magnumd (or a packager's mkdir) left behind.
    std::fs::create_dir(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for name in ["magnum.sqlite", "magnum.sqlite-wal", "magnum.sqlite-shm"] {
        std::fs::write(data.join(name), b"").expect("file");
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    let mut server = Magnumd::start(&plugins, &data);
    assert_private(&data, true);
    let log = server.log();
    assert!(
        log.contains("tightened") && log.contains(&data.display().to_string()),
        "the change is logged: {log}"
    );
}
