//! receiver.toml: the daemon's configuration, its defaults and its validation.
//!
//! Every key has a default so that `ssfd serve` runs with no file. Errors name the key as a
//! dotted path (`server.push_listen`, `sink[0].url` with 0-based sink indices,
//! `policy."session-revoked"`) and the 1-based line of the file; unknown keys are errors.
//!
//! Secret references: `admin.token_file` and a webhook sink's `secret_file` may be written as
//! `credential:NAME`, meaning `$CREDENTIALS_DIRECTORY/NAME` (systemd `LoadCredential=`). The
//! configuration keeps them as written, so that `ssfd check-config` works outside the service's
//! environment; [`resolve_secret_path`] (or [`read_secret`]) maps them when the file is read.
//!
//! The text is parsed into a small tree that keeps the byte span of every key, rather than
//! straight into typed structs: serde's errors would lose which key failed, and naming the key
//! and its line is part of the contract.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::stream::RevocationAction;

/// Why a configuration could not be loaded. The message always names the key, and the line when
/// the problem is in a file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{key}: {message}")]
    Value { key: String, message: String },
}

/// Attempts before a sink action is `dead`, when a sink does not set `max_attempts`.
pub const DEFAULT_SINK_MAX_ATTEMPTS: u32 = 8;
/// First retry delay of a sink action, when a sink does not set `retry_base`; it doubles per
/// attempt up to [`SINK_RETRY_CAP`].
pub const DEFAULT_SINK_RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest delay between two attempts of a sink action.
pub const SINK_RETRY_CAP: Duration = Duration::from_secs(300);
/// Timeout of a webhook sink that does not set `timeout`.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of a command sink that does not set `timeout`.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest accepted `server.max_body`. A push body is one compact JWS; a larger limit would only
/// let a client make the daemon buffer more.
pub const MAX_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Bounds of `poll.max_events`.
pub const POLL_MAX_EVENTS_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;
/// Bounds of a sink's `max_attempts`.
pub const SINK_MAX_ATTEMPTS_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;
/// The rules `identity.rule` accepts.
pub const IDENTITY_RULES: &[&str] = &["email_local_part"];
/// Prefix of a secret path that names a systemd credential.
pub const CREDENTIAL_PREFIX: &str = "credential:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub admin: AdminConfig,
    pub jwks: JwksConfig,
    pub poll: PollConfig,
    /// Event-type URI or short name (`"device-compliance-change"`) -> action.
    pub policy: BTreeMap<String, RevocationAction>,
    pub log: LogConfig,
    pub sinks: Vec<SinkConfig>,
    pub identity: Option<IdentityConfig>,
    /// The file this configuration was read from, if any.
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub push_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub public_base_url: String,
    pub push_token_overlap: Duration,
    /// Largest accepted push body (default 64 KiB); `max_body` in the file.
    pub max_body_bytes: usize,
    /// Grace period for a drain on SIGTERM (default 10 s).
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// SQLite database file; unused when `url` is set.
    pub path: PathBuf,
    /// PostgreSQL connection string (`postgres://`, `postgresql://` or libpq `key=value`
    /// settings); when set, the database is PostgreSQL. Never holds a password.
    pub url: Option<String>,
    /// The PostgreSQL password; may be `credential:NAME` (see [`resolve_secret_path`]).
    pub password_file: Option<PathBuf>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Inline token (`token = "..."`), if given.
    pub token: Option<String>,
    /// Token file; created 0600 with a fresh token when missing and no inline token is set.
    /// May be `credential:NAME` (see [`resolve_secret_path`]).
    pub token_file: PathBuf,
}

