//! SQL of a SET's write transaction and of a replay (see `store::set`).

use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use super::{inbox, poll_acks};
use crate::clock::UnixMillis;
use crate::store::error::StoreError;
use crate::store::set::{ControlWrite, DecisionWrite, ReplayWrite, SetStored, SetWrite};

/// Inside the write transaction: duplicate check, verification state, stream bookkeeping, the
/// inbox row, its decisions and the pending ack.
pub(in crate::store) fn store_set(
    conn: &Connection,
    w: &SetWrite,
) -> Result<SetStored, StoreError> {
    let stream_id = w.inbox.stream_id.as_str();
    let jti = w.inbox.jti.as_str();
    if inbox::exists(conn, stream_id, jti)? {
        if w.pending_ack {
            poll_acks::record(conn, stream_id, jti)?;
        }
        return Ok(SetStored::Duplicate);
    }
    let now_ms = w.inbox.received_at_ms;
    let now = now_ms / 1000;
    match &w.control {
        Some(ControlWrite::Verification { state: Some(state) }) => {
            let answered = conn.execute(
                "UPDATE verification_requests SET answered_at = ?3
                          WHERE stream_id = ?1 AND state = ?2 AND answered_at IS NULL",
                params![stream_id, state, now],
            )?;
            if answered == 0 {
                return Ok(SetStored::BadState);
            }
            conn.execute(
                "UPDATE streams SET last_verified_at = ?2 WHERE id = ?1",
                params![stream_id, now],
            )?;
        }
        Some(ControlWrite::Verification { state: None }) => {
            conn.execute(
                "UPDATE streams SET last_verified_at = ?2 WHERE id = ?1",
                params![stream_id, now],
            )?;
        }
        Some(ControlWrite::StreamUpdated { status, reason }) => {
            conn.execute(
                "UPDATE streams SET transmitter_status = ?2, transmitter_status_reason = ?3
                          WHERE id = ?1",
                params![stream_id, status, reason],
            )?;
        }
        None => {}
    }
    let Some(seq) = inbox::insert(conn, &w.inbox)? else {
        if w.pending_ack {
            poll_acks::record(conn, stream_id, jti)?;
        }
        return Ok(SetStored::Duplicate);
    };
    record_decisions(
        conn,
        seq,
        stream_id,
        jti,
        &w.subject,
        &w.inbox.subject_keys,
        &w.decisions,
        now_ms,
    )?;
    if w.pending_ack {
        poll_acks::record(conn, stream_id, jti)?;
    }
    Ok(SetStored::New)
}

/// Writes the decisions of a stored SET: ledger entries for every subject key of each
/// revocation, an audit row per decision, and an outbox row per sink to run.
#[allow(clippy::too_many_arguments)]
fn record_decisions(
    conn: &Connection,
    inbox_seq: i64,
    stream_id: &str,
    jti: &str,
    subject: &str,
    subject_keys: &[String],
    decisions: &[DecisionWrite],
    now_ms: UnixMillis,
) -> Result<(), StoreError> {
    for d in decisions {
        if let Some(revoked_before) = d.revoked_before {
            let mut ledger = conn.prepare_cached(
                "INSERT OR IGNORE INTO ledger (subject_key, revoked_before, stream_id, jti, event_type, received_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for key in subject_keys {
                ledger.execute(params![
                    key,
                    revoked_before,
                    stream_id,
                    jti,
                    d.event_type,
                    now_ms
                ])?;
            }
        }
        conn.prepare_cached(
            "INSERT INTO audit (at_ms, stream_id, jti, event_type, subject, action, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            now_ms,
            stream_id,
            jti,
            d.event_type,
            subject,
            d.action,
            d.reason
        ])?;
        let mut outbox = conn.prepare_cached(
            "INSERT OR IGNORE INTO outbox (inbox_seq, stream_id, jti, event_type, action, sink,
                                           idempotency_key, status, next_attempt_ms, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8)",
        )?;
        for sink in &d.sinks {
            outbox.execute(params![
                inbox_seq,
                stream_id,
                jti,
                d.event_type,
                d.action,
                sink,
                d.idempotency_key,
                now_ms
            ])?;
        }
    }
    Ok(())
}

pub(in crate::store) fn replay_set(
    c: &Connection,
    w: &ReplayWrite,
) -> Result<Option<usize>, StoreError> {
    // Another replay may have got here first; planning twice would be harmless (the outbox and
    // ledger ignore repeats) but would count twice.
    let still_stored = c
        .query_row(
            "SELECT 1 FROM inbox WHERE seq = ?1 AND outcome = 'stored'",
            [w.seq],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !still_stored {
        return Ok(None);
    }
    c.execute(
        "UPDATE inbox SET outcome = ?2, decision = ?3 WHERE seq = ?1",
        params![w.seq, w.outcome, w.decision],
    )?;
    record_decisions(
        c,
        w.seq,
        &w.stream_id,
        &w.jti,
        &w.subject,
        &w.subject_keys,
        &w.decisions,
        w.now_ms,
    )?;
    // The ledger tells applications when the SET arrived, not when it was replayed.
    c.execute(
        "UPDATE ledger SET received_at_ms = ?3 WHERE stream_id = ?1 AND jti = ?2",
        params![w.stream_id, w.jti, w.received_at_ms],
    )?;
    let planned: i64 = c.query_row(
        "SELECT COUNT(*) FROM outbox WHERE inbox_seq = ?1",
        [w.seq],
        |r| r.get(0),
    )?;
    Ok(Some(planned as usize))
}

impl SqliteStore {
    /// Writes one SET in one transaction, once it is committed. The description comes back
    /// with the outcome, so the caller can report on it without copying it first.
    pub(in crate::store) async fn store_set(
        &self,
        write: SetWrite,
    ) -> Result<(SetStored, SetWrite), StoreError> {
        self.write(move |c| {
            let stored = store_set(c, &write)?;
            Ok((stored, write))
        })
        .await
    }

    /// Records decisions for a stored SET that is still without any (`outcome = 'stored'`).
    /// Returns the number of outbox rows the SET now has, or `None` when another replay got
    /// there first (nothing written).
    pub(in crate::store) async fn replay_set(
        &self,
        write: ReplayWrite,
    ) -> Result<Option<usize>, StoreError> {
        self.write(move |c| replay_set(c, &write)).await
    }
}
