//! Stream rows on PostgreSQL: the same mapping between the `streams` table and [`Stream`] as the
//! SQLite module (`store/streams.rs`), whose column list and value encodings it shares.

use std::time::Duration;

use tokio_postgres::{GenericClient, Row};

use super::PgError;
use crate::clock::UnixSeconds;
use crate::store::sqlite::streams::{
    action_from_db, hash_from_db, outbound_from_db, outbound_to_db, COLUMNS,
};
use crate::store::streams::StreamCounts;
use crate::stream::{CompatibilityProfile, DeliveryMethod, Stream};

fn corrupt(e: impl std::fmt::Display) -> PgError {
    PgError::Corrupt(e.to_string())
}

fn from_row(row: &Row) -> Result<Stream, PgError> {
    let delivery: String = row.try_get(6)?;
    let events: String = row.try_get(11)?;
    let delivered: String = row.try_get(28)?;
    let action = |i: usize| -> Result<_, PgError> {
        action_from_db(&row.try_get::<_, String>(i)?).map_err(corrupt)
    };
    Ok(Stream {
        id: row.try_get(0)?,
        display_name: row.try_get(1)?,
        description: row.try_get(2)?,
        issuer_url: row.try_get(3)?,
        jwks_url: row.try_get(4)?,
        expected_audience: row.try_get(5)?,
        delivery_method: if delivery == "poll" {
            DeliveryMethod::Poll
        } else {
            DeliveryMethod::Push
        },
        poll_endpoint_url: row.try_get(7)?,
        poll_interval: row
            .try_get::<_, Option<i64>>(8)?
            .map(|s| Duration::from_secs(s.max(0) as u64)),
        outbound_auth: outbound_from_db(row.try_get(9)?).map_err(corrupt)?,
        enabled: row.try_get(10)?,
        event_types_enabled: serde_json::from_str(&events).map_err(corrupt)?,
        session_revoked_action: action(12)?,
        credential_change_action: action(13)?,
        credential_compromise_action: action(14)?,
        account_disabled_action: action(15)?,
        created_at: row.try_get(16)?,
        updated_at: row.try_get(17)?,
        deleted_at: row.try_get(18)?,
        last_error_at: row.try_get(19)?,
        last_error_message: row.try_get(20)?,
        last_verified_at: row.try_get(21)?,
        transmitter_stream_id: row.try_get(22)?,
        transmitter_status: row.try_get(23)?,
        transmitter_status_reason: row.try_get(24)?,
        push_token_hash: hash_from_db(row.try_get(25)?).map_err(corrupt)?,
        prev_push_token_hash: hash_from_db(row.try_get(26)?).map_err(corrupt)?,
        prev_push_token_expires_at: row.try_get(27)?,
        events_delivered: serde_json::from_str(&delivered).map_err(corrupt)?,
        step_up_provider_id: row.try_get(29)?,
        compatibility_profile: {
            let p: String = row.try_get(30)?;
            CompatibilityProfile::from_api(&p)
                .ok_or_else(|| corrupt(format!("compatibility profile {p:?}")))?
        },
        metadata_url: row.try_get(31)?,
    })
}

/// Writes the whole record (insert or replace by id), keeping `rejected_count`.
pub async fn upsert<C: GenericClient>(client: &C, s: &Stream) -> Result<(), PgError> {
    let columns: Vec<&str> = COLUMNS.split(',').map(str::trim).collect();
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| **c != "id")
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO streams ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}",
        columns.join(", "),
        placeholders.join(", "),
        updates.join(", ")
    );
    let events = serde_json::to_string(&s.event_types_enabled).map_err(corrupt)?;
    let delivered = serde_json::to_string(&s.events_delivered).map_err(corrupt)?;
    let delivery = if s.is_push() { "push" } else { "poll" };
    let interval = s.poll_interval.map(|d| d.as_secs() as i64);
    let outbound = outbound_to_db(&s.outbound_auth);
    let hash = s.push_token_hash.map(|h| h.to_vec());
    let prev_hash = s.prev_push_token_hash.map(|h| h.to_vec());
    client
        .execute(
            &sql,
            &[
                &s.id,
                &s.display_name,
                &s.description,
                &s.issuer_url,
                &s.jwks_url,
                &s.expected_audience,
                &delivery,
                &s.poll_endpoint_url,
                &interval,
                &outbound,
                &s.enabled,
                &events,
                &s.session_revoked_action.as_api(),
                &s.credential_change_action.as_api(),
                &s.credential_compromise_action.as_api(),
                &s.account_disabled_action.as_api(),
                &s.created_at,
                &s.updated_at,
                &s.deleted_at,
                &s.last_error_at,
                &s.last_error_message,
                &s.last_verified_at,
                &s.transmitter_stream_id,
                &s.transmitter_status,
                &s.transmitter_status_reason,
                &hash,
                &prev_hash,
                &s.prev_push_token_expires_at,
                &delivered,
                &s.step_up_provider_id,
                &s.compatibility_profile.as_api(),
                &s.metadata_url,
            ],
        )
        .await?;
    Ok(())
}

