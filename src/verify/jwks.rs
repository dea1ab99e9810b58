//! Transmitter keys: discovery through SSF metadata, JWKS fetching with limits, and a cache with a
//! TTL, a rate-limited forced refresh for unknown `kid`s, and a stale set kept when a refresh fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use josekit::jwk::Jwk;
use josekit::jws::JwsVerifier;
use serde_json::Value;

use super::jws::Alg;
use crate::config::JwksConfig;

/// Largest JWKS or metadata document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Most keys accepted in one JWKS.
pub const MAX_KEYS: usize = 100;
/// Bounds on a `Cache-Control: max-age` the transmitter asks for.
const MIN_TTL: Duration = Duration::from_secs(30);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where a stream's keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeySource {
    pub issuer_url: String,
    /// Empty: discover through `issuer_url` + `/.well-known/ssf-configuration`.
    pub jwks_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No key fits the token, even after a refresh: `invalid_key`.
    #[error("{0}")]
    NoKey(String),
    /// The keys could not be fetched and nothing cached fits: 503, deliver again later.
    #[error("{0}")]
    Unavailable(String),
    /// The transmitter metadata failed validation (SSF §7.2.4): the keys must not be used.
    #[error("{0}")]
    MetadataInvalid(String),
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
    /// Keys that could have signed a token with this `kid` and `alg`. Without a `kid`, every key
    /// of the right type is a candidate.
    pub fn candidates(&self, kid: Option<&str>, alg: Alg) -> Vec<Arc<PublicKey>> {
        self.keys
            .iter()
            .filter(|k| match kid {
                Some(kid) => k.kid.as_deref() == Some(kid),
                None => k.fits(alg),
            })
            .cloned()
            .collect()
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
}

#[derive(Default)]
struct SourceState {
    cached: Option<Cached>,
    last_forced: Option<Instant>,
    /// The error of the latest fetch, if it failed (cleared by a successful fetch). It is
    /// answered again, without fetching, until the cooldown has passed.
    last_error: Option<(Instant, KeyError)>,
}

/// The keys of every transmitter ssfd talks to.
pub struct JwksCache {
    http: reqwest::Client,
    settings: Mutex<JwksConfig>,
    sources: Mutex<HashMap<KeySource, Arc<tokio::sync::Mutex<SourceState>>>>,
    fetches: std::sync::atomic::AtomicU64,
    failures: std::sync::atomic::AtomicU64,
}

