//! Handlers of `/api/v1/ssf-receiver-streams`: create, list, get, update, delete, stats, test and
//! push-token rotation; and `/api/v1/events`, the stored SETs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::wire::{self, check_complete, stream_json, READ_ONLY, WRITABLE};
use super::{json_body, json_ok, ApiError, ApiQuery};
use crate::act::policy;
use crate::app::App;
use crate::clock::{now_unix, rfc3339, rfc3339_millis};
use crate::push_token;
use crate::secrets::{random_id, random_token, token_hash};
use crate::store::inbox;
use crate::stream::{RevocationAction, Stream};
use crate::verify::jwks::KeySource;
use crate::verify::subject::parse_subject_shorthand;
use crate::verify::SetEvent;

fn found(app: &App, id: &str) -> Result<Arc<Stream>, ApiError> {
    app.registry
        .get(id)
        .ok_or_else(|| ApiError::not_found("stream"))
}

fn stream_response(app: &App, s: &Stream) -> Value {
    json!({"ssfReceiverStream": stream_json(s, &app.config().server.public_base_url)})
}

/// Takes a new push token (supplied or generated) for a PUSH stream and stores only its hash.
fn install_push_token(stream: &mut Stream, supplied: Option<String>) -> Option<String> {
    if !stream.is_push() {
        stream.push_token_hash = None;
        stream.prev_push_token_hash = None;
        stream.prev_push_token_expires_at = None;
        return None;
    }
    let token = supplied.unwrap_or_else(random_token);
    stream.push_token_hash = Some(token_hash(&token));
    Some(token)
}

