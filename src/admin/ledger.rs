//! `POST /api/v1/subjects:check`: applications ask whether a session they hold was revoked.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use super::{json_body, json_ok, ApiError};
use crate::app::App;
use crate::clock::{parse_rfc3339, rfc3339, rfc3339_millis};
use crate::store::ledger::LedgerEntry;
use crate::verify::subject::{parse_subject, parse_subject_shorthand};

/// Most canonical keys one query may carry (an `aliases` or `ip-addresses` subject can be
/// long; SQLite binds at most 32766 values).
const MAX_SUBJECT_KEYS: usize = 1000;

pub async fn check(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    Ok(json_ok(check_subject(&app, &body).await?))
}

/// The answer of [`check`] for a parsed request body, also rendered by the console.
pub async fn check_subject(
    app: &App,
    body: &serde_json::Map<String, Value>,
) -> Result<Value, ApiError> {
    let subject = match body.get("subject") {
        Some(v @ Value::Object(_)) => {
            parse_subject(v).map_err(|e| ApiError::invalid("subject", e.0))?
        }
        Some(Value::String(s)) => {
            parse_subject_shorthand(s).map_err(|e| ApiError::invalid("subject", e.0))?
        }
        None | Some(Value::Null) => return Err(ApiError::invalid("subject", "is required")),
        Some(_) => {
            return Err(ApiError::invalid(
                "subject",
                "must be a subject identifier object",
            ))
        }
    };
    let issued_at = match body.get("issuedAt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            parse_rfc3339(s)
                .ok_or_else(|| ApiError::invalid("issuedAt", "must be an RFC 3339 time"))?,
        ),
        Some(_) => return Err(ApiError::invalid("issuedAt", "must be an RFC 3339 time")),
    };
    if subject.keys.len() > MAX_SUBJECT_KEYS {
        return Err(ApiError::invalid(
            "subject",
            format!("names more than {MAX_SUBJECT_KEYS} identifiers"),
        ));
    }
    let entries = app.store.check_subjects(subject.keys.clone()).await?;
    // A session is revoked when some REVOKE_ALL applies to sessions issued before a time later
    // than this session's issue time.
    let applies = |e: &&LedgerEntry| issued_at.is_none_or(|t| e.revoked_before > t);
    let mut seen = std::collections::HashSet::new();
    let reasons: Vec<Value> = entries
        .iter()
        .filter(applies)
        .filter(|e| seen.insert((e.stream_id.clone(), e.jti.clone(), e.event_type.clone())))
        .map(|e| {
            json!({"streamId": e.stream_id, "jti": e.jti, "eventType": e.event_type,
                   "receivedAt": rfc3339_millis(e.received_at_ms)})
        })
        .collect();
    let mut out = serde_json::Map::new();
    out.insert("revoked".into(), json!(!reasons.is_empty()));
    if let Some(latest) = entries
        .iter()
        .filter(applies)
        .map(|e| e.revoked_before)
        .max()
    {
        out.insert("revokedBefore".into(), json!(rfc3339(latest)));
    }
    out.insert("reasons".into(), Value::Array(reasons));
    Ok(Value::Object(out))
}
