//! Verification requests: the `state` values this receiver asked transmitters to echo, and
//! whether a verification event answered them (answered by [`Store::store_set`]).

use super::{sqlite, Backend, Store, StoreError};
use crate::clock::UnixSeconds;

impl Store {
    /// When the stream's latest verification request was made, if ever.
    pub async fn last_verification_request(
        &self,
        stream_id: &str,
    ) -> Result<Option<UnixSeconds>, StoreError> {
        let id = stream_id.to_string();
        match &self.backend {
            Backend::Sqlite(db) => {
                db.read(move |c| sqlite::verification::last_requested(c, &id))
                    .await
            }
        }
    }

    /// Records a verification request (unanswered).
    pub async fn add_verification_request(
        &self,
        stream_id: &str,
        state: &str,
        requested_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        let (id, state) = (stream_id.to_string(), state.to_string());
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(move |c| sqlite::verification::add(c, &id, &state, requested_at))
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
        let (id, state) = (stream_id.to_string(), state.to_string());
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(move |c| sqlite::verification::delete(c, &id, &state))
                    .await
            }
        }
    }

    /// True when the request with this `state` exists and a verification event answered it.
    pub async fn verification_answered(
        &self,
        stream_id: &str,
        state: &str,
    ) -> Result<bool, StoreError> {
        let (id, state) = (stream_id.to_string(), state.to_string());
        match &self.backend {
            Backend::Sqlite(db) => {
                db.read(move |c| sqlite::verification::answered(c, &id, &state))
                    .await
            }
        }
    }
}
