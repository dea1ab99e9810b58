//! Step-up on PostgreSQL: the `step_up_providers` table and the requirements STEP_UP decisions
//! record per subject key, with the SQLite module's column list and value encodings.

use tokio_postgres::{GenericClient, Row};

use super::backend::PgStore;
use super::PgError;
use crate::clock::UnixSeconds;
use crate::step_up::{Provider, Requirement};
use crate::store::sqlite::step_up::{
    demand_from_db, demand_to_db, settings_from_db, settings_to_db, COLUMNS, REQUIREMENT_COLUMNS,
};
use crate::store::step_up::{StepUpWrite, MAX_REQUIREMENTS};
use crate::store::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

fn db(e: tokio_postgres::Error) -> StoreError {
    PgError::from(e).into()
}

fn from_row(row: &Row) -> Result<Provider> {
    Ok(Provider {
        id: row.try_get(0).map_err(db)?,
        display_name: row.try_get(1).map_err(db)?,
        issuer_url: row.try_get(2).map_err(db)?,
        client_id: row.try_get(3).map_err(db)?,
        client_secret: row.try_get(4).map_err(db)?,
        enabled: row.try_get(5).map_err(db)?,
        settings: settings_from_db(row.try_get(6).map_err(db)?)?,
        created_at: row.try_get(7).map_err(db)?,
        updated_at: row.try_get(8).map_err(db)?,
        last_tested_at: row.try_get(9).map_err(db)?,
    })
}

/// Writes the whole record (insert or replace by id).
async fn upsert<C: GenericClient>(client: &C, p: &Provider) -> Result<()> {
    client
        .execute(
            &format!(
                "INSERT INTO step_up_providers ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
                 ON CONFLICT (id) DO UPDATE SET display_name = EXCLUDED.display_name,
                    issuer_url = EXCLUDED.issuer_url, client_id = EXCLUDED.client_id,
                    client_secret = EXCLUDED.client_secret, enabled = EXCLUDED.enabled,
                    settings = EXCLUDED.settings, created_at = EXCLUDED.created_at,
                    updated_at = EXCLUDED.updated_at, last_tested_at = EXCLUDED.last_tested_at"
            ),
            &[
                &p.id,
                &p.display_name,
                &p.issuer_url,
                &p.client_id,
                &p.client_secret,
                &p.enabled,
                &settings_to_db(&p.settings),
                &p.created_at,
                &p.updated_at,
                &p.last_tested_at,
            ],
        )
        .await
        .map_err(db)?;
    Ok(())
}

async fn get<C: GenericClient>(client: &C, id: &str, lock: bool) -> Result<Option<Provider>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM step_up_providers WHERE id = $1{lock}"),
            &[&id],
        )
        .await
        .map_err(db)?;
    row.as_ref().map(from_row).transpose()
}

/// Records a STEP_UP decision's requirement on every subject key, with what the provider demands
/// right now, inside the SET's transaction, as the SQLite backend does. A repeat (same stream,
/// jti and event type) changes nothing.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_requirement<C: GenericClient>(
    client: &C,
    stream_id: &str,
    jti: &str,
    txn: Option<&str>,
    event_type: &str,
    w: &StepUpWrite,
    subject_keys: &[String],
    received_at_ms: i64,
) -> Result<()> {
    let provider = if w.provider_id.is_empty() {
        None
    } else {
        let found = get(client, &w.provider_id, false)
            .await?
            .filter(|p| p.enabled);
        if found.is_none() {
            tracing::warn!(stream = %stream_id, jti = %jti, provider = %w.provider_id,
                "the step-up provider is missing or disabled; the requirement asks only for a fresh authentication");
        }
        found
    };
    let (provider_id, kind, values, mode) = demand_to_db(provider.as_ref())?;
    let max_age = i64::try_from(w.max_age).unwrap_or(i64::MAX);
    let inserted = client
        .query_opt(
            "INSERT INTO step_up_requirements (stream_id, jti, txn, event_type, provider_id, kind,
                 acr_values, validation_mode, max_age, since, received_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (stream_id, jti, event_type) DO NOTHING
             RETURNING id",
            &[
                &stream_id,
                &jti,
                &txn,
                &event_type,
                &provider_id,
                &kind,
                &values,
                &mode,
                &max_age,
                &w.since,
                &received_at_ms,
            ],
        )
        .await
        .map_err(db)?;
    let Some(row) = inserted else {
        return Ok(());
    };
    let id: i64 = row.try_get(0).map_err(db)?;
    client
        .execute(
            "INSERT INTO step_up_subjects (subject_key, requirement_id)
             SELECT k, $2 FROM UNNEST($1::TEXT[]) AS k ON CONFLICT DO NOTHING",
            &[&subject_keys, &id],
        )
        .await
        .map_err(db)?;
    Ok(())
}

