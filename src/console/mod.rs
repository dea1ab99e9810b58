//! The operator's web console at `/ui` on the admin listener: server-rendered pages over the
//! same functions the admin API's handlers call, signed in with the admin token.
//!
//! Without a live session every console route answers the sign-in page (status 401), never
//! data. Pages read without JavaScript; the one script only shows times in the browser's zone
//! and offers an optional refresh. Assets are compiled in and a strict Content-Security-Policy
//! keeps the browser from loading anything else.

mod actions;
mod daemon;
mod html;
mod session;
mod sign_in;
mod streams;
mod subjects;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Router};

use crate::admin::ApiError;
use crate::app::App;
use session::{Sessions, SignedIn};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// Nothing but the console's own stylesheet and script; no frames, no foreign form targets.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the console's handlers share: the daemon and the live sessions.
struct Console {
    app: Arc<App>,
    sessions: Sessions,
}

type Shared = Arc<Console>;

/// The console's routes, ready to merge into the admin listener's router.
pub fn router<S>(app: Arc<App>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let console: Shared = Arc::new(Console {
        app,
        sessions: Sessions::default(),
    });
    // Every method router gets an HTML fallback for other methods, so that the session check
    // runs for them too: without a session even a wrong method answers the sign-in page.
    let signed_in = Router::new()
        .route("/ui", page(get(home)))
        .route("/ui/", page(get(home)))
        .route("/ui/streams", page(get(streams::list)))
        .route("/ui/streams/{id}", page(get(streams::one)))
        .route("/ui/actions", page(get(actions::list)))
        .route(
            "/ui/actions/{id}/retry",
            page(post(actions::retry).get(actions::back_to_list)),
        )
        .route("/ui/subjects", page(get(subjects::lookup)))
        .route("/ui/daemon", page(get(daemon::state)))
        .route("/ui/sign-out", page(post(sign_in::sign_out).get(home)))
        .route("/ui/{*rest}", page(get(not_found)))
        .route_layer(middleware::from_fn_with_state(
            console.clone(),
            require_session,
        ));
    Router::new()
        .merge(signed_in)
        .route("/ui/sign-in", get(sign_in::form).post(sign_in::sign_in))
        .route("/ui/assets/console.css", get(css))
        .route("/ui/assets/console.js", get(js))
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

fn page(route: MethodRouter<Shared>) -> MethodRouter<Shared> {
    route.fallback(method_not_allowed)
}

async fn method_not_allowed(Extension(s): Extension<SignedIn>) -> Response {
    error_page(
        StatusCode::METHOD_NOT_ALLOWED,
        Some(&s),
        "This page does not take that method.",
    )
}

/// Lets a request through only with a live session, which it hands on to the handler.
async fn require_session(State(c): State<Shared>, mut req: Request, next: Next) -> Response {
    if let Some(signed_in) = session::cookie_value(req.headers()).and_then(|v| c.sessions.find(&v))
    {
        if req.method() == axum::http::Method::POST && !same_origin(req.headers()) {
            return error_page(
                StatusCode::FORBIDDEN,
                Some(&signed_in),
                "This form was sent from another site and was refused.",
            );
        }
        req.extensions_mut().insert(signed_in);
        next.run(req).await
    } else {
        sign_in::page(StatusCode::UNAUTHORIZED, None)
    }
}

/// A form POST must come from the console's own origin when the browser says where it came from.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    !host.is_empty() && authority == Some(host)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it browsers send `Origin: null` on the console's own form
    // posts, which [`same_origin`] would refuse.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    resp
}

async fn home() -> Response {
    see_other("/ui/streams")
}

async fn not_found(Extension(s): Extension<SignedIn>) -> Response {
    error_page(StatusCode::NOT_FOUND, Some(&s), "There is no such page.")
}

/// An HTML page answer.
fn html_page(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// A 303 to another console page (the answer to a form POST).
fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A page that only says what went wrong.
fn error_page(status: StatusCode, s: Option<&SignedIn>, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    html_page(
        status,
        html::page(
            title,
            html::Section::Streams,
            s.map(|s| s.csrf.as_str()),
            &html::notice("error", message),
        ),
    )
}

/// An admin API error shown as a page: its status and message (never storage details, which
/// the API already keeps out of its messages).
fn api_error_page(e: ApiError, s: &SignedIn) -> Response {
    error_page(e.status, Some(s), &e.message)
}
