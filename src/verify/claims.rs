//! SET claims after the signature holds: issuer, audience, the RFC 8417 / SSF profile rules, the
//! subject, and the SSF control events.

use serde_json::{Map, Value};

use super::error::{ErrCode, SetError};
use super::jwks::issuer_matches;
use super::subject::{parse_subject_at, Subject};
use crate::compat::Tolerance;
use crate::stream::Stream;

pub use crate::event_type::{STREAM_UPDATED, VERIFICATION};
/// The verification event of the pre-1.0 SSE draft (LEGACY_SSE only): a `state`, no subject.
pub const SSE_VERIFICATION: &str =
    "https://schemas.openid.net/secevent/sse/event-type/verification";
/// `initiating_entity` values of CAEP 1.0; others are kept as received and counted.
const INITIATING_ENTITIES: [&str; 4] = ["admin", "user", "policy", "system"];
/// `event_timestamp` values above this (5000-01-01 in seconds) are milliseconds.
pub const MILLISECOND_TIMESTAMPS_FROM: i64 = 95_617_584_000;

/// One event of a SET.
#[derive(Debug, Clone, PartialEq)]
pub struct SetEvent {
    pub event_type: String,
    pub payload: Map<String, Value>,
}

/// SSF stream-management events, handled as stream bookkeeping and never as actions.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlEvent {
    Verification { state: Option<String> },
    StreamUpdated { status: String, reason: String },
}

/// A SET that passed every check, ready to be stored.
#[derive(Debug, Clone)]
pub struct VerifiedSet {
    pub jti: String,
    pub iss: String,
    pub iat: i64,
    pub txn: Option<String>,
    pub toe: Option<i64>,
    pub events: Vec<SetEvent>,
    /// The top-level `sub_id`, or the legacy `subject` inside the event object.
    pub subject: Option<Subject>,
    pub control: Option<ControlEvent>,
    /// The decoded payload as received.
    pub claims: Map<String, Value>,
    /// The same payload as JSON text, exactly as it was signed (empty when not from a JWS).
    pub claims_json: String,
    /// The departures from SSF 1.0 accepted for this SET, each kind once.
    pub tolerances: Vec<Tolerance>,
}

impl VerifiedSet {
    pub fn event_types(&self) -> Vec<String> {
        self.events.iter().map(|e| e.event_type.clone()).collect()
    }

    pub fn subject_keys(&self) -> Vec<String> {
        self.subject
            .as_ref()
            .map(|s| s.keys.clone())
            .unwrap_or_default()
    }
}

fn numeric(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
}

/// Checks the claims in the contract's order: `iss` (`invalid_issuer`), `aud`
/// (`invalid_audience`), then structure (`invalid_request`). The verification `state` is checked
/// later, against the states on record, when the SET is stored.
pub fn check(stream: &Stream, claims: Map<String, Value>) -> Result<VerifiedSet, SetError> {
    let mut tolerances = Vec::new();
    let mut tolerate = |t: Tolerance| {
        if !tolerances.contains(&t) {
            tolerances.push(t);
        }
    };
    // Descriptions never echo the expected issuer or audience.
    let iss = match claims.get("iss") {
        Some(Value::String(s)) => {
            match issuer_matches(s, &stream.issuer_url, stream.compatibility_profile) {
                Ok(slash) => {
                    slash.into_iter().for_each(&mut tolerate);
                    s.clone()
                }
                Err(_) => {
                    return Err(SetError::new(
                        ErrCode::InvalidIssuer,
                        "the SET issuer is not the issuer of this stream",
                    ))
                }
            }
        }
        _ => {
            return Err(SetError::new(
                ErrCode::InvalidIssuer,
                "the SET has no iss claim",
            ))
        }
    };
    if !stream.expected_audience.is_empty() {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == stream.expected_audience,
            Some(Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str() == Some(stream.expected_audience.as_str())),
            _ => false,
        };
        if !ok {
            return Err(SetError::new(
                ErrCode::InvalidAudience,
                "the SET audience does not include this receiver",
            ));
        }
    }
    let jti = match claims.get("jti") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(SetError::request("jti must be a non-empty string")),
        None => return Err(SetError::request("the SET has no jti claim")),
    };
    let iat = match claims.get("iat") {
        None => return Err(SetError::request("the SET has no iat claim")),
        Some(v) => numeric(Some(v)).ok_or_else(|| SetError::request("iat must be a number"))?,
    };
    if claims.contains_key("sub") {
        return Err(SetError::request(
            "the SET has a top-level sub claim, which SSF forbids (use sub_id)",
        ));
    }
    if claims.contains_key("exp") {
        return Err(SetError::request(
            "the SET has an exp claim, which SSF forbids",
        ));
    }
    let events = match claims.get("events") {
        None => return Err(SetError::request("the SET has no events claim")),
        Some(Value::Object(m)) if m.is_empty() => {
            return Err(SetError::request("the events claim is empty"))
        }
        Some(Value::Object(m)) => {
            let mut out = Vec::with_capacity(m.len());
            for (k, v) in m {
                match v {
                    Value::Object(p) => out.push(SetEvent {
                        event_type: k.clone(),
                        payload: p.clone(),
                    }),
                    _ => {
                        return Err(SetError::request(format!(
                            "events[{k:?}] must be a JSON object"
                        )))
                    }
                }
            }
            out
        }
        Some(_) => return Err(SetError::request("the events claim must be a JSON object")),
    };
    let txn = match claims.get("txn") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        // A JSON integer has one decimal form; keep it as that string.
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
            tolerate(Tolerance::NumericTxn);
            Some(n.to_string())
        }
        Some(_) => return Err(SetError::request("txn must be a string")),
    };
    for e in &events {
        event_tolerances(&e.payload)
            .into_iter()
            .for_each(&mut tolerate);
    }
    let toe = match claims.get("toe") {
        None | Some(Value::Null) => None,
        v => Some(numeric(v).ok_or_else(|| SetError::request("toe must be a number"))?),
    };

    let subject = match claims.get("sub_id") {
        Some(v) => {
            let v = all_sessions(v, &mut tolerate);
            Some(parse_subject_at(&v, "sub_id").map_err(|e| SetError::request(e.0))?)
        }
        None => {
            let mut legacy = None;
            for e in &events {
                if let Some(v) = e.payload.get("subject") {
                    let path = format!("events[{:?}].subject", e.event_type);
                    let v = all_sessions(v, &mut tolerate);
                    legacy =
                        Some(parse_subject_at(&v, &path).map_err(|err| SetError::request(err.0))?);
                    tolerate(Tolerance::SubjectInEvent);
                    break;
                }
            }
            legacy
        }
    };

    let control = control_event(stream, &events, subject.as_ref(), &mut tolerate)?;
    if control.is_none() && subject.is_none() {
        return Err(SetError::request(
            "the SET names no subject (sub_id, or subject inside the event)",
        ));
    }
    Ok(VerifiedSet {
        jti,
        iss,
        iat,
        txn,
        toe,
        events,
        subject,
        control,
        claims,
        claims_json: String::new(),
        tolerances,
    })
}

