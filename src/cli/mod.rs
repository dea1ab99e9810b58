//! The command line: `ssfd serve` runs the daemon; the other commands talk to a running daemon's
//! admin API. Exit codes: 0 ok, 1 error, 2 usage.

pub mod logging;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

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
            let loaded = load_config(config.as_deref())?;
            Ok(crate::service::run(config, loaded, log_level)?)
        }
    }
}
