//! PostgreSQL connection settings: `[storage] url` (URL or libpq `key=value` form) and the
//! password from `storage.password_file`, turned into a driver configuration and a TLS
//! connector. The password never reaches a log line or an error message.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgError;

/// How long a connection attempt may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A checked `[storage] url` plus the password read from `storage.password_file`.
#[derive(Clone)]
pub struct PgSettings {
    config: tokio_postgres::Config,
    /// Where the connections go, without any credential, for logs and errors.
    target: String,
}

impl std::fmt::Debug for PgSettings {
    // Only the target: the driver configuration holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Whether `url` is a connection string ssfd accepts; the message says what is wrong with it.
/// Config validation calls this so that a bad URL fails `check-config`, not the first start.
pub fn check_url(url: &str) -> Result<(), String> {
    parse_url(url).map(|_| ())
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    let text = url.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.contains("://")
        && !(text.starts_with("postgres://") || text.starts_with("postgresql://"))
    {
        return Err(
            "must be a postgres:// or postgresql:// URL or libpq key=value settings".into(),
        );
    }
    // The driver verifies the server certificate whenever it uses TLS, so libpq's verifying
    // modes mean what `require` means here.
    let text = text
        .replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require");
    let config: tokio_postgres::Config = text.parse().map_err(|e: tokio_postgres::Error| {
        // The driver's parse errors name the offending option, never its value.
        match std::error::Error::source(&e) {
            Some(cause) => format!("not a PostgreSQL connection string ({cause})"),
            None => format!("not a PostgreSQL connection string ({e})"),
        }
    })?;
    if config.get_password().is_some() {
        return Err("must not hold a password; put it in storage.password_file".into());
    }
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(
            "must name a host (e.g. postgres://ssfd@db.example/ssfd or host=/run/postgresql)"
                .into(),
        );
    }
    if config.get_user().is_none() {
        return Err("must name a user (e.g. postgres://ssfd@db.example/ssfd or user=ssfd)".into());
    }
    Ok(config)
}

impl PgSettings {
    /// Parses `url` and reads the password file, if any (`credential:NAME` allowed).
    pub fn new(url: &str, password_file: Option<&Path>) -> Result<PgSettings, PgError> {
        let mut config =
            parse_url(url).map_err(|m| PgError::Settings(format!("storage.url: {m}")))?;
        if let Some(file) = password_file {
            let password = crate::config::read_secret(file)
                .map_err(|e| PgError::Settings(format!("storage.password_file: {e}")))?;
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("ssfd");
        }
        let target = describe(&config);
        Ok(PgSettings { config, target })
    }

    /// The settings for another database on the same server (tests, `db migrate-to`).
    pub fn with_dbname(&self, dbname: &str) -> PgSettings {
        let mut config = self.config.clone();
        config.dbname(dbname);
        let target = describe(&config);
        PgSettings { config, target }
    }

    /// `user@host:port/dbname`, for logs.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub(super) fn driver_config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub(super) fn tls(&self) -> Result<MakeRustlsConnect, PgError> {
        tls_connector(self.config.get_ssl_mode())
    }
}

/// The certificate roots are the system's trust store plus the Mozilla roots, so a server with a
/// certificate from a private CA works once that CA is installed on the host.
fn tls_connector(mode: SslMode) -> Result<MakeRustlsConnect, PgError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if mode != SslMode::Disable {
        // An unreadable system store leaves the Mozilla roots; errors are per certificate.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Settings(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn describe(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => PathBuf::from(p).display().to_string(),
        None => config
            .get_hostaddrs()
            .first()
            .map(|a| a.to_string())
            .unwrap_or_default(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_urls_and_key_value_settings() {
        for ok in [
            "postgres://ssfd@db.example/ssfd",
            "postgresql://ssfd@db.example:6543/ssfd?sslmode=require",
            "postgres://ssfd@%2Frun%2Fpostgresql/ssfd",
            "host=/run/postgresql user=ssfd dbname=ssfd sslmode=require",
            "host=db.example user=ssfd dbname=ssfd sslmode=verify-full",
        ] {
            check_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let s = PgSettings::new("host=/run/postgresql user=ssfd dbname=ha", None).unwrap();
        assert_eq!(s.target(), "ssfd@/run/postgresql:5432/ha");
        assert_eq!(
            s.with_dbname("other").target(),
            "ssfd@/run/postgresql:5432/other"
        );
    }

    #[test]
    fn rejects_bad_settings_with_a_reason() {
        let cases = [
            ("", "must not be empty"),
            ("mysql://u@h/db", "postgres://"),
            ("postgres://ssfd:hunter2@db/ssfd", "password_file"),
            ("host=db user=ssfd password=hunter2", "password_file"),
            ("host=db user=ssfd colour=blue", "colour"),
            ("host=db user=ssfd sslmode=sometimes", "sslmode"),
            ("dbname=ssfd user=ssfd", "host"),
            ("host=db dbname=ssfd", "user"),
        ];
        for (url, want) in cases {
            let err = check_url(url).unwrap_err();
            assert!(err.contains(want), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
    }

    #[test]
    fn the_password_comes_from_its_file_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret-pw\n").unwrap();
        let s = PgSettings::new("postgres://ssfd@db.example/ssfd", Some(&file)).unwrap();
        assert_eq!(s.driver_config().get_password(), Some(&b"s3cret-pw"[..]));
        assert!(!format!("{s:?}").contains("s3cret-pw"));
        assert!(!s.target().contains("s3cret-pw"));
        let missing = PgSettings::new("postgres://ssfd@db/ssfd", Some(&dir.path().join("no")))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("storage.password_file"), "{missing}");
    }
}
