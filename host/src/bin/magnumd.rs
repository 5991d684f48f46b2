//! `magnumd`: the magnum-rs service.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use magnum_host::{
    api::{self, AppState},
    config::{Config, Overrides},
    db::{self, DbPool},
    drivers::Registry,
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
    /// Database: sqlite://PATH (or a plain file path) or
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE
    /// [default: sqlite://<data dir>/magnum.sqlite].
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
    /// A SQLite database is created or migrated first. A PostgreSQL schema
    /// is only checked: if it is behind this binary, serve refuses to start
    /// (run `magnumd db upgrade` as a release step).
    ///
    /// This version serves the API version documents (GET / and GET /v1)
    /// and logs which drivers loaded; the resource API and the conductor
    /// are not built yet.
    Serve,
    /// Manage the database schema.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply every pending migration; print each version applied, then the
    /// current version.
    Upgrade,
    /// Print the schema version (the latest applied migration), or "none".
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    init_logging(&config.log);
    let result = match cli.command {
        Command::Serve => serve(config),
        Command::Db { command } => db_command(&config, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("magnumd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn db_command(config: &Config, command: DbCommand) -> anyhow::Result<()> {
    let pool = DbPool::connect(&config.database_url)?;
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
    }
    Ok(())
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAGNUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!("cannot create data dir {}: {e}", config.data_dir.display())
    })?;
    let pool = DbPool::connect(&config.database_url)?;
    let applied = db::prepare_for_serve(&mut *pool.get()?)?;
    tracing::info!(
        database = %pool.target().display(),
        version = db::schema_version(&mut *pool.get()?)?.as_deref().unwrap_or("none"),
        applied = applied.len(),
        "database ready"
    );
    let registry = Registry::load(&config.plugins_dir)?;
    let loaded = registry.loaded().count();
    tracing::info!(
        plugins_dir = %config.plugins_dir.display(),
        loaded,
        registered = registry.entries.len(),
        "drivers ready"
    );
    let state = Arc::new(AppState { registry, pool });
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
        let listening = listener.local_addr()?;
        tracing::info!(%listening, "serving the Magnum API version documents");
        axum::serve(listener, api::router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM (what systemd and container runtimes send).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
