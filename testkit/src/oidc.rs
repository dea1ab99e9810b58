//! `TestOpenIdProvider`: an OpenID provider on loopback for step-up tests. It serves
//! `/.well-known/openid-configuration`, a JWKS and an OAuth 2.0 client-credentials token
//! endpoint, and signs ID and access tokens carrying the authentication facts a step-up decision
//! reads (`acr`, `amr`, `auth_time`, `iat`, and Entra's `acrs`). Knobs make it lie about its
//! issuer, drop `acr_values_supported`, or fail its JWKS.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use crate::jws;
use crate::keys::{KeyKind, SigningKey};
use crate::set::{now, random_jti};
use crate::wire::json_response;

/// The `acr_values_supported` the provider announces unless told otherwise.
pub const DEFAULT_ACR_VALUES: [&str; 3] = ["urn:okta:loa:1fa:any", "urn:okta:loa:2fa:any", "phr"];

struct Knobs {
    /// `Some`: the discovery document names this issuer instead of the real one.
    issuer_claim: Option<String>,
    acr_values_supported: Option<Vec<String>>,
    jwks_status: StatusCode,
    discovery_status: StatusCode,
}

struct Shared {
    issuer: String,
    key: Arc<SigningKey>,
    /// Same `kid` as `key`, different material: what a forger would sign with.
    forged: Arc<SigningKey>,
    client_id: String,
    client_secret: String,
    knobs: Mutex<Knobs>,
    token_requests: AtomicUsize,
    granted: AtomicUsize,
    discovery_fetches: AtomicUsize,
    jwks_fetches: AtomicUsize,
}

impl Shared {
    fn knobs(&self) -> MutexGuard<'_, Knobs> {
        self.knobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Inner {
    shared: Arc<Shared>,
    stop: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

/// A running OpenID provider. Cloning gives another handle; the server stops when the last
/// handle is dropped or [`TestOpenIdProvider::shutdown`] is called. Start it inside the test's
/// runtime.
#[derive(Clone)]
pub struct TestOpenIdProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TestOpenIdProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOpenIdProvider")
            .field("issuer", &self.inner.shared.issuer)
            .finish_non_exhaustive()
    }
}

impl TestOpenIdProvider {
    /// RSA-2048 RS256 key `op1`, on `127.0.0.1:0`, issuer `http://127.0.0.1:PORT/oauth2/default`.
    pub async fn start() -> TestOpenIdProvider {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap_or_else(|e| panic!("binding the test OpenID provider failed: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"));
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}/oauth2/default"),
            key: Arc::new(SigningKey::generate(KeyKind::Rs256, "op1")),
            forged: Arc::new(SigningKey::generate(KeyKind::Rs256, "op1")),
            client_id: format!("client-{}", &random_jti()[..8]),
            client_secret: format!("secret-{}", random_jti()),
            knobs: Mutex::new(Knobs {
                issuer_claim: None,
                acr_values_supported: Some(
                    DEFAULT_ACR_VALUES.iter().map(|s| s.to_string()).collect(),
                ),
                jwks_status: StatusCode::OK,
                discovery_status: StatusCode::OK,
            }),
            token_requests: AtomicUsize::new(0),
            granted: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            jwks_fetches: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route(
                "/oauth2/default/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/oauth2/default/v1/keys", get(jwks))
            .route("/oauth2/default/v1/token", post(token))
            .with_state(shared.clone());
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.notified().await })
                .await;
        });
        TestOpenIdProvider {
            inner: Arc::new(Inner { shared, stop }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The issuer, exactly as discovery announces it (unless [`Self::set_issuer_claim`]).
    pub fn issuer(&self) -> String {
        self.shared().issuer.clone()
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/v1/keys", self.shared().issuer)
    }

    pub fn token_url(&self) -> String {
        format!("{}/v1/token", self.shared().issuer)
    }

    /// The client the token endpoint accepts.
    pub fn client_id(&self) -> String {
        self.shared().client_id.clone()
    }

    pub fn client_secret(&self) -> String {
        self.shared().client_secret.clone()
    }

    /// Makes discovery announce another `issuer` (`None`: the real one again).
    pub fn set_issuer_claim(&self, issuer: Option<&str>) {
        self.shared().knobs().issuer_claim = issuer.map(String::from);
    }

    /// What discovery lists as `acr_values_supported` (`None`: the member is left out).
    pub fn set_acr_values_supported(&self, values: Option<&[&str]>) {
        self.shared().knobs().acr_values_supported =
            values.map(|v| v.iter().map(|s| s.to_string()).collect());
    }

    /// The status the JWKS endpoint answers with (200 serves the keys).
    pub fn set_jwks_status(&self, status: u16) {
        self.shared().knobs().jwks_status =
            StatusCode::from_u16(status).unwrap_or_else(|e| panic!("bad status {status}: {e}"));
    }

    /// The status the discovery endpoint answers with (200 serves the document).
    pub fn set_discovery_status(&self, status: u16) {
        self.shared().knobs().discovery_status =
            StatusCode::from_u16(status).unwrap_or_else(|e| panic!("bad status {status}: {e}"));
    }

    /// Token requests received, and how many of them were granted.
    pub fn token_requests(&self) -> (usize, usize) {
        (
            self.shared().token_requests.load(Ordering::SeqCst),
            self.shared().granted.load(Ordering::SeqCst),
        )
    }

    /// Fetches of the discovery document and of the JWKS so far.
    pub fn fetches(&self) -> (usize, usize) {
        (
            self.shared().discovery_fetches.load(Ordering::SeqCst),
            self.shared().jwks_fetches.load(Ordering::SeqCst),
        )
    }

    /// An ID token for `sub` authenticated now: `iss`, `aud` (the client), `sub`, `iat`, `exp`
    /// (in an hour) and `auth_time`; the setters add or replace claims.
    pub fn id_token(&self, sub: &str) -> TokenBuilder {
        let t = now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.shared().issuer));
        claims.insert("sub".into(), json!(sub));
        claims.insert("aud".into(), json!(self.shared().client_id));
        claims.insert("iat".into(), json!(t));
        claims.insert("exp".into(), json!(t + 3600));
        claims.insert("auth_time".into(), json!(t));
        claims.insert("jti".into(), json!(random_jti()));
        TokenBuilder {
            key: self.shared().key.clone(),
            forged: self.shared().forged.clone(),
            typ: "JWT",
            claims,
        }
    }

    /// An access token (`typ` `at+jwt`, RFC 9068) with the same claims as [`Self::id_token`].
    pub fn access_token(&self, sub: &str) -> TokenBuilder {
        let mut b = self.id_token(sub);
        b.typ = "at+jwt";
        b
    }

    /// Stops serving: from now on connections are refused.
    pub fn shutdown(&self) {
        self.inner.stop.notify_one();
    }
}

