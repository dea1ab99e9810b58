//! The outcome of a failed SET check: an RFC 8935 error code with a human description, or a
//! transient failure that must not be answered as the SET's fault.

use std::fmt;

/// SET delivery error codes (RFC 8935 §2.4 and SSF §8.1.4.1). Case-sensitive on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrCode {
    InvalidRequest,
    InvalidKey,
    InvalidIssuer,
    InvalidAudience,
    AuthenticationFailed,
    AccessDenied,
    InvalidState,
}

impl ErrCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrCode::InvalidRequest => "invalid_request",
            ErrCode::InvalidKey => "invalid_key",
            ErrCode::InvalidIssuer => "invalid_issuer",
            ErrCode::InvalidAudience => "invalid_audience",
            ErrCode::AuthenticationFailed => "authentication_failed",
            ErrCode::AccessDenied => "access_denied",
            ErrCode::InvalidState => "invalid_state",
        }
    }
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SET that was rejected: the transmitter gets `code` and `description` (never secrets, never
/// the expected issuer or audience).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct SetError {
    pub code: ErrCode,
    pub description: String,
}

impl SetError {
    pub fn new(code: ErrCode, description: impl Into<String>) -> SetError {
        SetError {
            code,
            description: description.into(),
        }
    }

    pub fn request(description: impl Into<String>) -> SetError {
        SetError::new(ErrCode::InvalidRequest, description)
    }

    pub fn key(description: impl Into<String>) -> SetError {
        SetError::new(ErrCode::InvalidKey, description)
    }
}

/// Why verification did not produce a verified SET.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyFailure {
    /// The SET itself is bad: answer 400 (push) or report it in `setErrs` (poll).
    #[error(transparent)]
    Rejected(#[from] SetError),
    /// The keys needed to judge the SET could not be fetched: answer 503 with `Retry-After`
    /// (push) or leave it unacknowledged (poll); the transmitter will deliver it again.
    #[error("keys unavailable: {message}")]
    KeysUnavailable {
        message: String,
        /// When the keys will be fetched again, if known.
        retry_after: Option<std::time::Duration>,
    },
}
