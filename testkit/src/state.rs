//! The transmitter's shared state: what its HTTP handlers serve and what a test's handle
//! changes. Keys and discovery answers, the management API's streams and tokens, the poll feeds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use crate::events;
use crate::keys::{KeyKind, SigningKey};
use crate::set::{random_jti, KeySource, SetBuilder};
use crate::wire::{self, json_response};

pub(crate) struct KeyEntry {
    pub key: Arc<SigningKey>,
    pub published: bool,
}

/// Everything a test can change while the server runs.
pub(crate) struct State {
    /// In insertion order, which is also the JWKS order.
    pub keys: Vec<KeyEntry>,
    pub current: String,
    /// A key never published anywhere, made on first use.
    pub unpublished: Option<Arc<SigningKey>>,
    pub jwks_status: StatusCode,
    pub jwks_body: Option<String>,
    /// (content type, body) served by both discovery endpoints instead of their documents.
    pub page: Option<(String, String)>,
    /// How long the JWKS endpoint waits before answering.
    pub jwks_delay: Duration,
    pub jwks_cache_control: Option<String>,
    pub metadata_status: StatusCode,
    pub metadata_issuer: Option<String>,
    /// Member overrides: `Some` replaces or adds, `None` leaves the member out.
    pub metadata_edits: BTreeMap<String, Option<Value>>,
}

/// What the JWKS endpoint answers right now.
pub(crate) struct ServedJwks {
    pub status: StatusCode,
    pub document: Value,
    pub raw_body: Option<String>,
    pub page: Option<(String, String)>,
    pub delay: Duration,
    pub cache_control: Option<String>,
}

/// State shared between the handle and the HTTP handlers.
pub(crate) struct Shared {
    pub addr: SocketAddr,
    /// The pre-1.0 SSE draft mode.
    pub legacy: bool,
    pub issuer: String,
    /// `""` or `/segment[/segment..]`.
    pub issuer_path: String,
    pub audience: String,
    pub jwks_fetches: AtomicUsize,
    pub metadata_fetches: AtomicUsize,
    pub state: Mutex<State>,
    pub paths: EndpointPaths,
    /// Streams, tokens and poll queues (SSF §8, RFC 6749, RFC 8936).
    pub mgmt: Mutex<Mgmt>,
    /// Woken whenever a poll queue or stream status changes, so held long polls look again.
    pub feeds_changed: Notify,
    /// For pushing verification events to registered push streams.
    pub client: reqwest::Client,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has already failed; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn mgmt(&self) -> MutexGuard<'_, Mgmt> {
        self.mgmt.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:PORT` + `path`: management endpoints live at the host, not under the
    /// issuer path.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn jwks_url(&self) -> String {
        format!("http://{}{}", self.addr, wire::jwks_path(&self.issuer_path))
    }

    pub(crate) fn served_page(&self) -> Option<(String, String)> {
        self.lock().page.clone()
    }

    pub(crate) fn served_jwks(&self) -> ServedJwks {
        let state = self.lock();
        let keys: Vec<Value> = state
            .keys
            .iter()
            .filter(|entry| entry.published)
            .map(|entry| entry.key.public_jwk())
            .collect();
        ServedJwks {
            status: state.jwks_status,
            document: json!({ "keys": keys }),
            raw_body: state.jwks_body.clone(),
            page: state.page.clone(),
            delay: state.jwks_delay,
            cache_control: state.jwks_cache_control.clone(),
        }
    }

    /// A builder for this transmitter's SETs, in its mode's shape.
    pub(crate) fn set(self: &Arc<Self>) -> SetBuilder {
        if self.legacy {
            SetBuilder::legacy_from_source(self.clone(), &self.issuer, &self.audience)
        } else {
            SetBuilder::from_source(self.clone(), &self.issuer, &self.audience)
        }
    }

    pub(crate) fn unpublished_key(&self) -> Arc<SigningKey> {
        let mut state = self.lock();
        state
            .unpublished
            .get_or_insert_with(|| {
                let kid = format!("unpublished-{}", &random_jti()[..8]);
                Arc::new(SigningKey::generate(KeyKind::Rs256, &kid))
            })
            .clone()
    }
}

impl KeySource for Shared {
    fn signing_key(&self, kid: Option<&str>) -> Arc<SigningKey> {
        let state = self.lock();
        let kid = kid.unwrap_or(&state.current);
        if let Some(entry) = state.keys.iter().find(|e| e.key.kid() == kid) {
            return entry.key.clone();
        }
        match &state.unpublished {
            Some(key) if key.kid() == kid => key.clone(),
            _ => panic!("no key with kid {kid:?}: add it with add_key first"),
        }
    }
}

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
    pub legacy_streams: TokenStreams,
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
    pub polls: Vec<PollRequest>,
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

    pub(crate) fn config_json(&self, s: &TxStream, issuer: &str, audience: &str) -> Value {
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

    pub(crate) fn remove(&mut self, key: &str) {
        if let Some(seq) = self.index.remove(key) {
            self.queue.remove(&seq);
        }
    }

    pub(crate) fn first(&self, n: usize) -> Vec<(String, String)> {
        self.queue.values().take(n).cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
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

/// Bearer tokens to legacy stream ids.
pub(crate) type TokenStreams = HashMap<String, String>;

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
