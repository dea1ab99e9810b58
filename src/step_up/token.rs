//! Presented tokens: an application may hand `subjects:check` the ID token or access token of
//! the session in question. ssfd verifies it against the step-up provider's issuer keys (found
//! through OpenID discovery, held by the same key cache as the transmitters' keys) and reads
//! the authentication facts a step-up decision needs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::requirement::TokenFacts;
use crate::clock::{rfc3339, UnixSeconds};
use crate::config::JwksConfig;
use crate::verify::jwks::{check_scheme, JwksCache, KeyError, KeySource};
use crate::verify::subject::parse_subject;
use crate::verify::{check_signature, jws, VerifyFailure};

/// Clock skew tolerated on `exp`.
const EXPIRY_LEEWAY_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not genuine or not usable: a 400 naming the problem.
    #[error("{0}")]
    Invalid(String),
    /// The provider's configuration or keys could not be fetched: try again later.
    #[error("{0}")]
    Unavailable(String),
}

/// The `jwks_uri` of each provider issuer, from its OpenID configuration, kept for the key
/// cache's TTL so that a check does not fetch the configuration every time.
#[derive(Default)]
pub struct Discovery {
    entries: Mutex<HashMap<String, (String, Instant)>>,
}

impl Discovery {
    fn cached(&self, issuer: &str) -> Option<String> {
        let map = self.entries.lock().ok()?;
        map.get(issuer)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(uri, _)| uri.clone())
    }

    /// Forgets an issuer (after a failed verification or an edited provider).
    pub fn forget(&self, issuer: &str) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(issuer);
        }
    }

    /// The provider's `jwks_uri`, after checking that its configuration names `issuer_url` as
    /// its issuer (OpenID Connect Discovery §4.3).
    pub async fn jwks_uri(
        &self,
        keys: &JwksCache,
        issuer_url: &str,
        settings: &JwksConfig,
    ) -> Result<String, KeyError> {
        if let Some(uri) = self.cached(issuer_url) {
            return Ok(uri);
        }
        let meta = keys
            .openid_configuration(issuer_url, settings.allow_http)
            .await?;
        let uri = jwks_uri_of(&meta, issuer_url, settings.allow_http)?;
        if let Ok(mut map) = self.entries.lock() {
            map.insert(
                issuer_url.to_string(),
                (
                    uri.clone(),
                    Instant::now() + settings.ttl.max(Duration::from_secs(30)),
                ),
            );
        }
        Ok(uri)
    }
}

/// The `jwks_uri` of an OpenID configuration whose `issuer` is `issuer_url`.
pub fn jwks_uri_of(
    meta: &Map<String, Value>,
    issuer_url: &str,
    allow_http: bool,
) -> Result<String, KeyError> {
    if meta.get("issuer").and_then(Value::as_str) != Some(issuer_url) {
        return Err(KeyError::MetadataInvalid(
            "the provider's OpenID configuration names another issuer than issuerUrl".into(),
        ));
    }
    match meta.get("jwks_uri").and_then(Value::as_str) {
        Some(uri) if !uri.is_empty() => {
            check_scheme(uri, allow_http)
                .map_err(|m| KeyError::MetadataInvalid(format!("the provider's jwks_uri {m}")))?;
            Ok(uri.to_string())
        }
        _ => Err(KeyError::MetadataInvalid(
            "the provider's OpenID configuration has no jwks_uri".into(),
        )),
    }
}

fn key_error(e: KeyError) -> TokenError {
    match e {
        KeyError::Unavailable { message, .. } => TokenError::Unavailable(format!(
            "the step-up provider's keys cannot be fetched: {message}"
        )),
        KeyError::MetadataInvalid(m) => TokenError::Unavailable(format!(
            "the step-up provider's configuration cannot be used: {m}"
        )),
        KeyError::NoKey(m) => TokenError::Invalid(m),
    }
}

fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| TokenError::Invalid(format!("the token's {name} is not a time"))),
        Some(_) => Err(TokenError::Invalid(format!(
            "the token's {name} is not a number"
        ))),
    }
}

