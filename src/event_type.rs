//! The event vocabulary: every SSF, CAEP 1.0, RISC 1.0 and SCIM event type ssfd knows, with its
//! short name, its shipped default action and whether ssfd asks transmitters for it. Policy,
//! registration, the admin preview and the table in docs/policy.md all read this one list; a new event
//! type is one more entry here.

use crate::stream::RevocationAction;

/// Base of every SSF stream-control event-type URI.
pub const SSF_BASE: &str = "https://schemas.openid.net/secevent/ssf/event-type/";
/// Base of every CAEP event-type URI.
pub const CAEP_BASE: &str = "https://schemas.openid.net/secevent/caep/event-type/";
/// Base of every RISC event-type URI.
pub const RISC_BASE: &str = "https://schemas.openid.net/secevent/risc/event-type/";
/// Base of every SCIM event URI (RFC 9967); the short name is what follows it.
pub const SCIM_BASE: &str = "urn:ietf:params:scim:event:";

pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
pub const STREAM_UPDATED: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/stream-updated";

/// The specification that defines an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ssf,
    Caep,
    Risc,
    Scim,
}

impl Family {
    pub fn base(self) -> &'static str {
        match self {
            Family::Ssf => SSF_BASE,
            Family::Caep => CAEP_BASE,
            Family::Risc => RISC_BASE,
            Family::Scim => SCIM_BASE,
        }
    }
}

/// The shipped default of an event type. The payload-dependent rules are implemented by
/// `act::policy`; this list only says which rule an event type follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// Always REVOKE_ALL; the text is the reason recorded with the action.
    RevokeAll(&'static str),
    /// Always LOG_ONLY.
    LogOnly,
    /// CAEP credential-change: by `change_type` (`create` logs, `revoke`/`delete`/`update` and
    /// an absent change type revoke, an unknown change type logs).
    ByChangeType,
    /// CAEP device-compliance-change: REVOKE_ALL when `current_status` is `not-compliant`.
    ByComplianceStatus,
    /// CAEP risk-level-change: REVOKE_ALL when `current_level` is `HIGH`.
    ByRiskLevel,
}

impl DefaultAction {
    /// Whether the default can revoke sessions (for some payload).
    pub fn can_revoke(self) -> bool {
        !matches!(self, DefaultAction::LogOnly)
    }
}

/// One known event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    pub family: Family,
    /// The name after the family's base (`session-revoked`, `prov:delete`).
    pub short: &'static str,
    pub default: DefaultAction,
    /// Whether ssfd asks transmitters for it when a stream does not list its own types.
    pub requested: bool,
    /// For the admin `test` preview: a payload that makes the default act (JSON text), or
    /// `None` when the type is not previewed.
    pub preview: Option<&'static str>,
}

impl EventType {
    /// The full event-type URI.
    pub fn uri(&self) -> String {
        format!("{}{}", self.family.base(), self.short)
    }

    /// Whether `uri` is this type's URI.
    pub fn is(&self, uri: &str) -> bool {
        uri.strip_prefix(self.family.base()) == Some(self.short)
    }
}

const fn entry(family: Family, short: &'static str, default: DefaultAction) -> EventType {
    EventType {
        family,
        short,
        default,
        requested: false,
        preview: None,
    }
}

const fn requested(mut e: EventType) -> EventType {
    e.requested = true;
    e
}

const fn previewed(mut e: EventType, payload: &'static str) -> EventType {
    e.preview = Some(payload);
    e
}

use DefaultAction::*;
use Family::*;

