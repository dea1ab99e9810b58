//! The streams pages: every stream's health at a glance, and one stream in detail.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::Value;

use super::html::{self, esc, query_component, sparkline, text, time};
use super::session::SignedIn;
use super::{api_error_page, html_page, Console};
use crate::admin::streams::{events_of, stats_of, EventsQuery};
use crate::admin::wire::stream_json;
use crate::admin::ApiError;
use crate::app::App;
use crate::clock::now_millis;

/// Hours the sparkline covers.
const SPARK_HOURS: usize = 24;
/// Events shown on a stream's page.
const RECENT_EVENTS: &str = "50";

/// One word for a stream's state, from its record and stats.
fn health(stream: &Value, stats: &Value) -> &'static str {
    if stream.get("enabled") != Some(&Value::Bool(true)) {
        return "disabled";
    }
    match text(stats, "transmitterStatus") {
        "paused" => return "paused",
        "disabled" => return "disabled",
        _ => {}
    }
    let last_event = text(stats, "lastEventReceivedAt");
    let last_error = text(stats, "lastErrorAt");
    // RFC 3339 in UTC with the same layout sorts as time does.
    if !last_error.is_empty() && last_error >= last_event {
        return "error";
    }
    if last_event.is_empty() {
        return "no events";
    }
    "healthy"
}

fn health_badge(id: &str, word: &str) -> String {
    format!(
        "<span class=\"health health-{}\" data-stream=\"{}\">{word}</span>",
        word.replace(' ', "-"),
        esc(id)
    )
}

async fn per_hour(app: &App, id: &str) -> Result<Vec<u64>, ApiError> {
    Ok(app
        .store
        .events_per_hour(id, now_millis(), SPARK_HOURS)
        .await?)
}

fn count(stats: &Value, key: &str) -> String {
    stats.get(key).map(html::value_text).unwrap_or_default()
}

pub async fn list(State(c): State<Arc<Console>>, Extension(s): Extension<SignedIn>) -> Response {
    let app = &c.app;
    let base = app.config().server.public_base_url.clone();
    let mut rows = String::new();
    let streams = app.registry.list();
    for stream in streams.iter() {
        let v = stream_json(stream, &base);
        let (stats, buckets) = match (
            stats_of(app, &stream.id).await,
            per_hour(app, &stream.id).await,
        ) {
            (Ok(st), Ok(b)) => (st, b),
            (Err(e), _) | (_, Err(e)) => return api_error_page(e, &s),
        };
        let word = health(&v, &stats);
        let error = text(&stats, "lastErrorMessage");
        let _ = write!(
            rows,
            "<tr data-stream=\"{id}\"><td><a href=\"/ui/streams/{id_q}\">{name}</a>\
             <div class=\"muted mono\">{id}</div></td><td>{badge}</td><td>{enabled}</td>\
             <td>{delivery}</td><td>{tx_status}</td><td>{last_event}</td><td>{verified}</td>\
             <td>{error_at}<div class=\"error-text\">{error}</div></td>\
             <td class=\"num\">{received} / {acted} / {failed}</td><td>{spark}</td></tr>",
            id = esc(&stream.id),
            id_q = query_component(&stream.id),
            name = esc(text(&v, "displayName")),
            badge = health_badge(&stream.id, word),
            enabled = if stream.enabled { "yes" } else { "no" },
            delivery = esc(stream
                .delivery_method
                .as_api()
                .trim_start_matches("SSF_DELIVERY_METHOD_")),
            tx_status = match text(&stats, "transmitterStatus") {
                "" => "<span class=\"muted\">unknown</span>".to_string(),
                status => esc(status),
            },
            last_event = time(text(&stats, "lastEventReceivedAt")),
            verified = time(text(&stats, "lastVerifiedAt")),
            error_at = if error.is_empty() {
                String::new()
            } else {
                time(text(&stats, "lastErrorAt"))
            },
            error = esc(error),
            received = count(&stats, "eventsReceivedCount"),
            acted = count(&stats, "eventsActedOnCount"),
            failed = count(&stats, "eventsFailedCount"),
            spark = sparkline(&buckets),
        );
    }
    let body = if streams.is_empty() {
        "<p class=\"muted\">No streams yet. Create one with <code>ssfd streams create</code> \
         or the admin API.</p>"
            .to_string()
    } else {
        format!(
            "<table class=\"streams\"><thead><tr><th>Stream</th><th>Health</th><th>Enabled</th>\
             <th>Delivery</th><th>Transmitter</th><th>Last event</th><th>Last verified</th>\
             <th>Last error</th><th>Received / acted / failed</th><th>Events, 24 h</th></tr>\
             </thead><tbody>{rows}</tbody></table>"
        )
    };
    html_page(
        StatusCode::OK,
        html::page("Streams", html::Section::Streams, Some(&s.csrf), &body),
    )
}

