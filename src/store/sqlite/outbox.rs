//! SQL of the `outbox` and `attempts` tables.

use std::sync::Arc;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use tokio::sync::oneshot;

use super::{json_col, SqliteStore};
use crate::clock::UnixMillis;
use crate::store::error::StoreError;
use crate::store::outbox::{
    ActionFilter, ActionRecord, ActionRow, AttemptRecord, AttemptResult, ClaimedActions,
    RetryOutcome,
};

const COLUMNS: &str = "id, stream_id, jti, event_type, action, sink, idempotency_key, status,
    attempts, last_error, created_at_ms, finished_at_ms";

pub(in crate::store) fn reset_running(
    c: &Connection,
    now: UnixMillis,
) -> Result<usize, StoreError> {
    Ok(c.execute(
        "UPDATE outbox SET status = 'pending', next_attempt_ms = ?1 WHERE status = 'running'",
        [now],
    )?)
}

pub(in crate::store) fn claim(
    c: &Connection,
    limit: usize,
    now: UnixMillis,
) -> Result<ClaimedActions, StoreError> {
    let mut rows = Vec::new();
    {
        let mut stmt = c.prepare_cached(
            "SELECT o.id, o.stream_id, o.jti, o.event_type, o.action, o.sink, o.idempotency_key,
                    o.attempts, o.budget_from, i.claims, i.received_at_ms, i.subject_keys
               FROM outbox o JOIN inbox i ON i.seq = o.inbox_seq
              WHERE o.status = 'pending' AND o.next_attempt_ms <= ?1
              ORDER BY o.next_attempt_ms, o.id
              LIMIT ?2",
        )?;
        let mut q = stmt.query(params![now, limit as i64])?;
        while let Some(r) = q.next()? {
            let keys: String = r.get(11)?;
            rows.push(ActionRow {
                id: r.get(0)?,
                stream_id: r.get(1)?,
                jti: r.get(2)?,
                event_type: r.get(3)?,
                action: r.get(4)?,
                sink: r.get(5)?,
                idempotency_key: r.get(6)?,
                attempt: r.get::<_, i64>(7)? + 1,
                budget_from: r.get(8)?,
                claims: r.get(9)?,
                received_at_ms: r.get(10)?,
                subject_keys: json_col(&keys)?,
                step_up: None,
            });
        }
    }
    for row in rows.iter_mut().filter(|r| r.action == "STEP_UP") {
        row.step_up = super::step_up::requirement_of(c, &row.stream_id, &row.jti, &row.event_type)?;
    }
    let mut mark = c.prepare_cached(
        "UPDATE outbox SET status = 'running', attempts = attempts + 1 WHERE id = ?1",
    )?;
    for row in &rows {
        mark.execute([row.id])?;
    }
    let later: Option<UnixMillis> = c
        .prepare_cached("SELECT MIN(next_attempt_ms) FROM outbox WHERE status = 'pending'")?
        .query_row([], |r| r.get(0))?;
    Ok((rows, later))
}

pub(in crate::store) fn record_attempts<'a>(
    c: &Connection,
    batch: impl Iterator<Item = &'a AttemptResult>,
) -> Result<(), StoreError> {
    let now = crate::clock::now_millis();
    let mut insert = c.prepare_cached(
        "INSERT INTO attempts (outbox_id, attempt, started_at_ms, duration_ms, ok, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut update = c.prepare_cached(
        "UPDATE outbox SET status = ?2, next_attempt_ms = COALESCE(?3, next_attempt_ms),
                finished_at_ms = ?4, last_error = ?5
          WHERE id = ?1 AND status = 'running'",
    )?;
    let mut park = c.prepare_cached(
        "UPDATE outbox SET status = 'pending', next_attempt_ms = ?2, last_error = ?3,
                attempts = MAX(attempts - 1, 0)
          WHERE id = ?1 AND status = 'running'",
    )?;
    for f in batch {
        if f.parked {
            park.execute(params![f.outbox_id, f.next_attempt_ms, f.detail])?;
            continue;
        }
        insert.execute(params![
            f.outbox_id,
            f.attempt,
            f.started_ms,
            f.duration_ms,
            f.ok,
            f.detail
        ])?;
        update.execute(params![
            f.outbox_id,
            f.status,
            f.next_attempt_ms,
            (f.status != "pending").then_some(now),
            if f.ok { "" } else { f.detail.as_str() }
        ])?;
    }
    Ok(())
}

fn record_of(r: &Row<'_>) -> Result<ActionRecord, rusqlite::Error> {
    Ok(ActionRecord {
        id: r.get(0)?,
        stream_id: r.get(1)?,
        jti: r.get(2)?,
        event_type: r.get(3)?,
        action: r.get(4)?,
        sink: r.get(5)?,
        idempotency_key: r.get(6)?,
        status: r.get(7)?,
        attempts: r.get(8)?,
        last_error: r.get(9)?,
        created_at_ms: r.get(10)?,
        finished_at_ms: r.get(11)?,
    })
}