/// Every known event type: SSF, then CAEP, then RISC, then SCIM. The first previewed entry is
/// the one the admin `test` answer reports as `configuredSessionRevokedAction`.
pub const ALL: &[EventType] = &[
    entry(Ssf, "verification", LogOnly),
    entry(Ssf, "stream-updated", LogOnly),
    previewed(
        requested(entry(
            Caep,
            "session-revoked",
            RevokeAll("sessions revoked"),
        )),
        "{}",
    ),
    entry(Caep, "token-claims-change", LogOnly),
    previewed(
        requested(entry(Caep, "credential-change", ByChangeType)),
        r#"{"change_type": "update", "credential_type": "password"}"#,
    ),
    entry(Caep, "assurance-level-change", LogOnly),
    previewed(
        requested(entry(Caep, "device-compliance-change", ByComplianceStatus)),
        r#"{"previous_status": "compliant", "current_status": "not-compliant"}"#,
    ),
    entry(Caep, "session-established", LogOnly),
    entry(Caep, "session-presented", LogOnly),
    previewed(
        requested(entry(Caep, "risk-level-change", ByRiskLevel)),
        r#"{"principal": "USER", "current_level": "HIGH"}"#,
    ),
    entry(Risc, "account-credential-change-required", LogOnly),
    requested(entry(Risc, "account-purged", RevokeAll("account purged"))),
    previewed(
        requested(entry(
            Risc,
            "account-disabled",
            RevokeAll("account disabled"),
        )),
        "{}",
    ),
    entry(Risc, "account-enabled", LogOnly),
    entry(Risc, "identifier-changed", LogOnly),
    // Asked for although it logs by default: a recycled identifier is worth a record.
    requested(entry(Risc, "identifier-recycled", LogOnly)),
    previewed(
        requested(entry(
            Risc,
            "credential-compromise",
            RevokeAll("credential compromised"),
        )),
        "{}",
    ),
    entry(Risc, "opt-in", LogOnly),
    entry(Risc, "opt-out-initiated", LogOnly),
    entry(Risc, "opt-out-cancelled", LogOnly),
    entry(Risc, "opt-out-effective", LogOnly),
    entry(Risc, "recovery-activated", LogOnly),
    entry(Risc, "recovery-information-changed", LogOnly),
    // Deprecated by RISC in favour of CAEP session-revoked, still sent by older transmitters.
    requested(entry(
        Risc,
        "sessions-revoked",
        RevokeAll("sessions revoked"),
    )),
    entry(Scim, "prov:create:notice", LogOnly),
    entry(Scim, "prov:create:full", LogOnly),
    entry(Scim, "prov:patch:notice", LogOnly),
    entry(Scim, "prov:patch:full", LogOnly),
    entry(Scim, "prov:put:notice", LogOnly),
    entry(Scim, "prov:put:full", LogOnly),
    entry(Scim, "prov:delete", RevokeAll("resource deleted")),
    entry(Scim, "prov:activate", LogOnly),
    entry(Scim, "prov:deactivate", RevokeAll("resource deactivated")),
    entry(Scim, "misc:asyncResp", LogOnly),
];

/// The known event type with this URI.
pub fn lookup(uri: &str) -> Option<&'static EventType> {
    ALL.iter().find(|e| e.is(uri))
}

/// The known event type with this short name; CAEP comes before RISC when a name is defined
/// twice, so that the current spelling wins. Stream-control (SSF) types are not looked up:
/// a transmitter always delivers them and no stream asks for them by name.
pub fn by_short_name(short: &str) -> Option<&'static EventType> {
    [Caep, Risc, Scim]
        .into_iter()
        .find_map(|f| ALL.iter().find(|e| e.family == f && e.short == short))
}

/// The full URI for a configured entry: URIs (anything with a ':') stay as they are; a known
/// short name becomes its URI; anything else is not a type a transmitter would know.
pub fn expand(entry: &str) -> Option<String> {
    let entry = entry.trim();
    if entry.contains(':') && !entry.starts_with("prov:") && !entry.starts_with("misc:") {
        return Some(entry.to_string());
    }
    by_short_name(entry).map(EventType::uri)
}

/// The short name of an event type: the known short name, else the URI's last path segment.
pub fn short_name(uri: &str) -> &str {
    match lookup(uri) {
        Some(e) => &uri[uri.len() - e.short.len()..],
        None => uri.rsplit('/').next().unwrap_or(uri),
    }
}

/// The event types ssfd asks transmitters for by default.
pub fn requested_uris() -> impl Iterator<Item = String> {
    ALL.iter().filter(|e| e.requested).map(EventType::uri)
}

/// The event types the admin `test` answer previews, with the payload that makes them act.
pub fn previewed_types() -> impl Iterator<Item = (&'static EventType, &'static str)> {
    ALL.iter().filter_map(|e| e.preview.map(|p| (e, p)))
}

/// Whether a policy key or sink `events` entry matches an event type: the pattern equals the
/// full URI, or its short name (`"session-revoked"` matches
/// `https://schemas.openid.net/secevent/caep/event-type/session-revoked`, `"prov:delete"`
/// matches `urn:ietf:params:scim:event:prov:delete`).
pub fn event_type_matches(pattern: &str, event_type_uri: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    if pattern == event_type_uri {
        return true;
    }
    // A pattern with a slash is a URI and must match whole, so that one transmitter's type
    // is never taken for another's by a partial path.
    !pattern.contains('/') && short_name(event_type_uri) == pattern
}