pub async fn create(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    // ConductorOne clients may wrap the record the way update does.
    let fields = match body.get("ssfReceiverStream") {
        Some(Value::Object(inner)) => inner.clone(),
        _ => body,
    };
    let allow_http = app.config().jwks.allow_http;
    let now = now_unix();
    let mut stream = Stream {
        id: random_id(),
        created_at: now,
        updated_at: now,
        ..Stream::default()
    };
    let names: Vec<String> = WRITABLE
        .iter()
        .filter(|f| fields.contains_key(**f))
        .map(|f| f.to_string())
        .collect();
    let supplied = wire::apply_fields(&mut stream, &fields, &names, allow_http)?;
    check_complete(&stream)?;
    if supplied.is_some() && !stream.is_push() {
        return Err(ApiError::invalid(
            "pushAuthToken",
            "POLL streams have no push token",
        ));
    }
    super::step_up::check_stream_provider(&app, &stream.step_up_provider_id).await?;
    let token = install_push_token(&mut stream, supplied);
    let stream = app.registry.create(stream).await?;
    tracing::info!(stream = %stream.id, display_name = %stream.display_name, "stream created");
    let mut out = Map::new();
    if let Some(t) = token {
        out.insert("pushAuthTokenPlaintext".into(), Value::String(t));
    }
    out.insert(
        "ssfReceiverStream".into(),
        stream_json(&stream, &app.config().server.public_base_url),
    );
    Ok(json_ok(Value::Object(out)))
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
    let size = super::page_size(q.page_size.as_deref())?;
    let all = app.registry.list();
    let start = match super::page_after(q.page_token.as_deref())? {
        None => 0,
        Some(after) => all
            .iter()
            .position(|s| (s.created_at, &s.id) > (after.0, &after.1))
            .unwrap_or(all.len()),
    };
    let page: Vec<_> = all.iter().skip(start).take(size).collect();
    let next = if start + page.len() < all.len() {
        page.last()
            .map(|s| super::page_token(s.created_at, &s.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let base = app.config().server.public_base_url.clone();
    let list: Vec<Value> = page.iter().map(|s| stream_json(s, &base)).collect();
    Ok(json_ok(json!({"list": list, "nextPageToken": next})))
}

pub async fn get_one(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = found(&app, &id)?;
    Ok(json_ok(stream_response(&app, &s)))
}

pub async fn update(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<wire::UpdateQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let (record, fields) = wire::update_request(
        &body,
        "ssfReceiverStream",
        q.update_mask,
        WRITABLE,
        READ_ONLY,
    )?;
    if fields.iter().any(|f| f == "stepUpProviderId") {
        if let Some(Value::String(pid)) = record.get("stepUpProviderId") {
            super::step_up::check_stream_provider(&app, pid.trim()).await?;
        }
    }
    let allow_http = app.config().jwks.allow_http;
    let mut new_token = None;
    let mut old_source = None;
    let updated = app
        .registry
        .modify(&id, |stream: &mut Stream| -> Result<(), ApiError> {
            old_source = Some(KeySource::of(stream));
            let was_push = stream.is_push();
            let supplied = wire::apply_fields(stream, &record, &fields, allow_http)?;
            check_complete(stream)?;
            if supplied.is_some() && !stream.is_push() {
                return Err(ApiError::invalid(
                    "pushAuthToken",
                    "POLL streams have no push token",
                ));
            }
            if supplied.is_some() || (!was_push && stream.is_push()) {
                new_token = install_push_token(stream, supplied);
            } else if !stream.is_push() {
                install_push_token(stream, None);
            }
            stream.updated_at = now_unix();
            Ok(())
        })
        .await?
        .ok_or_else(|| ApiError::not_found("stream"))?;
    if let Some(old) = old_source {
        if old != KeySource::of(&updated) {
            app.keys.forget(&old);
        }
    }
    tracing::info!(stream = %updated.id, fields = %fields.join(","), "stream updated");
    let mut out = stream_response(&app, &updated);
    if let (Some(t), Some(o)) = (new_token, out.as_object_mut()) {
        // A stream that just became PUSH needs its token shown once, as on create.
        o.insert("pushAuthTokenPlaintext".into(), Value::String(t));
    }
    Ok(json_ok(out))
}

#[derive(serde::Deserialize)]
pub struct DeleteQuery {
    /// `true`: delete the stream at its transmitter first (SSF §8.1.1.5).
    remote: Option<String>,
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    super::transmitter::delete_remote_first(&app, &id, q.remote.as_deref()).await?;
    let now = now_unix();
    app.registry
        .modify(&id, |s: &mut Stream| -> Result<(), ApiError> {
            s.deleted_at = Some(now);
            s.updated_at = now;
            Ok(())
        })
        .await?
        .ok_or_else(|| ApiError::not_found("stream"))?;
    tracing::info!(stream = %id, "stream deleted");
    Ok(json_ok(json!({})))
}

pub async fn stats(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json_ok(json!({"stats": stats_of(&app, &id).await?})))
}

/// A stream's `stats` object, also rendered by the console.
pub async fn stats_of(app: &App, id: &str) -> Result<Value, ApiError> {
    let s = found(app, id)?;
    let counts = app.store.stream_counts(id).await?;
    let mut m = Map::new();
    m.insert("streamId".into(), json!(s.id));
    m.insert("eventsReceivedCount".into(), json!(counts.received));
    m.insert("eventsActedOnCount".into(), json!(counts.acted_on));
    m.insert("eventsFailedCount".into(), json!(counts.failed));
    m.insert("stepUpActionsCount".into(), json!(counts.step_up));
    if let Some(ms) = counts.last_received_at_ms {
        m.insert("lastEventReceivedAt".into(), json!(rfc3339(ms / 1000)));
    }
    if let Some(t) = s.last_error_at {
        m.insert("lastErrorAt".into(), json!(rfc3339(t)));
    }
    m.insert("lastErrorMessage".into(), json!(s.last_error_message));
    if let Some(t) = s.last_verified_at {
        m.insert("lastVerifiedAt".into(), json!(rfc3339(t)));
    }
    m.insert("transmitterStatus".into(), json!(s.transmitter_status));
    m.insert(
        "transmitterStatusReason".into(),
        json!(s.transmitter_status_reason),
    );
    m.insert("tolerancesApplied".into(), json!(app.tolerances.of(&s.id)));
    Ok(Value::Object(m))
}

/// The action an event type gets on this stream, with the payload that makes it act where the
/// default depends on the payload.
fn preview_action(app: &App, stream: &Stream, event_type: &str, payload: &str) -> RevocationAction {
    let payload: Map<String, Value> = serde_json::from_str(payload).unwrap_or_default();
    let event = SetEvent {
        event_type: event_type.to_string(),
        payload,
    };
    let enabled = stream.event_types_enabled.is_empty()
        || stream
            .event_types_enabled
            .iter()
            .any(|p| crate::event_type::event_type_matches(p, event_type));
    if !stream.enabled || !enabled {
        return RevocationAction::LogOnly;
    }
    policy::resolve(stream, &event, &app.config().policy).0
}

pub async fn test(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let stream = found(&app, &id)?;
    let body = json_body(&body)?;
    let test_subject = match body.get("testSubject") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            Some(parse_subject_shorthand(s).map_err(|e| ApiError::invalid("testSubject", e.0))?)
        }
        Some(v @ Value::Object(_)) => Some(
            crate::verify::subject::parse_subject(v)
                .map_err(|e| ApiError::invalid("testSubject", e.0))?,
        ),
        Some(_) => return Err(ApiError::invalid("testSubject", "must be a string")),
    };
    let source = KeySource::of(&stream);
    let (reachable, key_count, jwks_error) = match app.keys.refresh(&source).await {
        Ok(set) => (true, set.len(), String::new()),
        Err(e) => (false, 0, e.to_string()),
    };
    let config = app.config();
    let local_user = test_subject
        .as_ref()
        .and_then(|s| crate::act::identity::local_user(&config, s));
    let upstream = test_subject
        .as_ref()
        .and_then(|s| s.keys.first().cloned())
        .unwrap_or_default();
    let mut preview = Map::new();
    let mut session_action = RevocationAction::Unspecified;
    for (i, (t, payload)) in crate::event_type::previewed_types().enumerate() {
        let action = preview_action(&app, &stream, &t.uri(), payload);
        if i == 0 {
            session_action = action;
        }
        preview.insert(t.short.to_string(), json!(action.as_api()));
    }
    let ready = stream.enabled && reachable && key_count > 0;
    Ok(json_ok(json!({
        "jwksReachable": reachable,
        "jwksKeyCount": key_count,
        "jwksError": jwks_error,
        "identityLinkFound": local_user.is_some(),
        "matchedUserId": local_user.unwrap_or_default(),
        "upstreamSubject": upstream,
        "subjectKeys": test_subject.map(|s| s.keys).unwrap_or_default(),
        "configuredSessionRevokedAction": session_action.as_api(),
        "actionPreview": Value::Object(preview),
        "ready": ready,
    })))
}

