//! Operator commands on `plugins.d`: register, enable, disable, unregister.
//! They edit manifests only; running processes pick changes up on restart.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{anyhow, bail, Context};

use crate::db::{self, models::cluster::Cluster, DbPool, DbTarget};

use super::{
    loader,
    manifest::{self, Manifest, Registered},
    registry::{first_shared, format_provides},
};

pub struct RegisterOptions {
    pub name: Option<String>,
    pub enable: bool,
    pub replace: bool,
    pub config: BTreeMap<String, toml::Value>,
    /// `None`: keep the replaced registration's (in-process if new).
    pub isolation: Option<manifest::Isolation>,
}

/// Loads the library, checks its ABI, builds it once with `config`, and writes
/// a manifest pinning its sha256 and the metadata it reports.
pub fn register(
    plugins_dir: &Path,
    library: &Path,
    opts: RegisterOptions,
) -> anyhow::Result<Manifest> {
    let library = fs::canonicalize(library)
        .map_err(|_| anyhow!("library {} does not exist", library.display()))?;
    let sha256 = manifest::sha256_file(&library)
        .with_context(|| format!("cannot read {}", library.display()))?;
    let (module, abi_version) = loader::open_root_module(&library)?;
    let info = loader::read_info(module)?;
    let name = opts.name.unwrap_or_else(|| info.name.clone());
    if !manifest::valid_name(&name) {
        bail!("driver name '{name}' must be 1-64 characters of [A-Za-z0-9_-]");
    }
    if info.provides.is_empty() {
        bail!("driver {name} provides no (server_type, os, coe) tuple");
    }
    let path = manifest_path(plugins_dir, &name);
    if path.exists() && !opts.replace {
        bail!("driver {name} is already registered; use --replace to re-register it");
    }
    // A broken file being replaced carries nothing over.
    let existing = fs::read_to_string(&path)
        .ok()
        .and_then(|text| Manifest::parse(&text).ok());
    let manifest = Manifest {
        name: name.clone(),
        library,
        sha256,
        enabled: opts.enable || existing.as_ref().is_some_and(|m| m.enabled),
        // A replaced library keeps the operator's choice, as `enabled`.
        draining: existing.as_ref().is_some_and(|m| m.draining),
        isolation: opts
            .isolation
            .or(existing.as_ref().map(|m| m.isolation))
            .unwrap_or_default(),
        abi: requirement_for(&abi_version),
        config: if opts.config.is_empty() {
            existing.map(|m| m.config).unwrap_or_default()
        } else {
            opts.config
        },
        registered: Registered {
            version: info.version.clone(),
            abi_version,
            description: info.description.clone(),
            provides: info.provides.clone(),
            capabilities: info.capabilities.clone(),
            template_path: info.template_path.clone(),
            beta: info.beta,
            registered_at: now_rfc3339(),
        },
    };
    // Prove the constructor works with this config before anyone relies on it.
    loader::construct(module, &manifest.config_json())?;
    if manifest.enabled {
        check_conflicts(plugins_dir, &manifest)?;
    }
    manifest::write(plugins_dir, &manifest)?;
    Ok(manifest)
}

/// Enables a registered driver, refusing if another enabled driver provides
/// one of the same tuples or if the library changed since registration.
pub fn enable(plugins_dir: &Path, name: &str) -> anyhow::Result<Manifest> {
    let mut manifest = require(plugins_dir, name)?;
    let path = manifest.library_path(plugins_dir);
    let actual = manifest::sha256_file(&path)
        .map_err(|e| anyhow!("cannot read library {}: {e}", path.display()))?;
    if !actual.eq_ignore_ascii_case(&manifest.sha256) {
        bail!(
            "library {} changed after registration (sha256 {actual}, pinned {}); re-register it with --replace",
            path.display(),
            manifest.sha256
        );
    }
    check_conflicts(plugins_dir, &manifest)?;
    manifest.enabled = true;
    manifest::write(plugins_dir, &manifest)?;
    Ok(manifest)
}

