//! The action worker: delivers planned outbox rows to their sinks, at least once, with retries.
//!
//! A row is claimed (`running`, attempts + 1) in a write before its sink runs, and its result is
//! written afterwards (results that finish together share one write); a crash in between leaves
//! it `running` (or, if the claim had not been committed yet, `pending`), and the next start puts
//! it back to `pending`, so the attempt is repeated with the same idempotency key. The sink starts
//! as soon as the claim has run in the writer's transaction, without waiting for that
//! transaction's fsync: a lost claim can only cause a repeated attempt, which at-least-once
//! delivery allows, and it keeps one commit off the path from a pushed SET to its sink. (The claim
//! may share a transaction with the SET's own insert; if that commit failed, the SET was never
//! acknowledged, the transmitter delivers it again, and the sink sees the same key again.) Failed
//! attempts back off exponentially with jitter; a row that exhausts its sink's `max_attempts`
//! ends `dead`.

use std::sync::Arc;

use futures_util::FutureExt;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::document::{self, ActionRow};
use super::sinks::{self, Outcome};
use crate::act::sinks::SINK_RETRY_CAP;
use crate::app::App;
use crate::clock::{now_millis, UnixMillis};
use crate::sanitize::log_text;
use crate::store::outbox::{AttemptResult, ClaimedActions};
use crate::store::StoreError;

/// Attempts running at once: enough that one slow sink cannot hold up the others, few enough
/// that a backlog cannot exhaust file descriptors or processes.
pub const MAX_IN_FLIGHT: usize = 64;

/// How often the worker looks for retries that have come due (new actions wake it at once).
const TICK: Duration = Duration::from_millis(100);

/// A claim is made at least this often even when nothing seems due, so that rows changed behind
/// the worker's back (another process on the same database) are not left waiting forever.
const SWEEP: Duration = Duration::from_secs(5);

/// How often a failed result write is retried before the rows are left `running` for the next
/// start.
const RECORD_RETRIES: u32 = 3;

/// Most attempt results written in one store job.
const RECORD_BATCH: usize = 512;

/// Longest detail quoted in a log line; the attempt row keeps the whole (bounded) detail.
const LOG_DETAIL: usize = 512;

/// The delay before the next attempt after `failures` failed attempts (1 = the first failure):
/// `base` doubling per failure, capped at [`SINK_RETRY_CAP`], then shortened by up to a fifth
/// (`jitter` in `0.0..=1.0`) so that actions which failed together do not retry together.
pub fn backoff(base: Duration, failures: i64, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).clamp(0, 32) as u32;
    let cap = SINK_RETRY_CAP.as_millis() as u64;
    let base_ms = (base.as_millis() as u64).max(1);
    let full = base_ms
        .checked_mul(1u64 << doublings)
        .unwrap_or(cap)
        .min(cap);
    let jitter = jitter.clamp(0.0, 1.0);
    Duration::from_millis((full as f64 * (1.0 - 0.2 * jitter)) as u64)
}

/// Runs until `stop` turns true; then waits for running attempts up to `[server] shutdown_grace`.
pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let client = match sinks::http_client(&app.outbound) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "action worker cannot build its HTTP client; no actions will run");
            return;
        }
    };
    recover(&app).await;
    let (results_tx, results_rx) = mpsc::unbounded_channel();
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(record_results(app.clone(), results_rx, retry_tx));
    let mut in_flight: JoinSet<()> = JoinSet::new();
    // When the next pending row comes due, as far as the worker knows; 0 = look now.
    let mut next_due: Option<UnixMillis> = Some(0);
    let mut last_claim = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            break;
        }
        // Finished attempts count against the bound until they are reaped; reap them all, not
        // one per turn of this loop, or the bound throttles the worker to its loop rate.
        while let Some(done) = in_flight.try_join_next() {
            if let Err(e) = done {
                tracing::error!(error = %e, "an action attempt task failed");
            }
        }
        let now = now_millis();
        let room = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
        let due = next_due.is_some_and(|t| t <= now) || last_claim.elapsed() >= SWEEP;
        if due && room > 0 {
            last_claim = Instant::now();
            match claim(&app, room, now).await {
                Some((rows, later)) => {
                    // A full claim means more may be waiting: look again when there is room.
                    next_due = if rows.len() == room { Some(0) } else { later };
                    for row in rows {
                        in_flight.spawn(attempt(
                            app.clone(),
                            client.clone(),
                            row,
                            results_tx.clone(),
                        ));
                    }
                }
                None => next_due = Some(now + 1000),
            }
        }
        tokio::select! {
            _ = app.actions_ready.notified() => next_due = Some(0),
            _ = tick.tick() => {}
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "an action attempt task failed");
                }
            }
            Some(retry_at) = retry_rx.recv() => {
                next_due = Some(next_due.map_or(retry_at, |t| t.min(retry_at)));
            }
            changed = stop.changed() => if changed.is_err() { break },
        }
    }
    let grace = app.config().server.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        // Rows left `running` go back to `pending` on the next start.
        tracing::warn!(
            attempts = in_flight.len(),
            "stopping with action attempts still running; they will be retried on the next start"
        );
        in_flight.abort_all();
        while in_flight.join_next().await.is_some() {}
    }
    // With every attempt ended, the recorder writes what is left and stops.
    drop(results_tx);
    if tokio::time::timeout(grace, recorder).await.is_err() {
        tracing::warn!("stopping before every attempt result was written; those actions will be retried on the next start");
    }
}

