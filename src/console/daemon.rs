//! The daemon's own state: version, uptime, listeners, database and outbox.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;

use super::html::{self, esc, time};
use super::session::SignedIn;
use super::{html_page, Console};
use crate::clock::{now_unix, rfc3339};

pub async fn state(State(c): State<Arc<Console>>, Extension(s): Extension<SignedIn>) -> Response {
    let app = &c.app;
    let config = app.config();
    let uptime = Duration::from_secs(app.started.elapsed().as_secs());
    let started_at = now_unix() - uptime.as_secs() as i64;
    let snapshot = crate::admin::metrics::snapshot(app).await;
    let writable = app.store.writable().await;
    let streams = app.registry.list();
    let enabled = streams.iter().filter(|s| s.enabled).count();
    let (depth, dead) = match snapshot.store {
        Some(counts) => (
            counts.outbox_depth.to_string(),
            counts.actions_dead.to_string(),
        ),
        None => ("unknown".into(), "unknown".into()),
    };
    let rows: [(&str, String); 11] = [
        ("Version", esc(env!("CARGO_PKG_VERSION"))),
        (
            "Uptime",
            esc(&humantime::format_duration(uptime).to_string()),
        ),
        ("Started", time(&rfc3339(started_at))),
        (
            "Push listener (configured)",
            esc(&config.server.push_listen.to_string()),
        ),
        (
            "Admin listener (configured)",
            esc(&config.server.admin_listen.to_string()),
        ),
        ("Public base URL", esc(&config.server.public_base_url)),
        ("Database", esc(&app.store.description())),
        (
            "Database writable",
            if writable { "yes" } else { "no" }.into(),
        ),
        ("Outbox depth (pending and running)", esc(&depth)),
        ("Dead actions", esc(&dead)),
        (
            "Streams (enabled)",
            format!("{} ({enabled})", streams.len()),
        ),
    ];
    let mut body = String::from("<dl class=\"settings\" id=\"daemon-state\">");
    for (label, value) in rows {
        let _ = write!(body, "<dt>{label}</dt><dd>{value}</dd>");
    }
    body.push_str("</dl>");
    html_page(
        StatusCode::OK,
        html::page("Daemon", html::Section::Daemon, Some(&s.csrf), &body),
    )
}
