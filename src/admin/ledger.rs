//! `POST /api/v1/subjects:check`: applications ask whether a session they hold was revoked, and
//! whether it must step up (authenticate again, more strongly) before it goes on.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use super::{json_body, json_ok, ApiError};
use crate::app::App;
use crate::clock::{now_unix, parse_rfc3339, rfc3339, rfc3339_millis};
use crate::step_up::requirement::{judge, Verdict};
use crate::step_up::token::{self, TokenError};
use crate::step_up::{Requirement, TokenFacts};
use crate::store::ledger::LedgerEntry;
use crate::verify::subject::{parse_subject, parse_subject_shorthand};

/// Most canonical keys one query may carry (an `aliases` or `ip-addresses` subject can be
/// long; SQLite binds at most 32766 values).
const MAX_SUBJECT_KEYS: usize = 1000;

fn time_field(body: &serde_json::Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_rfc3339(s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(name, "must be an RFC 3339 time")),
        Some(_) => Err(ApiError::invalid(name, "must be an RFC 3339 time")),
    }
}

fn string_list(body: &serde_json::Map<String, Value>, name: &str) -> Result<Vec<String>, ApiError> {
    let bad = || ApiError::invalid(name, "must be an array of strings");
    match body.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(String::from).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

fn string_member(
    body: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(ApiError::invalid(name, "must be a string")),
    }
}

/// The facts of the authentication behind the session, as the request states them.
fn stated_facts(
    body: &serde_json::Map<String, Value>,
    issued_at: Option<i64>,
) -> Result<TokenFacts, ApiError> {
    Ok(TokenFacts {
        issued_at,
        auth_time: time_field(body, "authTime")?,
        acr: string_member(body, "acr")?,
        amr: string_list(body, "amr")?,
        acrs: string_list(body, "acrs")?,
        names: Vec::new(),
    })
}

/// Verifies a presented `idToken` / `accessToken` against the keys of the provider named by
/// `providerId`, else of the newest requirement's provider. `None` when there is no provider to
/// judge it by (and so nothing it could satisfy).
async fn presented_facts(
    app: &App,
    body: &serde_json::Map<String, Value>,
    subject_keys: &[String],
    requirements: &[Requirement],
) -> Result<Option<TokenFacts>, ApiError> {
    let id_token = string_member(body, "idToken")?;
    let access_token = string_member(body, "accessToken")?;
    let (field, token) = match (id_token, access_token) {
        (None, None) => return Ok(None),
        (Some(t), None) => ("idToken", t),
        (None, Some(t)) => ("accessToken", t),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "accessToken",
                "idToken and accessToken are alternatives: send one",
            ))
        }
    };
    for stated in ["authTime", "acr", "amr", "acrs"] {
        if body.get(stated).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid(
                stated,
                format!("comes from the {field} when one is sent: send the token or the facts"),
            ));
        }
    }
    let provider_id = match string_member(body, "providerId")? {
        Some(id) => id,
        None => match requirements.iter().find(|r| !r.provider_id.is_empty()) {
            Some(r) => r.provider_id.clone(),
            // Nothing on record: the token has nothing to satisfy.
            None if requirements.is_empty() => return Ok(None),
            None => {
                return Err(ApiError::invalid(
                    "providerId",
                    format!(
                    "is required to verify the {field}: the step-up requirements name no provider"
                ),
                ))
            }
        },
    };
    let provider = app
        .store
        .step_up_provider(&provider_id)
        .await?
        .ok_or_else(|| ApiError::invalid("providerId", "no step-up provider has this id"))?;
    let config = app.config();
    match token::verify(
        &app.keys,
        &app.step_up_discovery,
        &config.jwks,
        &provider.issuer_url,
        &token,
        now_unix(),
    )
    .await
    {
        // A token about someone else says nothing about this subject's sessions.
        Ok(facts) if !facts.names.iter().any(|k| subject_keys.contains(k)) => Err(
            ApiError::invalid(field, "the token is about another user than subject (neither its iss and sub nor its email name the subject)"),
        ),
        Ok(facts) => Ok(Some(facts)),
        Err(TokenError::Invalid(m)) => Err(ApiError::invalid(field, m)),
        Err(TokenError::Unavailable(m)) => Err(ApiError::unavailable(m)),
    }
}

