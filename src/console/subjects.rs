//! The subject lookup: the `subjects:check` answer for a subject an operator types, with the
//! revocations that make it.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};

use super::html::{self, esc, query_component, text, time};
use super::session::SignedIn;
use super::{html_page, Console};
use crate::admin::ledger::check_subject;
use crate::app::App;

#[derive(Debug, Default, serde::Deserialize)]
pub struct LookupQuery {
    #[serde(default)]
    subject: String,
    /// When the session in question was issued (RFC 3339); empty: any session.
    #[serde(default, rename = "issuedAt")]
    issued_at: String,
}

pub async fn lookup(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<SignedIn>,
    Query(q): Query<LookupQuery>,
) -> Response {
    let mut body = format!(
        "<form method=\"get\" action=\"/ui/subjects\" class=\"filter\">\
         <label for=\"subject\">Subject</label>\
         <input id=\"subject\" name=\"subject\" size=\"40\" value=\"{}\" \
         placeholder=\"email:alice@example.com or a JSON subject\">\
         <label for=\"issuedAt\">Session issued at (optional)</label>\
         <input id=\"issuedAt\" name=\"issuedAt\" value=\"{}\" placeholder=\"2026-01-01T00:00:00Z\">\
         <button type=\"submit\" id=\"check\">Check</button></form>",
        esc(&q.subject),
        esc(&q.issued_at)
    );
    let mut status = StatusCode::OK;
    if !q.subject.trim().is_empty() {
        match answer(&c.app, &q).await {
            Ok(html) => body.push_str(&html),
            Err(e) => {
                status = e.status;
                body.push_str(&html::notice("error", &e.message));
            }
        }
    }
    html_page(
        status,
        html::page("Subjects", html::Section::Subjects, Some(&s.csrf), &body),
    )
}

async fn answer(app: &App, q: &LookupQuery) -> Result<String, crate::admin::ApiError> {
    let mut request = Map::new();
    request.insert("subject".into(), json!(q.subject.trim()));
    if !q.issued_at.trim().is_empty() {
        request.insert("issuedAt".into(), json!(q.issued_at.trim()));
    }
    let v = check_subject(app, &request).await?;
    let revoked = v.get("revoked") == Some(&Value::Bool(true));
    let mut out = String::from("<section><h2>Answer</h2>");
    if revoked {
        let _ = write!(
            out,
            "<p class=\"verdict verdict-revoked\" id=\"verdict\">Revoked: sessions issued \
             before {} are revoked.</p>",
            time(text(&v, "revokedBefore"))
        );
    } else {
        out.push_str("<p class=\"verdict verdict-clear\" id=\"verdict\">Not revoked.</p>");
    }
    let reasons = v
        .get("reasons")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !reasons.is_empty() {
        out.push_str(
            "<h2>Revocations</h2><table class=\"revocations\"><thead><tr><th>Received</th>\
             <th>Stream</th><th>Event</th><th>jti</th></tr></thead><tbody>",
        );
        for r in &reasons {
            let event = text(r, "eventType");
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"mono\"><a href=\"/ui/streams/{}\">{}</a></td>\
                 <td>{}</td><td class=\"mono\">{}</td></tr>",
                time(text(r, "receivedAt")),
                query_component(text(r, "streamId")),
                esc(text(r, "streamId")),
                esc(event.rsplit('/').next().unwrap_or(event)),
                esc(text(r, "jti")),
            );
        }
        out.push_str("</tbody></table>");
    }
    let _ = write!(
        out,
        "<details><summary>The admin API's answer</summary><pre>{}</pre></details></section>",
        esc(&serde_json::to_string_pretty(&v).unwrap_or_default())
    );
    out.push_str(&step_up_section());
    Ok(out)
}

/// Where a subject's step-up requirements are shown once step-up providers exist; until then
/// the section says there are none, so the page keeps its shape.
fn step_up_section() -> String {
    "<section id=\"step-up\"><h2>Step-up requirements</h2>\
     <p class=\"muted\">This daemon has no step-up providers.</p></section>"
        .into()
}
