//! The command line: `ssfd serve` runs the daemon; `check-config` and `version` work offline; the
//! other commands talk to a running daemon's admin API. Exit codes: 0 ok, 1 error, 2 usage.

pub mod actions;
pub mod client;
pub mod db;
pub mod events;
pub mod logging;
pub mod step_up;
pub mod streams;
pub mod subject;
pub mod table;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::config::Config;
use client::{AdminClient, ClientError, Target};

const ABOUT: &str =
    "Shared Signals Framework receiver: verifies, stores and acts on CAEP/RISC security events";

const LONG_ABOUT: &str = "\
Shared Signals Framework (SSF) receiver: receives Security Event Tokens from identity providers \
(RFC 8935 push, RFC 8936 poll), verifies them, stores them and turns CAEP/RISC events into \
session revocations.

`ssfd serve` runs the daemon. The other commands manage a running daemon through its admin \
API: they find it and its admin token through receiver.toml (--config, or ./receiver.toml when \
it exists), which --admin-url, --token-file, SSFD_ADMIN_URL and SSFD_ADMIN_TOKEN override.

Exit codes: 0 success, 1 error (including an error answer from the daemon), 2 usage error.

Examples:
  ssfd serve --config /etc/ssfd/receiver.toml
  ssfd streams create --name 'Okta prod' --issuer https://example.okta.com
  ssfd streams list
  ssfd events list --since 1h
  ssfd --admin-url http://10.0.0.5:8081 --token-file ~/.ssfd-token actions list --status dead";

const CLIENT_OPTIONS: &str = "Admin API client options";

#[derive(Parser, Debug)]
#[command(name = "ssfd", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after the command name.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalOpts {
    /// Configuration file (receiver.toml). `serve` uses the built-in defaults without it; the
    /// other commands read ./receiver.toml when it exists.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// The admin API's base URL [default: http:// + server.admin_listen of the configuration].
    #[arg(
        long,
        value_name = "URL",
        env = client::URL_ENV,
        global = true,
        help_heading = CLIENT_OPTIONS
    )]
    pub admin_url: Option<String>,
    /// Read the admin token from FILE [default: $SSFD_ADMIN_TOKEN, else admin.token or the file
    /// admin.token_file of the configuration].
    #[arg(long, value_name = "FILE", global = true, help_heading = CLIENT_OPTIONS)]
    pub token_file: Option<PathBuf>,
    /// Print the daemon's JSON answer (pretty-printed) instead of a table, for scripts.
    #[arg(long, global = true, help_heading = CLIENT_OPTIONS)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    #[command(
        about = "Run the daemon (push listener, admin API, workers)",
        long_about = "Run the daemon: the push listener for transmitters, the admin API, the pollers \
and the action workers, until SIGTERM or SIGINT. Without --config every setting takes its \
built-in default (loopback listeners, ./ssfd.db, an admin token created in \
./ssfd-admin.token).

Examples:
  ssfd serve
  ssfd serve --config /etc/ssfd/receiver.toml --log-level debug"
    )]
    Serve {
        /// Log level or filter (overrides [log] level; RUST_LOG also works).
        #[arg(long, value_name = "LEVEL")]
        log_level: Option<String>,
    },

    #[command(
        subcommand,
        about = "Manage receiver streams (one per transmitter)",
        long_about = "Manage receiver streams: each binds one transmitter (issuer, keys, delivery by \
push or poll) to the policy that turns its events into actions.

Examples:
  ssfd streams create --name 'Okta prod' --issuer https://example.okta.com
  ssfd streams list
  ssfd streams update 3f9c2a... --disable"
    )]
    Streams(streams::StreamsCommand),

    #[command(
        subcommand,
        about = "List and replay received events",
        long_about = "List the Security Event Tokens the daemon received and stored, and replay a \
stream's events through the policy.

Examples:
  ssfd events list --since 1h
  ssfd events replay --stream 3f9c2a... --since 24h"
    )]
    Events(events::EventsCommand),

    #[command(
        subcommand,
        about = "List planned actions and retry failed ones",
        long_about = "List the actions planned for received events (revocations through the ledger and \
the sinks, log entries) with their state, and retry those that failed.

Examples:
  ssfd actions list --status dead
  ssfd actions retry 42"
    )]
    Actions(actions::ActionsCommand),

    #[command(
        subcommand,
        about = "Query the revocation ledger",
        long_about = "Query the revocation ledger the way applications do.

Example:
  ssfd subject check alice@example.com --issued-at 2026-01-31T08:00:00Z"
    )]
    Subject(subject::SubjectCommand),

    #[command(
        subcommand,
        name = "step-up",
        about = "Manage step-up providers (authenticate again, more strongly)",
        long_about = "Manage step-up providers: the OpenID providers (OAuth 2.0 with RFC 9470 acr \
values, or Microsoft Entra conditional access) that make a user authenticate again, more \
strongly, when a signal calls for STEP_UP rather than a logout.

