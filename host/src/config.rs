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
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`.
    pub database_url: Option<String>,
}

/// Flag/environment values (clap fills both); `None` falls through to the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub plugins_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub plugins_dir: PathBuf,
    pub log: String,
    /// Always set: `sqlite://<data_dir>/magnum.sqlite` unless configured.
    pub database_url: String,
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
        let data_dir: PathBuf = overrides
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let database_url = overrides
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| {
                format!(
                    "sqlite://{}",
                    data_dir.join(crate::db::SQLITE_FILE).display()
                )
            });
        // Only the scheme is checked here; connecting is the caller's business.
        crate::db::DbTarget::parse(&database_url)?;
        Ok(Self {
            bind,
            data_dir,
            plugins_dir: overrides
                .plugins_dir
                .clone()
                .or(file.plugins_dir)
                .unwrap_or_else(|| DEFAULT_PLUGINS_DIR.into()),
            log: file.log.unwrap_or_else(|| "info".to_owned()),
            database_url,
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
        assert_eq!(cfg.database_url, "sqlite:///srv/magnum/magnum.sqlite");
    }

    #[test]
    fn database_url_from_file_or_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magnum.toml");
        std::fs::write(&path, "database_url = \"postgres://magnum@db/magnum\"\n").unwrap();
        let from_file = Config::load(&Overrides {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_file.database_url, "postgres://magnum@db/magnum");
        let from_flag = Config::load(&Overrides {
            config: Some(path),
            database_url: Some("sqlite:///tmp/m.sqlite".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_flag.database_url, "sqlite:///tmp/m.sqlite");
        let err = Config::load(&Overrides {
            database_url: Some("mysql://root@db/magnum".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("unsupported database URL"),
            "{err}"
        );
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