fn get(c: &Connection, id: i64) -> Result<Option<ActionRecord>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"),
        [id],
        record_of,
    )
    .optional()?)
}

pub(in crate::store) fn list(
    c: &Connection,
    f: ActionFilter,
) -> Result<Vec<ActionRecord>, StoreError> {
    // Only the filters given go into the query, so SQLite can pick the matching index.
    let mut cond = Vec::new();
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(s) = f.status {
        cond.push("status = ?");
        args.push(s.into());
    }
    if let Some(s) = f.stream_id {
        cond.push("stream_id = ?");
        args.push(s.into());
    }
    if let Some(b) = f.before_id {
        cond.push("id < ?");
        args.push(b.into());
    }
    let filter = if cond.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", cond.join(" AND "))
    };
    args.push((f.limit as i64).into());
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM outbox {filter} ORDER BY id DESC LIMIT ?"
    ))?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(record_of(r)?);
    }
    Ok(out)
}

pub(in crate::store) fn retry(
    c: &Connection,
    id: i64,
    now: UnixMillis,
) -> Result<RetryOutcome, StoreError> {
    let status: Option<String> = c
        .query_row("SELECT status FROM outbox WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    match status.as_deref() {
        None => return Ok(RetryOutcome::NotFound),
        Some("dead") | Some("pending") => {}
        Some(other) => return Ok(RetryOutcome::Refused(other.to_string())),
    }
    c.execute(
        "UPDATE outbox
            SET budget_from = CASE WHEN status = 'dead' THEN attempts ELSE budget_from END,
                status = 'pending', next_attempt_ms = ?2, finished_at_ms = NULL
          WHERE id = ?1",
        params![id, now],
    )?;
    match get(c, id)? {
        Some(a) => Ok(RetryOutcome::Retried(Box::new(a))),
        None => Ok(RetryOutcome::NotFound),
    }
}

impl SqliteStore {
    /// Puts rows a previous run left `running` (it stopped mid-attempt) back to `pending`, due
    /// at `now_ms`. Returns how many.
    pub(in crate::store) async fn reset_interrupted_actions(
        &self,
        now_ms: UnixMillis,
    ) -> Result<usize, StoreError> {
        self.write(move |c| reset_running(c, now_ms)).await
    }

    /// Claims up to `limit` pending rows due at `now_ms` (`running`, attempts + 1), oldest due
    /// first. Answers as soon as the claim has run in the writer's transaction, without waiting
    /// for its commit: a lost claim can only repeat an attempt. A claim that fails, or whose
    /// commit fails, is logged here; the rows stay pending.
    pub(in crate::store) async fn claim_due_actions(
        &self,
        now_ms: UnixMillis,
        limit: usize,
    ) -> Result<ClaimedActions, StoreError> {
        let (early_tx, early_rx) = oneshot::channel::<ClaimedActions>();
        let db = self.clone();
        tokio::spawn(async move {
            let written = db
                .write(move |c| {
                    let claimed = claim(c, limit, now_ms)?;
                    let _ = early_tx.send(claimed);
                    Ok(())
                })
                .await;
            if let Err(e) = written {
                tracing::error!(error = %e, "claiming actions failed; they stay pending and will be attempted again");
            }
        });
        early_rx.await.map_err(|_| StoreError::Closed)
    }

    /// Writes finished attempts in one transaction: an `attempts` row each, and the new state of
    /// its outbox row (only if it is still `running`).
    pub(in crate::store) async fn record_attempt_results<R>(
        &self,
        batch: Arc<Vec<R>>,
    ) -> Result<(), StoreError>
    where
        R: AsRef<AttemptResult> + Send + Sync + 'static,
    {
        self.write(move |c| record_attempts(c, batch.iter().map(|r| r.as_ref())))
            .await
    }

    /// Actions matching `filter`, newest first, at most `filter.limit`.
    pub(in crate::store) async fn list_actions(
        &self,
        filter: ActionFilter,
    ) -> Result<Vec<ActionRecord>, StoreError> {
        self.read(move |c| list(c, filter)).await
    }

    /// Makes a dead or pending action pending again, due at `now_ms`; a dead one gets its sink's
    /// full attempt budget again.
    pub(in crate::store) async fn retry_action(
        &self,
        id: i64,
        now_ms: UnixMillis,
    ) -> Result<RetryOutcome, StoreError> {
        self.write(move |c| retry(c, id, now_ms)).await
    }

    pub(in crate::store) async fn list_attempts(&self) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read(attempts).await
    }
}

fn attempts(c: &Connection) -> Result<Vec<AttemptRecord>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT outbox_id, attempt, started_at_ms, duration_ms, ok, detail
           FROM attempts ORDER BY outbox_id, attempt, id",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(AttemptRecord {
            outbox_id: r.get(0)?,
            attempt: r.get(1)?,
            started_ms: r.get(2)?,
            duration_ms: r.get(3)?,
            ok: r.get(4)?,
            detail: r.get(5)?,
        });
    }
    Ok(out)
}
