//! ssfd as a client of its transmitters: outbound credentials ([`auth`]), the SSF §8 management
//! calls ([`client`]) and the periodic stream-health check ([`health`]), plus the state they and
//! the poller share (one HTTP client, the token cache, verification limits, counters).

pub mod auth;
pub mod client;
pub mod health;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use crate::admin::ApiError;
use crate::store::StoreError;

/// Delivery method URI of RFC 8935 push (SSF §6.1).
pub const DELIVERY_PUSH: &str = "urn:ietf:rfc:8935";
/// Delivery method URI of RFC 8936 poll (SSF §6.1).
pub const DELIVERY_POLL: &str = "urn:ietf:rfc:8936";
/// Push delivery URI of the RISC era, which pre-1.0 SSE transmitters expect (LEGACY_SSE).
pub const LEGACY_DELIVERY_PUSH: &str =
    "https://schemas.openid.net/secevent/risc/delivery-method/push";
/// Poll delivery URI of the RISC era (LEGACY_SSE).
pub const LEGACY_DELIVERY_POLL: &str =
    "https://schemas.openid.net/secevent/risc/delivery-method/poll";
/// Longest excerpt of a transmitter's error body shown in an error message.
pub const EXCERPT_CHARS: usize = 200;
/// Runs of token-like characters at least this long are taken for credentials and hidden.
const TOKEN_LIKE_CHARS: usize = 16;

/// Time allowed for one management call or token request.
pub const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest management or token answer read.
const MAX_MANAGEMENT_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransmitterError {
    /// A call did not produce a usable answer: transport failure, unreadable body, missing
    /// endpoint. `step` names the call (`create`, `verify`, `token`, ...).
    #[error("{step}: {message}")]
    Failed { step: &'static str, message: String },
    /// `excerpt` is the start of the answer body, scrubbed of anything like a credential.
    #[error("{step}: the transmitter answered HTTP {status}{}", excerpt_suffix(.excerpt))]
    Status {
        step: &'static str,
        status: u16,
        excerpt: String,
    },
    #[error(
        "{step}: the transmitter asks to wait {retry_after_secs} s before trying again (HTTP 429)"
    )]
    RateLimited {
        step: &'static str,
        retry_after_secs: u64,
    },
    /// Refused locally, before asking the transmitter.
    #[error("verify: too soon after the previous verification request (min_verification_interval {min_interval_secs} s); try again in {wait_secs} s")]
    TooSoon {
        wait_secs: u64,
        min_interval_secs: u64,
    },
    #[error("the stream is not registered at its transmitter (transmitterStreamId is empty)")]
    NotRegistered,
    /// The transmitter's answer failed validation; the stream was disabled and the reason
    /// recorded in lastErrorMessage.
    #[error("{step}: {message}; the stream was disabled")]
    Refused { step: &'static str, message: String },
    #[error("stream not found")]
    NotFound,
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TransmitterError {
    pub(crate) fn failed(step: &'static str, message: impl Into<String>) -> TransmitterError {
        TransmitterError::Failed {
            step,
            message: message.into(),
        }
    }
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt:?}")
    }
}

/// The start of an error body fit to show an operator: printable text of at most
/// [`EXCERPT_CHARS`] characters, with every `secret` and every run of token-like characters
/// (letters, digits, `-._~+/=`) of 16 or more replaced by `<redacted>`. A transmitter's error
/// may echo the credentials it was sent; none of them survives this.
pub fn scrubbed_excerpt(body: &[u8], secrets: &[&str]) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "<redacted>");
    }
    let token_like = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= TOKEN_LIKE_CHARS {
            out.push_str("<redacted>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if token_like(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(if c.is_control() { ' ' } else { c });
        }
    }
    flush(&mut run, &mut out);
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut excerpt: String = collapsed.chars().take(EXCERPT_CHARS).collect();
    if collapsed.chars().count() > EXCERPT_CHARS {
        excerpt.push('…');
    }
    excerpt
}

/// The secrets ssfd itself sends a transmitter for this stream, to keep out of any message.
pub(crate) fn outbound_secrets(stream: &crate::stream::Stream) -> Vec<&str> {
    match &stream.outbound_auth {
        Some(crate::stream::OutboundAuth::Bearer { token }) => vec![token.as_str()],
        Some(crate::stream::OutboundAuth::Oauth2 { client_secret, .. }) => {
            vec![client_secret.as_str()]
        }
        None => Vec::new(),
    }
}

/// Reads at most a few KiB of an error answer and returns its scrubbed excerpt ("" when the
/// body cannot be read).
pub(crate) async fn error_excerpt(resp: reqwest::Response, secrets: &[&str]) -> String {
    match read_limited(resp, "error", 4096).await {
        Ok(body) => scrubbed_excerpt(&body, secrets),
        Err(_) => String::new(),
    }
}

/// Describes a transport failure without the URL (which may carry a query the operator did not
/// mean to show) and without anything from the request.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        "the transmitter could not be reached".into()
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read".into()
    } else {
        "the request failed".into()
    }
}

