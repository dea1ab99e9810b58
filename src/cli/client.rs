//! A small client of a running daemon's admin API: where to find it and which token to present
//! (flags, environment, then receiver.toml), and its `{"code","message"}` errors as one-line
//! messages.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::table::clean;
use crate::config::{read_secret, Config, ConfigError};

/// Environment variable that holds the admin token (after `--token-file`, before the config).
pub const TOKEN_ENV: &str = "SSFD_ADMIN_TOKEN";
/// Environment variable that holds the admin API URL (clap reads it for `--admin-url`).
pub const URL_ENV: &str = "SSFD_ADMIN_URL";
/// The configuration file client commands read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "receiver.toml";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Generous because `streams test` waits for the transmitter's JWKS and a replay may plan many
/// actions in one call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API refused the call with its own error body.
    #[error("{code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// An error status without the API's error body (a proxy, or something else on the port).
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: StatusCode },
    #[error("cannot connect to the ssfd admin API at {url} ({reason}); is the daemon running?")]
    Unreachable { url: String, reason: String },
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url}: the answer is not JSON ({reason})")]
    NotJson { url: String, reason: String },
    #[error("invalid admin API URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("no admin token: {0}")]
    NoToken(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The command-line inputs that say where the daemon is and how to authenticate.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `--admin-url` or `SSFD_ADMIN_URL`.
    pub admin_url: Option<String>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `SSFD_ADMIN_TOKEN`.
    pub token_env: Option<String>,
}

/// The configuration file a client command reads: the one named, else `./receiver.toml` when it
/// exists, else none (built-in defaults).
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let p = PathBuf::from(DEFAULT_CONFIG_FILE);
            p.is_file().then_some(p)
        }
    }
}

/// The configuration, read only when a flag or variable leaves something to it, so that a
/// broken receiver.toml does not stand in the way of `--admin-url` with `SSFD_ADMIN_TOKEN`.
struct LazyConfig {
    path: Option<PathBuf>,
    loaded: Option<Config>,
}

impl LazyConfig {
    fn get(&mut self) -> Result<&Config, ConfigError> {
        if self.loaded.is_none() {
            let cfg = match &self.path {
                Some(p) => Config::load(p)?,
                None => Config::default(),
            };
            self.loaded = Some(cfg);
        }
        Ok(self.loaded.get_or_insert_with(Config::default))
    }
}

/// The URL that reaches a daemon listening on `addr`; a wildcard address is reached on loopback.
pub fn admin_url_for(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Parses an admin base URL; `host:port` without a scheme means `http://host:port`.
pub fn parse_base_url(raw: &str) -> Result<Url, ClientError> {
    let trimmed = raw.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    let bad = |reason: &str| ClientError::BadUrl {
        url: raw.to_string(),
        reason: reason.to_string(),
    };
    let url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(bad("a host is required"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment, please"));
    }
    Ok(url)
}

/// The admin token goes in the clear only to this machine: over plain http the URL must name a
/// loopback address (or `localhost`); anywhere else it must be https. A `./receiver.toml` in
/// the working directory, or a mistyped URL, then cannot make the CLI hand the token to another
/// host on the way.
pub fn check_token_destination(url: &Url) -> Result<(), ClientError> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if url.scheme() == "https" || loopback {
        Ok(())
    } else {
        Err(ClientError::BadUrl {
            url: url.to_string(),
            reason: "the admin token is only sent over https, or over http to a loopback \
                     address; use an https URL for a daemon on another host"
                .to_string(),
        })
    }
}

fn check_token(token: String, origin: &str) -> Result<String, ClientError> {
    if token.is_empty() {
        return Err(ClientError::NoToken(format!("{origin} is empty")));
    }
    // Such a token could never travel in an Authorization header.
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ClientError::NoToken(format!(
            "{origin} contains whitespace or control characters"
        )));
    }
    Ok(token)
}

/// A client of one daemon's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: Url,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(base: Url, token: String) -> Result<AdminClient, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("ssfd-cli/", env!("CARGO_PKG_VERSION")))
            // The admin token must not travel through a proxy picked up from the environment;
            // the admin listener is on loopback or a private network.
            .no_proxy()
            .build()
            .map_err(|e| ClientError::Transport {
                url: base.to_string(),
                reason: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(AdminClient { base, token, http })
    }

    /// Resolves the daemon's URL and the admin token. URL: `--admin-url` / `SSFD_ADMIN_URL`, else
    /// `server.admin_listen`. Token: `--token-file`, else `SSFD_ADMIN_TOKEN`, else `admin.token`,
    /// else the content of `admin.token_file`.
    pub fn resolve(target: &Target) -> Result<AdminClient, ClientError> {
        let mut config = LazyConfig {
            path: config_path(target.config.as_deref()),
            loaded: None,
        };
        let base = match target.admin_url.as_deref().filter(|u| !u.trim().is_empty()) {
            Some(u) => parse_base_url(u)?,
            None => {
                let server = &config.get()?.server;
                let mut url = admin_url_for(server.admin_listen);
                // The listener speaks only TLS then; the certificate must name the host, so
                // operators usually pass --admin-url with the certificate's name.
                if server.tls.as_ref().is_some_and(|t| t.admin) {
                    url = url.replacen("http://", "https://", 1);
                }
                parse_base_url(&url)?
            }
        };
        check_token_destination(&base)?;
        let token = if let Some(file) = &target.token_file {
            check_token(read_secret(file)?, &file.display().to_string())?
        } else if let Some(t) = target.token_env.as_deref().filter(|t| !t.trim().is_empty()) {
            check_token(t.trim().to_string(), TOKEN_ENV)?
        } else {
            let cfg = config.get()?;
            match &cfg.admin.token {
                Some(t) => check_token(t.clone(), "admin.token")?,
                None => {
                    let file = &cfg.admin.token_file;
                    let t = read_secret(file).map_err(|e| {
                        ClientError::NoToken(format!(
                            "{e} (admin.token_file); pass --token-file FILE, set {TOKEN_ENV}, \
                             or name the daemon's configuration with --config"
                        ))
                    })?;
                    check_token(t, &file.display().to_string())?
                }
            }
        };
        AdminClient::new(base, token)
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The URL of an API path, each segment percent-encoded, so that an ID typed by an operator
    /// stays one path segment.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url
    }

    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.send(Method::GET, self.url(segments, query), None)
            .await
    }

    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, ClientError> {
        self.send(Method::POST, self.url(segments, &[]), Some(body))
            .await
    }

    pub async fn delete(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.send(Method::DELETE, self.url(segments, query), None)
            .await
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let shown = url.to_string();
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(&self.base, &shown, &e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&self.base, &shown, &e))?;
        if !status.is_success() {
            return Err(api_error(&shown, status, &bytes));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(serde_json::Map::new()));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::NotJson {
            url: shown,
            reason: e.to_string(),
        })
    }
}

