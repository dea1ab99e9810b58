//! Inbox: every verified SET, once per (stream, jti), with the decision taken for it.

use serde::Serialize;

use super::{Backend, Store, StoreError};
use crate::clock::UnixMillis;

/// A verified SET about to be stored.
#[derive(Debug, Clone)]
pub struct NewInboxRow {
    pub stream_id: String,
    pub jti: String,
    pub iss: String,
    pub txn: Option<String>,
    pub event_types: Vec<String>,
    pub subject_keys: Vec<String>,
    pub raw_token: String,
    pub claims: String,
    pub received_at_ms: UnixMillis,
    pub delivery: &'static str,
    pub outcome: String,
    pub decision: String,
    /// Tolerance kinds applied to accept this SET (docs/push.md#tolerances).
    pub tolerances: Vec<String>,
}

/// A stored SET as the operator sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub seq: i64,
    pub stream_id: String,
    pub jti: String,
    pub iss: String,
    pub txn: Option<String>,
    pub event_types: Vec<String>,
    pub subject_keys: Vec<String>,
    pub received_at_ms: i64,
    pub delivery: String,
    pub outcome: String,
    pub decision: String,
    pub tolerances: Vec<String>,
}

/// Filters for listing stored events, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub stream_id: Option<String>,
    pub since_ms: Option<i64>,
    /// Only rows with a sequence number below this (pagination).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

/// A stored SET that planned no action, as replay reads it back.
#[derive(Debug, Clone)]
pub struct ReplayCandidate {
    pub seq: i64,
    pub iss: String,
    /// The decoded SET payload as received.
    pub claims: String,
    pub received_at_ms: UnixMillis,
}

impl Store {
    /// Stored events matching `filter`, newest first (at most `filter.limit`, at least one).
    pub async fn list_events(&self, filter: EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.list_events(filter).await,
            Backend::Postgres(db) => db.list_events(filter).await,
        }
    }

    /// Up to `limit` stored SETs of `stream_id` that planned no action (`outcome = 'stored'`),
    /// with a sequence number above `after_seq` and received at or after `since_ms`, oldest first.
    pub async fn replay_candidates(
        &self,
        stream_id: &str,
        after_seq: i64,
        since_ms: UnixMillis,
        limit: usize,
    ) -> Result<Vec<ReplayCandidate>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.replay_candidates(stream_id, after_seq, since_ms, limit)
                    .await
            }
            Backend::Postgres(db) => {
                db.replay_candidates(stream_id, after_seq, since_ms, limit)
                    .await
            }
        }
    }
    /// SETs `stream_id` received in each of the `hours` whole hours up to `now_ms`, oldest
    /// first: the last bucket is the hour ending at `now_ms`. Counts SETs of every outcome.
    pub async fn events_per_hour(
        &self,
        stream_id: &str,
        now_ms: UnixMillis,
        hours: usize,
    ) -> Result<Vec<u64>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.events_per_hour(stream_id, now_ms, hours).await,
            Backend::Postgres(db) => db.events_per_hour(stream_id, now_ms, hours).await,
        }
    }
}