/// Reads a body up to `limit` bytes.
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    step: &'static str,
    limit: usize,
) -> Result<Vec<u8>, TransmitterError> {
    if resp.content_length().is_some_and(|n| n as usize > limit) {
        return Err(TransmitterError::failed(step, "the answer is too large"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| TransmitterError::failed(step, describe(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(TransmitterError::failed(step, "the answer is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads a JSON management answer.
pub(crate) async fn read_json(
    resp: reqwest::Response,
    step: &'static str,
) -> Result<Value, TransmitterError> {
    let body = read_limited(resp, step, MAX_MANAGEMENT_BYTES).await?;
    serde_json::from_slice(&body)
        .map_err(|_| TransmitterError::failed(step, "the answer is not valid JSON"))
}

/// `Retry-After` as delta-seconds (the HTTP-date form is rare from APIs and is ignored).
pub(crate) fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// What ssfd knows about a stream's verification limits (SSF §8.1.4.2).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct VerifyLimit {
    /// `min_verification_interval` from the stream configuration; `None` until learnt.
    pub min_interval: Option<Duration>,
    /// Whether the configuration was read at all (a transmitter may not announce a minimum).
    pub known: bool,
    /// Unix seconds before which the transmitter asked not to be asked again (429).
    pub not_before: i64,
    /// `inactivity_timeout` from the stream configuration: the stream is kept busy with
    /// verifications when it is quiet for half of it.
    pub inactivity_timeout: Option<Duration>,
}

/// State shared by the poller, the management client and the health check. Lives in
/// [`crate::app::App`].
pub struct Transmitters {
    http: Mutex<Option<reqwest::Client>>,
    pub tokens: auth::TokenCache,
    pub health: health::HealthStats,
    limits: Mutex<HashMap<String, VerifyLimit>>,
    pollers: Mutex<BTreeSet<String>>,
    /// Canonical subject keys removed from each stream at its transmitter (mirrors the
    /// `removed_subjects` rows, so that intake need not read the database).
    removed: Mutex<HashMap<String, HashSet<String>>>,
    /// When each stream last carried a SET ssfd accepted.
    activity: Mutex<HashMap<String, std::time::Instant>>,
    /// Woken when a stream's limits change (the health task then looks again at once).
    pub(crate) limits_changed: tokio::sync::Notify,
}

impl Default for Transmitters {
    fn default() -> Self {
        Transmitters {
            http: Mutex::new(None),
            tokens: auth::TokenCache::default(),
            health: health::HealthStats::default(),
            limits: Mutex::new(HashMap::new()),
            pollers: Mutex::new(BTreeSet::new()),
            removed: Mutex::new(HashMap::new()),
            activity: Mutex::new(HashMap::new()),
            limits_changed: tokio::sync::Notify::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Transmitters {
    /// The HTTP client for every call to a transmitter, built on first use. Redirects are not
    /// followed: a management or poll endpoint that redirects would receive credentials meant
    /// for another URL.
    pub fn http(&self) -> Result<reqwest::Client, TransmitterError> {
        let mut slot = lock(&self.http);
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("ssfd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| TransmitterError::failed("http", "the HTTP client cannot be built"))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    pub(crate) fn verify_limit(&self, stream_id: &str) -> VerifyLimit {
        lock(&self.limits)
            .get(stream_id)
            .copied()
            .unwrap_or_default()
    }

    pub(crate) fn update_verify_limit(&self, stream_id: &str, edit: impl FnOnce(&mut VerifyLimit)) {
        edit(lock(&self.limits).entry(stream_id.to_string()).or_default());
        self.limits_changed.notify_waiters();
    }

    /// Ids of the streams whose poller is running right now.
    pub fn running_pollers(&self) -> Vec<String> {
        lock(&self.pollers).iter().cloned().collect()
    }

    /// Notes that a stream just carried an accepted SET.
    pub fn note_activity(&self, stream_id: &str) {
        lock(&self.activity).insert(stream_id.to_string(), std::time::Instant::now());
    }

    /// When the stream last carried an accepted SET, if it did since start.
    pub(crate) fn last_activity(&self, stream_id: &str) -> Option<std::time::Instant> {
        lock(&self.activity).get(stream_id).copied()
    }

    /// The shortest `inactivity_timeout` any stream's transmitter announced.
    pub(crate) fn shortest_inactivity(&self) -> Option<Duration> {
        lock(&self.limits)
            .values()
            .filter_map(|l| l.inactivity_timeout)
            .min()
    }

    /// Whether an event about a subject with these keys concerns a subject removed from the
    /// stream.
    pub fn is_removed(&self, stream_id: &str, keys: &[String]) -> bool {
        lock(&self.removed)
            .get(stream_id)
            .is_some_and(|set| keys.iter().any(|k| set.contains(k)))
    }

    /// Records in memory that these keys were removed from (or added back to) the stream.
    pub fn note_subject(&self, stream_id: &str, keys: &[String], removed: bool) {
        let mut map = lock(&self.removed);
        let set = map.entry(stream_id.to_string()).or_default();
        for k in keys {
            if removed {
                set.insert(k.clone());
            } else {
                set.remove(k);
            }
        }
    }

    pub(crate) fn set_running_pollers(&self, ids: impl IntoIterator<Item = String>) {
        *lock(&self.pollers) = ids.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_never_show_a_credential() {
        let token = "Zx8_kq-3LmN0pQrStUvWxYz0123456789abcdefghi";
        let body = format!(
            r#"{{"error":"invalid authorization_header \"Bearer {token}\"","hint":"short ok"}}"#
        );
        let e = scrubbed_excerpt(body.as_bytes(), &[]);
        assert!(!e.contains(token) && !e.contains(&token[..16]), "{e}");
        assert!(e.contains("<redacted>") && e.contains("short ok"), "{e}");
        // Known secrets go even when short.
        let e = scrubbed_excerpt(b"bad token abc123 here", &["abc123"]);
        assert_eq!(e, "bad token <redacted> here");
        // Bounded, one line.
        let long = "no such stream\n".repeat(100);
        let e = scrubbed_excerpt(long.as_bytes(), &[]);
        assert!(
            e.chars().count() <= EXCERPT_CHARS + 1 && !e.contains('\n'),
            "{e}"
        );
        assert_eq!(
            scrubbed_excerpt(b"does not support long polling", &[]),
            "does not support long polling"
        );
    }
}
