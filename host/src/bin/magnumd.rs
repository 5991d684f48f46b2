//! `magnumd`: the magnum-rs service.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use magnum_host::{
    api::{self, AppState},
    config::{Config, LogFormat, Overrides},
    db::{self, DbPool},
    plugins::Registry,
};

/// magnum-rs: OpenStack Magnum's Container Infrastructure Management service.
///
/// Settings come from --config FILE (TOML: bind, data_dir, plugins_dir, log,
/// database_url), then MAGNUM_* environment variables, then flags, each
/// overriding the last.
///
/// Exit status: 0 on a clean shutdown, 1 on a configuration or start-up
/// error (the reason is printed on stderr).
#[derive(Parser)]
#[command(name = "magnumd", version, verbatim_doc_comment)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "MAGNUM_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory: SQLite file, keys, local cloud state [default: ./var].
    #[arg(long, global = true, env = "MAGNUM_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address and port the API listens on [default: 127.0.0.1:9511].
    #[arg(long, global = true, env = "MAGNUM_BIND", value_name = "ADDR:PORT")]
    bind: Option<String>,
    /// Directory of driver manifests [default: plugins.d].
    #[arg(long, global = true, env = "MAGNUM_PLUGINS_DIR", value_name = "DIR")]
    plugins_dir: Option<PathBuf>,
    /// Database: sqlite://PATH (or a plain file path),
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE or
    /// mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (MariaDB 10.6+, MySQL
    /// 8.0.13+) [default: sqlite://<data dir>/magnum.sqlite].
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

