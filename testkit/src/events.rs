//! Event-type URIs of CAEP, RISC and SSF, short-name lookup, and realistic default payloads.

use serde_json::{json, Map, Value};

/// Base of every CAEP event-type URI.
pub const CAEP_BASE: &str = "https://schemas.openid.net/secevent/caep/event-type/";
/// Base of every RISC event-type URI.
pub const RISC_BASE: &str = "https://schemas.openid.net/secevent/risc/event-type/";
/// Base of the SSF stream-control event-type URIs.
pub const SSF_BASE: &str = "https://schemas.openid.net/secevent/ssf/event-type/";

pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
pub const TOKEN_CLAIMS_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/token-claims-change";
pub const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
pub const ASSURANCE_LEVEL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change";
pub const DEVICE_COMPLIANCE_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";
pub const SESSION_ESTABLISHED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-established";
pub const SESSION_PRESENTED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-presented";
pub const RISK_LEVEL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/risk-level-change";

pub const ACCOUNT_CREDENTIAL_CHANGE_REQUIRED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-credential-change-required";
pub const ACCOUNT_PURGED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-purged";
pub const ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
pub const ACCOUNT_ENABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
pub const IDENTIFIER_CHANGED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/identifier-changed";
pub const IDENTIFIER_RECYCLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/identifier-recycled";
pub const CREDENTIAL_COMPROMISE: &str =
    "https://schemas.openid.net/secevent/risc/event-type/credential-compromise";
pub const OPT_IN: &str = "https://schemas.openid.net/secevent/risc/event-type/opt-in";
pub const OPT_OUT_INITIATED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/opt-out-initiated";
pub const OPT_OUT_CANCELLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/opt-out-cancelled";
pub const OPT_OUT_EFFECTIVE: &str =
    "https://schemas.openid.net/secevent/risc/event-type/opt-out-effective";
pub const RECOVERY_ACTIVATED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/recovery-activated";
pub const RECOVERY_INFORMATION_CHANGED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/recovery-information-changed";
/// Deprecated by RISC in favour of CAEP `session-revoked`, but still sent by older transmitters.
pub const SESSIONS_REVOKED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked";

pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
pub const STREAM_UPDATED: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/stream-updated";

/// The eight CAEP 1.0 event types.
pub const CAEP: [&str; 8] = [
    SESSION_REVOKED,
    TOKEN_CLAIMS_CHANGE,
    CREDENTIAL_CHANGE,
    ASSURANCE_LEVEL_CHANGE,
    DEVICE_COMPLIANCE_CHANGE,
    SESSION_ESTABLISHED,
    SESSION_PRESENTED,
    RISK_LEVEL_CHANGE,
];

/// The fourteen RISC 1.0 event types.
pub const RISC: [&str; 14] = [
    ACCOUNT_CREDENTIAL_CHANGE_REQUIRED,
    ACCOUNT_PURGED,
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
    IDENTIFIER_CHANGED,
    IDENTIFIER_RECYCLED,
    CREDENTIAL_COMPROMISE,
    OPT_IN,
    OPT_OUT_INITIATED,
    OPT_OUT_CANCELLED,
    OPT_OUT_EFFECTIVE,
    RECOVERY_ACTIVATED,
    RECOVERY_INFORMATION_CHANGED,
    SESSIONS_REVOKED,
];

/// The two SSF stream-control event types.
pub const SSF: [&str; 2] = [VERIFICATION, STREAM_UPDATED];

/// Every known event type: CAEP, then RISC, then SSF.
pub fn all() -> impl Iterator<Item = &'static str> {
    CAEP.iter().chain(RISC.iter()).chain(SSF.iter()).copied()
}

/// Resolves a short name (`session-revoked`) to its URI, looking in CAEP first, then RISC,
/// then SSF. Returns `None` for a name no spec defines.
pub fn try_uri(short: &str) -> Option<&'static str> {
    [
        (CAEP_BASE, &CAEP[..]),
        (RISC_BASE, &RISC[..]),
        (SSF_BASE, &SSF[..]),
    ]
    .into_iter()
    .find_map(|(base, list)| {
        list.iter()
            .copied()
            .find(|uri| uri.strip_prefix(base) == Some(short))
    })
}

/// Like [`try_uri`], but anything that is not a known short name is returned unchanged, so
/// full URIs and deliberately unknown types pass straight through.
pub fn uri(short_or_uri: &str) -> String {
    try_uri(short_or_uri)
        .map(str::to_owned)
        .unwrap_or_else(|| short_or_uri.to_owned())
}

