//! Replay: plans actions for SETs that were stored without any (`outcome = 'stored'`: the stream
//! was disabled, or the event type was not enabled), using the stream as it is now.

use std::sync::Arc;

use futures_util::future::join_all;
use rusqlite::{params, OptionalExtension};
use serde_json::{Map, Value};

use crate::app::App;
use crate::clock::{now_millis, UnixMillis};
use crate::sanitize::log_text;
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

struct StoredSet {
    seq: i64,
    iss: String,
    claims: String,
    received_at_ms: UnixMillis,
}

/// Rebuilds the verified form of a stored SET. Its signature, issuer and audience were checked
/// when it arrived; the stream's issuer or audience may have changed since, so only the claim
/// structure is parsed again.
fn rebuild(stream: &Stream, row: &StoredSet) -> Result<VerifiedSet, String> {
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
        let id = stream.id.clone();
        let rows = app
            .store
            .read(move |c| {
                let mut stmt = c.prepare(
                    "SELECT seq, iss, claims, received_at_ms FROM inbox
                      WHERE stream_id = ?1 AND outcome = 'stored' AND seq > ?2
                        AND received_at_ms >= ?3
                      ORDER BY seq LIMIT ?4",
                )?;
                let mut q =
                    stmt.query(params![id, after_seq, since_ms.unwrap_or(0), BATCH as i64])?;
                let mut out = Vec::new();
                while let Some(r) = q.next()? {
                    out.push(StoredSet {
                        seq: r.get(0)?,
                        iss: r.get(1)?,
                        claims: r.get(2)?,
                        received_at_ms: r.get(3)?,
                    });
                }
                Ok(out)
            })
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
            let stream_id = stream.id.clone();
            let now = now_millis();
            writes.push(app.store.write(move |c| {
                // Another replay may have got here first; planning twice would be harmless
                // (the outbox and ledger ignore repeats) but would count twice.
                let still_stored = c
                    .query_row(
                        "SELECT 1 FROM inbox WHERE seq = ?1 AND outcome = 'stored'",
                        [row.seq],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if !still_stored {
                    return Ok(None);
                }
                c.execute(
                    "UPDATE inbox SET outcome = ?2, decision = ?3 WHERE seq = ?1",
                    params![row.seq, plan.outcome, format!("replayed: {}", plan.summary)],
                )?;
                super::record(c, row.seq, &stream_id, &set, &plan, now)?;
                // The ledger tells applications when the SET arrived, not when it was replayed.
                c.execute(
                    "UPDATE ledger SET received_at_ms = ?3 WHERE stream_id = ?1 AND jti = ?2",
                    params![stream_id, set.jti, row.received_at_ms],
                )?;
                let planned: i64 = c.query_row(
                    "SELECT COUNT(*) FROM outbox WHERE inbox_seq = ?1",
                    [row.seq],
                    |r| r.get(0),
                )?;
                Ok(Some(planned as usize))
            }));
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
