//! Log output: `text` for people (no colours off a terminal, no timestamp under journald) or
//! `json` (one object per line), with a level filter that a configuration reload can replace.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid log level {directive:?} (from {source_name}): {message}")]
    Filter {
        directive: String,
        source_name: &'static str,
        message: String,
    },
    #[error("cannot install the logger: {0}")]
    Install(String),
    #[error("cannot change the log level: {0}")]
    Reload(String),
}

/// Changes the running logger after a configuration reload.
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
    /// Set when `RUST_LOG` or `--log-level` chose the level; `[log] level` then never applies.
    overridden_by: Option<&'static str>,
    format: LogFormat,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle")
            .field("overridden_by", &self.overridden_by)
            .field("format", &self.format)
            .finish()
    }
}

/// What a reload did to the logger, so the caller can say so in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelChange {
    Unchanged,
    Applied(String),
    /// `RUST_LOG` or `--log-level` is in force and wins over the file.
    Overridden(&'static str),
}

/// The filter directive in force and where it came from. `RUST_LOG` wins over `--log-level`,
/// which wins over `[log] level`.
fn choose_directive(
    rust_log: Option<String>,
    cli_level: Option<&str>,
    log: &LogConfig,
) -> (String, &'static str) {
    if let Some(env) = rust_log.filter(|s| !s.trim().is_empty()) {
        return (env, "RUST_LOG");
    }
    if let Some(cli) = cli_level {
        return (cli.to_string(), "--log-level");
    }
    (log.level.clone(), "log.level")
}

fn filter(directive: &str, source_name: &'static str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::try_new(directive).map_err(|e| LoggingError::Filter {
        directive: directive.to_string(),
        source_name,
        message: e.to_string(),
    })
}

/// Installs the global subscriber and returns the handle a reload uses.
pub fn init(log: &LogConfig, cli_level: Option<&str>) -> Result<LogHandle, LoggingError> {
    let (directive, source_name) = choose_directive(std::env::var("RUST_LOG").ok(), cli_level, log);
    let (filter_layer, handle) = reload::Layer::new(filter(&directive, source_name)?);
    let output = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => {
            let plain = tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr);
            // journald stamps every line itself; a second timestamp is noise.
            if std::env::var_os("JOURNAL_STREAM").is_some() {
                plain.without_time().boxed()
            } else {
                plain.boxed()
            }
        }
    };
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(output)
        .try_init()
        .map_err(|e| LoggingError::Install(e.to_string()))?;
    Ok(LogHandle {
        filter: handle,
        overridden_by: (source_name != "log.level").then_some(source_name),
        format: log.format,
    })
}

impl LogHandle {
    /// The output format chosen at start; it cannot change while running.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Applies `[log] level` of a reloaded configuration, unless the command line or `RUST_LOG`
    /// chose the level.
    pub fn apply(&self, old: &LogConfig, new: &LogConfig) -> Result<LevelChange, LoggingError> {
        if old.level == new.level {
            return Ok(LevelChange::Unchanged);
        }
        if let Some(source_name) = self.overridden_by {
            return Ok(LevelChange::Overridden(source_name));
        }
        let f = filter(&new.level, "log.level")?;
        self.filter
            .reload(f)
            .map_err(|e| LoggingError::Reload(e.to_string()))?;
        Ok(LevelChange::Applied(new.level.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(level: &str) -> LogConfig {
        LogConfig {
            format: LogFormat::Text,
            level: level.to_string(),
        }
    }

    #[test]
    fn env_beats_flag_beats_file() {
        let cfg = log("warn");
        assert_eq!(
            choose_directive(Some("debug".into()), Some("error"), &cfg),
            ("debug".to_string(), "RUST_LOG")
        );
        assert_eq!(
            choose_directive(Some("  ".into()), Some("error"), &cfg),
            ("error".to_string(), "--log-level")
        );
        assert_eq!(
            choose_directive(None, None, &cfg),
            ("warn".to_string(), "log.level")
        );
    }

    #[test]
    fn a_bad_directive_names_its_source() {
        let e = filter("ssfd=loud", "--log-level").unwrap_err().to_string();
        assert!(e.contains("--log-level") && e.contains("ssfd=loud"), "{e}");
    }
}
