//! Replay: plans actions for SETs that were stored without any (`outcome = 'stored'`: the stream
//! was disabled, or the event type was not enabled), using the stream as it is now.

use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::{Map, Value};

use crate::app::App;
use crate::clock::{now_millis, UnixMillis};
use crate::sanitize::log_text;
use crate::store::inbox::ReplayCandidate;
use crate::store::set::ReplayWrite;
use crate::store::StoreError;
use crate::stream::Stream;
use crate::verify::{claims, VerifiedSet};

/// Stored SETs read (and re-planned concurrently, so their commits share fsyncs) per round.
const BATCH: usize = 200;

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// SETs that now have a decision (REVOKE_ALL or LOG_ONLY).
    pub replayed: usize,
    /// Outbox rows (sink actions) planned for them.
    pub planned_actions: usize,
}

/// Rebuilds the verified form of a stored SET. Its signature, issuer and audience were checked
/// when it arrived; the stream's issuer or audience may have changed since, so only the claim
/// structure is parsed again.
fn rebuild(stream: &Stream, row: &ReplayCandidate) -> Result<VerifiedSet, String> {
    let claims: Map<String, Value> =
        serde_json::from_str(&row.claims).map_err(|e| format!("stored claims: {e}"))?;
    let mut shape = stream.clone();
    shape.issuer_url = row.iss.clone();
    shape.expected_audience.clear();
    claims::check(&shape, claims).map_err(|e| e.description)
}

/// Re-plans the stored SETs of `stream` received at or after `since_ms`, one transaction each.
pub async fn replay(
    app: &Arc<App>,
    stream: &Arc<Stream>,
    since_ms: Option<UnixMillis>,
) -> Result<ReplaySummary, StoreError> {
    let config = app.config();
    let mut summary = ReplaySummary::default();
    let mut after_seq = 0i64;
    loop {
        let rows = app
            .store
            .replay_candidates(&stream.id, after_seq, since_ms.unwrap_or(0), BATCH)
            .await?;
        let Some(last) = rows.last() else { break };
        after_seq = last.seq;
        let full = rows.len() == BATCH;
        let mut writes = Vec::new();
        for row in rows {
            let set = match rebuild(stream, &row) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(stream = %stream.id, seq = row.seq, error = %e, "stored SET cannot be replayed");
                    continue;
                }
            };
            let plan = super::plan(stream, &set, &config, row.received_at_ms / 1000);
            if plan.outcome == "stored" {
                continue;
            }
            for d in &plan.decisions {
                tracing::info!(
                    stream = %stream.id, jti = %log_text(&set.jti), event_type = %log_text(&d.event_type),
                    action = d.action.as_short(), reason = %d.reason, sinks = d.sinks.len(),
                    "action decided (replay)"
                );
            }
            let write = ReplayWrite {
                seq: row.seq,
                stream_id: stream.id.clone(),
                decision: format!("replayed: {}", plan.summary),
                outcome: plan.outcome,
                subject: super::audit_subject(&set),
                subject_keys: set.subject_keys(),
                received_at_ms: row.received_at_ms,
                decisions: super::decision_writes(&stream.id, &set.jti, plan.decisions),
                txn: set.txn,
                jti: set.jti,
                now_ms: now_millis(),
            };
            writes.push(app.store.replay_set(write));
        }
        for written in join_all(writes).await {
            if let Some(planned) = written? {
                summary.replayed += 1;
                summary.planned_actions += planned;
            }
        }
        if !full {
            break;
        }
    }
    if summary.planned_actions > 0 {
        app.actions_ready.notify_one();
    }
    Ok(summary)
}
