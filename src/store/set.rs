//! The write transaction of one SET, described by a plain [`SetWrite`] (what to write) and
//! carried out by [`Store::store_set`] (how): the duplicate check, the control-event bookkeeping,
//! the inbox row, the ledger, audit and outbox rows of its decisions, and the pending poll ack.
//! [`Store::replay_set`] writes decisions planned later for a SET already stored.

use super::inbox::NewInboxRow;
use super::step_up::StepUpWrite;
use super::{Backend, Store, StoreError};
use crate::clock::UnixMillis;

/// Everything one SET's transaction writes.
#[derive(Debug, Clone)]
pub struct SetWrite {
    /// The inbox row; its `received_at_ms` also stamps every other row written.
    pub inbox: NewInboxRow,
    /// Stream bookkeeping for an SSF control event.
    pub control: Option<ControlWrite>,
    /// The subject as received (JSON text; empty without one), quoted in the audit rows.
    pub subject: String,
    pub decisions: Vec<DecisionWrite>,
    /// A polled SET: record its acknowledgement as pending (duplicates included), so that a SET
    /// committed just before a crash is still acknowledged after the restart.
    pub pending_ack: bool,
}

/// What a control event changes on its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlWrite {
    /// A verification event: sets the stream's `last_verified_at`. With a `state`, it must answer
    /// an unanswered verification request of the stream (else [`SetStored::BadState`]).
    Verification { state: Option<String> },
    /// The transmitter's stream status changed.
    StreamUpdated { status: String, reason: String },
}

/// One decision about one event of the SET: an audit row, ledger rows when it revokes, a step-up
/// requirement when it steps up, and an outbox row per sink.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionWrite {
    pub event_type: String,
    /// The action's short name (`REVOKE_ALL`, `LOG_ONLY`, `STEP_UP`).
    pub action: &'static str,
    pub reason: String,
    /// For a revocation: sessions issued before this time (Unix seconds) are revoked, and every
    /// subject key of the inbox row gets a ledger entry.
    pub revoked_before: Option<i64>,
    /// The key every attempt of this decision's actions carries.
    pub idempotency_key: String,
    /// Sinks that must run (one outbox row each).
    pub sinks: Vec<String>,
    /// For a STEP_UP: the requirement recorded on every subject key of the inbox row.
    pub step_up: Option<StepUpWrite>,
}

/// What [`Store::store_set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetStored {
    New,
    /// Already stored for this stream: nothing changed (but a pending ack was recorded).
    Duplicate,
    /// A verification event whose state answers no open request: nothing was written.
    BadState,
}

/// Decisions planned for a stored SET that had none (see [`Store::replay_set`]).
#[derive(Debug, Clone)]
pub struct ReplayWrite {
    pub seq: i64,
    pub stream_id: String,
    pub jti: String,
    pub txn: Option<String>,
    /// The new `inbox.outcome` and `inbox.decision`.
    pub outcome: &'static str,
    pub decision: String,
    pub subject: String,
    pub subject_keys: Vec<String>,
    /// When the SET arrived: the ledger entries carry this, not the replay time.
    pub received_at_ms: UnixMillis,
    pub decisions: Vec<DecisionWrite>,
    /// Stamps the audit and outbox rows.
    pub now_ms: UnixMillis,
}

impl Store {
    /// Writes one SET in one transaction, once it is committed. The description comes back
    /// with the outcome, so the caller can report on it without copying it first.
    pub async fn store_set(&self, write: SetWrite) -> Result<(SetStored, SetWrite), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.store_set(write).await,
            Backend::Postgres(db) => db.store_set(write).await,
        }
    }

    /// Records decisions for a stored SET that is still without any (`outcome = 'stored'`).
    /// Returns the number of outbox rows the SET now has, or `None` when another replay got
    /// there first (nothing written).
    pub async fn replay_set(&self, write: ReplayWrite) -> Result<Option<usize>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.replay_set(write).await,
            Backend::Postgres(db) => db.replay_set(write).await,
        }
    }
}
