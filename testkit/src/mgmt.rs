//! The transmitter's SSF §8 management API (stream configuration, status, verification) and an
//! OAuth 2.0 client-credentials token endpoint, with the knobs a test turns to make them
//! misbehave: foreign `iss`, 409 on create, 429 on verify, forged verification states, failures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::events;
use crate::set::{random_jti, SetBuilder};
use crate::state::{
    subject_change, EndpointPaths, ManagementCall, Mgmt, Shared, TokenRequest, TxStream,
};
use crate::subjects;
use crate::wire::{json_response, unauthorized, DELIVERY_METHOD_POLL, DELIVERY_METHOD_PUSH};

pub(crate) fn routes(paths: &EndpointPaths) -> Router<Arc<Shared>> {
    Router::new()
        .route(
            &paths.configuration,
            post(management)
                .get(management)
                .put(management)
                .patch(management)
                .delete(management),
        )
        .route(&paths.status, get(management).post(management))
        .route(&paths.verification, post(management))
        .route(&paths.add_subject, post(management))
        .route(&paths.remove_subject, post(management))
        .route(&paths.token, post(token))
}

/// Parses an `application/x-www-form-urlencoded` body.
fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    reqwest::Url::parse(&format!("http://form.invalid/?{text}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let f = form_fields(&body);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let mut m = shared.mgmt();
    let granted = get("grant_type") == "client_credentials"
        && get("client_id") == m.client_id
        && get("client_secret") == m.client_secret;
    m.token_requests.push(TokenRequest {
        grant_type: get("grant_type"),
        client_id: get("client_id"),
        scope: get("scope"),
        secret_in_body: f.contains_key("client_secret"),
        authorization_header: headers.contains_key(header::AUTHORIZATION),
        granted,
    });
    if !granted {
        return json_response(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_client"}"#.to_owned(),
        );
    }
    let access = format!("at-{}", random_jti());
    let lifetime = m.token_lifetime;
    let expires = Instant::now()
        .checked_add(lifetime)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
    m.issued.insert(access.clone(), expires);
    json_response(
        StatusCode::OK,
        json!({"access_token": access, "token_type": "Bearer", "expires_in": lifetime.as_secs()})
            .to_string(),
    )
}

fn status_json(s: &TxStream) -> Value {
    let mut v = json!({"stream_id": s.id, "status": s.status});
    if let Some(r) = &s.reason {
        v["reason"] = json!(r);
    }
    v
}

/// What a management request asks for.
enum Op {
    Create,
    Read,
    Replace,
    Update,
    Delete,
    ReadStatus,
    UpdateStatus,
    AddSubject,
    RemoveSubject,
    Verify,
}

/// Every management endpoint: records the call, applies failure and auth knobs, then acts.
async fn management(
    State(shared): State<Arc<Shared>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let body_json: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::String("<invalid JSON>".into()))
    };
    let op = match (method.as_str(), path.as_str()) {
        ("POST", p) if p == shared.paths.configuration => Op::Create,
        ("GET", p) if p == shared.paths.configuration => Op::Read,
        ("PUT", p) if p == shared.paths.configuration => Op::Replace,
        ("PATCH", p) if p == shared.paths.configuration => Op::Update,
        ("DELETE", p) if p == shared.paths.configuration => Op::Delete,
        ("GET", p) if p == shared.paths.status => Op::ReadStatus,
        ("POST", p) if p == shared.paths.status => Op::UpdateStatus,
        ("POST", p) if p == shared.paths.add_subject => Op::AddSubject,
        ("POST", p) if p == shared.paths.remove_subject => Op::RemoveSubject,
        _ => Op::Verify,
    };
    let mut m = shared.mgmt();
    let call = ManagementCall {
        method: method.to_string(),
        uri: uri.to_string(),
        body: body_json.clone(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        status: 0,
    };
    let index = m.calls.len();
    m.calls.push(call);
    let (resp, after) = if let Some(status) = m.management_failure {
        let body = match &m.management_failure_body {
            Some(b) => b.replace(
                "{authorization}",
                m.calls[index].authorization.as_deref().unwrap_or(""),
            ),
            None => r#"{"error":"failing on purpose"}"#.to_owned(),
        };
        (
            json_response(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body,
            ),
            None,
        )
    } else if !m.authorized(&headers) {
        (unauthorized(), None)
    } else if shared.legacy {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        let name = match op {
            Op::Create | Op::Replace | Op::Update => "create",
            Op::Read => "read",
            Op::Delete => "delete",
            Op::ReadStatus => "read_status",
            Op::UpdateStatus => "update_status",
            Op::AddSubject => "add_subject",
            Op::RemoveSubject => "remove_subject",
            Op::Verify => "verify",
        };
        let (resp, verify) = crate::legacy::act(&shared, &mut m, name, &token, &body_json);
        (
            resp,
            verify.map(|v| Deliver {
                stream: v.stream,
                state: v.state,
            }),
        )
    } else {
        act(&shared, &mut m, op, &query, &body_json)
    };
    m.calls[index].status = resp.status().as_u16();
    drop(m);
    if let Some(deliver) = after {
        deliver.run(&shared);
    }
    resp
}

