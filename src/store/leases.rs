//! Work only one replica may do at a time (polling a stream, its scheduled verification), by
//! named leases on a database several replicas share. On SQLite this process is the only
//! replica and holds every lease.

use std::time::Duration;

use super::{Backend, Store};

impl Store {
    /// True while this replica holds lease `name`; starts competing for it (renewed every third
    /// of `ttl`, taken over by another replica once `ttl` passes without a renewal).
    pub fn holds_lease(&self, name: &str, ttl: Duration) -> bool {
        match &self.backend {
            Backend::Sqlite(_) => true,
            Backend::Postgres(db) => db.replica().compete(name, ttl),
        }
    }

    /// Resolves once this replica holds lease `name` (after [`Store::holds_lease`]).
    pub async fn lease_acquired(&self, name: &str) {
        match &self.backend {
            Backend::Sqlite(_) => {}
            Backend::Postgres(db) => {
                if db.replica().acquired(name).await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Stops competing for lease `name` and releases it, so another replica takes over at once.
    pub async fn release_lease(&self, name: &str) {
        match &self.backend {
            Backend::Sqlite(_) => {}
            Backend::Postgres(db) => db.replica().withdraw(name).await,
        }
    }

    /// The leases this replica holds now (for `/metrics`); none on SQLite.
    pub fn held_leases(&self) -> Vec<String> {
        match &self.backend {
            Backend::Sqlite(_) => Vec::new(),
            Backend::Postgres(db) => db.replica().held_names(),
        }
    }
}
