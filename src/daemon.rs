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
use crate::registry::Registry;
use crate::secrets::{random_token, token_hash};
use crate::store::{Store, StoreError};
use crate::verify::jwks::JwksCache;
use crate::{admin, intake, transmitter};

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
    #[error("HTTP client: {0}")]
    Http(String),
}

/// A running daemon.
pub struct Daemon {
    pub app: Arc<App>,
    pub push_addr: SocketAddr,
    pub admin_addr: SocketAddr,
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
    let path = crate::config::resolve_secret_path(&config.admin.token_file)
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

async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind { key, addr, source })
}

impl Daemon {
    /// Starts everything; returns once both listeners are bound and the store is open.
    pub async fn start(config: Config) -> Result<Daemon, DaemonError> {
        let admin_token = load_admin_token(&config)?;
        if let Some(path) = &admin_token.created_at {
            tracing::info!(path = %path.display(), "created a new admin token file");
        }
        let store = Store::open(&config.storage.path)?;
        let registry = Registry::load(store.clone()).await?;
        let keys = JwksCache::new(&config.jwks).map_err(|e| DaemonError::Http(e.to_string()))?;
        let push_listener = bind("server.push_listen", config.server.push_listen).await?;
        let admin_listener = bind("server.admin_listen", config.server.admin_listen).await?;
        let push_addr = push_listener
            .local_addr()
            .map_err(|source| DaemonError::Bind {
                key: "server.push_listen",
                addr: config.server.push_listen,
                source,
            })?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|source| DaemonError::Bind {
                key: "server.admin_listen",
                addr: config.server.admin_listen,
                source,
            })?;
        let app = Arc::new(App::new(
            config,
            store,
            registry,
            keys,
            token_hash(&admin_token.token),
        ));
        let (shutdown, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let push_router = intake::push::router(app.clone());
        let admin_router = admin::router(app.clone());
        tasks.spawn(serve(push_listener, push_router, shutdown.subscribe()));
        tasks.spawn(serve(admin_listener, admin_router, shutdown.subscribe()));
        // Pollers start, restart and stop with their streams; on shutdown they send their last
        // acknowledgements before the supervisor returns.
        tasks.spawn(intake::poll::supervise(app.clone(), shutdown.subscribe()));
        tasks.spawn(transmitter::health::run(app.clone(), shutdown.subscribe()));
        tracing::info!(push = %push_addr, admin = %admin_addr, streams = app.registry.len(), "ssfd is ready");
        Ok(Daemon {
            app,
            push_addr,
            admin_addr,
            shutdown,
            tasks,
        })
    }

    pub fn push_url(&self) -> String {
        format!("http://{}", self.push_addr)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the workers.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn serve(listener: TcpListener, router: axum::Router, mut stop: watch::Receiver<bool>) {
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "listener stopped");
    }
}
