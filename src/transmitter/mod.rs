//! ssfd as a client of its transmitters: outbound credentials ([`auth`]), the SSF §8 management
//! calls ([`client`]) and the periodic stream-health check ([`health`]), plus the state they and
//! the poller share (one HTTP client, the token cache, verification limits, counters).

pub mod auth;
pub mod client;
pub mod health;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use crate::admin::ApiError;
use crate::outbound::{BodyError, ClientLimits, HttpClient, Outbound, Redirects};
use crate::store::StoreError;

/// Delivery method URI of RFC 8935 push (SSF §6.1).
pub const DELIVERY_PUSH: &str = "urn:ietf:rfc:8935";
/// Delivery method URI of RFC 8936 poll (SSF §6.1).
pub const DELIVERY_POLL: &str = "urn:ietf:rfc:8936";

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
    #[error("{step}: the transmitter answered HTTP {status}")]
    Status { step: &'static str, status: u16 },
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

pub(crate) use crate::outbound::describe;

/// Reads a body up to `limit` bytes.
pub(crate) async fn read_limited(
    resp: reqwest::Response,
    step: &'static str,
    limit: usize,
) -> Result<Vec<u8>, TransmitterError> {
    crate::outbound::read_body(resp, limit)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(_) => TransmitterError::failed(step, "the answer is too large"),
            BodyError::Transport(m) => TransmitterError::failed(step, m),
        })
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

/// Longest wait a transmitter's `Retry-After` can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3), at most
/// [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    parse_retry_after(
        resp.headers()
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?,
    )
}

pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What ssfd knows about a stream's verification limits (SSF §8.1.4.2).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms_and_bounds() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("9223372036854775807"),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(600));
        let d = parse_retry_after(&later).unwrap();
        assert!(
            d > Duration::from_secs(590) && d <= Duration::from_secs(600),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct VerifyLimit {
    /// `min_verification_interval` from the stream configuration; `None` until learnt.
    pub min_interval: Option<Duration>,
    /// Whether the configuration was read at all (a transmitter may not announce a minimum).
    pub known: bool,
    /// Unix seconds before which the transmitter asked not to be asked again (429).
    pub not_before: i64,
}

/// State shared by the poller, the management client and the health check. Lives in
/// [`crate::app::App`].
pub struct Transmitters {
    outbound: Outbound,
    http: Mutex<Option<HttpClient>>,
    pub tokens: auth::TokenCache,
    pub health: health::HealthStats,
    limits: Mutex<HashMap<String, VerifyLimit>>,
    pollers: Mutex<BTreeSet<String>>,
}

impl Default for Transmitters {
    fn default() -> Self {
        Transmitters::new(Outbound::default())
    }
}

impl Transmitters {
    pub fn new(outbound: Outbound) -> Transmitters {
        Transmitters {
            outbound,
            http: Mutex::new(None),
            tokens: auth::TokenCache::default(),
            health: health::HealthStats::default(),
            limits: Mutex::new(HashMap::new()),
            pollers: Mutex::new(BTreeSet::new()),
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
    pub fn http(&self) -> Result<HttpClient, TransmitterError> {
        let mut slot = lock(&self.http);
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        // Every request sets its own total time; this is the bound for one that does not.
        let limits = ClientLimits {
            connect_timeout: Duration::from_secs(10),
            timeout: MANAGEMENT_TIMEOUT,
        };
        let client = self
            .outbound
            .client(&limits, Redirects::None)
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
    }

    /// Ids of the streams whose poller is running right now.
    pub fn running_pollers(&self) -> Vec<String> {
        lock(&self.pollers).iter().cloned().collect()
    }

    pub(crate) fn set_running_pollers(&self, ids: impl IntoIterator<Item = String>) {
        *lock(&self.pollers) = ids.into_iter().collect();
    }
}
