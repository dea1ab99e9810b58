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
    pub path: PathBuf,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// `secret_file` may be `credential:NAME` (see [`resolve_secret_path`]).
    Webhook { url: String, secret_file: PathBuf },
    Command { argv: Vec<String> },
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
        let root = cx.tree(text)?;
        let mut root = Section::open(&cx, String::new(), 1, root, ROOT_KEYS)?;
        let mut cfg = Config::default();
        if let Some(f) = root.take("server") {
            parse_server(f.section(SERVER_KEYS)?, &mut cfg.server)?;
        }
        if let Some(f) = root.take("storage") {
            let mut s = f.section(&["path"])?;
            if let Some(f) = s.take("path") {
                cfg.storage.path = f.path()?;
            }
        }
        if let Some(f) = root.take("admin") {
            parse_admin(f.section(&["token", "token_file"])?, &mut cfg.admin)?;
        }
        if let Some(f) = root.take("jwks") {
            parse_jwks(f.section(JWKS_KEYS)?, &mut cfg.jwks)?;
        }
        if let Some(f) = root.take("poll") {
            let mut s = f.section(&["max_events", "timeout"])?;
            if let Some(f) = s.take("max_events") {
                cfg.poll.max_events = f.int_in(POLL_MAX_EVENTS_RANGE)?;
            }
            if let Some(f) = s.take("timeout") {
                cfg.poll.timeout = f.duration(false)?;
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
const SINK_COMMON_KEYS: &[&str] = &["type", "name", "timeout", "streams", "events", "max_attempts"];
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
                format!("duplicate sink name \"{}\" (also used by sink[{j}])", sink.name),
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
    let sink = SinkConfig {
        name,
        kind,
        timeout,
        streams,
        events,
        max_attempts,
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
        return Err(s.cx.invalid(s.line, &s.prefix, "set map_file, rule or both"));
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
    if d.is_zero() {
        // humantime prints "0s", which parses back; spelled out so the output does not depend
        // on that detail.
        return "0s".to_string();
    }
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

    fn tree(&self, text: &str) -> Result<tree::Val, ConfigError> {
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
        let lines: Vec<&str> = self.text.lines().collect();
        let here = lines.get(line.wrapping_sub(1)).map(|l| l.trim()).unwrap_or("");
        let header = |l: &str| -> Option<String> {
            let l = l.trim();
            let inner = l
                .strip_prefix("[[")
                .and_then(|r| r.split("]]").next())
                .or_else(|| l.strip_prefix('[').and_then(|r| r.split(']').next()))?;
            Some(inner.trim().to_string())
        };
        if let Some(h) = header(here) {
            return h;
        }
        let key = here
            .split_once('=')
            .map(|(k, _)| k.trim().to_string())
            .filter(|k| !k.is_empty() && !k.starts_with('#'))
            .unwrap_or_else(|| "(syntax)".to_string());
        let table = lines
            .iter()
            .take(line.saturating_sub(1))
            .rev()
            .find_map(|l| header(l));
        match table {
            Some(t) if !t.is_empty() => format!("{t}.{key}"),
            _ => key,
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
        self.cx
            .invalid(self.line, self.key_path(name), format!("missing: {message}"))
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
            .ok_or_else(|| self.err(format!("must be between 1 byte and {}", format_size(MAX_BODY_LIMIT))))
    }

    fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.str()?.trim().parse().map_err(|_| {
            self.err("not a socket address; write e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"")
        })
    }

    fn http_url(&self) -> Result<reqwest::Url, ConfigError> {
        let url = reqwest::Url::parse(self.str()?)
            .map_err(|e| self.err(format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.err("must be an http:// or https:// URL"));
        }
        if url.host_str().map_or(true, str::is_empty) {
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
    path: String,
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
            storage: ShownStorage {
                path: path(&c.storage.path),
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
