//! Streams: the stream records (see [`Stream`]), their error bookkeeping and their statistics.

use crate::clock::UnixSeconds;
use crate::stream::Stream;

use super::{Backend, Store, StoreError};

/// Counters of the stats endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamCounts {
    pub received: i64,
    pub acted_on: i64,
    pub failed: i64,
    /// STEP_UP decisions recorded for the stream's events.
    pub step_up: i64,
    pub last_received_at_ms: Option<i64>,
}

impl Store {
    /// Every stream that is not deleted, oldest first.
    pub async fn load_live_streams(&self) -> Result<Vec<Stream>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.load_live_streams().await,
            Backend::Postgres(db) => db.load_live_streams().await,
        }
    }

    /// One stream by id, deleted or not.
    pub async fn get_stream(&self, id: &str) -> Result<Option<Stream>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.get_stream(id).await,
            Backend::Postgres(db) => db.get_stream(id).await,
        }
    }

    /// Writes the whole record (insert or replace by id); the rejected-SET count is kept.
    pub async fn upsert_stream(&self, stream: Stream) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.upsert_stream(stream).await,
            Backend::Postgres(db) => db.upsert_stream(stream).await,
        }
    }

    /// Records a rejected SET (`rejected_set`, counted) or an operational error on the stream.
    pub async fn record_stream_error(
        &self,
        id: &str,
        at: UnixSeconds,
        message: &str,
        rejected_set: bool,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.record_stream_error(id, at, message, rejected_set).await,
            Backend::Postgres(db) => db.record_stream_error(id, at, message, rejected_set).await,
        }
    }

    /// Clears the stream's last error when it still reads `message`: a problem that went away
    /// must not erase a newer, different one. Returns whether it cleared.
    pub async fn clear_stream_error_if(&self, id: &str, message: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.clear_stream_error_if(id, message).await,
            Backend::Postgres(db) => db.clear_stream_error_if(id, message).await,
        }
    }

    /// The stream's counters: SETs received, acted on, failed; when the last one arrived.
    pub async fn stream_counts(&self, id: &str) -> Result<StreamCounts, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.stream_counts(id).await,
            Backend::Postgres(db) => db.stream_counts(id).await,
        }
    }
}
