//! The transmitter's SSF §8 management API (stream configuration, status, verification) and an
//! OAuth 2.0 client-credentials token endpoint, with the knobs a test turns to make them
//! misbehave: foreign `iss`, 409 on create, 429 on verify, forged verification states, failures.

use std::collections::{BTreeMap, HashMap, HashSet};
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
use crate::poll::Feed;
use crate::server::{json_response, DELIVERY_METHOD_POLL, DELIVERY_METHOD_PUSH};
use crate::set::{random_jti, SetBuilder};
use crate::subjects;
use crate::transmitter::{Shared, TestTransmitter};

/// Paths (from the host) of the endpoints a transmitter API style uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPaths {
    pub configuration: String,
    pub status: String,
    pub verification: String,
    /// SSF §8.1.3.2 and §8.1.3.3.
    pub add_subject: String,
    pub remove_subject: String,
    pub token: String,
    /// Poll endpoints are `{poll_prefix}/{feed}`.
    pub poll_prefix: String,
}

impl EndpointPaths {
    /// SailPoint Identity Security Cloud style: `/ssf/streams`, `/ssf/streams/status`,
    /// `/ssf/streams/verify`.
    pub fn sailpoint() -> EndpointPaths {
        EndpointPaths {
            configuration: "/ssf/streams".into(),
            status: "/ssf/streams/status".into(),
            verification: "/ssf/streams/verify".into(),
            add_subject: "/ssf/streams/subjects:add".into(),
            remove_subject: "/ssf/streams/subjects:remove".into(),
            token: "/oauth/token".into(),
            poll_prefix: "/ssf/poll".into(),
        }
    }

    /// Okta style: `/api/v1/ssf/stream`, `/api/v1/ssf/stream/status`,
    /// `/api/v1/ssf/stream/verification`.
    pub fn okta() -> EndpointPaths {
        EndpointPaths {
            configuration: "/api/v1/ssf/stream".into(),
            status: "/api/v1/ssf/stream/status".into(),
            verification: "/api/v1/ssf/stream/verification".into(),
            add_subject: "/api/v1/ssf/stream/subjects:add".into(),
            remove_subject: "/api/v1/ssf/stream/subjects:remove".into(),
            token: "/oauth2/v1/token".into(),
            poll_prefix: "/api/v1/ssf/poll".into(),
        }
    }
}

impl Default for EndpointPaths {
    fn default() -> Self {
        EndpointPaths::sailpoint()
    }
}

/// One management request as the transmitter saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagementCall {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The JSON body, or `Null`.
    pub body: Value,
    pub authorization: Option<String>,
    pub status: u16,
}

/// One token request as the transmitter saw it (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub grant_type: String,
    pub client_id: String,
    pub scope: String,
    /// Whether `client_secret` came in the form body (client_secret_post).
    pub secret_in_body: bool,
    /// Whether the request carried an `Authorization` header.
    pub authorization_header: bool,
    pub granted: bool,
}

/// A stream at the transmitter.
#[derive(Debug, Clone)]
pub(crate) struct TxStream {
    pub id: String,
    pub method: String,
    pub endpoint_url: String,
    pub authorization_header: Option<String>,
    pub events_requested: Vec<String>,
    pub description: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    /// Subjects added by the receiver (SSF §8.1.3), in order.
    pub subjects: Vec<Value>,
}

/// Everything the management, token and poll endpoints share.
pub(crate) struct Mgmt {
    pub client_id: String,
    pub client_secret: String,
    pub static_tokens: HashSet<String>,
    /// Issued access tokens and when they expire.
    pub issued: HashMap<String, Instant>,
    pub token_lifetime: Duration,
    pub token_requests: Vec<TokenRequest>,
    pub unauthorized: usize,

    pub streams: BTreeMap<String, TxStream>,
    pub one_stream_per_client: bool,
    pub config_iss: Option<String>,
    pub events_supported: Vec<String>,
    pub min_verification_interval: Option<u64>,
    pub inactivity_timeout: Option<u64>,
    pub last_verification: HashMap<String, Instant>,
    pub verification_state: Option<String>,
    pub drop_verifications: bool,
    pub verifications: Vec<(String, Option<String>)>,
    pub calls: Vec<ManagementCall>,
    pub management_failure: Option<u16>,
    /// The body of those failures; `{authorization}` is replaced by the request's header, as
    /// a careless transmitter echoes credentials.
    pub management_failure_body: Option<String>,

