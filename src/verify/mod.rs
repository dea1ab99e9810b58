//! Verify: everything between "these bytes arrived for stream X" and "this is a genuine SET for X".
//!
//! Order of checks (the first failure wins; docs/push.md#check-order): envelope and `typ` (`jws`), algorithm,
//! key and signature (`jwks`), then issuer, audience and claims (`claims`). The verification
//! `state` is checked when the SET is stored, against the states on record.

pub mod claims;
pub mod error;
pub mod jwks;
pub mod jws;
pub mod subject;

pub use claims::{ControlEvent, SetEvent, VerifiedSet};
pub use error::{ErrCode, SetError, VerifyFailure};

use jwks::{JwksCache, KeyError, KeySource};

use crate::stream::Stream;

/// Verifies a compact SET for a stream.
pub async fn verify_set(
    keys: &JwksCache,
    stream: &Stream,
    token: &str,
) -> Result<VerifiedSet, VerifyFailure> {
    let parsed = jws::parse(token)?;
    let source = KeySource::of(stream);
    check_signature(keys, &source, &parsed).await?;
    let mut set = claims::check(stream, parsed.payload)?;
    set.claims_json = parsed.payload_json;
    Ok(set)
}

/// Checks the signature of a parsed JWS against the keys of `source`: the one signature check
/// every token ssfd reads goes through (SETs, and the ID and access tokens of step-up).
pub async fn check_signature(
    keys: &JwksCache,
    source: &KeySource,
    parsed: &jws::ParsedJws<'_>,
) -> Result<(), VerifyFailure> {
    let candidates = keys
        .candidates(source, parsed.kid.as_deref(), parsed.alg)
        .await
        .map_err(|e| match e {
            KeyError::NoKey(m) => VerifyFailure::Rejected(SetError::key(m)),
            KeyError::MetadataInvalid(m) => VerifyFailure::Rejected(SetError::key(m)),
            KeyError::Unavailable {
                message,
                retry_after,
            } => VerifyFailure::KeysUnavailable {
                message,
                retry_after,
            },
        })?;
    let mut last_problem = None;
    for key in candidates {
        match key.verifier(parsed.alg) {
            Ok(v) => {
                if v.verify(parsed.signing_input, &parsed.signature).is_ok() {
                    return Ok(());
                }
            }
            Err(problem) => last_problem = Some(problem),
        }
    }
    Err(
        SetError::key(last_problem.unwrap_or_else(|| "the signature does not verify".to_string()))
            .into(),
    )
}
