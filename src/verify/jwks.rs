//! Transmitter keys: discovery through SSF metadata, JWKS fetching with limits, and a cache with a
//! TTL, a rate-limited forced refresh for unknown `kid`s, and a stale set kept when a refresh fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use josekit::jwk::Jwk;
use josekit::jws::JwsVerifier;
use serde_json::Value;

use super::jws::Alg;
use crate::clock::instant_after;
use crate::compat::Tolerance;
use crate::config::JwksConfig;
use crate::outbound::{
    describe, read_body, ClientLimits, HttpClient, Outbound, OutboundError, Redirects,
};
use crate::sanitize::redact_url;
use crate::stream::{CompatibilityProfile, Stream};

/// Largest JWKS or metadata document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Most keys accepted in one JWKS.
pub const MAX_KEYS: usize = 100;
/// Most keys tried for a token without a `kid`: each try is a signature check.
pub const MAX_CANDIDATES_WITHOUT_KID: usize = 4;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Bounds on a `Cache-Control: max-age` the transmitter asks for.
const MIN_TTL: Duration = Duration::from_secs(30);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where a stream's keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeySource {
    pub issuer_url: String,
    /// Empty: discover through the transmitter metadata.
    pub jwks_url: String,
    /// Empty: the metadata is at `/.well-known/ssf-configuration` of `issuer_url` (and, for
    /// LEGACY_SSE, at `/.well-known/sse-configuration` after that).
    pub metadata_url: String,
    pub profile: CompatibilityProfile,
}

impl KeySource {
    pub fn of(stream: &Stream) -> KeySource {
        KeySource {
            issuer_url: stream.issuer_url.clone(),
            jwks_url: stream.jwks_url.clone(),
            metadata_url: stream.metadata_url.clone(),
            profile: stream.compatibility_profile,
        }
    }

    /// Keys at a known JWKS URL, for tokens that are not SETs (step-up ID and access tokens).
    pub fn at_jwks_url(issuer_url: &str, jwks_url: String) -> KeySource {
        KeySource {
            issuer_url: issuer_url.to_string(),
            jwks_url,
            metadata_url: String::new(),
            profile: CompatibilityProfile::default(),
        }
    }
}

/// Transmitter metadata as found, with the tolerances its discovery needed.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub doc: serde_json::Map<String, Value>,
    pub tolerances: Vec<Tolerance>,
}

/// An issuer that is not the stream's, even with the tolerances of its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuerMismatch;

/// Whether an issuer a transmitter announced is the stream's: identical, or (LEGACY_SSE only)
/// different by one trailing `/`, which is then the tolerance returned.
pub fn issuer_matches(
    announced: &str,
    issuer_url: &str,
    profile: CompatibilityProfile,
) -> Result<Option<Tolerance>, IssuerMismatch> {
    if announced == issuer_url {
        return Ok(None);
    }
    let one_slash = announced.strip_suffix('/') == Some(issuer_url)
        || issuer_url.strip_suffix('/') == Some(announced);
    if profile.is_legacy() && one_slash && !announced.is_empty() {
        Ok(Some(Tolerance::IssuerTrailingSlash))
    } else {
        Err(IssuerMismatch)
    }
}

/// What one document fetch produced: the body, or a status other than 2xx.
enum FetchedDocument {
    Body(Vec<u8>, Option<Duration>),
    Status(u16),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No key fits the token, even after a refresh: `invalid_key`.
    #[error("{0}")]
    NoKey(String),
    /// The keys could not be fetched and nothing cached fits: 503, deliver again later, after
    /// `retry_after` when known.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The transmitter metadata failed validation (SSF §7.2.4): the keys must not be used.
    #[error("{0}")]
    MetadataInvalid(String),
}

impl KeyError {
    pub fn unavailable(message: impl Into<String>, retry_after: Option<Duration>) -> KeyError {
        KeyError::Unavailable {
            message: message.into(),
            retry_after,
        }
    }

    /// The same error, saying when a fetch will be tried again.
    fn retry_in(self, wait: Duration) -> KeyError {
        match self {
            KeyError::Unavailable { message, .. } => KeyError::Unavailable {
                message,
                retry_after: Some(wait),
            },
            other => other,
        }
    }
}

