//! receiver.toml: the daemon's configuration, its defaults and its validation, described once
//! by the types below (serde derive; every section denies unknown keys).
//!
//! Every key has a default so that `ssfd serve` runs with no file. Errors name the key as a
//! dotted path (`server.push_listen`, `sink[0].url` with 0-based sink indices,
//! `policy."session-revoked"`) and the 1-based line of the file: each value is checked while it
//! is read (see `values`), so the TOML reader knows where it was written.
//!
//! Secret references: `admin.token_file` and a webhook sink's `secret_file` may be written as
//! `credential:NAME`, meaning `$CREDENTIALS_DIRECTORY/NAME` (systemd `LoadCredential=`). The
//! configuration keeps them as written, so that `ssfd check-config` works outside the service's
//! environment; [`resolve_secret_path`] (or [`read_secret`]) maps them when the file is read.
//!
//! `[[sink]]` tables are described by `act::sinks`: the options every sink shares there, the
//! settings of each kind in the kind's own file.

pub(crate) mod error;
pub(crate) mod secret;
pub mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use toml::Spanned;

use crate::stream::RevocationAction;

pub use self::error::ConfigError;
pub use self::secret::{
    check_secret_file_or_fail, read_secret, resolve_secret_path, CREDENTIAL_PREFIX,
};
pub use self::values::{
    MAX_BODY_LIMIT, PER_ADDRESS_LIMIT_RANGE, POLL_MAX_EVENTS_RANGE, SINK_MAX_ATTEMPTS_RANGE,
};
pub use crate::act::sinks::{
    CommandSettings, SinkConfig, SinkKind, WebhookSettings, DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_SINK_MAX_ATTEMPTS, DEFAULT_SINK_RETRY_BASE, DEFAULT_WEBHOOK_TIMEOUT, SINK_RETRY_CAP,
};
pub use crate::event_type::event_type_matches;
pub use crate::outbound::OutboundConfig;

/// The rules `identity.rule` accepts.
pub const IDENTITY_RULES: &[&str] = &["email_local_part"];
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub admin: AdminConfig,
    pub jwks: JwksConfig,
    pub outbound: OutboundConfig,
    pub poll: PollConfig,
    /// Event-type URI or short name (`"device-compliance-change"`) -> action.
    #[serde(with = "policy_table")]
    pub policy: BTreeMap<String, RevocationAction>,
    pub log: LogConfig,
    #[serde(
        rename = "sink",
        deserialize_with = "crate::act::sinks::deserialize_sinks",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sinks: Vec<SinkConfig>,
    #[serde(
        deserialize_with = "read_identity",
        skip_serializing_if = "Option::is_none"
    )]
    pub identity: Option<IdentityConfig>,
    pub step_up: StepUpConfig,
    /// The file this configuration was read from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "ServerKeys")]
pub struct ServerConfig {
    #[serde(with = "values::socket_addr")]
    pub push_listen: SocketAddr,
    #[serde(with = "values::socket_addr")]
    pub admin_listen: SocketAddr,
    #[serde(with = "values::base_url")]
    pub public_base_url: String,
    /// Zero is meaningful: a rotation then ends the old token at once.
    #[serde(with = "values::duration_or_zero")]
    pub push_token_overlap: Duration,
    /// Largest accepted push body (default 64 KiB); `max_body` in the file.
    #[serde(rename = "max_body", with = "values::body_size")]
    pub max_body_bytes: usize,
    /// Grace period for a drain on SIGTERM (default 10 s); zero stops without waiting for work
    /// in flight.
    #[serde(with = "values::duration_or_zero")]
    pub shutdown_grace: Duration,
    /// Most connections one client address may hold open on one listener (default 64).
    #[serde(with = "values::per_address_limit")]
    pub max_connections_per_address: u32,
    /// Requests with a wrong token one client address may make per minute before it is
    /// answered 429 (default 20).
    #[serde(with = "values::per_address_limit")]
    pub max_failed_auth_per_minute: u32,
    /// `[server.tls]`: HTTPS on the push listener (and the admin one with `admin = true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            push_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            public_base_url: "http://127.0.0.1:8080".to_string(),
            push_token_overlap: Duration::from_secs(3600),
            max_body_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(10),
            max_connections_per_address: 64,
            max_failed_auth_per_minute: 20,
            tls: None,
        }
    }
}

/// `[server]` as written, with the place of `public_base_url` for the rule it shares with
/// `[server.tls]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerKeys {
    #[serde(default, with = "opt_socket_addr")]
    push_listen: Option<SocketAddr>,
    #[serde(default, with = "opt_socket_addr")]
    admin_listen: Option<SocketAddr>,
    public_base_url: Option<Spanned<BaseUrl>>,
    #[serde(default, with = "opt_duration_or_zero")]
    push_token_overlap: Option<Duration>,
    #[serde(default, with = "opt_body_size")]
    max_body: Option<usize>,
    #[serde(default, with = "opt_duration_or_zero")]
    shutdown_grace: Option<Duration>,
    max_connections_per_address: Option<PerAddressLimit>,
    max_failed_auth_per_minute: Option<PerAddressLimit>,
    tls: Option<TlsConfig>,
}

