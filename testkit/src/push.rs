//! RFC 8935 push delivery: one SET, one POST.

use std::time::Duration;

/// The media type of a pushed SET (RFC 8935 §2.1).
pub const SET_MEDIA_TYPE: &str = "application/secevent+jwt";

/// An HTTP client for talking to a receiver on loopback: proxies ignored (an environment
/// proxy would swallow 127.0.0.1), and a timeout so a hung receiver fails a test instead of
/// stalling it.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building an HTTP client without TLS roots or proxies cannot fail")
}

/// POSTs `set` to `push_url` the way RFC 8935 and SSF describe: `Content-Type:
/// application/secevent+jwt`, `Accept: application/json`, `Authorization: Bearer <token>`.
/// An empty `token` sends no `Authorization` header at all.
pub async fn push_set(
    client: &reqwest::Client,
    push_url: &str,
    token: &str,
    set: &str,
) -> reqwest::Result<reqwest::Response> {
    let mut request = client
        .post(push_url)
        .header(reqwest::header::CONTENT_TYPE, SET_MEDIA_TYPE)
        .header(reqwest::header::ACCEPT, "application/json")
        .body(set.to_owned());
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    request.send().await
}

/// Like [`push_set`], but with a whole `Authorization` value (as SSF's
/// `delivery.authorization_header` carries it), or none.
pub async fn push_set_with_header(
    client: &reqwest::Client,
    push_url: &str,
    authorization: Option<&str>,
    set: &str,
) -> reqwest::Result<reqwest::Response> {
    let mut request = client
        .post(push_url)
        .header(reqwest::header::CONTENT_TYPE, SET_MEDIA_TYPE)
        .header(reqwest::header::ACCEPT, "application/json")
        .body(set.to_owned());
    if let Some(value) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    request.send().await
}