/// Where to look for clusters that still use a driver, and whether to skip
/// that check.
pub struct OwnerCheck<'a> {
    pub database_url: &'a str,
    pub force: bool,
}

impl OwnerCheck<'_> {
    /// Refuses when clusters are pinned to `name`: disabling or removing
    /// their driver would strand them.
    fn ensure_unused(&self, name: &str) -> anyhow::Result<()> {
        if self.force {
            return Ok(());
        }
        let count = clusters_using(self.database_url, name).with_context(|| {
            format!(
                "cannot check whether clusters still use driver {name} (--force skips the check)"
            )
        })?;
        if count > 0 {
            bail!(
                "driver {name} still owns {count} cluster(s); delete them first, or use --force to strand them"
            );
        }
        Ok(())
    }
}

/// Clusters in the service's database created by driver `name`. A missing
/// SQLite file is an error, not "no clusters": it is what a wrong
/// `--data-dir` (or none) looks like; a database never migrated holds none.
fn clusters_using(database_url: &str, name: &str) -> anyhow::Result<i64> {
    if let DbTarget::Sqlite(path) = DbTarget::parse(database_url)? {
        if !Path::new(&path).exists() {
            bail!(
                "magnumd's database {} does not exist: point --config, --data-dir or \
                 --database-url at the database magnumd uses",
                Path::new(&path).display()
            );
        }
    }
    let pool = DbPool::connect_with(database_url, 1)?;
    let mut conn = pool.get()?;
    if db::schema_version(&mut conn)?.is_none() {
        return Ok(0);
    }
    Ok(Cluster::count_by_driver(&mut conn, name)?)
}

pub fn disable(plugins_dir: &Path, name: &str, owners: &OwnerCheck) -> anyhow::Result<Manifest> {
    let mut manifest = require(plugins_dir, name)?;
    owners.ensure_unused(name)?;
    manifest.enabled = false;
    manifest::write(plugins_dir, &manifest)?;
    Ok(manifest)
}

/// Sets whether `name` is draining: loaded and operating its clusters, but
/// taking no new clusters or templates.
pub fn set_draining(plugins_dir: &Path, name: &str, draining: bool) -> anyhow::Result<Manifest> {
    let mut manifest = require(plugins_dir, name)?;
    manifest.draining = draining;
    manifest::write(plugins_dir, &manifest)?;
    Ok(manifest)
}

pub fn unregister(plugins_dir: &Path, name: &str, owners: &OwnerCheck) -> anyhow::Result<PathBuf> {
    let path = manifest_path(plugins_dir, name);
    if !path.exists() {
        bail!("no driver named {name} in {}", plugins_dir.display());
    }
    owners.ensure_unused(name)?;
    fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    Ok(path)
}

fn manifest_path(plugins_dir: &Path, name: &str) -> PathBuf {
    plugins_dir.join(format!("{name}.toml"))
}

fn require(plugins_dir: &Path, name: &str) -> anyhow::Result<Manifest> {
    let path = manifest_path(plugins_dir, name);
    let text = fs::read_to_string(&path)
        .map_err(|_| anyhow!("no driver named {name} in {}", plugins_dir.display()))?;
    Manifest::parse(&text).with_context(|| format!("bad manifest {}", path.display()))
}

fn check_conflicts(plugins_dir: &Path, candidate: &Manifest) -> anyhow::Result<()> {
    for file in manifest::read_dir(plugins_dir)? {
        let Ok(other) = file.manifest else { continue };
        if other.name == candidate.name || !other.enabled {
            continue;
        }
        if let Some(tuple) =
            first_shared(&candidate.registered.provides, &other.registered.provides)
        {
            bail!(
                "cannot enable {}: enabled driver {} already provides {tuple} (it provides {}); disable {} first",
                candidate.name,
                other.name,
                format_provides(&other.registered.provides),
                other.name
            );
        }
    }
    Ok(())
}

fn requirement_for(abi_version: &str) -> String {
    let mut parts = abi_version.split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    format!("^{major}.{minor}")
}

/// UTC now as RFC 3339, without pulling in a date crate for one timestamp.
fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