    /// Legacy mode: the stream of each bearer token.
    pub legacy_streams: crate::legacy::TokenStreams,
    /// Push with the registered `authorization_header` minus its `Bearer ` scheme, as some
    /// legacy transmitters do.
    pub strip_bearer: bool,

    pub feeds: HashMap<String, Feed>,
    pub poll_failure: Option<(u16, Instant, Option<u64>)>,
    pub poll_hold: Duration,
    /// Deliver the whole queue whatever `maxEvents` asks for (a misbehaving transmitter).
    pub ignore_max_events: bool,
    /// Keep acknowledged and rejected SETs queued (a transmitter that ignores `ack`).
    pub ignore_acks: bool,
    pub polls: Vec<crate::poll::PollRequest>,
    pub acked: Vec<String>,
    pub set_errs: BTreeMap<String, Value>,
}

impl Mgmt {
    pub fn new() -> Mgmt {
        Mgmt {
            client_id: "ssfd-test-client".into(),
            client_secret: format!("secret-{}", random_jti()),
            static_tokens: HashSet::from([format!("static-{}", random_jti())]),
            issued: HashMap::new(),
            token_lifetime: Duration::from_secs(3600),
            token_requests: Vec::new(),
            unauthorized: 0,
            streams: BTreeMap::new(),
            one_stream_per_client: false,
            config_iss: None,
            events_supported: events::CAEP
                .iter()
                .chain(events::RISC.iter())
                .map(|s| s.to_string())
                .collect(),
            min_verification_interval: None,
            inactivity_timeout: None,
            last_verification: HashMap::new(),
            verification_state: None,
            drop_verifications: false,
            verifications: Vec::new(),
            calls: Vec::new(),
            management_failure: None,
            management_failure_body: None,
            legacy_streams: HashMap::new(),
            strip_bearer: false,
            feeds: HashMap::new(),
            poll_failure: None,
            poll_hold: Duration::from_secs(5),
            ignore_max_events: false,
            ignore_acks: false,
            polls: Vec::new(),
            acked: Vec::new(),
            set_errs: BTreeMap::new(),
        }
    }

    /// Whether an `Authorization` header carries a token this transmitter accepts.
    pub fn authorized(&mut self, headers: &HeaderMap) -> bool {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = match token {
            Some(t) if self.static_tokens.contains(t) => true,
            Some(t) => self.issued.get(t).is_some_and(|exp| *exp > Instant::now()),
            None => false,
        };
        if !ok {
            self.unauthorized += 1;
        }
        ok
    }

    fn config_json(&self, s: &TxStream, issuer: &str, audience: &str) -> Value {
        let delivered: Vec<&String> = s
            .events_requested
            .iter()
            .filter(|e| self.events_supported.contains(e))
            .collect();
        let mut v = json!({
            "stream_id": s.id,
            "iss": self.config_iss.clone().unwrap_or_else(|| issuer.to_owned()),
            "aud": audience,
            // The authorization header is write-only: never echoed.
            "delivery": {"method": s.method, "endpoint_url": s.endpoint_url},
            "events_supported": self.events_supported,
            "events_requested": s.events_requested,
            "events_delivered": delivered,
        });
        if let Some(d) = &s.description {
            v["description"] = json!(d);
        }
        if let Some(i) = self.min_verification_interval {
            v["min_verification_interval"] = json!(i);
        }
        if let Some(i) = self.inactivity_timeout {
            v["inactivity_timeout"] = json!(i);
        }
        v
    }
}

