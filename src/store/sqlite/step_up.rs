//! SQL of step-up: the `step_up_providers` table and [`Provider`], and the requirements STEP_UP
//! decisions record per subject key (`step_up_requirements`, `step_up_subjects`).

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde_json::{json, Value};

use super::{json_col, SqliteStore};
use crate::clock::UnixSeconds;
use crate::step_up::{Demand, Provider, Requirement, Settings, ValidationMode};
use crate::store::error::StoreError;
use crate::store::step_up::StepUpWrite;

pub(in crate::store) const COLUMNS: &str =
    "id, display_name, issuer_url, client_id, client_secret, enabled, settings,
    created_at, updated_at, last_tested_at";

pub(in crate::store) fn settings_to_db(s: &Settings) -> String {
    match s {
        Settings::OAuth2 { acr_values } => json!({"oauth2": {"acrValues": acr_values}}),
        Settings::Microsoft {
            conditional_access_ids,
            tenant,
            validation_mode,
        } => json!({"microsoft": {"conditionalAccessIds": conditional_access_ids,
                                  "tenant": tenant,
                                  "validationMode": validation_mode.as_api()}}),
    }
    .to_string()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub(in crate::store) fn settings_from_db(text: &str) -> Result<Settings, StoreError> {
    let v: Value = json_col(text)?;
    if let Some(o) = v.get("oauth2") {
        return Ok(Settings::OAuth2 {
            acr_values: strings(o.get("acrValues")),
        });
    }
    if let Some(m) = v.get("microsoft") {
        let mode = m
            .get("validationMode")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Ok(Settings::Microsoft {
            conditional_access_ids: strings(m.get("conditionalAccessIds")),
            tenant: m
                .get("tenant")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            validation_mode: ValidationMode::from_api(mode)
                .ok_or_else(|| StoreError::Corrupt(format!("validationMode {mode:?}")))?,
        });
    }
    Err(StoreError::Corrupt("step-up provider settings".into()))
}

fn from_row(row: &Row<'_>) -> Result<Provider, StoreError> {
    Ok(Provider {
        id: row.get(0)?,
        display_name: row.get(1)?,
        issuer_url: row.get(2)?,
        client_id: row.get(3)?,
        client_secret: row.get(4)?,
        enabled: row.get(5)?,
        settings: settings_from_db(&row.get::<_, String>(6)?)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        last_tested_at: row.get(9)?,
    })
}

/// Writes the whole record (insert or replace by id).
pub(in crate::store) fn upsert(conn: &Connection, p: &Provider) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "INSERT INTO step_up_providers ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)
             ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name,
                issuer_url = excluded.issuer_url, client_id = excluded.client_id,
                client_secret = excluded.client_secret, enabled = excluded.enabled,
                settings = excluded.settings, created_at = excluded.created_at,
                updated_at = excluded.updated_at, last_tested_at = excluded.last_tested_at"
        ),
        params![
            p.id,
            p.display_name,
            p.issuer_url,
            p.client_id,
            p.client_secret,
            p.enabled,
            settings_to_db(&p.settings),
            p.created_at,
            p.updated_at,
            p.last_tested_at,
        ],
    )?;
    Ok(())
}

pub(in crate::store) fn get(conn: &Connection, id: &str) -> Result<Option<Provider>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM step_up_providers WHERE id = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(row) => Ok(Some(from_row(row)?)),
        None => Ok(None),
    }
}

