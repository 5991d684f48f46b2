//! The set of drivers a process uses: every manifest in `plugins.d`, each
//! loaded on its own; failures are recorded per driver and logged.

use std::{path::Path, sync::Arc};

use magnum_driver_abi::Provides;

use super::{
    call::LoadedDriver,
    loader::{self, LoadError},
    manifest::{self, Manifest},
};

/// An upstream driver name whose clusters a bundled driver builds, for
/// the one COE the upstream driver had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamName {
    /// Upstream's name, as templates made for upstream Magnum give it.
    pub name: &'static str,
    /// The bundled driver's name.
    pub driver: &'static str,
    pub coe: &'static str,
}

/// Upstream's swarm mode driver (magnum/drivers/swarm_fedora_atomic_v2,
/// provides (vm, fedora-atomic, swarm-mode)) is the bundled
/// `swarm_fedora_atomic_v1`'s coe `swarm-mode` here.
pub const UPSTREAM_NAMES: &[UpstreamName] = &[UpstreamName {
    name: "swarm_fedora_atomic_v2",
    driver: "swarm_fedora_atomic_v1",
    coe: "swarm-mode",
}];

/// The upstream name `name` stands for, if it is one no registered driver
/// carries itself.
pub fn upstream_name(registry: &Registry, name: &str) -> Option<UpstreamName> {
    if registry.entries.iter().any(|e| e.name == name) {
        return None;
    }
    UPSTREAM_NAMES.iter().copied().find(|u| u.name == name)
}

/// What became of one manifest.
#[derive(Debug)]
pub enum DriverState {
    Loaded(Arc<LoadedDriver>),
    Disabled,
    Failed(String),
}

#[derive(Debug)]
pub struct DriverEntry {
    pub name: String,
    pub manifest: Option<Manifest>,
    pub state: DriverState,
}

#[derive(Debug, Default)]
pub struct Registry {
    pub entries: Vec<DriverEntry>,
}

impl Registry {
    /// Loads every enabled driver in `plugins_dir`. Never fails as a whole
    /// except when the directory itself cannot be read.
    pub fn load(plugins_dir: &Path) -> anyhow::Result<Self> {
        Self::load_keeping(plugins_dir, None)
    }

    /// `plugins_dir` as it is now, keeping the drivers of `self` whose
    /// manifest (library, checksum, configuration) did not change: their
    /// instances go on serving, and operations already running on a
    /// replaced one finish on it (libraries are never unloaded).
    pub fn reload(&self, plugins_dir: &Path) -> anyhow::Result<Self> {
        Self::load_keeping(plugins_dir, Some(self))
    }

    fn load_keeping(plugins_dir: &Path, previous: Option<&Registry>) -> anyhow::Result<Self> {
        let mut entries: Vec<DriverEntry> = Vec::new();
        for file in manifest::read_dir(plugins_dir)? {
            let manifest = match file.manifest {
                Ok(m) => m,
                Err(reason) => {
                    tracing::error!(driver = %file.stem, path = %file.path.display(), "driver not loaded: {reason}");
                    entries.push(DriverEntry {
                        name: file.stem,
                        manifest: None,
                        state: DriverState::Failed(reason),
                    });
                    continue;
                }
            };
            let state = if !manifest.enabled {
                tracing::info!(driver = %manifest.name, "driver disabled");
                DriverState::Disabled
            } else if let Some(kept) = previous.and_then(|p| p.kept(&manifest)) {
                DriverState::Loaded(kept)
            } else {
                match load_checked(&manifest, plugins_dir, &entries) {
                    Ok(driver) => {
                        tracing::info!(
                            driver = %manifest.name,
                            version = %driver.info.version,
                            abi = %driver.abi_version,
                            provides = %format_provides(&driver.info.provides),
                            "driver loaded"
                        );
                        DriverState::Loaded(driver)
                    }
                    Err(reason) => {
                        tracing::error!(driver = %manifest.name, "driver not loaded: {reason}");
                        DriverState::Failed(reason)
                    }
                }
            };
            entries.push(DriverEntry {
                name: manifest.name.clone(),
                manifest: Some(manifest),
                state,
            });
        }
        Ok(Self { entries })
    }

    /// The loaded instance of a manifest equal to `manifest` but for
    /// `draining`, which changes no instance.
    fn kept(&self, manifest: &Manifest) -> Option<Arc<LoadedDriver>> {
        self.entries
            .iter()
            .find_map(|e| match (&e.state, &e.manifest) {
                (DriverState::Loaded(d), Some(m))
                    if m.name == manifest.name
                        && m.library == manifest.library
                        && m.sha256 == manifest.sha256
                        && m.abi == manifest.abi
                        && m.config == manifest.config
                        && m.isolation == manifest.isolation =>
                {
                    Some(d.clone())
                }
                _ => None,
            })
    }

    /// Whether driver `name` takes new clusters and templates: `Err` with
    /// the reason when it is draining.
    pub fn accepts_new(&self, name: &str) -> Result<(), String> {
        let draining = self
            .entries
            .iter()
            .any(|e| e.name == name && e.manifest.as_ref().is_some_and(|m| m.draining));
        if draining {
            Err(format!(
                "Driver {name} is draining: it takes no new clusters or cluster templates; \
                 its existing clusters keep being operated."
            ))
        } else {
            Ok(())
        }
    }

