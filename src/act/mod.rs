//! Act: turning a verified SET into decisions, and decisions into work.
//!
//! [`plan`] decides (pure: stream + SET + configuration); [`decision_writes`] describes what the
//! decisions write into the SET's own transaction (ledger entries and audit rows at once, and
//! one outbox row per sink that the action worker then delivers); `store` writes it.

pub mod attempt;
pub mod document;
pub mod identity;
pub mod policy;
pub mod replay;
pub mod sinks;
pub mod worker;

use serde_json::Value;

use crate::config::Config;
use crate::event_type::event_type_matches;
use crate::store::set::DecisionWrite;
use crate::stream::{RevocationAction, Stream};
use crate::verify::VerifiedSet;

/// What was decided for one event of a SET.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub event_type: String,
    pub action: RevocationAction,
    pub reason: String,
    /// Sessions issued before this time (Unix seconds) are revoked.
    pub revoked_before: i64,
    /// Sinks that must run for this decision (REVOKE_ALL only).
    pub sinks: Vec<String>,
}

/// The decisions for a whole SET.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Stored in `inbox.outcome`: `revoke`, `log_only`, `stored` (nothing to act on) or `control`.
    pub outcome: &'static str,
    /// Human-readable summary stored in `inbox.decision`.
    pub summary: String,
    pub decisions: Vec<Decision>,
}

/// The time a revocation applies from: `event_timestamp` (seconds; milliseconds tolerated),
/// else `toe`, else `iat`.
pub fn event_time(set: &VerifiedSet, payload: &serde_json::Map<String, Value>) -> i64 {
    event_time_of(payload, set.toe, set.iat)
}

/// [`event_time`] from the parts of a SET, for code that reads stored claims.
pub fn event_time_of(payload: &serde_json::Map<String, Value>, toe: Option<i64>, iat: i64) -> i64 {
    let ts = payload
        .get("event_timestamp")
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
    match ts {
        // Anything past the year 5138 in seconds is a millisecond timestamp.
        Some(t) if t > 100_000_000_000 => t / 1000,
        Some(t) => t,
        None => toe.unwrap_or(iat),
    }
}

/// Decides what to do with a verified SET.
pub fn plan(stream: &Stream, set: &VerifiedSet, config: &Config) -> Plan {
    if set.control.is_some() {
        return Plan {
            outcome: "control",
            summary: "stream bookkeeping".into(),
            decisions: Vec::new(),
        };
    }
    if !stream.enabled {
        return Plan {
            outcome: "stored",
            summary: "stream disabled: stored, no action planned".into(),
            decisions: Vec::new(),
        };
    }
    let mut decisions = Vec::new();
    let mut skipped = Vec::new();
    for event in &set.events {
        if !stream.event_types_enabled.is_empty()
            && !stream
                .event_types_enabled
                .iter()
                .any(|p| event_type_matches(p, &event.event_type))
        {
            skipped.push(event.event_type.clone());
            continue;
        }
        let (action, reason) = policy::resolve(stream, event, &config.policy);
        let sinks = if action == RevocationAction::RevokeAll {
            config
                .sinks
                .iter()
                .filter(|s| s.streams.is_empty() || s.streams.contains(&stream.id))
                .filter(|s| {
                    s.events.is_empty()
                        || s.events
                            .iter()
                            .any(|p| event_type_matches(p, &event.event_type))
                })
                .map(|s| s.name.clone())
                .collect()
        } else {
            Vec::new()
        };
        decisions.push(Decision {
            event_type: event.event_type.clone(),
            action,
            reason,
            revoked_before: event_time(set, &event.payload),
            sinks,
        });
    }
    let outcome = if decisions
        .iter()
        .any(|d| d.action == RevocationAction::RevokeAll)
    {
        "revoke"
    } else if decisions.is_empty() {
        "stored"
    } else {
        "log_only"
    };
    let mut summary: Vec<String> = decisions
        .iter()
        .map(|d| format!("{} ({})", d.action.as_short(), d.reason))
        .collect();
    if !skipped.is_empty() {
        summary.push("event type not enabled on this stream: stored only".into());
    }
    Plan {
        outcome,
        summary: summary.join("; "),
        decisions,
    }
}

/// What the decisions of a plan write: ledger entries for every subject key of each
/// REVOKE_ALL, an audit row per decision, and an outbox row per sink to run.
pub fn decision_writes(stream_id: &str, jti: &str, decisions: Vec<Decision>) -> Vec<DecisionWrite> {
    decisions
        .into_iter()
        .map(|d| DecisionWrite {
            idempotency_key: idempotency_key(stream_id, jti, &d.event_type),
            revoked_before: (d.action == RevocationAction::RevokeAll).then_some(d.revoked_before),
            action: d.action.as_short(),
            event_type: d.event_type,
            reason: d.reason,
            sinks: d.sinks,
        })
        .collect()
}

/// The subject of a SET as its audit rows quote it (JSON text; empty without one).
pub fn audit_subject(set: &VerifiedSet) -> String {
    set.subject
        .as_ref()
        .map(|s| s.raw.to_string())
        .unwrap_or_default()
}

/// The key every attempt of an action carries, so that sinks can deduplicate (docs/actions.md#idempotency-key; ARCHITECTURE.md invariant 3).
pub fn idempotency_key(stream_id: &str, jti: &str, event_type: &str) -> String {
    format!("{stream_id}:{jti}:{event_type}")
}
