//! ssfd as a client of its transmitters: outbound credentials ([`auth`]), the SSF §8 management
//! calls ([`client`]) and the periodic stream-health check ([`health`]), plus the state they and
//! the poller share (one HTTP client, the token cache, verification limits, counters).

pub mod auth;
pub mod client;
mod error;
pub mod health;
mod state;

pub(crate) use error::read_limited;
pub use error::{TransmitterError, MANAGEMENT_TIMEOUT};
pub use state::{HealthStats, Transmitters};

use std::time::Duration;

use serde_json::Value;

/// Delivery method URI of RFC 8935 push (SSF §6.1).
pub const DELIVERY_PUSH: &str = "urn:ietf:rfc:8935";
/// Delivery method URI of RFC 8936 poll (SSF §6.1).
pub const DELIVERY_POLL: &str = "urn:ietf:rfc:8936";

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
