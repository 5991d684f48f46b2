//! `plugins.d/<name>.toml`: one manifest per registered driver. Each file is
//! parsed on its own so a broken one only disables its driver.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context};
use magnum_driver_abi::Provides;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Metadata read from the library at registration, kept so that listing
/// drivers never needs to load them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registered {
    /// The driver's own version.
    pub version: String,
    /// The ABI version the library was built against.
    pub abi_version: String,
    pub description: String,
    pub provides: Vec<Provides>,
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_path: Option<String>,
    #[serde(default)]
    pub beta: bool,
    /// RFC 3339 time of registration.
    pub registered_at: String,
}

/// Where a driver's code runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Inside the calling process: fastest; a crash of the driver is a
    /// crash of the service.
    #[default]
    InProcess,
    /// In a `magnum-driver-runner` process: a crash, a hang or runaway
    /// memory costs one failed call.
    Process,
}

impl Isolation {
    pub fn is_default(&self) -> bool {
        *self == Self::InProcess
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Process => "process",
        }
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "in-process" => Ok(Self::InProcess),
            "process" => Ok(Self::Process),
            other => Err(format!(
                "isolation '{other}' is neither \"in-process\" nor \"process\""
            )),
        }
    }
}

/// One manifest file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The driver key (by default the library's `info().name`); the file is
    /// `<name>.toml`.
    pub name: String,
    /// Path of the shared library; relative paths are relative to the
    /// manifest's directory.
    pub library: PathBuf,
    /// Hex sha256 of the library at registration.
    pub sha256: String,
    pub enabled: bool,
    /// An enabled driver that takes no new clusters or templates, while
    /// its existing clusters keep being operated (`magnum-driver-manage
    /// drain`): how an operator retires a driver.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    /// Where the driver's code runs: in `magnumd` itself, or in a runner
    /// process of its own (`magnum-driver-manage register --isolation`).
    #[serde(default, skip_serializing_if = "Isolation::is_default")]
    pub isolation: Isolation,
    /// Semver requirement on the driver ABI, e.g. `^1.0`.
    pub abi: String,
    /// Passed to the driver's constructor as a JSON object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, toml::Value>,
    pub registered: Registered,
}

impl Manifest {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            // toml's Display draws a multi-line caret diagram; logs want one line.
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            match line {
                Some(line) => anyhow::anyhow!("line {line}: {}", e.message().trim()),
                None => anyhow::anyhow!("{}", e.message().trim()),
            }
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !valid_name(&self.name) {
            bail!(
                "name '{}' must be 1-64 characters of [A-Za-z0-9_-]",
                self.name
            );
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("sha256 must be 64 hex digits");
        }
        parse_requirement(&self.abi)?;
        Ok(())
    }

    /// The library path, resolved against the manifest's directory.
    pub fn library_path(&self, plugins_dir: &Path) -> PathBuf {
        if self.library.is_absolute() {
            self.library.clone()
        } else {
            plugins_dir.join(&self.library)
        }
    }

    /// The manifest's `config` table as the JSON the driver receives.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".to_owned())
    }

    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses `^M.m` (or `M.m`, `=M.m.p`-free forms) into (major, minor).
pub fn parse_requirement(req: &str) -> anyhow::Result<(u64, u64)> {
    let body = req.trim().trim_start_matches('^');
    let mut parts = body.split('.');
    let parse = |p: Option<&str>| -> anyhow::Result<u64> {
        p.unwrap_or("0")
            .parse::<u64>()
            .with_context(|| format!("abi requirement '{req}' is not of the form ^MAJOR.MINOR"))
    };
    let major = parse(parts.next())?;
    let minor = parse(parts.next())?;
    if parts.next().is_some_and(|p| p.parse::<u64>().is_err()) {
        bail!("abi requirement '{req}' is not of the form ^MAJOR.MINOR");
    }
    Ok((major, minor))
}

/// A manifest file as found on disk: parsed, or why not.
#[derive(Debug)]
pub struct ManifestFile {
    pub path: PathBuf,
    /// The file stem, used as the driver name when the file cannot be parsed.
    pub stem: String,
    pub manifest: Result<Manifest, String>,
}

/// Reads every `*.toml` in `dir`, sorted by file name. A missing directory is
/// an empty set; an unreadable one is an error.
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<ManifestFile>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let manifest = fs::read_to_string(&path)
                .map_err(|e| format!("cannot read manifest: {e}"))
                .and_then(|text| Manifest::parse(&text).map_err(|e| format!("bad manifest: {e:#}")))
                .and_then(|m| {
                    if m.name == stem {
                        Ok(m)
                    } else {
                        Err(format!(
                            "bad manifest: name '{}' does not match file name '{stem}.toml'",
                            m.name
                        ))
                    }
                });
            ManifestFile {
                path,
                stem,
                manifest,
            }
        })
        .collect())
}

/// Writes `manifest` to `dir/<name>.toml` atomically (temp file + rename).
pub fn write(dir: &Path, manifest: &Manifest) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{}.toml", manifest.name));
    let tmp = dir.join(format!(".{}.toml.tmp", manifest.name));
    let text = format!(
        "# Written by magnum-driver-manage; edit with its enable/disable commands.\n{}",
        manifest.to_toml()?
    );
    fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Hex sha256 of a file's content.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(sha256_hex(&fs::read(path)?))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