#[derive(Deserialize)]
#[serde(transparent)]
struct BaseUrl(#[serde(with = "values::base_url")] String);

#[derive(Deserialize)]
#[serde(transparent)]
struct PerAddressLimit(#[serde(with = "values::per_address_limit")] u32);

/// `Option` forms of the value readers, for the `*Keys` structs that read a section as written.
macro_rules! optional_value {
    ($name:ident, $inner:ident, $t:ty) => {
        mod $name {
            use super::*;
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$t>, D::Error> {
                values::$inner::deserialize(d).map(Some)
            }
        }
    };
}
optional_value!(opt_socket_addr, socket_addr, SocketAddr);
optional_value!(opt_duration_or_zero, duration_or_zero, Duration);
optional_value!(opt_body_size, body_size, usize);

impl TryFrom<ServerKeys> for ServerConfig {
    type Error = String;

    fn try_from(keys: ServerKeys) -> Result<ServerConfig, String> {
        let d = ServerConfig::default();
        let public_base_url = match keys.public_base_url {
            // With TLS on, the push listener refuses plain HTTP: an http:// push URL handed to
            // a transmitter could never be delivered to.
            Some(url) if keys.tls.is_some() && url.get_ref().0.starts_with("http://") => {
                return Err(error::at(
                    "server.public_base_url",
                    url.span(),
                    "must be an https:// URL while [server.tls] is set (the push listener \
                     speaks only TLS)",
                ))
            }
            Some(url) => url.into_inner().0,
            // The default names the push listener itself, which then speaks TLS.
            None if keys.tls.is_some() => d.public_base_url.replacen("http://", "https://", 1),
            None => d.public_base_url,
        };
        Ok(ServerConfig {
            push_listen: keys.push_listen.unwrap_or(d.push_listen),
            admin_listen: keys.admin_listen.unwrap_or(d.admin_listen),
            public_base_url,
            push_token_overlap: keys.push_token_overlap.unwrap_or(d.push_token_overlap),
            max_body_bytes: keys.max_body.unwrap_or(d.max_body_bytes),
            shutdown_grace: keys.shutdown_grace.unwrap_or(d.shutdown_grace),
            max_connections_per_address: keys
                .max_connections_per_address
                .map_or(d.max_connections_per_address, |v| v.0),
            max_failed_auth_per_minute: keys
                .max_failed_auth_per_minute
                .map_or(d.max_failed_auth_per_minute, |v| v.0),
            tls: keys.tls,
        })
    }
}

/// `[server.tls]`: certificate and key files (PEM) re-read on SIGHUP and when they change.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "TlsKeys")]
pub struct TlsConfig {
    /// Certificate chain, leaf first; may be `credential:NAME`.
    #[serde(with = "values::path")]
    pub cert_file: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1); may be `credential:NAME`.
    #[serde(with = "values::path")]
    pub key_file: PathBuf,
    /// Serve the admin listener over TLS too.
    #[serde(with = "values::boolean")]
    pub admin: bool,
    /// CA certificates (PEM) that admin clients must present a certificate from; needs `admin`.
    #[serde(with = "values::opt_path", skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsKeys {
    cert_file: SecretPathValue,
    key_file: SecretPathValue,
    #[serde(default, with = "values::boolean")]
    admin: bool,
    client_ca_file: Option<Spanned<SecretPathValue>>,
}

impl TryFrom<TlsKeys> for TlsConfig {
    type Error = String;

    fn try_from(keys: TlsKeys) -> Result<TlsConfig, String> {
        let client_ca_file =
            match keys.client_ca_file {
                Some(f) if !keys.admin => return Err(error::at(
                    "server.tls.client_ca_file",
                    f.span(),
                    "client certificates are checked on the admin listener only; set admin = true",
                )),
                Some(f) => Some(f.into_inner().0),
                None => None,
            };
        Ok(TlsConfig {
            cert_file: keys.cert_file.0,
            key_file: keys.key_file.0,
            admin: keys.admin,
            client_ca_file,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "StorageKeys")]
pub struct StorageConfig {
    /// The SQLite database file; unused when `url` is set.
    pub path: PathBuf,
    /// A PostgreSQL connection string (`postgres://`, `postgresql://` or libpq `key=value`
    /// settings); when set, the database is PostgreSQL. Never holds a password.
    pub url: Option<String>,
    /// The PostgreSQL password; may be `credential:NAME` (see [`resolve_secret_path`]).
    pub password_file: Option<PathBuf>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("./ssfd.db"),
            url: None,
            password_file: None,
        }
    }
}

/// `[storage]` as written, with places, for the rules that span its keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageKeys {
    path: Option<Spanned<PathValue>>,
    url: Option<Spanned<String>>,
    password_file: Option<Spanned<SecretPathValue>>,
}

#[derive(Deserialize)]
#[serde(transparent)]
struct PathValue(#[serde(with = "values::path")] PathBuf);

impl TryFrom<StorageKeys> for StorageConfig {
    type Error = String;

    fn try_from(keys: StorageKeys) -> Result<StorageConfig, String> {
        if let (Some(_), Some(u)) = (&keys.path, &keys.url) {
            return Err(error::at(
                "storage.url",
                u.span(),
                "cannot be used with storage.path: storage.path is the SQLite file, storage.url \
                 a PostgreSQL database; keep one of them",
            ));
        }
        let url = match keys.url {
            Some(u) => {
                let span = u.span();
                let url = u.into_inner();
                crate::store::postgres::check_url(&url)
                    .map_err(|m| error::at("storage.url", span, m))?;
                Some(url.trim().to_string())
            }
            None => None,
        };
        let password_file = match keys.password_file {
            Some(p) if url.is_none() => {
                return Err(error::at(
                    "storage.password_file",
                    p.span(),
                    "is only used with storage.url (PostgreSQL)",
                ))
            }
            Some(p) => Some(p.into_inner().0),
            None => None,
        };
        Ok(StorageConfig {
            path: keys
                .path
                .map_or_else(|| StorageConfig::default().path, |p| p.into_inner().0),
            url,
            password_file,
        })
    }
}

impl Serialize for StorageConfig {
    // The one database in use: the SQLite path or the PostgreSQL URL (both would not parse back).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_struct("StorageConfig", 2)?;
        match &self.url {
            Some(url) => {
                t.serialize_field("url", url)?;
                if let Some(p) = &self.password_file {
                    t.serialize_field("password_file", &p.display().to_string())?;
                }
            }
            None => t.serialize_field("path", &self.path.display().to_string())?,
        }
        t.end()
    }
}

#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "AdminKeys")]
pub struct AdminConfig {
    /// Inline token (`token = "..."`), if given. Never printed: `{:?}` and `check-config` show
    /// a placeholder.
    pub token: Option<String>,
    /// Token file; created 0600 with a fresh token when missing and no inline token is set.
    /// May be `credential:NAME` (see [`resolve_secret_path`]). Unless set, it lives beside the
    /// database.
    pub token_file: PathBuf,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token: None,
            token_file: PathBuf::from("./ssfd-admin.token"),
        }
    }
}

/// `[admin]` as written, with places, for the rule that spans its two keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminKeys {
    token: Option<Spanned<AdminToken>>,
    token_file: Option<SecretPathValue>,
}

#[derive(Deserialize)]
#[serde(transparent)]
struct AdminToken(#[serde(deserialize_with = "read_admin_token")] String);

#[derive(Deserialize)]
#[serde(transparent)]
struct SecretPathValue(#[serde(with = "values::secret_path")] PathBuf);

fn read_admin_token<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let t = String::deserialize(d)?;
    if t.is_empty() {
        return Err(de::Error::custom("must not be empty"));
    }
    // The token travels in an Authorization header.
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(de::Error::custom(
            "must not contain whitespace or control characters",
        ));
    }
    Ok(t)
}

impl TryFrom<AdminKeys> for AdminConfig {
    type Error = String;

    fn try_from(keys: AdminKeys) -> Result<AdminConfig, String> {
        if let (Some(t), Some(_)) = (&keys.token, &keys.token_file) {
            // Silently preferring one would leave the operator guessing which token is live.
            return Err(error::at(
                "admin.token",
                t.span(),
                "set either token or token_file, not both",
            ));
        }
        let d = AdminConfig::default();
        Ok(AdminConfig {
            token: keys.token.map(|t| t.into_inner().0),
            token_file: keys.token_file.map_or(d.token_file, |p| p.0),
        })
    }
}

