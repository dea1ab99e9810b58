//! The step-up provider record: an OpenID provider that can make a user authenticate again, more
//! strongly. Field names follow ConductorOne's StepUpProvider; the JSON shape lives in
//! `admin::step_up::wire`.

use crate::clock::UnixSeconds;

/// How ssfd reads a Microsoft Entra token's proof of conditional access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidationMode {
    /// Same as `Acrs`.
    #[default]
    Unspecified,
    /// The token's `acrs` claim (authentication contexts) must name a required id.
    Acrs,
    /// The `acrs` claim, or the OpenID `acr` claim, may name a required id.
    Oidc,
}

impl ValidationMode {
    pub const API_VALUES: [&'static str; 3] = [
        "MICROSOFT_VALIDATION_MODE_UNSPECIFIED",
        "MICROSOFT_VALIDATION_MODE_ACRS",
        "MICROSOFT_VALIDATION_MODE_OIDC",
    ];

    pub fn as_api(&self) -> &'static str {
        match self {
            ValidationMode::Unspecified => Self::API_VALUES[0],
            ValidationMode::Acrs => Self::API_VALUES[1],
            ValidationMode::Oidc => Self::API_VALUES[2],
        }
    }

    pub fn from_api(s: &str) -> Option<ValidationMode> {
        match s {
            "" | "MICROSOFT_VALIDATION_MODE_UNSPECIFIED" => Some(ValidationMode::Unspecified),
            "MICROSOFT_VALIDATION_MODE_ACRS" => Some(ValidationMode::Acrs),
            "MICROSOFT_VALIDATION_MODE_OIDC" => Some(ValidationMode::Oidc),
            _ => None,
        }
    }
}

/// The oneof `settings`: exactly one kind of provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settings {
    /// An OAuth 2.0 / OpenID provider that understands RFC 9470 step-up challenges.
    OAuth2 { acr_values: Vec<String> },
    /// Microsoft Entra with Conditional Access authentication contexts (claims challenges).
    Microsoft {
        conditional_access_ids: Vec<String>,
        tenant: String,
        validation_mode: ValidationMode,
    },
}

impl Default for Settings {
    fn default() -> Self {
        Settings::OAuth2 {
            acr_values: Vec::new(),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Provider {
    pub id: String,
    pub display_name: String,
    pub issuer_url: String,
    pub client_id: String,
    /// Write-only: kept for the client-credentials request of the `test` call; empty when none.
    pub client_secret: String,
    pub enabled: bool,
    pub settings: Settings,
    pub created_at: UnixSeconds,
    pub updated_at: UnixSeconds,
    pub last_tested_at: Option<UnixSeconds>,
}

impl std::fmt::Debug for Provider {
    // The client secret never reaches a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("display_name", &self.display_name)
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &if self.client_secret.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("enabled", &self.enabled)
            .field("settings", &self.settings)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("last_tested_at", &self.last_tested_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let p = Provider {
            client_secret: "hunter2-very-secret".into(),
            ..Provider::default()
        };
        let text = format!("{p:?}");
        assert!(!text.contains("hunter2"));
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn validation_modes_round_trip() {
        for v in ValidationMode::API_VALUES {
            assert_eq!(ValidationMode::from_api(v).map(|m| m.as_api()), Some(v));
        }
        assert_eq!(ValidationMode::from_api("ACRS"), None);
    }
}
