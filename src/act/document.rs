//! The action document (docs/actions.md#the-action-document): the JSON object a webhook receives as its body and a
//! command on stdin, built from the stored SET so that every attempt, before and after a restart,
//! describes the action the same way (only `attempt` differs).

use serde_json::{json, Map, Value};

use crate::clock::{rfc3339, rfc3339_millis};
use crate::config::Config;
use crate::store::StoreError;

pub use super::attempt::{ActionDocument, ActionRow};
use super::identity;
use crate::step_up::requirement::{www_authenticate, Unmet};

fn numeric(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
}

/// The subject as received: the top-level `sub_id`, else the legacy `subject` of the first event
/// that has one (the same rule verification applied when the SET arrived).
fn subject_of(claims: &Map<String, Value>, events: Option<&Map<String, Value>>) -> Value {
    if let Some(s) = claims.get("sub_id") {
        return s.clone();
    }
    events
        .into_iter()
        .flat_map(|m| m.values())
        .find_map(|e| e.get("subject").cloned())
        .unwrap_or(Value::Null)
}

/// Builds the document for one attempt of an action.
pub fn build(row: &ActionRow, config: &Config) -> Result<ActionDocument, StoreError> {
    let claims: Map<String, Value> = serde_json::from_str(&row.claims)?;
    let events = claims.get("events").and_then(Value::as_object);
    let empty = Map::new();
    let payload = events
        .and_then(|m| m.get(&row.event_type))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let iat = numeric(claims.get("iat")).ok_or_else(|| {
        StoreError::Corrupt(format!("inbox claims of action {} have no iat", row.id))
    })?;
    let toe = numeric(claims.get("toe"));
    let (event_time, _) = super::event_time_of(payload, toe, iat, row.received_at_ms / 1000);
    let revoke = row.action == "REVOKE_ALL";
    let mut reason = Map::new();
    for k in ["reason_admin", "reason_user"] {
        if let Some(v) = payload.get(k) {
            reason.insert(k.to_string(), v.clone());
        }
    }
    let local_user = identity::local_user_for_keys(config, &row.subject_keys);
    // What the application must now ask of the user, and the challenge it returns for it.
    let step_up = match &row.step_up {
        Some(r) => json!({
            "providerId": r.provider_id,
            "acrValues": r.demand.values(),
            "maxAge": r.max_age,
            "since": rfc3339(r.since),
            "wwwAuthenticate": www_authenticate(r, &Unmet::AuthTimeUnknown),
        }),
        None => Value::Null,
    };
    let mut doc = json!({
        "idempotencyKey": row.idempotency_key,
        "attempt": row.attempt,
        "action": row.action,
        "streamId": row.stream_id,
        "jti": row.jti,
        "txn": claims.get("txn").cloned().unwrap_or(Value::Null),
        "eventType": row.event_type,
        "eventTimestamp": rfc3339(event_time),
        // The same time the ledger entry carries: sessions issued before it are revoked.
        "revokedBefore": if revoke { json!(rfc3339(event_time)) } else { Value::Null },
        "subject": subject_of(&claims, events),
        "subjectKeys": row.subject_keys,
        "localUser": local_user,
        "reason": reason,
        "receivedAt": rfc3339_millis(row.received_at_ms),
    });
    if !step_up.is_null() {
        doc["stepUp"] = step_up;
    }
    Ok(ActionDocument {
        body: serde_json::to_vec(&doc)?,
        subject_key: row.subject_keys.first().cloned().unwrap_or_default(),
        local_user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(claims: Value) -> ActionRow {
        ActionRow {
            id: 1,
            stream_id: "s1".into(),
            jti: "j1".into(),
            event_type: "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
                .into(),
            action: "REVOKE_ALL".into(),
            sink: "hook".into(),
            idempotency_key:
                "s1:j1:https://schemas.openid.net/secevent/caep/event-type/session-revoked".into(),
            attempt: 2,
            budget_from: 0,
            claims: claims.to_string(),
            received_at_ms: 1_700_000_000_123,
            subject_keys: vec!["email:alice@example.com".into()],
            step_up: None,
        }
    }

    #[test]
    fn document_fields() {
        let claims = json!({
            "iss": "https://idp", "jti": "j1", "iat": 1_700_000_100, "txn": "t-1",
            "sub_id": {"format": "email", "email": "Alice@Example.com"},
            "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
                "event_timestamp": 1_700_000_050_000i64,
                "reason_admin": {"en": "Policy"}, "initiating_entity": "policy"}}
        });
        let doc = build(&row(claims), &Config::default()).unwrap();
        let v: Value = serde_json::from_slice(&doc.body).unwrap();
        assert_eq!(v["attempt"], 2);
        assert_eq!(v["txn"], "t-1");
        assert_eq!(v["eventTimestamp"], "2023-11-14T22:14:10Z");
        assert_eq!(v["revokedBefore"], v["eventTimestamp"]);
        assert_eq!(v["subject"]["email"], "Alice@Example.com");
        assert_eq!(v["reason"], json!({"reason_admin": {"en": "Policy"}}));
        assert_eq!(v["localUser"], Value::Null);
        assert_eq!(v["receivedAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(doc.subject_key, "email:alice@example.com");
    }

    #[test]
    fn step_up_documents_carry_the_requirement() {
        let claims = json!({"iss": "https://idp", "jti": "j1", "iat": 1_700_000_100,
            "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {}}});
        let mut r = row(claims);
        r.action = "STEP_UP".into();
        r.step_up = Some(crate::step_up::Requirement {
            provider_id: "p1".into(),
            demand: crate::step_up::Demand::Acr(vec!["phr".into()]),
            max_age: 0,
            since: 1_700_000_100,
            stream_id: "s1".into(),
            jti: "j1".into(),
            txn: None,
            event_type: r.event_type.clone(),
        });
        let v: Value =
            serde_json::from_slice(&build(&r, &Config::default()).unwrap().body).unwrap();
        assert_eq!(v["action"], "STEP_UP");
        assert_eq!(v["revokedBefore"], Value::Null);
        assert_eq!(v["stepUp"]["providerId"], "p1");
        assert_eq!(v["stepUp"]["acrValues"], json!(["phr"]));
        assert_eq!(v["stepUp"]["since"], "2023-11-14T22:15:00Z");
        assert!(v["stepUp"]["wwwAuthenticate"]
            .as_str()
            .unwrap()
            .contains("acr_values=\"phr\", max_age=0"));
    }

    #[test]
    fn legacy_subject_and_time_fallbacks() {
        let claims = json!({
            "iss": "https://idp", "jti": "j1", "iat": 1_700_000_100, "toe": 1_700_000_090,
            "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
                "subject": {"format": "opaque", "id": "u1"}}}
        });
        let doc = build(&row(claims), &Config::default()).unwrap();
        let v: Value = serde_json::from_slice(&doc.body).unwrap();
        assert_eq!(v["subject"]["id"], "u1");
        assert_eq!(v["txn"], Value::Null);
        assert_eq!(v["eventTimestamp"], "2023-11-14T22:14:50Z");
        assert_eq!(v["reason"], json!({}));
    }
}