/// Keycloak's convention: a complex subject whose `session` is `"ALL"` means every session of
/// the user, so the member is dropped and the user's keys remain.
fn all_sessions(v: &Value, tolerate: &mut impl FnMut(Tolerance)) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        let all = o
            .get("session")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("ALL"));
        if all && o.get("format").and_then(Value::as_str) == Some("complex") {
            o.remove("session");
            tolerate(Tolerance::SessionAll);
        }
    }
    v
}

/// Tolerances an event payload needs: millisecond timestamps, values outside CAEP 1.0.
fn event_tolerances(payload: &Map<String, Value>) -> Vec<Tolerance> {
    let mut out = Vec::new();
    if numeric(payload.get("event_timestamp")).is_some_and(|t| t > MILLISECOND_TIMESTAMPS_FROM) {
        out.push(Tolerance::MillisecondTimestamp);
    }
    if let Some(v) = payload.get("initiating_entity") {
        if !v.as_str().is_some_and(|s| INITIATING_ENTITIES.contains(&s)) {
            out.push(Tolerance::UnknownInitiatingEntity);
        }
    }
    for k in ["reason_admin", "reason_user"] {
        if let Some(v) = payload.get(k) {
            let language_map = v
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string));
            if !language_map {
                out.push(Tolerance::NonstandardReason);
            }
        }
    }
    out
}

fn control_event(
    stream: &Stream,
    events: &[SetEvent],
    subject: Option<&Subject>,
    tolerate: &mut impl FnMut(Tolerance),
) -> Result<Option<ControlEvent>, SetError> {
    let find = |t: &str| events.iter().find(|e| e.event_type == t);
    let is_control = |e: &SetEvent| {
        e.event_type == VERIFICATION
            || e.event_type == STREAM_UPDATED
            || (stream.is_legacy() && e.event_type == SSE_VERIFICATION)
    };
    // A control event is about the stream, the others about a subject: one SET cannot be both,
    // and acting on half of it would be a guess (SSF §8.1.4, RFC 8417 §2.2).
    if events.len() > 1 && events.iter().any(is_control) {
        return Err(SetError::request(
            "a verification or stream-updated event must be the only event of its SET",
        ));
    }
    if let Some(e) = find(SSE_VERIFICATION).filter(|_| stream.is_legacy()) {
        // The SSE draft's verification names no stream: it is matched on `state` alone.
        tolerate(Tolerance::LegacyVerification);
        let state = match e.payload.get("state") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(SetError::request(
                    "a legacy verification event needs a state",
                ))
            }
        };
        return Ok(Some(ControlEvent::Verification { state: Some(state) }));
    }
    if let Some(e) = find(VERIFICATION) {
        // SSF §8.1.4.1: sub_id is an opaque subject naming the stream.
        let id = match subject {
            Some(s) if s.format == "opaque" => s
                .raw
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => {
                return Err(SetError::request(
                    "a verification event needs an opaque sub_id naming the stream",
                ))
            }
        };
        if !stream.transmitter_stream_id.is_empty() && id != stream.transmitter_stream_id {
            return Err(SetError::request(
                "the verification event's sub_id names another stream",
            ));
        }
        let state = match e.payload.get("state") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(SetError::request("verification state must be a string")),
        };
        return Ok(Some(ControlEvent::Verification { state }));
    }
    if let Some(e) = find(STREAM_UPDATED) {
        let status = match e.payload.get("status").and_then(Value::as_str) {
            Some(s @ ("enabled" | "paused" | "disabled")) => s.to_string(),
            _ => {
                return Err(SetError::request(
                    "stream-updated status must be enabled, paused or disabled",
                ))
            }
        };
        let reason = e
            .payload
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        return Ok(Some(ControlEvent::StreamUpdated { status, reason }));
    }
    Ok(None)
}
