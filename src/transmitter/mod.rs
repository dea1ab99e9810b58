//! ssfd as a client of its transmitters: outbound credentials ([`auth`]), the SSF §8 management
//! calls ([`client`]) and the periodic stream-health check ([`health`]), plus the state they and
//! the poller share (one HTTP client, the token cache, verification limits, counters).

pub mod auth;
pub mod client;
mod error;
mod excerpt;
pub mod health;
mod state;

pub(crate) use error::read_limited;
pub use error::{TransmitterError, MANAGEMENT_TIMEOUT};
pub(crate) use excerpt::{error_excerpt, outbound_secrets};
pub use excerpt::{scrubbed_excerpt, EXCERPT_CHARS};
pub use state::{HealthStats, Transmitters};

use std::time::Duration;

use serde_json::Value;

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

/// Largest management or token answer read.
const MAX_MANAGEMENT_BYTES: usize = 1024 * 1024;

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
