//! `ssfd serve` as a service: starts the daemon, tells the service manager when it is ready
//! (sd_notify `READY=1`, `STATUS=`, watchdog pings), reloads the configuration on SIGHUP and
//! drains on SIGTERM/SIGINT within `[server] shutdown_grace`.
//!
//! Without `NOTIFY_SOCKET` (not under systemd) the notifications are no-ops; signals work the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::cli::logging::{self, LevelChange, LogHandle, LoggingError};
use crate::config::Config;
use crate::daemon::{Daemon, DaemonError};

/// How long the runtime may take, after the daemon stopped, to end what it still runs (blocking
/// database reads): the grace period is over by then, so this stays short.
const RUNTIME_STOP: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Logging(#[from] LoggingError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// Runs the daemon until SIGTERM or SIGINT. `config_path` is the file a SIGHUP reloads (none:
/// the built-in defaults are in force and there is nothing to reload).
pub fn run(
    config_path: Option<PathBuf>,
    config: Config,
    log_level: Option<String>,
) -> Result<(), ServiceError> {
    let log = logging::init(&config.log, log_level.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServiceError::Runtime)?;
    let result = rt.block_on(serve(config_path, config, log));
    rt.shutdown_timeout(RUNTIME_STOP);
    result
}

/// The signals the service answers. Installed before the daemon starts, so that a signal sent
/// as soon as `READY=1` arrives is never met by the default action (which, for SIGHUP, kills).
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

enum Event {
    Stop(&'static str),
    Reload,
    Tick,
}

impl Signals {
    fn install() -> Result<Signals, ServiceError> {
        let s = |kind| signal(kind).map_err(ServiceError::Signals);
        Ok(Signals {
            term: s(SignalKind::terminate())?,
            int: s(SignalKind::interrupt())?,
            hup: s(SignalKind::hangup())?,
        })
    }

    /// The next stop or reload signal.
    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Stop("SIGTERM"),
            _ = self.int.recv() => Event::Stop("SIGINT"),
            _ = self.hup.recv() => Event::Reload,
        }
    }

    async fn next_stop(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

async fn serve(
    config_path: Option<PathBuf>,
    config: Config,
    log: LogHandle,
) -> Result<(), ServiceError> {
    let mut signals = Signals::install()?;
    notify(&[NotifyState::Status("starting")]);
    let token_source = token_source(&config);
    let daemon = match Daemon::start(config).await {
        Ok(d) => d,
        Err(e) => {
            notify(&[NotifyState::Status(&format!("failed to start: {e}"))]);
            return Err(e.into());
        }
    };
    if let Some(source) = token_source {
        tracing::info!(token_file = %source, "the admin token is in this file");
    }
    let mut status = ready_status(&daemon);
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    let every = watchdog_interval();
    let mut watchdog = every.map(|every| {
        tracing::info!(
            interval_ms = every.as_millis() as u64,
            "watchdog enabled; pinging"
        );
        tokio::time::interval(every)
    });
    let mut wedged = false;

    let signal_name = loop {
        let event = tokio::select! {
            e = signals.next() => e,
            _ = tick(&mut watchdog) => Event::Tick,
        };
        match event {
            Event::Stop(name) => break name,
            Event::Reload => {
                let note = reload(&daemon, config_path.as_deref(), &log);
                status = format!("{}; {note}", ready_status(&daemon));
                notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
            }
            Event::Tick => {
                // Alive means able to commit: a writer that is stuck (a disk that hangs, a lock
                // held elsewhere) gets no ping, so the service manager restarts ssfd.
                let check = every.unwrap_or(Duration::from_secs(1)) / 2;
                let writable = tokio::time::timeout(check, daemon.app.store.writable())
                    .await
                    .unwrap_or(false);
                if writable {
                    notify(&[NotifyState::Watchdog]);
                    if std::mem::take(&mut wedged) {
                        tracing::info!("the store commits again; watchdog pings resumed");
                    }
                } else if !std::mem::replace(&mut wedged, true) {
                    tracing::error!("the store cannot commit; not pinging the watchdog");
                }
                // The stream count changes through the admin API; keep the summary true.
                let now = ready_status(&daemon);
                if !status.starts_with(&now) {
                    status = now;
                    notify(&[NotifyState::Status(&status)]);
                }
            }
        }
    };

    let grace = daemon.app.config().server.shutdown_grace;
    tracing::info!(
        signal = signal_name,
        grace_secs = grace.as_secs_f64(),
        "stopping: no new connections; in-flight requests may finish"
    );
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: draining in-flight requests"),
    ]);
    tokio::select! {
        _ = daemon.shutdown() => tracing::info!("stopped"),
        name = signals.next_stop() => {
            tracing::warn!(signal = name, "a second stop signal; exiting without waiting for the drain");
        }
    }
    Ok(())
}

/// Waits for the next watchdog tick, or forever when the watchdog is off.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Where the admin token was read from, for one log line; `None` for an inline token.
fn token_source(config: &Config) -> Option<String> {
    if config.admin.token.is_some() {
        return None;
    }
    Some(config.admin.token_file.display().to_string())
}

/// The one-line `STATUS=` summary of a running daemon.
fn ready_status(daemon: &Daemon) -> String {
    let streams = daemon.app.registry.len();
    format!(
        "ready: {streams} stream{}, push {}, admin {}",
        if streams == 1 { "" } else { "s" },
        daemon.push_addr,
        daemon.admin_addr
    )
}

