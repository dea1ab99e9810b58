//! The audit trail: one row per decision taken for a stored SET (written by
//! [`Store::store_set`] and [`Store::replay_set`]).

use super::{Backend, Store, StoreError};
use crate::clock::UnixMillis;

/// One decision on record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: UnixMillis,
    pub stream_id: String,
    pub jti: String,
    pub event_type: String,
    /// The subject as received (JSON text; empty without one).
    pub subject: String,
    /// The action's short name (`REVOKE_ALL`, `LOG_ONLY`).
    pub action: String,
    pub detail: String,
}

impl Store {
    /// The audit rows of a stream, oldest first.
    pub async fn audit_entries(&self, stream_id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.audit_entries(stream_id).await,
            Backend::Postgres(db) => db.audit_entries(stream_id).await,
        }
    }
}
