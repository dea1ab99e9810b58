//! SQL of the `verification_requests` table.

use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use crate::clock::UnixSeconds;
use crate::store::error::StoreError;

pub(in crate::store) fn last_requested(
    c: &Connection,
    stream_id: &str,
) -> Result<Option<UnixSeconds>, StoreError> {
    Ok(c.query_row(
        "SELECT MAX(requested_at) FROM verification_requests WHERE stream_id = ?1",
        [stream_id],
        |r| r.get(0),
    )?)
}

pub(in crate::store) fn add(
    c: &Connection,
    stream_id: &str,
    state: &str,
    requested_at: UnixSeconds,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO verification_requests (stream_id, state, requested_at) VALUES (?1, ?2, ?3)",
        params![stream_id, state, requested_at],
    )?;
    Ok(())
}

pub(in crate::store) fn delete(
    c: &Connection,
    stream_id: &str,
    state: &str,
) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM verification_requests WHERE stream_id = ?1 AND state = ?2",
        params![stream_id, state],
    )?;
    Ok(())
}

pub(in crate::store) fn answered(
    c: &Connection,
    stream_id: &str,
    state: &str,
) -> Result<bool, StoreError> {
    let found = c
        .query_row(
            "SELECT answered_at FROM verification_requests WHERE stream_id = ?1 AND state = ?2",
            params![stream_id, state],
            |r| r.get::<_, Option<i64>>(0),
        )
        .optional()?;
    Ok(found.flatten().is_some())
}

impl SqliteStore {
    /// When the stream's latest verification request was made, if ever.
    pub(in crate::store) async fn last_verification_request(
        &self,
        stream_id: &str,
    ) -> Result<Option<UnixSeconds>, StoreError> {
        let id = stream_id.to_string();
        self.read(move |c| last_requested(c, &id)).await
    }

    /// Records a verification request (unanswered).
    pub(in crate::store) async fn add_verification_request(
        &self,
        stream_id: &str,
        state: &str,
        requested_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        let (id, state) = (stream_id.to_string(), state.to_string());
        self.write(move |c| add(c, &id, &state, requested_at)).await
    }

    /// Forgets a verification request (the transmitter refused it).
    pub(in crate::store) async fn delete_verification_request(
        &self,
        stream_id: &str,
        state: &str,
    ) -> Result<(), StoreError> {
        let (id, state) = (stream_id.to_string(), state.to_string());
        self.write(move |c| delete(c, &id, &state)).await
    }

    /// True when the request with this `state` exists and a verification event answered it.
    pub(in crate::store) async fn verification_answered(
        &self,
        stream_id: &str,
        state: &str,
    ) -> Result<bool, StoreError> {
        let (id, state) = (stream_id.to_string(), state.to_string());
        self.read(move |c| answered(c, &id, &state)).await
    }
}
