//! The OpenAPI 3.1 description of the admin API, kept in `docs/openapi.json` and served at
//! `GET /api/openapi.json` without a token (it describes the API, it holds no data).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// Where the document is served.
pub const PATH: &str = "/api/openapi.json";

/// The document as kept in the repository.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

pub async fn serve() -> Response {
    let mut resp = DOCUMENT.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
