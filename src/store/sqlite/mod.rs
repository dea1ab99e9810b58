//! The SQLite backend: connection setup, migrations, the group-commit writer and the SQL of
//! every store operation (one file per table, mirroring the facade modules above).
//!
//! One writer thread owns the only write connection and commits whatever is waiting in one
//! transaction (group commit), so durability (`synchronous=FULL`) costs one fsync per batch,
//! not per SET. Reads use a small pool of separate connections (WAL lets them run beside the writer).

pub(super) mod audit;
pub(super) mod inbox;
pub(super) mod ledger;
pub(super) mod outbox;
pub(super) mod poll_acks;
pub(super) mod set;
pub(super) mod stats;
pub(super) mod step_up;
pub(super) mod streams;
pub(super) mod subjects;
pub(super) mod verification;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

pub use writer::WriterStats;

use super::error::StoreError;

/// The schema, with `-- migration N` markers; see [`migrate`].
pub(in crate::store) const SCHEMA: &str = include_str!("../../../schema.sql");

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A unit of work for the writer: runs inside the batch transaction, returns whether it succeeded
/// (on failure its savepoint is rolled back) and what to do once the batch commit is known.
/// Called with `None` when the batch could not even start: the job then only reports the failure.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;

#[derive(Clone)]
pub(super) struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: mpsc::UnboundedSender<Job>,
    readers: Mutex<Vec<Connection>>,
    stats: Arc<WriterStats>,
}
impl SqliteStore {
    /// Opens (creating if needed, mode 0600) and migrates the database, and starts the writer.
    pub(super) fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(super) fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
            }
        }
        if !path.exists() {
            create_private_file(path).map_err(|e| open_err(e.to_string()))?;
        }
        let conn = open_connection(path).map_err(|e| open_err(e.to_string()))?;
        migrate(&conn).map_err(|e| open_err(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(WriterStats::default());
        writer::spawn(conn, rx, stats.clone()).map_err(|e| open_err(e.to_string()))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: tx,
                readers: Mutex::new(Vec::new()),
                stats,
            }),
        })
    }

    pub(super) fn writer_stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    /// Runs `f` inside the writer's next transaction and returns its result once it is committed.
    /// If `f` fails, only its own changes are rolled back; other work in the batch still commits.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => f(conn),
                None => Err(StoreError::Commit("transaction could not start".into())),
            };
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (ok, completion)
        });
        self.inner
            .writer
            .send(job)
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a read-only query on a pooled connection, off the async runtime.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// The blocking form of [`SqliteStore::read`], for code already off the runtime.
    pub(super) fn read_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        let pooled = self
            .inner
            .readers
            .lock()
            .map_err(|_| StoreError::Closed)?
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_connection(&self.inner.path)?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.inner.readers.lock() {
            if pool.len() < 8 {
                pool.push(conn);
            }
        }
        result
    }

    /// True when a trivial write commits (used by `/readyz`).
    pub(super) async fn writable(&self) -> bool {
        self.write(|conn| {
            conn.execute_batch("PRAGMA user_version")?;
            Ok(())
        })
        .await
        .is_ok()
    }
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(|_| ())
}

fn open_connection(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         PRAGMA synchronous=FULL;
         PRAGMA foreign_keys=ON;",
    )?;
    Ok(conn)
}

/// Brings the schema to the newest version: each `-- migration N` block of [`SCHEMA`] with
/// N greater than `PRAGMA user_version` runs in its own transaction.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (version, sql) in migrations() {
        if version <= current {
            continue;
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = conn
            .execute_batch(sql)
            .and_then(|_| conn.execute_batch(&format!("PRAGMA user_version = {version}")));
        match applied {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
    }
    Ok(())
}

fn migrations() -> Vec<(i64, &'static str)> {
    crate::store::split_migrations(SCHEMA)
}

/// Converts a JSON text column.
fn json_col<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    Ok(serde_json::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one() {
        let m = migrations();
        assert_eq!(m.first().map(|m| m.0), Some(1));
        for (i, (v, _)) in m.iter().enumerate() {
            assert_eq!(*v, i as i64 + 1);
        }
    }

    #[tokio::test]
    async fn open_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).unwrap();
        let v: i64 = store
            .read(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(v, migrations().len() as i64);
        drop(store);
        let again = SqliteStore::open(&path).unwrap();
        assert!(again.writable().await);
    }

    #[tokio::test]
    async fn a_failed_job_does_not_spoil_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let mut handles = Vec::new();
        for i in 0..20 {
            let s = store.clone();
            handles.push(tokio::spawn(async move {
                s.write(move |c| {
                    c.execute(
                        "INSERT INTO pending_acks (stream_id, jti) VALUES ('s', ?1)",
                        [format!("j{}", i % 10)],
                    )?;
                    Ok(())
                })
                .await
            }));
        }
        let mut ok = 0;
        for h in handles {
            if h.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 10);
        let n: i64 = store
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM pending_acks", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 10);
    }
}
