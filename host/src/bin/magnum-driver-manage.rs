//! `magnum-driver-manage`: register, enable, disable, verify and list drivers.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use magnum_host::{
    config::{Config, Overrides},
    plugins::{
        conformance, loader,
        manage::{self, OwnerCheck, RegisterOptions},
        manifest::{self, Isolation, Manifest},
    },
};

/// Manage magnum-rs COE drivers: one TOML manifest per driver in the plugins
/// directory, pinning the library's sha256 and ABI version.
///
/// Changes take effect when magnumd next starts.
///
/// Exit status:
///   0  success
///   1  the operation failed or was refused (reason on stderr, one line each);
///      for `verify`, at least one check failed
///   2  invalid command line
#[derive(Parser)]
#[command(name = "magnum-driver-manage", version, verbatim_doc_comment)]
struct Cli {
    /// Directory of driver manifests [default: `plugins_dir` of --config,
    /// else plugins.d].
    #[arg(long, global = true, env = "MAGNUM_PLUGINS_DIR", value_name = "DIR")]
    plugins_dir: Option<PathBuf>,
    /// magnumd's TOML configuration, to find its database (disable and
    /// unregister refuse a driver that clusters still use).
    #[arg(long, global = true, env = "MAGNUM_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// magnumd's data directory (where its default SQLite database lives).
    #[arg(long, global = true, env = "MAGNUM_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// magnumd's database URL [default: sqlite://<data dir>/magnum.sqlite].
    #[arg(
        long,
        global = true,
        env = "MAGNUM_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
    Value,
}

