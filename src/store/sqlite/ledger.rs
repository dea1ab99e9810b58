//! SQL of the `ledger` table.

use rusqlite::{params, params_from_iter, Connection};

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

pub(in crate::store) fn lift(
    c: &Connection,
    keys: &[String],
    reason: &str,
    at_ms: crate::clock::UnixMillis,
) -> Result<usize, StoreError> {
    let mut select = c.prepare_cached(
        "SELECT id, stream_id, jti, event_type FROM ledger WHERE subject_key = ?1",
    )?;
    let mut audit = c.prepare_cached(
        "INSERT INTO audit (at_ms, stream_id, jti, event_type, subject, action, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, 'LIFTED', ?6)",
    )?;
    let mut delete = c.prepare_cached("DELETE FROM ledger WHERE id = ?1")?;
    let mut lifted = 0;
    for key in keys {
        let rows: Vec<(i64, String, String, String)> = select
            .query_map([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        for (id, stream_id, jti, event_type) in rows {
            audit.execute(params![at_ms, stream_id, jti, event_type, key, reason])?;
            delete.execute([id])?;
            lifted += 1;
        }
    }
    Ok(lifted)
}

impl SqliteStore {
    pub(in crate::store) async fn lift_revocations(
        &self,
        keys: Vec<String>,
        reason: String,
        at_ms: crate::clock::UnixMillis,
    ) -> Result<usize, StoreError> {
        self.write(move |c| lift(c, &keys, &reason, at_ms)).await
    }

    /// The ledger entries of any of `keys`, latest `revoked_before` first (ties: newest entry
    /// first), at most [`MAX_ENTRIES`].
    pub(in crate::store) async fn check_subjects(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.read(move |c| check(c, &keys)).await
    }
}