/// Puts rows a previous run left `running` (it stopped mid-attempt) back to `pending`, due now.
async fn recover(app: &Arc<App>) {
    match app.store.reset_interrupted_actions(now_millis()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            actions = n,
            "actions interrupted by the last stop are pending again"
        ),
        Err(e) => tracing::error!(error = %e, "could not reset interrupted actions"),
    }
}

/// Claims up to `limit` due rows; also returns when the earliest row left pending comes due.
/// Answers once the claim has run in the writer's transaction; the commit completes on its own
/// (see the module comment). `None` when the claim could not run (the store logged why).
async fn claim(app: &Arc<App>, limit: usize, now: UnixMillis) -> Option<ClaimedActions> {
    app.store.claim_due_actions(now, limit).await.ok()
}

/// The state an attempt leaves its row in.
struct AttemptEnd {
    status: &'static str,
    next_attempt_ms: Option<UnixMillis>,
}

/// One finished attempt, waiting to be written.
struct Finished {
    row: ActionRow,
    result: AttemptResult,
    duration: Duration,
}

impl AsRef<AttemptResult> for Finished {
    fn as_ref(&self) -> &AttemptResult {
        &self.result
    }
}

/// How long an action whose sink is not configured waits before it looks again.
const MISSING_SINK_RECHECK_MS: i64 = 60_000;

/// Sends an action whose sink is not configured back to `pending`, warning once per sink name.
fn park(row: &ActionRow, results: &mpsc::UnboundedSender<Finished>) {
    static WARNED: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let first = match WARNED.lock() {
        Ok(mut w) => w.insert(row.sink.clone()),
        Err(p) => p.into_inner().insert(row.sink.clone()),
    };
    if first {
        tracing::warn!(sink = %log_text(&row.sink),
            "actions wait for a sink that is not in the configuration (removed or renamed?); \
             they stay pending until it returns or an operator drops them");
    }
    let now = now_millis();
    let finished = Finished {
        result: AttemptResult {
            outbox_id: row.id,
            attempt: row.attempt,
            started_ms: now,
            duration_ms: 0,
            ok: false,
            detail: format!(
                "sink {:?} is not in the configuration; waiting for it",
                row.sink
            ),
            status: "pending",
            next_attempt_ms: Some(now + MISSING_SINK_RECHECK_MS),
            parked: true,
        },
        row: row.clone(),
        duration: Duration::ZERO,
    };
    if results.send(finished).is_err() {
        tracing::error!(action_id = row.id, "the attempt recorder has stopped");
    }
}

/// Runs one attempt and hands its result to the recorder. The attempt's slot is free as soon as
/// the sink has answered: waiting for the result's commit here would tie the worker's throughput
/// to the writer's fsync latency.
async fn attempt(
    app: Arc<App>,
    client: crate::outbound::HttpClient,
    row: ActionRow,
    results: mpsc::UnboundedSender<Finished>,
) {
    let config = app.config();
    let started_ms = now_millis();
    let started = Instant::now();
    let sink = config.sinks.iter().find(|s| s.name == row.sink);
    // A sink that is not configured (removed or renamed on a reload) may come back: the action
    // waits, uncounted, and an operator may drop it.
    if sink.is_none() {
        park(&row, &results);
        return;
    }
    // With an unreadable SET no later attempt can do better.
    let run = async {
        match sink {
            None => (Outcome::failed("no sink"), true),
            Some(sink) => match document::build(&row, &config) {
                Ok(doc) => (sinks::run(&client, sink, &row, &doc).await, false),
                Err(e) => (
                    Outcome::failed(format!("cannot build the action document: {e}")),
                    true,
                ),
            },
        }
    };
    // A panic while running an action is recorded as a failed attempt, so the action still
    // retries and ends `dead` rather than staying `running` forever.
    let (outcome, hopeless) = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
        Ok(r) => r,
        Err(_) => (
            Outcome::failed("internal error while running the action".to_string()),
            false,
        ),
    };
    let duration = started.elapsed();
    let finished_ms = now_millis();
    let failures = row.attempt - row.budget_from;
    let end = if outcome.ok {
        AttemptEnd {
            status: "done",
            next_attempt_ms: None,
        }
    } else {
        match sink {
            Some(s) if !hopeless && failures < i64::from(s.max_attempts) => {
                let delay = backoff(s.retry_base, failures, rand::random::<f64>());
                AttemptEnd {
                    status: "pending",
                    next_attempt_ms: Some(finished_ms + delay.as_millis() as i64),
                }
            }
            _ => AttemptEnd {
                status: "dead",
                next_attempt_ms: None,
            },
        }
    };
    let finished = Finished {
        result: AttemptResult {
            outbox_id: row.id,
            attempt: row.attempt,
            started_ms,
            duration_ms: duration.as_millis() as i64,
            ok: outcome.ok,
            detail: outcome.detail,
            status: end.status,
            next_attempt_ms: end.next_attempt_ms,
            parked: false,
        },
        row,
        duration,
    };
    if let Err(mpsc::error::SendError(f)) = results.send(finished) {
        tracing::error!(
            action_id = f.row.id,
            "the attempt recorder has stopped; the action stays running until the next start"
        );
    }
}