/// One token to sign. Every setter replaces a claim.
#[derive(Clone)]
pub struct TokenBuilder {
    key: Arc<SigningKey>,
    forged: Arc<SigningKey>,
    typ: &'static str,
    claims: Map<String, Value>,
}

impl TokenBuilder {
    pub fn acr(self, acr: &str) -> Self {
        self.claim("acr", json!(acr))
    }

    pub fn amr(self, amr: &[&str]) -> Self {
        self.claim("amr", json!(amr))
    }

    /// Entra's authentication-context claim: the conditional access ids satisfied.
    pub fn acrs(self, acrs: &[&str]) -> Self {
        self.claim("acrs", json!(acrs))
    }

    pub fn auth_time(self, t: i64) -> Self {
        self.claim("auth_time", json!(t))
    }

    pub fn iat(self, t: i64) -> Self {
        self.claim("iat", json!(t))
    }

    pub fn exp(self, t: i64) -> Self {
        self.claim("exp", json!(t))
    }

    /// Sets (or, with `Value::Null`, removes) any claim.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        if value.is_null() {
            self.claims.remove(name);
        } else {
            self.claims.insert(name.to_string(), value);
        }
        self
    }

    fn header(&self, key: &SigningKey) -> Value {
        json!({"typ": self.typ, "alg": key.alg(), "kid": key.kid()})
    }

    /// Signed with the provider's published key.
    pub fn sign(&self) -> String {
        let claims = Value::Object(self.claims.clone());
        jws::sign_compact(&self.header(&self.key), &claims, &self.key)
    }

    /// Signed under the published `kid` by a key the provider never published: the signature
    /// does not verify.
    pub fn sign_forged(&self) -> String {
        let claims = Value::Object(self.claims.clone());
        jws::sign_compact(&self.header(&self.forged), &claims, &self.forged)
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    shared.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let knobs = shared.knobs();
    if knobs.discovery_status != StatusCode::OK {
        return json_response(knobs.discovery_status, r#"{"error":"unavailable"}"#.into());
    }
    let issuer = &shared.issuer;
    let mut doc = json!({
        "issuer": knobs.issuer_claim.clone().unwrap_or_else(|| issuer.clone()),
        "authorization_endpoint": format!("{issuer}/v1/authorize"),
        "token_endpoint": format!("{issuer}/v1/token"),
        "jwks_uri": format!("{issuer}/v1/keys"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["iss", "sub", "aud", "iat", "exp", "auth_time", "acr", "amr"],
    });
    if let Some(values) = &knobs.acr_values_supported {
        doc["acr_values_supported"] = json!(values);
    }
    json_response(StatusCode::OK, doc.to_string())
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let status = shared.knobs().jwks_status;
    if status != StatusCode::OK {
        return json_response(status, r#"{"error":"unavailable"}"#.into());
    }
    json_response(
        StatusCode::OK,
        json!({"keys": [shared.key.public_jwk()]}).to_string(),
    )
}

/// Client credentials from the form body (`client_secret_post`) or HTTP Basic.
fn client_credentials(headers: &HeaderMap, form: &Map<String, Value>) -> (String, String) {
    let field = |k: &str| {
        form.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        if let Some((id, secret)) = decoded.split_once(':') {
            return (id.to_string(), secret.to_string());
        }
    }
    (field("client_id"), field("client_secret"))
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    let text = String::from_utf8_lossy(&body);
    let form: Map<String, Value> = reqwest::Url::parse(&format!("http://form.invalid/?{text}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect()
        })
        .unwrap_or_default();
    if form.get("grant_type").and_then(Value::as_str) != Some("client_credentials") {
        return json_response(
            StatusCode::BAD_REQUEST,
            r#"{"error":"unsupported_grant_type"}"#.into(),
        );
    }
    let (id, secret) = client_credentials(&headers, &form);
    if id != shared.client_id || secret != shared.client_secret {
        return json_response(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_client"}"#.into(),
        );
    }
    shared.granted.fetch_add(1, Ordering::SeqCst);
    let t = now();
    let claims = json!({"iss": shared.issuer, "sub": shared.client_id, "aud": "api://default",
                        "iat": t, "exp": t + 3600, "jti": random_jti()});
    let header = json!({"typ": "at+jwt", "alg": shared.key.alg(), "kid": shared.key.kid()});
    let access = jws::sign_compact(&header, &claims, &shared.key);
    json_response(
        StatusCode::OK,
        json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600}).to_string(),
    )
}
