//! SQL of the `audit` table (its rows are written with a SET, in `set.rs`).

use rusqlite::Connection;

use super::SqliteStore;
use crate::store::audit::AuditEntry;
use crate::store::error::StoreError;

fn entries(c: &Connection, stream_id: &str) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT at_ms, stream_id, jti, event_type, subject, action, detail
           FROM audit WHERE stream_id = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([stream_id])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(AuditEntry {
            at_ms: r.get(0)?,
            stream_id: r.get(1)?,
            jti: r.get(2)?,
            event_type: r.get(3)?,
            subject: r.get(4)?,
            action: r.get(5)?,
            detail: r.get(6)?,
        });
    }
    Ok(out)
}

impl SqliteStore {
    pub(in crate::store) async fn audit_entries(
        &self,
        stream_id: &str,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let id = stream_id.to_string();
        self.read(move |c| entries(c, &id)).await
    }
}
