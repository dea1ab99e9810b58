//! Policy: which action an event calls for. The stream's knob first, then the `[policy]` table,
//! then the shipped defaults of the event vocabulary (`event_type::ALL`, listed in docs/policy.md),
//! some of which look at the event payload. A configured STEP_UP looks at the payload too (see
//! [`refine_step_up`]); no shipped default is STEP_UP.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::event_type::{
    self, event_type_matches, DefaultAction, CAEP_BASE as CAEP, RISC_BASE as RISC,
};
use crate::stream::{RevocationAction, Stream};
use crate::verify::SetEvent;

/// The stream knob that governs an event type, with its API name.
fn knob<'a>(stream: &'a Stream, event_type: &str) -> Option<(&'a RevocationAction, &'static str)> {
    let name = event_type
        .strip_prefix(CAEP)
        .map(|n| ("caep", n))
        .or_else(|| event_type.strip_prefix(RISC).map(|n| ("risc", n)))?;
    Some(match name {
        ("caep", "session-revoked") | ("risc", "sessions-revoked") => {
            (&stream.session_revoked_action, "sessionRevokedAction")
        }
        ("caep", "credential-change") => {
            (&stream.credential_change_action, "credentialChangeAction")
        }
        ("risc", "credential-compromise") => (
            &stream.credential_compromise_action,
            "credentialCompromiseAction",
        ),
        ("risc", "account-disabled") | ("risc", "account-purged") => {
            (&stream.account_disabled_action, "accountDisabledAction")
        }
        _ => return None,
    })
}

fn payload_str<'a>(event: &'a SetEvent, key: &str) -> Option<&'a str> {
    event.payload.get(key).and_then(Value::as_str)
}

/// The shipped default for an event type (see [`DefaultAction`]).
fn default_action(event: &SetEvent) -> (RevocationAction, String) {
    use RevocationAction::*;
    let rule = event_type::lookup(&event.event_type).map(|e| e.default);
    let (action, why) = match rule {
        Some(DefaultAction::RevokeAll(why)) => (RevokeAll, why.to_string()),
        Some(DefaultAction::ByChangeType) => match payload_str(event, "change_type") {
            Some("create") => (LogOnly, "credential created".to_string()),
            Some(c @ ("revoke" | "delete" | "update")) => {
                (RevokeAll, format!("credential change_type {c}"))
            }
            // Unknown change types are tolerated, not acted on.
            Some(other) => (LogOnly, format!("unknown change_type {other:?}")),
            None => (RevokeAll, "credential changed".to_string()),
        },
        Some(DefaultAction::ByComplianceStatus) => match payload_str(event, "current_status") {
            Some("not-compliant") => (RevokeAll, "device not compliant".to_string()),
            Some(s) => (LogOnly, format!("device status {s}")),
            None => (LogOnly, "device status missing".to_string()),
        },
        Some(DefaultAction::ByRiskLevel) => match payload_str(event, "current_level") {
            Some(l) if l.eq_ignore_ascii_case("HIGH") => (RevokeAll, "risk level HIGH".to_string()),
            Some(l) => (LogOnly, format!("risk level {l}")),
            None => (LogOnly, "risk level missing".to_string()),
        },
        Some(DefaultAction::LogOnly) | None => (
            LogOnly,
            "no revocation defined for this event type".to_string(),
        ),
    };
    (action, format!("default: {why}"))
}

/// Okta's risk events, outside the vocabulary (routed by `[policy]` by URI) but gated by level.
const OKTA_RISK_EVENTS: [&str; 2] = [
    "https://schemas.okta.com/secevent/okta/event-type/user-risk-change",
    "https://schemas.okta.com/secevent/okta/event-type/device-risk-change",
];

/// Payload conditions that hold whatever the configured action: a change that adds a
/// credential or makes a device compliant never ends sessions by itself.
fn policy_applies(event: &SetEvent) -> bool {
    match event_type::lookup(&event.event_type).map(|e| e.default) {
        Some(DefaultAction::ByComplianceStatus) => {
            payload_str(event, "current_status") != Some("compliant")
        }
        Some(DefaultAction::ByRiskLevel) => {
            !matches!(payload_str(event, "current_level"), Some(l) if l.eq_ignore_ascii_case("LOW"))
        }
        // Okta's proprietary risk events carry the same levels (docs/policy.md#proprietary-event-types).
        None if OKTA_RISK_EVENTS.contains(&event.event_type.as_str()) => {
            !matches!(payload_str(event, "current_level"), Some(l) if l.eq_ignore_ascii_case("LOW"))
        }
        _ => true,
    }
}