fn requirement_from_row(row: &Row) -> Result<Requirement> {
    let demand = demand_from_db(
        row.try_get(1).map_err(db)?,
        row.try_get(2).map_err(db)?,
        row.try_get(3).map_err(db)?,
    )?;
    Ok(Requirement {
        provider_id: row.try_get(0).map_err(db)?,
        demand,
        max_age: row.try_get::<_, i64>(4).map_err(db)?.max(0) as u64,
        since: row.try_get(5).map_err(db)?,
        stream_id: row.try_get(6).map_err(db)?,
        jti: row.try_get(7).map_err(db)?,
        txn: row.try_get(8).map_err(db)?,
        event_type: row.try_get(9).map_err(db)?,
    })
}

/// The requirement a STEP_UP decision recorded, for its action document.
pub(crate) async fn requirement_of<C: GenericClient>(
    client: &C,
    stream_id: &str,
    jti: &str,
    event_type: &str,
) -> Result<Option<Requirement>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {REQUIREMENT_COLUMNS} FROM step_up_requirements r
                  WHERE r.stream_id = $1 AND r.jti = $2 AND r.event_type = $3"
            ),
            &[&stream_id, &jti, &event_type],
        )
        .await
        .map_err(db)?;
    row.as_ref().map(requirement_from_row).transpose()
}

impl PgStore {
    pub(in crate::store) async fn upsert_step_up_provider(&self, p: Provider) -> Result<()> {
        upsert(&**self.client().await?, &p).await
    }

    pub(in crate::store) async fn step_up_provider(&self, id: &str) -> Result<Option<Provider>> {
        get(&**self.client().await?, id, false).await
    }

    pub(in crate::store) async fn list_step_up_providers(
        &self,
        after: Option<(UnixSeconds, String)>,
        limit: usize,
    ) -> Result<Vec<Provider>> {
        let (created, id) = match after {
            Some((c, i)) => (Some(c), i),
            None => (None, String::new()),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM step_up_providers
                      WHERE $1::BIGINT IS NULL OR (created_at, id) > ($1, $2)
                      ORDER BY created_at, id LIMIT $3"
                ),
                &[&created, &id, &limit],
            )
            .await
            .map_err(db)?;
        rows.iter().map(from_row).collect()
    }

    pub(in crate::store) async fn update_step_up_provider<E, F>(
        &self,
        id: &str,
        edit: F,
    ) -> Result<Option<std::result::Result<(Provider, Provider), E>>>
    where
        E: Send + 'static,
        F: FnOnce(&mut Provider) -> std::result::Result<(), E> + Send + 'static,
    {
        let mut c = self.client().await?;
        // The row lock makes two updates (on any replica) take turns.
        let tx = tokio_postgres::Client::transaction(&mut c)
            .await
            .map_err(db)?;
        let Some(before) = get(&tx, id, true).await? else {
            return Ok(None);
        };
        let mut after = before.clone();
        if let Err(e) = edit(&mut after) {
            return Ok(Some(Err(e)));
        }
        upsert(&tx, &after).await?;
        tx.commit().await.map_err(db)?;
        Ok(Some(Ok((before, after))))
    }

    pub(in crate::store) async fn delete_step_up_provider(&self, id: &str) -> Result<bool> {
        let n = self
            .client()
            .await?
            .execute("DELETE FROM step_up_providers WHERE id = $1", &[&id])
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    pub(in crate::store) async fn mark_step_up_provider_tested(
        &self,
        id: &str,
        at: UnixSeconds,
    ) -> Result<Option<Provider>> {
        let c = self.client().await?;
        c.execute(
            "UPDATE step_up_providers SET last_tested_at = $2 WHERE id = $1",
            &[&id, &at],
        )
        .await
        .map_err(db)?;
        get(&**c, id, false).await
    }

    pub(in crate::store) async fn step_up_provider_exists(&self, id: &str) -> Result<bool> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT 1 FROM step_up_providers WHERE id = $1", &[&id])
            .await
            .map_err(db)?;
        Ok(row.is_some())
    }

    pub(in crate::store) async fn step_up_requirements(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<Requirement>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT DISTINCT {REQUIREMENT_COLUMNS}, r.id FROM step_up_subjects k
                       JOIN step_up_requirements r ON r.id = k.requirement_id
                      WHERE k.subject_key = ANY($1)
                      ORDER BY r.since DESC, r.id DESC LIMIT {MAX_REQUIREMENTS}"
                ),
                &[&keys],
            )
            .await
            .map_err(db)?;
        rows.iter().map(requirement_from_row).collect()
    }
}
