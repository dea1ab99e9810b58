//! The daemon: opens the store, loads the streams, binds both listeners and runs until told to
//! stop. Tests start it in-process on port 0; `ssfd serve` starts it from the command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::App;
use crate::config::Config;
use crate::outbound::Outbound;
use crate::registry::Registry;
use crate::secrets::{random_token, token_hash};
use crate::store::{Store, StoreError};
use crate::verify::jwks::JwksCache;
use crate::{act, admin, http, intake, transmitter};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin token: {0}")]
    AdminToken(String),
    #[error("{0}")]
    Storage(String),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// A running daemon.
pub struct Daemon {
    pub app: Arc<App>,
    pub push_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Present when `[server.tls]` is set; SIGHUP rereads its files.
    pub tls: Option<Arc<crate::tls::Tls>>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Where the admin token comes from, and whether it was just created.
pub struct AdminToken {
    pub token: String,
    pub created_at: Option<PathBuf>,
}

/// Reads the admin token from the configuration, or from its file, creating the file (0600)
/// with a fresh token when it does not exist.
pub fn load_admin_token(config: &Config) -> Result<AdminToken, DaemonError> {
    if let Some(t) = &config.admin.token {
        return Ok(AdminToken {
            token: t.clone(),
            created_at: None,
        });
    }
    if is_credential(&config.admin.token_file) {
        return admin_token_from_credential(&config.admin.token_file);
    }
    let path = crate::config::resolve_secret_path(&config.admin.token_file)
        .map_err(|e| DaemonError::AdminToken(e.to_string()))?;
    crate::config::check_secret_file_or_fail(&path)
        .map_err(|e| DaemonError::AdminToken(e.to_string()))?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim_end().to_string();
            if token.is_empty() {
                return Err(DaemonError::AdminToken(format!(
                    "{} is empty",
                    path.display()
                )));
            }
            Ok(AdminToken {
                token,
                created_at: None,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_token();
            write_private(&path, &token).map_err(|e| {
                DaemonError::AdminToken(format!("cannot create {}: {e}", path.display()))
            })?;
            Ok(AdminToken {
                token,
                created_at: Some(path),
            })
        }
        Err(e) => Err(DaemonError::AdminToken(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn is_credential(path: &Path) -> bool {
    path.to_str()
        .is_some_and(|p| p.starts_with(crate::config::CREDENTIAL_PREFIX))
}

/// A `credential:NAME` token is provisioned by the service manager (`LoadCredential=`), into a
/// directory that is read-only and gone at stop: a token created there would be lost, and the
/// operator would hold none. So it must exist.
fn admin_token_from_credential(path: &Path) -> Result<AdminToken, DaemonError> {
    use crate::config::ConfigError;
    match crate::config::read_secret(path) {
        Ok(token) => Ok(AdminToken {
            token,
            created_at: None,
        }),
        Err(ConfigError::Read { path: file, source })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Err(DaemonError::AdminToken(format!(
                "admin.token_file = \"{}\": {} does not exist, and a token is never created \
                 under a credential: path; provide it with LoadCredential= (see the example unit)",
                path.display(),
                file.display()
            )))
        }
        Err(e) => Err(DaemonError::AdminToken(format!(
            "admin.token_file = \"{}\": {e}",
            path.display()
        ))),
    }
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Binds a listener; returns it with the address it got (port 0 picks one).
async fn bind(
    key: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), DaemonError> {
    let err = |source| DaemonError::Bind { key, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

/// How often a replica re-reads every stream in case a change notification was missed.
const CHANGE_BACKSTOP: std::time::Duration = std::time::Duration::from_secs(30);

/// Applies stream changes other replicas commit to this replica's registry (and so to its
/// push path, pollers and health checks) until shutdown.
async fn follow_changes(
    app: Arc<App>,
    feed: crate::store::postgres::notify::ChangeFeed,
    mut stop: watch::Receiver<bool>,
) {
    use crate::store::postgres::notify::Change;
    let mut changes = feed.subscribe();
    loop {
        let change = tokio::select! {
            c = changes.recv() => c,
            _ = stop.changed() => return,
        };
        let reloaded = match change {
            Ok(Change::Stream(id)) => app.registry.reload(Some(&id)).await,
            // Lagged behind the feed, or a backstop tick: re-read everything.
            Ok(Change::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                app.registry.reload(None).await
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if let Err(e) = reloaded {
            tracing::warn!(error = %e, "could not re-read streams after a change; the next tick retries");
        }
    }
}

impl Daemon {
    /// Starts everything; returns once both listeners are bound and the store is open.
    pub async fn start(config: Config) -> Result<Daemon, DaemonError> {
        let admin_token = load_admin_token(&config)?;
        if let Some(path) = &admin_token.created_at {
            // A warning so that it shows at any usual log level: the operator needs this file
            // for the first API call.
            tracing::warn!(path = %path.display(), "created a new admin token file (mode 0600)");
        }
        let store = match &config.storage.url {
            Some(url) => {
                let settings = crate::store::postgres::PgSettings::new(
                    url,
                    config.storage.password_file.as_deref(),
                )
                .map_err(|e| DaemonError::Storage(e.to_string()))?;
                let replica = crate::store::postgres::replica::new_replica_id();
                tracing::info!(database = settings.target(), replica = %replica, "using PostgreSQL");
                Store::open_postgres(settings, replica).await?
            }
            None => Store::open(&config.storage.path)?,
        };
        let registry = Registry::load(store.clone()).await?;
        let outbound = Outbound::new(&config.outbound);
        let keys = JwksCache::new(&config.jwks, &outbound)
            .map_err(|e| DaemonError::Http(e.to_string()))?;
        let tls = match &config.server.tls {
            Some(settings) => Some(Arc::new(crate::tls::Tls::load(settings)?)),
            None => None,
        };
        let (push_listener, push_addr) =
            bind("server.push_listen", config.server.push_listen).await?;
        let (admin_listener, admin_addr) =
            bind("server.admin_listen", config.server.admin_listen).await?;
        let app = Arc::new(App::new(
            config,
            store,
            registry,
            keys,
            outbound,
            token_hash(&admin_token.token),
        ));
        let removed = app.store.removed_subjects().await?;
        for (stream, key) in removed {
            app.transmitters.note_subject(&stream, &[key], true);
        }
        let (shutdown, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let push_router = intake::push::router(app.clone());
        // The console builds on the admin API's functions, so it is joined here, not inside it.
        let admin_router = admin::router(app.clone()).merge(crate::console::router(app.clone()));
        let grace = app.config().server.shutdown_grace;
        let limits = http::Limits {
            max_connections_per_address: app.config().server.max_connections_per_address,
            ..http::Limits::default()
        };
        tasks.spawn(http::serve(
            push_listener,
            push_router,
            limits,
            tls.as_ref().map(|t| t.push.clone()),
            shutdown.subscribe(),
            grace,
        ));
        tasks.spawn(http::serve(
            admin_listener,
            admin_router,
            limits,
            tls.as_ref().and_then(|t| t.admin.clone()),
            shutdown.subscribe(),
            grace,
        ));
        if let Some(tls) = &tls {
            tasks.spawn(tls.clone().watch(shutdown.subscribe()));
        }
        if let Some(feed) = app.store.watch_changes(CHANGE_BACKSTOP) {
            tasks.spawn(follow_changes(app.clone(), feed, shutdown.subscribe()));
        }
        tasks.spawn(act::worker::run(app.clone(), shutdown.subscribe()));
        // Pollers start, restart and stop with their streams; on shutdown they send their last
        // acknowledgements before the supervisor returns.
        tasks.spawn(intake::poll::supervise(app.clone(), shutdown.subscribe()));
        tasks.spawn(transmitter::health::run(app.clone(), shutdown.subscribe()));
        tracing::info!(push = %push_addr, admin = %admin_addr, streams = app.registry.len(), "ssfd is ready");
        Ok(Daemon {
            app,
            push_addr,
            admin_addr,
            tls,
            shutdown,
            tasks,
        })
    }

    pub fn push_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.push_addr)
    }

    pub fn admin_url(&self) -> String {
        let tls = self.tls.as_ref().is_some_and(|t| t.admin.is_some());
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://{}", self.admin_addr)
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the workers, all within
    /// `[server] shutdown_grace`: whatever still runs then is cancelled. Nothing acknowledged
    /// is lost by that (persist, then acknowledge), and an action cut short is retried later.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let grace = self.app.config().server.shutdown_grace;
        let tasks = &mut self.tasks;
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs_f64(),
                still_running = self.tasks.len(),
                "the grace period ended; cancelling what still runs"
            );
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}