/// One usable public key of a JWKS, with verifiers built on first use per algorithm.
#[derive(Debug)]
pub struct PublicKey {
    pub kid: Option<String>,
    pub kty: String,
    pub alg: Option<String>,
    jwk: Jwk,
    verifiers: Mutex<HashMap<Alg, Arc<dyn JwsVerifier>>>,
}

impl PublicKey {
    fn fits(&self, alg: Alg) -> bool {
        self.kty == alg.key_type() && self.alg.as_deref().is_none_or(|a| a == alg.name())
    }

    /// A verifier for `alg`, or why this key cannot verify it (e.g. an RSA key under 2048 bits).
    pub fn verifier(&self, alg: Alg) -> Result<Arc<dyn JwsVerifier>, String> {
        if let Ok(cache) = self.verifiers.lock() {
            if let Some(v) = cache.get(&alg) {
                return Ok(v.clone());
            }
        }
        if self.kty == "RSA" && rsa_modulus_bits(&self.jwk).is_none_or(|b| b < MIN_RSA_BITS) {
            return Err("the signing key is an RSA key shorter than 2048 bits".to_string());
        }
        let built: Result<Arc<dyn JwsVerifier>, josekit::JoseError> = match alg {
            Alg::Rs256 => josekit::jws::RS256
                .verifier_from_jwk(&self.jwk)
                .map(|v| Arc::new(v) as _),
            Alg::Rs384 => josekit::jws::RS384
                .verifier_from_jwk(&self.jwk)
                .map(|v| Arc::new(v) as _),
            Alg::Rs512 => josekit::jws::RS512
                .verifier_from_jwk(&self.jwk)
                .map(|v| Arc::new(v) as _),
            Alg::Ps256 => josekit::jws::PS256
                .verifier_from_jwk(&self.jwk)
                .map(|v| Arc::new(v) as _),
            Alg::Ps384 => josekit::jws::PS384
                .verifier_from_jwk(&self.jwk)
                .map(|v| Arc::new(v) as _),
            Alg::Ps512 => josekit::jws::PS512
                .verifier_from_jwk(&self.jwk)
                .map(|v| Arc::new(v) as _),
            Alg::Es256 => josekit::jws::ES256
                .verifier_from_jwk(&self.jwk)
                .map(|v| Arc::new(v) as _),
            Alg::Es384 => josekit::jws::ES384
                .verifier_from_jwk(&self.jwk)
                .map(|v| Arc::new(v) as _),
            Alg::EdDsa => josekit::jws::EdDSA
                .verifier_from_jwk(&self.jwk)
                .map(|v| Arc::new(v) as _),
        };
        let verifier = built.map_err(|e| {
            // josekit's messages say what is wrong with the key (size, curve, use); they carry
            // no secrets, only public key facts.
            let msg = e.to_string();
            if msg.contains("2048") {
                "the signing key is an RSA key shorter than 2048 bits".to_string()
            } else {
                format!("the signing key cannot verify {}", alg.name())
            }
        })?;
        if let Ok(mut cache) = self.verifiers.lock() {
            cache.insert(alg, verifier.clone());
        }
        Ok(verifier)
    }
}

/// A fetched JWKS.
#[derive(Debug, Default)]
pub struct KeySet {
    pub keys: Vec<Arc<PublicKey>>,
}

