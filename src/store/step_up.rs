//! Step-up: the provider records (see [`Provider`]), and the requirements STEP_UP decisions
//! record per subject key (written by [`Store::store_set`] and [`Store::replay_set`] from a
//! decision's [`StepUpWrite`], read back by [`Store::step_up_requirements`]).

use super::{Backend, Store, StoreError};
use crate::clock::UnixSeconds;
use crate::step_up::{Provider, Requirement};

/// Most requirements [`Store::step_up_requirements`] returns.
pub const MAX_REQUIREMENTS: usize = 1000;

/// What a STEP_UP decision records: what the provider demands is read from its record in the
/// same transaction, so that the requirement keeps what was asked at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUpWrite {
    /// The provider the decision names; empty for none.
    pub provider_id: String,
    pub max_age: u64,
    /// The event time: only an authentication at or after it satisfies the requirement.
    pub since: UnixSeconds,
}

impl Store {
    /// Writes a provider record whole (insert or replace by id).
    pub async fn upsert_step_up_provider(&self, provider: Provider) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.upsert_step_up_provider(provider).await,
            Backend::Postgres(db) => db.upsert_step_up_provider(provider).await,
        }
    }

    pub async fn step_up_provider(&self, id: &str) -> Result<Option<Provider>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.step_up_provider(id).await,
            Backend::Postgres(db) => db.step_up_provider(id).await,
        }
    }

    /// Up to `limit` providers after `after` (the `(createdAt, id)` of the previous page's
    /// last), oldest first.
    pub async fn list_step_up_providers(
        &self,
        after: Option<(UnixSeconds, String)>,
        limit: usize,
    ) -> Result<Vec<Provider>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.list_step_up_providers(after, limit).await,
            Backend::Postgres(db) => db.list_step_up_providers(after, limit).await,
        }
    }

    /// Reads, edits and writes a provider in one transaction, so that two updates cannot
    /// interleave. `None`: no such provider; `Some(Err)`: the edit refused, nothing written;
    /// `Some(Ok((before, after)))` otherwise.
    pub async fn update_step_up_provider<E, F>(
        &self,
        id: &str,
        edit: F,
    ) -> Result<Option<Result<(Provider, Provider), E>>, StoreError>
    where
        E: Send + 'static,
        F: FnOnce(&mut Provider) -> Result<(), E> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.update_step_up_provider(id, edit).await,
            Backend::Postgres(db) => db.update_step_up_provider(id, edit).await,
        }
    }

    /// Deletes a provider; returns whether it existed.
    pub async fn delete_step_up_provider(&self, id: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.delete_step_up_provider(id).await,
            Backend::Postgres(db) => db.delete_step_up_provider(id).await,
        }
    }

    /// Records when the provider was last tested; returns the updated record.
    pub async fn mark_step_up_provider_tested(
        &self,
        id: &str,
        at: UnixSeconds,
    ) -> Result<Option<Provider>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.mark_step_up_provider_tested(id, at).await,
            Backend::Postgres(db) => db.mark_step_up_provider_tested(id, at).await,
        }
    }

    pub async fn step_up_provider_exists(&self, id: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.step_up_provider_exists(id).await,
            Backend::Postgres(db) => db.step_up_provider_exists(id).await,
        }
    }

    /// The step-up requirements on any of `keys`, newest `since` first, at most
    /// [`MAX_REQUIREMENTS`].
    pub async fn step_up_requirements(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<Requirement>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.step_up_requirements(keys).await,
            Backend::Postgres(db) => db.step_up_requirements(keys).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step_up::{Settings, ValidationMode};

    fn provider(id: &str, created_at: i64, settings: Settings) -> Provider {
        Provider {
            id: id.into(),
            display_name: format!("p {id}"),
            issuer_url: "https://idp.example.com".into(),
            client_id: "cid".into(),
            client_secret: "secret".into(),
            enabled: true,
            settings,
            created_at,
            updated_at: created_at,
            last_tested_at: None,
        }
    }

    #[tokio::test]
    async fn providers_round_trip_page_update_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        round_trip_page_update_and_delete(Store::open(&dir.path().join("t.db")).unwrap()).await;
    }

    #[tokio::test]
    async fn providers_round_trip_page_update_and_delete_on_postgres() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let settings = crate::store::postgres::PgSettings::new(&db.url, None).unwrap();
        round_trip_page_update_and_delete(
            Store::open_postgres(settings, "r1".into()).await.unwrap(),
        )
        .await;
    }

    async fn round_trip_page_update_and_delete(store: Store) {
        let a = provider(
            "a",
            10,
            Settings::OAuth2 {
                acr_values: vec!["phr".into()],
            },
        );
        let b = provider(
            "b",
            10,
            Settings::Microsoft {
                conditional_access_ids: vec!["c1".into()],
                tenant: "contoso".into(),
                validation_mode: ValidationMode::Acrs,
            },
        );
        let c = provider("c", 5, Settings::default());
        for p in [a.clone(), b.clone(), c.clone()] {
            store.upsert_step_up_provider(p).await.unwrap();
        }
        assert_eq!(
            store.step_up_provider("b").await.unwrap().as_ref(),
            Some(&b)
        );
        let first = store.list_step_up_providers(None, 2).await.unwrap();
        assert_eq!(
            first.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["c", "a"]
        );
        let rest = store
            .list_step_up_providers(Some((10, "a".into())), 2)
            .await
            .unwrap();
        assert_eq!(rest, vec![b]);
        let refused = store
            .update_step_up_provider("a", |p| {
                p.display_name = "changed".into();
                Err("no")
            })
            .await
            .unwrap();
        assert_eq!(refused, Some(Err("no")));
        assert_eq!(store.step_up_provider("a").await.unwrap(), Some(a.clone()));
        let changed = store
            .update_step_up_provider("a", |p| {
                p.display_name = "changed".into();
                Ok::<(), ()>(())
            })
            .await
            .unwrap();
        assert!(matches!(changed, Some(Ok((before, after)))
            if before == a && after.display_name == "changed"));
        assert!(store
            .update_step_up_provider("zz", |_| Ok::<(), ()>(()))
            .await
            .unwrap()
            .is_none());
        let tested = store.mark_step_up_provider_tested("a", 99).await.unwrap();
        assert_eq!(tested.and_then(|p| p.last_tested_at), Some(99));
        assert!(store.delete_step_up_provider("a").await.unwrap());
        assert!(!store.delete_step_up_provider("a").await.unwrap());
        assert!(!store.step_up_provider_exists("a").await.unwrap());
        assert!(store
            .step_up_requirements(vec!["email:x".into()])
            .await
            .unwrap()
            .is_empty());
    }
}