pub async fn one(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    match one_body(&c.app, &id).await {
        Ok((title, body)) => html_page(
            StatusCode::OK,
            html::page(&title, html::Section::Streams, Some(&s.csrf), &body),
        ),
        Err(e) => api_error_page(e, &s),
    }
}

async fn one_body(app: &App, id: &str) -> Result<(String, String), ApiError> {
    let stream = app
        .registry
        .get(id)
        .ok_or_else(|| ApiError::not_found("stream"))?;
    let v = stream_json(&stream, &app.config().server.public_base_url);
    let stats = stats_of(app, id).await?;
    let buckets = per_hour(app, id).await?;
    let events = events_of(
        app,
        EventsQuery {
            stream_id: Some(id.to_string()),
            page_size: Some(RECENT_EVENTS.into()),
            ..Default::default()
        },
    )
    .await?;
    let mut body = format!(
        "<p>{} <a href=\"/ui/actions?streamId={}\">its actions</a></p>\
         <section><h2>Events per hour, last 24 h</h2>{}</section>",
        health_badge(id, health(&v, &stats)),
        query_component(id),
        sparkline(&buckets)
    );
    body.push_str("<section><h2>Counts</h2><dl class=\"settings\">");
    for (key, label) in [
        ("eventsReceivedCount", "Received"),
        ("eventsActedOnCount", "Acted on"),
        ("eventsFailedCount", "Failed"),
    ] {
        let _ = write!(body, "<dt>{label}</dt><dd>{}</dd>", count(&stats, key));
    }
    body.push_str("</dl></section><section><h2>Recent events</h2>");
    let list = events
        .get("list")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-events\">No events yet.</p>");
    } else {
        body.push_str(
            "<table class=\"events\"><thead><tr><th>Received</th><th>jti</th><th>Events</th>\
             <th>Subjects</th><th>Delivery</th><th>Outcome</th><th>Action</th></tr></thead><tbody>",
        );
        for e in &list {
            let join = |key: &str, short: bool| {
                e.get(key)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(|s| {
                                if short {
                                    s.rsplit('/').next().unwrap_or(s)
                                } else {
                                    s
                                }
                            })
                            .map(esc)
                            .collect::<Vec<_>>()
                            .join("<br>")
                    })
                    .unwrap_or_default()
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                time(text(e, "receivedAt")),
                esc(text(e, "jti")),
                join("eventTypes", true),
                join("subjectKeys", false),
                esc(text(e, "delivery")),
                esc(text(e, "outcome")),
                esc(text(e, "decision")),
            );
        }
        body.push_str("</tbody></table>");
    }
    // The API's own record of the stream, which never holds a secret.
    body.push_str("</section><section><h2>Settings</h2><dl class=\"settings\">");
    if let Value::Object(m) = &v {
        for (key, value) in m {
            let shown = if key.ends_with("At") {
                time(&html::value_text(value))
            } else {
                esc(&html::value_text(value))
            };
            let _ = write!(body, "<dt>{}</dt><dd class=\"mono\">{shown}</dd>", esc(key));
        }
    }
    body.push_str("</dl></section>");
    let title = match text(&v, "displayName") {
        "" => format!("Stream {id}"),
        name => format!("Stream {name}"),
    };
    Ok((title, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_words() {
        let on = json!({"enabled": true});
        assert_eq!(health(&json!({"enabled": false}), &json!({})), "disabled");
        assert_eq!(health(&on, &json!({})), "no events");
        assert_eq!(
            health(&on, &json!({"lastEventReceivedAt": "2026-01-01T00:00:00Z"})),
            "healthy"
        );
        assert_eq!(
            health(
                &on,
                &json!({"lastEventReceivedAt": "2026-01-01T00:00:00Z",
                        "lastErrorAt": "2026-01-01T00:00:01Z"})
            ),
            "error"
        );
        assert_eq!(
            health(&on, &json!({"transmitterStatus": "paused"})),
            "paused"
        );
    }
}
