//! The admin listener: the ConductorOne-shaped management API under `/api/`, which needs the admin
//! bearer token, plus `/healthz`, `/readyz` and `/metrics`, which carry no secrets and need none.
//! The daemon serves the web console (`crate::console`, which builds on this module) beside it.

pub mod actions;
pub mod ledger;
pub mod metrics;
pub mod openapi;
pub mod step_up;
pub mod streams;
pub mod transmitter;
pub mod wire;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::app::App;
use crate::http::fairness::ClientAddr;
use crate::push_token::PushTokenError;
use crate::secrets::{bearer_token, token_matches};
use crate::store::StoreError;

/// An admin API error: `{"code", "message"}` with its HTTP status (docs/admin-api.md#errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// A validation error; `message` starts with the camelCase field name.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_argument",
            message: format!("{field}: {problem}"),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_argument",
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("{what} not found"),
        }
    }

    pub fn unauthenticated() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: "a valid admin bearer token is required".into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
        }
    }

    pub fn internal() -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error".into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        // The detail goes to the log, never to the client.
        tracing::error!(error = %e, "admin API storage error");
        ApiError::internal()
    }
}

impl From<PushTokenError> for ApiError {
    fn from(e: PushTokenError) -> ApiError {
        match e {
            PushTokenError::NotPush => {
                ApiError::invalid("deliveryMethod", "POLL streams have no push token")
            }
            PushTokenError::NotFound => ApiError::not_found("stream"),
            PushTokenError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"code": self.code, "message": self.message}).to_string();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A query string extractor whose rejection is an [`ApiError`] like every other bad input
/// (axum's own answers plain text, which breaks clients that read `{"code", "message"}`).
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(q)) => Ok(ApiQuery(q)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// Page size of a list call: default 50, at most 1000 (docs/admin-api.md#paging); anything but a
/// non-negative integer is a field error.
pub fn page_size(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw.map(str::trim) {
        None | Some("") | Some("0") => Ok(DEFAULT_PAGE_SIZE),
        Some(s) => s
            .parse::<usize>()
            .map(|n| n.min(MAX_PAGE_SIZE))
            .map_err(|_| ApiError::invalid("pageSize", "must be a positive integer")),
    }
}

/// The `nextPageToken` of a list ordered by creation: the last record's `(createdAt, id)`.
pub fn page_token(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

/// Reads a [`page_token`]; `None` (or empty) is the first page.
pub fn page_after(token: Option<&str>) -> Result<Option<(i64, String)>, ApiError> {
    let Some(t) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (created, id) = s.split_once(':')?;
            Some((created.parse::<i64>().ok()?, id.to_string()))
        })
        .map(Some)
        .ok_or_else(|| ApiError::invalid("pageToken", "is not a token from a previous page"))
}

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 1000;

/// A JSON 200 answer.
pub fn json_ok(value: serde_json::Value) -> Response {
    let mut resp = (StatusCode::OK, value.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Parses a request body as a JSON object; an empty body is an empty object.
pub fn json_body(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

fn has_admin_token(app: &App, headers: &axum::http::HeaderMap) -> bool {
    let presented = bearer_token(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    presented.is_some_and(|t| token_matches(t, &app.admin_token_hash))
}

async fn require_admin_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let client = req.extensions().get::<ClientAddr>().copied();
    if let Some(wait) = app.auth_blocked(client) {
        return crate::http::too_many_failed_auth(wait);
    }
    if has_admin_token(&app, req.headers()) {
        next.run(req).await
    } else {
        app.auth_failed(client);
        ApiError::unauthenticated().into_response()
    }
}

/// Unknown paths: under `/api/` the token is checked first, so that without it nothing about
/// the API's shape can be learnt.
async fn unknown_route(State(app): State<Arc<App>>, req: Request) -> Response {
    if req.uri().path().starts_with("/api/") && !has_admin_token(&app, req.headers()) {
        return ApiError::unauthenticated().into_response();
    }
    ApiError::not_found("route").into_response()
}

/// A known path with the wrong method: like an unknown path, nothing is told (not even the
/// `Allow` list) without the token.
async fn method_not_allowed(State(app): State<Arc<App>>, req: Request) -> Response {
    if req.uri().path().starts_with("/api/") && !has_admin_token(&app, req.headers()) {
        return ApiError::unauthenticated().into_response();
    }
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: "this method is not allowed on this path".into(),
    }
    .into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.store.writable().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "store not writable").into_response()
    }
}

/// One operation of the admin listener: its method and path, and the handler behind them.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    handler: MethodRouter<Arc<App>>,
}