/// Every stream that is not deleted, oldest first.
pub async fn load_live<C: GenericClient>(client: &C) -> Result<Vec<Stream>, PgError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM streams WHERE deleted_at IS NULL ORDER BY created_at, id"
            ),
            &[],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn get<C: GenericClient>(client: &C, id: &str) -> Result<Option<Stream>, PgError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM streams WHERE id = $1"),
            &[&id],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// [`get`] inside a transaction, locking the row until it ends: a read-modify-write of a stream
/// made on two replicas at once then runs one after the other instead of losing a change.
pub async fn get_for_update<C: GenericClient>(
    client: &C,
    id: &str,
) -> Result<Option<Stream>, PgError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM streams WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Records a rejected SET or an operational error on the stream.
pub async fn record_error<C: GenericClient>(
    client: &C,
    id: &str,
    at: UnixSeconds,
    message: &str,
    rejected_set: bool,
) -> Result<(), PgError> {
    client
        .execute(
            "UPDATE streams SET last_error_at = $2, last_error_message = $3,
                    rejected_count = rejected_count + $4 WHERE id = $1",
            &[&id, &at, &message, &(rejected_set as i64)],
        )
        .await?;
    Ok(())
}

/// Clears `last_error_*` when they still hold `message`; returns whether it cleared.
pub async fn clear_error_if<C: GenericClient>(
    client: &C,
    id: &str,
    message: &str,
) -> Result<bool, PgError> {
    let n = client
        .execute(
            "UPDATE streams SET last_error_at = NULL, last_error_message = ''
              WHERE id = $1 AND last_error_message = $2",
            &[&id, &message],
        )
        .await?;
    Ok(n > 0)
}

/// Counters of the stats endpoint, as the SQLite backend computes them.
pub async fn counts<C: GenericClient>(client: &C, id: &str) -> Result<StreamCounts, PgError> {
    let r = client
        .query_one(
            "SELECT (SELECT COUNT(*) FROM inbox WHERE stream_id = $1),
                    (SELECT MAX(received_at_ms) FROM inbox WHERE stream_id = $1),
                    COALESCE((SELECT rejected_count FROM streams WHERE id = $1), 0),
                    (SELECT COUNT(*) FROM inbox i
                      WHERE i.stream_id = $1 AND i.outcome IN ('revoke', 'step_up')
                        AND NOT EXISTS (SELECT 1 FROM outbox o
                                         WHERE o.inbox_seq = i.seq AND o.status <> 'done')),
                    (SELECT COUNT(*) FROM outbox WHERE stream_id = $1 AND status = 'dead'),
                    (SELECT COUNT(*) FROM step_up_requirements WHERE stream_id = $1)",
            &[&id],
        )
        .await?;
    let rejected: i64 = r.try_get(2)?;
    let dead: i64 = r.try_get(4)?;
    Ok(StreamCounts {
        received: r.try_get(0)?,
        last_received_at_ms: r.try_get(1)?,
        acted_on: r.try_get(3)?,
        failed: rejected + dead,
        step_up: r.try_get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{PgPool, PgSettings};
    use super::*;
    use crate::stream::{OutboundAuth, RevocationAction};

    #[tokio::test]
    async fn a_stream_round_trips_through_postgres_like_sqlite() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let pool = PgPool::open(PgSettings::new(&db.url, None).unwrap())
            .await
            .unwrap();
        let c = pool.get().await.unwrap();
        let s = Stream {
            id: "s1".into(),
            display_name: "Okta".into(),
            issuer_url: "https://idp.example".into(),
            delivery_method: DeliveryMethod::Poll,
            poll_endpoint_url: "https://idp.example/poll".into(),
            poll_interval: Some(Duration::from_secs(30)),
            outbound_auth: Some(OutboundAuth::Oauth2 {
                client_id: "c".into(),
                client_secret: "x".into(),
                scopes: vec!["ssf.read".into()],
                token_url: "https://idp.example/token".into(),
            }),
            event_types_enabled: vec!["https://e/1".into()],
            credential_change_action: RevocationAction::LogOnly,
            push_token_hash: Some([7; 32]),
            created_at: 5,
            updated_at: 6,
            ..Stream::default()
        };
        upsert(&**c, &s).await.unwrap();
        assert_eq!(get(&**c, "s1").await.unwrap().as_ref(), Some(&s));
        record_error(&**c, "s1", 9, "bad signature", true)
            .await
            .unwrap();
        let mut changed = s.clone();
        changed.enabled = false;
        changed.deleted_at = None;
        upsert(&**c, &changed).await.unwrap();
        let back = get(&**c, "s1").await.unwrap().unwrap();
        assert!(!back.enabled);
        assert_eq!(
            back.last_error_message, "",
            "a whole-row write replaces the error too"
        );
        assert_eq!(
            counts(&**c, "s1").await.unwrap().failed,
            1,
            "but keeps the count"
        );
        assert!(!clear_error_if(&**c, "s1", "other").await.unwrap());
        assert_eq!(load_live(&**c).await.unwrap().len(), 1);
        changed.deleted_at = Some(10);
        upsert(&**c, &changed).await.unwrap();
        assert!(load_live(&**c).await.unwrap().is_empty());
        assert_eq!(get(&**c, "nope").await.unwrap(), None);
    }
}