/// The innermost cause of an HTTP failure: reqwest's own message is generic, the bottom of
/// the chain says what happened ("Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    // "Connection refused (os error 111)": the number adds nothing for an operator.
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn transport_error(base: &Url, url: &str, e: &reqwest::Error) -> ClientError {
    if e.is_connect() {
        return ClientError::Unreachable {
            url: base.to_string(),
            reason: root_cause(e),
        };
    }
    let reason = if e.is_timeout() {
        format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())
    } else {
        root_cause(e)
    };
    ClientError::Transport {
        url: url.to_string(),
        reason,
    }
}

fn api_error(url: &str, status: StatusCode, body: &[u8]) -> ClientError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(clean)
    };
    match (field("code"), field("message")) {
        (Some(code), message) => ClientError::Api {
            status,
            code,
            message: message.unwrap_or_else(|| status.to_string()),
        },
        _ => ClientError::Status {
            url: url.to_string(),
            status,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_loopback_or_over_https() {
        let ok = |u: &str| check_token_destination(&parse_base_url(u).unwrap()).is_ok();
        assert!(ok("http://127.0.0.1:8081"));
        assert!(ok("http://[::1]:8081"));
        assert!(ok("localhost:8081"));
        assert!(ok("https://ssfd.internal.example:8443"));
        assert!(!ok("http://10.1.2.3:8081"));
        assert!(!ok("http://ssfd.internal.example:8081"));
        assert!(!ok("203.0.113.9:80"));
    }

    #[test]
    fn wildcard_listen_addresses_are_reached_on_loopback() {
        assert_eq!(
            admin_url_for("0.0.0.0:8081".parse().unwrap()),
            "http://127.0.0.1:8081"
        );
        assert_eq!(
            admin_url_for("[::]:9000".parse().unwrap()),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            admin_url_for("10.1.2.3:8081".parse().unwrap()),
            "http://10.1.2.3:8081"
        );
        assert_eq!(
            admin_url_for("[::1]:8081".parse().unwrap()),
            "http://[::1]:8081"
        );
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base_url("127.0.0.1:8081").unwrap().as_str(),
            "http://127.0.0.1:8081/"
        );
        assert!(parse_base_url("ftp://host").is_err());
        assert!(parse_base_url("http://host/?x=1").is_err());
        assert!(parse_base_url("http://").is_err());
    }

    #[test]
    fn path_segments_are_encoded() {
        let c = AdminClient::new(
            parse_base_url("http://127.0.0.1:1/prefix/").unwrap(),
            "t".into(),
        )
        .unwrap();
        let u = c.url(&["api", "v1", "ssf-receiver-streams", "a/b?c"], &[]);
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:1/prefix/api/v1/ssf-receiver-streams/a%2Fb%3Fc"
        );
        let u = c.url(&["api", "v1", "subjects:check"], &[("since", "1h".into())]);
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:1/prefix/api/v1/subjects:check?since=1h"
        );
    }

    #[test]
    fn error_bodies() {
        let e = api_error(
            "u",
            StatusCode::NOT_FOUND,
            br#"{"code":"not_found","message":"stream not found"}"#,
        );
        assert_eq!(e.to_string(), "not_found: stream not found");
        let e = api_error("http://x/api", StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(e.to_string(), "http://x/api: HTTP 502 Bad Gateway");
        // A hostile message cannot move the terminal's cursor or add lines.
        let e = api_error(
            "u",
            StatusCode::BAD_REQUEST,
            b"{\"code\":\"x\",\"message\":\"a\\nb\\u001b[2J\"}",
        );
        assert!(!e.to_string().contains(['\n', '\u{1b}']));
    }

    #[test]
    fn tokens_must_fit_a_header() {
        assert!(check_token("abc".into(), "t").is_ok());
        assert!(check_token("".into(), "t").is_err());
        assert!(check_token("a b".into(), "t").is_err());
    }
}
