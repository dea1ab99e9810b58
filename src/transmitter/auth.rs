//! Outbound credentials: the `Authorization` header ssfd presents to a transmitter, from a static
//! bearer token or an OAuth 2.0 client-credentials grant (client_secret_post), with the access
//! token cached per stream and destination origin and fetched again after a 401. A token is only
//! ever presented to the origin it was obtained for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{describe, read_limited, TransmitterError, MANAGEMENT_TIMEOUT};
use crate::outbound::{HttpClient, OutboundError};
use crate::stream::{OutboundAuth, Stream};

/// Scopes asked for when a stream names none (CAEP interoperability profile, without RFC 9728).
pub const DEFAULT_SCOPES: &str = "ssf.manage ssf.read";
/// A token is renewed this long before it expires (docs/poll.md#outbound-authentication).
const RENEW_BEFORE: Duration = Duration::from_secs(30);
/// Lifetime assumed when the token answer has no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

struct CachedToken {
    /// Hash of the credentials the token was issued for: an edited stream gets a new token.
    credentials: [u8; 32],
    access_token: String,
    renew_at: Instant,
}

/// Access tokens by stream id and the origin (scheme, host, port) they are presented to.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<(String, String), CachedToken>>,
    fetched: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TokenCache {
    // Tokens never reach a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache{<redacted>}")
    }
}

fn credentials_hash(client_id: &str, secret: &str, scopes: &[String], token_url: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [client_id, secret, token_url] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for s in scopes {
        h.update(s.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

/// When to renew a token that lives `lifetime`: 30 s before it expires, or halfway through a
/// lifetime shorter than a minute, so that a short-lived token is still reused.
pub fn renew_after(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(RENEW_BEFORE.min(lifetime / 2))
}

/// The `scope` parameter: the stream's scopes joined by spaces, or the SSF defaults.
pub fn scope_param(scopes: &[String]) -> String {
    let joined = scopes
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if joined.is_empty() {
        DEFAULT_SCOPES.to_string()
    } else {
        joined
    }
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), CachedToken>> {
        match self.entries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Access tokens fetched since start (for metrics).
    pub fn fetched(&self) -> u64 {
        self.fetched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets a stream's token (after a 401, or when the stream goes away).
    pub fn invalidate(&self, stream_id: &str) {
        self.lock().retain(|(id, _), _| id != stream_id);
    }

    /// The `Authorization` value for a call on behalf of `stream` to `target`, or `None` when
    /// the stream has no outbound credentials. An OAuth token obtained for one origin is never
    /// sent to another: each origin gets a token of its own.
    pub async fn header(
        &self,
        http: &HttpClient,
        stream: &Stream,
        target: &reqwest::Url,
    ) -> Result<Option<String>, TransmitterError> {
        let (client_id, client_secret, scopes, token_url) = match &stream.outbound_auth {
            None => return Ok(None),
            Some(OutboundAuth::Bearer { token }) => return Ok(Some(format!("Bearer {token}"))),
            Some(OutboundAuth::Oauth2 {
                client_id,
                client_secret,
                scopes,
                token_url,
            }) => (client_id, client_secret, scopes, token_url),
        };
        let credentials = credentials_hash(client_id, client_secret, scopes, token_url);
        let key = (stream.id.clone(), target.origin().ascii_serialization());
        if let Some(t) = self.lock().get(&key) {
            if t.credentials == credentials && t.renew_at > Instant::now() {
                return Ok(Some(format!("Bearer {}", t.access_token)));
            }
        }
        let scope = scope_param(scopes);
        let (access_token, lifetime) =
            fetch_token(http, client_id, client_secret, Some(&scope), token_url).await?;
        self.fetched
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let header = format!("Bearer {access_token}");
        self.lock().insert(
            key,
            CachedToken {
                credentials,
                access_token,
                renew_at: crate::clock::instant_after(Instant::now(), renew_after(lifetime)),
            },
        );
        Ok(Some(header))
    }
}

/// One client-credentials grant (RFC 6749 §4.4), the secret in the form body; `scope` is left
/// out when `None`. Returns the access token and its lifetime.
pub(crate) async fn fetch_token(
    http: &HttpClient,
    client_id: &str,
    client_secret: &str,
    scope: Option<&str>,
    token_url: &str,
) -> Result<(String, Duration), TransmitterError> {
    const STEP: &str = "token";
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", client_secret),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let resp = http
        .post(token_url)
        .map_err(|e| TransmitterError::failed(STEP, format!("tokenUrl: {e}")))?
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form)
        .timeout(MANAGEMENT_TIMEOUT)
        .send()
        .await
        .map_err(|e| TransmitterError::failed(STEP, describe(&e)))?;
    let status = resp.status().as_u16();
    let body = read_limited(resp, STEP, 64 * 1024).await?;
    let doc: Option<Value> = serde_json::from_slice(&body).ok();
    if !(200..300).contains(&status) {
        // The OAuth error code (RFC 6749 §5.2) helps the operator and carries no secret; only a
        // plain code is repeated, never free text.
        let code = doc
            .as_ref()
            .and_then(|d| d.get("error"))
            .and_then(Value::as_str)
            .filter(|c| {
                c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            });
        return Err(TransmitterError::failed(
            STEP,
            match code {
                Some(c) => format!("the token endpoint answered HTTP {status} ({c})"),
                None => format!("the token endpoint answered HTTP {status}"),
            },
        ));
    }
    let doc = doc.ok_or_else(|| {
        TransmitterError::failed(STEP, "the token endpoint answer is not valid JSON")
    })?;
    let token = doc
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && !t.chars().any(|c| c.is_whitespace() || c.is_control()))
        .ok_or_else(|| {
            TransmitterError::failed(STEP, "the token endpoint answer has no usable access_token")
        })?;
    if let Some(kind) = doc.get("token_type").and_then(Value::as_str) {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(TransmitterError::failed(
                STEP,
                "the token endpoint issued a token that is not a bearer token",
            ));
        }
    }
    let lifetime = doc
        .get("expires_in")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LIFETIME);
    Ok((token.to_string(), lifetime))
}