/// Up to `limit` providers after `after` (`(created_at, id)` of the previous page's last),
/// oldest first.
pub(in crate::store) fn list(
    conn: &Connection,
    after: Option<(UnixSeconds, String)>,
    limit: usize,
) -> Result<Vec<Provider>, StoreError> {
    let (created, id) = match after {
        Some((c, i)) => (Some(c), i),
        None => (None, String::new()),
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM step_up_providers
          WHERE ?1 IS NULL OR (created_at, id) > (?1, ?2)
          ORDER BY created_at, id LIMIT ?3"
    ))?;
    let mut rows = stmt.query(params![created, id, limit as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Deletes a provider; returns whether it existed.
pub(in crate::store) fn delete(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM step_up_providers WHERE id = ?1", [id])? > 0)
}

/// Records when the provider was last tested; returns the updated record.
pub(in crate::store) fn set_last_tested(
    conn: &Connection,
    id: &str,
    at: UnixSeconds,
) -> Result<Option<Provider>, StoreError> {
    conn.execute(
        "UPDATE step_up_providers SET last_tested_at = ?2 WHERE id = ?1",
        params![id, at],
    )?;
    get(conn, id)
}

/// Whether a provider with this id exists.
pub(in crate::store) fn exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM step_up_providers WHERE id = ?1",
            [id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Records a STEP_UP decision's requirement on every subject key, with what the provider demands
/// right now, inside the SET's transaction. A missing or disabled provider leaves a requirement
/// for a fresh authentication only. A repeat (same stream, jti and event type) changes nothing.
#[allow(clippy::too_many_arguments)]
pub(in crate::store) fn record_requirement(
    conn: &Connection,
    stream_id: &str,
    jti: &str,
    txn: Option<&str>,
    event_type: &str,
    w: &StepUpWrite,
    subject_keys: &[String],
    received_at_ms: i64,
) -> Result<(), StoreError> {
    let provider = if w.provider_id.is_empty() {
        None
    } else {
        let found = get(conn, &w.provider_id)?.filter(|p| p.enabled);
        if found.is_none() {
            tracing::warn!(stream = %stream_id, jti = %jti, provider = %w.provider_id,
                "the step-up provider is missing or disabled; the requirement asks only for a fresh authentication");
        }
        found
    };
    let (provider_id, kind, values, mode) = demand_to_db(provider.as_ref())?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO step_up_requirements (stream_id, jti, txn, event_type, provider_id, kind,
                 acr_values, validation_mode, max_age, since, received_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (stream_id, jti, event_type) DO NOTHING",
        )?
        .execute(params![
            stream_id,
            jti,
            txn,
            event_type,
            provider_id,
            kind,
            values,
            mode,
            w.max_age as i64,
            w.since,
            received_at_ms,
        ])?;
    if inserted == 0 {
        return Ok(());
    }
    let id = conn.last_insert_rowid();
    let mut link = conn.prepare_cached(
        "INSERT OR IGNORE INTO step_up_subjects (subject_key, requirement_id) VALUES (?1, ?2)",
    )?;
    for key in subject_keys {
        link.execute(params![key, id])?;
    }
    Ok(())
}

pub(in crate::store) const REQUIREMENT_COLUMNS: &str =
    "r.provider_id, r.kind, r.acr_values, r.validation_mode,
    r.max_age, r.since, r.stream_id, r.jti, r.txn, r.event_type";

/// The demand stored in a requirement row's `kind`, `acr_values` and `validation_mode`.
pub(in crate::store) fn demand_from_db(
    kind: &str,
    values: &str,
    mode: &str,
) -> Result<Demand, StoreError> {
    let values: Vec<String> = json_col(values)?;
    Ok(match kind {
        "oauth2" => Demand::Acr(values),
        "microsoft" => Demand::ConditionalAccess {
            ids: values,
            mode: ValidationMode::from_api(mode)
                .ok_or_else(|| StoreError::Corrupt(format!("validation_mode {mode:?}")))?,
        },
        other => return Err(StoreError::Corrupt(format!("step-up kind {other:?}"))),
    })
}

/// What a requirement row records of `provider`'s demand: (provider id, kind, acr_values JSON,
/// validation_mode). A missing or disabled provider demands a fresh authentication only.
pub(in crate::store) fn demand_to_db(
    provider: Option<&Provider>,
) -> Result<(String, &'static str, String, &'static str), StoreError> {
    let (provider_id, demand) = match provider {
        Some(p) => (p.id.clone(), Demand::from_settings(&p.settings)),
        None => (String::new(), Demand::Acr(Vec::new())),
    };
    let (kind, mode) = match &demand {
        Demand::Acr(_) => ("oauth2", ""),
        Demand::ConditionalAccess { mode, .. } => ("microsoft", mode.as_api()),
    };
    Ok((
        provider_id,
        kind,
        serde_json::to_string(demand.values())?,
        mode,
    ))
}

fn requirement_from_row(row: &Row<'_>) -> Result<Requirement, StoreError> {
    let demand = demand_from_db(
        &row.get::<_, String>(1)?,
        &row.get::<_, String>(2)?,
        &row.get::<_, String>(3)?,
    )?;
    Ok(Requirement {
        provider_id: row.get(0)?,
        demand,
        max_age: row.get::<_, i64>(4)?.max(0) as u64,
        since: row.get(5)?,
        stream_id: row.get(6)?,
        jti: row.get(7)?,
        txn: row.get(8)?,
        event_type: row.get(9)?,
    })
}

/// The requirements on any of `keys`, newest first (at most `MAX_REQUIREMENTS`).
pub(in crate::store) fn requirements_for(
    conn: &Connection,
    keys: &[String],
) -> Result<Vec<Requirement>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; keys.len()].join(",");
    let mut stmt = conn.prepare(&format!(
        "SELECT DISTINCT {REQUIREMENT_COLUMNS}, r.id FROM step_up_subjects k
           JOIN step_up_requirements r ON r.id = k.requirement_id
          WHERE k.subject_key IN ({marks})
          ORDER BY r.since DESC, r.id DESC LIMIT {}",
        crate::store::step_up::MAX_REQUIREMENTS
    ))?;
    let mut rows = stmt.query(params_from_iter(keys.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(requirement_from_row(row)?);
    }
    Ok(out)
}

/// The requirement a STEP_UP decision recorded, for its action document.
pub(in crate::store) fn requirement_of(
    conn: &Connection,
    stream_id: &str,
    jti: &str,
    event_type: &str,
) -> Result<Option<Requirement>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REQUIREMENT_COLUMNS} FROM step_up_requirements r
          WHERE r.stream_id = ?1 AND r.jti = ?2 AND r.event_type = ?3"
    ))?;
    let mut rows = stmt.query(params![stream_id, jti, event_type])?;
    match rows.next()? {
        Some(row) => Ok(Some(requirement_from_row(row)?)),
        None => Ok(None),
    }
}

