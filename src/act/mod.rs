//! Act: turning a verified SET into decisions, and decisions into work.
//!
//! [`plan`] decides (pure: stream + SET + configuration); [`decision_writes`] describes what the
//! decisions write into the SET's own transaction (ledger entries, step-up requirements and
//! audit rows at once, and one outbox row per sink that the action worker then delivers);
//! `store` writes it.

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
use crate::store::step_up::StepUpWrite;
use crate::stream::{RevocationAction, Stream};
use crate::verify::VerifiedSet;

/// What was decided for one event of a SET.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub event_type: String,
    pub action: RevocationAction,
    pub reason: String,
    /// The event time (Unix seconds): sessions issued before it are revoked (REVOKE_ALL), or
    /// only an authentication at or after it satisfies the step-up (STEP_UP).
    pub revoked_before: i64,
    /// Why the event's own time was not used as it stood, if it was not.
    pub time_adjusted: Option<TimeAdjustment>,
    /// Sinks that must run for this decision (REVOKE_ALL and STEP_UP).
    pub sinks: Vec<String>,
    /// What a STEP_UP asks for (STEP_UP only).
    pub step_up: Option<StepUpPlan>,
}

/// The provider and `max_age` a STEP_UP decision names; what the provider demands is read
/// when the requirement is recorded, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUpPlan {
    /// The stream's `stepUpProviderId`, else `[step_up] default_provider`; may be empty.
    pub provider_id: String,
    pub max_age: u64,
}

/// The decisions for a whole SET.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Stored in `inbox.outcome`: `revoke`, `step_up`, `log_only`, `stored` (nothing to act on)
    /// or `control`.
    pub outcome: &'static str,
    /// Human-readable summary stored in `inbox.decision`.
    pub summary: String,
    pub decisions: Vec<Decision>,
}

/// How far past its receive time a revocation may reach: the transmitter's clock may run a
/// little ahead, but a cut-off in the future would revoke sessions not yet started.
pub const MAX_FUTURE_SKEW_SECS: i64 = 300;
/// Why an event's time was adjusted before it became a revocation cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeAdjustment {
    /// The value was in milliseconds and was read as such.
    Milliseconds,
    /// The value was later than the receive time plus [`MAX_FUTURE_SKEW_SECS`] and was clamped.
    Future,
}

impl TimeAdjustment {
    pub fn as_str(&self) -> &'static str {
        match self {
            TimeAdjustment::Milliseconds => "milliseconds",
            TimeAdjustment::Future => "future",
        }
    }
}

/// The time a revocation applies from: `event_timestamp`, else `toe`, else `iat`; a value in
/// milliseconds is read as milliseconds (and counted as `millisecond_timestamp`), and the result is at most the receive time plus
/// [`MAX_FUTURE_SKEW_SECS`], so that no SET can revoke a subject's sessions for years ahead.
pub fn event_time(
    set: &VerifiedSet,
    payload: &serde_json::Map<String, Value>,
    received_at: i64,
) -> (i64, Option<TimeAdjustment>) {
    event_time_of(payload, set.toe, set.iat, received_at)
}

/// [`event_time`] from the parts of a SET, for code that reads stored claims.
pub fn event_time_of(
    payload: &serde_json::Map<String, Value>,
    toe: Option<i64>,
    iat: i64,
    received_at: i64,
) -> (i64, Option<TimeAdjustment>) {
    let ts = payload
        .get("event_timestamp")
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
    let mut t = ts.or(toe).unwrap_or(iat);
    let mut adjusted = None;
    if t > crate::verify::claims::MILLISECOND_TIMESTAMPS_FROM {
        t /= 1000;
        adjusted = Some(TimeAdjustment::Milliseconds);
    }
    let latest = received_at.saturating_add(MAX_FUTURE_SKEW_SECS);
    if t > latest {
        t = latest;
        adjusted = Some(TimeAdjustment::Future);
    }
    (t, adjusted)
}

/// Decides what to do with a verified SET received at `received_at` (Unix seconds).
pub fn plan(stream: &Stream, set: &VerifiedSet, config: &Config, received_at: i64) -> Plan {
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
        let acts = matches!(
            action,
            RevocationAction::RevokeAll | RevocationAction::StepUp
        );
        let sinks = if acts {
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
        let (revoked_before, time_adjusted) = event_time(set, &event.payload, received_at);
        decisions.push(Decision {
            event_type: event.event_type.clone(),
            action,
            reason,
            revoked_before,
            time_adjusted,
            sinks,
            step_up: (action == RevocationAction::StepUp).then(|| StepUpPlan {
                provider_id: if stream.step_up_provider_id.is_empty() {
                    config.step_up.default_provider.clone()
                } else {
                    stream.step_up_provider_id.clone()
                },
                max_age: config.step_up.max_age.as_secs(),
            }),
        });
    }
    let outcome = if decisions
        .iter()
        .any(|d| d.action == RevocationAction::RevokeAll)
    {
        "revoke"
    } else if decisions
        .iter()
        .any(|d| d.action == RevocationAction::StepUp)
    {
        "step_up"
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
/// REVOKE_ALL, a step-up requirement for each STEP_UP, an audit row per decision, and an outbox
/// row per sink to run.
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
            step_up: d.step_up.map(|s| StepUpWrite {
                provider_id: s.provider_id,
                max_age: s.max_age,
                since: d.revoked_before,
            }),
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
