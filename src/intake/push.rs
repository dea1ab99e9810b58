//! The push listener (RFC 8935): `POST /ssf/push/{streamId}` and `/healthz`.
//!
//! Checks in order: the stream exists (404), the bearer token (401), the media type (415), the
//! body size (413), then the SET itself (400 with an RFC 8935 error code, or 503 when keys cannot
//! be fetched). 202 only after the SET is committed.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::{receive_tolerating, Delivery, IntakeError};
use crate::app::App;
use crate::clock::now_unix;
use crate::compat::Tolerance;
use crate::http::fairness::ClientAddr;
use crate::secrets::{bearer_token, token_matches};
use crate::verify::ErrCode;

/// Seconds a transmitter is asked to wait before delivering again after a 503, when nothing
/// better is known.
const RETRY_AFTER_SECS: u64 = 30;

/// Time a client has to send the whole body once its headers arrived.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/ssf/push/{stream_id}", post(push))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app)
}

/// The RFC 8935 §2.3 error answer: JSON `{err, description}` with `Content-Language`.
pub fn set_error_response(status: StatusCode, code: ErrCode, description: &str) -> Response {
    let body = serde_json::json!({"err": code.as_str(), "description": description}).to_string();
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static("en-US"));
    if status == StatusCode::UNAUTHORIZED {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

fn is_set_media_type(headers: &HeaderMap) -> bool {
    let Some(media) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
    else {
        return false;
    };
    // `mime` compares type and subtype case-insensitively and keeps parameters apart.
    media.type_() == mime::APPLICATION
        && matches!(media.subtype().as_str(), "secevent" | "jwt")
        && match media.subtype().as_str() {
            "secevent" => media.suffix().is_some_and(|s| s == "jwt"),
            _ => media.suffix().is_none(),
        }
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes, Response> {
    use http_body_util::{BodyExt, LengthLimitError, Limited};
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        // A length-limit breach deserves 413; a broken connection does not.
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(StatusCode::PAYLOAD_TOO_LARGE.into_response())
        }
        Err(_) => Err(StatusCode::BAD_REQUEST.into_response()),
    }
}

async fn push(
    state: State<Arc<App>>,
    stream_id: Path<String>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = std::time::Instant::now();
    let app = state.0.clone();
    let client = client.map(|Extension(c)| c);
    let resp = answer(state, stream_id, client, headers, body).await;
    app.metrics.push_latency(started.elapsed().as_secs_f64());
    resp
}

async fn answer(
    State(app): State<Arc<App>>,
    Path(stream_id): Path<String>,
    client: Option<ClientAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(stream) = app.registry.get(&stream_id).filter(|s| s.is_push()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(wait) = app.auth_blocked(client) {
        return crate::http::too_many_failed_auth(wait);
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut transport = Vec::new();
    let presented = match bearer_token(authorization) {
        Some(t) => Some(t),
        // SSE draft transmitters may send the registered authorization_header without its
        // scheme: the bare token, one word.
        None if stream.is_legacy() => authorization
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.contains(' '))
            .inspect(|_| transport.push(Tolerance::BarePushToken)),
        None => None,
    };
    let authorized = presented.is_some_and(|token| {
        let current = stream
            .push_token_hash
            .as_ref()
            .is_some_and(|h| token_matches(token, h));
        // Check the previous token too, whatever the outcome above, to keep timing uniform.
        let previous = stream.prev_push_token_hash.as_ref().is_some_and(|h| {
            token_matches(token, h)
                && stream
                    .prev_push_token_expires_at
                    .is_some_and(|exp| exp > now_unix())
        });
        current | previous
    });
    if !authorized {
        app.auth_failed(client);
        app.metrics
            .set_outcome(&stream.id, ErrCode::AuthenticationFailed.as_str());
        if let Some(refused) = app.push_auth_failures.due(&stream.id) {
            // A transmitter with a stale token loses every SET: the operator must see it, but
            // an attacker must not be able to flood the log or the database with it.
            tracing::warn!(stream = %stream.id, refused,
                "push requests refused: missing or invalid bearer token");
            super::note_error(
                &app,
                &stream.id,
                &format!(
                    "push: {refused} request(s) refused for a missing or invalid bearer token"
                ),
                false,
            )
            .await;
        }
        return set_error_response(
            StatusCode::UNAUTHORIZED,
            ErrCode::AuthenticationFailed,
            "missing or invalid bearer token for this stream",
        );
    }
    if !is_set_media_type(&headers) {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let limit = app.config().server.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, read_limited(body, limit)).await {
        Ok(Ok(b)) => b,
        Ok(Err(resp)) => return resp,
        Err(_) => return StatusCode::REQUEST_TIMEOUT.into_response(),
    };
    let Ok(token) = std::str::from_utf8(&bytes) else {
        app.metrics
            .set_outcome(&stream.id, ErrCode::InvalidRequest.as_str());
        return set_error_response(
            StatusCode::BAD_REQUEST,
            ErrCode::InvalidRequest,
            "the body is not UTF-8 text",
        );
    };
    match receive_tolerating(&app, &stream, token, Delivery::Push, &transport).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(IntakeError::Rejected(e)) => {
            set_error_response(StatusCode::BAD_REQUEST, e.code, &e.description)
        }
        Err(IntakeError::Unavailable { retry_after, .. }) => unavailable(
            retry_after
                .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
                .unwrap_or(RETRY_AFTER_SECS)
                .clamp(1, 3600),
        ),
        Err(IntakeError::Store(_)) => unavailable(RETRY_AFTER_SECS),
    }
}

/// 503 with `Retry-After` (delta-seconds): not the SET's fault, deliver it again.
fn unavailable(retry_after_secs: u64) -> Response {
    let mut resp = StatusCode::SERVICE_UNAVAILABLE.into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}
