//! Loading one driver library: the only place that talks to abi_stable's
//! loader. Every failure is returned as a [`LoadError`] for that one driver.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use abi_stable::{
    library::{lib_header_from_path, LibraryError},
    std_types::{RResult, RStr},
};
use magnum_driver_abi::{
    compat::{self, CompatError},
    DriverBox, DriverError, DriverInfo, DriverMod_Ref,
};

use super::{
    call::LoadedDriver,
    manifest::{self, parse_requirement, Isolation, Manifest},
    runner::RunnerPool,
};

/// Why a driver did not load. The `Display` text is the one-line reason
/// shown in logs and by `magnum-driver-manage`.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("library {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read library {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("library {path} changed after registration: sha256 is {actual}, manifest pins {pinned}; re-register it with `magnum-driver-manage register --replace`")]
    Checksum {
        path: PathBuf,
        pinned: String,
        actual: String,
    },
    #[error("{path} is not a loadable shared library: {reason}")]
    NotALibrary { path: PathBuf, reason: String },
    #[error(
        "{path} is a shared library but not a magnum driver (no abi_stable root module): {reason}"
    )]
    NoRootModule { path: PathBuf, reason: String },
    #[error("incompatible driver ABI: library built against magnum-driver-abi {library}, this host speaks {host} (same major required)")]
    AbiMajor { library: String, host: String },
    #[error("library ABI {library} does not satisfy the manifest's requirement {required}")]
    AbiRequirement { library: String, required: String },
    #[error("incompatible driver ABI layout: {0}")]
    AbiLayout(String),
    #[error("driver root module failed: {0}")]
    RootModule(String),
    #[error("driver info: {0}")]
    Info(String),
    #[error("driver constructor failed: {0}")]
    Constructor(DriverError),
    /// `isolation = "process"`: what the runner said (the reasons above,
    /// as its own loader gave them), or why it could not say.
    #[error("{0}")]
    Runner(String),
}

/// Header checks shared by `register` and the loader: open the library,
/// check the ABI version and layout, run the root-module constructor. The
/// file's bytes are read once and mapped from a private in-memory copy
/// ([`PrivateCopy`]).
pub fn open_root_module(path: &Path) -> Result<(DriverMod_Ref, String), LoadError> {
    let bytes = read_library(path)?;
    open_copy(path, &bytes)
}

