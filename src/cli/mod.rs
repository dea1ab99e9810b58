//! The command line: `ssfd serve` runs the daemon; the other commands talk to a running daemon's
//! admin API. Exit codes: 0 ok, 1 error, 2 usage.

pub mod logging;
pub mod transmitter;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::daemon::Daemon;

#[derive(Parser, Debug)]
#[command(
    name = "ssfd",
    version,
    about = "Shared Signals Framework receiver: verifies, stores and acts on CAEP/RISC security events",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon (push listener, admin API, workers).
    Serve {
        /// Configuration file (receiver.toml). Without it, built-in defaults are used.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Log level or filter (overrides [log] level; RUST_LOG also works).
        #[arg(long, value_name = "LEVEL")]
        log_level: Option<String>,
    },
    /// Act at a stream's transmitter through the running daemon's admin API.
    Transmitter(transmitter::TransmitterArgs),
}

pub fn load_config(path: Option<&std::path::Path>) -> Result<Config, crate::config::ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ssfd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, log_level } => {
            let config = load_config(config.as_deref())?;
            logging::init(&config.log, log_level.as_deref())?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(serve(config))
        }
        Command::Transmitter(args) => transmitter::run(args),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let token_path = config.admin.token_file.clone();
    let inline_token = config.admin.token.is_some();
    let daemon = Daemon::start(config).await?;
    if !inline_token {
        eprintln!(
            "ssfd: push listener http://{}  admin API http://{}  admin token in {}",
            daemon.push_addr,
            daemon.admin_addr,
            token_path.display()
        );
    }
    wait_for_stop_signal().await;
    tracing::info!("stopping");
    daemon.shutdown().await;
    Ok(())
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
