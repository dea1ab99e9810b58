//! What every endpoint of the test servers shares on the wire: the delivery-method URIs, the
//! well-known paths, JSON answers and the 401 of a bad bearer token.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

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

pub(crate) fn unauthorized() -> Response {
    let mut r = json_response(
        StatusCode::UNAUTHORIZED,
        r#"{"error":"invalid_token"}"#.to_owned(),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    r
}
