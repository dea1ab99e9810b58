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

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt:?}")
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
            crate::outbound::BodyError::TooLarge(_) => {
                TransmitterError::failed(step, "the answer is too large")
            }
            crate::outbound::BodyError::Transport(m) => TransmitterError::failed(step, m),
        })
}