/// Writes finished attempts, as many as are waiting in one store job, then logs them and tells
/// the worker when the earliest retry among them is due. Ends when every sender is gone.
async fn record_results(
    app: Arc<App>,
    mut results: mpsc::UnboundedReceiver<Finished>,
    retries: mpsc::UnboundedSender<UnixMillis>,
) {
    while let Some(first) = results.recv().await {
        let mut batch = vec![first];
        while batch.len() < RECORD_BATCH {
            match results.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        let batch = Arc::new(batch);
        match write_results(&app, batch.clone()).await {
            Ok(()) => {
                for f in batch.iter().filter(|f| !f.result.parked) {
                    log_attempt(f);
                    app.metrics
                        .action_result(&f.row.sink, f.result.ok, f.duration.as_secs_f64());
                }
                if let Some(t) = batch.iter().filter_map(|f| f.result.next_attempt_ms).min() {
                    let _ = retries.send(t);
                }
            }
            Err(e) => {
                for f in batch.iter() {
                    tracing::error!(
                        action_id = f.row.id, error = %e,
                        "could not record an action attempt; it stays running until the next start"
                    );
                }
            }
        }
    }
}

async fn write_results(app: &Arc<App>, batch: Arc<Vec<Finished>>) -> Result<(), StoreError> {
    let mut tries = 0;
    loop {
        let written = app.store.record_attempt_results(batch.clone()).await;
        match written {
            Ok(()) => return Ok(()),
            Err(StoreError::Closed) => return Err(StoreError::Closed),
            Err(e) if tries >= RECORD_RETRIES => return Err(e),
            Err(e) => {
                tries += 1;
                tracing::warn!(error = %e, attempts = batch.len(), "retrying the write of attempt results");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn log_attempt(f: &Finished) {
    let (row, end) = (&f.row, &f.result);
    let latency_ms = f.duration.as_secs_f64() * 1000.0;
    let short: String = f.result.detail.chars().take(LOG_DETAIL).collect();
    match end.status {
        "done" => tracing::info!(
            stream = %row.stream_id, jti = %log_text(&row.jti), event_type = %log_text(&row.event_type),
            sink = %row.sink, attempt = row.attempt, ok = true, status = "done", latency_ms,
            detail = %log_text(&short), "action attempt"
        ),
        "pending" => tracing::warn!(
            stream = %row.stream_id, jti = %log_text(&row.jti), event_type = %log_text(&row.event_type),
            sink = %row.sink, attempt = row.attempt, ok = false, status = "pending", latency_ms,
            retry_in_ms = end.next_attempt_ms.map(|t| t - now_millis()).unwrap_or(0),
            error = %log_text(&short), "action attempt"
        ),
        _ => tracing::error!(
            stream = %row.stream_id, jti = %log_text(&row.jti), event_type = %log_text(&row.event_type),
            sink = %row.sink, attempt = row.attempt, ok = false, status = "dead", latency_ms,
            error = %log_text(&short), "action attempt; no more retries"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jitters_downwards() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(1), 1, 0.0), s(1));
        assert_eq!(backoff(s(1), 2, 0.0), s(2));
        assert_eq!(backoff(s(1), 4, 0.0), s(8));
        assert_eq!(backoff(s(1), 9, 0.0), s(256));
        assert_eq!(backoff(s(1), 10, 0.0), SINK_RETRY_CAP);
        assert_eq!(backoff(s(1), 1000, 0.0), SINK_RETRY_CAP);
        assert_eq!(backoff(s(1), 1, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(s(1), 1000, 1.0), s(240));
        assert_eq!(
            backoff(Duration::from_millis(50), 3, 0.0),
            Duration::from_millis(200)
        );
        assert_eq!(backoff(s(1), 0, 0.0), s(1));
    }
}