fn read_library(path: &Path) -> Result<Vec<u8>, LoadError> {
    if !path.exists() {
        return Err(LoadError::Missing(path.to_owned()));
    }
    std::fs::read(path).map_err(|e| LoadError::Unreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Maps `bytes` (the contents of `path`) and initialises its root module.
fn open_copy(path: &Path, bytes: &[u8]) -> Result<(DriverMod_Ref, String), LoadError> {
    let copy = PrivateCopy::new(path, bytes).map_err(|e| LoadError::Unreadable {
        path: path.to_owned(),
        reason: format!("cannot make the private copy to load: {e}"),
    })?;
    let header = lib_header_from_path(copy.path()).map_err(|e| match e {
        LibraryError::OpenError { .. } => LoadError::NotALibrary {
            path: path.to_owned(),
            reason: one_line(&e.to_string()),
        },
        other => LoadError::NoRootModule {
            path: path.to_owned(),
            reason: one_line(&other.to_string()),
        },
    })?;
    let (module, version) = compat::init_root_module(header).map_err(|e| match e {
        CompatError::Major { library, host } => LoadError::AbiMajor {
            library: library.to_string(),
            host: host.to_string(),
        },
        CompatError::RootModule(reason) => LoadError::RootModule(one_line(&reason)),
        CompatError::Version(reason) | CompatError::Layout(reason) => {
            LoadError::AbiLayout(summarise_layout_error(&reason))
        }
    })?;
    Ok((module, version.to_string()))
}

/// What the dynamic loader maps: an anonymous in-memory file holding the
/// bytes that were checked, opened through `/proc/self/fd`. Mapping the file
/// in `plugins.d` itself would let an in-place overwrite (`cat new.so >
/// driver.so`, as a careless package upgrade does) change the code under
/// the running service, which then dies with SIGSEGV or SIGBUS; and it would
/// leave a gap between checking the sha256 and mapping the file. A replaced
/// file is picked up only through registration.
#[cfg(target_os = "linux")]
struct PrivateCopy {
    path: PathBuf,
}

#[cfg(target_os = "linux")]
impl PrivateCopy {
    fn new(source: &Path, bytes: &[u8]) -> std::io::Result<Self> {
        use std::{
            io::Write,
            os::fd::{FromRawFd, IntoRawFd},
        };
        if !Path::new("/proc/self/fd").is_dir() {
            // No procfs (a bare chroot): map the file itself, as before.
            return Ok(Self {
                path: source.to_owned(),
            });
        }
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("driver")
            .replace('\0', "");
        let name = std::ffi::CString::new(format!("magnum-driver:{name}"))
            .map_err(std::io::Error::other)?;
        // SAFETY: a valid C string and flags; the result is checked.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let mut file = unsafe { std::fs::File::from_raw_fd(raw) };
        file.write_all(bytes)?;
        file.flush()?;
        // Never closed: the dynamic loader knows a library by its path, so
        // a descriptor number reused by a later copy would make dlopen hand
        // back the earlier library. Libraries are never unloaded either;
        // this is one descriptor per library loaded.
        let fd = file.into_raw_fd();
        Ok(Self {
            path: PathBuf::from(format!("/proc/self/fd/{fd}")),
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// Elsewhere the library is mapped from its own file.
#[cfg(not(target_os = "linux"))]
struct PrivateCopy(PathBuf);

#[cfg(not(target_os = "linux"))]
impl PrivateCopy {
    fn new(source: &Path, _bytes: &[u8]) -> std::io::Result<Self> {
        Ok(Self(source.to_owned()))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

/// Reads and parses `info()`.
pub fn read_info(module: DriverMod_Ref) -> Result<DriverInfo, LoadError> {
    match (module.info())() {
        RResult::ROk(json) => serde_json::from_str(json.as_str())
            .map_err(|e| LoadError::Info(format!("not a DriverInfo document: {e}"))),
        RResult::RErr(e) => Err(LoadError::Info(e.to_string())),
    }
}

/// Builds a driver instance with the manifest's config.
pub fn construct(module: DriverMod_Ref, config_json: &str) -> Result<DriverBox, LoadError> {
    match (module.new())(RStr::from_str(config_json)) {
        RResult::ROk(driver) => Ok(driver),
        RResult::RErr(e) => Err(LoadError::Constructor(e)),
    }
}

/// Loads the driver a manifest describes, checking the pinned sha256 first so
/// that a replaced file is never mapped into the process, and mapping a
/// private copy so that replacing the file later cannot touch it.
pub fn load(manifest: &Manifest, plugins_dir: &Path) -> Result<Arc<LoadedDriver>, LoadError> {
    let path = manifest.library_path(plugins_dir);
    // The bytes checked are the bytes mapped.
    let bytes = read_library(&path)?;
    let actual = manifest::sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(&manifest.sha256) {
        return Err(LoadError::Checksum {
            path,
            pinned: manifest.sha256.clone(),
            actual,
        });
    }
    if manifest.isolation == Isolation::Process {
        // Nothing of the library runs in this process: runners load these
        // bytes, with the checks below, in theirs.
        let (pool, info, abi_version) =
            RunnerPool::start(manifest, plugins_dir, &bytes).map_err(LoadError::Runner)?;
        return Ok(Arc::new(LoadedDriver::in_runners(
            manifest.name.clone(),
            info,
            pool,
            path,
            abi_version,
        )));
    }
    let (module, abi_version) = open_copy(&path, &bytes)?;
    let (req_major, req_minor) =
        parse_requirement(&manifest.abi).map_err(|e| LoadError::Manifest(e.to_string()))?;
    if !abi_satisfies(&abi_version, req_major, req_minor) {
        return Err(LoadError::AbiRequirement {
            library: abi_version,
            required: manifest.abi.clone(),
        });
    }
    let info = read_info(module)?;
    let driver = construct(module, &manifest.config_json())?;
    Ok(Arc::new(LoadedDriver::new(
        manifest.name.clone(),
        info,
        module,
        driver,
        path,
        abi_version,
    )))
}

fn abi_satisfies(version: &str, major: u64, minor: u64) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (v_major, v_minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    v_major == major && v_minor >= minor
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// abi_stable's layout report is many lines; keep the lines that say what
/// differs, so the reason fits a log line.
fn summarise_layout_error(text: &str) -> String {
    let interesting: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("error")
                || l.contains("mismatch")
                || l.contains("expected")
                || l.contains("found")
        })
        .take(4)
        .collect();
    if interesting.is_empty() {
        one_line(text).chars().take(400).collect()
    } else {
        one_line(&interesting.join("; "))
            .chars()
            .take(400)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::abi_satisfies;

    #[test]
    fn abi_requirement_is_same_major_and_at_least_minor() {
        assert!(abi_satisfies("1.0.0", 1, 0));
        assert!(abi_satisfies("1.3.0", 1, 2));
        assert!(!abi_satisfies("1.1.0", 1, 2));
        assert!(!abi_satisfies("2.0.0", 1, 0));
    }
}
