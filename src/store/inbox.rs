//! Inbox rows: every verified SET, once per (stream, jti), with the decision taken for it.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{json_col, StoreError};
use crate::clock::UnixMillis;

/// A verified SET about to be stored.
#[derive(Debug, Clone)]
pub struct NewInboxRow {
    pub stream_id: String,
    pub jti: String,
    pub iss: String,
    pub txn: Option<String>,
    pub event_types: Vec<String>,
    pub subject_keys: Vec<String>,
    pub raw_token: String,
    pub claims: String,
    pub received_at_ms: UnixMillis,
    pub delivery: &'static str,
    pub outcome: String,
    pub decision: String,
    /// Tolerance kinds applied to accept this SET (docs/push.md#tolerances).
    pub tolerances: Vec<String>,
}

/// Inserts the row unless (stream, jti) is already stored. Returns the new row's sequence
/// number, or `None` for a duplicate (which must change nothing).
pub fn insert(conn: &Connection, row: &NewInboxRow) -> Result<Option<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO inbox (stream_id, jti, iss, txn, event_types, subject_keys, raw_token,
                            claims, received_at_ms, delivery, outcome, decision, tolerances)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
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
        serde_json::to_string(&row.tolerances)?,
    ])?;
    Ok((changed == 1).then(|| conn.last_insert_rowid()))
}

pub fn exists(conn: &Connection, stream_id: &str, jti: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM inbox WHERE stream_id = ?1 AND jti = ?2")?
        .query_row(params![stream_id, jti], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A stored SET as the operator sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub seq: i64,
    pub stream_id: String,
    pub jti: String,
    pub iss: String,
    pub txn: Option<String>,
    pub event_types: Vec<String>,
    pub subject_keys: Vec<String>,
    pub received_at_ms: i64,
    pub delivery: String,
    pub outcome: String,
    pub decision: String,
    pub tolerances: Vec<String>,
}

/// Filters for listing stored events, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub stream_id: Option<String>,
    pub since_ms: Option<i64>,
    /// Only rows with a sequence number below this (pagination).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

pub fn list(conn: &Connection, f: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq, stream_id, jti, iss, txn, event_types, subject_keys, received_at_ms,
                delivery, outcome, decision, tolerances
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
            tolerances: json_col(&r.get::<_, String>(11)?)?,
        });
    }
    Ok(out)
}
