//! The revocation ledger on PostgreSQL: what applications ask about a subject.

use tokio_postgres::GenericClient;

use super::PgError;
use crate::clock::UnixMillis;
use crate::store::ledger::{LedgerEntry, MAX_ENTRIES};

/// The entries naming any of `keys`, latest `revoked_before` first (ties: newest entry first),
/// at most [`MAX_ENTRIES`].
pub async fn entries_for<C: GenericClient>(
    client: &C,
    keys: &[String],
) -> Result<Vec<LedgerEntry>, PgError> {
    let rows = client
        .query(
            "SELECT revoked_before, stream_id, jti, event_type, received_at_ms
               FROM ledger WHERE subject_key = ANY($1)
              ORDER BY revoked_before DESC, id DESC LIMIT $2",
            &[&keys, &(MAX_ENTRIES as i64)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(LedgerEntry {
                revoked_before: r.try_get(0)?,
                stream_id: r.try_get(1)?,
                jti: r.try_get(2)?,
                event_type: r.try_get(3)?,
                received_at_ms: r.try_get(4)?,
            })
        })
        .collect()
}

/// Lifts every revocation of any of `keys` in one statement (so in one transaction): each
/// ledger entry is removed and leaves an audit row (`action` `LIFTED`, `detail` the reason), as
/// the SQLite backend does. Returns how many entries were lifted.
pub async fn lift<C: GenericClient>(
    client: &C,
    keys: &[String],
    reason: &str,
    at_ms: UnixMillis,
) -> Result<usize, PgError> {
    let lifted = client
        .execute(
            "WITH gone AS (
                 DELETE FROM ledger WHERE subject_key = ANY($1)
                 RETURNING stream_id, jti, event_type, subject_key)
             INSERT INTO audit (at_ms, stream_id, jti, event_type, subject, action, detail)
             SELECT $3, stream_id, jti, event_type, subject_key, 'LIFTED', $2 FROM gone",
            &[&keys, &reason, &at_ms],
        )
        .await?;
    Ok(lifted as usize)
}

#[cfg(test)]
mod tests {
    use super::super::{PgPool, PgSettings};
    use super::*;

    #[tokio::test]
    async fn entries_for_any_key_newest_first() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let pool = PgPool::open(PgSettings::new(&db.url, None).unwrap())
            .await
            .unwrap();
        let c = pool.get().await.unwrap();
        c.batch_execute(
            "INSERT INTO ledger (subject_key, revoked_before, stream_id, jti, event_type,
                                 received_at_ms)
             VALUES ('email:a@b', 10, 's1', 'j1', 'e', 1), ('iss_sub:i:a', 30, 's1', 'j2', 'e', 2),
                    ('email:other', 50, 's1', 'j3', 'e', 3)",
        )
        .await
        .unwrap();
        let keys = vec!["email:a@b".to_string(), "iss_sub:i:a".to_string()];
        let found = entries_for(&**c, &keys).await.unwrap();
        let jtis: Vec<&str> = found.iter().map(|e| e.jti.as_str()).collect();
        assert_eq!(jtis, ["j2", "j1"]);
        assert!(entries_for(&**c, &[]).await.unwrap().is_empty());
        assert_eq!(lift(&**c, &keys, "false positive", 99).await.unwrap(), 2);
        assert!(entries_for(&**c, &keys).await.unwrap().is_empty());
        let audit = c
            .query(
                "SELECT subject, detail FROM audit WHERE action = 'LIFTED' AND at_ms = 99
                  ORDER BY subject",
                &[],
            )
            .await
            .unwrap();
        let lifted: Vec<(String, String)> = audit.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            lifted,
            [
                ("email:a@b".to_string(), "false positive".to_string()),
                ("iss_sub:i:a".to_string(), "false positive".to_string())
            ]
        );
        let others = entries_for(&**c, &["email:other".to_string()])
            .await
            .unwrap();
        assert_eq!(others.len(), 1);
    }
}
