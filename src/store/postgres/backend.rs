//! The PostgreSQL backend of [`crate::store::Store`]: every facade operation, with the same
//! behaviour as the SQLite backend, on a pool shared by this replica's tasks. Each write is its
//! own transaction, committed before the operation returns.

use std::sync::Arc;

use super::{inbox, ledger, outbox, poll_acks, set_write, streams, verification};
use super::{PgError, PgPool, PgSettings};
use crate::clock::{UnixMillis, UnixSeconds};
use crate::store::audit::AuditEntry;
use crate::store::inbox::{EventFilter, ReplayCandidate, StoredEvent};
use crate::store::ledger::LedgerEntry;
use crate::store::outbox::{
    ActionFilter, ActionRecord, AttemptRecord, AttemptResult, ClaimedActions, RetryOutcome,
};
use crate::store::set::{ReplayWrite, SetStored, SetWrite};
use crate::store::stats::OutboxCounts;
use crate::store::streams::StreamCounts;
use crate::store::{StoreError, WriterStats};
use crate::stream::Stream;

/// How long an outbox claim lasts: longer than any sink's attempt may take, so a live replica
/// never loses a claim mid-attempt; a dead one's claims are retried elsewhere after it.
const CLAIM_LEASE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl From<StoreError> for PgError {
    fn from(e: StoreError) -> Self {
        PgError::Store(Box::new(e))
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Corrupt(m) => StoreError::Corrupt(m),
            PgError::Store(e) => *e,
            other => StoreError::Database(other.to_string()),
        }
    }
}

#[derive(Clone)]
pub(in crate::store) struct PgStore {
    pool: PgPool,
    replica: Arc<super::replica::Replica>,
    replica_id: Arc<str>,
    stats: Arc<WriterStats>,
}

type Result<T> = std::result::Result<T, StoreError>;

impl PgStore {
    pub(in crate::store) async fn open(settings: PgSettings, replica_id: String) -> Result<Self> {
        let pool = PgPool::open(settings).await?;
        Ok(PgStore {
            replica: Arc::new(super::replica::Replica::new(
                replica_id.clone(),
                pool.clone(),
            )),
            pool,
            replica_id: replica_id.into(),
            stats: Arc::new(WriterStats::default()),
        })
    }

    pub(in crate::store) fn replica(&self) -> &super::replica::Replica {
        &self.replica
    }

    pub(in crate::store) fn replica_id(&self) -> &str {
        &self.replica_id
    }

    pub(in crate::store) fn settings(&self) -> &PgSettings {
        self.pool.settings()
    }

    /// PostgreSQL commits each operation itself; the counters stay at zero.
    pub(in crate::store) fn writer_stats(&self) -> &WriterStats {
        &self.stats
    }

    pub(in crate::store) fn target(&self) -> &str {
        self.pool.settings().target()
    }

