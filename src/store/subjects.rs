//! Removed subjects: the canonical keys of subjects ssfd removed from a stream at its
//! transmitter, so that late events about them are stored but not acted on.

use super::{Backend, Store, StoreError};
use crate::clock::UnixSeconds;

impl Store {
    /// Records `keys` as removed from the stream.
    pub async fn mark_subject_removed(
        &self,
        stream_id: &str,
        keys: &[String],
        at: UnixSeconds,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.mark_subject_removed(stream_id, keys, at).await,
            Backend::Postgres(db) => db.mark_subject_removed(stream_id, keys, at).await,
        }
    }

    /// Forgets that `keys` were removed (the subject was added again).
    pub async fn mark_subject_added(
        &self,
        stream_id: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.mark_subject_added(stream_id, keys).await,
            Backend::Postgres(db) => db.mark_subject_added(stream_id, keys).await,
        }
    }

    /// Every (stream, key) recorded as removed.
    pub async fn removed_subjects(&self) -> Result<Vec<(String, String)>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.removed_subjects().await,
            Backend::Postgres(db) => db.removed_subjects().await,
        }
    }
}