/// Work to do after answering: a verification event to deliver.
struct Deliver {
    stream: TxStream,
    state: Option<String>,
}

impl Deliver {
    fn run(self, shared: &Arc<Shared>) {
        let builder = if shared.legacy {
            shared.set().event(
                crate::legacy::VERIFICATION,
                crate::legacy::verification_payload(self.state.as_deref()),
            )
        } else {
            let mut payload = json!({});
            if let Some(state) = &self.state {
                payload["state"] = json!(state);
            }
            SetBuilder::from_source(shared.clone(), &shared.issuer, &shared.audience)
                .sub_id(subjects::opaque(&self.stream.id))
                .event(events::VERIFICATION, payload)
        };
        let jti = builder.claims()["jti"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let token = builder.sign();
        if self.stream.method == DELIVERY_METHOD_PUSH
            || self.stream.method == crate::legacy::DELIVERY_PUSH
        {
            let client = shared.client.clone();
            let strip = shared.mgmt().strip_bearer;
            let url = self.stream.endpoint_url;
            let auth = registered_authorization(self.stream.authorization_header, strip);
            // "Will be sent": the answer to the verify call does not wait for the push.
            tokio::spawn(async move {
                let _ =
                    crate::push::push_set_with_header(&client, &url, auth.as_deref(), &token).await;
            });
        } else {
            shared.mgmt().feed(&self.stream.id).push(jti, token);
            shared.feeds_changed.notify_waiters();
        }
    }
}

/// The `Authorization` value a push carries: as registered, or without `Bearer ` when `strip`.
pub(crate) fn registered_authorization(header: Option<String>, strip: bool) -> Option<String> {
    header.map(|h| match h.strip_prefix("Bearer ") {
        Some(bare) if strip => bare.to_owned(),
        _ => h,
    })
}

fn bad_request(message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"error": message}).to_string(),
    )
}

fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        r#"{"error":"no such stream"}"#.to_owned(),
    )
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    })
}

/// Applies the receiver-supplied properties of a create, replace or update body.
pub(crate) fn apply(
    shared: &Shared,
    s: &mut TxStream,
    body: &Map<String, Value>,
    replace: bool,
) -> Result<(), &'static str> {
    match body.get("delivery") {
        Some(Value::Object(d)) => {
            let method = d
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or(DELIVERY_METHOD_POLL);
            if method == DELIVERY_METHOD_PUSH {
                let Some(url) = d.get("endpoint_url").and_then(Value::as_str) else {
                    return Err("push delivery needs endpoint_url");
                };
                s.endpoint_url = url.to_owned();
                s.authorization_header = d
                    .get("authorization_header")
                    .and_then(Value::as_str)
                    .map(String::from);
            } else if method == DELIVERY_METHOD_POLL {
                s.endpoint_url = shared.url(&format!("{}/{}", shared.paths.poll_prefix, s.id));
                s.authorization_header = None;
            } else {
                return Err("unsupported delivery method");
            }
            s.method = method.to_owned();
        }
        None if replace => {
            s.method = DELIVERY_METHOD_POLL.into();
            s.endpoint_url = shared.url(&format!("{}/{}", shared.paths.poll_prefix, s.id));
            s.authorization_header = None;
        }
        None => {}
        Some(_) => return Err("delivery must be an object"),
    }
    if let Some(e) = strings(body.get("events_requested")) {
        s.events_requested = e;
    } else if replace {
        s.events_requested = Vec::new();
    }
    match body.get("description").and_then(Value::as_str) {
        Some(d) => s.description = Some(d.to_owned()),
        None if replace => s.description = None,
        None => {}
    }
    Ok(())
}