#[derive(Subcommand)]
enum Command {
    /// List enabled drivers (column Name, as upstream).
    ListDrivers {
        /// One row per provided (server_type, os, coe) tuple, with those columns.
        #[arg(short = 'd', long)]
        details: bool,
        /// Add the template path column.
        #[arg(short = 'p', long)]
        paths: bool,
        /// Include disabled and broken drivers, with Enabled and Isolation
        /// columns.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(short = 'f', long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Load a driver library, check its ABI, and write a manifest pinning it.
    Register {
        /// Path of the driver's shared library (.so).
        path: PathBuf,
        /// Register under this name instead of the one the driver reports.
        #[arg(long)]
        name: Option<String>,
        /// Enable it too (refused if another enabled driver provides a same tuple).
        #[arg(long)]
        enable: bool,
        /// Overwrite an existing registration of the same name (keeps its enabled
        /// state and config unless --enable/--driver-config are given).
        #[arg(long)]
        replace: bool,
        /// Driver configuration KEY=VALUE passed to its constructor; repeatable.
        #[arg(long = "driver-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        driver_config: Vec<(String, String)>,
        /// Where the driver runs: `in-process` (in magnumd: fastest) or
        /// `process` (in a magnum-driver-runner process with resource limits:
        /// a crash, hang or runaway memory costs one failed call) [default:
        /// the replaced registration's, else in-process].
        #[arg(long, value_name = "MODE", value_parser = parse_isolation)]
        isolation: Option<Isolation>,
    },
    /// Enable a registered driver.
    Enable { name: String },
    /// Stop a driver taking new clusters and templates while its existing
    /// clusters keep being operated (how a driver is retired).
    Drain { name: String },
    /// Let a draining driver take new clusters and templates again.
    Undrain { name: String },
    /// Disable a driver; running services stop using it within seconds.
    /// Refused while clusters created by it exist, unless --force.
    Disable {
        name: String,
        /// Disable even if clusters still use it (they can then not be managed).
        #[arg(long)]
        force: bool,
    },
    /// Remove a driver's manifest (the library file is left alone).
    /// Refused while clusters created by it exist, unless --force.
    Unregister {
        name: String,
        /// Unregister even if clusters still use it.
        #[arg(long)]
        force: bool,
    },
    /// Check ABI and checksum, then run the conformance suite on every
    /// operation the driver declares. Default: all enabled drivers.
    Verify { names: Vec<String> },
    /// Print the full driver info (labels, network and volume drivers) as JSON.
    Show { name: String },
}

fn parse_isolation(s: &str) -> Result<Isolation, String> {
    s.parse()
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("magnum-driver-manage: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        config: cli.config.clone(),
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        plugins_dir: cli.plugins_dir.clone(),
        ..Default::default()
    };
    // The flag (or MAGNUM_PLUGINS_DIR), else the configuration file's, as
    // magnumd resolves it.
    let dir = match (&cli.plugins_dir, &cli.config) {
        (Some(dir), _) => dir.clone(),
        (None, Some(_)) => Config::load(&overrides)?.plugins_dir,
        (None, None) => PathBuf::from("plugins.d"),
    };
    let database_url = || -> anyhow::Result<String> { Ok(Config::load(&overrides)?.database_url) };
    match cli.command {
        Command::ListDrivers {
            details,
            paths,
            all,
            format,
        } => {
            list(&dir, details, paths, all, format)?;
            // What the magnumd processes of this host see (each writes its
            // drivers' health in the data directory): unhealthy drivers
            // are said on stderr, so the table stays upstream's.
            let data_dir = Config::load(&overrides)
                .map(|c| c.data_dir)
                .unwrap_or_else(|_| PathBuf::from(magnum_host::config::DEFAULT_DATA_DIR));
            for r in magnum_host::plugins::read_health(&magnum_host::plugins::health_dir(&data_dir))
            {
                if !r.healthy {
                    eprintln!(
                        "warning: driver {} is UNHEALTHY in magnumd pid {} since {}: {}; its new work is refused",
                        r.driver,
                        r.pid,
                        r.since.map(|s| s.to_rfc3339()).unwrap_or_default(),
                        r.reason
                    );
                } else if r.abandoned_calls > 0 {
                    eprintln!(
                        "warning: driver {} in magnumd pid {}: {} abandoned calls still running",
                        r.driver, r.pid, r.abandoned_calls
                    );
                }
            }
        }
        Command::Register {
            path,
            name,
            enable,
            replace,
            driver_config,
            isolation,
        } => {
            let config: BTreeMap<String, toml::Value> = driver_config
                .into_iter()
                .map(|(k, v)| (k, toml::Value::String(v)))
                .collect();
            let m = manage::register(
                &dir,
                &path,
                RegisterOptions {
                    name,
                    enable,
                    replace,
                    config,
                    isolation,
                },
            )?;
            println!(
                "registered {} {} (abi {}, sha256 {}{}){}",
                m.name,
                m.registered.version,
                m.registered.abi_version,
                &m.sha256[..12],
                if m.isolation.is_default() {
                    String::new()
                } else {
                    format!(", isolation {}", m.isolation)
                },
                if m.enabled { ", enabled" } else { ", disabled" }
            );
        }
        Command::Enable { name } => {
            manage::enable(&dir, &name)?;
            println!("enabled {name}");
        }
        Command::Drain { name } => {
            manage::set_draining(&dir, &name, true)?;
            println!("draining {name}");
        }
        Command::Undrain { name } => {
            manage::set_draining(&dir, &name, false)?;
            println!("{name} no longer draining");
        }
        Command::Disable { name, force } => {
            let url = database_url()?;
            manage::disable(
                &dir,
                &name,
                &OwnerCheck {
                    database_url: &url,
                    force,
                },
            )?;
            println!("disabled {name}");
        }
        Command::Unregister { name, force } => {
            let url = database_url()?;
            manage::unregister(
                &dir,
                &name,
                &OwnerCheck {
                    database_url: &url,
                    force,
                },
            )?;
            println!("unregistered {name}");
        }
        Command::Verify { names } => return verify(&dir, names),
        Command::Show { name } => {
            let m = registered(&dir, &name)?;
            let driver = loader::load(&m, &dir)?;
            println!("{}", serde_json::to_string_pretty(&driver.info)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn registered(dir: &std::path::Path, name: &str) -> anyhow::Result<Manifest> {
    for file in manifest::read_dir(dir)? {
        if file.stem == name {
            return file
                .manifest
                .map_err(|e| anyhow::anyhow!("driver {name}: {e}"));
        }
    }
    anyhow::bail!("no driver named {name} in {}", dir.display())
}

fn verify(dir: &std::path::Path, names: Vec<String>) -> anyhow::Result<ExitCode> {
    let targets: Vec<String> = if names.is_empty() {
        manifest::read_dir(dir)?
            .into_iter()
            .filter(|f| f.manifest.as_ref().map_or(true, |m| m.enabled))
            .map(|f| f.stem)
            .collect()
    } else {
        names
    };
    if targets.is_empty() {
        anyhow::bail!("no enabled drivers in {}", dir.display());
    }
    let mut failed = 0;
    for name in targets {
        let driver = registered(dir, &name).and_then(|m| Ok(loader::load(&m, dir)?));
        let driver = match driver {
            Ok(d) => d,
            Err(e) => {
                failed += 1;
                eprintln!("FAIL {name}: {}", one_line(&format!("{e:#}")));
                continue;
            }
        };
        println!(
            "PASS {name}: loads (abi {}, sha256 pinned)",
            driver.abi_version
        );
        for check in conformance::run(&driver) {
            match check.result {
                Ok(()) => println!("PASS {name}: {}", check.name),
                Err(reason) => {
                    failed += 1;
                    eprintln!("FAIL {name}: {}: {}", check.name, one_line(&reason));
                }
            }
        }
    }
    if failed > 0 {
        eprintln!("magnum-driver-manage: verify: {failed} check(s) failed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn list(
    dir: &std::path::Path,
    details: bool,
    paths: bool,
    all: bool,
    format: Format,
) -> anyhow::Result<()> {
    let mut columns = vec!["Name"];
    if details {
        columns.extend(["Server_Type", "OS", "COE"]);
    }
    if paths {
        columns.push("Template Path");
    }
    if all {
        columns.extend(["Enabled", "Isolation"]);
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for file in manifest::read_dir(dir)? {
        let m = match file.manifest {
            Ok(m) if m.enabled || all => m,
            Ok(_) => continue,
            Err(reason) if all => {
                let mut row = vec![file.stem.clone()];
                row.resize(columns.len() - 2, String::new());
                row.extend([format!("broken: {reason}"), String::new()]);
                rows.push(row);
                continue;
            }
            Err(_) => continue,
        };
        let path = m
            .registered
            .template_path
            .clone()
            .unwrap_or_else(|| "n/a".into());
        let tuples: Vec<Option<&magnum_driver_abi::Provides>> = if details {
            m.registered.provides.iter().map(Some).collect()
        } else {
            vec![None]
        };
        for tuple in tuples {
            let mut row = vec![m.name.clone()];
            if let Some(t) = tuple {
                row.extend([t.server_type.clone(), t.os.clone(), t.coe.clone()]);
            }
            if paths {
                row.push(path.clone());
            }
            if all {
                row.extend([m.enabled.to_string(), m.isolation.to_string()]);
            }
            rows.push(row);
        }
    }
    print!("{}", render(&columns, &rows, format));
    Ok(())
}

/// Renders rows the way cliff (upstream's CLI framework) does.
fn render(columns: &[&str], rows: &[Vec<String>], format: Format) -> String {
    match format {
        Format::Json => {
            let items: Vec<serde_json::Map<String, serde_json::Value>> = rows
                .iter()
                .map(|r| {
                    columns
                        .iter()
                        .zip(r)
                        .map(|(c, v)| (c.to_string(), v.clone().into()))
                        .collect()
                })
                .collect();
            format!(
                "{}\n",
                serde_json::to_string_pretty(&items).unwrap_or_default()
            )
        }
        Format::Csv => {
            let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            let mut out = columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(",")
                + "\n";
            for r in rows {
                out += &(r.iter().map(|v| quote(v)).collect::<Vec<_>>().join(",") + "\n");
            }
            out
        }
        Format::Value => rows.iter().map(|r| r.join(" ") + "\n").collect(),
        Format::Table => {
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    rows.iter()
                        .map(|r| r[i].chars().count())
                        .chain([c.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let rule = widths
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("+");
            let rule = format!("+{rule}+\n");
            let line = |cells: Vec<&str>| {
                let cells: Vec<String> = cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!(" {c:<w$} "))
                    .collect();
                format!("|{}|\n", cells.join("|"))
            };
            let mut out = rule.clone() + &line(columns.to_vec()) + &rule;
            for r in rows {
                out += &line(r.iter().map(String::as_str).collect());
            }
            if !rows.is_empty() {
                out += &rule;
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
