//! Verification states on PostgreSQL: the states ssfd asked a transmitter to echo, shared by the
//! replicas, so that whichever replica receives the verification event can match it.

use tokio_postgres::GenericClient;

use super::PgError;
use crate::clock::UnixSeconds;

/// When ssfd last asked this stream's transmitter for a verification event.
pub async fn last_requested<C: GenericClient>(
    client: &C,
    stream_id: &str,
) -> Result<Option<UnixSeconds>, PgError> {
    Ok(client
        .query_one(
            "SELECT MAX(requested_at) FROM verification_requests WHERE stream_id = $1",
            &[&stream_id],
        )
        .await?
        .get(0))
}

pub async fn request<C: GenericClient>(
    client: &C,
    stream_id: &str,
    state: &str,
    now: UnixSeconds,
) -> Result<(), PgError> {
    client
        .execute(
            "INSERT INTO verification_requests (stream_id, state, requested_at) VALUES ($1, $2, $3)",
            &[&stream_id, &state, &now],
        )
        .await?;
    Ok(())
}

/// Forgets a request the transmitter refused.
pub async fn withdraw<C: GenericClient>(
    client: &C,
    stream_id: &str,
    state: &str,
) -> Result<(), PgError> {
    client
        .execute(
            "DELETE FROM verification_requests WHERE stream_id = $1 AND state = $2",
            &[&stream_id, &state],
        )
        .await?;
    Ok(())
}

/// `None` for an unknown state, else when it was answered (`Some(None)`: not yet).
pub async fn answered_at<C: GenericClient>(
    client: &C,
    stream_id: &str,
    state: &str,
) -> Result<Option<Option<UnixSeconds>>, PgError> {
    Ok(client
        .query_opt(
            "SELECT answered_at FROM verification_requests WHERE stream_id = $1 AND state = $2",
            &[&stream_id, &state],
        )
        .await?
        .map(|r| r.get(0)))
}

#[cfg(test)]
mod tests {
    use super::super::{PgPool, PgSettings};
    use super::*;

    #[tokio::test]
    async fn a_request_is_recorded_answered_or_withdrawn() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let pool = PgPool::open(PgSettings::new(&db.url, None).unwrap())
            .await
            .unwrap();
        let c = pool.get().await.unwrap();
        assert_eq!(last_requested(&**c, "s1").await.unwrap(), None);
        request(&**c, "s1", "a", 10).await.unwrap();
        request(&**c, "s1", "b", 20).await.unwrap();
        assert_eq!(last_requested(&**c, "s1").await.unwrap(), Some(20));
        assert_eq!(answered_at(&**c, "s1", "a").await.unwrap(), Some(None));
        c.execute(
            "UPDATE verification_requests SET answered_at = 30 WHERE state = 'a'",
            &[],
        )
        .await
        .unwrap();
        assert_eq!(answered_at(&**c, "s1", "a").await.unwrap(), Some(Some(30)));
        withdraw(&**c, "s1", "b").await.unwrap();
        assert_eq!(answered_at(&**c, "s1", "b").await.unwrap(), None);
        assert_eq!(last_requested(&**c, "s1").await.unwrap(), Some(10));
    }
}
