//! The actions page: planned actions filtered by status, and a retry button on dead ones that
//! goes through the admin API's own retry.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use serde_json::Value;

use super::html::{self, csrf_field, esc, query_component, text, time};
use super::session::{csrf_matches, SignedIn};
use super::sign_in::forbidden;
use super::{html_page, see_other, Console};
use crate::admin::actions::{list_actions, retry_action, ListQuery};

const FILTERS: [(&str, &str); 5] = [
    ("", "all"),
    ("pending", "pending"),
    ("running", "running"),
    ("done", "done"),
    ("dead", "dead"),
];

#[derive(Debug, Default, serde::Deserialize)]
pub struct ActionsPage {
    #[serde(default)]
    status: String,
    #[serde(default, rename = "streamId")]
    stream_id: String,
    #[serde(default, rename = "pageToken")]
    page_token: String,
    /// The action just retried, for the notice.
    #[serde(default)]
    retried: String,
}

pub async fn list(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<SignedIn>,
    Query(q): Query<ActionsPage>,
) -> Response {
    render(&c, &s, q, None).await
}

async fn render(c: &Console, s: &SignedIn, q: ActionsPage, error: Option<String>) -> Response {
    let mut body = String::new();
    if let Some(e) = &error {
        body.push_str(&html::notice("error", e));
    }
    if !q.retried.is_empty() {
        body.push_str(&html::notice(
            "info",
            &format!("Action {} is pending again.", q.retried),
        ));
    }
    // The filter form is a plain GET: it works without the script.
    body.push_str("<form method=\"get\" action=\"/ui/actions\" class=\"filter\"><label for=\"status\">Status</label><select id=\"status\" name=\"status\">");
    for (value, label) in FILTERS {
        let selected = if value == q.status { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{value}\"{selected}>{label}</option>");
    }
    let _ = write!(
        body,
        "</select><label for=\"streamId\">Stream id</label>\
         <input id=\"streamId\" name=\"streamId\" value=\"{}\">\
         <button type=\"submit\" id=\"filter\">Show</button></form>",
        esc(&q.stream_id)
    );
    let answer = list_actions(
        &c.app,
        ListQuery {
            status: Some(q.status.clone()),
            stream_id: Some(q.stream_id.clone()),
            page_size: None,
            page_token: Some(q.page_token.clone()),
        },
    )
    .await;
    let answer = match answer {
        Ok(v) => v,
        Err(e) => {
            body.push_str(&html::notice("error", &e.message));
            return html_page(
                e.status,
                html::page("Actions", html::Section::Actions, Some(&s.csrf), &body),
            );
        }
    };
    let list = answer
        .get("list")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-actions\">No actions match.</p>");
    } else {
        body.push_str(
            "<table class=\"actions\"><thead><tr><th>Id</th><th>Created</th><th>Stream</th>\
             <th>Event</th><th>Action</th><th>Sink</th><th>Status</th><th>Attempts</th>\
             <th>Last error</th><th>Finished</th><th></th></tr></thead><tbody>",
        );
        for a in &list {
            let id = text(a, "id");
            let status = text(a, "status");
            let retry = if status == "dead" || status == "pending" {
                format!(
                    "<form method=\"post\" action=\"/ui/actions/{}/retry\">{}\
                     <input type=\"hidden\" name=\"status\" value=\"{}\">\
                     <button type=\"submit\" class=\"retry\" data-action=\"{}\">Retry</button></form>",
                    query_component(id),
                    csrf_field(&s.csrf),
                    esc(&q.status),
                    esc(id),
                )
            } else {
                String::new()
            };
            let event = text(a, "eventType");
            let _ = write!(
                body,
                "<tr data-action=\"{id}\"><td class=\"mono\">{id}</td><td>{created}</td>\
                 <td class=\"mono\"><a href=\"/ui/streams/{stream_q}\">{stream}</a></td>\
                 <td>{event}</td><td>{action}</td><td>{sink}</td>\
                 <td><span class=\"status status-{status}\">{status}</span></td>\
                 <td class=\"num\">{attempts}</td><td class=\"error-text\">{error}</td>\
                 <td>{finished}</td><td>{retry}</td></tr>",
                id = esc(id),
                created = time(text(a, "createdAt")),
                stream_q = query_component(text(a, "streamId")),
                stream = esc(text(a, "streamId")),
                event = esc(event.rsplit('/').next().unwrap_or(event)),
                action = esc(text(a, "action")),
                sink = esc(text(a, "sink")),
                status = esc(status),
                attempts = a.get("attempts").map(html::value_text).unwrap_or_default(),
                error = esc(text(a, "lastError")),
                finished = if a.get("finishedAt").is_some() {
                    time(text(a, "finishedAt"))
                } else {
                    String::new()
                },
            );
        }
        body.push_str("</tbody></table>");
    }
    let next = text(&answer, "nextPageToken");
    if !next.is_empty() {
        let _ = write!(
            body,
            "<p><a href=\"/ui/actions?status={}&amp;streamId={}&amp;pageToken={}\">Older actions</a></p>",
            query_component(&q.status),
            query_component(&q.stream_id),
            query_component(next)
        );
    }
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html_page(
        status,
        html::page("Actions", html::Section::Actions, Some(&s.csrf), &body),
    )
}

#[derive(serde::Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    csrf: String,
    /// The filter the list was showing, to come back to it.
    #[serde(default)]
    status: String,
}

pub async fn retry(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    Form(f): Form<RetryForm>,
) -> Response {
    if !csrf_matches(&s, &f.csrf) {
        return forbidden(&s);
    }
    match retry_action(&c.app, &id).await {
        Ok(_) => see_other(&format!(
            "/ui/actions?status={}&retried={}",
            query_component(&f.status),
            query_component(&id)
        )),
        Err(e) => {
            let q = ActionsPage {
                status: f.status,
                ..Default::default()
            };
            render(&c, &s, q, Some(e.message)).await
        }
    }
}

/// A retry URL opened by hand: back to the list.
pub async fn back_to_list() -> Response {
    see_other("/ui/actions")
}