pub(crate) fn unauthorized() -> Response {
    let mut r = json_response(
        StatusCode::UNAUTHORIZED,
        r#"{"error":"invalid_token"}"#.to_owned(),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    r
}

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
fn registered_authorization(header: Option<String>, strip: bool) -> Option<String> {
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
fn apply(
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

/// SSF §8.1.3: add answers 200 (adding twice changes nothing), remove answers 204, or 404 for
/// a subject the stream does not hold.
pub(crate) fn subject_change(s: &mut TxStream, subject: Value, add: bool) -> Response {
    let held = s.subjects.iter().position(|x| *x == subject);
    match (add, held) {
        (true, Some(_)) => StatusCode::OK.into_response(),
        (true, None) => {
            s.subjects.push(subject);
            StatusCode::OK.into_response()
        }
        (false, Some(i)) => {
            s.subjects.remove(i);
            StatusCode::NO_CONTENT.into_response()
        }
        (false, None) => json_response(
            StatusCode::NOT_FOUND,
            r#"{"error":"no such subject in the stream"}"#.to_owned(),
        ),
    }
}

/// Management, token and stream controls.
impl TestTransmitter {
    fn with_mgmt<R>(&self, f: impl FnOnce(&mut Mgmt) -> R) -> R {
        f(&mut self.shared().mgmt())
    }

    /// The endpoint paths this transmitter serves.
    pub fn paths(&self) -> EndpointPaths {
        self.shared().paths.clone()
    }

    pub fn configuration_endpoint(&self) -> String {
        self.shared().url(&self.shared().paths.configuration)
    }

    pub fn status_endpoint(&self) -> String {
        self.shared().url(&self.shared().paths.status)
    }

    pub fn verification_endpoint(&self) -> String {
        self.shared().url(&self.shared().paths.verification)
    }

    pub fn token_url(&self) -> String {
        self.shared().url(&self.shared().paths.token)
    }

    /// A bearer token the management and poll endpoints always accept.
    pub fn static_token(&self) -> String {
        self.with_mgmt(|m| m.static_tokens.iter().next().cloned().unwrap_or_default())
    }

    /// The client id and secret the token endpoint accepts.
    pub fn client_credentials(&self) -> (String, String) {
        self.with_mgmt(|m| (m.client_id.clone(), m.client_secret.clone()))
    }

    /// Lifetime (`expires_in`) of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.with_mgmt(|m| m.token_lifetime = lifetime);
    }

    /// Makes every access token issued so far invalid (401 from now on).
    pub fn revoke_tokens(&self) {
        self.with_mgmt(|m| m.issued.clear());
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.with_mgmt(|m| m.token_requests.iter().filter(|r| r.granted).count())
    }

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.with_mgmt(|m| m.token_requests.clone())
    }

    /// Management and poll requests refused with 401 so far.
    pub fn unauthorized_count(&self) -> usize {
        self.with_mgmt(|m| m.unauthorized)
    }

    /// Every management request so far, in arrival order.
    pub fn management_calls(&self) -> Vec<ManagementCall> {
        self.with_mgmt(|m| m.calls.clone())
    }

    /// Makes every management endpoint answer `status` (`None`: work again).
    pub fn fail_management(&self, status: Option<u16>) {
        self.with_mgmt(|m| {
            m.management_failure = status;
            m.management_failure_body = None;
        });
    }

    /// Like [`TestTransmitter::fail_management`] with this body; `{authorization}` in it is
    /// replaced by the request's `Authorization` header, as a transmitter echoing credentials.
    pub fn fail_management_with_body(&self, status: u16, body: &str) {
        self.with_mgmt(|m| {
            m.management_failure = Some(status);
            m.management_failure_body = Some(body.to_owned());
        });
    }

    /// Like Okta and SailPoint, allow one stream per client: a second create gets 409.
    pub fn set_one_stream_per_client(&self, on: bool) {
        self.with_mgmt(|m| m.one_stream_per_client = on);
    }

    /// Announces another `iss` in stream configurations (`None`: the real issuer).
    pub fn set_config_iss(&self, iss: Option<String>) {
        self.with_mgmt(|m| m.config_iss = iss);
    }

    /// `min_verification_interval` in seconds; verifying sooner gets 429 with `Retry-After`.
    pub fn set_min_verification_interval(&self, secs: Option<u64>) {
        self.with_mgmt(|m| m.min_verification_interval = secs);
    }

    /// `inactivity_timeout` in seconds, announced in stream configurations.
    pub fn set_inactivity_timeout(&self, secs: Option<u64>) {
        self.with_mgmt(|m| m.inactivity_timeout = secs);
    }

    /// Verification events carry this `state` instead of the requested one.
    pub fn set_verification_state(&self, state: Option<String>) {
        self.with_mgmt(|m| m.verification_state = state);
    }

    /// Accept verification requests (204) but never send the event.
    pub fn set_drop_verifications(&self, drop: bool) {
        self.with_mgmt(|m| m.drop_verifications = drop);
    }

    /// (stream id, requested state) of every accepted verification request.
    pub fn verification_requests(&self) -> Vec<(String, Option<String>)> {
        self.with_mgmt(|m| m.verifications.clone())
    }

    /// Creates a stream directly, as an earlier registration would have. `delivery` is an SSF
    /// delivery object (`{"method": ...}`); returns the stream id.
    pub fn create_stream(&self, delivery: Value) -> String {
        let shared = self.shared().clone();
        let mut m = shared.mgmt();
        let mut s = TxStream {
            id: random_jti(),
            method: String::new(),
            endpoint_url: String::new(),
            authorization_header: None,
            events_requested: vec![events::SESSION_REVOKED.to_owned()],
            description: Some("created by hand".into()),
            status: "enabled".into(),
            reason: None,
            subjects: Vec::new(),
        };
        let body = json!({"delivery": delivery});
        if let Some(obj) = body.as_object() {
            if let Err(problem) = apply(&shared, &mut s, obj, false) {
                panic!("create_stream: {problem}");
            }
        }
        let id = s.id.clone();
        m.streams.insert(id.clone(), s);
        id
    }

    /// Pushes send the registered authorization header without its `Bearer ` scheme (`true`),
    /// as some legacy transmitters do, or as registered (`false`, the default).
    pub fn set_strip_bearer(&self, strip: bool) {
        self.with_mgmt(|m| m.strip_bearer = strip);
    }

    /// The stream configuration as the transmitter serves it.
    pub fn stream_config(&self, stream_id: &str) -> Option<Value> {
        let shared = self.shared().clone();
        let m = shared.mgmt();
        m.streams.get(stream_id).map(|s| {
            if shared.legacy {
                crate::legacy::config_json(&m, s, &shared.issuer)
            } else {
                m.config_json(s, &shared.issuer, &shared.audience)
            }
        })
    }

    pub fn stream_ids(&self) -> Vec<String> {
        self.with_mgmt(|m| m.streams.keys().cloned().collect())
    }

    /// The subjects the receiver added to a stream (SSF §8.1.3), in order.
    pub fn stream_subjects(&self, stream_id: &str) -> Vec<Value> {
        self.with_mgmt(|m| {
            m.streams
                .get(stream_id)
                .map(|s| s.subjects.clone())
                .unwrap_or_default()
        })
    }

    pub fn add_subject_endpoint(&self) -> String {
        self.shared().url(&self.shared().paths.add_subject)
    }

    /// The authorization header a push stream was registered with.
    pub fn stream_authorization_header(&self, stream_id: &str) -> Option<String> {
        self.with_mgmt(|m| {
            m.streams
                .get(stream_id)
                .and_then(|s| s.authorization_header.clone())
        })
    }

    /// (status, reason) at the transmitter.
    pub fn stream_status(&self, stream_id: &str) -> Option<(String, Option<String>)> {
        self.with_mgmt(|m| {
            m.streams
                .get(stream_id)
                .map(|s| (s.status.clone(), s.reason.clone()))
        })
    }

    /// Sets the status as the transmitter would on its own. A stream that is not enabled holds
    /// its poll queue.
    pub fn set_stream_status(&self, stream_id: &str, status: &str, reason: Option<&str>) {
        self.with_mgmt(|m| {
            let s = m
                .streams
                .get_mut(stream_id)
                .unwrap_or_else(|| panic!("no stream {stream_id}"));
            s.status = status.to_owned();
            s.reason = reason.map(String::from);
        });
        self.shared().feeds_changed.notify_waiters();
    }

    /// Pushes `set` to a registered push stream's endpoint with the authorization header it was
    /// registered with (without its `Bearer ` scheme after [`TestTransmitter::set_strip_bearer`]).
    pub async fn push_registered(&self, stream_id: &str, set: &str) -> reqwest::Response {
        let (url, auth) = self.with_mgmt(|m| {
            let s = m
                .streams
                .get(stream_id)
                .unwrap_or_else(|| panic!("no stream {stream_id}"));
            (
                s.endpoint_url.clone(),
                registered_authorization(s.authorization_header.clone(), m.strip_bearer),
            )
        });
        crate::push::push_set_with_header(&self.shared().client, &url, auth.as_deref(), set)
            .await
            .unwrap_or_else(|e| panic!("pushing to {url} failed: {e}"))
    }
}