/// The short name of a known event-type URI (`credential-change`), or the input unchanged.
pub fn short_name(uri: &str) -> &str {
    [CAEP_BASE, RISC_BASE, SSF_BASE]
        .into_iter()
        .find_map(|base| uri.strip_prefix(base))
        .unwrap_or(uri)
}

/// A payload a real transmitter would plausibly send for this event type.
///
/// CAEP and RISC events carry `event_timestamp` (the time of the change, seconds) and
/// `reason_admin`; the SSF control events carry only what their definitions allow. The
/// type-specific members lean towards the values that make ssfd act (a password update, a
/// device turning non-compliant, risk going HIGH), since those exercise the most code.
pub fn default_payload(short_or_uri: &str, reason: Option<&str>, event_timestamp: i64) -> Value {
    let uri = uri(short_or_uri);
    if uri == VERIFICATION {
        // A transmitter-initiated verification carries no `state` (SSF 8.1.4.1).
        return json!({});
    }
    if uri == STREAM_UPDATED {
        let mut payload = json!({"status": "enabled"});
        if let Some(reason) = reason {
            payload["reason"] = json!(reason);
        }
        return payload;
    }
    let short = short_name(&uri);
    let mut payload = match short {
        "session-revoked" => json!({"initiating_entity": "policy"}),
        "token-claims-change" => json!({"claims": {"role": "ro-admin"}}),
        "credential-change" => json!({
            "credential_type": "password",
            "change_type": "update",
            "initiating_entity": "user",
        }),
        "assurance-level-change" => json!({
            "namespace": "NIST-AAL",
            "current_level": "nist-aal1",
            "previous_level": "nist-aal2",
            "change_direction": "decrease",
        }),
        "device-compliance-change" => json!({
            "previous_status": "compliant",
            "current_status": "not-compliant",
        }),
        "session-established" => json!({"acr": "AAL2", "amr": ["pwd", "otp"]}),
        "session-presented" => json!({"ext_id": "12345"}),
        "risk-level-change" => json!({
            "risk_reason": "PASSWORD_FOUND_IN_DATA_BREACH",
            "principal": "USER",
            "current_level": "HIGH",
            "previous_level": "LOW",
        }),
        "account-disabled" => json!({"reason": "hijacking"}),
        "credential-compromise" => json!({"credential_type": "password"}),
        _ => json!({}),
    };
    let default_reason = match short {
        "session-revoked" => "Session revoked by policy",
        "credential-change" => "Password changed",
        "device-compliance-change" => "Device no longer meets compliance policy",
        "risk-level-change" => "Credentials found in a data breach",
        "account-disabled" => "Account disabled after suspected takeover",
        "credential-compromise" => "Credential reported compromised",
        _ => "Event raised by the test transmitter",
    };
    let obj: &mut Map<String, Value> = payload.as_object_mut().expect("payloads are objects");
    obj.insert("event_timestamp".into(), json!(event_timestamp));
    obj.insert(
        "reason_admin".into(),
        json!({"en": reason.unwrap_or(default_reason)}),
    );
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uri_sits_under_its_base_and_is_unique() {
        let all: Vec<_> = all().collect();
        assert_eq!(all.len(), 24);
        for uri in &all {
            assert!(try_uri(short_name(uri)).is_some(), "{uri}");
        }
        let mut dedup = all.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), all.len());
    }

    #[test]
    fn short_names_resolve_in_caep_risc_ssf_order() {
        assert_eq!(uri("session-revoked"), SESSION_REVOKED);
        assert_eq!(uri("sessions-revoked"), SESSIONS_REVOKED);
        assert_eq!(uri("verification"), VERIFICATION);
        assert_eq!(uri("urn:example:custom"), "urn:example:custom");
        assert_eq!(try_uri("no-such-event"), None);
    }

    #[test]
    fn default_payloads_carry_time_and_reason() {
        let p = default_payload("credential-change", Some("rotated"), 42);
        assert_eq!(p["change_type"], "update");
        assert_eq!(p["event_timestamp"], 42);
        assert_eq!(p["reason_admin"]["en"], "rotated");
        assert_eq!(default_payload(VERIFICATION, None, 1), json!({}));
        assert_eq!(
            default_payload("stream-updated", None, 1)["status"],
            "enabled"
        );
    }
}
