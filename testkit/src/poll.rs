//! RFC 8936 poll endpoints: one queue of SETs per feed, served `maxEvents` at a time with
//! `moreAvailable`, long-polled until a SET arrives or the hold time passes. Every request is
//! recorded (its `ack`s and `setErrs` too), and the endpoint can be made to fail for a while.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::state::{EndpointPaths, PollRequest, Shared};
use crate::wire::{json_response, unauthorized};

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
pub(crate) fn jti_of(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["jti"].as_str().map(String::from)
}
