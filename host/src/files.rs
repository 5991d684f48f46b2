//! The data directory and the SQLite database hold proxy passwords, the
//! certificate sealing key and the cloud's state: they are created for
//! their owner alone (0700 and 0600), and looser permissions found on an
//! existing one are tightened, with a warning, since anyone else who can
//! read them can read every secret.

use std::{
    io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (missing parents too) with mode 0700, or tightens an
/// existing one.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        tighten(dir, DIR_MODE);
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Creates `file` empty with mode 0600 unless it exists, or tightens an
/// existing one. SQLite gives a database's -wal and -shm files the mode
/// of the database file, so creating that one first covers them.
pub fn private_file(file: &Path) -> io::Result<()> {
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(file);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            tighten(file, FILE_MODE);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Tightens `path` to at most `mode` if it exists; a path we may not
/// change (owned by someone else) only gets a warning.
pub fn tighten_if_present(path: &Path, mode: u32) {
    if path.exists() {
        tighten(path, mode);
    }
}

fn tighten(path: &Path, mode: u32) {
    let current = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o777,
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot read the permissions: {e}");
            return;
        }
    };
    if current & !mode == 0 {
        return;
    }
    let tightened = current & mode;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(tightened)) {
        Ok(()) => tracing::warn!(
            path = %path.display(),
            "tightened permissions from {current:o} to {tightened:o}: it holds secrets"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            "permissions {current:o} let others read secrets, and cannot be tightened: {e}"
        ),
    }
}
