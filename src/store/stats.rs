//! Whole-database counters the metrics endpoint reads at scrape time.

use super::{Backend, Store, StoreError};

/// Counts over all planned actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Actions pending or running.
    pub depth: i64,
    pub dead: i64,
}

impl Store {
    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.outbox_counts().await,
            Backend::Postgres(db) => db.outbox_counts().await,
        }
    }
}
