//! Poll acknowledgements waiting to be sent, shared by the replicas: any replica that stores a
//! polled SET records its ack, and only the holder of the stream's poll lease sends them. The
//! rows outlive the lease, so acks pending when a holder dies are sent by the next one.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::lease::Lease;
use super::PgError;

/// Inside the transaction that stores a polled SET: its ack is still to be sent.
pub async fn record<C: GenericClient>(
    client: &C,
    stream_id: &str,
    jti: &str,
) -> Result<(), PgError> {
    client
        .execute(
            "INSERT INTO pending_acks (stream_id, jti) VALUES ($1, $2)
             ON CONFLICT (stream_id, jti) DO NOTHING",
            &[&stream_id, &jti],
        )
        .await?;
    Ok(())
}

/// The acks to send for `stream_id`, in arrival order, but only while `lease` stays live for at
/// least `for_at_least` more (the time the ack request may take): a replica whose lease is
/// lapsing gets nothing, so it cannot acknowledge on behalf of the next holder.
pub async fn to_send<C: GenericClient>(
    client: &C,
    lease: &Lease,
    stream_id: &str,
    for_at_least: Duration,
) -> Result<Vec<String>, PgError> {
    let margin = i64::try_from(for_at_least.as_millis()).unwrap_or(i64::MAX / 2);
    let rows = client
        .query(
            "SELECT a.jti FROM pending_acks a
              WHERE a.stream_id = $1
                AND EXISTS (SELECT 1 FROM leases l
                             WHERE l.name = $2 AND l.holder = $3 AND l.token = $4
                               AND l.expires_at_ms > ssfd_now_ms() + $5)
              ORDER BY a.seq",
            &[
                &stream_id,
                &lease.name,
                &lease.holder,
                &lease.token,
                &margin,
            ],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

/// After the transmitter accepted the acks.
pub async fn delete<C: GenericClient>(
    client: &C,
    stream_id: &str,
    jtis: &[String],
) -> Result<(), PgError> {
    client
        .execute(
            "DELETE FROM pending_acks WHERE stream_id = $1 AND jti = ANY($2)",
            &[&stream_id, &jtis],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::lease::acquire;
    use super::super::{PgPool, PgSettings};
    use super::*;

    #[tokio::test]
    async fn pending_acks_survive_a_lease_move_and_only_the_holder_gets_them() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let pool = PgPool::open(PgSettings::new(&db.url, None).unwrap())
            .await
            .unwrap();
        let c = pool.get().await.unwrap();
        let ttl = Duration::from_millis(400);
        let a = acquire(&**c, "poll:s1", "replica-a", ttl)
            .await
            .unwrap()
            .unwrap();
        for jti in ["j3", "j1", "j2", "j1"] {
            record(&**c, "s1", jti).await.unwrap();
        }
        record(&**c, "s2", "other").await.unwrap();
        let margin = Duration::from_millis(100);
        assert_eq!(
            to_send(&**c, &a, "s1", margin).await.unwrap(),
            ["j3", "j1", "j2"]
        );
        // A lease that will not last the request yields nothing.
        assert!(to_send(&**c, &a, "s1", Duration::from_secs(5))
            .await
            .unwrap()
            .is_empty());
        delete(&**c, "s1", &["j3".to_string()]).await.unwrap();
        // replica-a dies; once its lease lapses replica-b takes over and sends what is left.
        tokio::time::sleep(ttl).await;
        let b = acquire(&**c, "poll:s1", "replica-b", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert!(to_send(&**c, &a, "s1", margin).await.unwrap().is_empty());
        assert_eq!(to_send(&**c, &b, "s1", margin).await.unwrap(), ["j1", "j2"]);
        delete(&**c, "s1", &["j1".to_string(), "j2".to_string()])
            .await
            .unwrap();
        assert!(to_send(&**c, &b, "s1", margin).await.unwrap().is_empty());
    }
}
