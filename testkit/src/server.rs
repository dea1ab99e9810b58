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
use serde_json::{json, Map, Value};

use crate::state::Shared;
use crate::wire::{
    json_response, jwks_path, metadata_path, DELIVERY_METHOD_POLL, DELIVERY_METHOD_PUSH,
};

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

impl Shared {
    pub(crate) fn served_metadata(&self) -> (StatusCode, Value) {
        let state = self.lock();
        let mut doc = Map::new();
        if self.legacy {
            let issuer = state.metadata_issuer.clone().unwrap_or(self.issuer.clone());
            doc = crate::legacy::metadata(self, issuer);
        } else {
            doc.insert("spec_version".into(), json!("1_0"));
            doc.insert(
                "issuer".into(),
                json!(state.metadata_issuer.clone().unwrap_or(self.issuer.clone())),
            );
            doc.insert("jwks_uri".into(), json!(self.jwks_url()));
            doc.insert(
                "delivery_methods_supported".into(),
                json!([DELIVERY_METHOD_PUSH, DELIVERY_METHOD_POLL]),
            );
            doc.insert(
                "configuration_endpoint".into(),
                json!(self.url(&self.paths.configuration)),
            );
            doc.insert(
                "status_endpoint".into(),
                json!(self.url(&self.paths.status)),
            );
            doc.insert(
                "verification_endpoint".into(),
                json!(self.url(&self.paths.verification)),
            );
            doc.insert(
                "add_subject_endpoint".into(),
                json!(self.url(&self.paths.add_subject)),
            );
            doc.insert(
                "remove_subject_endpoint".into(),
                json!(self.url(&self.paths.remove_subject)),
            );
            doc.insert(
                "authorization_schemes".into(),
                json!([{"spec_urn": "urn:ietf:rfc:6749"}]),
            );
        }
        for (name, edit) in &state.metadata_edits {
            match edit {
                Some(value) => {
                    doc.insert(name.clone(), value.clone());
                }
                None => {
                    doc.remove(name);
                }
            }
        }
        (state.metadata_status, Value::Object(doc))
    }
}
