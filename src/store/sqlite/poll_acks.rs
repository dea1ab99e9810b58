//! SQL of the `pending_acks` table.

use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::store::error::StoreError;

/// Records, inside the transaction that stores a polled SET, that its ack is still to be sent.
pub(in crate::store) fn record(
    conn: &Connection,
    stream_id: &str,
    jti: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR IGNORE INTO pending_acks (stream_id, jti) VALUES (?1, ?2)")?
        .execute(params![stream_id, jti])?;
    Ok(())
}

pub(in crate::store) fn load(
    conn: &Connection,
    stream_id: &str,
) -> Result<Vec<String>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT jti FROM pending_acks WHERE stream_id = ?1 ORDER BY rowid")?;
    let rows = stmt.query_map([stream_id], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(in crate::store) fn delete(
    conn: &Connection,
    stream_id: &str,
    jtis: &[String],
) -> Result<(), StoreError> {
    let mut stmt =
        conn.prepare_cached("DELETE FROM pending_acks WHERE stream_id = ?1 AND jti = ?2")?;
    for jti in jtis {
        stmt.execute(params![stream_id, jti])?;
    }
    Ok(())
}

impl SqliteStore {
    /// The stream's pending acknowledgements, in the order they were recorded.
    pub(in crate::store) async fn pending_acks(
        &self,
        stream_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let id = stream_id.to_string();
        self.read(move |c| load(c, &id)).await
    }

    /// Forgets acknowledgements the transmitter has been sent.
    pub(in crate::store) async fn delete_pending_acks(
        &self,
        stream_id: &str,
        jtis: Vec<String>,
    ) -> Result<(), StoreError> {
        let id = stream_id.to_string();
        self.write(move |c| delete(c, &id, &jtis)).await
    }
}