impl std::fmt::Debug for AdminConfig {
    // The admin token never reaches a log line, even through `{:?}` of the whole configuration.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    pub ttl: Duration,
    pub refresh_cooldown: Duration,
    pub allow_http: bool,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollConfig {
    pub max_events: u32,
    pub timeout: Duration,
    /// Ask every registered, enabled stream for a verification this often; `None` = off.
    pub verify_interval: Option<Duration>,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter directive ("info", "ssfd=debug,info").
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    pub timeout: Duration,
    /// Limit to these stream ids (empty = all streams).
    pub streams: Vec<String>,
    /// Limit to these event types, URIs or short names (empty = all); see [`event_type_matches`].
    pub events: Vec<String>,
    /// Attempts before an action is `dead` (default 8).
    pub max_attempts: u32,
    /// Delay before the first retry (default 1s); doubles per attempt, capped at 5 minutes.
    pub retry_base: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// `secret_file` may be `credential:NAME` (see [`resolve_secret_path`]).
    Webhook {
        url: String,
        secret_file: PathBuf,
    },
    Command {
        argv: Vec<String>,
    },
}

impl SinkKind {
    /// The `type` value in receiver.toml.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Webhook { .. } => "webhook",
            SinkKind::Command { .. } => "command",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// A file of `subject-key = local-user` lines (TOML table), optional.
    pub map_file: Option<PathBuf>,
    /// A rule that derives the local user from the subject, e.g. `"email_local_part"`.
    pub rule: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig {
                push_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
                public_base_url: "http://127.0.0.1:8080".to_string(),
                push_token_overlap: Duration::from_secs(3600),
                max_body_bytes: 64 * 1024,
                shutdown_grace: Duration::from_secs(10),
            },
            storage: StorageConfig {
                path: PathBuf::from("./ssfd.db"),
                url: None,
                password_file: None,
            },
            admin: AdminConfig {
                token: None,
                token_file: PathBuf::from("./ssfd-admin.token"),
            },
            jwks: JwksConfig {
                ttl: Duration::from_secs(3600),
                refresh_cooldown: Duration::from_secs(30),
                allow_http: false,
                connect_timeout: Duration::from_secs(5),
                timeout: Duration::from_secs(10),
            },
            poll: PollConfig {
                max_events: 100,
                timeout: Duration::from_secs(90),
                verify_interval: None,
            },
            policy: BTreeMap::new(),
            log: LogConfig {
                format: LogFormat::Text,
                level: "info".to_string(),
            },
            sinks: Vec::new(),
            identity: None,
            source: None,
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
        let cx = Cx::new(text, path);
        let root = cx.tree()?;
        let mut root = Section::open(&cx, String::new(), 1, root, ROOT_KEYS)?;
        let mut cfg = Config::default();
        if let Some(f) = root.take("server") {
            parse_server(f.section(SERVER_KEYS)?, &mut cfg.server)?;
        }
        if let Some(f) = root.take("storage") {
            let mut s = f.section(&["path", "url", "password_file"])?;
            let path_line = s.line_of("path");
            if let Some(f) = s.take("url") {
                if let Some(line) = path_line {
                    return Err(f.err(format!(
                        "cannot be used with storage.path (line {line}): storage.path is the \
                         SQLite file, storage.url a PostgreSQL database; keep one of them"
                    )));
                }
                let url = f.str()?;
                crate::store::postgres::check_url(url).map_err(|m| f.err(m))?;
                cfg.storage.url = Some(url.trim().to_string());
            }
            if let Some(f) = s.take("password_file") {
                if cfg.storage.url.is_none() {
                    return Err(f.err("is only used with storage.url (PostgreSQL)"));
                }
                cfg.storage.password_file = Some(f.secret_path()?);
            }
            if let Some(f) = s.take("path") {
                cfg.storage.path = f.path()?;
                // Unless [admin] says otherwise, the generated admin token lives beside the
                // database (DESIGN §6).
                let dir = cfg
                    .storage
                    .path
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or_else(|| Path::new("."));
                cfg.admin.token_file = dir.join("ssfd-admin.token");
            }
        }
        if let Some(f) = root.take("admin") {
            parse_admin(f.section(&["token", "token_file"])?, &mut cfg.admin)?;
        }
        if let Some(f) = root.take("jwks") {
            parse_jwks(f.section(JWKS_KEYS)?, &mut cfg.jwks)?;
        }
        if let Some(f) = root.take("poll") {
            let mut s = f.section(&["max_events", "timeout", "verify_interval"])?;
            if let Some(f) = s.take("max_events") {
                cfg.poll.max_events = f.int_in(POLL_MAX_EVENTS_RANGE)?;
            }
            if let Some(f) = s.take("timeout") {
                cfg.poll.timeout = f.duration(false)?;
            }
            if let Some(f) = s.take("verify_interval") {
                // "0s" or "off" keeps the health check off, as when the key is absent.
                cfg.poll.verify_interval = match f.str() {
                    Ok(v) if v.trim().eq_ignore_ascii_case("off") => None,
                    _ => Some(f.duration(true)?).filter(|d| !d.is_zero()),
                };
            }
        }
        if let Some(f) = root.take("policy") {
            cfg.policy = parse_policy(f)?;
        }
        if let Some(f) = root.take("log") {
            let mut s = f.section(&["format", "level"])?;
            if let Some(f) = s.take("format") {
                cfg.log.format = match f.str()? {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(f.err("expected \"text\" or \"json\"")),
                };
            }
            if let Some(f) = s.take("level") {
                let level = f.str()?;
                check_log_level(level).map_err(|m| f.err(m))?;
                cfg.log.level = level.to_string();
            }
        }
        if let Some(f) = root.take("sink") {
            cfg.sinks = parse_sinks(f)?;
        }
        if let Some(f) = root.take("identity") {
            cfg.identity = Some(parse_identity(f)?);
        }
        Ok(cfg)
    }

    /// The effective configuration as TOML, every default spelled out, with the inline admin
    /// token replaced by `"<redacted>"` (for `ssfd check-config`). The output parses back into
    /// the same configuration, apart from the redacted token.
    pub fn redacted_toml(&self) -> String {
        let shown = Shown::from(self);
        // The mirror structs hold only strings, integers, booleans, arrays and tables, which
        // TOML can always represent, so serialization has no failure case worth surfacing.
        toml::to_string(&shown).unwrap_or_default()
    }
}

/// Whether a policy key or sink `events` entry matches an event type: the pattern equals the
/// full URI, or the URI's last path segment (`"session-revoked"` matches
/// `https://schemas.openid.net/secevent/caep/event-type/session-revoked`).
pub fn event_type_matches(pattern: &str, event_type_uri: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    if pattern == event_type_uri {
        return true;
    }
    // A pattern with a slash is a URI and must match whole, so that one transmitter's type
    // is never taken for another's by a partial path.
    !pattern.contains('/') && event_type_uri.rsplit('/').next() == Some(pattern)
}

/// Maps a secret path written as `credential:NAME` to `$CREDENTIALS_DIRECTORY/NAME`; any other
/// path is returned as it is. Errors when `CREDENTIALS_DIRECTORY` is unset or the name is bad.
pub fn resolve_secret_path(p: &Path) -> Result<PathBuf, ConfigError> {
    resolve_secret_path_in(p, std::env::var_os("CREDENTIALS_DIRECTORY").as_deref())
}

