//! Handlers of `/api/v1/step-up/providers`: create, list, get, update, delete and test of the
//! providers that make users authenticate again (ConductorOne's StepUpProvider API).

pub mod wire;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{json, Value};

use super::{json_body, json_ok, page_after, page_size, page_token, ApiError, ApiQuery};
use crate::app::App;
use crate::clock::now_unix;
use crate::secrets::random_id;
use crate::step_up::{probe, Provider};
use wire::{apply_fields, check_complete, provider_json, READ_ONLY, WRITABLE};

/// The record under `stepUpProvider`, or the bare body (ConductorOne's create is flat).
const WRAPPER: &str = "stepUpProvider";

fn not_found() -> ApiError {
    ApiError::not_found("step-up provider")
}

fn provider_response(p: &Provider) -> Value {
    json!({ WRAPPER: provider_json(p) })
}

/// Forgets what was learnt about an issuer's keys, so that the next check discovers them again.
fn forget_issuer(app: &App, issuer_url: &str) {
    app.step_up_discovery.forget(issuer_url);
}

/// A stream's `stepUpProviderId` must name a provider that exists (empty: the configured default).
pub async fn check_stream_provider(app: &App, id: &str) -> Result<(), ApiError> {
    if id.is_empty() {
        return Ok(());
    }
    if app.store.step_up_provider_exists(id).await? {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "stepUpProviderId",
            "no step-up provider has this id (see GET /api/v1/step-up/providers)",
        ))
    }
}

pub async fn create(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let fields = match body.get(WRAPPER) {
        Some(Value::Object(inner)) => inner.clone(),
        Some(_) => return Err(ApiError::invalid(WRAPPER, "must be an object")),
        None => body,
    };
    let now = now_unix();
    let mut provider = Provider {
        id: random_id(),
        enabled: true,
        created_at: now,
        updated_at: now,
        ..Provider::default()
    };
    let names: Vec<String> = WRITABLE
        .iter()
        .filter(|f| fields.contains_key(**f))
        .map(|f| f.to_string())
        .collect();
    if !names.iter().any(|n| n == "oauth2" || n == "microsoft") {
        return Err(ApiError::invalid(
            "oauth2",
            "one of oauth2 {acrValues} or microsoft {conditionalAccessIds, tenant, validationMode} is required",
        ));
    }
    apply_fields(&mut provider, &fields, &names, app.config().jwks.allow_http)?;
    check_complete(&provider)?;
    app.store.upsert_step_up_provider(provider.clone()).await?;
    tracing::info!(provider = %provider.id, issuer = %provider.issuer_url, "step-up provider created");
    Ok(json_ok(provider_response(&provider)))
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    #[serde(rename = "pageSize")]
    page_size: Option<String>,
    #[serde(rename = "pageToken")]
    page_token: Option<String>,
}

pub async fn list(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let size = page_size(q.page_size.as_deref())?;
    let after = page_after(q.page_token.as_deref())?;
    // One more than asked tells whether another page follows.
    let mut page = app.store.list_step_up_providers(after, size + 1).await?;
    let next = if page.len() > size {
        page.truncate(size);
        page.last()
            .map(|p| page_token(p.created_at, &p.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let list: Vec<Value> = page.iter().map(provider_json).collect();
    Ok(json_ok(json!({"list": list, "nextPageToken": next})))
}

pub async fn get_one(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = app
        .store
        .step_up_provider(&id)
        .await?
        .ok_or_else(not_found)?;
    Ok(json_ok(provider_response(&p)))
}

pub async fn update(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<super::wire::UpdateQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let (record, fields) =
        super::wire::update_request(&body, WRAPPER, q.update_mask, WRITABLE, READ_ONLY)?;
    let allow_http = app.config().jwks.allow_http;
    let names = fields.clone();
    // Read, change and write in one transaction, so that two updates cannot interleave.
    let (before, updated) = app
        .store
        .update_step_up_provider(&id, move |p| -> Result<(), ApiError> {
            apply_fields(p, &record, &names, allow_http)?;
            check_complete(p)?;
            p.updated_at = now_unix();
            Ok(())
        })
        .await?
        .ok_or_else(not_found)??;
    forget_issuer(&app, &before.issuer_url);
    tracing::info!(provider = %updated.id, fields = %fields.join(","), "step-up provider updated");
    Ok(json_ok(provider_response(&updated)))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // A stream naming a deleted provider would quietly lose what its STEP_UP demands.
    let users: Vec<String> = app
        .registry
        .list()
        .iter()
        .filter(|s| s.step_up_provider_id == id)
        .map(|s| s.id.clone())
        .collect();
    if !users.is_empty() {
        return Err(ApiError {
            status: axum::http::StatusCode::BAD_REQUEST,
            code: "failed_precondition",
            message: format!(
                "stepUpProviderId: streams {} use this provider; change their stepUpProviderId first",
                users.join(", ")
            ),
        });
    }
    let existed = app.store.delete_step_up_provider(&id).await?;
    if !existed {
        return Err(not_found());
    }
    tracing::info!(provider = %id, "step-up provider deleted");
    Ok(json_ok(json!({})))
}

pub async fn test(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let provider = app
        .store
        .step_up_provider(&id)
        .await?
        .ok_or_else(not_found)?;
    let http = app
        .transmitters
        .http()
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let allow_http = app.config().jwks.allow_http;
    let report = probe::run(&app.keys, &http, &provider, allow_http).await;
    forget_issuer(&app, &provider.issuer_url);
    let now = now_unix();
    let tested = app
        .store
        .mark_step_up_provider_tested(&id, now)
        .await?
        .ok_or_else(not_found)?;
    let checks: Vec<Value> = report
        .checks
        .iter()
        .map(|c| json!({"check": c.name, "result": c.outcome.as_api(), "detail": c.detail}))
        .collect();
    tracing::info!(provider = %tested.id, passed = report.passed(), "step-up provider tested");
    Ok(json_ok(json!({
        WRAPPER: provider_json(&tested),
        "checks": checks,
        "passed": report.passed(),
    })))
}