/// A claim that is a string or an array of strings (`amr`, `acrs`).
fn strings(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, TokenError> {
    let bad = || TokenError::Invalid(format!("the token's {name} is not an array of strings"));
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(String::from).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// Reads the authentication facts of verified claims; `exp` must not have passed.
pub fn facts_of(claims: &Map<String, Value>, now: UnixSeconds) -> Result<TokenFacts, TokenError> {
    if let Some(exp) = number(claims, "exp")? {
        if now > exp + EXPIRY_LEEWAY_SECS {
            return Err(TokenError::Invalid(format!(
                "the token expired at {}",
                rfc3339(exp)
            )));
        }
    }
    let acr = match claims.get("acr") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(TokenError::Invalid(
                "the token's acr is not a string".into(),
            ))
        }
    };
    Ok(TokenFacts {
        issued_at: number(claims, "iat")?,
        auth_time: number(claims, "auth_time")?,
        acr,
        amr: strings(claims, "amr")?,
        acrs: strings(claims, "acrs")?,
        names: names_of(claims),
    })
}

/// The canonical subject keys of the user a token is about: `iss` + `sub` as an `iss_sub`
/// subject, and its `email` claim as an `email` subject. A claim that does not parse as a
/// subject names nobody.
fn names_of(claims: &Map<String, Value>) -> Vec<String> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let mut subjects = Vec::new();
    if let (Some(iss), Some(sub)) = (text("iss"), text("sub")) {
        subjects.push(serde_json::json!({"format": "iss_sub", "iss": iss, "sub": sub}));
    }
    if let Some(email) = text("email") {
        subjects.push(serde_json::json!({"format": "email", "email": email}));
    }
    subjects
        .iter()
        .filter_map(|s| parse_subject(s).ok())
        .flat_map(|s| s.keys)
        .collect()
}

/// Verifies a compact ID or access token issued by `issuer_url` and returns its facts.
pub async fn verify(
    keys: &JwksCache,
    discovery: &Discovery,
    settings: &JwksConfig,
    issuer_url: &str,
    token: &str,
    now: UnixSeconds,
) -> Result<TokenFacts, TokenError> {
    let parsed = jws::parse_jwt(token).map_err(|e| TokenError::Invalid(e.description))?;
    let jwks_url = discovery
        .jwks_uri(keys, issuer_url, settings)
        .await
        .map_err(key_error)?;
    let source = KeySource::at_jwks_url(issuer_url, jwks_url);
    match check_signature(keys, &source, &parsed).await {
        Ok(()) => {}
        Err(VerifyFailure::Rejected(e)) => return Err(TokenError::Invalid(e.description)),
        Err(VerifyFailure::KeysUnavailable { message, .. }) => {
            discovery.forget(issuer_url);
            return Err(key_error(KeyError::unavailable(message, None)));
        }
    }
    if parsed.payload.get("iss").and_then(Value::as_str) != Some(issuer_url) {
        return Err(TokenError::Invalid(
            "the token was not issued by the step-up provider (iss differs from its issuerUrl)"
                .into(),
        ));
    }
    facts_of(&parsed.payload, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn facts_are_read_with_their_types_checked() {
        let f = facts_of(
            &map(
                json!({"iat": 10, "auth_time": 9, "acr": "phr", "amr": ["pwd", "otp"],
                        "acrs": "c1", "exp": 1000}),
            ),
            100,
        )
        .unwrap();
        assert_eq!(f.issued_at, Some(10));
        assert_eq!(f.auth_time, Some(9));
        assert_eq!(f.acr.as_deref(), Some("phr"));
        assert_eq!(f.amr, vec!["pwd", "otp"]);
        assert_eq!(f.acrs, vec!["c1"]);
        assert!(matches!(
            facts_of(&map(json!({"auth_time": "yesterday"})), 0),
            Err(TokenError::Invalid(m)) if m.contains("auth_time")
        ));
        assert!(matches!(
            facts_of(&map(json!({"amr": [1]})), 0),
            Err(TokenError::Invalid(m)) if m.contains("amr")
        ));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let claims = map(json!({"exp": 1000}));
        assert!(facts_of(&claims, 1000 + EXPIRY_LEEWAY_SECS).is_ok());
        assert!(matches!(
            facts_of(&claims, 1001 + EXPIRY_LEEWAY_SECS),
            Err(TokenError::Invalid(m)) if m.contains("expired")
        ));
    }

    #[test]
    fn discovery_must_name_the_issuer() {
        let meta = map(json!({"issuer": "https://idp/x", "jwks_uri": "https://idp/x/keys"}));
        assert_eq!(
            jwks_uri_of(&meta, "https://idp/x", false).unwrap(),
            "https://idp/x/keys"
        );
        assert!(jwks_uri_of(&meta, "https://idp/y", false).is_err());
        let http = map(json!({"issuer": "https://idp/x", "jwks_uri": "http://idp/x/keys"}));
        assert!(jwks_uri_of(&http, "https://idp/x", false).is_err());
    }
}