/// Reads a secret file (after [`resolve_secret_path`]) and strips trailing whitespace, so that a
/// file written with `echo` holds the same secret as one written without a newline.
pub fn read_secret(p: &Path) -> Result<String, ConfigError> {
    let resolved = resolve_secret_path(p)?;
    let text = std::fs::read_to_string(&resolved).map_err(|source| ConfigError::Read {
        path: resolved.clone(),
        source,
    })?;
    let secret = text.trim_end();
    if secret.is_empty() {
        return Err(ConfigError::Value {
            key: resolved.display().to_string(),
            message: "the secret file is empty".to_string(),
        });
    }
    Ok(secret.to_string())
}

fn resolve_secret_path_in(p: &Path, creds_dir: Option<&OsStr>) -> Result<PathBuf, ConfigError> {
    let Some(name) = p.to_str().and_then(|s| s.strip_prefix(CREDENTIAL_PREFIX)) else {
        return Ok(p.to_path_buf());
    };
    let fail = |message: String| ConfigError::Value {
        key: p.display().to_string(),
        message,
    };
    check_credential_name(name).map_err(fail)?;
    match creds_dir {
        Some(dir) if !dir.is_empty() => Ok(Path::new(dir).join(name)),
        _ => Err(fail(
            "CREDENTIALS_DIRECTORY is not set; credential: paths need systemd's LoadCredential= \
             (or CREDENTIALS_DIRECTORY pointing at the directory that holds the file)"
                .to_string(),
        )),
    }
}

fn check_credential_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(format!(
            "\"{CREDENTIAL_PREFIX}{name}\": a credential name is one file name, without '/'"
        ));
    }
    Ok(())
}

const ROOT_KEYS: &[&str] = &[
    "server", "storage", "admin", "jwks", "poll", "policy", "log", "sink", "identity",
];
const SERVER_KEYS: &[&str] = &[
    "push_listen",
    "admin_listen",
    "public_base_url",
    "push_token_overlap",
    "max_body",
    "shutdown_grace",
];
const JWKS_KEYS: &[&str] = &[
    "ttl",
    "refresh_cooldown",
    "allow_http",
    "connect_timeout",
    "timeout",
];
const SINK_COMMON_KEYS: &[&str] = &[
    "type",
    "name",
    "timeout",
    "streams",
    "events",
    "max_attempts",
    "retry_base",
];
const WEBHOOK_KEYS: &[&str] = &["url", "secret_file"];
const COMMAND_KEYS: &[&str] = &["argv"];
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

fn parse_server(mut s: Section<'_>, out: &mut ServerConfig) -> Result<(), ConfigError> {
    if let Some(f) = s.take("push_listen") {
        out.push_listen = f.socket_addr()?;
    }
    if let Some(f) = s.take("admin_listen") {
        out.admin_listen = f.socket_addr()?;
    }
    if let Some(f) = s.take("public_base_url") {
        let url = f.http_url()?;
        // The push URL is this plus a path, so a query or fragment would end up in the middle.
        if url.query().is_some() || url.fragment().is_some() {
            return Err(f.err("must not have a query or fragment"));
        }
        out.public_base_url = f.str()?.to_string();
    }
    if let Some(f) = s.take("push_token_overlap") {
        // Zero is meaningful: a rotation then ends the old token at once.
        out.push_token_overlap = f.duration(true)?;
    }
    if let Some(f) = s.take("max_body") {
        out.max_body_bytes = f.size()?;
    }
    if let Some(f) = s.take("shutdown_grace") {
        // Zero is meaningful: stop without waiting for work in flight.
        out.shutdown_grace = f.duration(true)?;
    }
    Ok(())
}

fn parse_admin(mut s: Section<'_>, out: &mut AdminConfig) -> Result<(), ConfigError> {
    let token = s.take("token");
    let token_file = s.take("token_file");
    if let (Some(t), Some(_)) = (&token, &token_file) {
        // Silently preferring one would leave the operator guessing which token is live.
        return Err(t.err("set either token or token_file, not both"));
    }
    if let Some(f) = token {
        let t = f.str()?;
        if t.is_empty() {
            return Err(f.err("must not be empty"));
        }
        // The token travels in an Authorization header.
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(f.err("must not contain whitespace or control characters"));
        }
        out.token = Some(t.to_string());
    }
    if let Some(f) = token_file {
        out.token_file = f.secret_path()?;
    }
    Ok(())
}

fn parse_jwks(mut s: Section<'_>, out: &mut JwksConfig) -> Result<(), ConfigError> {
    if let Some(f) = s.take("ttl") {
        out.ttl = f.duration(false)?;
    }
    if let Some(f) = s.take("refresh_cooldown") {
        // Zero would let every unknown `kid` trigger a fetch: the cooldown is the rate limit.
        out.refresh_cooldown = f.duration(false)?;
    }
    if let Some(f) = s.take("allow_http") {
        out.allow_http = f.bool()?;
    }
    if let Some(f) = s.take("connect_timeout") {
        out.connect_timeout = f.duration(false)?;
    }
    if let Some(f) = s.take("timeout") {
        out.timeout = f.duration(false)?;
    }
    Ok(())
}

fn parse_policy(f: Field<'_>) -> Result<BTreeMap<String, RevocationAction>, ConfigError> {
    let mut s = f.section_any_keys()?;
    s.quote_keys = true;
    let mut policy = BTreeMap::new();
    for f in s.into_fields() {
        if f.name.trim().is_empty() {
            return Err(f.err("an event type must not be empty"));
        }
        let action = RevocationAction::from_short(f.str()?)
            .ok_or_else(|| f.err("expected \"REVOKE_ALL\" or \"LOG_ONLY\""))?;
        policy.insert(f.name.clone(), action);
    }
    Ok(policy)
}

