//! Log output: `text` for people (no colours off a terminal) or `json` (one object per line).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `RUST_LOG` wins over `--log-level`, which wins over `[log] level`.
pub fn init(log: &LogConfig, cli_level: Option<&str>) -> anyhow::Result<()> {
    let directive = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| cli_level.map(String::from))
        .unwrap_or_else(|| log.level.clone());
    let filter = EnvFilter::try_new(&directive)
        .map_err(|e| anyhow::anyhow!("invalid log level {directive:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => {
            // journald stamps every line itself; a second timestamp is noise.
            let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
            let b = builder.with_ansi(std::io::stderr().is_terminal());
            if under_journald {
                b.without_time().try_init()
            } else {
                b.try_init()
            }
        }
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
