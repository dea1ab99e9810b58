//! SQL of the `inbox` table.

use rusqlite::{params, Connection, OptionalExtension};

use super::{json_col, SqliteStore};
use crate::clock::UnixMillis;
use crate::store::error::StoreError;
use crate::store::inbox::{EventFilter, NewInboxRow, ReplayCandidate, StoredEvent};

/// Inserts the row unless (stream, jti) is already stored. Returns the new row's sequence
/// number, or `None` for a duplicate (which must change nothing).
pub(in crate::store) fn insert(
    conn: &Connection,
    row: &NewInboxRow,
) -> Result<Option<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO inbox (stream_id, jti, iss, txn, event_types, subject_keys, raw_token,
                            claims, received_at_ms, delivery, outcome, decision)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (stream_id, jti) DO NOTHING",
    )?;
    let changed = stmt.execute(params![
        row.stream_id,
        row.jti,
        row.iss,
        row.txn,
        serde_json::to_string(&row.event_types)?,
        serde_json::to_string(&row.subject_keys)?,
        row.raw_token,
        row.claims,
        row.received_at_ms,
        row.delivery,
        row.outcome,
        row.decision,
    ])?;
    Ok((changed == 1).then(|| conn.last_insert_rowid()))
}

pub(in crate::store) fn exists(
    conn: &Connection,
    stream_id: &str,
    jti: &str,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM inbox WHERE stream_id = ?1 AND jti = ?2")?
        .query_row(params![stream_id, jti], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(in crate::store) fn list(
    conn: &Connection,
    f: &EventFilter,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq, stream_id, jti, iss, txn, event_types, subject_keys, received_at_ms,
                delivery, outcome, decision
           FROM inbox
          WHERE (?1 IS NULL OR stream_id = ?1)
            AND (?2 IS NULL OR received_at_ms >= ?2)
            AND (?3 IS NULL OR seq < ?3)
          ORDER BY seq DESC
          LIMIT ?4",
    )?;
    let mut rows = stmt.query(params![
        f.stream_id,
        f.since_ms,
        f.before_seq,
        f.limit.max(1) as i64
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let types: String = r.get(5)?;
        let keys: String = r.get(6)?;
        out.push(StoredEvent {
            seq: r.get(0)?,
            stream_id: r.get(1)?,
            jti: r.get(2)?,
            iss: r.get(3)?,
            txn: r.get(4)?,
            event_types: json_col(&types)?,
            subject_keys: json_col(&keys)?,
            received_at_ms: r.get(7)?,
            delivery: r.get(8)?,
            outcome: r.get(9)?,
            decision: r.get(10)?,
        });
    }
    Ok(out)
}

/// Stored SETs of a stream that planned no action, received at or after `since_ms`, after
/// sequence number `after_seq`, oldest first.
pub(in crate::store) fn replay_candidates(
    c: &Connection,
    stream_id: &str,
    after_seq: i64,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<ReplayCandidate>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT seq, iss, claims, received_at_ms FROM inbox
          WHERE stream_id = ?1 AND outcome = 'stored' AND seq > ?2
            AND received_at_ms >= ?3
          ORDER BY seq LIMIT ?4",
    )?;
    let mut q = stmt.query(params![stream_id, after_seq, since_ms, limit as i64])?;
    let mut out = Vec::new();
    while let Some(r) = q.next()? {
        out.push(ReplayCandidate {
            seq: r.get(0)?,
            iss: r.get(1)?,
            claims: r.get(2)?,
            received_at_ms: r.get(3)?,
        });
    }
    Ok(out)
}

impl SqliteStore {
    /// Stored events matching `filter`, newest first (at most `filter.limit`, at least one).
    pub(in crate::store) async fn list_events(
        &self,
        filter: EventFilter,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |c| list(c, &filter)).await
    }

    /// Up to `limit` stored SETs of `stream_id` that planned no action (`outcome = 'stored'`),
    /// with a sequence number above `after_seq` and received at or after `since_ms`, oldest first.
    pub(in crate::store) async fn replay_candidates(
        &self,
        stream_id: &str,
        after_seq: i64,
        since_ms: UnixMillis,
        limit: usize,
    ) -> Result<Vec<ReplayCandidate>, StoreError> {
        let id = stream_id.to_string();
        self.read(move |c| replay_candidates(c, &id, after_seq, since_ms, limit))
            .await
    }
}