impl KeySet {
    /// Keys that could have signed a token with this `kid` and `alg`. Without a `kid`, the first
    /// [`MAX_CANDIDATES_WITHOUT_KID`] keys of the right type are candidates, so that a token
    /// cannot make ssfd check its signature against every key of a large set.
    pub fn candidates(&self, kid: Option<&str>, alg: Alg) -> Vec<Arc<PublicKey>> {
        let matching = self.keys.iter().filter(|k| match kid {
            Some(kid) => k.kid.as_deref() == Some(kid),
            None => k.fits(alg),
        });
        match kid {
            Some(_) => matching.cloned().collect(),
            None => matching.take(MAX_CANDIDATES_WITHOUT_KID).cloned().collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

struct Cached {
    set: Arc<KeySet>,
    expires: Instant,
    /// When this set was fetched: a set fetched after a SET arrived is a refresh that ran for it.
    fetched: Instant,
}

/// The outcome of one fetch, shared by every caller that waited for it.
type Fetched = Result<(Arc<KeySet>, Instant), KeyError>;
type Flight = Shared<BoxFuture<'static, Fetched>>;

#[derive(Default)]
struct SourceState {
    cached: Option<Cached>,
    last_forced: Option<Instant>,
    /// The error of the latest fetch, if it failed (cleared by a successful fetch). It is
    /// answered again, without fetching, until the cooldown has passed.
    last_error: Option<(Instant, KeyError)>,
    /// The fetch running now, if any: concurrent callers wait for the same one.
    flight: Option<Flight>,
}

/// What a fetch needs, shared with the detached fetch tasks.
struct Fetcher {
    http: HttpClient,
    settings: Mutex<JwksConfig>,
    fetches: AtomicU64,
    failures: AtomicU64,
}

/// The keys of every transmitter ssfd talks to.
pub struct JwksCache {
    fetcher: Arc<Fetcher>,
    sources: Mutex<HashMap<KeySource, Arc<Mutex<SourceState>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl JwksCache {
    pub fn new(settings: &JwksConfig, outbound: &Outbound) -> Result<JwksCache, OutboundError> {
        let http = outbound.client(
            &ClientLimits {
                connect_timeout: settings.connect_timeout,
                timeout: settings.timeout,
            },
            Redirects::Follow {
                max: 3,
                allow_http: settings.allow_http,
            },
        )?;
        Ok(JwksCache {
            fetcher: Arc::new(Fetcher {
                http,
                settings: Mutex::new(settings.clone()),
                fetches: Default::default(),
                failures: Default::default(),
            }),
            sources: Mutex::new(HashMap::new()),
        })
    }

    /// Applies new settings (TTL, cooldown, allow_http) on a configuration reload.
    pub fn reconfigure(&self, settings: &JwksConfig) {
        *lock(&self.fetcher.settings) = settings.clone();
    }

    fn settings(&self) -> JwksConfig {
        self.fetcher.settings()
    }

    /// (fetches, failures) since start, for metrics.
    pub fn fetch_counts(&self) -> (u64, u64) {
        (
            self.fetcher.fetches.load(Relaxed),
            self.fetcher.failures.load(Relaxed),
        )
    }

    fn state(&self, source: &KeySource) -> Arc<Mutex<SourceState>> {
        lock(&self.sources)
            .entry(source.clone())
            .or_default()
            .clone()
    }

    /// Forgets cached keys of a source (after a stream's URLs change).
    pub fn forget(&self, source: &KeySource) {
        lock(&self.sources).remove(source);
    }

    /// The running fetch of a source, or a new one. The fetch is a task of its own, so a caller
    /// that goes away (a push client disconnecting) cannot cancel it, and its outcome lands in
    /// the cache whoever waits for it.
    fn flight(
        &self,
        source: &KeySource,
        state: &Arc<Mutex<SourceState>>,
        st: &mut SourceState,
    ) -> Flight {
        if let Some(f) = &st.flight {
            return f.clone();
        }
        let fetcher = self.fetcher.clone();
        let task_state = state.clone();
        let task_source = source.clone();
        // The task locks the state only after this function returns (the caller holds it), so
        // it always finds its own flight to clear.
        let task = tokio::spawn(async move {
            let result = fetcher.fetch(&task_source).await;
            let mut st = lock(&task_state);
            st.flight = None;
            fetcher.apply(&task_source, &mut st, result)
        });
        let flight = async move {
            task.await.unwrap_or_else(|_| {
                Err(KeyError::unavailable(
                    "the key refresh stopped unexpectedly",
                    None,
                ))
            })
        }
        .boxed()
        .shared();
        st.flight = Some(flight.clone());
        flight
    }

    /// The current key set and when it was fetched, fetching it when absent or expired. A failed
    /// refresh keeps serving the stale set, unless the metadata failed validation.
    async fn key_set(&self, source: &KeySource) -> Fetched {
        let state = self.state(source);
        let flight = {
            let mut st = lock(&state);
            if let Some(c) = &st.cached {
                if c.expires > Instant::now() {
                    return Ok((c.set.clone(), c.fetched));
                }
            }
            // Nothing usable and a fetch just failed: do not hammer the transmitter on every
            // push.
            if st.cached.is_none() {
                let cooldown = self.settings().refresh_cooldown;
                if let Some((at, e)) = &st.last_error {
                    let elapsed = at.elapsed();
                    if elapsed < cooldown {
                        return Err(e.clone().retry_in(cooldown - elapsed));
                    }
                }
            }
            self.flight(source, &state, &mut st)
        };
        match flight.await {
            Ok(fetched) => Ok(fetched),
            Err(e) => {
                let st = lock(&state);
                match &st.cached {
                    Some(c) if !matches!(e, KeyError::MetadataInvalid(_)) => {
                        Ok((c.set.clone(), c.fetched))
                    }
                    _ => Err(e.retry_in(self.settings().refresh_cooldown)),
                }
            }
        }
    }

    /// Fetches the keys now, whatever the cache holds (the stream `test` call), sharing a fetch
    /// already running. A probe reports a failure rather than the stale keys; the stale keys
    /// stay cached for SETs unless the metadata failed validation.
    pub async fn refresh(&self, source: &KeySource) -> Result<Arc<KeySet>, KeyError> {
        let state = self.state(source);
        let flight = {
            let mut st = lock(&state);
            self.flight(source, &state, &mut st)
        };
        flight.await.map(|(set, _)| set)
    }

    /// Candidate keys for a token. An unknown `kid` forces one refresh (at most one per
    /// cooldown). `invalid_key` only when a refresh ran after the SET arrived and still has no
    /// fitting key; whenever ssfd could not get a fresh, valid key set it is `Unavailable` (503,
    /// deliver again), because a transmitter drops a SET answered 400.
    pub async fn candidates(
        &self,
        source: &KeySource,
        kid: Option<&str>,
        alg: Alg,
    ) -> Result<Vec<Arc<PublicKey>>, KeyError> {
        let arrived = Instant::now();
        let (set, fetched) = self.key_set(source).await?;
        let found = set.candidates(kid, alg);
        if !found.is_empty() {
            return Ok(found);
        }
        if fetched >= arrived {
            return Err(no_key(kid, alg));
        }
        let cooldown = self.settings().refresh_cooldown;
        let state = self.state(source);
        let flight = {
            let mut st = lock(&state);
            // Another request may have refreshed meanwhile.
            if let Some(c) = &st.cached {
                if !Arc::ptr_eq(&c.set, &set) {
                    let found = c.set.candidates(kid, alg);
                    if !found.is_empty() {
                        return Ok(found);
                    }
                    if c.fetched >= arrived {
                        return Err(no_key(kid, alg));
                    }
                }
            }
            if let Some((at, e)) = &st.last_error {
                if *at >= arrived {
                    return Err(cannot_fetch(e, cooldown));
                }
            }
            match (&st.flight, st.last_forced) {
                (Some(f), _) => f.clone(),
                (None, Some(t)) if t.elapsed() < cooldown => {
                    // The cached set may simply predate the key: not the SET's fault.
                    let wait = cooldown - t.elapsed();
                    return Err(KeyError::unavailable(
                        format!(
                            "{}; the keys may be refreshed again in {} s",
                            no_key(kid, alg),
                            ceil_secs(wait)
                        ),
                        Some(wait),
                    ));
                }
                (None, _) => {
                    st.last_forced = Some(Instant::now());
                    self.flight(source, &state, &mut st)
                }
            }
        };
        match flight.await {
            Ok((set, _)) => {
                let found = set.candidates(kid, alg);
                if found.is_empty() {
                    Err(no_key(kid, alg))
                } else {
                    Ok(found)
                }
            }
            Err(KeyError::MetadataInvalid(m)) => Err(KeyError::MetadataInvalid(m)),
            Err(e) => Err(cannot_fetch(&e, cooldown)),
        }
    }

    /// Reads the transmitter metadata and returns its `jwks_uri` after checking that the
    /// metadata `issuer` is the configured issuer.
    pub async fn discover_jwks_uri(
        &self,
        source: &KeySource,
        settings: &JwksConfig,
    ) -> Result<String, KeyError> {
        self.fetcher.discover_jwks_uri(source, settings).await
    }

    /// Fetches and validates the transmitter metadata of a stream (SSF §7.2): from
    /// `metadata_url` when set, else from the issuer's well-known path; LEGACY_SSE tries the
    /// SSE draft path after a 404 there.
    pub async fn metadata(
        &self,
        source: &KeySource,
        allow_http: bool,
    ) -> Result<Metadata, KeyError> {
        self.fetcher.metadata(source, allow_http).await
    }

    /// Fetches an OpenID provider's configuration (`issuer` + `/.well-known/openid-configuration`,
    /// OpenID Connect Discovery §4) as a JSON object. The caller compares its `issuer`.
    pub async fn openid_configuration(
        &self,
        issuer_url: &str,
        allow_http: bool,
    ) -> Result<serde_json::Map<String, Value>, KeyError> {
        self.fetcher
            .openid_configuration(issuer_url, allow_http)
            .await
    }
}

fn no_key(kid: Option<&str>, alg: Alg) -> KeyError {
    KeyError::NoKey(match kid {
        Some(kid) => format!(
            "no key with kid {:?} in the transmitter's JWKS",
            crate::sanitize::log_text(kid)
        ),
        None => format!("no {} key in the transmitter's JWKS", alg.key_type()),
    })
}

fn cannot_fetch(e: &KeyError, cooldown: Duration) -> KeyError {
    KeyError::unavailable(
        format!("no cached key fits and the keys cannot be fetched: {e}"),
        Some(cooldown),
    )
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Fetcher {
    fn settings(&self) -> JwksConfig {
        lock(&self.settings).clone()
    }

    /// Records a fetch's outcome in the source state.
    fn apply(
        &self,
        source: &KeySource,
        st: &mut SourceState,
        result: Result<(KeySet, Duration), KeyError>,
    ) -> Fetched {
        let now = Instant::now();
        match result {
            Ok((set, ttl)) => {
                let set = Arc::new(set);
                st.cached = Some(Cached {
                    set: set.clone(),
                    expires: instant_after(now, ttl),
                    fetched: now,
                });
                st.last_error = None;
                Ok((set, now))
            }
            Err(e) => {
                self.failures.fetch_add(1, Relaxed);
                st.last_error = Some((now, e.clone()));
                match (&e, &mut st.cached) {
                    // Metadata that fails validation must not be used, stale or not.
                    (KeyError::MetadataInvalid(_), _) => st.cached = None,
                    (_, Some(c)) => {
                        tracing::warn!(issuer = %redact_url(&source.issuer_url), error = %e,
                            "JWKS refresh failed; keeping the cached keys");
                        // Serve the stale keys and try again after the cooldown, not on every
                        // request.
                        c.expires = instant_after(now, self.settings().refresh_cooldown);
                    }
                    (_, None) => {}
                }
                Err(e)
            }
        }
    }

    async fn fetch(&self, source: &KeySource) -> Result<(KeySet, Duration), KeyError> {
        self.fetches.fetch_add(1, Relaxed);
        let settings = self.settings();
        let jwks_url = if source.jwks_url.is_empty() {
            self.discover_jwks_uri(source, &settings).await?
        } else {
            source.jwks_url.clone()
        };
        check_scheme(&jwks_url, settings.allow_http)
            .map_err(|m| KeyError::unavailable(format!("jwksUrl {m}"), None))?;
        let (body, max_age) = self.get_document(&jwks_url).await?;
        let ttl = max_age
            .map(|a| a.clamp(MIN_TTL, MAX_TTL))
            .unwrap_or(settings.ttl);
        let set = parse_jwks(&body).map_err(|m| KeyError::unavailable(m, None))?;
        Ok((set, ttl))
    }

    async fn discover_jwks_uri(
        &self,
        source: &KeySource,
        settings: &JwksConfig,
    ) -> Result<String, KeyError> {
        let meta = self.metadata(source, settings.allow_http).await?.doc;
        match meta.get("jwks_uri").and_then(Value::as_str) {
            Some(uri) if !uri.is_empty() => {
                check_scheme(uri, settings.allow_http).map_err(|m| {
                    KeyError::MetadataInvalid(format!(
                        "transmitter metadata could not be validated: jwks_uri {m}"
                    ))
                })?;
                Ok(uri.to_string())
            }
            _ => Err(KeyError::MetadataInvalid(
                "transmitter metadata could not be validated: it has no jwks_uri".into(),
            )),
        }
    }

    async fn metadata(&self, source: &KeySource, allow_http: bool) -> Result<Metadata, KeyError> {
        let issuer_url = source.issuer_url.as_str();
        let mut candidates = Vec::new();
        if source.metadata_url.is_empty() {
            check_scheme(issuer_url, allow_http)
                .map_err(|m| KeyError::unavailable(format!("issuerUrl {m}"), None))?;
            let url = metadata_url(issuer_url)
                .ok_or_else(|| KeyError::unavailable("issuerUrl is not a valid URL", None))?;
            candidates.push((url, None));
            if source.profile.is_legacy() {
                if let Some(url) = sse_metadata_url(issuer_url) {
                    candidates.push((url, Some(Tolerance::SseMetadataPath)));
                }
            }
        } else {
            check_scheme(&source.metadata_url, allow_http)
                .map_err(|m| KeyError::unavailable(format!("metadataUrl {m}"), None))?;
            candidates.push((source.metadata_url.clone(), None));
        }
        let mut found = None;
        let count = candidates.len();
        for (i, (url, tolerance)) in candidates.into_iter().enumerate() {
            match self.fetch_document(&url).await? {
                FetchedDocument::Body(body, _) => {
                    found = Some((body, tolerance, url));
                    break;
                }
                FetchedDocument::Status(404) if i + 1 < count => continue,
                FetchedDocument::Status(404)
                    if !source.profile.is_legacy() && source.metadata_url.is_empty() =>
                {
                    return Err(KeyError::unavailable(
                        format!(
                            "fetching {} failed: HTTP 404 (a pre-1.0 SSE transmitter serves \
                         /.well-known/sse-configuration: set compatibilityProfile LEGACY_SSE, \
                         or point metadataUrl at its metadata)",
                            redact_url(&url)
                        ),
                        None,
                    ))
                }
                FetchedDocument::Status(status) => {
                    return Err(KeyError::unavailable(
                        format!("fetching {} failed: HTTP {status}", redact_url(&url)),
                        None,
                    ))
                }
            }
        }
        let Some((body, path_tolerance, url)) = found else {
            return Err(KeyError::unavailable("no metadata URL to fetch", None));
        };
        // Not JSON at all is a page in front of the transmitter (maintenance, a firewall), not
        // the transmitter's word: deliver again later.
        let meta = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(KeyError::MetadataInvalid(
                    "transmitter metadata could not be validated: not a JSON object".into(),
                ))
            }
            Err(_) => {
                return Err(KeyError::unavailable(
                    format!(
                        "the transmitter metadata at {} is not JSON",
                        redact_url(&url)
                    ),
                    None,
                ))
            }
        };
        let announced = meta.get("issuer").and_then(Value::as_str).unwrap_or("");
        let slash = issuer_matches(announced, issuer_url, source.profile).map_err(|_| {
            KeyError::MetadataInvalid(
                "transmitter metadata could not be validated: its issuer differs from issuerUrl"
                    .into(),
            )
        })?;
        Ok(Metadata {
            doc: meta,
            tolerances: path_tolerance.into_iter().chain(slash).collect(),
        })
    }

    async fn openid_configuration(
        &self,
        issuer_url: &str,
        allow_http: bool,
    ) -> Result<serde_json::Map<String, Value>, KeyError> {
        check_scheme(issuer_url, allow_http)
            .map_err(|m| KeyError::unavailable(format!("issuerUrl {m}"), None))?;
        let url = openid_configuration_url(issuer_url);
        let (body, _) = self.get_document(&url).await?;
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(KeyError::MetadataInvalid(format!(
                "{url} is not a JSON object"
            ))),
        }
    }

    async fn get_document(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), KeyError> {
        match self.fetch_document(url).await? {
            FetchedDocument::Body(body, max_age) => Ok((body, max_age)),
            FetchedDocument::Status(status) => Err(KeyError::unavailable(
                format!("fetching {} failed: HTTP {status}", redact_url(url)),
                None,
            )),
        }
    }

    async fn fetch_document(&self, url: &str) -> Result<FetchedDocument, KeyError> {
        let shown = redact_url(url);
        let unavailable = |m: String| KeyError::unavailable(m, None);
        let resp = self
            .http
            .get(url)
            .map_err(|e| unavailable(format!("fetching {shown} refused: {e}")))?
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| unavailable(format!("fetching {shown} failed: {}", describe(&e))))?;
        if !resp.status().is_success() {
            return Ok(FetchedDocument::Status(resp.status().as_u16()));
        }
        if is_html(resp.headers()) {
            return Err(unavailable(format!(
                "{shown} answered an HTML page, not JSON"
            )));
        }
        let max_age = resp
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        let body = read_body(resp, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| unavailable(format!("reading {shown} failed: {e}")))?;
        Ok(FetchedDocument::Body(body, max_age))
    }
}

/// A `text/html` answer (a maintenance page, a web application firewall).
fn is_html(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.type_() == mime::TEXT && m.subtype() == mime::HTML)
}