    pub(in crate::store) async fn writable(&self) -> bool {
        self.pool.reachable().await
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    // Streams.

    pub(in crate::store) async fn load_live_streams(&self) -> Result<Vec<Stream>> {
        Ok(streams::load_live(&**self.client().await?).await?)
    }

    pub(in crate::store) async fn get_stream(&self, id: &str) -> Result<Option<Stream>> {
        Ok(streams::get(&**self.client().await?, id).await?)
    }

    pub(in crate::store) async fn upsert_stream(&self, stream: Stream) -> Result<()> {
        Ok(streams::upsert(&**self.client().await?, &stream).await?)
    }

    pub(in crate::store) async fn record_stream_error(
        &self,
        id: &str,
        at: UnixSeconds,
        message: &str,
        rejected_set: bool,
    ) -> Result<()> {
        let c = self.client().await?;
        Ok(streams::record_error(&**c, id, at, message, rejected_set).await?)
    }

    pub(in crate::store) async fn clear_stream_error_if(
        &self,
        id: &str,
        message: &str,
    ) -> Result<bool> {
        Ok(streams::clear_error_if(&**self.client().await?, id, message).await?)
    }

    pub(in crate::store) async fn stream_counts(&self, id: &str) -> Result<StreamCounts> {
        Ok(streams::counts(&**self.client().await?, id).await?)
    }

    // Inbox, SET writes, replay.

    pub(in crate::store) async fn list_events(
        &self,
        filter: EventFilter,
    ) -> Result<Vec<StoredEvent>> {
        Ok(inbox::list(&**self.client().await?, &filter).await?)
    }

    pub(in crate::store) async fn replay_candidates(
        &self,
        stream_id: &str,
        after_seq: i64,
        since_ms: UnixMillis,
        limit: usize,
    ) -> Result<Vec<ReplayCandidate>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT seq, iss, claims, received_at_ms FROM inbox
                  WHERE stream_id = $1 AND outcome = 'stored' AND seq > $2
                    AND received_at_ms >= $3
                  ORDER BY seq LIMIT $4",
                &[&stream_id, &after_seq, &since_ms, &(limit as i64)],
            )
            .await
            .map_err(PgError::from)?;
        Ok(rows
            .iter()
            .map(|r| ReplayCandidate {
                seq: r.get(0),
                iss: r.get(1),
                claims: r.get(2),
                received_at_ms: r.get(3),
            })
            .collect())
    }

    pub(in crate::store) async fn events_per_hour(
        &self,
        stream_id: &str,
        now_ms: UnixMillis,
        hours: usize,
    ) -> Result<Vec<u64>> {
        const HOUR_MS: i64 = 3_600_000;
        let since_ms = now_ms - hours as i64 * HOUR_MS;
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT (received_at_ms - $2) / 3600000, COUNT(*)
                   FROM inbox
                  WHERE stream_id = $1 AND received_at_ms >= $2 AND received_at_ms <= $3
                  GROUP BY 1",
                &[&stream_id, &since_ms, &now_ms],
            )
            .await
            .map_err(PgError::from)?;
        let mut buckets = vec![0u64; hours];
        for r in rows {
            let (bucket, count): (i64, i64) = (r.get(0), r.get(1));
            // Buckets are [start, start + 1 h); a SET exactly at `now_ms` belongs to the last.
            let slot = (bucket.max(0) as usize).min(hours.saturating_sub(1));
            if let Some(b) = buckets.get_mut(slot) {
                *b += count.max(0) as u64;
            }
        }
        Ok(buckets)
    }

    pub(in crate::store) async fn store_set(
        &self,
        write: SetWrite,
    ) -> Result<(SetStored, SetWrite)> {
        let mut c = self.client().await?;
        let stored = set_write::store_set(&mut c, &write).await?;
        Ok((stored, write))
    }

    pub(in crate::store) async fn replay_set(&self, w: ReplayWrite) -> Result<Option<usize>> {
        let mut c = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut c)
            .await
            .map_err(PgError::from)?;
        // Another replay (on any replica) may have got here first: the row lock decides.
        let updated = tx
            .execute(
                "UPDATE inbox SET outcome = $2, decision = $3 WHERE seq = $1 AND outcome = 'stored'",
                &[&w.seq, &w.outcome, &w.decision],
            )
            .await
            .map_err(PgError::from)?;
        if updated == 0 {
            return Ok(None);
        }
        set_write::record_decisions(
            &tx,
            w.seq,
            &w.stream_id,
            &w.jti,
            w.txn.as_deref(),
            &w.subject,
            &w.subject_keys,
            &w.decisions,
            w.now_ms,
        )
        .await?;
        // The ledger tells applications when the SET arrived, not when it was replayed.
        tx.execute(
            "UPDATE ledger SET received_at_ms = $3 WHERE stream_id = $1 AND jti = $2",
            &[&w.stream_id, &w.jti, &w.received_at_ms],
        )
        .await
        .map_err(PgError::from)?;
        let planned: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM outbox WHERE inbox_seq = $1",
                &[&w.seq],
            )
            .await
            .map_err(PgError::from)?
            .get(0);
        tx.commit().await.map_err(PgError::from)?;
        Ok(Some(planned as usize))
    }

    // Ledger, audit, verification, poll acks, stats.

    pub(in crate::store) async fn check_subjects(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<LedgerEntry>> {
        Ok(ledger::entries_for(&**self.client().await?, &keys).await?)
    }

    pub(in crate::store) async fn lift_revocations(
        &self,
        keys: Vec<String>,
        reason: String,
        at_ms: UnixMillis,
    ) -> Result<usize> {
        Ok(ledger::lift(&**self.client().await?, &keys, &reason, at_ms).await?)
    }

    pub(in crate::store) async fn audit_entries(&self, stream_id: &str) -> Result<Vec<AuditEntry>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT at_ms, stream_id, jti, event_type, subject, action, detail
                   FROM audit WHERE stream_id = $1 ORDER BY id",
                &[&stream_id],
            )
            .await
            .map_err(PgError::from)?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                at_ms: r.get(0),
                stream_id: r.get(1),
                jti: r.get(2),
                event_type: r.get(3),
                subject: r.get(4),
                action: r.get(5),
                detail: r.get(6),
            })
            .collect())
    }

    pub(in crate::store) async fn last_verification_request(
        &self,
        stream_id: &str,
    ) -> Result<Option<UnixSeconds>> {
        Ok(verification::last_requested(&**self.client().await?, stream_id).await?)
    }

    pub(in crate::store) async fn add_verification_request(
        &self,
        stream_id: &str,
        state: &str,
        now: UnixSeconds,
    ) -> Result<()> {
        Ok(verification::request(&**self.client().await?, stream_id, state, now).await?)
    }

    pub(in crate::store) async fn delete_verification_request(
        &self,
        stream_id: &str,
        state: &str,
    ) -> Result<()> {
        Ok(verification::withdraw(&**self.client().await?, stream_id, state).await?)
    }

    pub(in crate::store) async fn verification_answered(
        &self,
        stream_id: &str,
        state: &str,
    ) -> Result<bool> {
        let c = self.client().await?;
        Ok(matches!(
            verification::answered_at(&**c, stream_id, state).await?,
            Some(Some(_))
        ))
    }

    pub(in crate::store) async fn pending_acks(&self, stream_id: &str) -> Result<Vec<String>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT jti FROM pending_acks WHERE stream_id = $1 ORDER BY seq",
                &[&stream_id],
            )
            .await
            .map_err(PgError::from)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(in crate::store) async fn delete_pending_acks(
        &self,
        stream_id: &str,
        jtis: Vec<String>,
    ) -> Result<()> {
        Ok(poll_acks::delete(&**self.client().await?, stream_id, &jtis).await?)
    }

    pub(in crate::store) async fn outbox_counts(&self) -> Result<OutboxCounts> {
        Ok(outbox::counts(&**self.client().await?).await?)
    }

    // Outbox.

    pub(in crate::store) async fn reset_interrupted_actions(
        &self,
        now_ms: UnixMillis,
    ) -> Result<usize> {
        let c = self.client().await?;
        Ok(outbox::recover(&**c, &self.replica_id, now_ms).await? as usize)
    }

    pub(in crate::store) async fn claim_due_actions(
        &self,
        now_ms: UnixMillis,
        limit: usize,
    ) -> Result<ClaimedActions> {
        let c = self.client().await?;
        Ok(outbox::claim_due(&**c, &self.replica_id, limit, now_ms, CLAIM_LEASE).await?)
    }

    pub(in crate::store) async fn record_attempt_results<R>(&self, batch: Arc<Vec<R>>) -> Result<()>
    where
        R: AsRef<AttemptResult> + Send + Sync + 'static,
    {
        let mut c = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut c)
            .await
            .map_err(PgError::from)?;
        let results: Vec<&AttemptResult> = batch.iter().map(|r| r.as_ref()).collect();
        outbox::record_attempts(&tx, &self.replica_id, &results, crate::clock::now_millis())
            .await?;
        tx.commit().await.map_err(PgError::from)?;
        Ok(())
    }

    pub(in crate::store) async fn list_actions(
        &self,
        f: ActionFilter,
    ) -> Result<Vec<ActionRecord>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {ACTION_COLUMNS} FROM outbox
                      WHERE ($1::TEXT IS NULL OR status = $1)
                        AND ($2::TEXT IS NULL OR stream_id = $2)
                        AND ($3::BIGINT IS NULL OR id < $3)
                      ORDER BY id DESC LIMIT $4"
                ),
                &[&f.status, &f.stream_id, &f.before_id, &(f.limit as i64)],
            )
            .await
            .map_err(PgError::from)?;
        Ok(rows.iter().map(action_record).collect())
    }

    pub(in crate::store) async fn retry_action(
        &self,
        id: i64,
        now_ms: UnixMillis,
    ) -> Result<RetryOutcome> {
        let mut c = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut c)
            .await
            .map_err(PgError::from)?;
        let status: Option<String> = tx
            .query_opt("SELECT status FROM outbox WHERE id = $1 FOR UPDATE", &[&id])
            .await
            .map_err(PgError::from)?
            .map(|r| r.get(0));
        match status.as_deref() {
            None => return Ok(RetryOutcome::NotFound),
            Some("dead") | Some("pending") => {}
            Some(other) => return Ok(RetryOutcome::Refused(other.to_string())),
        }
        let row = tx
            .query_one(
                &format!(
                    "UPDATE outbox
                        SET budget_from = CASE WHEN status = 'dead' THEN attempts ELSE budget_from END,
                            status = 'pending', next_attempt_ms = $2, finished_at_ms = NULL
                      WHERE id = $1 RETURNING {ACTION_COLUMNS}"
                ),
                &[&id, &now_ms],
            )
            .await
            .map_err(PgError::from)?;
        tx.commit().await.map_err(PgError::from)?;
        Ok(RetryOutcome::Retried(Box::new(action_record(&row))))
    }

    pub(in crate::store) async fn list_attempts(&self) -> Result<Vec<AttemptRecord>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT outbox_id, attempt, started_at_ms, duration_ms, ok, detail
                   FROM attempts ORDER BY outbox_id, attempt, id",
                &[],
            )
            .await
            .map_err(PgError::from)?;
        Ok(rows
            .iter()
            .map(|r| AttemptRecord {
                outbox_id: r.get(0),
                attempt: r.get(1),
                started_ms: r.get(2),
                duration_ms: r.get(3),
                ok: r.get(4),
                detail: r.get(5),
            })
            .collect())
    }
}

const ACTION_COLUMNS: &str = "id, stream_id, jti, event_type, action, sink, idempotency_key, \
     status, attempts, last_error, created_at_ms, finished_at_ms";

fn action_record(r: &tokio_postgres::Row) -> ActionRecord {
    ActionRecord {
        id: r.get(0),
        stream_id: r.get(1),
        jti: r.get(2),
        event_type: r.get(3),
        action: r.get(4),
        sink: r.get(5),
        idempotency_key: r.get(6),
        status: r.get(7),
        attempts: r.get(8),
        last_error: r.get(9),
        created_at_ms: r.get(10),
        finished_at_ms: r.get(11),
    }
}
