//! `magnumd`: the magnum-rs service.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use magnum_host::{
    api::{self, AppState},
    config::{Config, Overrides},
    drivers::Registry,
};

/// magnum-rs: OpenStack Magnum's Container Infrastructure Management service.
///
/// Settings come from --config FILE (TOML: bind, data_dir, plugins_dir, log),
/// then MAGNUM_* environment variables, then flags, each overriding the last.
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the enabled drivers from the plugins directory and serve the API.
    ///
    /// This version serves the API version documents (GET / and GET /v1)
    /// and logs which drivers loaded; the resource API and the conductor
    /// are not built yet.
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        config: cli.config,
        bind: cli.bind,
        data_dir: cli.data_dir,
        plugins_dir: cli.plugins_dir,
    };
    let config = match Config::load(&overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("magnumd: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&config.log);
    match cli.command {
        Command::Serve => match serve(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("magnumd: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
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
    let registry = Registry::load(&config.plugins_dir)?;
    let loaded = registry.loaded().count();
    tracing::info!(
        plugins_dir = %config.plugins_dir.display(),
        loaded,
        registered = registry.entries.len(),
        "drivers ready"
    );
    let state = Arc::new(AppState { registry });
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