/// `https` is required unless `allow_http`.
pub fn check_scheme(url: &str, allow_http: bool) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") || (allow_http && lower.starts_with("http://")) {
        Ok(())
    } else if lower.starts_with("http://") {
        Err("must use https ([jwks] allow_http permits http for local tests)".into())
    } else {
        Err("must be an https URL".into())
    }
}

/// SSF §7.2.1: insert `/.well-known/ssf-configuration` between host and path, after removing a
/// terminating `/` from the path.
pub fn metadata_url(issuer_url: &str) -> Option<String> {
    let mut url = url::Url::parse(issuer_url).ok()?;
    if url.host_str().is_none_or(str::is_empty) || url.cannot_be_a_base() {
        return None;
    }
    // An issuer has no query or fragment; one that does is not made into a different URL.
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("/.well-known/ssf-configuration{path}"));
    Some(url.to_string())
}

/// OpenID Connect Discovery §4: the configuration lives at the issuer with
/// `/.well-known/openid-configuration` appended (unlike SSF, which inserts it after the host).
pub fn openid_configuration_url(issuer_url: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer_url.trim_end_matches('/')
    )
}

/// The pre-1.0 SSE draft's well-known path, derived like [`metadata_url`].
pub fn sse_metadata_url(issuer_url: &str) -> Option<String> {
    metadata_url(issuer_url).map(|u| {
        u.replacen(
            "/.well-known/ssf-configuration",
            "/.well-known/sse-configuration",
            1,
        )
    })
}

