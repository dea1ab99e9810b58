//! SQL of the `streams` table: mapping between its rows and [`Stream`], and the stream statistics.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::json;

use super::{json_col, SqliteStore};
use crate::clock::UnixSeconds;
use crate::store::error::StoreError;
use crate::store::streams::StreamCounts;
use crate::stream::{CompatibilityProfile, DeliveryMethod, OutboundAuth, RevocationAction, Stream};

pub(in crate::store) const COLUMNS: &str =
    "id, display_name, description, issuer_url, jwks_url, expected_audience,
    delivery_method, poll_endpoint_url, poll_interval_secs, outbound_auth, enabled,
    event_types_enabled, session_revoked_action, credential_change_action,
    credential_compromise_action, account_disabled_action, created_at, updated_at, deleted_at,
    last_error_at, last_error_message, last_verified_at, transmitter_stream_id, transmitter_status,
    transmitter_status_reason, push_token_hash, prev_push_token_hash, prev_push_token_expires_at,
    events_delivered, step_up_provider_id, compatibility_profile, metadata_url";

pub(in crate::store) fn action_from_db(s: &str) -> Result<RevocationAction, StoreError> {
    RevocationAction::from_api(s).ok_or_else(|| StoreError::Corrupt(format!("action {s:?}")))
}

pub(in crate::store) fn hash_from_db(v: Option<Vec<u8>>) -> Result<Option<[u8; 32]>, StoreError> {
    match v {
        None => Ok(None),
        Some(bytes) => bytes
            .try_into()
            .map(Some)
            .map_err(|_| StoreError::Corrupt("token hash length".into())),
    }
}

pub(in crate::store) fn outbound_to_db(auth: &Option<OutboundAuth>) -> Option<String> {
    auth.as_ref().map(|a| match a {
        OutboundAuth::Bearer { token } => json!({"bearer": {"token": token}}).to_string(),
        OutboundAuth::Oauth2 {
            client_id,
            client_secret,
            scopes,
            token_url,
        } => json!({"oauth2": {"clientId": client_id, "clientSecret": client_secret,
                               "scopes": scopes, "tokenUrl": token_url}})
        .to_string(),
    })
}

pub(in crate::store) fn outbound_from_db(
    text: Option<String>,
) -> Result<Option<OutboundAuth>, StoreError> {
    let Some(text) = text else { return Ok(None) };
    let v: serde_json::Value = json_col(&text)?;
    let s = |p: &str| {
        v.pointer(p)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string()
    };
    if v.get("bearer").is_some() {
        return Ok(Some(OutboundAuth::Bearer {
            token: s("/bearer/token"),
        }));
    }
    if v.get("oauth2").is_some() {
        let scopes = v
            .pointer("/oauth2/scopes")
            .and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        return Ok(Some(OutboundAuth::Oauth2 {
            client_id: s("/oauth2/clientId"),
            client_secret: s("/oauth2/clientSecret"),
            scopes,
            token_url: s("/oauth2/tokenUrl"),
        }));
    }
    Err(StoreError::Corrupt("outbound_auth".into()))
}

fn from_row(row: &Row<'_>) -> Result<Stream, StoreError> {
    let delivery: String = row.get(6)?;
    let events: String = row.get(11)?;
    Ok(Stream {
        id: row.get(0)?,
        display_name: row.get(1)?,
        description: row.get(2)?,
        issuer_url: row.get(3)?,
        jwks_url: row.get(4)?,
        expected_audience: row.get(5)?,
        delivery_method: if delivery == "poll" {
            DeliveryMethod::Poll
        } else {
            DeliveryMethod::Push
        },
        poll_endpoint_url: row.get(7)?,
        poll_interval: row
            .get::<_, Option<i64>>(8)?
            .map(|s| Duration::from_secs(s.max(0) as u64)),
        outbound_auth: outbound_from_db(row.get(9)?)?,
        enabled: row.get(10)?,
        event_types_enabled: json_col(&events)?,
        session_revoked_action: action_from_db(&row.get::<_, String>(12)?)?,
        credential_change_action: action_from_db(&row.get::<_, String>(13)?)?,
        credential_compromise_action: action_from_db(&row.get::<_, String>(14)?)?,
        account_disabled_action: action_from_db(&row.get::<_, String>(15)?)?,
        created_at: row.get(16)?,
        updated_at: row.get(17)?,
        deleted_at: row.get(18)?,
        last_error_at: row.get(19)?,
        last_error_message: row.get(20)?,
        last_verified_at: row.get(21)?,
        transmitter_stream_id: row.get(22)?,
        transmitter_status: row.get(23)?,
        transmitter_status_reason: row.get(24)?,
        push_token_hash: hash_from_db(row.get(25)?)?,
        prev_push_token_hash: hash_from_db(row.get(26)?)?,
        prev_push_token_expires_at: row.get(27)?,
        events_delivered: json_col(&row.get::<_, String>(28)?)?,
        step_up_provider_id: row.get(29)?,
        compatibility_profile: {
            let p: String = row.get(30)?;
            CompatibilityProfile::from_api(&p)
                .ok_or_else(|| StoreError::Corrupt(format!("compatibility profile {p:?}")))?
        },
        metadata_url: row.get(31)?,
    })
}

