//! SQL of the `removed_subjects` table.

use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::clock::UnixSeconds;
use crate::store::error::StoreError;

fn mark_removed(
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

fn mark_added(conn: &Connection, stream_id: &str, keys: &[String]) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached("DELETE FROM removed_subjects WHERE stream_id = ?1 AND subject_key = ?2")?;
    for key in keys {
        stmt.execute(params![stream_id, key])?;
    }
    Ok(())
}

fn load_removed(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT stream_id, subject_key FROM removed_subjects")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl SqliteStore {
    pub(in crate::store) async fn mark_subject_removed(
        &self,
        stream_id: &str,
        keys: &[String],
        at: UnixSeconds,
    ) -> Result<(), StoreError> {
        let (id, keys) = (stream_id.to_string(), keys.to_vec());
        self.write(move |c| mark_removed(c, &id, &keys, at)).await
    }

    pub(in crate::store) async fn mark_subject_added(
        &self,
        stream_id: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        let (id, keys) = (stream_id.to_string(), keys.to_vec());
        self.write(move |c| mark_added(c, &id, &keys)).await
    }

    pub(in crate::store) async fn removed_subjects(
        &self,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.read(load_removed).await
    }
}