fn parse_max_age(v: &str) -> Option<Duration> {
    v.split(',').find_map(|d| {
        let d = d.trim();
        let (k, val) = d.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("max-age") {
            val.trim()
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs)
        } else {
            None
        }
    })
}

/// The size of an RSA key's modulus in bits, counted from its most significant set bit.
fn rsa_modulus_bits(jwk: &Jwk) -> Option<usize> {
    use base64::Engine;
    let n = jwk.parameter("n")?.as_str()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(n.trim_end_matches('='))
        .ok()?;
    let first = bytes.iter().position(|b| *b != 0)?;
    Some((bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize)
}

/// Parses a JWKS document, keeping the signature keys and enforcing the key-count limit.
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "the JWKS is not valid JSON")?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS has no keys array")?;
    if keys.len() > MAX_KEYS {
        return Err(format!("the JWKS has more than {MAX_KEYS} keys"));
    }
    let mut out = Vec::new();
    for k in keys {
        let Some(map) = k.as_object() else { continue };
        // Keys for encryption, or that josekit cannot read, are simply not candidates.
        if map
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let Ok(jwk) = Jwk::from_map(map.clone()) else {
            continue;
        };
        out.push(Arc::new(PublicKey {
            kid: jwk.key_id().map(String::from),
            kty: jwk.key_type().to_string(),
            alg: jwk.algorithm().map(String::from),
            jwk,
            verifiers: Mutex::new(HashMap::new()),
        }));
    }
    Ok(KeySet { keys: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_follows_ssf_7_2_1() {
        // Checklist 1.
        assert_eq!(
            metadata_url("https://tr.example.com").as_deref(),
            Some("https://tr.example.com/.well-known/ssf-configuration")
        );
        assert_eq!(
            metadata_url("https://tr.example.com/").as_deref(),
            Some("https://tr.example.com/.well-known/ssf-configuration")
        );
        assert_eq!(
            metadata_url("https://tr.example.com/issuer1/").as_deref(),
            Some("https://tr.example.com/.well-known/ssf-configuration/issuer1")
        );
        assert_eq!(metadata_url("nonsense"), None);
        assert_eq!(
            metadata_url("https://tr.example.com:8443/a/b/?x=1").as_deref(),
            Some("https://tr.example.com:8443/.well-known/ssf-configuration/a/b")
        );
    }

    #[test]
    fn openid_configuration_is_appended() {
        assert_eq!(
            openid_configuration_url("https://idp.example.com/oauth2/default/"),
            "https://idp.example.com/oauth2/default/.well-known/openid-configuration"
        );
    }

    #[test]
    fn sse_path_and_issuer_slash() {
        assert_eq!(
            sse_metadata_url("https://most-secure.com/").as_deref(),
            Some("https://most-secure.com/.well-known/sse-configuration")
        );
        assert_eq!(
            sse_metadata_url("https://tr.example.com/t1").as_deref(),
            Some("https://tr.example.com/.well-known/sse-configuration/t1")
        );
        use CompatibilityProfile::*;
        let a = "https://most-secure.com/";
        let b = "https://most-secure.com";
        assert_eq!(issuer_matches(a, a, Ssf1_0), Ok(None));
        assert_eq!(issuer_matches(a, b, Ssf1_0), Err(IssuerMismatch));
        assert_eq!(
            issuer_matches(a, b, LegacySse),
            Ok(Some(Tolerance::IssuerTrailingSlash))
        );
        assert_eq!(
            issuer_matches(b, a, LegacySse),
            Ok(Some(Tolerance::IssuerTrailingSlash))
        );
        // Exactly one slash, nothing else.
        assert_eq!(
            issuer_matches("https://most-secure.com//", b, LegacySse),
            Err(IssuerMismatch)
        );
        assert_eq!(
            issuer_matches("https://most-secure.co", b, LegacySse),
            Err(IssuerMismatch)
        );
        assert_eq!(issuer_matches("", "/", LegacySse), Err(IssuerMismatch));
    }

    #[test]
    fn max_age() {
        assert_eq!(
            parse_max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(parse_max_age("no-store"), None);
    }

    #[test]
    fn scheme_rules() {
        assert!(check_scheme("https://x", false).is_ok());
        assert!(check_scheme("http://x", false).is_err());
        assert!(check_scheme("http://x", true).is_ok());
        assert!(check_scheme("ftp://x", true).is_err());
    }

    #[test]
    fn tokens_without_a_kid_try_a_bounded_number_of_keys() {
        let keys: Vec<Value> = (0..10)
            .map(|_| {
                let jwk = Jwk::generate_ec_key(josekit::jwk::alg::ec::EcCurve::P256).unwrap();
                let mut public: serde_json::Map<String, Value> = jwk.as_ref().clone();
                public.remove("d");
                Value::Object(public)
            })
            .collect();
        let set = parse_jwks(serde_json::json!({ "keys": keys }).to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 10);
        assert_eq!(
            set.candidates(None, Alg::Es256).len(),
            MAX_CANDIDATES_WITHOUT_KID
        );
    }

    #[test]
    fn jwks_limits() {
        let many = serde_json::json!({"keys": vec![serde_json::json!({"kty":"oct"}); 101]});
        assert!(parse_jwks(many.to_string().as_bytes()).is_err());
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"{\"keys\":[]}").unwrap().is_empty());
    }
}
