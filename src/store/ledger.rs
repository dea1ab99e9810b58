//! The revocation ledger: for each canonical subject key, the times before which its sessions
//! are revoked (written by [`Store::store_set`] and [`Store::replay_set`]).

use super::{Backend, Store, StoreError};
use crate::clock::UnixMillis;

/// Most entries [`Store::check_subjects`] returns.
pub const MAX_ENTRIES: usize = 1000;

/// One ledger entry that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Sessions issued before this time (Unix seconds) are revoked.
    pub revoked_before: i64,
    pub stream_id: String,
    pub jti: String,
    pub event_type: String,
    pub received_at_ms: UnixMillis,
}

impl Store {
    /// The ledger entries of any of `keys`, latest `revoked_before` first (ties: newest entry
    /// first), at most [`MAX_ENTRIES`].
    pub async fn check_subjects(&self, keys: Vec<String>) -> Result<Vec<LedgerEntry>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.check_subjects(keys).await,
            Backend::Postgres(db) => db.check_subjects(keys).await,
        }
    }

    /// Lifts every revocation of any of `keys` in one transaction: each ledger entry is
    /// removed and leaves an audit row (`action` `LIFTED`, `detail` the operator's reason).
    /// Returns how many entries were lifted.
    pub async fn lift_revocations(
        &self,
        keys: Vec<String>,
        reason: String,
        at_ms: UnixMillis,
    ) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.lift_revocations(keys, reason, at_ms).await,
            Backend::Postgres(db) => db.lift_revocations(keys, reason, at_ms).await,
        }
    }
}
