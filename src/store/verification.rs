//! Verification requests: the `state` values this receiver asked transmitters to echo, and
//! whether a verification event answered them (answered by [`Store::store_set`]).

use super::{Backend, Store, StoreError};
use crate::clock::UnixSeconds;

impl Store {
    /// When the stream's latest verification request was made, if ever.
    pub async fn last_verification_request(
        &self,
        stream_id: &str,
    ) -> Result<Option<UnixSeconds>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.last_verification_request(stream_id).await,
            Backend::Postgres(db) => db.last_verification_request(stream_id).await,
        }
    }

    /// Records a verification request (unanswered).
    pub async fn add_verification_request(
        &self,
        stream_id: &str,
        state: &str,
        requested_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.add_verification_request(stream_id, state, requested_at)
                    .await
            }
            Backend::Postgres(db) => {
                db.add_verification_request(stream_id, state, requested_at)
                    .await
            }
        }
    }

    /// Forgets a verification request (the transmitter refused it).
    pub async fn delete_verification_request(
        &self,
        stream_id: &str,
        state: &str,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.delete_verification_request(stream_id, state).await,
            Backend::Postgres(db) => db.delete_verification_request(stream_id, state).await,
        }
    }

    /// True when the request with this `state` exists and a verification event answered it.
    pub async fn verification_answered(
        &self,
        stream_id: &str,
        state: &str,
    ) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.verification_answered(stream_id, state).await,
            Backend::Postgres(db) => db.verification_answered(stream_id, state).await,
        }
    }
}
