//! The error of every call to a transmitter, and the reading of its answers.

use std::time::Duration;

use crate::push_token::PushTokenError;
use crate::store::StoreError;

/// Time allowed for one management call or token request.
pub const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(15);
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
    PushToken(#[from] PushTokenError),
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