Examples:
  ssfd step-up create --name 'Okta MFA' --issuer https://example.okta.com/oauth2/default --acr-value urn:okta:loa:2fa:any
  ssfd step-up list
  ssfd step-up test 3f9c2a..."
    )]
    StepUp(step_up::StepUpCommand),

    #[command(
        subcommand,
        name = "db",
        about = "Database operations (move SQLite to PostgreSQL)",
        long_about = "Database operations run beside a stopped daemon.

Example:
  ssfd db migrate-to 'postgres://ssfd@db.example/ssfd?sslmode=require' \\
      --password-file /etc/ssfd/pg.password"
    )]
    Db(db::DbCommand),

    #[command(
        about = "Validate a configuration file and print the effective configuration",
        long_about = "Validate a configuration file and print the effective configuration as TOML, \
every default spelled out and the inline admin token redacted. An error names the key and its \
line, and the exit code is 1. The daemon is not contacted.

Examples:
  ssfd check-config --config /etc/ssfd/receiver.toml
  ssfd check-config            # ./receiver.toml, or the built-in defaults"
    )]
    CheckConfig,

    #[command(
        about = "Print the version",
        long_about = "Print the version of this ssfd binary (`ssfd <version>`).

Example:
  ssfd version"
    )]
    Version,
}

/// A command line that clap accepted but that does not make sense (`--poll-url` without
/// `--poll`); it exits 2 like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Where a client command writes its answer, and in which form.
pub struct Out<'a> {
    pub json: bool,
    pub w: &'a mut dyn Write,
}

impl Out<'_> {
    pub fn print_json(&mut self, v: &Value) -> anyhow::Result<()> {
        table::write_json(self.w, v)?;
        Ok(())
    }
}

/// Largest page the admin API serves.
const MAX_PAGE_SIZE: usize = 1000;

/// Fetches up to `limit` items of a paged list, following `nextPageToken`. Returns the items and
/// the token of the page after them ("" when the list ended).
pub async fn fetch_pages(
    api: &AdminClient,
    segments: &[&str],
    query: Vec<(&'static str, String)>,
    limit: usize,
) -> Result<(Vec<Value>, String), ClientError> {
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let want = (limit - items.len()).min(MAX_PAGE_SIZE);
        let mut q = query.clone();
        q.push(("pageSize", want.to_string()));
        if !token.is_empty() {
            q.push(("pageToken", token.clone()));
        }
        let page = api.get(segments, &q).await?;
        let mut got = table::list(&page);
        got.truncate(want);
        let empty = got.is_empty();
        items.extend(got);
        let next = table::text(&page, "nextPageToken");
        // An empty page or a repeated token would otherwise keep us asking forever.
        if next.is_empty() || next == token || empty || items.len() >= limit {
            return Ok((items, next));
        }
        token = next;
    }
}

/// Accepts a duration (`30s`, `5m`) and keeps it as typed, for the API to read.
pub fn parse_duration_arg(s: &str) -> Result<String, String> {
    let t = s.trim();
    humantime::parse_duration(t)
        .map(|_| t.to_string())
        .map_err(|e| format!("{e} (expected a duration such as 30s, 5m or 1h 30m)"))
}

/// Accepts an RFC 3339 time and keeps it as typed.
pub fn parse_rfc3339_arg(s: &str) -> Result<String, String> {
    let t = s.trim();
    crate::clock::parse_rfc3339(t)
        .map(|_| t.to_string())
        .ok_or_else(|| "expected an RFC 3339 time such as 2026-01-31T08:00:00Z".to_string())
}

