//! Signing in with the admin token and signing out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};

use super::html;
use super::session::{self, csrf_matches, SignedIn};
use super::{error_page, html_page, same_origin, see_other, Console};
use crate::secrets::token_matches;

/// The sign-in page, with an optional error message.
pub fn page(status: StatusCode, error: Option<&str>) -> Response {
    let notice = error.map(|e| html::notice("error", e)).unwrap_or_default();
    let body = format!(
        "{notice}<form method=\"post\" action=\"/ui/sign-in\" class=\"sign-in\">\
         <label for=\"token\">Admin token</label>\
         <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"off\" required autofocus>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>\
         <p class=\"muted\">The token the admin API takes: the content of the file \
         <code>admin.token_file</code> names, <code>./ssfd-admin.token</code> by default. \
         The session ends after 12 hours, when you sign out, or when ssfd restarts.</p>"
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

pub async fn sign_in(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    // No session yet, so no CSRF token: another site must not sign the browser in either.
    if !same_origin(&headers) {
        return page(
            StatusCode::FORBIDDEN,
            Some("This form was sent from another site and was refused."),
        );
    }
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