    pub fn loaded(&self) -> impl Iterator<Item = &Arc<LoadedDriver>> {
        self.entries.iter().filter_map(|e| match &e.state {
            DriverState::Loaded(d) => Some(d),
            _ => None,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<LoadedDriver>> {
        self.loaded().find(|d| d.name() == name)
    }

    /// What differs between the manifests in `plugins_dir` now and the
    /// ones this registry was loaded from, one sentence per driver (for the
    /// log on SIGHUP).
    pub fn changes_on_disk(&self, plugins_dir: &Path) -> anyhow::Result<Vec<String>> {
        let files = manifest::read_dir(plugins_dir)?;
        let mut changes = Vec::new();
        for file in &files {
            let name = file
                .manifest
                .as_ref()
                .map_or(file.stem.clone(), |m| m.name.clone());
            let before = self.entries.iter().find(|e| e.name == name);
            let change = match (&file.manifest, before.and_then(|e| e.manifest.as_ref())) {
                (Err(reason), _) => Some(format!("{name}: manifest unreadable ({reason})")),
                (Ok(m), None) if before.is_none() => Some(format!(
                    "{name}: registered ({})",
                    if m.enabled { "enabled" } else { "disabled" }
                )),
                (Ok(_), None) => Some(format!("{name}: manifest readable again")),
                (Ok(now), Some(was)) if now == was => None,
                (Ok(now), Some(was)) => {
                    let mut what = Vec::new();
                    if now.sha256 != was.sha256 || now.library != was.library {
                        what.push("library replaced".to_owned());
                    }
                    if now.enabled != was.enabled {
                        what.push(if now.enabled { "enabled" } else { "disabled" }.to_owned());
                    }
                    if now.config != was.config {
                        what.push("config changed".to_owned());
                    }
                    if now.isolation != was.isolation {
                        what.push(format!("isolation {}", now.isolation));
                    }
                    if now.draining != was.draining {
                        what.push(
                            if now.draining {
                                "draining"
                            } else {
                                "no longer draining"
                            }
                            .to_owned(),
                        );
                    }
                    if what.is_empty() {
                        what.push("manifest changed".to_owned());
                    }
                    Some(format!("{name}: {}", what.join(", ")))
                }
            };
            changes.extend(change);
        }
        for entry in &self.entries {
            let on_disk = files.iter().any(|f| {
                f.manifest
                    .as_ref()
                    .map_or(f.stem == entry.name, |m| m.name == entry.name)
            });
            if !on_disk {
                changes.push(format!("{}: unregistered", entry.name));
            }
        }
        Ok(changes)
    }

    /// The enabled driver providing a tuple (at most one, by construction).
    pub fn for_tuple(&self, server_type: &str, os: &str, coe: &str) -> Option<&Arc<LoadedDriver>> {
        let wanted = Provides::new(server_type, os, coe);
        self.loaded().find(|d| d.info.provides.contains(&wanted))
    }
}

fn load_checked(
    manifest: &Manifest,
    plugins_dir: &Path,
    earlier: &[DriverEntry],
) -> Result<Arc<LoadedDriver>, String> {
    let driver = loader::load(manifest, plugins_dir).map_err(|e: LoadError| e.to_string())?;
    // Manifests edited by hand can still collide; `enable` refuses this, the
    // loader refuses the later one (in file-name order) rather than pick silently.
    for entry in earlier {
        if let DriverState::Loaded(other) = &entry.state {
            if let Some(tuple) = first_shared(&driver.info.provides, &other.info.provides) {
                return Err(format!(
                    "provides {tuple}, which enabled driver {} already provides; disable one of {} and {}",
                    other.name(),
                    other.name(),
                    driver.name()
                ));
            }
        }
    }
    Ok(driver)
}

/// The first tuple two drivers both provide.
pub fn first_shared<'a>(a: &'a [Provides], b: &[Provides]) -> Option<&'a Provides> {
    a.iter().find(|p| b.contains(p))
}

pub fn format_provides(provides: &[Provides]) -> String {
    provides
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_swarm_mode_name_stands_for_the_bundled_swarm_driver() {
        let registry = Registry::default();
        let upstream =
            upstream_name(&registry, "swarm_fedora_atomic_v2").expect("an upstream name");
        assert_eq!(upstream.driver, "swarm_fedora_atomic_v1");
        assert_eq!(upstream.coe, "swarm-mode");
        assert_eq!(upstream_name(&registry, "swarm_fedora_atomic_v1"), None);
        assert_eq!(upstream_name(&registry, "nope_v1"), None);
        // A driver registered under the upstream name is that driver.
        let registry = Registry {
            entries: vec![DriverEntry {
                name: "swarm_fedora_atomic_v2".into(),
                manifest: None,
                state: DriverState::Disabled,
            }],
        };
        assert_eq!(upstream_name(&registry, "swarm_fedora_atomic_v2"), None);
    }
}

/// The registry a running process uses, replaced whole when `plugins.d`
/// changes: a request or job takes the current one and keeps it for its
/// duration.
#[derive(Debug)]
pub struct Drivers(std::sync::RwLock<Arc<Registry>>);

impl Drivers {
    pub fn new(registry: Registry) -> Self {
        Self(std::sync::RwLock::new(Arc::new(registry)))
    }

    pub fn current(&self) -> Arc<Registry> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedDriver>> {
        self.current().get(name).cloned()
    }

    pub fn replace(&self, registry: Registry) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(registry);
    }
}