impl fmt::Debug for AdminConfig {
    // The admin token never reaches a log line, even through `{:?}` of the whole configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| values::REDACTED))
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl Serialize for AdminConfig {
    // token_file is unused while an inline token is set, and showing both would print a
    // configuration that does not parse back.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_struct("AdminConfig", 1)?;
        match &self.token {
            Some(_) => t.serialize_field("token", values::REDACTED)?,
            None => t.serialize_field("token_file", &self.token_file.display().to_string())?,
        }
        t.end()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwksConfig {
    #[serde(with = "values::duration")]
    pub ttl: Duration,
    /// Zero would let every unknown `kid` trigger a fetch: the cooldown is the rate limit.
    #[serde(with = "values::duration")]
    pub refresh_cooldown: Duration,
    #[serde(with = "values::boolean")]
    pub allow_http: bool,
    #[serde(with = "values::duration")]
    pub connect_timeout: Duration,
    #[serde(with = "values::duration")]
    pub timeout: Duration,
}

impl Default for JwksConfig {
    fn default() -> Self {
        JwksConfig {
            ttl: Duration::from_secs(3600),
            refresh_cooldown: Duration::from_secs(30),
            allow_http: false,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollConfig {
    #[serde(with = "values::poll_max_events")]
    pub max_events: u32,
    #[serde(with = "values::duration")]
    pub timeout: Duration,
    /// Ask every registered, enabled stream for a verification this often; `None` = off.
    #[serde(
        with = "values::period_or_off",
        skip_serializing_if = "Option::is_none"
    )]
    pub verify_interval: Option<Duration>,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            max_events: 100,
            timeout: Duration::from_secs(90),
            verify_interval: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(&self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LogFormat, D::Error> {
        Ok(match values::one_of(d, &["text", "json"])? {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        })
    }
}

impl Serialize for LogFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter directive ("info", "ssfd=debug,info").
    #[serde(deserialize_with = "read_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

fn read_log_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let level = String::deserialize(d)?;
    check_log_level(&level).map_err(de::Error::custom)?;
    Ok(level)
}

/// `[step_up]`: what STEP_UP actions ask for when the stream does not say.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepUpConfig {
    /// The step-up provider of streams without `stepUpProviderId`; empty: none (the challenge
    /// then asks only for a fresh authentication).
    pub default_provider: String,
    /// RFC 9470 `max_age` of recorded requirements; zero asks for an authentication after the
    /// event.
    #[serde(with = "values::duration_or_zero")]
    pub max_age: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// A file of `subject-key = local-user` lines (TOML table), optional.
    #[serde(
        default,
        with = "values::opt_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub map_file: Option<PathBuf>,
    /// A rule that derives the local user from the subject, e.g. `"email_local_part"`.
    #[serde(
        default,
        deserialize_with = "read_identity_rule",
        skip_serializing_if = "Option::is_none"
    )]
    pub rule: Option<String>,
}

fn read_identity_rule<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    values::one_of(d, IDENTITY_RULES).map(|r| Some(r.to_string()))
}

fn read_identity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IdentityConfig>, D::Error> {
    let identity = IdentityConfig::deserialize(d)?;
    if identity.map_file.is_none() && identity.rule.is_none() {
        return Err(de::Error::custom("set map_file, rule or both"));
    }
    Ok(Some(identity))
}

/// `[policy]`: event type -> `"REVOKE_ALL"`, `"LOG_ONLY"` or `"STEP_UP"`.
mod policy_table {
    use super::*;