fn parse_sinks(f: Field<'_>) -> Result<Vec<SinkConfig>, ConfigError> {
    let cx = f.cx;
    let tree::Val::Array(items) = f.val else {
        return Err(cx.invalid(
            f.line,
            &f.key,
            format!(
                "expected an array of tables (write each sink as [[sink]]), found {}",
                f.val.kind()
            ),
        ));
    };
    let mut sinks: Vec<SinkConfig> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let line = cx.line(item.span.start);
        let s = Section::new(cx, format!("sink[{i}]"), line, item.val)?;
        let (sink, name_line) = parse_sink(s)?;
        if let Some(j) = sinks.iter().position(|o| o.name == sink.name) {
            return Err(cx.invalid(
                name_line,
                format!("sink[{i}].name"),
                format!(
                    "duplicate sink name \"{}\" (also used by sink[{j}])",
                    sink.name
                ),
            ));
        }
        sinks.push(sink);
    }
    Ok(sinks)
}

/// Parses one `[[sink]]`; also returns the line of its `name`, for the duplicate check.
fn parse_sink(mut s: Section<'_>) -> Result<(SinkConfig, usize), ConfigError> {
    let (is_webhook, specific) = match s.take("type") {
        None => return Err(s.missing("type", "set type = \"webhook\" or \"command\"")),
        Some(f) => match f.str()? {
            "webhook" => (true, WEBHOOK_KEYS),
            "command" => (false, COMMAND_KEYS),
            _ => return Err(f.err("expected \"webhook\" or \"command\"")),
        },
    };
    let allowed: Vec<&str> = SINK_COMMON_KEYS.iter().chain(specific).copied().collect();
    s.deny_unknown(&allowed)?;

    let (name, name_line) = match s.take("name") {
        None => return Err(s.missing("name", "every sink needs a unique name")),
        Some(f) => {
            let n = f.str()?;
            let ok = !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            // Names end up in metrics labels, audit rows and log lines.
            if !ok {
                return Err(f.err("1 to 64 characters of letters, digits, '-', '_' or '.'"));
            }
            (n.to_string(), f.line)
        }
    };

    let kind = if is_webhook {
        let url = match s.take("url") {
            None => return Err(s.missing("url", "a webhook sink needs a url")),
            Some(f) => {
                f.http_url()?;
                f.str()?.to_string()
            }
        };
        let secret_file = match s.take("secret_file") {
            None => {
                return Err(s.missing(
                    "secret_file",
                    "a webhook sink needs the file of its HMAC key",
                ))
            }
            Some(f) => f.secret_path()?,
        };
        SinkKind::Webhook { url, secret_file }
    } else {
        let argv = match s.take("argv") {
            None => return Err(s.missing("argv", "a command sink needs argv")),
            Some(f) => {
                let argv = f.string_list()?;
                match argv.first() {
                    None => return Err(f.err("must not be empty")),
                    Some(program) if program.is_empty() => {
                        return Err(f.err("the program (first element) must not be empty"))
                    }
                    Some(_) => argv,
                }
            }
        };
        SinkKind::Command { argv }
    };

    let timeout = match s.take("timeout") {
        Some(f) => f.duration(false)?,
        None if is_webhook => DEFAULT_WEBHOOK_TIMEOUT,
        None => DEFAULT_COMMAND_TIMEOUT,
    };
    let streams = match s.take("streams") {
        Some(f) => nonempty_entries(&f)?,
        None => Vec::new(),
    };
    let events = match s.take("events") {
        Some(f) => nonempty_entries(&f)?,
        None => Vec::new(),
    };
    let max_attempts = match s.take("max_attempts") {
        Some(f) => f.int_in(SINK_MAX_ATTEMPTS_RANGE)?,
        None => DEFAULT_SINK_MAX_ATTEMPTS,
    };
    let retry_base = match s.take("retry_base") {
        Some(f) => {
            let d = f.duration(false)?;
            if d > SINK_RETRY_CAP {
                return Err(f.err(format!(
                    "must not exceed {} (the longest delay between attempts)",
                    format_duration(SINK_RETRY_CAP)
                )));
            }
            d
        }
        None => DEFAULT_SINK_RETRY_BASE,
    };
    let sink = SinkConfig {
        name,
        kind,
        timeout,
        streams,
        events,
        max_attempts,
        retry_base,
    };
    Ok((sink, name_line))
}

fn nonempty_entries(f: &Field<'_>) -> Result<Vec<String>, ConfigError> {
    let list = f.string_list()?;
    if list.iter().any(|e| e.trim().is_empty()) {
        return Err(f.err("entries must not be empty"));
    }
    Ok(list)
}

fn parse_identity(f: Field<'_>) -> Result<IdentityConfig, ConfigError> {
    let mut s = f.section(&["map_file", "rule"])?;
    let mut out = IdentityConfig {
        map_file: None,
        rule: None,
    };
    if let Some(f) = s.take("map_file") {
        out.map_file = Some(f.path()?);
    }
    if let Some(f) = s.take("rule") {
        let rule = f.str()?;
        if !IDENTITY_RULES.contains(&rule) {
            return Err(f.err(format!("expected one of: {}", IDENTITY_RULES.join(", "))));
        }
        out.rule = Some(rule.to_string());
    }
    if out.map_file.is_none() && out.rule.is_none() {
        return Err(s
            .cx
            .invalid(s.line, &s.prefix, "set map_file, rule or both"));
    }
    Ok(out)
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

/// Parses a size: an integer with an optional unit (B, KiB, MiB, kB, MB).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        _ => return None,
    };
    n.checked_mul(multiplier)
}

