//! Streams: the stream records (see [`Stream`]), their error bookkeeping and their statistics.

use crate::clock::UnixSeconds;
use crate::stream::Stream;

use super::{sqlite, Backend, Store, StoreError};

/// Counters of the stats endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamCounts {
    pub received: i64,
    pub acted_on: i64,
    pub failed: i64,
    pub last_received_at_ms: Option<i64>,
}

impl Store {
    /// Every stream that is not deleted, oldest first.
    pub async fn load_live_streams(&self) -> Result<Vec<Stream>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.read(sqlite::streams::load_live).await,
        }
    }

    /// One stream by id, deleted or not.
    pub async fn get_stream(&self, id: &str) -> Result<Option<Stream>, StoreError> {
        let id = id.to_string();
        match &self.backend {
            Backend::Sqlite(db) => db.read(move |c| sqlite::streams::get(c, &id)).await,
        }
    }

    /// Writes the whole record (insert or replace by id); the rejected-SET count is kept.
    pub async fn upsert_stream(&self, stream: Stream) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.write(move |c| sqlite::streams::upsert(c, &stream)).await,
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
        let (id, message) = (id.to_string(), message.to_string());
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(move |c| sqlite::streams::record_error(c, &id, at, &message, rejected_set))
                    .await
            }
        }
    }

    /// Clears the stream's last error when it still reads `message`: a problem that went away
    /// must not erase a newer, different one. Returns whether it cleared.
    pub async fn clear_stream_error_if(&self, id: &str, message: &str) -> Result<bool, StoreError> {
        let (id, message) = (id.to_string(), message.to_string());
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(move |c| sqlite::streams::clear_error_if(c, &id, &message))
                    .await
            }
        }
    }

    /// The stream's counters: SETs received, acted on, failed; when the last one arrived.
    pub async fn stream_counts(&self, id: &str) -> Result<StreamCounts, StoreError> {
        let id = id.to_string();
        match &self.backend {
            Backend::Sqlite(db) => db.read(move |c| sqlite::streams::counts(c, &id)).await,
        }
    }
}
