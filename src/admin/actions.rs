//! Admin endpoints for planned actions: list them, retry one, and replay stored events that
//! planned none (`GET /api/v1/actions`, `POST /api/v1/actions/{id}/retry`,
//! `POST /api/v1/events/replay`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use rusqlite::{params_from_iter, Connection, OptionalExtension, Row};
use serde_json::{json, Map, Value};

use super::{json_body, json_ok, wire, ApiError, ApiQuery};
use crate::act::replay;
use crate::app::App;
use crate::clock::{now_millis, parse_rfc3339, rfc3339_millis};
use crate::store::StoreError;

const STATUSES: [&str; 4] = ["pending", "running", "done", "dead"];

const COLUMNS: &str = "id, stream_id, jti, event_type, action, sink, idempotency_key, status,
    attempts, last_error, created_at_ms, finished_at_ms";

/// One outbox row as the API shows it.
fn action_json(r: &Row<'_>) -> Result<Value, rusqlite::Error> {
    let mut m = Map::new();
    m.insert("id".into(), json!(r.get::<_, i64>(0)?.to_string()));
    m.insert("streamId".into(), json!(r.get::<_, String>(1)?));
    m.insert("jti".into(), json!(r.get::<_, String>(2)?));
    m.insert("eventType".into(), json!(r.get::<_, String>(3)?));
    m.insert("action".into(), json!(r.get::<_, String>(4)?));
    m.insert("sink".into(), json!(r.get::<_, String>(5)?));
    m.insert("idempotencyKey".into(), json!(r.get::<_, String>(6)?));
    m.insert("status".into(), json!(r.get::<_, String>(7)?));
    m.insert("attempts".into(), json!(r.get::<_, i64>(8)?));
    m.insert("lastError".into(), json!(r.get::<_, String>(9)?));
    m.insert(
        "createdAt".into(),
        json!(rfc3339_millis(r.get::<_, i64>(10)?)),
    );
    if let Some(f) = r.get::<_, Option<i64>>(11)? {
        m.insert("finishedAt".into(), json!(rfc3339_millis(f)));
    }
    Ok(Value::Object(m))
}

fn get_action(c: &Connection, id: i64) -> Result<Option<Value>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"),
        [id],
        action_json,
    )
    .optional()?)
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    #[serde(rename = "streamId")]
    stream_id: Option<String>,
    #[serde(rename = "pageSize")]
    page_size: Option<String>,
    #[serde(rename = "pageToken")]
    page_token: Option<String>,
}

/// `GET /api/v1/actions?status=&streamId=&pageSize=&pageToken=`, newest first.
pub async fn list(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
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
    let (list, more) = app
        .store
        .read(move |c| {
            // Only the filters given go into the query, so SQLite can pick the matching index.
            let mut cond = Vec::new();
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(s) = status {
                cond.push("status = ?");
                args.push(s.into());
            }
            if let Some(s) = stream_id {
                cond.push("stream_id = ?");
                args.push(s.into());
            }
            if let Some(b) = before {
                cond.push("id < ?");
                args.push(b.into());
            }
            let filter = if cond.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", cond.join(" AND "))
            };
            args.push((size as i64 + 1).into());
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM outbox {filter} ORDER BY id DESC LIMIT ?"
            ))?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(action_json(r)?);
            }
            let more = out.len() > size;
            out.truncate(size);
            Ok((out, more))
        })
        .await?;
    let next = if more {
        list.last()
            .and_then(|a| a.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    } else {
        String::new()
    };
    Ok(json_ok(json!({"list": list, "nextPageToken": next})))
}

enum Retry {
    NotFound,
    Refused(String),
    Done(Value),
}

/// `POST /api/v1/actions/{id}/retry`: a dead or pending action becomes pending, due now. A dead
/// one gets its sink's full `max_attempts` again.
pub async fn retry(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Ok(id) = id.trim().parse::<i64>() else {
        return Err(ApiError::not_found("action"));
    };
    let now = now_millis();
    let answer = app
        .store
        .write(move |c| {
            let status: Option<String> = c
                .query_row("SELECT status FROM outbox WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            match status.as_deref() {
                None => return Ok(Retry::NotFound),
                Some("dead") | Some("pending") => {}
                Some(other) => {
                    return Ok(Retry::Refused(format!(
                        "action {id} is {other}; only dead or pending actions can be retried"
                    )))
                }
            }
            c.execute(
                "UPDATE outbox
                    SET budget_from = CASE WHEN status = 'dead' THEN attempts ELSE budget_from END,
                        status = 'pending', next_attempt_ms = ?2, finished_at_ms = NULL
                  WHERE id = ?1",
                rusqlite::params![id, now],
            )?;
            match get_action(c, id)? {
                Some(a) => Ok(Retry::Done(a)),
                None => Ok(Retry::NotFound),
            }
        })
        .await?;
    match answer {
        Retry::NotFound => Err(ApiError::not_found("action")),
        Retry::Refused(m) => Err(ApiError::invalid("id", m)),
        Retry::Done(action) => {
            tracing::info!(action_id = id, "action retry requested");
            app.actions_ready.notify_one();
            Ok(json_ok(json!({"action": action})))
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