impl Route {
    fn new<H, T>(method: &'static str, path: &'static str, handler: H) -> Route
    where
        H: axum::handler::Handler<T, Arc<App>>,
        T: 'static,
    {
        let filter = match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PATCH" => MethodFilter::PATCH,
            "DELETE" => MethodFilter::DELETE,
            "PUT" => MethodFilter::PUT,
            // Only the literals below reach this; a new method is added above first.
            _ => MethodFilter::OPTIONS,
        };
        Route {
            method,
            path,
            handler: on(filter, handler),
        }
    }
}

const STREAMS: &str = "/api/v1/ssf-receiver-streams";
const STREAM: &str = "/api/v1/ssf-receiver-streams/{id}";
const STEP_UP_PROVIDERS: &str = "/api/v1/step-up/providers";
const STEP_UP_PROVIDER: &str = "/api/v1/step-up/providers/{id}";

/// The operations that need the admin token. The router is built from this list, and the test
/// that holds `docs/openapi.json` to the code reads it too, so the two cannot drift apart.
pub fn api_routes() -> Vec<Route> {
    vec![
        Route::new("POST", STREAMS, streams::create),
        Route::new("GET", STREAMS, streams::list),
        Route::new("GET", STREAM, streams::get_one),
        Route::new("POST", STREAM, streams::update),
        Route::new("PATCH", STREAM, streams::update),
        Route::new("DELETE", STREAM, streams::delete),
        Route::new(
            "GET",
            "/api/v1/ssf-receiver-streams/{id}/stats",
            streams::stats,
        ),
        Route::new(
            "POST",
            "/api/v1/ssf-receiver-streams/{id}/test",
            streams::test,
        ),
        Route::new(
            "POST",
            "/api/v1/ssf-receiver-streams/{id}/rotate-push-token",
            streams::rotate_push_token,
        ),
        Route::new(
            "POST",
            "/api/v1/ssf-receiver-streams/{id}/register",
            transmitter::register,
        ),
        Route::new(
            "POST",
            "/api/v1/ssf-receiver-streams/{id}/verify",
            transmitter::verify,
        ),
        Route::new(
            "GET",
            "/api/v1/ssf-receiver-streams/{id}/transmitter-status",
            transmitter::read_status,
        ),
        Route::new(
            "POST",
            "/api/v1/ssf-receiver-streams/{id}/transmitter-status",
            transmitter::update_status,
        ),
        Route::new("POST", STEP_UP_PROVIDERS, step_up::create),
        Route::new("GET", STEP_UP_PROVIDERS, step_up::list),
        Route::new("GET", STEP_UP_PROVIDER, step_up::get_one),
        Route::new("POST", STEP_UP_PROVIDER, step_up::update),
        Route::new("PATCH", STEP_UP_PROVIDER, step_up::update),
        Route::new("DELETE", STEP_UP_PROVIDER, step_up::delete),
        Route::new("POST", "/api/v1/step-up/providers/{id}/test", step_up::test),
        Route::new(
            "POST",
            "/api/v1/ssf-receiver-streams/{id}/subjects:add",
            transmitter::add_subject,
        ),
        Route::new(
            "POST",
            "/api/v1/ssf-receiver-streams/{id}/subjects:remove",
            transmitter::remove_subject,
        ),
        Route::new(
            "GET",
            "/api/v1/ssf-receiver-streams/{id}/remote-config",
            transmitter::remote_config,
        ),
        Route::new("GET", "/api/v1/events", streams::list_events),
        Route::new("POST", "/api/v1/subjects:check", ledger::check),
        Route::new("POST", "/api/v1/subjects:lift", ledger::lift),
        Route::new("GET", "/api/v1/actions", actions::list),
        Route::new("POST", "/api/v1/actions/{id}/retry", actions::retry),
        Route::new("POST", "/api/v1/events/replay", actions::replay),
    ]
}

/// The operations open without a token: they carry no secrets.
pub fn public_routes() -> Vec<Route> {
    vec![
        Route::new("GET", "/healthz", || async { "ok" }),
        Route::new("GET", "/readyz", readyz),
        Route::new("GET", "/metrics", metrics::scrape),
        Route::new("GET", openapi::PATH, openapi::serve),
    ]
}

fn add_routes(mut router: Router<Arc<App>>, routes: Vec<Route>) -> Router<Arc<App>> {
    // Routes with the same path and another method merge into one entry.
    for r in routes {
        router = router.route(r.path, r.handler);
    }
    router
}

pub fn router(app: Arc<App>) -> Router {
    let api = add_routes(Router::new(), api_routes()).route_layer(middleware::from_fn_with_state(
        app.clone(),
        require_admin_token,
    ));
    let public = add_routes(Router::new(), public_routes());
    let routes = Router::new()
        .merge(api)
        .merge(public)
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app);
    // The router adds `Allow` to every wrong-method answer after its handler ran, the 401
    // included: taken off outside it.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::map_response(|mut resp: Response| async move {
            if resp.status() == StatusCode::UNAUTHORIZED {
                resp.headers_mut().remove(header::ALLOW);
            }
            resp
        }))
}