/// The `stepUp` member of the answer.
fn step_up_json(verdict: &Verdict<'_>) -> Value {
    let reasons: Vec<Value> = verdict
        .unmet
        .iter()
        .map(|(r, unmet)| {
            json!({"streamId": r.stream_id, "jti": r.jti, "txn": r.txn, "eventType": r.event_type,
                   "providerId": r.provider_id, "since": rfc3339(r.since),
                   "problem": unmet.to_string()})
        })
        .collect();
    let mut m = serde_json::Map::new();
    m.insert("required".into(), json!(verdict.required()));
    if let Some((r, _)) = verdict.leading() {
        m.insert("providerId".into(), json!(r.provider_id));
        m.insert("acrValues".into(), json!(r.demand.values()));
        m.insert("maxAge".into(), json!(r.max_age));
        m.insert("since".into(), json!(rfc3339(r.since)));
    }
    m.insert("reasons".into(), Value::Array(reasons));
    m.insert("wwwAuthenticate".into(), json!(verdict.www_authenticate()));
    Value::Object(m)
}

/// Longest reason an operator may give for lifting a revocation.
const MAX_REASON_CHARS: usize = 500;

/// `POST /api/v1/subjects:lift`: removes every revocation of a subject (a SET that should not
/// have revoked it), audited with the operator's reason.
pub async fn lift(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let subject = subject_of(&body)?;
    let reason = match body.get("reason") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid("reason", "is required"))
        }
        Some(_) => return Err(ApiError::invalid("reason", "must be a string")),
    };
    if reason.chars().count() > MAX_REASON_CHARS || !crate::sanitize::is_clean(&reason) {
        return Err(ApiError::invalid(
            "reason",
            format!("must be one line of at most {MAX_REASON_CHARS} characters"),
        ));
    }
    let keys = subject.keys.clone();
    let lifted = app
        .store
        .lift_revocations(keys.clone(), reason.clone(), crate::clock::now_millis())
        .await?;
    tracing::warn!(subject = %crate::sanitize::log_text(&keys.join(",")), lifted,
        reason = %crate::sanitize::log_text(&reason), "revocations lifted by an operator");
    Ok(json_ok(json!({"lifted": lifted, "subjectKeys": keys})))
}

/// The `subject` member of a request: an identifier object or the shorthand string.
fn subject_of(
    body: &serde_json::Map<String, Value>,
) -> Result<crate::verify::subject::Subject, ApiError> {
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
    if subject.keys.len() > MAX_SUBJECT_KEYS {
        return Err(ApiError::invalid(
            "subject",
            format!("names more than {MAX_SUBJECT_KEYS} identifiers"),
        ));
    }
    Ok(subject)
}

pub async fn check(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    Ok(json_ok(check_subject(&app, &body).await?))
}

/// The answer of [`check`] for a parsed request body, also rendered by the console.
pub async fn check_subject(
    app: &App,
    body: &serde_json::Map<String, Value>,
) -> Result<Value, ApiError> {
    let subject = subject_of(body)?;
    let stated_issued_at = time_field(body, "issuedAt")?;
    let stated = stated_facts(body, stated_issued_at)?;
    let entries = app.store.check_subjects(subject.keys.clone()).await?;
    let requirements = app.store.step_up_requirements(subject.keys.clone()).await?;
    let facts = match presented_facts(app, body, &subject.keys, &requirements).await? {
        Some(mut from_token) => {
            from_token.issued_at = stated_issued_at.or(from_token.issued_at);
            from_token
        }
        None => stated,
    };
    // The session's issue time: as stated, else the presented token's `iat`.
    let issued_at = facts.issued_at;
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
    // A revocation at or after a step-up's event time supersedes it, whatever this session's
    // issue time: the user signs in again anyway.
    let latest_revocation = entries.iter().map(|e| e.revoked_before).max();
    let verdict = judge(&requirements, latest_revocation, &facts, now_unix());
    out.insert("stepUp".into(), step_up_json(&verdict));
    Ok(Value::Object(out))
}
