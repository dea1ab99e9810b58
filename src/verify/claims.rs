//! SET claims after the signature holds: issuer, audience, the RFC 8417 / SSF profile rules, the
//! subject, and the SSF control events.

use serde_json::{Map, Value};

use super::error::{ErrCode, SetError};
use super::subject::{parse_subject_at, Subject};
use crate::stream::Stream;

pub use crate::event_type::{STREAM_UPDATED, VERIFICATION};

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
    // Descriptions never echo the expected issuer or audience.
    let iss = match claims.get("iss") {
        Some(Value::String(s)) if *s == stream.issuer_url => s.clone(),
        Some(Value::String(_)) => {
            return Err(SetError::new(
                ErrCode::InvalidIssuer,
                "the SET issuer is not the issuer of this stream",
            ))
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
        Some(_) => return Err(SetError::request("txn must be a string")),
    };
    let toe = match claims.get("toe") {
        None | Some(Value::Null) => None,
        v => Some(numeric(v).ok_or_else(|| SetError::request("toe must be a number"))?),
    };

    let subject = match claims.get("sub_id") {
        Some(v) => Some(parse_subject_at(v, "sub_id").map_err(|e| SetError::request(e.0))?),
        None => {
            let mut legacy = None;
            for e in &events {
                if let Some(v) = e.payload.get("subject") {
                    let path = format!("events[{:?}].subject", e.event_type);
                    legacy =
                        Some(parse_subject_at(v, &path).map_err(|err| SetError::request(err.0))?);
                    break;
                }
            }
            legacy
        }
    };

    let control = control_event(stream, &events, subject.as_ref())?;
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
    })
}

fn control_event(
    stream: &Stream,
    events: &[SetEvent],
    subject: Option<&Subject>,
) -> Result<Option<ControlEvent>, SetError> {
    let find = |t: &str| events.iter().find(|e| e.event_type == t);
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