/// The action a default gives when it does not depend on the payload.
pub fn fixed_action(d: DefaultAction) -> Option<RevocationAction> {
    match d {
        RevokeAll(_) => Some(RevocationAction::RevokeAll),
        LogOnly => Some(RevocationAction::LogOnly),
        ByChangeType | ByComplianceStatus | ByRiskLevel => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_unique_and_round_trip() {
        for (i, e) in ALL.iter().enumerate() {
            let uri = e.uri();
            assert_eq!(lookup(&uri), Some(e), "{uri}");
            assert_eq!(short_name(&uri), e.short);
            assert!(event_type_matches(e.short, &uri), "{uri}");
            assert!(event_type_matches(&uri, &uri));
            assert!(
                ALL[i + 1..].iter().all(|o| o.uri() != uri),
                "{uri} is listed twice"
            );
            assert!(!e.short.is_empty() && !e.short.contains('/'), "{uri}");
            assert_eq!(expand(&uri), Some(uri.clone()));
        }
    }

    #[test]
    fn families_have_their_specified_sizes() {
        let count = |f| ALL.iter().filter(|e| e.family == f).count();
        assert_eq!(count(Ssf), 2);
        assert_eq!(count(Caep), 8);
        assert_eq!(count(Risc), 14);
        assert_eq!(count(Scim), 10);
        assert_eq!(lookup(VERIFICATION).map(|e| e.short), Some("verification"));
        assert_eq!(
            lookup(STREAM_UPDATED).map(|e| e.short),
            Some("stream-updated")
        );
    }

    #[test]
    fn requested_and_previewed_types_can_act() {
        // Only what ssfd understands and can act on is requested (and identifier-recycled,
        // kept for the record).
        for e in ALL.iter().filter(|e| e.requested) {
            assert!(
                e.default.can_revoke() || e.short == "identifier-recycled",
                "{}",
                e.short
            );
            assert_ne!(e.family, Ssf, "stream-control events are always delivered");
        }
        for (e, payload) in previewed_types() {
            assert!(e.default.can_revoke(), "{}", e.short);
            let v: serde_json::Value = serde_json::from_str(payload).unwrap();
            assert!(v.is_object(), "{}", e.short);
        }
        assert_eq!(
            previewed_types().next().map(|(e, _)| e.short),
            Some("session-revoked")
        );
    }

    #[test]
    fn short_names_expand_to_the_current_spelling() {
        assert_eq!(
            expand("session-revoked").as_deref(),
            Some("https://schemas.openid.net/secevent/caep/event-type/session-revoked")
        );
        assert_eq!(
            expand("sessions-revoked").as_deref(),
            Some("https://schemas.openid.net/secevent/risc/event-type/sessions-revoked")
        );
        assert_eq!(
            expand("prov:delete").as_deref(),
            Some("urn:ietf:params:scim:event:prov:delete")
        );
        assert_eq!(expand("no-such-type"), None);
        assert_eq!(
            expand("https://example.com/custom").as_deref(),
            Some("https://example.com/custom")
        );
    }

    #[test]
    fn patterns() {
        let uri = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
        assert!(event_type_matches("session-revoked", uri));
        assert!(event_type_matches(uri, uri));
        assert!(!event_type_matches("sessions-revoked", uri));
        assert!(!event_type_matches("event-type/session-revoked", uri));
        assert!(!event_type_matches("", uri));
        assert!(!event_type_matches("revoked", uri));
        assert!(!event_type_matches(
            "https://schemas.openid.net/secevent/risc/event-type/session-revoked",
            uri
        ));
        assert!(event_type_matches("plain", "plain"));
        assert!(!event_type_matches("x", "https://e/x/"));
        assert!(event_type_matches(
            "prov:deactivate",
            "urn:ietf:params:scim:event:prov:deactivate"
        ));
    }

    #[test]
    fn the_policy_doc_names_every_type_that_can_revoke() {
        let readme = include_str!("../docs/policy.md");
        for e in ALL.iter().filter(|e| e.default.can_revoke()) {
            assert!(
                readme.contains(&format!("`{}`", e.short)),
                "docs/policy.md's defaults table misses {}",
                e.short
            );
        }
    }

    #[test]
    fn testkit_knows_the_same_types() {
        let ours: Vec<String> = ALL
            .iter()
            .filter(|e| e.family != Scim)
            .map(EventType::uri)
            .collect();
        let mut theirs: Vec<String> = ssfd_testkit::events::all().map(str::to_string).collect();
        let mut ours_sorted = ours.clone();
        ours_sorted.sort();
        theirs.sort();
        assert_eq!(ours_sorted, theirs);
    }
}
