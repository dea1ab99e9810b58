//! The single writer thread: drains waiting jobs into one transaction and commits them together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::{Completion, Job, StoreError};

/// Largest number of jobs in one transaction; bounds the latency a single commit adds.
const MAX_BATCH: usize = 1024;

/// Counters the metrics endpoint reads.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub jobs: AtomicU64,
    pub failed_commits: AtomicU64,
}

pub(super) fn spawn(
    conn: Connection,
    rx: mpsc::UnboundedReceiver<Job>,
    stats: Arc<WriterStats>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ssfd-db-writer".into())
        .spawn(move || run(conn, rx, stats))
        .map(|_| ())
}

fn run(conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>, stats: Arc<WriterStats>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        stats.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            stats.failed_commits.fetch_add(1, Ordering::Relaxed);
            fail_all(batch, &e.to_string());
            continue;
        }
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        for job in batch {
            if let Err(e) = run_cached(&conn, "SAVEPOINT job") {
                // Without a savepoint the job cannot be isolated from the others; refuse it.
                let (_, completion) = job(None);
                let message = e.to_string();
                completions.push(Box::new(move |_| {
                    completion(Err(StoreError::Commit(message)))
                }));
                continue;
            }
            // A panicking job must not take the only writer down with it: its changes are rolled
            // back and its caller sees the writer's answer channel close (an error, never a 202).
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Some(&conn))));
            let (ok, completion) = match ran {
                Ok(r) => r,
                Err(_) => {
                    tracing::error!("a database job panicked; its changes were rolled back");
                    (false, Box::new(|_| {}) as Completion)
                }
            };
            if !ok {
                let _ = run_cached(&conn, "ROLLBACK TO job");
            }
            let _ = run_cached(&conn, "RELEASE job");
            completions.push(completion);
        }
        let committed = match conn.execute_batch("COMMIT") {
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                let _ = conn.execute_batch("ROLLBACK");
                Err(e.to_string())
            }
        };
        for completion in completions {
            completion(committed.clone().map_err(StoreError::Commit));
        }
    }
}

/// Runs a parameterless statement through the statement cache: the savepoint statements run
/// twice per job, and parsing them each time showed in the ingest profile.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn fail_all(batch: Vec<Job>, message: &str) {
    for job in batch {
        let (_, completion) = job(None);
        completion(Err(StoreError::Commit(message.to_string())));
    }
}