impl SqliteStore {
    pub(in crate::store) async fn upsert_step_up_provider(
        &self,
        p: Provider,
    ) -> Result<(), StoreError> {
        self.write(move |c| upsert(c, &p)).await
    }

    pub(in crate::store) async fn step_up_provider(
        &self,
        id: &str,
    ) -> Result<Option<Provider>, StoreError> {
        let id = id.to_string();
        self.read(move |c| get(c, &id)).await
    }

    pub(in crate::store) async fn list_step_up_providers(
        &self,
        after: Option<(UnixSeconds, String)>,
        limit: usize,
    ) -> Result<Vec<Provider>, StoreError> {
        self.read(move |c| list(c, after, limit)).await
    }

    pub(in crate::store) async fn update_step_up_provider<E, F>(
        &self,
        id: &str,
        edit: F,
    ) -> Result<Option<Result<(Provider, Provider), E>>, StoreError>
    where
        E: Send + 'static,
        F: FnOnce(&mut Provider) -> Result<(), E> + Send + 'static,
    {
        let id = id.to_string();
        self.write(move |c| {
            let Some(before) = get(c, &id)? else {
                return Ok(None);
            };
            let mut after = before.clone();
            if let Err(e) = edit(&mut after) {
                return Ok(Some(Err(e)));
            }
            upsert(c, &after)?;
            Ok(Some(Ok((before, after))))
        })
        .await
    }

    pub(in crate::store) async fn delete_step_up_provider(
        &self,
        id: &str,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |c| delete(c, &id)).await
    }

    pub(in crate::store) async fn mark_step_up_provider_tested(
        &self,
        id: &str,
        at: UnixSeconds,
    ) -> Result<Option<Provider>, StoreError> {
        let id = id.to_string();
        self.write(move |c| set_last_tested(c, &id, at)).await
    }

    pub(in crate::store) async fn step_up_provider_exists(
        &self,
        id: &str,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.read(move |c| exists(c, &id)).await
    }

    pub(in crate::store) async fn step_up_requirements(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<Requirement>, StoreError> {
        self.read(move |c| requirements_for(c, &keys)).await
    }
}
