//! Signing in with the admin token and signing out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};

use super::html::{self, esc};
use super::session::{self, csrf_matches, SignedIn};
use super::{error_page, html_page, see_other, Console};
use crate::secrets::token_matches;

/// The sign-in page, with an optional error message.
pub fn page(status: StatusCode, error: Option<&str>) -> Response {
    let notice = error.map(|e| html::notice("error", e)).unwrap_or_default();
    let body = format!(
        "{notice}<form method=\"post\" action=\"/ui/sign-in\" class=\"sign-in\">\
         <label for=\"token\">Admin token</label>\
         <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"off\" required autofocus>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>\
         <p class=\"muted\">The token is the one the admin API takes (see README.md, \
         \"Admin token\"). {}</p>",
        esc("The session ends after 12 hours or when you sign out.")
    );
    html_page(
        status,
        html::page("Sign in", html::Section::SignIn, None, &body),
    )
}

pub async fn form() -> Response {
    page(StatusCode::OK, None)
}

#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
}

pub async fn sign_in(State(c): State<Arc<Console>>, Form(f): Form<SignInForm>) -> Response {
    if !token_matches(f.token.trim(), &c.app.admin_token_hash) {
        tracing::warn!("console sign-in with a wrong admin token");
        return page(
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token."),
        );
    }
    let id = c.sessions.start();
    tracing::info!("console session started");
    with_cookie(see_other("/ui/streams"), &session::set_cookie(&id))
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<SignedIn>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_matches(&s, &f.csrf) {
        return forbidden(&s);
    }
    if let Some(v) = session::cookie_value(&headers) {
        c.sessions.end(&v);
    }
    tracing::info!("console session ended");
    with_cookie(see_other("/ui/sign-in"), &session::clear_cookie())
}

/// The answer to a form without the session's CSRF token.
pub fn forbidden(s: &SignedIn) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        Some(s),
        "This form has no valid CSRF token; reload the page and try again.",
    )
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}
