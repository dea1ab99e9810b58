//! `WebhookRecorder`: a real HTTP server on loopback that records every request it gets
//! (method, path, headers, body, arrival time) and answers from a script a test steers.
//!
//! It stands in for whatever an action sink posts to: tests check what arrived, benchmarks
//! when. By default every request gets `200` with an empty body; [`WebhookRecorder::answer_next`]
//! queues answers for the next requests and [`WebhookRecorder::answer_always`] changes the one
//! given once the queue is empty.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the recorder received it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub method: Method,
    /// Path and query, as sent.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the handler saw the request (its body complete).
    pub received_at: Instant,
}

impl Delivery {
    /// The header's value as text; empty when absent or not text.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    /// The body as JSON; panics when it is not (a test helper).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "webhook body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A status and body the recorder answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

impl Answer {
    pub fn new(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: body.to_string(),
        }
    }
}

struct Script {
    deliveries: Vec<Delivery>,
    next: VecDeque<Answer>,
    otherwise: Answer,
}

/// A recording webhook receiver; stops when dropped.
pub struct WebhookRecorder {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    task: JoinHandle<()>,
}

impl WebhookRecorder {
    /// Listens on `127.0.0.1`, on a port of its own.
    pub async fn start() -> WebhookRecorder {
        Self::start_on("127.0.0.1:0".parse().expect("a loopback address"))
            .await
            .expect("bind a loopback port")
    }

    /// Listens on `addr` (a test that restarts its receiver on the same address).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<WebhookRecorder> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let script = Arc::new(Mutex::new(Script {
            deliveries: Vec::new(),
            next: VecDeque::new(),
            otherwise: Answer::new(200, ""),
        }));
        let app = Router::new().fallback(record).with_state(script.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(WebhookRecorder { addr, script, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/hook`: any path is recorded alike; this is the one to configure.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Everything received so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    /// How many requests arrived so far.
    pub fn len(&self) -> usize {
        self.lock().deliveries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers the next `times` requests with this status and body, after any already queued.
    pub fn answer_next(&self, times: usize, status: u16, body: &str) {
        let mut s = self.lock();
        s.next
            .extend(std::iter::repeat(Answer::new(status, body)).take(times));
    }

    /// Answers with this status and body whenever nothing is queued.
    pub fn answer_always(&self, status: u16, body: &str) {
        self.lock().otherwise = Answer::new(status, body);
    }

    fn lock(&self) -> MutexGuard<'_, Script> {
        // A panicking test thread cannot leave the script half-written: every update is one
        // statement.
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for WebhookRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let received_at = Instant::now();
    let mut s = script.lock().unwrap_or_else(|e| e.into_inner());
    s.deliveries.push(Delivery {
        method,
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.to_string()),
        headers,
        body,
        received_at,
    });
    let answer = s.next.pop_front().unwrap_or_else(|| s.otherwise.clone());
    (answer.status, answer.body)
}
