//! Subject identifiers (RFC 9493 and SSF §3): parsing, and reduction to canonical keys that the
//! ledger and the sinks match on.

use serde_json::Value;

/// A parsed subject: kept whole as received, and reduced to canonical keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// The identifier exactly as received.
    pub raw: Value,
    /// The `format` member (for `complex`, `"complex"`).
    pub format: String,
    /// Canonical keys, e.g. `email:alice@example.com`, `iss_sub:<iss>|<sub>`, `session:opaque:abc`.
    pub keys: Vec<String>,
}

/// A subject identifier that could not be understood; answered as `invalid_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SubjectError(pub String);

/// Parses a subject identifier object (simple, `aliases` or `complex`, and the legacy
/// `subject_type` spelling of `format`).
pub fn parse_subject(_value: &Value) -> Result<Subject, SubjectError> {
    Err(SubjectError("subject parsing not implemented".into()))
}

/// Parses an operator's shorthand: `alice@example.com`, `email:alice@example.com`,
/// `iss_sub:https://idp|123`, `opaque:abc`, `+12065550100`, or a JSON subject object.
pub fn parse_subject_shorthand(_input: &str) -> Result<Subject, SubjectError> {
    Err(SubjectError("subject parsing not implemented".into()))
}
