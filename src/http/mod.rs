//! Serving HTTP with the limits an exposed endpoint needs: a connection cap, a deadline for
//! request headers (a slow client cannot hold a connection open forever), and a graceful stop
//! that lets in-flight requests finish; optionally TLS, and per-client-address fairness.

pub mod fairness;

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::tls::ListenerTls;
use fairness::{ClientAddr, ConnectionsPerAddress};

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections served at once; further ones are closed at accept.
    pub max_connections: usize,
    /// Time a client has to send the request line and headers.
    pub header_read_timeout: Duration,
    /// Most connections one client address may hold open at once.
    pub max_connections_per_address: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_address: 64,
        }
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `stop` turns true, then
/// waits (up to `grace`) for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    tls: Option<Arc<ListenerTls>>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = ConnectionsPerAddress::new(limits.max_connections_per_address);
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = per_address.try_acquire(peer.ip()) else {
            tracing::debug!(
                client = %peer.ip(),
                limit = limits.max_connections_per_address,
                "per-address connection limit reached; closing a new connection"
            );
            drop(stream);
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = limits.max_connections,
                "connection limit reached; closing a new connection"
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let watcher = graceful.watcher();
        let client = ClientAddr(peer.ip());
        match &tls {
            None => {
                tokio::spawn(async move {
                    serve_connection(stream, router, client, limits, watcher).await;
                    drop((permit, slot));
                });
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                tokio::spawn(async move {
                    // The handshake gets the same deadline as the request headers: a client
                    // that opens a connection and sends nothing must not hold it.
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, router, client, limits, watcher).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(client = %client.0, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(client = %client.0, "TLS handshake timed out"),
                    }
                    drop((permit, slot));
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "connections still open after the grace period"
        );
    }
}

/// The answer to a client that used up its wrong tokens for the minute: 429 with the seconds
/// left in `Retry-After`.
pub fn too_many_failed_auth(wait: Duration) -> axum::response::Response {
    use axum::response::IntoResponse;
    let secs = wait.as_secs().max(1).to_string();
    (
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::RETRY_AFTER, secs)],
        "too many requests with a wrong token from this address; try again later",
    )
        .into_response()
}

async fn serve_connection<S>(
    stream: S,
    router: axum::Router,
    client: ClientAddr,
    limits: Limits,
    graceful: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(client);
        req
    });
    let service = TowerToHyperService::new(service);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let _ = graceful.watch(conn).await;
}
