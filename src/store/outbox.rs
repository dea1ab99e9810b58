//! The outbox: one row per action a sink must carry out, with its delivery state
//! (`pending`, `running`, `done`, `dead`) and the attempts made (the `attempts` table).
//! Rows are planned by [`Store::store_set`] and [`Store::replay_set`].

use std::sync::Arc;

use super::{Backend, Store, StoreError};
use crate::clock::UnixMillis;

/// An outbox row joined with its inbox row: everything an attempt needs.
#[derive(Debug, Clone)]
pub struct ActionRow {
    pub id: i64,
    pub stream_id: String,
    pub jti: String,
    pub event_type: String,
    pub action: String,
    pub sink: String,
    pub idempotency_key: String,
    /// The number of this attempt, from 1.
    pub attempt: i64,
    /// Attempts made before the last operator retry (the budget counts from there).
    pub budget_from: i64,
    /// `inbox.claims`: the decoded SET payload as received.
    pub claims: String,
    pub received_at_ms: i64,
    pub subject_keys: Vec<String>,
    /// The requirement a STEP_UP action recorded (STEP_UP only).
    pub step_up: Option<crate::step_up::Requirement>,
}

/// Claimed rows, and when the earliest row left pending comes due.
pub type ClaimedActions = (Vec<ActionRow>, Option<UnixMillis>);

/// The result of one finished attempt and the state it leaves its row in.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub outbox_id: i64,
    pub attempt: i64,
    pub started_ms: UnixMillis,
    pub duration_ms: i64,
    pub ok: bool,
    pub detail: String,
    /// `done`, `pending` (a retry is due at `next_attempt_ms`) or `dead`.
    pub status: &'static str,
    pub next_attempt_ms: Option<UnixMillis>,
    /// Not an attempt at all (its sink is not configured now): the action goes back to
    /// `pending` at `next_attempt_ms`, no attempt is recorded and none is counted.
    pub parked: bool,
}

/// One attempt on record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub outbox_id: i64,
    pub attempt: i64,
    pub started_ms: UnixMillis,
    pub duration_ms: i64,
    pub ok: bool,
    pub detail: String,
}

/// An outbox row as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub id: i64,
    pub stream_id: String,
    pub jti: String,
    pub event_type: String,
    pub action: String,
    pub sink: String,
    pub idempotency_key: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: String,
    pub created_at_ms: UnixMillis,
    pub finished_at_ms: Option<UnixMillis>,
}

/// Which actions [`Store::list_actions`] returns; every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub status: Option<String>,
    pub stream_id: Option<String>,
    /// Only rows with an id below this (pagination).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// What [`Store::retry_action`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    NotFound,
    /// The action is neither dead nor pending; its status.
    Refused(String),
    Retried(Box<ActionRecord>),
}

impl Store {
    /// Puts rows a previous run left `running` (it stopped mid-attempt) back to `pending`, due
    /// at `now_ms`. Returns how many.
    pub async fn reset_interrupted_actions(&self, now_ms: UnixMillis) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.reset_interrupted_actions(now_ms).await,
            Backend::Postgres(db) => db.reset_interrupted_actions(now_ms).await,
        }
    }

    /// Claims up to `limit` pending rows due at `now_ms` (`running`, attempts + 1), oldest due
    /// first. Answers as soon as the claim has run in the writer's transaction, without waiting
    /// for its commit: a lost claim can only repeat an attempt. A claim that fails, or whose
    /// commit fails, is logged here; the rows stay pending.
    pub async fn claim_due_actions(
        &self,
        now_ms: UnixMillis,
        limit: usize,
    ) -> Result<ClaimedActions, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.claim_due_actions(now_ms, limit).await,
            Backend::Postgres(db) => db.claim_due_actions(now_ms, limit).await,
        }
    }

    /// Writes finished attempts in one transaction: an `attempts` row each, and the new state of
    /// its outbox row (only if it is still `running`).
    pub async fn record_attempt_results<R>(&self, batch: Arc<Vec<R>>) -> Result<(), StoreError>
    where
        R: AsRef<AttemptResult> + Send + Sync + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.record_attempt_results(batch).await,
            Backend::Postgres(db) => db.record_attempt_results(batch).await,
        }
    }

    /// Actions matching `filter`, newest first, at most `filter.limit`.
    pub async fn list_actions(
        &self,
        filter: ActionFilter,
    ) -> Result<Vec<ActionRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.list_actions(filter).await,
            Backend::Postgres(db) => db.list_actions(filter).await,
        }
    }

    /// Makes a dead or pending action pending again, due at `now_ms`; a dead one gets its sink's
    /// full attempt budget again.
    pub async fn retry_action(
        &self,
        id: i64,
        now_ms: UnixMillis,
    ) -> Result<RetryOutcome, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.retry_action(id, now_ms).await,
            Backend::Postgres(db) => db.retry_action(id, now_ms).await,
        }
    }

    /// Every attempt on record, by action and then attempt number.
    pub async fn list_attempts(&self) -> Result<Vec<AttemptRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.list_attempts().await,
            Backend::Postgres(db) => db.list_attempts().await,
        }
    }
}
