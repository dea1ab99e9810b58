//! Removed-subject rows: the canonical keys of subjects ssfd removed from a stream at its
//! transmitter, so that late events about them are not acted on.

use rusqlite::{params, Connection};

use super::StoreError;
use crate::clock::UnixSeconds;

/// Records `keys` as removed from the stream.
pub fn mark_removed(
    conn: &Connection,
    stream_id: &str,
    keys: &[String],
    at: UnixSeconds,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO removed_subjects (stream_id, subject_key, removed_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (stream_id, subject_key) DO UPDATE SET removed_at = excluded.removed_at",
    )?;
    for key in keys {
        stmt.execute(params![stream_id, key, at])?;
    }
    Ok(())
}

/// Forgets that `keys` were removed (the subject was added again).
pub fn mark_added(conn: &Connection, stream_id: &str, keys: &[String]) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached("DELETE FROM removed_subjects WHERE stream_id = ?1 AND subject_key = ?2")?;
    for key in keys {
        stmt.execute(params![stream_id, key])?;
    }
    Ok(())
}

/// Every (stream, key) recorded as removed.
pub fn load_removed(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT stream_id, subject_key FROM removed_subjects")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