#[derive(Subcommand)]
enum Command {
    /// Load the enabled drivers from the plugins directory and serve the API.
    ///
    /// A SQLite database is created or migrated first. A PostgreSQL or
    /// MariaDB/MySQL schema is only checked: if it is behind this binary,
    /// serve refuses to start (run `magnumd db upgrade` as a release step).
    ///
    /// Runs a conductor in the same process (unless `[conductor]
    /// in_process = false`), driving clusters through the `local`
    /// orchestrator, a simulated cloud that creates no real machines.
    Serve {
        /// Serve the API only, with no conductor in this process (as
        /// `[conductor] in_process = false`): conductors run as `magnumd
        /// conductor`, here or on other hosts.
        #[arg(long)]
        api_only: bool,
    },
    /// Run only a conductor (several may share one PostgreSQL or
    /// MariaDB/MySQL database).
    Conductor,
    /// Manage the database schema.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// The configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Access rules (oslo.policy format, upstream Magnum's rule names).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a complete commented configuration: every setting with its
    /// default.
    Sample,
    /// Check FILE as `serve` would read it (keys, values, the files it
    /// names: policy, CA bundles), without starting anything; print what
    /// it sets up, or the first problem and exit 1.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print every rule with its default, commented out, as a policy.yaml
    /// to start from (`[policy] file` names it).
    Sample,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply every pending migration; print each version applied, then the
    /// current version.
    Upgrade,
    /// Print the schema version (the latest applied migration), or "none".
    Version,
    /// Adopt an upstream Magnum database (Magnum 2023.1 through 23.0.0):
    /// cluster templates, clusters with their nodegroups, stacks and
    /// trusts, quotas, federations and the certificates upstream keeps in
    /// its `x509keypair` table, keeping uuids. Rows already here are left
    /// alone, so a second run imports nothing. Prints what it did and every
    /// row it left out with the reason.
    Import {
        /// The upstream database: mysql://USER[:PASSWORD]@HOST[:PORT]/DB
        /// (oslo's mysql+pymysql://… as in magnum.conf is accepted).
        #[arg(long)]
        from: String,
        /// Report what would be imported; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    // SIGHUP's default action kills the process (exit 129); ignore it until
    // the service installs its reload handler, first thing in its runtime.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread
    // starts.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    // These need no configuration: an operator writes the files first.
    match &cli.command {
        Command::Policy {
            command: PolicyCommand::Sample,
        } => {
            print!("{}", magnum_host::policy::Policy::sample());
            return ExitCode::SUCCESS;
        }
        Command::Config {
            command: ConfigCommand::Sample,
        } => {
            print!("{}", magnum_host::config::SAMPLE);
            return ExitCode::SUCCESS;
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => return config_check(file),
        _ => {}
    }
    let overrides = Overrides {
        config: cli.config,
        bind: cli.bind,
        data_dir: cli.data_dir,
        plugins_dir: cli.plugins_dir,
        database_url: cli.database_url,
    };
    let config = match Config::load(&overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("magnumd: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let log = match init_logging(&config) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("magnumd: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve { api_only } => {
            let mut config = config;
            if api_only {
                config.conductor.in_process = false;
            }
            serve(config, &overrides, log, true)
        }
        Command::Conductor => serve(config, &overrides, log, false),
        Command::Db { command } => db_command(&config, command),
        Command::Policy { .. } | Command::Config { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("magnumd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `magnumd config check FILE`: the file alone, environment and flags
/// aside, so what is checked is what the file says.
fn config_check(file: &std::path::Path) -> ExitCode {
    let overrides = Overrides {
        config: Some(file.to_owned()),
        ..Default::default()
    };
    match Config::load(&overrides) {
        Ok(c) => {
            println!("{}: ok", file.display());
            println!("  bind              {}", c.bind);
            println!("  data_dir          {}", c.data_dir.display());
            println!("  plugins_dir       {}", c.plugins_dir.display());
            println!(
                "  database          {}",
                db::DbTarget::parse(&c.database_url)
                    .map(|t| t.display())
                    .unwrap_or_default()
            );
            println!("  auth              {}", c.auth.mode);
            println!("  orchestrator      {}", c.conductor.orchestrator);
            println!(
                "  conductor         {}",
                if c.conductor.in_process {
                    "in the serve process"
                } else {
                    "separate (magnumd conductor)"
                }
            );
            println!(
                "  policy overrides  {}",
                if c.policy.overridden().is_empty() {
                    "none".to_owned()
                } else {
                    c.policy.overridden().join(", ")
                }
            );
            if !c.plugins_dir.is_dir() {
                println!(
                    "  warning: {} does not exist: no driver would load",
                    c.plugins_dir.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("magnumd: {}: {e:#}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn db_command(config: &Config, command: DbCommand) -> anyhow::Result<()> {
    let pool = DbPool::open(&config.database_url, 1, config.database)?;
    let mut conn = pool.get()?;
    match command {
        DbCommand::Upgrade => {
            for version in db::migrate(&mut conn)? {
                println!("applied {version}");
            }
            let version = db::schema_version(&mut conn)?;
            println!("version {}", version.as_deref().unwrap_or("none"));
        }
        DbCommand::Version => {
            let version = db::schema_version(&mut conn)?;
            println!("{}", version.as_deref().unwrap_or("none"));
        }
        DbCommand::Import { from, dry_run } => {
            db::prepare_for_serve(&mut conn)?;
            // The drivers decide which imported cluster this service can
            // operate; the sealing key is the one `serve` uses.
            let registry = magnum_host::plugins::registry::Registry::load(&config.plugins_dir)?;
            let authority =
                magnum_host::certs::Authority::load(config.certificates.clone(), &config.data_dir)?;
            let report =
                magnum_host::import::run(&mut conn, &from, &registry, &authority, dry_run)?;
            print!("{}", report.render());
        }
    }
    Ok(())
}

/// Applies a new filter text to the running subscriber.
type SwapFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// What SIGHUP changes in the running process's logging: the filter, and
/// the log file (reopened at its path, after logrotate moved it).
struct LogReload {
    filter: SwapFilter,
    file: Option<LogFile>,
}

/// The `log_file`, shared by every log line's writer.
#[derive(Clone)]
struct LogFile {
    path: PathBuf,
    file: Arc<std::sync::Mutex<std::fs::File>>,
}

impl LogFile {
    fn open(path: &std::path::Path) -> anyhow::Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            file: Arc::new(std::sync::Mutex::new(Self::append(path)?)),
        })
    }

    fn append(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
        use anyhow::Context;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the log file {}", path.display()))
    }

    fn reopen(&self) -> anyhow::Result<()> {
        let fresh = Self::append(&self.path)?;
        *self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }
}

impl std::io::Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // One formatted event arrives as one write: lines never interleave.
        self.file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = &'a LogFile;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

fn init_logging(config: &Config) -> anyhow::Result<LogReload> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let from_env = std::env::var("MAGNUM_LOG").is_ok();
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAGNUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log));
    let file = config.log_file.as_deref().map(LogFile::open).transpose()?;
    let (writer, ansi) = match &file {
        Some(f) => (BoxMakeWriter::new(f.clone()), false),
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
    };
    let reload: Box<dyn Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync> =
        match config.log_format {
            LogFormat::Text => {
                let builder = tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(writer)
                    .with_ansi(ansi)
                    .with_filter_reloading();
                let handle = builder.reload_handle();
                builder.init();
                Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
            }
            LogFormat::Json => {
                // The request's span (its `id`) rides on every line it logs.
                let builder = tracing_subscriber::fmt()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_env_filter(filter)
                    .with_writer(writer)
                    .with_filter_reloading();
                let handle = builder.reload_handle();
                builder.init();
                Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
            }
        };
    Ok(LogReload {
        filter: Box::new(move |filter: &str| {
            if from_env {
                // The environment wins over the file, at start as on reload.
                return Err("MAGNUM_LOG is set; it stays in force".to_owned());
            }
            reload(tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| e.to_string())?)
        }),
        file,
    })
}

/// SIGHUP (what logrotate and `systemctl reload` send) must never kill the
/// service, as the default action would (exit 129). It re-reads the
/// configuration file's log filter and applies it, reopens the log file,
/// and reloads the drivers if `plugins.d` changed (as the periodic check
/// does anyway, see [`reload_drivers`]). `hangups` is installed first thing in the
/// runtime, so a SIGHUP during start-up is handled here too.
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    overrides: Overrides,
    log: LogReload,
    state: Arc<AppState>,
) {
    while hangups.recv().await.is_some() {
        match Config::load(&overrides) {
            Ok(config) => {
                if let Some(file) = &log.file {
                    match file.reopen() {
                        Ok(()) => {
                            tracing::info!(file = %file.path.display(), "SIGHUP: log file reopened")
                        }
                        Err(e) => tracing::warn!("SIGHUP: {e:#}; logging on to the old file"),
                    }
                }
                match (log.filter)(&config.log) {
                    Ok(()) => {
                        tracing::info!(filter = %config.log, "SIGHUP: log filter applied")
                    }
                    Err(why) => tracing::warn!("SIGHUP: log filter not changed: {why}"),
                }
                reload_drivers(&state, &config, "SIGHUP").await;
            }
            Err(e) => tracing::warn!("SIGHUP: configuration not reloaded: {e:#}"),
        }
    }
}

/// Serialises reloads (SIGHUP and the periodic check).
static RELOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How often `plugins.d` is compared with what is loaded, so that
/// `magnum-driver-manage` commands take effect without a signal.
const PLUGINS_CHECK: std::time::Duration = std::time::Duration::from_secs(3);

/// Re-reads `plugins.d` and, if it changed, swaps in a registry with the
/// changes: new and re-enabled drivers load, disabled and unregistered
/// ones stop taking work, a replaced library serves new operations while
/// running ones finish on the old instance, and unchanged drivers keep
/// theirs. `why` names the trigger in the log.
async fn reload_drivers(state: &Arc<AppState>, config: &Config, why: &'static str) {
    let _one_at_a_time = RELOADING.lock().await;
    let current = state.registry.current();
    let plugins_dir = config.plugins_dir.clone();
    let changes = match current.changes_on_disk(&plugins_dir) {
        Ok(changes) => changes,
        Err(e) => {
            tracing::warn!("{why}: cannot read plugins.d: {e:#}");
            return;
        }
    };
    if changes.is_empty() {
        if why == "SIGHUP" {
            tracing::info!("SIGHUP: plugins.d unchanged");
        }
        return;
    }
    let deadline = config.drivers.call_timeout();
    let health_dir = magnum_host::plugins::health_dir(&config.data_dir);
    let reloaded = tokio::task::spawn_blocking(move || {
        let registry = current.reload(&plugins_dir)?;
        for driver in registry.loaded() {
            driver.set_deadline(deadline);
            driver.report_health_in(health_dir.clone());
        }
        anyhow::Ok(registry)
    })
    .await;
    match reloaded {
        Ok(Ok(registry)) => {
            let loaded = registry.loaded().count();
            state.registry.replace(registry);
            tracing::warn!(
                changes = %changes.join("; "),
                loaded,
                "{why}: plugins.d changed; drivers reloaded"
            );
        }
        Ok(Err(e)) => tracing::error!(
            "{why}: plugins.d changed but cannot be read: {e:#}; drivers kept as they were"
        ),
        Err(e) => tracing::error!("{why}: driver reload failed: {e}; drivers kept as they were"),
    }
}

/// Checks `plugins.d` every [`PLUGINS_CHECK`]; see [`reload_drivers`].
async fn watch_plugins(state: Arc<AppState>, config: Config) {
    loop {
        tokio::time::sleep(PLUGINS_CHECK).await;
        reload_drivers(&state, &config, "plugins.d check").await;
    }
}

fn serve(
    config: Config,
    overrides: &Overrides,
    log: LogReload,
    api_enabled: bool,
) -> anyhow::Result<()> {
    // Bind first: a taken port must fail before anything is migrated or
    // created on disk.
    let listen = |addr: std::net::SocketAddr| -> anyhow::Result<std::net::TcpListener> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    let listener = if api_enabled {
        Some(listen(config.bind)?)
    } else {
        None
    };
    // A conductor alone has no API: `[metrics] bind` gives it /metrics and
    // /healthcheck of its own.
    let metrics_listener = match config.metrics.bind {
        Some(addr) if !api_enabled && config.metrics.enabled => Some(listen(addr)?),
        _ => None,
    };
    let heat = config.conductor.orchestrator == magnum_host::config::OrchestratorKind::Heat;
    if !config.plugins_dir.is_dir() {
        let why = format!(
            "plugins directory {} does not exist: no driver can load, so every template and \
             cluster request would be refused; set plugins_dir (or --plugins-dir) to the \
             directory magnum-driver-manage registers drivers in",
            config.plugins_dir.display()
        );
        if heat {
            anyhow::bail!(why);
        }
        tracing::error!("{why}");
    }
    // It holds the SQLite database, the sealing key and the cloud's state.
    magnum_host::files::private_dir(&config.data_dir).map_err(|e| {
        anyhow::anyhow!("cannot create data dir {}: {e}", config.data_dir.display())
    })?;
    // Every running conductor job holds a connection: leave room for the API.
    let pool_size = DbPool::DEFAULT_MAX_SIZE.max(config.conductor.concurrency as u32 + 6);
    let pool = DbPool::open(&config.database_url, pool_size, config.database)?;
    let applied = db::prepare_for_serve(&mut *pool.get()?)?;
    tracing::info!(
        database = %pool.target().display(),
        version = db::schema_version(&mut *pool.get()?)?.as_deref().unwrap_or("none"),
        applied = applied.len(),
        "database ready"
    );
    // Before the first load: drivers in process mode start a runner there.
    magnum_host::plugins::runner::set_runner_memory_mb(config.drivers.runner_memory_mb);
    let registry = Registry::load(&config.plugins_dir)?;
    // Call deadlines, and where each driver's health is written for
    // `magnum-driver-manage list-drivers`.
    let health_dir = magnum_host::plugins::health_dir(&config.data_dir);
    for driver in registry.loaded() {
        driver.set_deadline(config.drivers.call_timeout());
        driver.report_health_in(health_dir.clone());
    }
    let loaded = registry.loaded().count();
    tracing::info!(
        plugins_dir = %config.plugins_dir.display(),
        loaded,
        registered = registry.entries.len(),
        "drivers ready"
    );
    if loaded == 0 {
        tracing::error!(
            plugins_dir = %config.plugins_dir.display(),
            "no driver is loaded: every template and cluster request will be refused \
             (register and enable drivers with magnum-driver-manage)"
        );
    }
    // One TLS for every OpenStack client (the insecure warning once).
    let tls = magnum_host::app::openstack_tls(&config)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let overrides = overrides.clone();
    runtime.block_on(async move {
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let state = Arc::new(AppState::from_config(&config, registry, pool, tls.as_ref()).await?);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let shutdown = shutdown_signal();
        let hangups = tokio::spawn(reload_on_hangup(hangups, overrides, log, state.clone()));
        let watcher = tokio::spawn(watch_plugins(state.clone(), config.clone()));
        let conductor = if config.conductor.in_process || !api_enabled {
            let conductor = Arc::new(magnum_host::conductor::Conductor::new(
                state.clone(),
                magnum_host::orchestrator::from_config(&config, tls.as_ref())?,
                magnum_host::conductor::Settings::from_config(&config.conductor),
            ));
            Some(tokio::spawn(conductor.run(stop_rx)))
        } else {
            None
        };
        if let Some(listener) = listener {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let listening = listener.local_addr()?;
            tracing::info!(%listening, "serving the Magnum v1 API");
            axum::serve(listener, api::router(state))
                .with_graceful_shutdown(shutdown)
                .await?;
        } else if let Some(listener) = metrics_listener {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let listening = listener.local_addr()?;
            tracing::info!(%listening, "serving /metrics and /healthcheck");
            axum::serve(listener, api::metrics_router(state))
                .with_graceful_shutdown(shutdown)
                .await?;
        } else {
            shutdown.await;
        }
        let _ = stop_tx.send(true);
        hangups.abort();
        watcher.abort();
        if let Some(task) = conductor {
            let _ = task.await;
        }
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM (what systemd and container runtimes send).
/// The handlers are installed when this is called, not when the future is
/// first polled: called before the service says it is listening, a signal
/// sent right after that line shuts it down cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(terminate) => {}
            _ = wait(interrupt) => {}
        }
        tracing::info!("shutting down");
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