/// Accepts a duration back from now (`1h`) or an RFC 3339 time.
pub fn parse_since_arg(s: &str) -> Result<String, String> {
    let t = s.trim();
    if humantime::parse_duration(t).is_ok() || crate::clock::parse_rfc3339(t).is_some() {
        Ok(t.to_string())
    } else {
        Err("expected a duration such as 1h or 30m, or an RFC 3339 time".to_string())
    }
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
            if is_broken_pipe(&e) {
                // `ssfd events list | head`: the reader has all it wanted.
                return ExitCode::SUCCESS;
            }
            if let Some(u) = e.downcast_ref::<UsageError>() {
                eprintln!("error: {u}\n\nFor more information, try '--help'.");
                return ExitCode::from(2);
            }
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already holds
/// (`cannot read FILE: No such file` would otherwise repeat the I/O error it wraps).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    table::clean(&line)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    match command {
        Command::Serve { log_level } => {
            let loaded = load_config(global.config.as_deref())?;
            Ok(crate::service::run(
                global.config.clone(),
                loaded,
                log_level,
            )?)
        }
        Command::CheckConfig => check_config(&global),
        Command::Db(c) => {
            let config = match client::config_path(global.config.as_deref()) {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            let mut stdout = std::io::stdout().lock();
            db::run(c, &config, &mut stdout)?;
            Ok(stdout.flush()?)
        }
        Command::Version => {
            let version = env!("CARGO_PKG_VERSION");
            let mut out = std::io::stdout().lock();
            if global.json {
                table::write_json(&mut out, &serde_json::json!({ "version": version }))?;
            } else {
                writeln!(out, "ssfd {version}")?;
            }
            out.flush()?;
            Ok(())
        }
        Command::Streams(c) => {
            let (rt, api) = connect(&global)?;
            to_stdout(global.json, |out| rt.block_on(streams::run(c, &api, out)))
        }
        Command::Events(c) => {
            let (rt, api) = connect(&global)?;
            to_stdout(global.json, |out| rt.block_on(events::run(c, &api, out)))
        }
        Command::Actions(c) => {
            let (rt, api) = connect(&global)?;
            to_stdout(global.json, |out| rt.block_on(actions::run(c, &api, out)))
        }
        Command::Subject(c) => {
            let (rt, api) = connect(&global)?;
            to_stdout(global.json, |out| rt.block_on(subject::run(c, &api, out)))
        }
        Command::StepUp(c) => {
            let (rt, api) = connect(&global)?;
            to_stdout(global.json, |out| rt.block_on(step_up::run(c, &api, out)))
        }
    }
}

/// The admin API client of a client command, and a single-threaded runtime to drive it: one
/// request at a time needs no more.
fn connect(global: &GlobalOpts) -> anyhow::Result<(tokio::runtime::Runtime, AdminClient)> {
    let target = Target {
        admin_url: global.admin_url.clone(),
        token_file: global.token_file.clone(),
        config: global.config.clone(),
        token_env: std::env::var(client::TOKEN_ENV).ok(),
    };
    let api = AdminClient::resolve(&target)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok((rt, api))
}

fn to_stdout(json: bool, f: impl FnOnce(&mut Out<'_>) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    f(&mut Out {
        json,
        w: &mut stdout,
    })?;
    stdout.flush()?;
    Ok(())
}

fn check_config(global: &GlobalOpts) -> anyhow::Result<()> {
    let config = match client::config_path(global.config.as_deref()) {
        Some(path) => {
            let config = Config::load(&path)?;
            eprintln!("{}: OK", path.display());
            config
        }
        None => {
            eprintln!(
                "No --config given and no ./{} here: showing the built-in defaults.",
                client::DEFAULT_CONFIG_FILE
            );
            Config::default()
        }
    };
    let mut out = std::io::stdout().lock();
    write!(out, "{}", config.redacted_toml())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_keeps_its_options() {
        let cli = Cli::try_parse_from([
            "ssfd",
            "serve",
            "--config",
            "r.toml",
            "--log-level",
            "debug",
        ])
        .unwrap();
        assert_eq!(cli.global.config, Some(PathBuf::from("r.toml")));
        assert!(matches!(cli.command, Command::Serve { log_level: Some(ref l) } if l == "debug"));
        let cli = Cli::try_parse_from(["ssfd", "serve", "-c", "r.toml"]).unwrap();
        assert_eq!(cli.global.config, Some(PathBuf::from("r.toml")));
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let a = Cli::try_parse_from(["ssfd", "--json", "streams", "list"]).unwrap();
        let b = Cli::try_parse_from(["ssfd", "streams", "list", "--json"]).unwrap();
        assert!(a.global.json && b.global.json);
    }

    #[test]
    fn every_command_has_a_long_help_with_an_example() {
        fn walk(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_name() == "help" {
                    continue;
                }
                let long = sub
                    .get_long_about()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                assert!(sub.get_about().is_some(), "{name} has no about");
                assert!(long.contains("ssfd "), "{name} has no example");
                walk(sub, &name);
            }
        }
        walk(&Cli::command(), "ssfd");
    }

    #[test]
    fn causes_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(crate::config::ConfigError::Read {
            path: PathBuf::from("/x"),
            source: io,
        });
        assert_eq!(one_line(&e), "cannot read /x: No such file");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&e), "outer: inner");
    }

    #[test]
    fn argument_checks() {
        assert!(parse_since_arg("1h").is_ok());
        assert!(parse_since_arg("2026-01-31T08:00:00Z").is_ok());
        assert!(parse_since_arg("yesterday").is_err());
        assert!(parse_rfc3339_arg("2026-01-31T08:00:00Z").is_ok());
        assert!(parse_rfc3339_arg("1h").is_err());
        assert_eq!(parse_duration_arg(" 30s ").unwrap(), "30s");
        assert!(parse_duration_arg("soon").is_err());
    }
}