fn format_size(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if n != 0 && n % MIB == 0 {
        format!("{}MiB", n / MIB)
    } else if n != 0 && n % 1024 == 0 {
        format!("{}KiB", n / 1024)
    } else {
        format!("{n}B")
    }
}

fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Formats a key for a dotted path, quoting it unless it is a TOML bare key.
fn display_key(name: &str, always_quote: bool) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare && !always_quote {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parsing context: where the text came from and where its lines start.
struct Cx<'a> {
    path: &'a Path,
    line_starts: Vec<usize>,
    text: &'a str,
}

impl<'a> Cx<'a> {
    fn new(text: &'a str, path: &'a Path) -> Cx<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Cx {
            path,
            line_starts,
            text,
        }
    }

    /// The 1-based line holding a byte offset.
    fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    fn invalid(
        &self,
        line: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            key: key.into(),
            message: message.into(),
        }
    }

    fn tree(&self) -> Result<tree::Val, ConfigError> {
        let text = self.text;
        let err = match toml::from_str::<tree::Val>(text) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        // The tree takes every TOML value but date-times; a generic parse tells a syntax error
        // (reported as toml words it) from a date-time (which no key of ours takes).
        let (e, message) = match toml::from_str::<toml::Table>(text) {
            Err(e) => {
                let m = e.message().trim().to_string();
                (e, m)
            }
            Ok(_) => (
                err,
                "dates and times are not valid values in this file".to_string(),
            ),
        };
        let line = e.span().map(|s| self.line(s.start)).unwrap_or(1);
        Err(self.invalid(line, self.key_at_line(line), message))
    }

    /// A best-effort dotted key for a line the parser rejected: the last table header above it
    /// and the key written on it.
    fn key_at_line(&self, line: usize) -> String {
        // Headers are read line by line, so that `[[sink]]` blocks get the same `sink[N]`
        // names the validation errors use.
        let header = |l: &str| -> Option<(String, bool)> {
            let l = l.trim();
            if let Some(r) = l.strip_prefix("[[") {
                return Some((r.split("]]").next()?.trim().to_string(), true));
            }
            let r = l.strip_prefix('[')?;
            Some((r.split(']').next()?.trim().to_string(), false))
        };
        let mut table = String::new();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut here = "";
        for (i, l) in self.text.lines().enumerate() {
            if let Some((name, is_array)) = header(l) {
                table = if is_array {
                    let n = counts.entry(name.clone()).or_insert(0);
                    *n += 1;
                    format!("{name}[{}]", *n - 1)
                } else {
                    name
                };
            }
            if i + 1 == line {
                here = l.trim();
                break;
            }
        }
        if header(here).is_some() {
            return table;
        }
        let key = here
            .split_once('=')
            .map(|(k, _)| k.trim().to_string())
            .filter(|k| !k.is_empty() && !k.starts_with('#'))
            .unwrap_or_else(|| "(syntax)".to_string());
        if table.is_empty() {
            key
        } else {
            format!("{table}.{key}")
        }
    }
}

/// One table of the file, its keys not yet consumed.
struct Section<'a> {
    cx: &'a Cx<'a>,
    /// Dotted path of the table ("" for the root).
    prefix: String,
    /// Line that introduces the table, for errors about the table as a whole.
    line: usize,
    entries: Vec<(tree::Key, tree::Val)>,
    quote_keys: bool,
}

impl<'a> Section<'a> {
    fn new(
        cx: &'a Cx<'a>,
        prefix: String,
        line: usize,
        val: tree::Val,
    ) -> Result<Section<'a>, ConfigError> {
        match val {
            tree::Val::Table(entries) => Ok(Section {
                cx,
                prefix,
                line,
                entries,
                quote_keys: false,
            }),
            other => Err(cx.invalid(
                line,
                prefix,
                format!("expected a table, found {}", other.kind()),
            )),
        }
    }

    fn open(
        cx: &'a Cx<'a>,
        prefix: String,
        line: usize,
        val: tree::Val,
        allowed: &[&str],
    ) -> Result<Section<'a>, ConfigError> {
        let s = Section::new(cx, prefix, line, val)?;
        s.deny_unknown(allowed)?;
        Ok(s)
    }

    /// Rejects the first key (in file order) that `allowed` does not name.
    fn deny_unknown(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        let unknown = self
            .entries
            .iter()
            .filter(|(k, _)| !allowed.contains(&k.name.as_str()))
            .min_by_key(|(k, _)| k.span.start);
        match unknown {
            None => Ok(()),
            Some((k, _)) => Err(self.cx.invalid(
                self.cx.line(k.span.start),
                self.key_path(&k.name),
                format!("unknown key (expected one of: {})", allowed.join(", ")),
            )),
        }
    }

    fn key_path(&self, name: &str) -> String {
        let key = display_key(name, self.quote_keys);
        if self.prefix.is_empty() {
            key
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// The line of key `name`, if the table has it.
    fn line_of(&self, name: &str) -> Option<usize> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(k, _)| self.cx.line(k.span.start))
    }

    fn take(&mut self, name: &str) -> Option<Field<'a>> {
        let i = self.entries.iter().position(|(k, _)| k.name == name)?;
        let (key, val) = self.entries.remove(i);
        Some(self.field(key, val))
    }

    fn field(&self, key: tree::Key, val: tree::Val) -> Field<'a> {
        Field {
            cx: self.cx,
            key: self.key_path(&key.name),
            line: self.cx.line(key.span.start),
            name: key.name,
            val,
        }
    }

    fn into_fields(mut self) -> Vec<Field<'a>> {
        let entries = std::mem::take(&mut self.entries);
        entries.into_iter().map(|(k, v)| self.field(k, v)).collect()
    }

    /// An error for a required key that is absent, on the table's own line.
    fn missing(&self, name: &str, message: &str) -> ConfigError {
        self.cx.invalid(
            self.line,
            self.key_path(name),
            format!("missing: {message}"),
        )
    }
}

