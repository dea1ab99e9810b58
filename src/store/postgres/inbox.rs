//! Inbox rows on PostgreSQL: every verified SET once per (stream, jti), whichever replica
//! received it. Two replicas storing the same SET at once both succeed; the unique index makes
//! the second wait for the first to commit and then find the row there (a duplicate).

use tokio_postgres::GenericClient;

use super::PgError;
use crate::store::inbox::{EventFilter, NewInboxRow, StoredEvent};

fn corrupt(e: impl std::fmt::Display) -> PgError {
    PgError::Corrupt(e.to_string())
}

/// Inserts the row unless (stream, jti) is already stored. Returns the new row's sequence
/// number, or `None` for a duplicate (which must change nothing).
pub async fn insert<C: GenericClient>(
    client: &C,
    row: &NewInboxRow,
) -> Result<Option<i64>, PgError> {
    let types = serde_json::to_string(&row.event_types).map_err(corrupt)?;
    let keys = serde_json::to_string(&row.subject_keys).map_err(corrupt)?;
    let tolerances = serde_json::to_string(&row.tolerances).map_err(corrupt)?;
    let seq = client
        .query_opt(
            "INSERT INTO inbox (stream_id, jti, iss, txn, event_types, subject_keys, raw_token,
                                claims, received_at_ms, delivery, outcome, decision, tolerances)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (stream_id, jti) DO NOTHING
             RETURNING seq",
            &[
                &row.stream_id,
                &row.jti,
                &row.iss,
                &row.txn,
                &types,
                &keys,
                &row.raw_token,
                &row.claims,
                &row.received_at_ms,
                &row.delivery,
                &row.outcome,
                &row.decision,
                &tolerances,
            ],
        )
        .await?;
    Ok(seq.map(|r| r.get(0)))
}

pub async fn exists<C: GenericClient>(
    client: &C,
    stream_id: &str,
    jti: &str,
) -> Result<bool, PgError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM inbox WHERE stream_id = $1 AND jti = $2",
            &[&stream_id, &jti],
        )
        .await?
        .is_some())
}

/// Stored events, newest first, as [`crate::store::Store::list_events`] returns them.
pub async fn list<C: GenericClient>(
    client: &C,
    f: &EventFilter,
) -> Result<Vec<StoredEvent>, PgError> {
    let rows = client
        .query(
            "SELECT seq, stream_id, jti, iss, txn, event_types, subject_keys, received_at_ms,
                    delivery, outcome, decision, tolerances
               FROM inbox
              WHERE ($1::TEXT IS NULL OR stream_id = $1)
                AND ($2::BIGINT IS NULL OR received_at_ms >= $2)
                AND ($3::BIGINT IS NULL OR seq < $3)
              ORDER BY seq DESC
              LIMIT $4",
            &[
                &f.stream_id,
                &f.since_ms,
                &f.before_seq,
                &(f.limit.max(1) as i64),
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredEvent {
                seq: r.try_get(0)?,
                stream_id: r.try_get(1)?,
                jti: r.try_get(2)?,
                iss: r.try_get(3)?,
                txn: r.try_get(4)?,
                event_types: serde_json::from_str(r.try_get(5)?).map_err(corrupt)?,
                subject_keys: serde_json::from_str(r.try_get(6)?).map_err(corrupt)?,
                received_at_ms: r.try_get(7)?,
                delivery: r.try_get(8)?,
                outcome: r.try_get(9)?,
                decision: r.try_get(10)?,
                tolerances: serde_json::from_str(r.try_get(11)?).map_err(corrupt)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{PgPool, PgSettings};
    use super::*;

    fn row(jti: &str) -> NewInboxRow {
        NewInboxRow {
            stream_id: "s1".into(),
            jti: jti.into(),
            iss: "https://idp".into(),
            txn: None,
            event_types: vec!["https://e/1".into()],
            subject_keys: vec!["email:a@b".into()],
            raw_token: "t".into(),
            claims: "{}".into(),
            received_at_ms: 1,
            delivery: "push",
            outcome: "revoke".into(),
            decision: String::new(),
            tolerances: vec!["iat_missing".into()],
        }
    }

    #[tokio::test]
    async fn the_same_set_stored_by_two_replicas_at_once_is_one_row() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let settings = PgSettings::new(&db.url, None).unwrap();
        let pool = PgPool::open(settings.clone()).await.unwrap();
        super::super::streams::upsert(
            &**pool.get().await.unwrap(),
            &crate::stream::Stream {
                id: "s1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // Two pools stand for two replicas; each stores the SET in its own transaction.
        let other = PgPool::new(settings).unwrap();
        let mut a = pool.get().await.unwrap();
        let mut b = other.get().await.unwrap();
        let ta = tokio_postgres::Client::transaction(&mut a).await.unwrap();
        let tb = tokio_postgres::Client::transaction(&mut b).await.unwrap();
        assert!(insert(&ta, &row("j1")).await.unwrap().is_some());
        // b's insert waits for a's transaction, then finds the row: a duplicate, no error.
        let dup = row("j1");
        let (second, committed) = tokio::join!(insert(&tb, &dup), async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            ta.commit().await
        });
        committed.unwrap();
        assert_eq!(second.unwrap(), None);
        tb.commit().await.unwrap();
        let c = pool.get().await.unwrap();
        assert!(exists(&**c, "s1", "j1").await.unwrap());
        assert!(!exists(&**c, "s1", "j2").await.unwrap());
        let listed = list(
            &**c,
            &EventFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].subject_keys, vec!["email:a@b"]);
    }
}
