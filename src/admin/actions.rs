//! Admin endpoints for planned actions: list them, retry one, and replay stored events that
//! planned none (`GET /api/v1/actions`, `POST /api/v1/actions/{id}/retry`,
//! `POST /api/v1/events/replay`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{json_body, json_ok, wire, ApiError, ApiQuery};
use crate::act::replay;
use crate::app::App;
use crate::clock::{now_millis, parse_rfc3339, rfc3339_millis};
use crate::store::outbox::{ActionFilter, ActionRecord, RetryOutcome};

const STATUSES: [&str; 4] = ["pending", "running", "done", "dead"];

/// One outbox row as the API shows it.
fn action_json(r: ActionRecord) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id.to_string()));
    m.insert("streamId".into(), json!(r.stream_id));
    m.insert("jti".into(), json!(r.jti));
    m.insert("eventType".into(), json!(r.event_type));
    m.insert("action".into(), json!(r.action));
    m.insert("sink".into(), json!(r.sink));
    m.insert("idempotencyKey".into(), json!(r.idempotency_key));
    m.insert("status".into(), json!(r.status));
    m.insert("attempts".into(), json!(r.attempts));
    m.insert("lastError".into(), json!(r.last_error));
    m.insert("createdAt".into(), json!(rfc3339_millis(r.created_at_ms)));
    if let Some(f) = r.finished_at_ms {
        m.insert("finishedAt".into(), json!(rfc3339_millis(f)));
    }
    Value::Object(m)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
    #[serde(rename = "streamId")]
    pub stream_id: Option<String>,
    #[serde(rename = "pageSize")]
    pub page_size: Option<String>,
    #[serde(rename = "pageToken")]
    pub page_token: Option<String>,
}

/// `GET /api/v1/actions?status=&streamId=&pageSize=&pageToken=`, newest first.
pub async fn list(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    Ok(json_ok(list_actions(&app, q).await?))
}

/// The answer of [`list`], also rendered by the console.
pub async fn list_actions(app: &App, q: ListQuery) -> Result<Value, ApiError> {
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) if STATUSES.contains(&s) => Some(s.to_string()),
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                format!("must be one of {}", STATUSES.join(", ")),
            ))
        }
    };
    let size = super::page_size(q.page_size.as_deref())?;
    let before = match q
        .page_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(t) => Some(t.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::invalid("pageToken", "is not a token from a previous page")
        })?),
    };
    let stream_id = q.stream_id.filter(|s| !s.is_empty());
    let filter = ActionFilter {
        status,
        stream_id,
        before_id: before,
        limit: size + 1,
    };
    let mut list: Vec<Value> = app
        .store
        .list_actions(filter)
        .await?
        .into_iter()
        .map(action_json)
        .collect();
    let more = list.len() > size;
    list.truncate(size);
    let next = if more {
        list.last()
            .and_then(|a| a.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    } else {
        String::new()
    };
    Ok(json!({"list": list, "nextPageToken": next}))
}

/// `POST /api/v1/actions/{id}/retry`: a dead or pending action becomes pending, due now. A dead
/// one gets its sink's full `max_attempts` again.
pub async fn retry(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json_ok(json!({"action": retry_action(&app, &id).await?})))
}

/// What [`retry`] does, also called by the console: the retried action as the API shows it.
pub async fn retry_action(app: &App, id: &str) -> Result<Value, ApiError> {
    let Ok(id) = id.trim().parse::<i64>() else {
        return Err(ApiError::not_found("action"));
    };
    let now = now_millis();
    let answer = app.store.retry_action(id, now).await?;
    match answer {
        RetryOutcome::NotFound => Err(ApiError::not_found("action")),
        RetryOutcome::Refused(status) => Err(ApiError::invalid(
            "id",
            format!("action {id} is {status}; only dead or pending actions can be retried"),
        )),
        RetryOutcome::Retried(action) => {
            let action = action_json(*action);
            tracing::info!(action_id = id, "action retry requested");
            app.actions_ready.notify_one();
            Ok(action)
        }
    }
}

/// `POST /api/v1/events/replay` with `{"streamId", "since"?}`: plans actions for the stream's
/// stored events that planned none, as the stream is configured now.
pub async fn replay(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let stream_id = match body.get("streamId") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        None | Some(Value::Null) => return Err(ApiError::invalid("streamId", "is required")),
        Some(Value::String(_)) => return Err(ApiError::invalid("streamId", "is required")),
        Some(_) => return Err(ApiError::invalid("streamId", "must be a string")),
    };
    let since_ms = match body.get("since") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(
            parse_rfc3339(s)
                .map(|t| t * 1000)
                .or_else(|| {
                    wire::parse_api_duration(s)
                        .map(|d| now_millis().saturating_sub(d.as_millis() as i64))
                })
                .ok_or_else(|| {
                    ApiError::invalid("since", "must be an RFC 3339 time or a duration like 1h")
                })?,
        ),
        Some(_) => {
            return Err(ApiError::invalid(
                "since",
                "must be an RFC 3339 time or a duration like 1h",
            ))
        }
    };
    let stream = app
        .registry
        .get(&stream_id)
        .ok_or_else(|| ApiError::not_found("stream"))?;
    let done = replay::replay(&app, &stream, since_ms).await?;
    tracing::info!(
        stream = %stream_id, replayed = done.replayed, planned_actions = done.planned_actions,
        "stored events replayed"
    );
    Ok(json_ok(json!({
        "replayedCount": done.replayed,
        "plannedActionCount": done.planned_actions,
    })))
}
