//! HTTPS on the listeners: loads the `[server.tls]` certificate chain and key (and the admin
//! client CA), hands each new connection the rustls configuration in force, and swaps in a new
//! one when the files change or on SIGHUP. A file that does not load is refused with a log line
//! and the configuration in force stays, so a half-written renewal never takes a listener down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// How often the certificate files' modification times are compared.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} = \"{path}\": cannot read {resolved}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        resolved: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} = \"{path}\": {message}")]
    Invalid {
        key: &'static str,
        path: PathBuf,
        message: String,
    },
}

/// The rustls configuration one listener hands its new connections.
pub struct ListenerTls {
    config: RwLock<Arc<ServerConfig>>,
}

impl ListenerTls {
    fn new(config: Arc<ServerConfig>) -> ListenerTls {
        ListenerTls {
            config: RwLock::new(config),
        }
    }

    /// An acceptor with the configuration in force now; connections already open keep theirs.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }

    fn replace(&self, config: Arc<ServerConfig>) {
        let mut slot = match self.config.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        *slot = config;
    }
}

/// TLS for both listeners, built from one `[server.tls]` table.
pub struct Tls {
    settings: TlsConfig,
    pub push: Arc<ListenerTls>,
    /// `None` when the admin listener speaks plain HTTP (`admin = false`).
    pub admin: Option<Arc<ListenerTls>>,
    /// Modification stamps of the files as last loaded (or last refused).
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

impl Tls {
    /// Loads the files; any error stops the start, naming the key and the file.
    pub fn load(settings: &TlsConfig) -> Result<Tls, TlsError> {
        let stamps = file_stamps(settings);
        let (push, admin) = build(settings)?;
        Ok(Tls {
            settings: settings.clone(),
            push: Arc::new(ListenerTls::new(push)),
            admin: admin.map(|a| Arc::new(ListenerTls::new(a))),
            stamps: Mutex::new(stamps),
        })
    }

    /// Rereads the files and puts the new configuration in force; on error the old one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = file_stamps(&self.settings);
        let result = build(&self.settings);
        // Remembered either way, so that a refused file is reported once, not at every poll.
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
        let (push, admin) = result?;
        self.push.replace(push);
        if let (Some(slot), Some(config)) = (&self.admin, admin) {
            slot.replace(config);
        }
        Ok(())
    }

    /// Reloads and logs the outcome (for SIGHUP and the file watcher).
    pub fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(()) => tracing::info!(why, "TLS certificate reloaded"),
            Err(e) => tracing::error!(
                why,
                error = %e,
                "TLS certificate not reloaded ({e}); the previous certificate stays in force"
            ),
        }
    }

    fn changed(&self) -> bool {
        let now = file_stamps(&self.settings);
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) != now
    }

    /// Reloads whenever a file's modification time or size changes, until `stop` turns true.
    pub async fn watch(self: Arc<Tls>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_INTERVAL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if self.changed() {
                self.reload_logged("a certificate file changed");
            }
        }
    }
}

fn files(settings: &TlsConfig) -> Vec<&Path> {
    let mut files = vec![settings.cert_file.as_path(), settings.key_file.as_path()];
    if let Some(ca) = &settings.client_ca_file {
        files.push(ca);
    }
    files
}

fn file_stamps(settings: &TlsConfig) -> Vec<Option<(SystemTime, u64)>> {
    files(settings)
        .into_iter()
        .map(|p| {
            let resolved = crate::config::resolve_secret_path(p).ok()?;
            let meta = std::fs::metadata(resolved).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let invalid = |message: String| TlsError::Invalid {
        key,
        path: path.to_path_buf(),
        message,
    };
    let resolved = crate::config::resolve_secret_path(path).map_err(|e| invalid(e.to_string()))?;
    std::fs::read(&resolved).map_err(|source| TlsError::Read {
        key,
        path: path.to_path_buf(),
        resolved,
        source,
    })
}

fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let invalid = |message: String| TlsError::Invalid {
        key,
        path: path.to_path_buf(),
        message,
    };
    let pem = read_pem(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(invalid("holds no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The listeners' configurations: TLS 1.2 and 1.3 only, HTTP/1.1, the admin one asking for a
/// client certificate from `client_ca_file` when that is set.
fn build(settings: &TlsConfig) -> Result<(Arc<ServerConfig>, Option<Arc<ServerConfig>>), TlsError> {
    let chain = certificates("server.tls.cert_file", &settings.cert_file)?;
    let key_invalid = |message: String| TlsError::Invalid {
        key: "server.tls.key_file",
        path: settings.key_file.clone(),
        message,
    };
    let key_pem = read_pem("server.tls.key_file", &settings.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| key_invalid(format!("not a PEM private key ({e})")))?;
    let provider = provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        key_invalid(format!(
            "does not fit the certificate in server.tls.cert_file ({e})"
        ))
    })?;
    let certified = Arc::new(certified);
    let versions: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    let builder = || {
        ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| key_invalid(format!("no usable TLS version ({e})")))
    };
    let finish = |mut config: ServerConfig| {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    };
    let push = finish(
        builder()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCert(certified.clone()))),
    );
    if !settings.admin {
        return Ok((push, None));
    }
    let admin = match &settings.client_ca_file {
        None => push.clone(),
        Some(ca_path) => {
            let key = "server.tls.client_ca_file";
            let ca_invalid = |message: String| TlsError::Invalid {
                key,
                path: ca_path.clone(),
                message,
            };
            let mut roots = RootCertStore::empty();
            for cert in certificates(key, ca_path)? {
                roots
                    .add(cert)
                    .map_err(|e| ca_invalid(format!("not a usable CA certificate ({e})")))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| ca_invalid(format!("cannot check client certificates ({e})")))?;
            finish(
                builder()?
                    .with_client_cert_verifier(verifier)
                    .with_cert_resolver(Arc::new(SingleCert(certified))),
            )
        }
    };
    Ok((push, Some(admin)))
}

/// Serves one certificate whatever name the client asks for.
#[derive(Debug)]
struct SingleCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for SingleCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}
