//! Step-up requirements and their judgement: what a subject must prove after a STEP_UP action,
//! whether the facts of a presented authentication prove it, and the exact `WWW-Authenticate`
//! challenge an application returns when they do not (RFC 9470 for OAuth 2.0 providers, the
//! claims challenge for Microsoft Entra). Pure functions: no I/O, the time is an argument.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use super::provider::{Settings, ValidationMode};
use crate::clock::UnixSeconds;

/// What must be proven, taken from the provider's settings when the requirement is recorded
/// (a later edit of the provider does not change a requirement already on record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Demand {
    /// RFC 9470: the authentication's `acr` must be one of these (any `acr` when empty).
    Acr(Vec<String>),
    /// Entra: the token's `acrs` must name one of these authentication context ids.
    ConditionalAccess {
        ids: Vec<String>,
        mode: ValidationMode,
    },
}

impl Demand {
    pub fn from_settings(settings: &Settings) -> Demand {
        match settings {
            Settings::OAuth2 { acr_values } => Demand::Acr(acr_values.clone()),
            Settings::Microsoft {
                conditional_access_ids,
                validation_mode,
                ..
            } => Demand::ConditionalAccess {
                ids: conditional_access_ids.clone(),
                mode: *validation_mode,
            },
        }
    }

    /// The values the answer reports as `acrValues`: acr values, or conditional access ids.
    pub fn values(&self) -> &[String] {
        match self {
            Demand::Acr(v) => v,
            Demand::ConditionalAccess { ids, .. } => ids,
        }
    }
}

/// A step-up requirement on one subject key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub provider_id: String,
    pub demand: Demand,
    /// RFC 9470 `max_age` in seconds; 0 asks for an authentication after `since` and nothing
    /// more, N > 0 also for one at most N seconds old.
    pub max_age: u64,
    /// The event time: only an authentication at or after it can satisfy the requirement.
    pub since: UnixSeconds,
    pub stream_id: String,
    pub jti: String,
    pub txn: Option<String>,
    pub event_type: String,
}

/// What an application knows about the authentication behind a session, from its token or
/// from the request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFacts {
    /// `iat`: when the token was issued.
    pub issued_at: Option<UnixSeconds>,
    /// `auth_time`: when the user last authenticated.
    pub auth_time: Option<UnixSeconds>,
    pub acr: Option<String>,
    /// Read and reported; RFC 9470 judges the `acr`, so `amr` decides nothing.
    pub amr: Vec<String>,
    /// Entra authentication contexts satisfied.
    pub acrs: Vec<String>,
    /// The canonical subject keys a presented token names (`iss` + `sub`, and its `email`);
    /// empty for stated facts.
    pub names: Vec<String>,
}

/// Why a requirement is not satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmet {
    /// Nothing says when the user authenticated.
    AuthTimeUnknown,
    /// The authentication happened before the event.
    AuthenticatedBefore {
        auth_time: UnixSeconds,
    },
    /// The authentication is older than `max_age`.
    TooOld {
        age: u64,
        max_age: u64,
    },
    /// The requirement names acr values and the authentication has no `acr`.
    AcrMissing,
    AcrNotAccepted {
        acr: String,
    },
    /// None of the required authentication contexts is in `acrs`.
    ConditionalAccessMissing,
}

impl Unmet {
    /// Whether a newer authentication, rather than a different one, is asked for.
    fn is_about_time(&self) -> bool {
        matches!(
            self,
            Unmet::AuthTimeUnknown | Unmet::AuthenticatedBefore { .. } | Unmet::TooOld { .. }
        )
    }
}

impl std::fmt::Display for Unmet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unmet::AuthTimeUnknown => f.write_str("the time of the authentication is unknown"),
            Unmet::AuthenticatedBefore { auth_time } => write!(
                f,
                "the authentication at {} is older than the event",
                crate::clock::rfc3339(*auth_time)
            ),
            Unmet::TooOld { age, max_age } => write!(
                f,
                "the authentication is {age} s old, more than maxAge {max_age} s"
            ),
            Unmet::AcrMissing => f.write_str("the authentication has no acr"),
            Unmet::AcrNotAccepted { acr } => {
                write!(f, "acr {acr:?} is not among the required acr values")
            }
            Unmet::ConditionalAccessMissing => {
                f.write_str("no required authentication context is in acrs")
            }
        }
    }
}

