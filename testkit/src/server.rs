//! The transmitter's HTTP surface: SSF discovery metadata and the JWKS, merged with the
//! management, token and poll endpoints of [`crate::mgmt`] and [`crate::poll`].
//!
//! Each group of endpoints is its own `Router` merged in [`router`], over the same state.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use crate::transmitter::Shared;

/// Delivery method URI of RFC 8935 push (SSF §6.1).
pub const DELIVERY_METHOD_PUSH: &str = "urn:ietf:rfc:8935";
/// Delivery method URI of RFC 8936 poll (SSF §6.1).
pub const DELIVERY_METHOD_POLL: &str = "urn:ietf:rfc:8936";

/// The well-known path the receiver derives from the issuer (SSF §7.2.1): inserted between
/// host and issuer path, not appended.
pub(crate) fn metadata_path(issuer_path: &str) -> String {
    format!("/.well-known/ssf-configuration{issuer_path}")
}

pub(crate) fn jwks_path(issuer_path: &str) -> String {
    format!("{issuer_path}/jwks.json")
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(discovery_routes(&shared.issuer_path, shared.legacy))
        .merge(crate::mgmt::routes(&shared.paths))
        .merge(crate::poll::routes(&shared.paths))
        .with_state(shared)
}

fn discovery_routes(issuer_path: &str, legacy: bool) -> Router<Arc<Shared>> {
    let path = if legacy {
        crate::legacy::metadata_path(issuer_path)
    } else {
        metadata_path(issuer_path)
    };
    Router::new()
        .route(&path, get(metadata))
        .route(&jwks_path(issuer_path), get(jwks))
}

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn page_response((content_type, body): (String, String)) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

async fn metadata(State(shared): State<Arc<Shared>>) -> Response {
    shared.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(page) = shared.served_page() {
        return page_response(page);
    }
    let (status, document) = shared.served_metadata();
    if status != StatusCode::OK {
        return json_response(status, r#"{"error":"metadata unavailable"}"#.to_owned());
    }
    json_response(status, document.to_string())
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let served = shared.served_jwks();
    if !served.delay.is_zero() {
        tokio::time::sleep(served.delay).await;
    }
    if let Some(page) = served.page {
        return page_response(page);
    }
    if served.status != StatusCode::OK {
        return json_response(served.status, r#"{"error":"jwks unavailable"}"#.to_owned());
    }
    let body = served
        .raw_body
        .unwrap_or_else(|| Value::to_string(&served.document));
    let mut response = json_response(StatusCode::OK, body);
    if let Some(value) = served
        .cache_control
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}
