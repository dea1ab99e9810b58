//! Poll acknowledgements: jtis of polled SETs that are stored but not yet acknowledged to the
//! transmitter (recorded by [`Store::store_set`], in the SET's own transaction).

use super::{Backend, Store, StoreError};

impl Store {
    /// The stream's pending acknowledgements, in the order they were recorded.
    pub async fn pending_acks(&self, stream_id: &str) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.pending_acks(stream_id).await,
            Backend::Postgres(db) => db.pending_acks(stream_id).await,
        }
    }

    /// Forgets acknowledgements the transmitter has been sent.
    pub async fn delete_pending_acks(
        &self,
        stream_id: &str,
        jtis: Vec<String>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.delete_pending_acks(stream_id, jtis).await,
            Backend::Postgres(db) => db.delete_pending_acks(stream_id, jtis).await,
        }
    }
}