/// Decides whether `facts` satisfy `req` at time `now`.
pub fn evaluate(req: &Requirement, facts: &TokenFacts, now: UnixSeconds) -> Result<(), Unmet> {
    // Entra tokens carry no `auth_time`; their issue time is when the conditional access
    // policy was last enforced.
    let authenticated_at = match &req.demand {
        Demand::Acr(_) => facts.auth_time,
        Demand::ConditionalAccess { .. } => facts.auth_time.or(facts.issued_at),
    };
    let Some(at) = authenticated_at else {
        return Err(Unmet::AuthTimeUnknown);
    };
    if at < req.since {
        return Err(Unmet::AuthenticatedBefore { auth_time: at });
    }
    if req.max_age > 0 {
        let age = now.saturating_sub(at).max(0) as u64;
        if age > req.max_age {
            return Err(Unmet::TooOld {
                age,
                max_age: req.max_age,
            });
        }
    }
    match &req.demand {
        Demand::Acr(values) if values.is_empty() => Ok(()),
        Demand::Acr(values) => match &facts.acr {
            None => Err(Unmet::AcrMissing),
            Some(acr) if values.iter().any(|v| v == acr) => Ok(()),
            Some(acr) => Err(Unmet::AcrNotAccepted { acr: acr.clone() }),
        },
        Demand::ConditionalAccess { ids, mode } => {
            let in_acrs = facts.acrs.iter().any(|a| ids.contains(a));
            let in_acr = *mode == ValidationMode::Oidc
                && facts.acr.as_ref().is_some_and(|a| ids.contains(a));
            if in_acrs || in_acr {
                Ok(())
            } else {
                Err(Unmet::ConditionalAccessMissing)
            }
        }
    }
}

/// Escapes a value for an HTTP quoted-string (RFC 9110 §5.6.4).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// The Entra claims request for `ids`: `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`
/// for one id, `"values":[...]` (any of them) for several.
pub fn claims_request(ids: &[String]) -> String {
    let acrs = match ids {
        [one] => json!({"essential": true, "value": one}),
        many => json!({"essential": true, "values": many}),
    };
    json!({"access_token": {"acrs": acrs}}).to_string()
}

/// The `WWW-Authenticate` value an application returns for an unmet requirement.
pub fn www_authenticate(req: &Requirement, unmet: &Unmet) -> String {
    match &req.demand {
        Demand::Acr(values) => {
            // The descriptions of RFC 9470 §3, so that clients that show them read familiar text.
            let description = if unmet.is_about_time() {
                "More recent authentication is required"
            } else {
                "A different authentication level is required"
            };
            let mut h = format!(
                "Bearer error=\"insufficient_user_authentication\", error_description={}",
                quoted(description)
            );
            if !values.is_empty() {
                h.push_str(", acr_values=");
                h.push_str(&quoted(&values.join(" ")));
            }
            h.push_str(&format!(", max_age={}", req.max_age));
            h
        }
        Demand::ConditionalAccess { ids, .. } => format!(
            "Bearer error=\"insufficient_claims\", claims={}",
            quoted(&STANDARD.encode(claims_request(ids)))
        ),
    }
}

/// The verdict over every requirement on record for a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'a> {
    /// Unmet requirements, newest first, with why each is unmet.
    pub unmet: Vec<(&'a Requirement, Unmet)>,
}

impl Verdict<'_> {
    pub fn required(&self) -> bool {
        !self.unmet.is_empty()
    }

    /// The newest unmet requirement: the one the challenge answers.
    pub fn leading(&self) -> Option<&(&Requirement, Unmet)> {
        self.unmet.first()
    }

    /// The challenge for the newest unmet requirement; empty when nothing is required.
    pub fn www_authenticate(&self) -> String {
        self.leading()
            .map(|(r, u)| www_authenticate(r, u))
            .unwrap_or_default()
    }
}

