//! The `removed_subjects` table on PostgreSQL, as the SQLite module writes and reads it.

use super::backend::PgStore;
use super::PgError;
use crate::clock::UnixSeconds;
use crate::store::StoreError;

impl PgStore {
    pub(in crate::store) async fn mark_subject_removed(
        &self,
        stream_id: &str,
        keys: &[String],
        at: UnixSeconds,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO removed_subjects (stream_id, subject_key, removed_at)
             SELECT $1, k, $3 FROM UNNEST($2::TEXT[]) AS k
             ON CONFLICT (stream_id, subject_key) DO UPDATE SET removed_at = EXCLUDED.removed_at",
            &[&stream_id, &keys, &at],
        )
        .await
        .map_err(PgError::from)?;
        Ok(())
    }

    pub(in crate::store) async fn mark_subject_added(
        &self,
        stream_id: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "DELETE FROM removed_subjects WHERE stream_id = $1 AND subject_key = ANY($2)",
            &[&stream_id, &keys],
        )
        .await
        .map_err(PgError::from)?;
        Ok(())
    }

    pub(in crate::store) async fn removed_subjects(
        &self,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT stream_id, subject_key FROM removed_subjects", &[])
            .await
            .map_err(PgError::from)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(PgError::from)?,
                    r.try_get(1).map_err(PgError::from)?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::store::postgres::PgSettings;
    use crate::store::Store;

    #[tokio::test]
    async fn removed_subjects_are_recorded_and_forgotten_on_postgres() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let store = Store::open_postgres(PgSettings::new(&db.url, None).unwrap(), "r1".into())
            .await
            .unwrap();
        let keys = vec!["email:a@b".to_string(), "email:c@d".to_string()];
        store.mark_subject_removed("s1", &keys, 10).await.unwrap();
        store
            .mark_subject_removed("s1", &keys[..1], 20)
            .await
            .unwrap();
        let mut removed = store.removed_subjects().await.unwrap();
        removed.sort();
        assert_eq!(
            removed,
            [
                ("s1".into(), "email:a@b".into()),
                ("s1".into(), "email:c@d".into())
            ]
        );
        store.mark_subject_added("s1", &keys[1..]).await.unwrap();
        assert_eq!(
            store.removed_subjects().await.unwrap(),
            [("s1".to_string(), "email:a@b".to_string())]
        );
    }
}