/// A configured STEP_UP, refined by the payload: a HIGH risk level still ends every session, an
/// assurance level that did not decrease asks for nothing.
fn refine_step_up(
    action: RevocationAction,
    event: &SetEvent,
    why: String,
) -> (RevocationAction, String) {
    if action != RevocationAction::StepUp {
        return (action, why);
    }
    let short = event.event_type.rsplit('/').next().unwrap_or_default();
    match short {
        "risk-level-change" => match payload_str(event, "current_level") {
            Some(l) if l.eq_ignore_ascii_case("HIGH") => (
                RevocationAction::RevokeAll,
                format!("{why}: risk level HIGH escalates STEP_UP to REVOKE_ALL"),
            ),
            Some(l) => (RevocationAction::StepUp, format!("{why}: risk level {l}")),
            None => (RevocationAction::StepUp, why),
        },
        "assurance-level-change" => match payload_str(event, "change_direction") {
            Some("decrease") => (
                RevocationAction::StepUp,
                format!("{why}: assurance level decreased"),
            ),
            other => (
                RevocationAction::LogOnly,
                format!(
                    "{why}: STEP_UP only when the assurance level decreases (change_direction {})",
                    other.map_or("missing".to_string(), |d| format!("{d:?}"))
                ),
            ),
        },
        _ => (RevocationAction::StepUp, why),
    }
}