/// Sends a request on behalf of `stream` with its credentials. After a 401 with OAuth
/// credentials, the token is fetched again and the request sent once more.
pub async fn send<F>(
    http: &HttpClient,
    tokens: &TokenCache,
    stream: &Stream,
    step: &'static str,
    timeout: Duration,
    build: F,
) -> Result<reqwest::Response, TransmitterError>
where
    F: Fn(&HttpClient) -> Result<reqwest::RequestBuilder, OutboundError>,
{
    let oauth = matches!(stream.outbound_auth, Some(OutboundAuth::Oauth2 { .. }));
    let mut retried = false;
    loop {
        let (client, req) = build(http)
            .map_err(|e| TransmitterError::failed(step, e.to_string()))?
            .timeout(timeout)
            .build_split();
        let mut req = req.map_err(|_| TransmitterError::failed(step, "not a valid request"))?;
        if let Some(h) = tokens.header(http, stream, req.url()).await? {
            let value = reqwest::header::HeaderValue::from_str(&h).map_err(|_| {
                TransmitterError::failed(step, "the credential cannot be sent in a header")
            })?;
            req.headers_mut()
                .insert(reqwest::header::AUTHORIZATION, value);
        }
        let resp = client
            .execute(req)
            .await
            .map_err(|e| TransmitterError::failed(step, describe(&e)))?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED && oauth && !retried {
            tracing::info!(stream = %stream.id, step, "the transmitter refused the access token; fetching a new one");
            tokens.invalidate(&stream.id);
            retried = true;
            continue;
        }
        return Ok(resp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_margin() {
        assert_eq!(
            renew_after(Duration::from_secs(3600)),
            Duration::from_secs(3570)
        );
        assert_eq!(
            renew_after(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(renew_after(Duration::from_secs(10)), Duration::from_secs(5));
        assert_eq!(renew_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn scopes() {
        assert_eq!(scope_param(&[]), "ssf.manage ssf.read");
        assert_eq!(scope_param(&[" ".into()]), "ssf.manage ssf.read");
        assert_eq!(
            scope_param(&["ssf.read".into(), "custom".into()]),
            "ssf.read custom"
        );
    }

    #[test]
    fn credentials_hash_distinguishes_every_part() {
        let base = credentials_hash("id", "secret", &["a".into()], "https://as/t");
        assert_ne!(
            base,
            credentials_hash("id", "other", &["a".into()], "https://as/t")
        );
        assert_ne!(
            base,
            credentials_hash("id", "secret", &["b".into()], "https://as/t")
        );
        assert_ne!(
            base,
            credentials_hash("idsecret", "", &["a".into()], "https://as/t")
        );
    }

    #[test]
    fn debug_is_redacted() {
        let c = TokenCache::default();
        assert_eq!(format!("{c:?}"), "TokenCache{<redacted>}");
    }
}
