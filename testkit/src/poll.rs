//! RFC 8936 poll endpoints: one queue of SETs per feed, served `maxEvents` at a time with
//! `moreAvailable`, long-polled until a SET arrives or the hold time passes. Every request is
//! recorded (its `ack`s and `setErrs` too), and the endpoint can be made to fail for a while.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::mgmt::{unauthorized, EndpointPaths, Mgmt};
use crate::server::json_response;
use crate::set::SetBuilder;
use crate::transmitter::{Shared, TestTransmitter};

/// SETs waiting for acknowledgement, in the order they were queued. A delivered SET stays
/// queued until it is acknowledged or reported in `setErrs`, so an unacknowledged one is
/// delivered again.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    next: u64,
    queue: BTreeMap<u64, (String, String)>,
    index: HashMap<String, u64>,
}

impl Feed {
    /// Queues `token` under `key`, replacing a SET queued under the same key.
    pub fn push(&mut self, key: String, token: String) {
        if let Some(old) = self.index.remove(&key) {
            self.queue.remove(&old);
        }
        self.next += 1;
        self.index.insert(key.clone(), self.next);
        self.queue.insert(self.next, (key, token));
    }

    fn remove(&mut self, key: &str) {
        if let Some(seq) = self.index.remove(key) {
            self.queue.remove(&seq);
        }
    }

    fn first(&self, n: usize) -> Vec<(String, String)> {
        self.queue.values().take(n).cloned().collect()
    }

    fn len(&self) -> usize {
        self.queue.len()
    }
}

impl Mgmt {
    pub(crate) fn feed(&mut self, key: &str) -> &mut Feed {
        self.feeds.entry(key.to_owned()).or_default()
    }
}

/// One poll request as the transmitter saw it, and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct PollRequest {
    pub feed: String,
    /// The JSON body, or `Null` when it was not a JSON object.
    pub body: Value,
    pub content_language: Option<String>,
    pub authorization: Option<String>,
    /// 0 while the request is still held (or its client went away before the answer).
    pub status: u16,
    /// Keys of the SETs in the answer, in queue order.
    pub delivered: Vec<String>,
    pub more_available: bool,
}