/// Writes the whole record (insert or replace by id).
pub(in crate::store) fn upsert(conn: &Connection, s: &Stream) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "INSERT INTO streams ({COLUMNS}) VALUES
             (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32)
             ON CONFLICT (id) DO UPDATE SET {}",
            // Every column but the counters ssfd keeps on its own (rejected_count).
            COLUMNS
                .split(',')
                .map(str::trim)
                .filter(|c| *c != "id")
                .map(|c| format!("{c} = excluded.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        params![
            s.id,
            s.display_name,
            s.description,
            s.issuer_url,
            s.jwks_url,
            s.expected_audience,
            if s.is_push() { "push" } else { "poll" },
            s.poll_endpoint_url,
            s.poll_interval.map(|d| d.as_secs() as i64),
            outbound_to_db(&s.outbound_auth),
            s.enabled,
            serde_json::to_string(&s.event_types_enabled)?,
            s.session_revoked_action.as_api(),
            s.credential_change_action.as_api(),
            s.credential_compromise_action.as_api(),
            s.account_disabled_action.as_api(),
            s.created_at,
            s.updated_at,
            s.deleted_at,
            s.last_error_at,
            s.last_error_message,
            s.last_verified_at,
            s.transmitter_stream_id,
            s.transmitter_status,
            s.transmitter_status_reason,
            s.push_token_hash.map(|h| h.to_vec()),
            s.prev_push_token_hash.map(|h| h.to_vec()),
            s.prev_push_token_expires_at,
            serde_json::to_string(&s.events_delivered)?,
            s.step_up_provider_id,
            s.compatibility_profile.as_api(),
            s.metadata_url,
        ],
    )?;
    Ok(())
}

/// Every stream that is not deleted, oldest first.
pub(in crate::store) fn load_live(conn: &Connection) -> Result<Vec<Stream>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM streams WHERE deleted_at IS NULL ORDER BY created_at, id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

pub(in crate::store) fn get(conn: &Connection, id: &str) -> Result<Option<Stream>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM streams WHERE id = ?1"))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(row) => Ok(Some(from_row(row)?)),
        None => Ok(None),
    }
}

/// Records a rejected SET or an operational error on the stream.
pub(in crate::store) fn record_error(
    conn: &Connection,
    id: &str,
    at: UnixSeconds,
    message: &str,
    rejected_set: bool,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE streams SET last_error_at = ?2, last_error_message = ?3,
                rejected_count = rejected_count + ?4 WHERE id = ?1",
        params![id, at, message, rejected_set as i64],
    )?;
    Ok(())
}

/// Clears `last_error_*` when they still hold `message`: a problem that went away must not erase
/// a newer, different one. Returns whether it cleared.
pub(in crate::store) fn clear_error_if(
    conn: &Connection,
    id: &str,
    message: &str,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE streams SET last_error_at = NULL, last_error_message = ''
          WHERE id = ?1 AND last_error_message = ?2",
        params![id, message],
    )?;
    Ok(n > 0)
}

pub(in crate::store) fn counts(conn: &Connection, id: &str) -> Result<StreamCounts, StoreError> {
    let (received, last): (i64, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), MAX(received_at_ms) FROM inbox WHERE stream_id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let rejected: i64 = conn
        .query_row(
            "SELECT rejected_count FROM streams WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    // A SET is "acted on" when it called for REVOKE_ALL or STEP_UP and every sink finished it.
    let acted_on: i64 = conn.query_row(
        "SELECT COUNT(*) FROM inbox i
          WHERE i.stream_id = ?1 AND i.outcome IN ('revoke', 'step_up')
            AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.inbox_seq = i.seq AND o.status <> 'done')",
        [id],
        |r| r.get(0),
    )?;
    let dead: i64 = conn.query_row(
        "SELECT COUNT(*) FROM outbox WHERE stream_id = ?1 AND status = 'dead'",
        [id],
        |r| r.get(0),
    )?;
    let step_up: i64 = conn.query_row(
        "SELECT COUNT(*) FROM step_up_requirements WHERE stream_id = ?1",
        [id],
        |r| r.get(0),
    )?;
    Ok(StreamCounts {
        step_up,
        received,
        acted_on,
        failed: rejected + dead,
        last_received_at_ms: last,
    })
}

impl SqliteStore {
    /// Every stream that is not deleted, oldest first.
    pub(in crate::store) async fn load_live_streams(&self) -> Result<Vec<Stream>, StoreError> {
        self.read(load_live).await
    }

    /// One stream by id, deleted or not.
    pub(in crate::store) async fn get_stream(
        &self,
        id: &str,
    ) -> Result<Option<Stream>, StoreError> {
        let id = id.to_string();
        self.read(move |c| get(c, &id)).await
    }

    /// Writes the whole record (insert or replace by id); the rejected-SET count is kept.
    pub(in crate::store) async fn upsert_stream(&self, stream: Stream) -> Result<(), StoreError> {
        self.write(move |c| upsert(c, &stream)).await
    }

    /// Records a rejected SET (`rejected_set`, counted) or an operational error on the stream.
    pub(in crate::store) async fn record_stream_error(
        &self,
        id: &str,
        at: UnixSeconds,
        message: &str,
        rejected_set: bool,
    ) -> Result<(), StoreError> {
        let (id, message) = (id.to_string(), message.to_string());
        self.write(move |c| record_error(c, &id, at, &message, rejected_set))
            .await
    }

    /// Clears the stream's last error when it still reads `message`: a problem that went away
    /// must not erase a newer, different one. Returns whether it cleared.
    pub(in crate::store) async fn clear_stream_error_if(
        &self,
        id: &str,
        message: &str,
    ) -> Result<bool, StoreError> {
        let (id, message) = (id.to_string(), message.to_string());
        self.write(move |c| clear_error_if(c, &id, &message)).await
    }

    /// The stream's counters: SETs received, acted on, failed; when the last one arrived.
    pub(in crate::store) async fn stream_counts(
        &self,
        id: &str,
    ) -> Result<StreamCounts, StoreError> {
        let id = id.to_string();
        self.read(move |c| counts(c, &id)).await
    }
}