/// One key of the file with its value, ready to be checked.
struct Field<'a> {
    cx: &'a Cx<'a>,
    /// The key as written, unquoted.
    name: String,
    /// The dotted path that errors name.
    key: String,
    line: usize,
    val: tree::Val,
}

impl<'a> Field<'a> {
    fn err(&self, message: impl Into<String>) -> ConfigError {
        self.cx.invalid(self.line, &self.key, message)
    }

    fn section(self, allowed: &[&str]) -> Result<Section<'a>, ConfigError> {
        Section::open(self.cx, self.key, self.line, self.val, allowed)
    }

    fn section_any_keys(self) -> Result<Section<'a>, ConfigError> {
        Section::new(self.cx, self.key, self.line, self.val)
    }

    fn expected(&self, what: &str) -> ConfigError {
        self.err(format!("expected {what}, found {}", self.val.kind()))
    }

    fn str(&self) -> Result<&str, ConfigError> {
        match &self.val {
            tree::Val::Str(s) => Ok(s),
            _ => Err(self.expected("a string")),
        }
    }

    fn bool(&self) -> Result<bool, ConfigError> {
        match self.val {
            tree::Val::Bool(b) => Ok(b),
            _ => Err(self.expected("true or false")),
        }
    }

    fn int_in(&self, range: std::ops::RangeInclusive<u32>) -> Result<u32, ConfigError> {
        let tree::Val::Int(n) = self.val else {
            return Err(self.expected("an integer"));
        };
        u32::try_from(n)
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                self.err(format!(
                    "must be between {} and {}",
                    range.start(),
                    range.end()
                ))
            })
    }

    fn duration(&self, allow_zero: bool) -> Result<Duration, ConfigError> {
        let s = match &self.val {
            tree::Val::Str(s) => s,
            _ => return Err(self.expected("a duration such as \"30s\" or \"1h\"")),
        };
        let d = humantime::parse_duration(s.trim()).map_err(|e| {
            self.err(format!(
                "not a duration ({e}); write e.g. \"30s\", \"5m\" or \"1h\""
            ))
        })?;
        if d.is_zero() && !allow_zero {
            return Err(self.err("must be longer than zero"));
        }
        Ok(d)
    }

    fn size(&self) -> Result<usize, ConfigError> {
        let n = match &self.val {
            tree::Val::Int(n) => u64::try_from(*n).ok(),
            tree::Val::Str(s) => Some(parse_size(s).ok_or_else(|| {
                self.err("not a size; write bytes as an integer or e.g. \"64KiB\", \"1MiB\"")
            })?),
            _ => return Err(self.expected("a size such as \"64KiB\" or an integer of bytes")),
        };
        n.and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=MAX_BODY_LIMIT).contains(n))
            .ok_or_else(|| {
                self.err(format!(
                    "must be between 1 byte and {}",
                    format_size(MAX_BODY_LIMIT)
                ))
            })
    }

    fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.str()?.trim().parse().map_err(|_| {
            self.err("not a socket address; write e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"")
        })
    }

    fn http_url(&self) -> Result<reqwest::Url, ConfigError> {
        let url =
            reqwest::Url::parse(self.str()?).map_err(|e| self.err(format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.err("must be an http:// or https:// URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(self.err("must name a host"));
        }
        Ok(url)
    }

    fn path(&self) -> Result<PathBuf, ConfigError> {
        let s = self.str()?;
        if s.trim().is_empty() {
            return Err(self.err("must not be empty"));
        }
        Ok(PathBuf::from(s))
    }

    /// A path that may also be `credential:NAME`; the name is checked here so that a typo shows
    /// at check time, not when the service first reads it.
    fn secret_path(&self) -> Result<PathBuf, ConfigError> {
        let p = self.path()?;
        if let Some(name) = self.str()?.strip_prefix(CREDENTIAL_PREFIX) {
            check_credential_name(name).map_err(|m| self.err(m))?;
        }
        Ok(p)
    }

    fn string_list(&self) -> Result<Vec<String>, ConfigError> {
        let tree::Val::Array(items) = &self.val else {
            return Err(self.expected("an array of strings"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match &item.val {
                tree::Val::Str(s) => Ok(s.clone()),
                other => Err(self.cx.invalid(
                    self.cx.line(item.span.start),
                    format!("{}[{i}]", self.key),
                    format!("expected a string, found {}", other.kind()),
                )),
            })
            .collect()
    }
}

/// A TOML document as a tree that remembers where each key and array element was written.
mod tree {
    use std::fmt;
    use std::ops::Range;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use toml::Spanned;

    pub(super) struct Key {
        pub name: String,
        pub span: Range<usize>,
    }

    pub(super) struct Item {
        pub span: Range<usize>,
        pub val: Val,
    }

    pub(super) enum Val {
        Str(String),
        Int(i64),
        /// No key takes a float, so only its presence matters.
        Float,
        Bool(bool),
        Array(Vec<Item>),
        Table(Vec<(Key, Val)>),
    }

    impl Val {
        pub fn kind(&self) -> &'static str {
            match self {
                Val::Str(_) => "a string",
                Val::Int(_) => "an integer",
                Val::Float => "a float",
                Val::Bool(_) => "a boolean",
                Val::Array(_) => "an array",
                Val::Table(_) => "a table",
            }
        }
    }

    impl<'de> Deserialize<'de> for Val {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Val, D::Error> {
            d.deserialize_any(ValVisitor)
        }
    }

    struct ValVisitor;

    impl<'de> Visitor<'de> for ValVisitor {
        type Value = Val;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a TOML value")
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Val, E> {
            Ok(Val::Bool(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val, E> {
            Ok(Val::Int(v))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val, E> {
            i64::try_from(v)
                .map(Val::Int)
                .map_err(|_| E::custom("integer out of range"))
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Val, E> {
            Ok(Val::Float)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Val, E> {
            Ok(Val::Str(v.to_string()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Val, E> {
            Ok(Val::Str(v))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<Spanned<Val>>()? {
                let span = item.span();
                items.push(Item {
                    span,
                    val: item.into_inner(),
                });
            }
            Ok(Val::Array(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
            let mut entries = Vec::new();
            while let Some(key) = map.next_key::<Spanned<String>>()? {
                let span = key.span();
                let val = map.next_value::<Val>()?;
                entries.push((
                    Key {
                        name: key.into_inner(),
                        span,
                    },
                    val,
                ));
            }
            Ok(Val::Table(entries))
        }
    }
}

/// The shape `redacted_toml` prints: field order here is the order of the output.
#[derive(Serialize)]
struct Shown {
    server: ShownServer,
    storage: ShownStorage,
    admin: ShownAdmin,
    jwks: ShownJwks,
    poll: ShownPoll,
    policy: BTreeMap<String, &'static str>,
    log: ShownLog,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sink: Vec<ShownSink>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<ShownIdentity>,
}

#[derive(Serialize)]
struct ShownServer {
    push_listen: String,
    admin_listen: String,
    public_base_url: String,
    push_token_overlap: String,
    max_body: String,
    shutdown_grace: String,
}

#[derive(Serialize)]
struct ShownStorage {
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_file: Option<String>,
}

#[derive(Serialize)]
struct ShownAdmin {
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_file: Option<String>,
}

#[derive(Serialize)]
struct ShownJwks {
    ttl: String,
    refresh_cooldown: String,
    allow_http: bool,
    connect_timeout: String,
    timeout: String,
}

#[derive(Serialize)]
struct ShownPoll {
    max_events: u32,
    timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify_interval: Option<String>,
}

#[derive(Serialize)]
struct ShownLog {
    format: &'static str,
    level: String,
}

#[derive(Serialize)]
struct ShownSink {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    argv: Option<Vec<String>>,
    timeout: String,
    streams: Vec<String>,
    events: Vec<String>,
    max_attempts: u32,
    retry_base: String,
}

#[derive(Serialize)]
struct ShownIdentity {
    #[serde(skip_serializing_if = "Option::is_none")]
    map_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
}

impl From<&Config> for Shown {
    fn from(c: &Config) -> Shown {
        let path = |p: &Path| p.display().to_string();
        Shown {
            server: ShownServer {
                push_listen: c.server.push_listen.to_string(),
                admin_listen: c.server.admin_listen.to_string(),
                public_base_url: c.server.public_base_url.clone(),
                push_token_overlap: format_duration(c.server.push_token_overlap),
                max_body: format_size(c.server.max_body_bytes),
                shutdown_grace: format_duration(c.server.shutdown_grace),
            },
            // The one database in use: the SQLite path or the PostgreSQL URL (never both, which
            // would not parse back).
            storage: match &c.storage.url {
                Some(url) => ShownStorage {
                    path: None,
                    url: Some(url.clone()),
                    password_file: c.storage.password_file.as_deref().map(path),
                },
                None => ShownStorage {
                    path: Some(path(&c.storage.path)),
                    url: None,
                    password_file: None,
                },
            },
            // token_file is unused while an inline token is set, and showing both would print a
            // configuration that does not parse back.
            admin: match c.admin.token {
                Some(_) => ShownAdmin {
                    token: Some("<redacted>"),
                    token_file: None,
                },
                None => ShownAdmin {
                    token: None,
                    token_file: Some(path(&c.admin.token_file)),
                },
            },
            jwks: ShownJwks {
                ttl: format_duration(c.jwks.ttl),
                refresh_cooldown: format_duration(c.jwks.refresh_cooldown),
                allow_http: c.jwks.allow_http,
                connect_timeout: format_duration(c.jwks.connect_timeout),
                timeout: format_duration(c.jwks.timeout),
            },
            poll: ShownPoll {
                max_events: c.poll.max_events,
                timeout: format_duration(c.poll.timeout),
                verify_interval: c.poll.verify_interval.map(format_duration),
            },
            policy: c
                .policy
                .iter()
                .map(|(k, v)| (k.clone(), v.as_short()))
                .collect(),
            log: ShownLog {
                format: c.log.format.as_str(),
                level: c.log.level.clone(),
            },
            sink: c
                .sinks
                .iter()
                .map(|s| {
                    let (url, secret_file, argv) = match &s.kind {
                        SinkKind::Webhook { url, secret_file } => {
                            (Some(url.clone()), Some(path(secret_file)), None)
                        }
                        SinkKind::Command { argv } => (None, None, Some(argv.clone())),
                    };
                    ShownSink {
                        kind: s.kind.type_name(),
                        name: s.name.clone(),
                        url,
                        secret_file,
                        argv,
                        timeout: format_duration(s.timeout),
                        streams: s.streams.clone(),
                        events: s.events.clone(),
                        max_attempts: s.max_attempts,
                        retry_base: format_duration(s.retry_base),
                    }
                })
                .collect(),
            identity: c.identity.as_ref().map(|i| ShownIdentity {
                map_file: i.map_file.as_deref().map(path),
                rule: i.rule.clone(),
            }),
        }
    }
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

    const DESIGN_EXAMPLE: &str = r#"
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
    fn empty_text_is_the_default() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("# only a comment\n\n").unwrap(), Config::default());
        assert_eq!(parse("[server]\n[jwks]\n").unwrap(), Config::default());
    }

    #[test]
    fn design_example_parses() {
        let cfg = parse(DESIGN_EXAMPLE).unwrap();
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
                    kind: SinkKind::Webhook {
                        url: "https://revoker.internal/hooks/ssf".into(),
                        secret_file: "/etc/ssfd/webhook.secret".into(),
                    },
                    timeout: Duration::from_secs(5),
                    streams: vec![],
                    events: vec![],
                    max_attempts: DEFAULT_SINK_MAX_ATTEMPTS,
                    retry_base: DEFAULT_SINK_RETRY_BASE,
                },
                SinkConfig {
                    name: "local-sessions".into(),
                    kind: SinkKind::Command {
                        argv: vec!["/usr/local/libexec/revoke-sessions".into()],
                    },
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
            SinkKind::Webhook {
                url: "http://127.0.0.1:9999/hook?x=1".into(),
                secret_file: "credential:webhook".into()
            }
        );
        assert_eq!(hook.timeout, DEFAULT_WEBHOOK_TIMEOUT);
        assert_eq!(hook.streams, vec!["s1", "s2"]);
        assert_eq!(hook.events, vec!["session-revoked"]);
        assert_eq!(hook.max_attempts, 3);
        assert_eq!(hook.retry_base, Duration::from_millis(250));
        let cmd = &cfg.sinks[1];
        assert_eq!(
            cmd.kind,
            SinkKind::Command {
                argv: vec!["revoke".into(), "--all".into()]
            }
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
    fn token_never_shows_in_debug() {
        let cfg = parse("[admin]\ntoken = \"very-secret-token\"\n").unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("very-secret-token"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
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
            SinkKind::Command {
                argv: vec!["/bin/revoke".into(), String::new()]
            }
        );
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
    fn event_type_patterns() {
        let uri = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
        assert!(event_type_matches("session-revoked", uri));
        assert!(event_type_matches(uri, uri));
        assert!(!event_type_matches("sessions-revoked", uri));
        assert!(!event_type_matches("event-type/session-revoked", uri));
        assert!(!event_type_matches("", uri));
        assert!(!event_type_matches("revoked", uri));
        assert!(!event_type_matches(
            "https://schemas.openid.net/secevent/risc/event-type/session-revoked",
            uri
        ));
        assert!(event_type_matches("plain", "plain"));
        assert!(!event_type_matches("x", "https://e/x/"));
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
        assert!(m.contains("storage.path (line 2)"), "{m}");
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
    }

    #[test]
    fn secret_paths_resolve() {
        let dir = OsStr::new("/run/credentials/ssfd.service");
        assert_eq!(
            resolve_secret_path_in(Path::new("/etc/ssfd/secret"), None).unwrap(),
            PathBuf::from("/etc/ssfd/secret")
        );
        assert_eq!(
            resolve_secret_path_in(Path::new("credential:webhook"), Some(dir)).unwrap(),
            PathBuf::from("/run/credentials/ssfd.service/webhook")
        );
        let err = resolve_secret_path_in(Path::new("credential:webhook"), None).unwrap_err();
        assert!(err.to_string().contains("CREDENTIALS_DIRECTORY"), "{err}");
        assert!(err.to_string().contains("credential:webhook"), "{err}");
        assert!(
            resolve_secret_path_in(Path::new("credential:webhook"), Some(OsStr::new(""))).is_err()
        );
        assert!(resolve_secret_path_in(Path::new("credential:../x"), Some(dir)).is_err());
        assert!(resolve_secret_path_in(Path::new("credential:"), Some(dir)).is_err());
    }

    #[test]
    fn secrets_are_read_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "k3y \n\n").unwrap();
        assert_eq!(read_secret(&p).unwrap(), "k3y");
        std::fs::write(&p, " \n").unwrap();
        assert!(matches!(read_secret(&p), Err(ConfigError::Value { .. })));
        assert!(matches!(
            read_secret(&dir.path().join("missing")),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn redacted_toml_hides_the_token_and_parses_back() {
        let mut cfg = parse(DESIGN_EXAMPLE).unwrap();
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

    #[test]
    fn line_of_offset() {
        let cx = Cx::new("a\nbc\n\nd", Path::new("x"));
        assert_eq!(cx.line(0), 1);
        assert_eq!(cx.line(1), 1);
        assert_eq!(cx.line(2), 2);
        assert_eq!(cx.line(4), 2);
        assert_eq!(cx.line(5), 3);
        assert_eq!(cx.line(6), 4);
        assert_eq!(cx.line(7), 4);
    }
}
