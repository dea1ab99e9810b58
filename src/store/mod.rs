//! Store: the one boundary behind which everything ssfd persists lives.
//!
//! [`Store`] is the only handle the rest of the code holds. Every operation is a typed method,
//! named for what it means, defined in the module of the table (or concern) it touches; each
//! dispatches to a backend. The backends live below this module (today [`sqlite`]); no driver
//! type and no SQL text leaves `src/store/`. A SET's whole write transaction is described by a
//! plain [`set::SetWrite`] and written by [`Store::store_set`].

pub mod audit;
mod error;
pub mod inbox;
pub mod leases;
pub mod ledger;
pub mod outbox;
pub mod poll_acks;
pub mod postgres;
pub mod set;
pub mod stats;
pub mod step_up;
pub mod streams;
pub mod subjects;
pub mod verification;

mod sqlite;

use std::path::Path;

pub use error::StoreError;
pub use sqlite::WriterStats;

/// The handle to the database. Cheap to clone: clones share the backend.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

/// The storage backends; each operation of [`Store`] matches on this.
#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::backend::PgStore),
}

impl Store {
    /// Opens (creating if needed, mode 0600) and migrates the SQLite database at `path`, and
    /// starts its writer.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Sqlite(sqlite::SqliteStore::open(path)?),
        })
    }

    /// Connects to the PostgreSQL database `settings` name and migrates it (once, however many
    /// replicas start at the same moment). `replica_id` names this replica in outbox claims.
    pub async fn open_postgres(
        settings: postgres::PgSettings,
        replica_id: String,
    ) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Postgres(
                postgres::backend::PgStore::open(settings, replica_id).await?,
            ),
        })
    }

    /// Commit counters of the writer, for the metrics endpoint.
    pub fn writer_stats(&self) -> &WriterStats {
        match &self.backend {
            Backend::Sqlite(db) => db.writer_stats(),
            Backend::Postgres(db) => db.writer_stats(),
        }
    }

    /// Which database this is, for operators (never a credential): `SQLite <path>`.
    pub fn description(&self) -> String {
        match &self.backend {
            Backend::Sqlite(db) => format!("SQLite {}", db.path().display()),
            Backend::Postgres(db) => format!("PostgreSQL {}", db.target()),
        }
    }

    /// On a database shared by several replicas (PostgreSQL): a feed of the stream changes any
    /// replica commits, with a re-read every `backstop` for a notification that was missed.
    /// `None` on SQLite, where this process is the only writer.
    pub fn watch_changes(
        &self,
        backstop: std::time::Duration,
    ) -> Option<postgres::notify::ChangeFeed> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(db) => {
                Some(postgres::notify::listen(db.settings().clone(), backstop))
            }
        }
    }

    /// This replica's id in leases and outbox claims (PostgreSQL), for `/metrics`.
    pub fn replica_id(&self) -> Option<&str> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(db) => Some(db.replica_id()),
        }
    }

    /// True when a trivial write commits (used by `/readyz`).
    pub async fn writable(&self) -> bool {
        match &self.backend {
            Backend::Sqlite(db) => db.writable().await,
            Backend::Postgres(db) => db.writable().await,
        }
    }
}

/// Splits a schema file into its numbered migrations: each starts at a line that is exactly
/// `-- migration N` and runs to the next one. Both backends keep their schema this way.
pub(crate) fn split_migrations(schema: &'static str) -> Vec<(i64, &'static str)> {
    let mut out: Vec<(i64, &'static str)> = Vec::new();
    let mut current: Option<(i64, usize)> = None;
    let mut offset = 0;
    for line in schema.split_inclusive('\n') {
        let version = line
            .trim_end()
            .strip_prefix("-- migration ")
            .and_then(|n| n.parse::<i64>().ok());
        if let Some(v) = version {
            if let Some((prev, start)) = current.take() {
                out.push((prev, &schema[start..offset]));
            }
            current = Some((v, offset + line.len()));
        }
        offset += line.len();
    }
    if let Some((v, start)) = current {
        out.push((v, &schema[start..]));
    }
    out
}
