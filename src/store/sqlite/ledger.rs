//! SQL of the `ledger` table.

use rusqlite::{params_from_iter, Connection};

use super::SqliteStore;
use crate::store::error::StoreError;
use crate::store::ledger::{LedgerEntry, MAX_ENTRIES};

pub(in crate::store) fn check(
    c: &Connection,
    keys: &[String],
) -> Result<Vec<LedgerEntry>, StoreError> {
    let marks = vec!["?"; keys.len()].join(",");
    let mut stmt = c.prepare(&format!(
        "SELECT revoked_before, stream_id, jti, event_type, received_at_ms
           FROM ledger WHERE subject_key IN ({marks})
          ORDER BY revoked_before DESC, id DESC LIMIT {MAX_ENTRIES}"
    ))?;
    let mut rows = stmt.query(params_from_iter(keys.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(LedgerEntry {
            revoked_before: r.get(0)?,
            stream_id: r.get(1)?,
            jti: r.get(2)?,
            event_type: r.get(3)?,
            received_at_ms: r.get(4)?,
        });
    }
    Ok(out)
}

impl SqliteStore {
    /// The ledger entries of any of `keys`, latest `revoked_before` first (ties: newest entry
    /// first), at most [`MAX_ENTRIES`].
    pub(in crate::store) async fn check_subjects(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.read(move |c| check(c, &keys)).await
    }
}