pub async fn rotate_push_token(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let token = rotate_push_token_of(&app, &id).await?;
    Ok(json_ok(json!({"pushAuthTokenPlaintext": token})))
}

/// [`push_token::rotate`] with its errors as the admin API answers them.
pub async fn rotate_push_token_of(app: &App, id: &str) -> Result<String, ApiError> {
    let overlap = app.config().server.push_token_overlap;
    Ok(push_token::rotate(&app.registry, id, overlap).await?)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct EventsQuery {
    #[serde(rename = "streamId")]
    pub stream_id: Option<String>,
    /// RFC 3339 time or a duration back from now (`"1h"`).
    pub since: Option<String>,
    #[serde(rename = "pageSize")]
    pub page_size: Option<String>,
    #[serde(rename = "pageToken")]
    pub page_token: Option<String>,
}

pub async fn list_events(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    Ok(json_ok(events_of(&app, q).await?))
}

/// The answer of [`list_events`], also rendered by the console.
pub async fn events_of(app: &App, q: EventsQuery) -> Result<Value, ApiError> {
    let since_ms = match q.since.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            crate::clock::parse_rfc3339(s)
                .map(|t| t * 1000)
                .or_else(|| {
                    wire::parse_api_duration(s)
                        .map(|d| crate::clock::now_millis().saturating_sub(d.as_millis() as i64))
                })
                .ok_or_else(|| {
                    ApiError::invalid("since", "must be an RFC 3339 time or a duration like 1h")
                })?,
        ),
    };
    let before_seq =
        match q.page_token.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(t.parse::<i64>().map_err(|_| {
                ApiError::invalid("pageToken", "is not a token from a previous page")
            })?),
        };
    let limit = super::page_size(q.page_size.as_deref())?;
    let filter = inbox::EventFilter {
        stream_id: q.stream_id.filter(|s| !s.is_empty()),
        since_ms,
        before_seq,
        limit,
    };
    let rows = app.store.list_events(filter).await?;
    let next = if rows.len() == limit {
        rows.last().map(|r| r.seq.to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "seq": r.seq, "streamId": r.stream_id, "jti": r.jti, "iss": r.iss, "txn": r.txn,
                "eventTypes": r.event_types, "subjectKeys": r.subject_keys,
                "receivedAt": rfc3339_millis(r.received_at_ms), "delivery": r.delivery,
                "outcome": r.outcome, "decision": r.decision, "tolerances": r.tolerances,
            })
        })
        .collect();
    Ok(json!({"list": list, "nextPageToken": next}))
}
