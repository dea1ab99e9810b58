//! SQL of the whole-database counters.

use rusqlite::Connection;

use super::SqliteStore;
use crate::store::error::StoreError;
use crate::store::stats::OutboxCounts;

pub(in crate::store) fn outbox_counts(conn: &Connection) -> Result<OutboxCounts, StoreError> {
    let (depth, dead) = conn.query_row(
        "SELECT COALESCE(SUM(status IN ('pending', 'running')), 0),
                COALESCE(SUM(status = 'dead'), 0)
           FROM outbox",
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    )?;
    Ok(OutboxCounts { depth, dead })
}

impl SqliteStore {
    pub(in crate::store) async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        self.read(outbox_counts).await
    }
}