/// Judges every requirement of a subject. A requirement is dropped when a revocation at or
/// after its event time supersedes it (`revoked_before`: the latest REVOKE_ALL that applies).
pub fn judge<'a>(
    requirements: &'a [Requirement],
    revoked_before: Option<UnixSeconds>,
    facts: &TokenFacts,
    now: UnixSeconds,
) -> Verdict<'a> {
    let mut unmet: Vec<(&Requirement, Unmet)> = requirements
        .iter()
        .filter(|r| revoked_before.is_none_or(|t| t < r.since))
        .filter_map(|r| evaluate(r, facts, now).err().map(|u| (r, u)))
        .collect();
    unmet.sort_by_key(|u| std::cmp::Reverse(u.0.since));
    Verdict { unmet }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SINCE: i64 = 1_800_000_000;

    fn oauth2(values: &[&str], max_age: u64) -> Requirement {
        Requirement {
            provider_id: "p1".into(),
            demand: Demand::Acr(values.iter().map(|s| s.to_string()).collect()),
            max_age,
            since: SINCE,
            stream_id: "s1".into(),
            jti: "j1".into(),
            txn: None,
            event_type: "https://schemas.openid.net/secevent/caep/event-type/risk-level-change"
                .into(),
        }
    }

    fn entra(ids: &[&str], mode: ValidationMode) -> Requirement {
        Requirement {
            demand: Demand::ConditionalAccess {
                ids: ids.iter().map(|s| s.to_string()).collect(),
                mode,
            },
            ..oauth2(&[], 0)
        }
    }

    fn facts(auth_time: Option<i64>, acr: Option<&str>) -> TokenFacts {
        TokenFacts {
            auth_time,
            acr: acr.map(String::from),
            ..TokenFacts::default()
        }
    }

    #[test]
    fn a_fresh_authentication_with_an_accepted_acr_satisfies() {
        let r = oauth2(&["urn:okta:loa:2fa:any", "phr"], 0);
        let now = SINCE + 100;
        assert_eq!(
            evaluate(&r, &facts(Some(SINCE + 10), Some("phr")), now),
            Ok(())
        );
        assert_eq!(evaluate(&r, &facts(Some(SINCE), Some("phr")), now), Ok(()));
    }

    #[test]
    fn stale_or_unknown_authentication_is_required() {
        let r = oauth2(&["phr"], 0);
        let now = SINCE + 100;
        assert_eq!(
            evaluate(&r, &facts(Some(SINCE - 1), Some("phr")), now),
            Err(Unmet::AuthenticatedBefore {
                auth_time: SINCE - 1
            })
        );
        assert_eq!(
            evaluate(&r, &facts(None, Some("phr")), now),
            Err(Unmet::AuthTimeUnknown)
        );
        // An OAuth2 requirement needs auth_time; the token's issue time does not say it.
        let only_iat = TokenFacts {
            issued_at: Some(SINCE + 5),
            acr: Some("phr".into()),
            ..TokenFacts::default()
        };
        assert_eq!(evaluate(&r, &only_iat, now), Err(Unmet::AuthTimeUnknown));
    }

    #[test]
    fn max_age_bounds_the_age_of_the_authentication() {
        let r = oauth2(&[], 300);
        assert_eq!(evaluate(&r, &facts(Some(SINCE), None), SINCE + 300), Ok(()));
        assert_eq!(
            evaluate(&r, &facts(Some(SINCE), None), SINCE + 301),
            Err(Unmet::TooOld {
                age: 301,
                max_age: 300
            })
        );
    }

    #[test]
    fn wrong_or_missing_acr_is_required() {
        let r = oauth2(&["urn:okta:loa:2fa:any"], 0);
        let now = SINCE + 10;
        assert_eq!(
            evaluate(&r, &facts(Some(now), Some("urn:okta:loa:1fa:pwd")), now),
            Err(Unmet::AcrNotAccepted {
                acr: "urn:okta:loa:1fa:pwd".into()
            })
        );
        assert_eq!(
            evaluate(&r, &facts(Some(now), None), now),
            Err(Unmet::AcrMissing)
        );
        // No acr values: any fresh authentication will do.
        assert_eq!(
            evaluate(&oauth2(&[], 0), &facts(Some(now), None), now),
            Ok(())
        );
    }

    #[test]
    fn entra_reads_acrs_and_falls_back_to_iat() {
        let r = entra(&["c1", "c2"], ValidationMode::Unspecified);
        let now = SINCE + 10;
        let token = TokenFacts {
            issued_at: Some(SINCE + 1),
            acrs: vec!["c2".into()],
            ..TokenFacts::default()
        };
        assert_eq!(evaluate(&r, &token, now), Ok(()));
        let other = TokenFacts {
            acrs: vec!["c9".into()],
            ..token.clone()
        };
        assert_eq!(
            evaluate(&r, &other, now),
            Err(Unmet::ConditionalAccessMissing)
        );
        // Only the OIDC mode reads `acr` as well.
        let via_acr = TokenFacts {
            issued_at: Some(SINCE + 1),
            acr: Some("c1".into()),
            ..TokenFacts::default()
        };
        assert_eq!(
            evaluate(&r, &via_acr, now),
            Err(Unmet::ConditionalAccessMissing)
        );
        assert_eq!(
            evaluate(&entra(&["c1"], ValidationMode::Oidc), &via_acr, now),
            Ok(())
        );
    }

    #[test]
    fn rfc_9470_challenge() {
        let r = oauth2(&["urn:okta:loa:2fa:any", "phr"], 0);
        assert_eq!(
            www_authenticate(&r, &Unmet::AcrMissing),
            "Bearer error=\"insufficient_user_authentication\", \
             error_description=\"A different authentication level is required\", \
             acr_values=\"urn:okta:loa:2fa:any phr\", max_age=0"
        );
        let r = oauth2(&[], 600);
        assert_eq!(
            www_authenticate(&r, &Unmet::AuthTimeUnknown),
            "Bearer error=\"insufficient_user_authentication\", \
             error_description=\"More recent authentication is required\", max_age=600"
        );
    }

    #[test]
    fn entra_claims_challenge_encoding() {
        let r = entra(&["c1"], ValidationMode::Acrs);
        // The example of Microsoft's claims challenge documentation, byte for byte.
        assert_eq!(
            www_authenticate(&r, &Unmet::ConditionalAccessMissing),
            "Bearer error=\"insufficient_claims\", \
             claims=\"eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19\""
        );
        assert_eq!(
            claims_request(&["c1".into(), "c2".into()]),
            r#"{"access_token":{"acrs":{"essential":true,"values":["c1","c2"]}}}"#
        );
    }

    #[test]
    fn quoted_strings_are_escaped() {
        assert_eq!(quoted("a\"b\\c\n"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn judge_picks_the_newest_unmet_and_drops_superseded() {
        let old = oauth2(&["phr"], 0);
        let newer = Requirement {
            since: SINCE + 50,
            jti: "j2".into(),
            ..oauth2(&["urn:okta:loa:2fa:any"], 120)
        };
        let reqs = vec![old.clone(), newer.clone()];
        let none = TokenFacts::default();
        let v = judge(&reqs, None, &none, SINCE + 60);
        assert!(v.required());
        assert_eq!(v.unmet.len(), 2);
        assert_eq!(v.leading().unwrap().0.jti, "j2");
        assert!(v.www_authenticate().contains("max_age=120"));
        // A revocation at or after a requirement's event time supersedes it.
        let v = judge(&reqs, Some(SINCE), &none, SINCE + 60);
        assert_eq!(v.unmet.len(), 1);
        assert_eq!(v.unmet[0].0.jti, "j2");
        let v = judge(&reqs, Some(SINCE + 50), &none, SINCE + 60);
        assert!(!v.required());
        assert_eq!(v.www_authenticate(), "");
        // One fresh authentication can satisfy one and not the other.
        let phr = facts(Some(SINCE + 55), Some("phr"));
        let v = judge(&reqs, None, &phr, SINCE + 60);
        assert_eq!(v.unmet.len(), 1);
        assert_eq!(v.unmet[0].0.jti, "j2");
    }
}
