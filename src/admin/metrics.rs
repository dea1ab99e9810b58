//! `GET /metrics`: reads the scrape-time values from the running daemon into a
//! [`Snapshot`] and renders it with the daemon's counters.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::clock::now_unix;
use crate::metrics::{self, Snapshot, StoreCounts};
use crate::store::StoreError;

async fn store_counts(app: &App) -> Result<StoreCounts, StoreError> {
    let counts = app.store.outbox_counts().await?;
    Ok(StoreCounts {
        outbox_depth: counts.depth,
        actions_dead: counts.dead,
    })
}

/// Reads the scrape-time values from the running daemon.
pub async fn snapshot(app: &App) -> Snapshot {
    let (jwks_fetches, jwks_failures) = app.keys.fetch_counts();
    let store = match store_counts(app).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the outbox counts");
            None
        }
    };
    let now = now_unix();
    let verified_ages = app
        .registry
        .list()
        .iter()
        .filter_map(|s| {
            s.last_verified_at
                .map(|at| (s.id.clone(), now.saturating_sub(at).max(0) as f64))
        })
        .collect();
    Snapshot {
        jwks_fetches,
        jwks_failures,
        db_commits: app.store.writer_stats().commits.load(Ordering::Relaxed),
        store,
        verified_ages,
        replica: app.store.replica_id().map(str::to_string),
        leases_held: app.store.held_leases(),
    }
}

/// `GET /metrics` on the admin listener. No token: nothing here is secret.
pub async fn scrape(State(app): State<Arc<App>>) -> Response {
    let snap = snapshot(&app).await;
    let mut resp = (StatusCode::OK, app.metrics.render(&snap)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    resp
}
