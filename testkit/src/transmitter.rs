//! `TestTransmitter`: a live SSF transmitter on loopback whose keys and answers a test steers.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::http::StatusCode;
use josekit::jwk::Jwk;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::events;
use crate::jws;
use crate::keys::{KeyKind, SigningKey};
use crate::push;
use crate::server;
use crate::set::{KeySource, SetBuilder, DEFAULT_AUDIENCE};
use crate::state::{EndpointPaths, KeyEntry, Mgmt, Shared, State};
use crate::subjects;

/// How to start a transmitter. Everything is optional; the defaults give an RSA-2048 RS256
/// key with kid `k1`, served at `http://127.0.0.1:<free port>`.
#[derive(Debug, Clone, Default)]
pub struct TransmitterOptions {
    /// Address to bind; `127.0.0.1:0` when absent.
    pub listen: Option<SocketAddr>,
    /// A private JWK to sign with instead of a fresh key, so tokens stay verifiable across
    /// restarts.
    pub key: Option<Jwk>,
    /// Kind of the fresh key when `key` is absent; RS256 on RSA-2048 by default.
    pub key_kind: Option<KeyKind>,
    /// `kid` of the initial key: this, else the JWK's own, else `k1`.
    pub kid: Option<String>,
    /// Issuer path, e.g. `tenant1` for `http://127.0.0.1:PORT/tenant1`; its metadata then
    /// lives at `/.well-known/ssf-configuration/tenant1`.
    pub issuer_path: Option<String>,
    /// The `aud` of built SETs; [`DEFAULT_AUDIENCE`] when absent.
    pub audience: Option<String>,
    /// Where the management, token and poll endpoints live; [`EndpointPaths::sailpoint`] when
    /// absent.
    pub paths: Option<EndpointPaths>,
    /// Speak the pre-1.0 SSE draft ([`crate::legacy`]): SSE metadata path, constant issuer,
    /// RISC-era delivery URIs, no `stream_id`, the subject inside events, `acks`, no long poll.
    pub legacy: bool,
    /// The constant issuer of a legacy transmitter; [`crate::legacy::DEFAULT_ISSUER`] when
    /// absent. `{base}` in it stands for `http://127.0.0.1:PORT` (so that a receiver can derive
    /// the metadata URL from it). Ignored unless `legacy`.
    pub legacy_issuer: Option<String>,
}

impl TransmitterOptions {
    /// The options of a pre-1.0 SSE transmitter with its defaults.
    pub fn legacy() -> TransmitterOptions {
        TransmitterOptions {
            legacy: true,
            ..TransmitterOptions::default()
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    client: reqwest::Client,
    stop: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

/// A running SSF transmitter: serves `/.well-known/ssf-configuration[/path]` and the JWKS,
/// signs SETs and pushes them. Cloning gives another handle to the same server; the server
/// stops when the last handle is dropped or [`TestTransmitter::shutdown`] is called.
///
/// The server runs on the runtime that started it, so start it inside the test's runtime.
/// Misuse (an unknown `kid`, an invalid status code) panics: it is a bug in the test.
#[derive(Clone)]
pub struct TestTransmitter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TestTransmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestTransmitter")
            .field("issuer", &self.shared().issuer)
            .finish_non_exhaustive()
    }
}

impl TestTransmitter {
    /// RSA-2048, RS256, kid `k1`, on `127.0.0.1:0`.
    pub async fn start() -> TestTransmitter {
        TestTransmitter::start_with(TransmitterOptions::default()).await
    }

    pub async fn start_with(options: TransmitterOptions) -> TestTransmitter {
        TestTransmitter::try_start_with(options)
            .await
            .unwrap_or_else(|e| panic!("starting the test transmitter failed: {e:#}"))
    }

