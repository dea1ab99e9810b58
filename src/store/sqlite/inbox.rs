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

/// SETs a stream received in each of the `hours` whole hours up to `now_ms`, oldest first: the
/// last bucket is the hour ending at `now_ms`. Counts SETs of every outcome.
fn events_per_hour(
    conn: &Connection,
    stream_id: &str,
    now_ms: UnixMillis,
    hours: usize,
) -> Result<Vec<u64>, StoreError> {
    const HOUR_MS: i64 = 3_600_000;
    let since_ms = now_ms - hours as i64 * HOUR_MS;
    let mut stmt = conn.prepare_cached(
        "SELECT (received_at_ms - ?2) / 3600000, COUNT(*)
           FROM inbox
          WHERE stream_id = ?1 AND received_at_ms >= ?2 AND received_at_ms <= ?3
          GROUP BY 1",
    )?;
    let mut buckets = vec![0u64; hours];
    let mut rows = stmt.query(params![stream_id, since_ms, now_ms])?;
    while let Some(r) = rows.next()? {
        let (bucket, count): (i64, i64) = (r.get(0)?, r.get(1)?);
        // Buckets are [start, start + 1 h); a SET exactly at `now_ms` belongs to the last one.
        let slot = (bucket.max(0) as usize).min(hours.saturating_sub(1));
        if let Some(b) = buckets.get_mut(slot) {
            *b += count.max(0) as u64;
        }
    }
    Ok(buckets)
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
    pub(in crate::store) async fn events_per_hour(
        &self,
        stream_id: &str,
        now_ms: UnixMillis,
        hours: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let id = stream_id.to_string();
        self.read(move |c| events_per_hour(c, &id, now_ms, hours))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::inbox::NewInboxRow;

    fn row(stream_id: &str, jti: &str, received_at_ms: i64) -> NewInboxRow {
        NewInboxRow {
            stream_id: stream_id.into(),
            jti: jti.into(),
            iss: "https://idp.example".into(),
            txn: None,
            event_types: vec![],
            subject_keys: vec![],
            raw_token: String::new(),
            claims: "{}".into(),
            received_at_ms,
            delivery: "push",
            outcome: "accepted".into(),
            decision: "LOG_ONLY".into(),
        }
    }

    #[test]
    fn events_per_hour_buckets_the_last_hours_of_one_stream() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::migrate(&conn).unwrap();
        for id in ["s1", "s2"] {
            let stream = crate::stream::Stream {
                id: id.into(),
                ..Default::default()
            };
            super::super::streams::upsert(&conn, &stream).unwrap();
        }
        let now = 100 * 3_600_000;
        for (i, at) in [
            now,
            now - 1,
            now - 3_600_000 + 1,
            now - 3_600_000,
            now - 5 * 3_600_000,
        ]
        .into_iter()
        .enumerate()
        {
            insert(&conn, &row("s1", &format!("j{i}"), at)).unwrap();
        }
        // Too old, in the future, and another stream's: not counted.
        insert(&conn, &row("s1", "old", now - 24 * 3_600_000 - 1)).unwrap();
        insert(&conn, &row("s1", "future", now + 1)).unwrap();
        insert(&conn, &row("s2", "other", now)).unwrap();
        let b = events_per_hour(&conn, "s1", now, 24).unwrap();
        assert_eq!(b.len(), 24);
        assert_eq!(b[23], 4, "{b:?}");
        assert_eq!(b[19], 1, "{b:?}");
        assert_eq!(b.iter().sum::<u64>(), 5);
        assert_eq!(
            events_per_hour(&conn, "none", now, 24).unwrap(),
            vec![0; 24]
        );
    }
}
