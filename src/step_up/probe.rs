//! The `test` call of a step-up provider: fetch its OpenID configuration, check that it names
//! the provider's issuer, that its keys load, that the requested acr values are supported, and
//! (with a client secret) that a client-credentials token can be obtained. Each check answers on
//! its own, so an operator sees every problem at once.

use serde_json::{Map, Value};

use super::provider::{Provider, Settings};
use super::token::jwks_uri_of;
use crate::verify::jwks::{check_scheme, openid_configuration_url, JwksCache, KeySource};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    /// Not applicable, or impossible to judge because an earlier check failed.
    Skipped,
}

impl Outcome {
    pub fn as_api(&self) -> &'static str {
        match self {
            Outcome::Passed => "PASSED",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "SKIPPED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `discovery`, `issuer`, `jwks`, `acrValues` or `clientCredentials`.
    pub name: &'static str,
    pub outcome: Outcome,
    pub detail: String,
}

fn check(name: &'static str, outcome: Outcome, detail: impl Into<String>) -> Check {
    Check {
        name,
        outcome,
        detail: detail.into(),
    }
}

/// Every check, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Failed)
    }
}

/// The `acrValues` check on its own: every requested value must be in `acr_values_supported`
/// when the provider lists it.
pub fn acr_values_check(provider: &Provider, meta: &Map<String, Value>) -> Check {
    const NAME: &str = "acrValues";
    let requested = match &provider.settings {
        Settings::Microsoft { .. } => {
            return check(
                NAME,
                Outcome::Skipped,
                "Microsoft providers are judged by conditional access ids",
            )
        }
        Settings::OAuth2 { acr_values } if acr_values.is_empty() => {
            return check(NAME, Outcome::Skipped, "no acrValues are requested")
        }
        Settings::OAuth2 { acr_values } => acr_values,
    };
    let Some(supported) = meta.get("acr_values_supported").and_then(Value::as_array) else {
        return check(
            NAME,
            Outcome::Skipped,
            "the provider does not list acr_values_supported",
        );
    };
    let missing: Vec<&str> = requested
        .iter()
        .filter(|v| !supported.iter().any(|s| s.as_str() == Some(v.as_str())))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        check(
            NAME,
            Outcome::Passed,
            "every requested acr value is in acr_values_supported",
        )
    } else {
        check(
            NAME,
            Outcome::Failed,
            format!(
                "not in the provider's acr_values_supported: {}",
                missing.join(", ")
            ),
        )
    }
}

/// Runs every check against the provider.
pub async fn run(
    keys: &JwksCache,
    http: &crate::outbound::HttpClient,
    provider: &Provider,
    allow_http: bool,
) -> Report {
    let mut checks = Vec::new();
    let meta = match keys
        .openid_configuration(&provider.issuer_url, allow_http)
        .await
    {
        Ok(meta) => {
            checks.push(check(
                "discovery",
                Outcome::Passed,
                format!("read {}", openid_configuration_url(&provider.issuer_url)),
            ));
            meta
        }
        Err(e) => {
            checks.push(check("discovery", Outcome::Failed, e.to_string()));
            for name in ["issuer", "jwks", "acrValues", "clientCredentials"] {
                checks.push(check(
                    name,
                    Outcome::Skipped,
                    "the OpenID configuration could not be read",
                ));
            }
            return Report { checks };
        }
    };

    let announced = meta.get("issuer").and_then(Value::as_str).unwrap_or("");
    checks.push(if announced == provider.issuer_url {
        check(
            "issuer",
            Outcome::Passed,
            "the configuration names issuerUrl",
        )
    } else {
        check(
            "issuer",
            Outcome::Failed,
            format!(
                "the configuration names issuer {announced:?}, not issuerUrl {:?}",
                provider.issuer_url
            ),
        )
    });

    // The keys are judged even under a wrong issuer, so that one run shows every problem.
    let jwks_uri = jwks_uri_of(&meta, announced, allow_http);
    checks.push(match jwks_uri {
        Err(e) => check("jwks", Outcome::Failed, e.to_string()),
        Ok(jwks_url) => {
            let source = KeySource::at_jwks_url(&provider.issuer_url, jwks_url);
            match keys.refresh(&source).await {
                Ok(set) if set.is_empty() => check(
                    "jwks",
                    Outcome::Failed,
                    "the JWKS holds no usable signature key",
                ),
                Ok(set) => check(
                    "jwks",
                    Outcome::Passed,
                    format!("{} signature key(s) loaded", set.len()),
                ),
                Err(e) => check("jwks", Outcome::Failed, e.to_string()),
            }
        }
    });

    checks.push(acr_values_check(provider, &meta));

    checks.push(client_credentials_check(http, provider, &meta, allow_http).await);
    Report { checks }
}

async fn client_credentials_check(
    http: &crate::outbound::HttpClient,
    provider: &Provider,
    meta: &Map<String, Value>,
    allow_http: bool,
) -> Check {
    const NAME: &str = "clientCredentials";
    if provider.client_secret.is_empty() {
        return check(NAME, Outcome::Skipped, "no clientSecret is set");
    }
    let Some(token_url) = meta
        .get("token_endpoint")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    else {
        return check(
            NAME,
            Outcome::Failed,
            "the OpenID configuration has no token_endpoint",
        );
    };
    // The secret travels there: never over plain http unless the operator allowed it.
    if let Err(m) = check_scheme(token_url, allow_http) {
        return check(NAME, Outcome::Failed, format!("token_endpoint {m}"));
    }
    match crate::transmitter::auth::fetch_token(
        http,
        &provider.client_id,
        &provider.client_secret,
        None,
        token_url,
    )
    .await
    {
        Ok(_) => check(NAME, Outcome::Passed, "an access token was issued"),
        Err(e) => check(NAME, Outcome::Failed, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn oauth2(values: &[&str]) -> Provider {
        Provider {
            settings: Settings::OAuth2 {
                acr_values: values.iter().map(|s| s.to_string()).collect(),
            },
            ..Provider::default()
        }
    }

    #[test]
    fn acr_values_against_the_supported_list() {
        let meta = json!({"acr_values_supported": ["phr", "urn:okta:loa:2fa:any"]});
        let meta = meta.as_object().unwrap();
        assert_eq!(
            acr_values_check(&oauth2(&["phr"]), meta).outcome,
            Outcome::Passed
        );
        let c = acr_values_check(&oauth2(&["phr", "phrh"]), meta);
        assert_eq!(c.outcome, Outcome::Failed);
        assert!(c.detail.ends_with(": phrh"), "{}", c.detail);
        assert_eq!(
            acr_values_check(&oauth2(&["phrh"]), &Map::new()).outcome,
            Outcome::Skipped
        );
        assert_eq!(
            acr_values_check(&oauth2(&[]), meta).outcome,
            Outcome::Skipped
        );
    }
}
