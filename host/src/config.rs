//! Configuration: one TOML file, `MAGNUM_*` environment variables and flags,
//! in rising precedence, validated once at start.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context};
use serde::Deserialize;

pub const DEFAULT_BIND: &str = "127.0.0.1:9511";
pub const DEFAULT_DATA_DIR: &str = "var";
pub const DEFAULT_PLUGINS_DIR: &str = "plugins.d";

/// The `--config` file. Unknown keys are an error, so a typo is not ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub plugins_dir: Option<PathBuf>,
    /// A tracing filter such as `info` or `magnum_host=debug`.
    pub log: Option<String>,
}

/// Flag/environment values (clap fills both); `None` falls through to the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub plugins_dir: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub plugins_dir: PathBuf,
    pub log: String,
}

impl Config {
    pub fn load(overrides: &Overrides) -> anyhow::Result<Self> {
        let file = match &overrides.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let bind_text = overrides
            .bind
            .clone()
            .or(file.bind)
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = bind_text.parse().map_err(|_| {
            anyhow!("bind '{bind_text}' is not an ADDRESS:PORT such as {DEFAULT_BIND}")
        })?;
        Ok(Self {
            bind,
            data_dir: overrides
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            plugins_dir: overrides
                .plugins_dir
                .clone()
                .or(file.plugins_dir)
                .unwrap_or_else(|| DEFAULT_PLUGINS_DIR.into()),
            log: file.log.unwrap_or_else(|| "info".to_owned()),
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magnum.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\ndata_dir = \"/srv/magnum\"\n",
        )
        .unwrap();
        let cfg = Config::load(&Overrides {
            config: Some(path.clone()),
            bind: Some("127.0.0.1:9999".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cfg.bind.port(), 9999);
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/magnum"));
        assert_eq!(cfg.plugins_dir, PathBuf::from(DEFAULT_PLUGINS_DIR));
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magnum.toml");
        std::fs::write(&path, "bnd = \"x\"\n").unwrap();
        let err = Config::load(&Overrides {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `bnd`"),
            "{err:#}"
        );
        let err = Config::load(&Overrides {
            bind: Some("localhost".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("ADDRESS:PORT"), "{err}");
    }
}