/// Resolves the action for one event, with a human-readable reason.
pub fn resolve(
    stream: &Stream,
    event: &SetEvent,
    table: &BTreeMap<String, RevocationAction>,
) -> (RevocationAction, String) {
    if let Some((action, name)) = knob(stream, &event.event_type) {
        if *action != RevocationAction::Unspecified {
            return refine_step_up(*action, event, format!("stream {name}"));
        }
    }
    // A full URI in the table is more specific than a short name, whatever the sort order.
    let entry = table.get_key_value(event.event_type.as_str()).or_else(|| {
        table
            .iter()
            .find(|(pattern, _)| event_type_matches(pattern, &event.event_type))
    });
    if let Some((pattern, action)) = entry {
        if *action == RevocationAction::LogOnly || policy_applies(event) {
            return refine_step_up(*action, event, format!("[policy] {pattern:?}"));
        }
    }
    default_action(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(short: &str, payload: Value) -> SetEvent {
        let base = if [
            "account-disabled",
            "account-purged",
            "credential-compromise",
            "sessions-revoked",
            "identifier-recycled",
            "account-enabled",
        ]
        .contains(&short)
        {
            RISC
        } else {
            CAEP
        };
        SetEvent {
            event_type: format!("{base}{short}"),
            payload: payload.as_object().cloned().unwrap_or_default(),
        }
    }

    fn act(stream: &Stream, e: &SetEvent) -> RevocationAction {
        resolve(stream, e, &BTreeMap::new()).0
    }

    #[test]
    fn shipped_defaults() {
        use RevocationAction::*;
        let s = Stream::default();
        assert_eq!(act(&s, &ev("session-revoked", json!({}))), RevokeAll);
        assert_eq!(act(&s, &ev("sessions-revoked", json!({}))), RevokeAll);
        for c in ["revoke", "delete", "update"] {
            assert_eq!(
                act(&s, &ev("credential-change", json!({"change_type": c}))),
                RevokeAll
            );
        }
        assert_eq!(
            act(
                &s,
                &ev("credential-change", json!({"change_type": "create"}))
            ),
            LogOnly
        );
        assert_eq!(act(&s, &ev("credential-compromise", json!({}))), RevokeAll);
        assert_eq!(act(&s, &ev("account-disabled", json!({}))), RevokeAll);
        assert_eq!(act(&s, &ev("account-purged", json!({}))), RevokeAll);
        assert_eq!(act(&s, &ev("account-enabled", json!({}))), LogOnly);
        assert_eq!(
            act(
                &s,
                &ev(
                    "device-compliance-change",
                    json!({"current_status": "not-compliant"})
                )
            ),
            RevokeAll
        );
        assert_eq!(
            act(
                &s,
                &ev(
                    "device-compliance-change",
                    json!({"current_status": "compliant"})
                )
            ),
            LogOnly
        );
        assert_eq!(
            act(
                &s,
                &ev("risk-level-change", json!({"current_level": "HIGH"}))
            ),
            RevokeAll
        );
        assert_eq!(
            act(
                &s,
                &ev("risk-level-change", json!({"current_level": "MEDIUM"}))
            ),
            LogOnly
        );
        assert_eq!(act(&s, &ev("token-claims-change", json!({}))), LogOnly);
        let unknown = SetEvent {
            event_type: "https://example.com/custom".into(),
            payload: Default::default(),
        };
        assert_eq!(act(&s, &unknown), LogOnly);
    }

    #[test]
    fn every_known_type_gets_its_listed_default() {
        let s = Stream::default();
        for e in event_type::ALL {
            let event = |payload: &str| SetEvent {
                event_type: e.uri(),
                payload: serde_json::from_str(payload).unwrap(),
            };
            let (action, why) = resolve(&s, &event("{}"), &BTreeMap::new());
            assert!(why.starts_with("default: "), "{}: {why}", e.short);
            if let Some(fixed) = event_type::fixed_action(e.default) {
                assert_eq!(action, fixed, "{}", e.short);
            }
            if let Some(payload) = e.preview {
                let (action, _) = resolve(&s, &event(payload), &BTreeMap::new());
                assert_eq!(action, RevocationAction::RevokeAll, "{}", e.short);
            }
        }
        let scim = |short: &str| SetEvent {
            event_type: format!("{}{short}", event_type::SCIM_BASE),
            payload: Default::default(),
        };
        assert_eq!(
            act(&s, &scim("prov:deactivate")),
            RevocationAction::RevokeAll
        );
        assert_eq!(act(&s, &scim("prov:delete")), RevocationAction::RevokeAll);
        assert_eq!(
            act(&s, &scim("prov:create:full")),
            RevocationAction::LogOnly
        );
        assert_eq!(act(&s, &scim("misc:asyncResp")), RevocationAction::LogOnly);
    }

    #[test]
    fn knobs_override_defaults() {
        let s = Stream {
            session_revoked_action: RevocationAction::LogOnly,
            ..Stream::default()
        };
        assert_eq!(
            act(&s, &ev("session-revoked", json!({}))),
            RevocationAction::LogOnly
        );
        let s = Stream {
            credential_change_action: RevocationAction::RevokeAll,
            ..Stream::default()
        };
        assert_eq!(
            act(
                &s,
                &ev("credential-change", json!({"change_type": "create"}))
            ),
            RevocationAction::RevokeAll
        );
    }

    #[test]
    fn step_up_is_payload_aware_and_opt_in() {
        use RevocationAction::*;
        let s = Stream::default();
        // Shipped defaults never step up.
        for (short, payload) in [
            ("risk-level-change", json!({"current_level": "MEDIUM"})),
            (
                "assurance-level-change",
                json!({"change_direction": "decrease"}),
            ),
            ("credential-change", json!({"change_type": "update"})),
        ] {
            assert_ne!(act(&s, &ev(short, payload)), StepUp, "{short}");
        }
        let mut table = BTreeMap::new();
        table.insert("risk-level-change".to_string(), StepUp);
        table.insert("assurance-level-change".to_string(), StepUp);
        let risk = |level: &str| {
            resolve(
                &s,
                &ev("risk-level-change", json!({"current_level": level})),
                &table,
            )
            .0
        };
        assert_eq!(risk("MEDIUM"), StepUp);
        assert_eq!(risk("HIGH"), RevokeAll);
        assert_eq!(risk("LOW"), LogOnly);
        let assurance = |dir: &str| {
            resolve(
                &s,
                &ev("assurance-level-change", json!({"change_direction": dir})),
                &table,
            )
            .0
        };
        assert_eq!(assurance("decrease"), StepUp);
        assert_eq!(assurance("increase"), LogOnly);
        // The credential-change knob, when the operator chooses it.
        let knob = Stream {
            credential_change_action: StepUp,
            ..Stream::default()
        };
        assert_eq!(
            act(
                &knob,
                &ev("credential-change", json!({"change_type": "update"}))
            ),
            StepUp
        );
    }

    #[test]
    fn policy_table_sits_between() {
        let mut table = BTreeMap::new();
        table.insert("session-revoked".to_string(), RevocationAction::LogOnly);
        table.insert(
            "token-claims-change".to_string(),
            RevocationAction::RevokeAll,
        );
        let s = Stream::default();
        assert_eq!(
            resolve(&s, &ev("session-revoked", json!({})), &table).0,
            RevocationAction::LogOnly
        );
        assert_eq!(
            resolve(&s, &ev("token-claims-change", json!({})), &table).0,
            RevocationAction::RevokeAll
        );
        let knob = Stream {
            session_revoked_action: RevocationAction::RevokeAll,
            ..Stream::default()
        };
        assert_eq!(
            resolve(&knob, &ev("session-revoked", json!({})), &table).0,
            RevocationAction::RevokeAll
        );
    }
}