    pub fn serialize<S: Serializer>(
        p: &BTreeMap<String, RevocationAction>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(p.iter().map(|(k, v)| (k, v.as_short())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, RevocationAction>, D::Error> {
        d.deserialize_map(Table)
    }

    struct Table;

    impl<'de> Visitor<'de> for Table {
        type Value = BTreeMap<String, RevocationAction>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut policy = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let empty_key = key.trim().is_empty();
                let action = map.next_value_seed(Action { empty_key })?;
                policy.insert(key, action);
            }
            Ok(policy)
        }
    }

    /// One entry's action; the key is checked here too, so that its error names the entry.
    struct Action {
        empty_key: bool,
    }

    impl<'de> DeserializeSeed<'de> for Action {
        type Value = RevocationAction;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RevocationAction, D::Error> {
            if self.empty_key {
                return Err(de::Error::custom("an event type must not be empty"));
            }
            let short = values::one_of(d, &["REVOKE_ALL", "LOG_ONLY", "STEP_UP"])?;
            RevocationAction::from_short(short).ok_or_else(|| {
                de::Error::custom("expected \"REVOKE_ALL\", \"LOG_ONLY\" or \"STEP_UP\"")
            })
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::parse(&text, path)?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses configuration text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cx = error::Cx::new(text, path);
        // A first, untyped read tells syntax errors apart, and gives what the typed read needs
        // to know ahead: each sink's type.
        let doc: toml::Table = toml::from_str(text).map_err(|e| cx.syntax(&e))?;
        let mut cfg: Config = crate::act::sinks::with_sink_types(&doc, || {
            serde_path_to_error::deserialize(toml::Deserializer::new(text))
        })
        .map_err(|e| cx.typed(e))?;
        let token_file_set = doc.get("admin").and_then(|a| a.get("token_file")).is_some();
        if !token_file_set {
            // The generated admin token lives beside the database (README.md, `admin.token_file`).
            let dir = cfg
                .storage
                .path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or_else(|| Path::new("."));
            cfg.admin.token_file = dir.join("ssfd-admin.token");
        }
        Ok(cfg)
    }

    /// The effective configuration as TOML, every default spelled out, with the inline admin
    /// token replaced by `"<redacted>"` (for `ssfd check-config`). The output parses back into
    /// the same configuration, apart from the redacted token.
    pub fn redacted_toml(&self) -> String {
        // Every value prints as a string, integer, boolean, array or table, which TOML can
        // always represent, so serialization has no failure case worth surfacing.
        toml::to_string(self).unwrap_or_default()
    }
}

/// Checks a tracing filter directive. Beyond its syntax, a bare word must be a level: the filter
/// would read `verbose` as "everything from the target `verbose`", which is never what was meant.
fn check_log_level(level: &str) -> Result<(), String> {
    if level.trim().is_empty() {
        return Err("must not be empty".to_string());
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(level)
        .map_err(|e| format!("not a valid filter directive: {e}"))?;
    for directive in level.split(',').map(str::trim) {
        if directive.is_empty() || directive.contains(['=', '[', ']', '{', '}']) {
            continue;
        }
        if !LOG_LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "\"{directive}\" is not a level ({}); for a module write {directive}=LEVEL",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("receiver.toml"))
    }

    /// The (line, key, message) of a rejected text.
    fn fail(text: &str) -> (usize, String, String) {
        match parse(text) {
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    fn assert_fails(text: &str, line: usize, key: &str) -> String {
        let (l, k, m) = fail(text);
        assert_eq!((l, k.as_str()), (line, key), "message: {m}");
        m
    }

    const README_EXAMPLE: &str = r#"
[server]
push_listen = "127.0.0.1:8080"           # transmitters reach this (terminate TLS in front of it)
admin_listen = "127.0.0.1:8081"          # management API, /metrics, /readyz
public_base_url = "http://127.0.0.1:8080" # pushEndpointUrl = public_base_url + /ssf/push/{id}
push_token_overlap = "1h"                # the old push token keeps working this long after a rotation

[storage]
path = "./ssfd.db"

[admin]
token_file = "./ssfd-admin.token"        # or: token = "..."; created 0600 if missing

[jwks]
ttl = "1h"
refresh_cooldown = "30s"                 # at most one forced refresh per URL per cooldown
allow_http = false                       # true only for local tests: http:// issuer and JWKS URLs

[poll]
max_events = 100
timeout = "90s"                          # long-poll client timeout

[policy]                                  # event-type URI or short name -> REVOKE_ALL | LOG_ONLY
"device-compliance-change" = "REVOKE_ALL"

[log]
format = "text"                          # or "json" (one object per line, for journald/Loki)
level = "info"

[[sink]]
type = "webhook"
name = "idp"
url = "https://revoker.internal/hooks/ssf"
secret_file = "/etc/ssfd/webhook.secret" # HMAC-SHA256 key for the X-Ssfd-Signature header
timeout = "5s"

[[sink]]
type = "command"
name = "local-sessions"
argv = ["/usr/local/libexec/revoke-sessions"]
timeout = "10s"
"#;

    #[test]
    fn huge_durations_are_config_errors() {
        let m = assert_fails("[jwks]\nttl = \"300000000000y\"\n", 2, "jwks.ttl");
        assert!(m.contains("10 years"), "{m}");
        assert_fails(
            "[server]\npush_token_overlap = \"3651d\"\n",
            2,
            "server.push_token_overlap",
        );
        assert!(parse("[jwks]\nttl = \"3650d\"\n").is_ok());
    }

    #[test]
    fn outbound_allow_private() {
        assert!(!Config::default().outbound.allow_private);
        assert!(
            parse("[outbound]\nallow_private = true\n")
                .unwrap()
                .outbound
                .allow_private
        );
        assert_fails(
            "[outbound]\nallow_private = 1\n",
            2,
            "outbound.allow_private",
        );
        assert_fails("[outbound]\nallow = true\n", 2, "outbound.allow");
    }

    #[test]
    fn empty_text_is_the_default() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("# only a comment\n\n").unwrap(), Config::default());
        assert_eq!(parse("[server]\n[jwks]\n").unwrap(), Config::default());
    }

    #[test]
    fn design_example_parses() {
        let cfg = parse(README_EXAMPLE).unwrap();
        let d = Config::default();
        assert_eq!(cfg.server, d.server);
        assert_eq!(cfg.storage, d.storage);
        assert_eq!(cfg.admin, d.admin);
        assert_eq!(cfg.jwks, d.jwks);
        assert_eq!(cfg.poll, d.poll);
        assert_eq!(cfg.log, d.log);
        assert_eq!(
            cfg.policy.get("device-compliance-change"),
            Some(&RevocationAction::RevokeAll)
        );
        assert_eq!(
            cfg.sinks,
            vec![
                SinkConfig {
                    name: "idp".into(),
                    kind: SinkKind::Webhook(WebhookSettings {
                        url: "https://revoker.internal/hooks/ssf".into(),
                        secret_file: "/etc/ssfd/webhook.secret".into(),
                    }),
                    timeout: Duration::from_secs(5),
                    streams: vec![],
                    events: vec![],
                    max_attempts: DEFAULT_SINK_MAX_ATTEMPTS,
                    retry_base: DEFAULT_SINK_RETRY_BASE,
                },
                SinkConfig {
                    name: "local-sessions".into(),
                    kind: SinkKind::Command(CommandSettings {
                        argv: vec!["/usr/local/libexec/revoke-sessions".into()],
                    }),
                    timeout: Duration::from_secs(10),
                    streams: vec![],
                    events: vec![],
                    max_attempts: DEFAULT_SINK_MAX_ATTEMPTS,
                    retry_base: DEFAULT_SINK_RETRY_BASE,
                },
            ]
        );
        assert_eq!(cfg.identity, None);
        assert_eq!(cfg.source, None);
    }

    #[test]
    fn every_key_is_read() {
        let cfg = parse(
            r#"
[server]
push_listen = "0.0.0.0:9000"
admin_listen = "[::1]:9001"
public_base_url = "https://ssf.example.com/base/"
push_token_overlap = "0s"
max_body = "1MiB"
shutdown_grace = "1m 30s"

[storage]
path = "/var/lib/ssfd/ssfd.db"

[admin]
token = "s3cret-admin-token"

[jwks]
ttl = "2h"
refresh_cooldown = "1m"
allow_http = true
connect_timeout = "2s"
timeout = "3s"

[poll]
max_events = 10000
timeout = "30s"

[policy]
"https://schemas.openid.net/secevent/caep/event-type/session-revoked" = "LOG_ONLY"
risk-level-change = "REVOKE_ALL"

[log]
format = "json"
level = "ssfd=debug,info"

[[sink]]
type = "webhook"
name = "hook.1"
url = "http://127.0.0.1:9999/hook?x=1"
secret_file = "credential:webhook"
streams = ["s1", "s2"]
events = ["session-revoked"]
max_attempts = 3
retry_base = "250ms"

[[sink]]
type = "command"
name = "cmd"
argv = ["revoke", "--all"]

[identity]
map_file = "/etc/ssfd/users.toml"
rule = "email_local_part"
"#,
        )
        .unwrap();
        assert_eq!(cfg.server.push_listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(cfg.server.admin_listen, "[::1]:9001".parse().unwrap());
        assert_eq!(cfg.server.public_base_url, "https://ssf.example.com/base/");
        assert_eq!(cfg.server.push_token_overlap, Duration::ZERO);
        assert_eq!(cfg.server.max_body_bytes, 1024 * 1024);
        assert_eq!(cfg.server.shutdown_grace, Duration::from_secs(90));
        assert_eq!(cfg.storage.path, PathBuf::from("/var/lib/ssfd/ssfd.db"));
        assert_eq!(cfg.admin.token.as_deref(), Some("s3cret-admin-token"));
        assert_eq!(
            cfg.jwks,
            JwksConfig {
                ttl: Duration::from_secs(7200),
                refresh_cooldown: Duration::from_secs(60),
                allow_http: true,
                connect_timeout: Duration::from_secs(2),
                timeout: Duration::from_secs(3),
            }
        );
        assert_eq!(cfg.poll.max_events, 10000);
        assert_eq!(cfg.poll.timeout, Duration::from_secs(30));
        assert_eq!(cfg.policy.len(), 2);
        assert_eq!(
            cfg.policy["https://schemas.openid.net/secevent/caep/event-type/session-revoked"],
            RevocationAction::LogOnly
        );
        assert_eq!(cfg.policy["risk-level-change"], RevocationAction::RevokeAll);
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert_eq!(cfg.log.level, "ssfd=debug,info");
        let hook = &cfg.sinks[0];
        assert_eq!(hook.name, "hook.1");
        assert_eq!(
            hook.kind,
            SinkKind::Webhook(WebhookSettings {
                url: "http://127.0.0.1:9999/hook?x=1".into(),
                secret_file: "credential:webhook".into()
            })
        );
        assert_eq!(hook.timeout, DEFAULT_WEBHOOK_TIMEOUT);
        assert_eq!(hook.streams, vec!["s1", "s2"]);
        assert_eq!(hook.events, vec!["session-revoked"]);
        assert_eq!(hook.max_attempts, 3);
        assert_eq!(hook.retry_base, Duration::from_millis(250));
        let cmd = &cfg.sinks[1];
        assert_eq!(
            cmd.kind,
            SinkKind::Command(CommandSettings {
                argv: vec!["revoke".into(), "--all".into()]
            })
        );
        assert_eq!(cmd.timeout, DEFAULT_COMMAND_TIMEOUT);
        assert_eq!(
            cfg.identity,
            Some(IdentityConfig {
                map_file: Some("/etc/ssfd/users.toml".into()),
                rule: Some("email_local_part".into()),
            })
        );
    }

    #[test]
    fn missing_keys_keep_their_defaults() {
        let cfg = parse("[server]\nmax_body = 1000\n[jwks]\nallow_http = true\n").unwrap();
        let d = Config::default();
        assert_eq!(cfg.server.max_body_bytes, 1000);
        assert_eq!(cfg.server.push_listen, d.server.push_listen);
        assert_eq!(cfg.server.shutdown_grace, d.server.shutdown_grace);
        assert!(cfg.jwks.allow_http);
        assert_eq!(cfg.jwks.ttl, d.jwks.ttl);
        assert_eq!(cfg.poll, d.poll);
    }

    #[test]
    fn dotted_keys_and_inline_tables_are_plain_toml() {
        let cfg = parse(
            "server.push_listen = \"127.0.0.1:7000\"\n\
             poll = { max_events = 5 }\n\
             sink = [{ type = \"command\", name = \"c\", argv = [\"true\"] }]\n",
        )
        .unwrap();
        assert_eq!(cfg.server.push_listen.port(), 7000);
        assert_eq!(cfg.poll.max_events, 5);
        assert_eq!(cfg.sinks[0].name, "c");
    }

    #[test]
    fn unknown_keys_name_key_and_line() {
        assert_fails("\n\nbogus = 1\n", 3, "bogus");
        assert_fails("[nope]\n", 1, "nope");
        let m = assert_fails(
            "[server]\npush_listen = \"127.0.0.1:1\"\npush_lisen = \"x\"\n",
            3,
            "server.push_lisen",
        );
        assert!(m.contains("unknown key"), "{m}");
        assert!(m.contains("push_listen"), "{m}");
        assert_fails("[server.extra]\nx = 1\n", 1, "server.extra");
        assert_fails("[storage]\npath = \"a\"\nsize = 3\n", 3, "storage.size");
        assert_fails("[admin]\n\n\ntokn = \"x\"\n", 4, "admin.tokn");
        assert_fails("[jwks]\nrefresh = \"1s\"\n", 2, "jwks.refresh");
        assert_fails("[poll]\nmax = 1\n", 2, "poll.max");
        assert_fails("[log]\nfile = \"x\"\n", 2, "log.file");
        assert_fails(
            "[identity]\nrule = \"email_local_part\"\nmap = \"x\"\n",
            3,
            "identity.map",
        );
        assert_fails("[jwks]\n\"odd key\" = 1\n", 2, "jwks.\"odd key\"");
    }

    #[test]
    fn unknown_key_inside_a_sink() {
        let text = "[[sink]]\ntype = \"command\"\nname = \"a\"\nargv = [\"x\"]\n\n\
                    [[sink]]\ntype = \"webhook\"\nname = \"b\"\nurl = \"https://h/\"\n\
                    secret_file = \"/s\"\nretries = 3\n";
        assert_fails(text, 11, "sink[1].retries");
        // A key of the other sink type is unknown too.
        let m = assert_fails(
            "[[sink]]\ntype = \"command\"\nname = \"a\"\nargv = [\"x\"]\nurl = \"https://h/\"\n",
            5,
            "sink[0].url",
        );
        assert!(m.contains("argv"), "{m}");
    }

    #[test]
    fn the_first_unknown_key_in_the_file_is_reported() {
        assert_fails("[server]\nzzz = 1\naaa = 2\n", 2, "server.zzz");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let (line, key, _) = fail("[server]\npush_listen = \"127.0.0.1:80\"\nadmin_listen = \n");
        assert_eq!((line, key.as_str()), (3, "server.admin_listen"));
        let (line, _, _) = fail("[server\n");
        assert_eq!(line, 1);
        let (line, key, _) =
            fail("[[sink]]\ntype = \"command\"\n[[sink]]\ntype = \"webhook\"\nurl = https://h/\n");
        assert_eq!((line, key.as_str()), (5, "sink[1].url"));
        let (line, _, m) = fail("[poll]\nmax_events = 1\nmax_events = 2\n");
        assert_eq!(line, 3);
        assert!(m.contains("duplicate"), "{m}");
        let (line, _, _) = fail("[log]\nlevel = \"info\"\n\n\nformat = 'unterminated\n");
        assert_eq!(line, 5);
    }

    #[test]
    fn date_times_are_rejected_at_their_line() {
        let (line, key, m) = fail("[poll]\n\ntimeout = 1979-05-27T07:32:00Z\n");
        assert_eq!((line, key.as_str()), (3, "poll.timeout"));
        assert!(m.contains("date"), "{m}");
    }

    #[test]
    fn crlf_line_ends_count_lines() {
        assert_fails("[server]\r\n\r\nbad = 1\r\n", 3, "server.bad");
    }

    #[test]
    fn wrong_types_are_named() {
        let m = assert_fails("[server]\npush_listen = 8080\n", 2, "server.push_listen");
        assert!(m.contains("expected a string"), "{m}");
        let m = assert_fails("[jwks]\nallow_http = \"yes\"\n", 2, "jwks.allow_http");
        assert!(m.contains("true or false"), "{m}");
        let m = assert_fails("[poll]\ntimeout = 90\n", 2, "poll.timeout");
        assert!(m.contains("duration"), "{m}");
        assert_fails("[poll]\nmax_events = \"100\"\n", 2, "poll.max_events");
        assert_fails("[poll]\nmax_events = 1.5\n", 2, "poll.max_events");
        assert_fails("server = 1\n", 1, "server");
        assert_fails("[storage]\npath = []\n", 2, "storage.path");
    }

    #[test]
    fn socket_addresses() {
        assert_fails(
            "[server]\npush_listen = \"localhost\"\n",
            2,
            "server.push_listen",
        );
        assert_fails(
            "[server]\nadmin_listen = \"127.0.0.1\"\n",
            2,
            "server.admin_listen",
        );
        assert_fails(
            "[server]\nadmin_listen = \"::1:80\"\n",
            2,
            "server.admin_listen",
        );
        assert!(parse("[server]\nadmin_listen = \"[::1]:0\"\n").is_ok());
    }

    #[test]
    fn public_base_url() {
        for bad in [
            "ftp://h/",
            "not a url",
            "https://h/?q=1",
            "https://h/#frag",
            "/relative",
            "file:///x",
        ] {
            assert_fails(
                &format!("[server]\npublic_base_url = \"{bad}\"\n"),
                2,
                "server.public_base_url",
            );
        }
        let cfg = parse("[server]\npublic_base_url = \"https://ssf.example.com:8443\"\n").unwrap();
        assert_eq!(cfg.server.public_base_url, "https://ssf.example.com:8443");
    }

    #[test]
    fn durations() {
        for key in ["ttl", "refresh_cooldown", "connect_timeout", "timeout"] {
            assert_fails(
                &format!("[jwks]\n{key} = \"0s\"\n"),
                2,
                &format!("jwks.{key}"),
            );
            assert_fails(
                &format!("[jwks]\n{key} = \"soon\"\n"),
                2,
                &format!("jwks.{key}"),
            );
        }
        assert_fails("[poll]\ntimeout = \"0s\"\n", 2, "poll.timeout");
        assert_fails(
            "[server]\npush_token_overlap = \"1 hour-ish\"\n",
            2,
            "server.push_token_overlap",
        );
        assert_fails(
            "[server]\nshutdown_grace = \"-1s\"\n",
            2,
            "server.shutdown_grace",
        );
        let cfg = parse("[server]\nshutdown_grace = \"0s\"\n[jwks]\nttl = \"500ms\"\n").unwrap();
        assert_eq!(cfg.server.shutdown_grace, Duration::ZERO);
        assert_eq!(cfg.jwks.ttl, Duration::from_millis(500));
    }

    #[test]
    fn max_body_sizes() {
        let size = |v: &str| {
            parse(&format!("[server]\nmax_body = {v}\n")).map(|c| c.server.max_body_bytes)
        };
        assert_eq!(size("\"64KiB\"").unwrap(), 65536);
        assert_eq!(size("\"64 KiB\"").unwrap(), 65536);
        assert_eq!(size("\"2MiB\"").unwrap(), 2 * 1024 * 1024);
        assert_eq!(size("\"10kB\"").unwrap(), 10_000);
        assert_eq!(size("\"1MB\"").unwrap(), 1_000_000);
        assert_eq!(size("\"512B\"").unwrap(), 512);
        assert_eq!(size("\"512\"").unwrap(), 512);
        assert_eq!(size("4096").unwrap(), 4096);
        for bad in [
            "0",
            "-1",
            "\"0KiB\"",
            "\"64 KB KB\"",
            "\"lots\"",
            "\"64K\"",
            "\"17MiB\"",
            "true",
            "\"99999999999999999999\"",
        ] {
            assert_fails(
                &format!("[server]\nmax_body = {bad}\n"),
                2,
                "server.max_body",
            );
        }
        assert_eq!(size("\"16MiB\"").unwrap(), MAX_BODY_LIMIT);
    }

    #[test]
    fn poll_verify_interval() {
        assert_eq!(Config::default().poll.verify_interval, None);
        let cfg = parse("[poll]\nverify_interval = \"15m\"\n").unwrap();
        assert_eq!(cfg.poll.verify_interval, Some(Duration::from_secs(900)));
        let back = parse(&cfg.redacted_toml()).unwrap();
        assert_eq!(back.poll.verify_interval, Some(Duration::from_secs(900)));
        for off in ["\"off\"", "\"0s\""] {
            let text = format!("[poll]\nverify_interval = {off}\n");
            assert_eq!(parse(&text).unwrap().poll.verify_interval, None);
        }
        assert_fails("[poll]\nverify_interval = 60\n", 2, "poll.verify_interval");
        assert_fails(
            "[poll]\nverify_interval = \"soon\"\n",
            2,
            "poll.verify_interval",
        );
    }

    #[test]
    fn poll_max_events_bounds() {
        assert_fails("[poll]\nmax_events = 0\n", 2, "poll.max_events");
        assert_fails("[poll]\nmax_events = 10001\n", 2, "poll.max_events");
        assert_fails("[poll]\nmax_events = -5\n", 2, "poll.max_events");
        assert_eq!(
            parse("[poll]\nmax_events = 1\n").unwrap().poll.max_events,
            1
        );
    }

    #[test]
    fn admin_token_rules() {
        let m = assert_fails(
            "[admin]\ntoken_file = \"/t\"\ntoken = \"abc\"\n",
            3,
            "admin.token",
        );
        assert!(m.contains("not both"), "{m}");
        assert_fails("[admin]\ntoken = \"\"\n", 2, "admin.token");
        assert_fails("[admin]\ntoken = \"a b\"\n", 2, "admin.token");
        assert_fails("[admin]\ntoken_file = \"\"\n", 2, "admin.token_file");
        assert_fails(
            "[admin]\ntoken_file = \"credential:\"\n",
            2,
            "admin.token_file",
        );
        assert_fails(
            "[admin]\ntoken_file = \"credential:a/b\"\n",
            2,
            "admin.token_file",
        );
        let cfg = parse("[admin]\ntoken_file = \"credential:admin-token\"\n").unwrap();
        assert_eq!(
            cfg.admin.token_file,
            PathBuf::from("credential:admin-token")
        );
        assert_eq!(cfg.admin.token, None);
    }

    #[test]
    fn storage_url_selects_postgres() {
        let cfg = parse(
            "[storage]\nurl = \"host=/run/postgresql user=ssfd dbname=ssfd sslmode=require\"\n\
             password_file = \"credential:pg-password\"\n",
        )
        .unwrap();
        assert_eq!(
            cfg.storage.url.as_deref(),
            Some("host=/run/postgresql user=ssfd dbname=ssfd sslmode=require")
        );
        assert_eq!(
            cfg.storage.password_file,
            Some(PathBuf::from("credential:pg-password"))
        );
        let shown = cfg.redacted_toml();
        assert!(!shown.contains("path = "), "{shown}");
        assert_eq!(parse(&shown).unwrap().storage, cfg.storage);
        let url = parse("[storage]\nurl = \"postgresql://ssfd@db.example/ssfd\"\n").unwrap();
        assert_eq!(url.storage.password_file, None);
    }

    #[test]
    fn storage_url_errors_name_the_key() {
        let m = assert_fails(
            "[storage]\npath = \"/var/lib/ssfd/ssfd.db\"\nurl = \"postgres://ssfd@db/ssfd\"\n",
            3,
            "storage.url",
        );
        assert!(m.contains("storage.path"), "{m}");
        let m = assert_fails(
            "[storage]\nurl = \"postgres://ssfd:hunter2@db/ssfd\"\n",
            2,
            "storage.url",
        );
        assert!(m.contains("password_file") && !m.contains("hunter2"), "{m}");
        assert_fails("[storage]\nurl = \"mysql://u@db/x\"\n", 2, "storage.url");
        assert_fails(
            "[storage]\nurl = \"host=db user=u colour=x\"\n",
            2,
            "storage.url",
        );
        assert_fails("[storage]\nurl = 5\n", 2, "storage.url");
        let m = assert_fails(
            "[storage]\npassword_file = \"/pw\"\n",
            2,
            "storage.password_file",
        );
        assert!(m.contains("storage.url"), "{m}");
        assert_fails(
            "[storage]\nurl = \"postgres://u@db/x\"\npassword_file = \"credential:a/b\"\n",
            3,
            "storage.password_file",
        );
        assert_fails("[storage]\npath = \"a\"\nsize = 3\n", 3, "storage.size");
    }

    #[test]
    fn token_never_shows_in_debug() {
        let cfg = parse("[admin]\ntoken = \"very-secret-token\"\n").unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("very-secret-token"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn step_up_keys() {
        let cfg = parse(
            "[policy]\n\"risk-level-change\" = \"STEP_UP\"\n[step_up]\ndefault_provider = \"p1\"\nmax_age = \"10m\"\n",
        )
        .unwrap();
        assert_eq!(cfg.policy["risk-level-change"], RevocationAction::StepUp);
        assert_eq!(cfg.step_up.default_provider, "p1");
        assert_eq!(cfg.step_up.max_age, Duration::from_secs(600));
        assert_eq!(Config::default().step_up.max_age, Duration::ZERO);
        assert_fails("[step_up]\nmax_age = \"soon\"\n", 2, "step_up.max_age");
        assert_fails(
            "[step_up]\ndefault_provider = 1\n",
            2,
            "step_up.default_provider",
        );
        assert_fails("[step_up]\nprovider = \"p1\"\n", 2, "step_up.provider");
        let shown = cfg.redacted_toml();
        assert!(
            shown.contains("[step_up]\ndefault_provider = \"p1\"\nmax_age = \"10m\""),
            "{shown}"
        );
    }

    #[test]
    fn policy_values_and_key_paths() {
        let m = assert_fails(
            "[policy]\n\"session-revoked\" = \"REVOKE\"\n",
            2,
            "policy.\"session-revoked\"",
        );
        assert!(m.contains("REVOKE_ALL"), "{m}");
        assert_fails("[policy]\nx = \"revoke_all\"\n", 2, "policy.\"x\"");
        assert_fails("[policy]\nx = true\n", 2, "policy.\"x\"");
        assert_fails("[policy]\n\"\" = \"LOG_ONLY\"\n", 2, "policy.\"\"");
        assert_fails("[policy]\n\"a\\\"b\" = \"nope\"\n", 2, "policy.\"a\\\"b\"");
        assert_fails("policy = []\n", 1, "policy");
        let cfg = parse("[policy]\nx = \"LOG_ONLY\"\ny = \"REVOKE_ALL\"\n").unwrap();
        assert_eq!(cfg.policy["x"], RevocationAction::LogOnly);
        assert_eq!(cfg.policy["y"], RevocationAction::RevokeAll);
    }

    #[test]
    fn log_section() {
        assert_fails("[log]\nformat = \"xml\"\n", 2, "log.format");
        for good in [
            "info",
            "debug",
            "WARN",
            "ssfd=debug,info",
            "ssfd::verify=trace",
            "off",
        ] {
            let cfg = parse(&format!("[log]\nlevel = \"{good}\"\n")).unwrap();
            assert_eq!(cfg.log.level, good);
        }
        for bad in ["", "verbose", "info,loud", "ssfd=loud", "ssfd=debug=x"] {
            assert_fails(&format!("[log]\nlevel = \"{bad}\"\n"), 2, "log.level");
        }
    }

    #[test]
    fn sink_type_and_required_keys() {
        let m = assert_fails("\n[[sink]]\nname = \"a\"\n", 2, "sink[0].type");
        assert!(m.contains("missing"), "{m}");
        assert_fails(
            "[[sink]]\ntype = \"email\"\nname = \"a\"\n",
            2,
            "sink[0].type",
        );
        assert_fails(
            "[[sink]]\ntype = \"command\"\nargv = [\"x\"]\n",
            1,
            "sink[0].name",
        );
        assert_fails(
            "[[sink]]\ntype = \"webhook\"\nname = \"a\"\nsecret_file = \"/s\"\n",
            1,
            "sink[0].url",
        );
        assert_fails(
            "[[sink]]\ntype = \"webhook\"\nname = \"a\"\nurl = \"https://h/\"\n",
            1,
            "sink[0].secret_file",
        );
        assert_fails(
            "[[sink]]\ntype = \"command\"\nname = \"a\"\n",
            1,
            "sink[0].argv",
        );
        let m = assert_fails("[sink]\ntype = \"command\"\n", 1, "sink");
        assert!(m.contains("[[sink]]"), "{m}");
    }

    #[test]
    fn sink_values() {
        let hook = |extra: &str| {
            format!(
                "[[sink]]\ntype = \"webhook\"\nname = \"h\"\nurl = \"https://h/\"\nsecret_file = \"/s\"\n{extra}\n"
            )
        };
        assert_fails(&hook("timeout = \"0s\""), 6, "sink[0].timeout");
        assert_fails(&hook("max_attempts = 0"), 6, "sink[0].max_attempts");
        assert_fails(&hook("max_attempts = 1001"), 6, "sink[0].max_attempts");
        assert_fails(&hook("retry_base = \"0s\""), 6, "sink[0].retry_base");
        assert_fails(&hook("retry_base = \"10m\""), 6, "sink[0].retry_base");
        assert_fails(&hook("retry_base = 1"), 6, "sink[0].retry_base");
        assert_fails(&hook("streams = \"s1\""), 6, "sink[0].streams");
        assert_fails(&hook("streams = [\"\"]"), 6, "sink[0].streams");
        assert_fails(&hook("events = [\"a\", 2]"), 6, "sink[0].events[1]");
        assert_fails(
            &hook("events = [\n  \"a\",\n  2,\n]"),
            8,
            "sink[0].events[1]",
        );
        for bad_url in ["ftp://h/", "h/hook", "https://"] {
            assert_fails(
                &format!("[[sink]]\ntype = \"webhook\"\nname = \"h\"\nurl = \"{bad_url}\"\nsecret_file = \"/s\"\n"),
                4,
                "sink[0].url",
            );
        }
        assert_fails(
            "[[sink]]\ntype = \"webhook\"\nname = \"h\"\nurl = \"https://h/\"\nsecret_file = \"credential:\"\n",
            5,
            "sink[0].secret_file",
        );
        let cmd =
            |argv: &str| format!("[[sink]]\ntype = \"command\"\nname = \"c\"\nargv = {argv}\n");
        assert_fails(&cmd("[]"), 4, "sink[0].argv");
        assert_fails(&cmd("[\"\"]"), 4, "sink[0].argv");
        assert_fails(&cmd("\"/bin/revoke\""), 4, "sink[0].argv");
        assert_fails(&cmd("[\"/bin/revoke\", 1]"), 4, "sink[0].argv[1]");
        let cfg = parse(&cmd("[\"/bin/revoke\", \"\"]")).unwrap();
        assert_eq!(
            cfg.sinks[0].kind,
            SinkKind::Command(CommandSettings {
                argv: vec!["/bin/revoke".into(), String::new()]
            })
        );
    }

    #[test]
    fn sink_keys_may_come_in_any_order() {
        let cfg = parse(
            "[[sink]]\nurl = \"https://h/\"\nname = \"h\"\nsecret_file = \"/s\"\ntype = \"webhook\"\n",
        )
        .unwrap();
        assert_eq!(
            cfg.sinks[0].kind,
            SinkKind::Webhook(WebhookSettings {
                url: "https://h/".into(),
                secret_file: "/s".into(),
            })
        );
        assert_eq!(cfg.sinks[0].timeout, DEFAULT_WEBHOOK_TIMEOUT);
        // With the type unknown, the kind's keys are not judged; the type is.
        let m = assert_fails(
            "[[sink]]\nurl = \"https://h/\"\nname = \"h\"\ntype = \"mail\"\n",
            4,
            "sink[0].type",
        );
        assert!(m.contains("\"webhook\" or \"command\""), "{m}");
    }

    #[test]
    fn a_missing_sink_key_says_which_kind_needs_it() {
        let m = assert_fails(
            "[[sink]]\ntype = \"webhook\"\nname = \"a\"\nurl = \"https://h/\"\n",
            1,
            "sink[0].secret_file",
        );
        assert_eq!(m, "missing: a webhook sink needs secret_file");
        let m = assert_fails("[[sink]]\nname = \"a\"\n", 1, "sink[0].type");
        assert_eq!(m, "missing: set type = \"webhook\" or \"command\"");
    }

    #[test]
    fn every_sink_kind_prints_and_parses_back() {
        let cfg = parse(README_EXAMPLE).unwrap();
        let text = cfg.redacted_toml();
        for kind in SinkKind::TYPES {
            assert!(text.contains(&format!("type = \"{kind}\"")), "{text}");
        }
        assert_eq!(parse(&text).unwrap().sinks, cfg.sinks, "{text}");
    }

    #[test]
    fn sink_names() {
        let named = |n: &str| format!("[[sink]]\ntype = \"command\"\nname = {n}\nargv = [\"x\"]\n");
        assert_fails(&named("\"\""), 3, "sink[0].name");
        assert_fails(&named("\"has space\""), 3, "sink[0].name");
        assert_fails(
            &named(&format!("\"{}\"", "a".repeat(65))),
            3,
            "sink[0].name",
        );
        assert_fails(&named("7"), 3, "sink[0].name");
        let text = format!("{}\n{}\n{}", named("\"a\""), named("\"b\""), named("\"a\""));
        let m = assert_fails(&text, 13, "sink[2].name");
        assert!(m.contains("duplicate") && m.contains("sink[0]"), "{m}");
    }

    #[test]
    fn identity_section() {
        assert_fails("[identity]\nrule = \"upn\"\n", 2, "identity.rule");
        assert_fails("\n[identity]\n", 2, "identity");
        assert_fails("[identity]\nmap_file = \"\"\n", 2, "identity.map_file");
        let cfg = parse("[identity]\nmap_file = \"users.toml\"\n").unwrap();
        assert_eq!(
            cfg.identity,
            Some(IdentityConfig {
                map_file: Some("users.toml".into()),
                rule: None
            })
        );
    }

    #[test]
    fn redacted_toml_hides_the_token_and_parses_back() {
        let mut cfg = parse(README_EXAMPLE).unwrap();
        cfg.admin.token = Some("super-secret-admin-token".into());
        cfg.identity = Some(IdentityConfig {
            map_file: None,
            rule: Some("email_local_part".into()),
        });
        cfg.policy.insert(
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked".into(),
            RevocationAction::LogOnly,
        );
        cfg.server.max_body_bytes = 1000;
        cfg.server.shutdown_grace = Duration::ZERO;
        cfg.jwks.ttl = Duration::from_millis(1500);
        let text = cfg.redacted_toml();
        assert!(!text.contains("super-secret-admin-token"), "{text}");
        assert!(text.contains("token = \"<redacted>\""), "{text}");
        let back = parse(&text).unwrap();
        assert_eq!(back.admin.token.as_deref(), Some("<redacted>"));
        let mut expected = cfg.clone();
        expected.admin.token = Some("<redacted>".into());
        assert_eq!(back, expected, "{text}");
    }

    #[test]
    fn redacted_toml_of_the_default_parses_back() {
        let d = Config::default();
        let text = d.redacted_toml();
        assert!(
            text.contains("[server]") && text.contains("token_file"),
            "{text}"
        );
        assert!(
            !text.contains("[[sink]]") && !text.contains("[identity]"),
            "{text}"
        );
        assert_eq!(parse(&text).unwrap(), d, "{text}");
    }

    #[test]
    fn error_display_names_file_line_and_key() {
        let err = parse("[server]\nnope = 1\n").unwrap_err();
        let s = err.to_string();
        assert!(
            s.starts_with("receiver.toml: line 2: server.nope: unknown key"),
            "{s}"
        );
    }

    #[test]
    fn load_reads_a_file_and_records_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml");
        std::fs::write(&p, "[poll]\nmax_events = 7\n").unwrap();
        let cfg = Config::load(&p).unwrap();
        assert_eq!(cfg.poll.max_events, 7);
        assert_eq!(cfg.source.as_deref(), Some(p.as_path()));
        assert!(matches!(
            Config::load(&dir.path().join("missing.toml")),
            Err(ConfigError::Read { .. })
        ));
    }
}