    /// Like [`TestTransmitter::start_with`], but reports a bad key, path or address.
    pub async fn try_start_with(options: TransmitterOptions) -> anyhow::Result<TestTransmitter> {
        let issuer_path = normalize_issuer_path(options.issuer_path.as_deref())?;
        let key = match &options.key {
            Some(jwk) => SigningKey::from_private_jwk(jwk, options.kid.as_deref())?,
            None => SigningKey::generate(
                options.key_kind.unwrap_or(KeyKind::Rs256),
                options.kid.as_deref().unwrap_or("k1"),
            ),
        };
        let listen = options
            .listen
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        let legacy = options.legacy;
        let issuer = if legacy {
            options
                .legacy_issuer
                .clone()
                .unwrap_or_else(|| crate::legacy::DEFAULT_ISSUER.to_owned())
                .replace("{base}", &format!("http://{addr}"))
        } else {
            format!("http://{addr}{issuer_path}")
        };
        // A legacy transmitter names no audience unless told to (`aud: []`).
        let default_audience = if legacy { "" } else { DEFAULT_AUDIENCE };
        let shared = Arc::new(Shared {
            addr,
            legacy,
            issuer,
            issuer_path,
            audience: options
                .audience
                .unwrap_or_else(|| default_audience.to_owned()),
            jwks_fetches: AtomicUsize::new(0),
            metadata_fetches: AtomicUsize::new(0),
            paths: options.paths.unwrap_or_default(),
            mgmt: Mutex::new(Mgmt::new()),
            feeds_changed: Notify::new(),
            client: push::http_client(),
            state: Mutex::new(State {
                current: key.kid().to_owned(),
                keys: vec![KeyEntry {
                    key: Arc::new(key),
                    published: true,
                }],
                unpublished: None,
                jwks_status: StatusCode::OK,
                jwks_body: None,
                page: None,
                jwks_delay: Duration::ZERO,
                jwks_cache_control: None,
                metadata_status: StatusCode::OK,
                metadata_issuer: None,
                metadata_edits: BTreeMap::new(),
            }),
        });
        let stop = Arc::new(Notify::new());
        let app = server::router(shared.clone());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            // An accept error ends the server; the test then sees refused connections.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.notified().await })
                .await;
        });
        Ok(TestTransmitter {
            inner: Arc::new(Inner {
                shared,
                client: push::http_client(),
                stop,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.shared().lock())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.shared().addr
    }

    /// `http://127.0.0.1:PORT`, without the issuer path.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `http://127.0.0.1:PORT[/path]`, exactly as the metadata announces it (a legacy
    /// transmitter's constant issuer in legacy mode).
    pub fn issuer(&self) -> String {
        self.shared().issuer.clone()
    }

    /// Whether this transmitter speaks the pre-1.0 SSE draft.
    pub fn is_legacy(&self) -> bool {
        self.shared().legacy
    }

    /// `issuer + /jwks.json`.
    pub fn jwks_url(&self) -> String {
        self.shared().jwks_url()
    }

    /// `http://127.0.0.1:PORT/.well-known/ssf-configuration[/path]` (`sse-configuration` in
    /// legacy mode).
    pub fn metadata_url(&self) -> String {
        let path = if self.is_legacy() {
            crate::legacy::metadata_path(&self.shared().issuer_path)
        } else {
            crate::wire::metadata_path(&self.shared().issuer_path)
        };
        format!("{}{path}", self.base_url())
    }

    /// The `aud` built SETs carry by default (empty in legacy mode: `aud` is then `[]`).
    pub fn audience(&self) -> String {
        self.shared().audience.clone()
    }

    /// A builder for a valid SET from this transmitter (see [`SetBuilder`]), in the legacy
    /// shape in legacy mode.
    pub fn set(&self) -> SetBuilder {
        self.shared().set()
    }

    /// A verification SET for `stream_id` (SSF §8.1.4.1): opaque `sub_id`, `state` echoed
    /// when given. In legacy mode the SSE draft's: its own URI, a `state`, no subject.
    pub fn verification_set(&self, stream_id: &str, state: Option<&str>) -> SetBuilder {
        if self.is_legacy() {
            return self.set().event(
                crate::legacy::VERIFICATION,
                crate::legacy::verification_payload(state),
            );
        }
        let payload = match state {
            Some(state) => json!({ "state": state }),
            None => json!({}),
        };
        self.set()
            .sub_id(subjects::opaque(stream_id))
            .event(events::VERIFICATION, payload)
    }

    /// A stream-updated SET for `stream_id` (SSF §8.1.5).
    pub fn stream_updated_set(
        &self,
        stream_id: &str,
        status: &str,
        reason: Option<&str>,
    ) -> SetBuilder {
        let mut payload = json!({ "status": status });
        if let Some(reason) = reason {
            payload["reason"] = json!(reason);
        }
        self.set()
            .sub_id(subjects::opaque(stream_id))
            .event(events::STREAM_UPDATED, payload)
    }

    /// `claims` as a compact JWS under the default header, signed with the current key.
    pub fn sign_claims(&self, claims: &Value) -> String {
        let key = self.shared().signing_key(None);
        let header = json!({"typ": "secevent+jwt", "alg": key.alg(), "kid": key.kid()});
        jws::sign_compact(&header, claims, &key)
    }

    /// `claims` under exactly this header. The key is the one the header's `kid` names when
    /// this transmitter holds it, else the current key; `alg` decides how it is signed
    /// (see [`jws::sign_compact`]).
    pub fn sign_with_header(&self, header: Value, claims: &Value) -> String {
        let kid = header.get("kid").and_then(Value::as_str);
        let key = match kid {
            Some(kid) if self.has_key(kid) => self.shared().signing_key(Some(kid)),
            _ => self.shared().signing_key(None),
        };
        jws::sign_compact(&header, claims, &key)
    }

    /// Signed with an RSA key whose `kid` was never published, as a transmitter that lost
    /// its keys or an impostor would.
    pub fn sign_with_unpublished_key(&self, claims: &Value) -> String {
        let key = self.shared().unpublished_key();
        let header = json!({"typ": "secevent+jwt", "alg": key.alg(), "kid": key.kid()});
        jws::sign_compact(&header, claims, &key)
    }

    /// HS256 with `secret` (at least 32 bytes) under the current `kid`: the algorithm
    /// confusion a receiver must refuse.
    pub fn sign_hs256(&self, secret: &[u8], claims: &Value) -> String {
        let header = json!({"typ": "secevent+jwt", "alg": "HS256", "kid": self.current_kid()});
        jws::sign_hmac(&header, claims, secret)
    }

    /// `alg: none` with an empty signature.
    pub fn unsigned_none(&self, claims: &Value) -> String {
        let header = json!({"typ": "secevent+jwt", "alg": "none", "kid": self.current_kid()});
        jws::unsigned(&header, claims)
    }

    /// Generates a key and publishes it in the JWKS (replacing a key of the same `kid`).
    /// Signing still uses the current key until [`TestTransmitter::use_key`].
    pub fn add_key(&self, kind: KeyKind, kid: &str) {
        self.add_signing_key(SigningKey::generate(kind, kid));
    }

    /// Publishes a key made elsewhere, e.g. from [`SigningKey::from_private_jwk`].
    pub fn add_signing_key(&self, key: SigningKey) {
        self.with_state(|state| {
            state.keys.retain(|entry| entry.key.kid() != key.kid());
            state.keys.push(KeyEntry {
                key: Arc::new(key),
                published: true,
            });
        });
    }

    /// Signs with this key from now on (published or not).
    pub fn use_key(&self, kid: &str) {
        assert!(self.has_key(kid), "no key with kid {kid:?}");
        self.with_state(|state| state.current = kid.to_owned());
    }

    /// Stops publishing this key. It can still sign, so tokens under a withdrawn `kid` are
    /// easy to make.
    pub fn remove_key(&self, kid: &str) {
        self.set_published(kid, false);
    }

    /// Publishes a withdrawn key again.
    pub fn republish_key(&self, kid: &str) {
        self.set_published(kid, true);
    }

    fn set_published(&self, kid: &str, published: bool) {
        self.with_state(|state| {
            let entry = state.keys.iter_mut().find(|e| e.key.kid() == kid);
            entry
                .unwrap_or_else(|| panic!("no key with kid {kid:?}"))
                .published = published;
        });
    }

    fn has_key(&self, kid: &str) -> bool {
        self.with_state(|state| state.keys.iter().any(|e| e.key.kid() == kid))
    }

    /// The `kid` new tokens are signed with.
    pub fn current_kid(&self) -> String {
        self.with_state(|state| state.current.clone())
    }

    /// The current signing key, e.g. to save it or to check a signature.
    pub fn current_key(&self) -> SigningKey {
        SigningKey::clone(&self.shared().signing_key(None))
    }

    /// The `kid`s the JWKS lists, in order.
    pub fn published_kids(&self) -> Vec<String> {
        self.with_state(|state| {
            state
                .keys
                .iter()
                .filter(|e| e.published)
                .map(|e| e.key.kid().to_owned())
                .collect()
        })
    }

    /// The JWKS document as served when the status is 200.
    pub fn jwks(&self) -> Value {
        self.shared().served_jwks().document
    }

    /// The metadata document as served when the status is 200.
    pub fn metadata(&self) -> Value {
        self.shared().served_metadata().1
    }

    /// Makes the JWKS endpoint answer `status` (e.g. 500, 404) with no keys, or recover (200).
    pub fn set_jwks_status(&self, status: u16) {
        let status = status_code(status);
        self.with_state(|state| state.jwks_status = status);
    }

    /// Serves this body instead of the key set (when the status is 200), e.g. to send
    /// malformed JSON; `None` restores the real key set.
    pub fn set_jwks_body(&self, body: Option<String>) {
        self.with_state(|state| state.jwks_body = body);
    }

    /// Serves this page (content type, body) with status 200 from the metadata and JWKS
    /// endpoints instead of their documents, as a maintenance page or a web application
    /// firewall in front of a transmitter does; `None` serves the documents again.
    pub fn set_page(&self, page: Option<(&str, &str)>) {
        self.with_state(|state| {
            state.page = page.map(|(t, b)| (t.to_owned(), b.to_owned()));
        });
    }

    /// Makes the JWKS endpoint wait this long before answering (zero: answer at once).
    pub fn set_jwks_delay(&self, delay: Duration) {
        self.with_state(|state| state.jwks_delay = delay);
    }

    /// A `Cache-Control` header for JWKS answers, e.g. `max-age=60`; `None` sends none.
    pub fn set_jwks_cache_control(&self, value: Option<String>) {
        self.with_state(|state| state.jwks_cache_control = value);
    }

    /// Makes the metadata endpoint answer `status`, or recover (200).
    pub fn set_metadata_status(&self, status: u16) {
        let status = status_code(status);
        self.with_state(|state| state.metadata_status = status);
    }

    /// Announces another `issuer` in the metadata (SSF §7.2.4 mismatch tests); `None`
    /// restores the real one.
    pub fn set_metadata_issuer(&self, issuer: Option<String>) {
        self.with_state(|state| state.metadata_issuer = issuer);
    }

    /// Overrides (`Some`) or omits (`None`) one metadata member, e.g. `jwks_uri`, or adds
    /// one such as `configuration_endpoint`.
    pub fn set_metadata_member(&self, name: &str, value: Option<Value>) {
        self.with_state(|state| state.metadata_edits.insert(name.to_owned(), value));
    }

    /// Drops every metadata override, the issuer override included.
    pub fn reset_metadata(&self) {
        self.with_state(|state| {
            state.metadata_edits.clear();
            state.metadata_issuer = None;
            state.metadata_status = StatusCode::OK;
        });
    }

    /// JWKS requests served so far, failed ones included.
    pub fn jwks_fetches(&self) -> usize {
        self.shared().jwks_fetches.load(Ordering::SeqCst)
    }

    /// Metadata requests served so far, failed ones included.
    pub fn metadata_fetches(&self) -> usize {
        self.shared().metadata_fetches.load(Ordering::SeqCst)
    }

    /// The client [`TestTransmitter::push`] uses, for requests a test shapes itself.
    pub fn http_client(&self) -> reqwest::Client {
        self.inner.client.clone()
    }

    /// Pushes one SET (RFC 8935); see [`push::push_set`]. Panics if the receiver cannot be
    /// reached at all, since every push test needs an answer.
    pub async fn push(&self, push_url: &str, token: &str, set: &str) -> reqwest::Response {
        self.try_push(push_url, token, set)
            .await
            .unwrap_or_else(|e| panic!("pushing to {push_url} failed: {e}"))
    }

    pub async fn try_push(
        &self,
        push_url: &str,
        token: &str,
        set: &str,
    ) -> reqwest::Result<reqwest::Response> {
        push::push_set(&self.inner.client, push_url, token, set).await
    }

    /// Stops the server and waits (at most five seconds) for open connections to finish,
    /// so later requests are refused. Other handles stay usable for signing.
    pub async fn shutdown(&self) {
        self.inner.stop.notify_one();
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or_else(|_| panic!("{status} is not an HTTP status"))
}

/// `tenant1/`, `/tenant1` → `/tenant1`; none or `/` → empty. Only unreserved characters, so
/// the path is the same in a URL and in a route.
fn normalize_issuer_path(path: Option<&str>) -> anyhow::Result<String> {
    let trimmed = path.unwrap_or("").trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for segment in trimmed.split('/') {
        let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
        if segment.is_empty()
            || segment == "."
            || segment == ".."
            || !segment.chars().all(unreserved)
        {
            bail!("issuer path {trimmed:?}: use segments of letters, digits and -._~");
        }
    }
    Ok(format!("/{trimmed}"))
}
