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