impl PollRequest {
    /// The `ack` member (the `acks` member when there is no `ack`).
    pub fn acks(&self) -> Vec<String> {
        let member = if self.body.get("ack").is_some() {
            "ack"
        } else {
            "acks"
        };
        self.body[member]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn set_errs(&self) -> Map<String, Value> {
        self.body["setErrs"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    pub fn max_events(&self) -> Option<u64> {
        self.body["maxEvents"].as_u64()
    }

    pub fn return_immediately(&self) -> bool {
        self.body["returnImmediately"].as_bool().unwrap_or(false)
    }
}

pub(crate) fn routes(paths: &EndpointPaths) -> Router<Arc<Shared>> {
    Router::new().route(&format!("{}/{{feed}}", paths.poll_prefix), post(poll))
}

fn header_string(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

async fn poll(
    State(shared): State<Arc<Shared>>,
    Path(feed): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let doc: Option<Value> = serde_json::from_slice(&body).ok().filter(Value::is_object);
    let index;
    let hold;
    let ignore_max;
    {
        let mut m = shared.mgmt();
        index = m.polls.len();
        m.polls.push(PollRequest {
            feed: feed.clone(),
            body: doc.clone().unwrap_or(Value::Null),
            content_language: header_string(&headers, header::CONTENT_LANGUAGE),
            authorization: header_string(&headers, header::AUTHORIZATION),
            status: 0,
            delivered: Vec::new(),
            more_available: false,
        });
        if let Some((status, until, retry_after)) = m.poll_failure {
            if Instant::now() < until {
                m.polls[index].status = status;
                let mut r = json_response(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                    // RFC 8936 §2.5.1: the receiver must not rely on an error body.
                    "<html>failing on purpose</html>".to_owned(),
                );
                if let Some(secs) = retry_after {
                    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                        r.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                }
                return r;
            }
            m.poll_failure = None;
        }
        if !m.authorized(&headers) {
            m.polls[index].status = 401;
            return unauthorized();
        }
        let Some(doc) = &doc else {
            m.polls[index].status = 400;
            return json_response(StatusCode::BAD_REQUEST, "not a JSON object".to_owned());
        };
        if shared.legacy && !doc["returnImmediately"].as_bool().unwrap_or(false) {
            m.polls[index].status = 404;
            return json_response(
                StatusCode::NOT_FOUND,
                json!({"error": crate::legacy::NO_LONG_POLLING}).to_string(),
            );
        }
        // The SSE draft named the member `acks`; a legacy transmitter reads only that.
        let acks: Vec<String> = if shared.legacy {
            crate::legacy::acks(doc)
        } else {
            doc["ack"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let keep = m.ignore_acks;
        for jti in acks {
            if !keep {
                m.feed(&feed).remove(&jti);
            }
            m.acked.push(jti);
        }
        if let Some(errs) = doc["setErrs"].as_object() {
            for (key, err) in errs {
                if !keep {
                    m.feed(&feed).remove(key);
                }
                m.set_errs.insert(key.clone(), err.clone());
            }
        }
        hold = m.poll_hold;
        ignore_max = m.ignore_max_events;
    }
    let doc = doc.unwrap_or_default();
    let max = doc["maxEvents"]
        .as_u64()
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .filter(|_| !ignore_max)
        .unwrap_or(usize::MAX);
    let immediately = doc["returnImmediately"].as_bool().unwrap_or(false);
    let deadline = tokio::time::Instant::now() + hold;
    loop {
        let notified = shared.feeds_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut m = shared.mgmt();
            let held = m.streams.get(&feed).is_some_and(|s| s.status != "enabled");
            let (sets, more) = if held || max == 0 {
                (Vec::new(), false)
            } else {
                let f = m.feed(&feed);
                let sets = f.first(max);
                let more = f.len() > sets.len();
                (sets, more)
            };
            if !sets.is_empty()
                || immediately
                || max == 0
                || tokio::time::Instant::now() >= deadline
            {
                let record = &mut m.polls[index];
                record.status = 200;
                record.delivered = sets.iter().map(|(k, _)| k.clone()).collect();
                record.more_available = more;
                let map: Map<String, Value> = sets
                    .into_iter()
                    .map(|(k, t)| (k, Value::String(t)))
                    .collect();
                return json_response(
                    StatusCode::OK,
                    json!({"sets": map, "moreAvailable": more}).to_string(),
                );
            }
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// The `jti` of a compact SET, read without verifying it.
fn jti_of(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["jti"].as_str().map(String::from)
}

/// Poll endpoint controls.
impl TestTransmitter {
    fn with_feeds<R>(&self, f: impl FnOnce(&mut Mgmt) -> R) -> R {
        let r = f(&mut self.shared().mgmt());
        self.shared().feeds_changed.notify_waiters();
        r
    }

    /// The RFC 8936 poll endpoint of a feed. A stream created through the management API
    /// polls the feed named by its stream id.
    pub fn poll_url(&self, feed: &str) -> String {
        self.shared()
            .url(&format!("{}/{feed}", self.shared().paths.poll_prefix))
    }

    /// Queues a compact SET under its own `jti`, which it returns. Panics when the token has
    /// no readable `jti` (use [`TestTransmitter::enqueue_as`] for such tokens).
    pub fn enqueue(&self, feed: &str, token: &str) -> String {
        let jti = jti_of(token).unwrap_or_else(|| panic!("the token has no readable jti"));
        self.enqueue_as(feed, &jti, token);
        jti
    }

    /// Queues a token under any key, e.g. one that is not its `jti`.
    pub fn enqueue_as(&self, feed: &str, key: &str, token: &str) {
        self.with_feeds(|m| m.feed(feed).push(key.to_owned(), token.to_owned()));
    }

    /// Signs and queues a SET; returns its `jti`.
    pub fn enqueue_set(&self, feed: &str, set: &SetBuilder) -> String {
        self.enqueue(feed, &set.sign())
    }

    /// SETs queued and not yet acknowledged or reported.
    pub fn queued(&self, feed: &str) -> usize {
        self.with_mgmt_ref(|m| m.feeds.get(feed).map_or(0, Feed::len))
    }

    fn with_mgmt_ref<R>(&self, f: impl FnOnce(&Mgmt) -> R) -> R {
        f(&self.shared().mgmt())
    }

    /// How long a long poll is held when nothing is queued (default 5 s).
    pub fn set_poll_hold(&self, hold: Duration) {
        self.with_feeds(|m| m.poll_hold = hold);
    }

    /// Keep delivering acknowledged and rejected SETs (or honour `ack` and `setErrs` again).
    pub fn set_poll_ignores_acks(&self, ignore: bool) {
        self.with_feeds(|m| m.ignore_acks = ignore);
    }

    /// Deliver everything queued in one answer, whatever `maxEvents` says (or obey it again).
    pub fn set_poll_ignores_max_events(&self, ignore: bool) {
        self.with_feeds(|m| m.ignore_max_events = ignore);
    }

    /// Every poll request answers `status` for `duration` from now.
    pub fn fail_polls(&self, status: u16, duration: Duration) {
        self.with_feeds(|m| m.poll_failure = Some((status, Instant::now() + duration, None)));
    }

    /// Like [`TestTransmitter::fail_polls`], with a `Retry-After` of `retry_after_secs`.
    pub fn fail_polls_with_retry_after(
        &self,
        status: u16,
        duration: Duration,
        retry_after_secs: u64,
    ) {
        self.with_feeds(|m| {
            m.poll_failure = Some((status, Instant::now() + duration, Some(retry_after_secs)))
        });
    }

    /// Every poll request so far, in arrival order.
    pub fn poll_requests(&self) -> Vec<PollRequest> {
        self.with_mgmt_ref(|m| m.polls.clone())
    }

    /// Every jti acknowledged so far, in order (repeats included).
    pub fn acked(&self) -> Vec<String> {
        self.with_mgmt_ref(|m| m.acked.clone())
    }

    /// Every `setErrs` entry received, by key (the latest wins).
    pub fn set_errs(&self) -> BTreeMap<String, Value> {
        self.with_mgmt_ref(|m| m.set_errs.clone())
    }
}