/// Half of `WATCHDOG_USEC`, when the service manager asked for pings (sd_watchdog_enabled(3):
/// `WATCHDOG_PID`, when set, must be this process).
fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// Sends a notification to the service manager; a failure is logged, never fatal.
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Rereads the configuration file and applies what can change while running. Returns a short
/// note for `STATUS=`.
fn reload(daemon: &Daemon, path: Option<&Path>, log: &LogHandle) -> &'static str {
    // Certificates are reread whether or not there is a configuration file: a renewal needs no
    // configuration change.
    if let Some(tls) = &daemon.tls {
        tls.reload_logged("SIGHUP");
    }
    let Some(path) = path else {
        tracing::warn!(
            "SIGHUP: started without --config, so there is no file to reload; nothing changed"
        );
        return "no configuration file to reload";
    };
    let mut states = vec![NotifyState::Reloading];
    // systemd 253 and newer insist on a timestamp with RELOADING=1.
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
    tracing::info!(path = %path.display(), "SIGHUP: reloading the configuration");
    let old = daemon.app.config();
    let mut new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                error = %e,
                "configuration not reloaded ({e}); the previous configuration stays in force"
            );
            return "configuration reload failed, previous configuration kept (see the log)";
        }
    };
    for key in keep_fixed(&old, &mut new) {
        tracing::warn!(
            key,
            "{key} cannot change while running; keeping the running value until a restart"
        );
    }
    match log.apply(&old.log, &new.log) {
        Ok(LevelChange::Applied(level)) => tracing::info!(level = %level, "log level changed"),
        Ok(LevelChange::Overridden(by)) => tracing::warn!(
            overridden_by = by,
            "log.level changed in the file, but {by} sets the level; not applied"
        ),
        Ok(LevelChange::Unchanged) => {}
        Err(e) => {
            // The file parsed, so the directive is valid; a failure here is the logger's own.
            tracing::warn!(error = %e, "log.level not applied")
        }
    }
    daemon.app.replace_config(new);
    tracing::info!(path = %path.display(), "configuration reloaded");
    "configuration reloaded"
}

/// Puts back into `new` the settings a running daemon cannot change (bound sockets, the open
/// database, the admin token it hashed, the log format, the drain period its listeners were
/// given) and returns the keys that had differed.
fn keep_fixed(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    if new.server.push_listen != old.server.push_listen {
        new.server.push_listen = old.server.push_listen;
        kept.push("server.push_listen");
    }
    if new.server.admin_listen != old.server.admin_listen {
        new.server.admin_listen = old.server.admin_listen;
        kept.push("server.admin_listen");
    }
    if new.server.shutdown_grace != old.server.shutdown_grace {
        new.server.shutdown_grace = old.server.shutdown_grace;
        kept.push("server.shutdown_grace");
    }
    if new.storage.path != old.storage.path {
        new.storage.path = old.storage.path.clone();
        kept.push("storage.path");
    }
    if new.storage.url != old.storage.url {
        new.storage.url = old.storage.url.clone();
        kept.push("storage.url");
    }
    if new.storage.password_file != old.storage.password_file {
        new.storage.password_file = old.storage.password_file.clone();
        kept.push("storage.password_file");
    }
    if new.admin.token != old.admin.token {
        new.admin.token = old.admin.token.clone();
        kept.push("admin.token");
    }
    if new.admin.token_file != old.admin.token_file {
        new.admin.token_file = old.admin.token_file.clone();
        kept.push("admin.token_file");
    }
    if new.server.tls != old.server.tls {
        // The listeners were bound as TLS or plain; the files themselves are reread.
        new.server.tls = old.server.tls.clone();
        new.server.public_base_url = old.server.public_base_url.clone();
        kept.push("server.tls");
    }
    if new.server.max_connections_per_address != old.server.max_connections_per_address {
        new.server.max_connections_per_address = old.server.max_connections_per_address;
        kept.push("server.max_connections_per_address");
    }
    if new.log.format != old.log.format {
        new.log.format = old.log.format;
        kept.push("log.format");
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_half_the_period_and_only_for_this_process() {
        assert_eq!(
            watchdog_interval_from(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(None, Some("7"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
    }

    #[test]
    fn fixed_settings_survive_a_reload() {
        let old = Config::default();
        let mut new = Config::default();
        new.server.push_listen = "0.0.0.0:9000".parse().unwrap();
        new.storage.path = "/elsewhere.db".into();
        new.admin.token = Some("another-token".into());
        new.log.format = crate::config::LogFormat::Json;
        new.log.level = "debug".into();
        new.server.max_body_bytes = 1234;
        let kept = keep_fixed(&old, &mut new);
        assert_eq!(
            kept,
            vec![
                "server.push_listen",
                "storage.path",
                "admin.token",
                "log.format"
            ]
        );
        assert_eq!(new.server.push_listen, old.server.push_listen);
        assert_eq!(new.storage.path, old.storage.path);
        assert_eq!(new.admin.token, None);
        assert_eq!(new.log.format, old.log.format);
        // What can change, does.
        assert_eq!(new.log.level, "debug");
        assert_eq!(new.server.max_body_bytes, 1234);
    }
}