fn act(
    shared: &Shared,
    m: &mut Mgmt,
    op: Op,
    query: &HashMap<String, String>,
    body: &Value,
) -> (Response, Option<Deliver>) {
    let (issuer, audience) = (shared.issuer.as_str(), shared.audience.as_str());
    let obj = body.as_object().cloned().unwrap_or_default();
    let body_id = obj
        .get("stream_id")
        .and_then(Value::as_str)
        .map(String::from);
    let query_id = query.get("stream_id").cloned();
    let ok = |v: Value| json_response(StatusCode::OK, v.to_string());
    match op {
        Op::Create => {
            if m.one_stream_per_client && !m.streams.is_empty() {
                return (
                    json_response(
                        StatusCode::CONFLICT,
                        r#"{"error":"one stream per client"}"#.to_owned(),
                    ),
                    None,
                );
            }
            let mut s = TxStream {
                id: random_jti(),
                method: String::new(),
                endpoint_url: String::new(),
                authorization_header: None,
                events_requested: Vec::new(),
                description: None,
                status: "enabled".into(),
                reason: None,
                subjects: Vec::new(),
            };
            // Without `delivery` the transmitter assumes poll (SSF §8.1.1.1).
            if let Err(problem) = apply(shared, &mut s, &obj, true) {
                return (bad_request(problem), None);
            }
            let v = m.config_json(&s, issuer, audience);
            m.streams.insert(s.id.clone(), s);
            (json_response(StatusCode::CREATED, v.to_string()), None)
        }
        Op::Read => match query_id {
            Some(id) => match m.streams.get(&id) {
                Some(s) => (ok(m.config_json(s, issuer, audience)), None),
                None => (not_found(), None),
            },
            None => {
                let all: Vec<Value> = m
                    .streams
                    .values()
                    .map(|s| m.config_json(s, issuer, audience))
                    .collect();
                (ok(Value::Array(all)), None)
            }
        },
        Op::Replace | Op::Update => {
            let replace = matches!(op, Op::Replace);
            let Some(id) = body_id else {
                return (bad_request("stream_id is required"), None);
            };
            let Some(mut s) = m.streams.get(&id).cloned() else {
                return (not_found(), None);
            };
            if let Err(problem) = apply(shared, &mut s, &obj, replace) {
                return (bad_request(problem), None);
            }
            let v = m.config_json(&s, issuer, audience);
            m.streams.insert(id, s);
            (ok(v), None)
        }
        Op::Delete => match query_id.and_then(|id| m.streams.remove(&id)) {
            Some(s) => {
                m.feeds.remove(&s.id);
                (StatusCode::NO_CONTENT.into_response(), None)
            }
            None => (not_found(), None),
        },
        Op::ReadStatus => match query_id.and_then(|id| m.streams.get(&id)) {
            Some(s) => (ok(status_json(s)), None),
            None => (not_found(), None),
        },
        Op::UpdateStatus => {
            let status = obj.get("status").and_then(Value::as_str).unwrap_or("");
            if !["enabled", "paused", "disabled"].contains(&status) {
                return (
                    bad_request("status must be enabled, paused or disabled"),
                    None,
                );
            }
            let Some(s) = body_id.and_then(|id| m.streams.get_mut(&id)) else {
                return (not_found(), None);
            };
            s.status = status.to_owned();
            s.reason = obj.get("reason").and_then(Value::as_str).map(String::from);
            let v = status_json(s);
            shared.feeds_changed.notify_waiters();
            (ok(v), None)
        }
        Op::AddSubject | Op::RemoveSubject => {
            let Some(subject) = obj.get("subject").filter(|v| v.is_object()).cloned() else {
                return (bad_request("subject must be an object"), None);
            };
            let Some(s) = body_id.and_then(|id| m.streams.get_mut(&id)) else {
                return (not_found(), None);
            };
            (
                subject_change(s, subject, matches!(op, Op::AddSubject)),
                None,
            )
        }
        Op::Verify => {
            let Some(s) = body_id.and_then(|id| m.streams.get(&id)).cloned() else {
                return (not_found(), None);
            };
            if let (Some(min), Some(last)) =
                (m.min_verification_interval, m.last_verification.get(&s.id))
            {
                let since = last.elapsed().as_secs();
                if since < min {
                    let mut r = json_response(
                        StatusCode::TOO_MANY_REQUESTS,
                        r#"{"error":"too many verifications"}"#.to_owned(),
                    );
                    if let Ok(v) = HeaderValue::from_str(&(min - since).to_string()) {
                        r.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    return (r, None);
                }
            }
            m.last_verification.insert(s.id.clone(), Instant::now());
            let requested = obj.get("state").and_then(Value::as_str).map(String::from);
            m.verifications.push((s.id.clone(), requested.clone()));
            let deliver = (!m.drop_verifications).then(|| Deliver {
                state: m.verification_state.clone().or(requested),
                stream: s,
            });
            (StatusCode::NO_CONTENT.into_response(), deliver)
        }
    }
}