impl JwksCache {
    pub fn new(settings: &JwksConfig) -> Result<JwksCache, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .redirect(no_downgrade(settings.allow_http))
            .user_agent(concat!("ssfd/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(JwksCache {
            http,
            settings: Mutex::new(settings.clone()),
            sources: Mutex::new(HashMap::new()),
            fetches: Default::default(),
            failures: Default::default(),
        })
    }

    /// Applies new settings (TTL, cooldown, allow_http) on a configuration reload.
    pub fn reconfigure(&self, settings: &JwksConfig) {
        if let Ok(mut s) = self.settings.lock() {
            *s = settings.clone();
        }
    }

    fn settings(&self) -> JwksConfig {
        match self.settings.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// (fetches, failures) since start, for metrics.
    pub fn fetch_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.fetches.load(Relaxed), self.failures.load(Relaxed))
    }

    fn state(&self, source: &KeySource) -> Arc<tokio::sync::Mutex<SourceState>> {
        let mut map = match self.sources.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(source.clone()).or_default().clone()
    }

    /// Forgets cached keys of a source (after a stream's URLs change).
    pub fn forget(&self, source: &KeySource) {
        if let Ok(mut map) = self.sources.lock() {
            map.remove(source);
        }
    }

    /// The current key set, fetching it when absent or expired. A failed refresh keeps serving
    /// the stale set.
    pub async fn key_set(&self, source: &KeySource) -> Result<Arc<KeySet>, KeyError> {
        let state = self.state(source);
        let mut st = state.lock().await;
        if let Some(c) = &st.cached {
            if c.expires > Instant::now() {
                return Ok(c.set.clone());
            }
        }
        // Nothing usable and a fetch just failed: do not hammer the transmitter on every push.
        if st.cached.is_none() {
            let cooldown = self.settings().refresh_cooldown;
            if let Some((at, e)) = &st.last_error {
                if at.elapsed() < cooldown {
                    return Err(e.clone());
                }
            }
        }
        self.refresh_locked(source, &mut st).await
    }

    /// Fetches the keys now, whatever the cache holds (the stream `test` call).
    pub async fn refresh(&self, source: &KeySource) -> Result<Arc<KeySet>, KeyError> {
        let state = self.state(source);
        let mut st = state.lock().await;
        // A probe must report a failure rather than the stale keys.
        let stale = st.cached.take();
        let result = self.refresh_locked(source, &mut st).await;
        if result.is_err() {
            st.cached = stale;
        }
        result
    }

    /// Candidate keys for a token; refreshes once (at most once per cooldown) when the `kid` is
    /// unknown.
    pub async fn candidates(
        &self,
        source: &KeySource,
        kid: Option<&str>,
        alg: Alg,
    ) -> Result<Vec<Arc<PublicKey>>, KeyError> {
        let set = self.key_set(source).await?;
        let found = set.candidates(kid, alg);
        if !found.is_empty() {
            return Ok(found);
        }
        let cooldown = self.settings().refresh_cooldown;
        let state = self.state(source);
        let mut st = state.lock().await;
        // Another request may have refreshed while we waited for the lock.
        if let Some(c) = &st.cached {
            if !Arc::ptr_eq(&c.set, &set) {
                let found = c.set.candidates(kid, alg);
                if !found.is_empty() {
                    return Ok(found);
                }
            }
        }
        let may_force = st.last_forced.is_none_or(|t| t.elapsed() >= cooldown);
        if may_force {
            st.last_forced = Some(Instant::now());
            match self.refresh_locked(source, &mut st).await {
                Ok(set) => {
                    let found = set.candidates(kid, alg);
                    if !found.is_empty() {
                        return Ok(found);
                    }
                }
                Err(KeyError::MetadataInvalid(m)) => return Err(KeyError::MetadataInvalid(m)),
                Err(_) => {}
            }
        }
        // An unknown key while the JWKS cannot be fetched is not the SET's fault (docs/push.md#answers):
        // 503, so that the transmitter delivers it again once the keys can be read.
        match &st.last_error {
            Some((_, KeyError::MetadataInvalid(m))) => {
                return Err(KeyError::MetadataInvalid(m.clone()))
            }
            Some((_, e)) => {
                return Err(KeyError::Unavailable(format!(
                    "no cached key fits and the keys cannot be fetched: {e}"
                )))
            }
            None => {}
        }
        Err(KeyError::NoKey(match kid {
            Some(kid) => format!("no key with kid {kid:?} in the transmitter's JWKS"),
            None => format!("no {} key in the transmitter's JWKS", alg.key_type()),
        }))
    }

    async fn refresh_locked(
        &self,
        source: &KeySource,
        st: &mut SourceState,
    ) -> Result<Arc<KeySet>, KeyError> {
        use std::sync::atomic::Ordering::Relaxed;
        self.fetches.fetch_add(1, Relaxed);
        match self.fetch(source).await {
            Ok((set, ttl)) => {
                let set = Arc::new(set);
                st.cached = Some(Cached {
                    set: set.clone(),
                    expires: Instant::now() + ttl,
                });
                st.last_error = None;
                Ok(set)
            }
            Err(e) => {
                self.failures.fetch_add(1, Relaxed);
                st.last_error = Some((Instant::now(), e.clone()));
                let retry_in = self.settings().refresh_cooldown;
                match (&e, &mut st.cached) {
                    // Metadata that fails validation must not be used, stale or not.
                    (KeyError::MetadataInvalid(_), _) => {
                        st.cached = None;
                        Err(e)
                    }
                    (_, Some(c)) => {
                        tracing::warn!(issuer = %source.issuer_url, error = %e,
                            "JWKS refresh failed; keeping the cached keys");
                        // Serve the stale keys and try again after the cooldown, not on every
                        // request.
                        c.expires = Instant::now() + retry_in;
                        Ok(c.set.clone())
                    }
                    (_, None) => Err(e),
                }
            }
        }
    }

    async fn fetch(&self, source: &KeySource) -> Result<(KeySet, Duration), KeyError> {
        let settings = self.settings();
        let jwks_url = if source.jwks_url.is_empty() {
            self.discover_jwks_uri(&source.issuer_url, &settings)
                .await?
        } else {
            source.jwks_url.clone()
        };
        check_scheme(&jwks_url, settings.allow_http)
            .map_err(|m| KeyError::Unavailable(format!("jwksUrl {m}")))?;
        let (body, max_age) = self.get_document(&jwks_url).await?;
        let ttl = max_age
            .map(|a| a.clamp(MIN_TTL, MAX_TTL))
            .unwrap_or(settings.ttl);
        let set = parse_jwks(&body).map_err(KeyError::Unavailable)?;
        Ok((set, ttl))
    }

    /// Reads `/.well-known/ssf-configuration` of the issuer and returns its `jwks_uri` after
    /// checking that the metadata `issuer` is identical to the configured issuer.
    pub async fn discover_jwks_uri(
        &self,
        issuer_url: &str,
        settings: &JwksConfig,
    ) -> Result<String, KeyError> {
        let meta = self.metadata(issuer_url, settings.allow_http).await?;
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

    /// Fetches and validates the transmitter metadata of an issuer (SSF §7.2).
    pub async fn metadata(
        &self,
        issuer_url: &str,
        allow_http: bool,
    ) -> Result<serde_json::Map<String, Value>, KeyError> {
        check_scheme(issuer_url, allow_http)
            .map_err(|m| KeyError::Unavailable(format!("issuerUrl {m}")))?;
        let url = metadata_url(issuer_url)
            .ok_or_else(|| KeyError::Unavailable("issuerUrl is not a valid URL".into()))?;
        let (body, _) = self.get_document(&url).await?;
        let meta = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(KeyError::MetadataInvalid(
                    "transmitter metadata could not be validated: not a JSON object".into(),
                ))
            }
        };
        if meta.get("issuer").and_then(Value::as_str) != Some(issuer_url) {
            return Err(KeyError::MetadataInvalid(
                "transmitter metadata could not be validated: its issuer differs from issuerUrl"
                    .into(),
            ));
        }
        Ok(meta)
    }

    async fn get_document(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), KeyError> {
        let unavailable = |m: String| KeyError::Unavailable(m);
        let mut resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| unavailable(format!("fetching {url} failed: {}", short_error(&e))))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!(
                "fetching {url} failed: HTTP {}",
                resp.status().as_u16()
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n as usize > MAX_DOCUMENT_BYTES)
        {
            return Err(unavailable(format!("{url} is larger than 256 KiB")));
        }
        let max_age = resp
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| unavailable(format!("reading {url} failed: {}", short_error(&e))))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(unavailable(format!("{url} is larger than 256 KiB")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

fn short_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        // Without the URL, which the caller already names.
        e.to_string()
            .split(" for url")
            .next()
            .unwrap_or("request failed")
            .to_string()
    }
}

/// Follows at most three redirects, never from https to http unless `allow_http`: a redirect
/// must not weaken what `check_scheme` enforced for the first URL.
fn no_downgrade(allow_http: bool) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 3 {
            attempt.error("too many redirects")
        } else if check_scheme(attempt.url().as_str(), allow_http).is_err() {
            attempt.error("redirect to a non-https URL")
        } else {
            attempt.follow()
        }
    })
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
    let (scheme, rest) = issuer_url.split_once("://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() {
        return None;
    }
    let path = path.trim_end_matches('/');
    Some(format!(
        "{scheme}://{host}/.well-known/ssf-configuration{path}"
    ))
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
    fn jwks_limits() {
        let many = serde_json::json!({"keys": vec![serde_json::json!({"kty":"oct"}); 101]});
        assert!(parse_jwks(many.to_string().as_bytes()).is_err());
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"{\"keys\":[]}").unwrap().is_empty());
    }
}
