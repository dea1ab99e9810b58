//! Admin API calls that act at a stream's transmitter: register, verify, read and update the
//! transmitter status, and the remote half of a delete. Transmitter failures answer 502 with a
//! message naming the step and the HTTP status, never a credential.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::wire::stream_json;
use super::{json_body, json_ok, ApiError};
use crate::app::App;
use crate::clock::rfc3339;
use crate::stream::TRANSMITTER_STATUSES;
use crate::transmitter::{client, TransmitterError};

/// The admin API answer for a failed transmitter operation.
pub fn api_error(e: TransmitterError) -> ApiError {
    e.into()
}

impl From<TransmitterError> for ApiError {
    fn from(e: TransmitterError) -> ApiError {
        match e {
            TransmitterError::NotFound => ApiError::not_found("stream"),
            TransmitterError::PushToken(e) => e.into(),
            TransmitterError::Store(e) => e.into(),
            TransmitterError::NotRegistered => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "failed_precondition",
                message: e.to_string(),
            },
            TransmitterError::TooSoon { .. } | TransmitterError::RateLimited { .. } => ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "resource_exhausted",
                message: e.to_string(),
            },
            TransmitterError::Failed { .. }
            | TransmitterError::Status { .. }
            | TransmitterError::Refused { .. } => {
                tracing::warn!(error = %e, "transmitter call failed");
                ApiError {
                    status: StatusCode::BAD_GATEWAY,
                    code: "unavailable",
                    message: e.to_string(),
                }
            }
        }
    }
}

pub async fn register(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let stream = client::register(&app, &id).await.map_err(api_error)?;
    let base = app.config().server.public_base_url.clone();
    Ok(json_ok(
        json!({"ssfReceiverStream": stream_json(&stream, &base)}),
    ))
}

pub async fn verify(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let req = client::verify(&app, &id).await.map_err(api_error)?;
    Ok(json_ok(json!({
        "state": req.state,
        "requestedAt": rfc3339(req.requested_at),
    })))
}

pub async fn read_status(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let st = client::read_status(&app, &id).await.map_err(api_error)?;
    Ok(json_ok(json!({"status": st.status, "reason": st.reason})))
}

pub async fn update_status(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let status = match body.get("status") {
        Some(Value::String(s)) if TRANSMITTER_STATUSES.contains(&s.as_str()) => s.clone(),
        _ => {
            return Err(ApiError::invalid(
                "status",
                "must be enabled, paused or disabled",
            ))
        }
    };
    let reason = match body.get("reason") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(ApiError::invalid("reason", "must be a string")),
    };
    let st = client::update_status(&app, &id, &status, &reason)
        .await
        .map_err(api_error)?;
    Ok(json_ok(json!({"status": st.status, "reason": st.reason})))
}

/// The `subject` of a subjects:add or subjects:remove body: a subject identifier object, or the
/// shorthand `email:alice@example.com`.
fn subject_of(
    body: &serde_json::Map<String, Value>,
) -> Result<crate::verify::subject::Subject, ApiError> {
    use crate::verify::subject::{parse_subject, parse_subject_shorthand};
    let parsed = match body.get("subject") {
        Some(v @ Value::Object(_)) => parse_subject(v),
        Some(Value::String(s)) => parse_subject_shorthand(s),
        None | Some(Value::Null) => return Err(ApiError::invalid("subject", "is required")),
        Some(_) => return Err(ApiError::invalid(
            "subject",
            "must be a subject identifier object or a shorthand such as email:alice@example.com",
        )),
    };
    parsed.map_err(|e| ApiError::invalid("subject", e.0))
}

async fn change_subject(
    app: Arc<App>,
    id: String,
    body: Bytes,
    add: bool,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let subject = subject_of(&body)?;
    client::change_subject(&app, &id, &subject, add)
        .await
        .map_err(api_error)?;
    Ok(json_ok(json!({"subject": subject.raw})))
}

/// `POST .../{id}/subjects:add` (SSF §8.1.3.2).
pub async fn add_subject(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    change_subject(app, id, body, true).await
}

/// `POST .../{id}/subjects:remove` (SSF §8.1.3.3).
pub async fn remove_subject(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    change_subject(app, id, body, false).await
}

/// `GET .../{id}/remote-config`: the stream configuration the transmitter holds.
pub async fn remote_config(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let config = client::remote_config(&app, &id).await.map_err(api_error)?;
    Ok(json_ok(json!({"transmitterConfiguration": config})))
}

/// The `?remote=` part of a delete: with `true`, the stream is deleted at its transmitter
/// before it is deleted here, and a transmitter failure leaves it in place.
pub async fn delete_remote_first(
    app: &Arc<App>,
    id: &str,
    remote: Option<&str>,
) -> Result<(), ApiError> {
    match remote.map(str::trim) {
        None | Some("") | Some("false") | Some("0") => Ok(()),
        Some("true") | Some("1") => client::delete_remote(app, id).await.map_err(api_error),
        Some(_) => Err(ApiError::invalid("remote", "must be true or false")),
    }
}
