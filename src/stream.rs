//! The receiver stream record: one transmitter feed, its verification settings and its policy knobs.
//!
//! Field names follow ConductorOne's SSFReceiverStream; the JSON shape lives in `admin::wire`.

use std::time::Duration;

use crate::clock::UnixSeconds;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMethod {
    Push,
    Poll,
}

impl DeliveryMethod {
    pub fn as_api(&self) -> &'static str {
        match self {
            DeliveryMethod::Push => "SSF_DELIVERY_METHOD_PUSH",
            DeliveryMethod::Poll => "SSF_DELIVERY_METHOD_POLL",
        }
    }

    /// Parses the API enum; `..._UNSPECIFIED` means PUSH.
    pub fn from_api(s: &str) -> Option<DeliveryMethod> {
        match s {
            "SSF_DELIVERY_METHOD_PUSH" | "SSF_DELIVERY_METHOD_UNSPECIFIED" => {
                Some(DeliveryMethod::Push)
            }
            "SSF_DELIVERY_METHOD_POLL" => Some(DeliveryMethod::Poll),
            _ => None,
        }
    }
}

/// Which transmitter dialect a stream accepts. `Ssf1_0` is strict SSF 1.0; `LegacySse` also
/// accepts the shapes of pre-1.0 ("SSE" draft) transmitters, each counted as a tolerance
/// (docs/push.md#compatibility-profiles). Signatures, algorithms, key sizes, `exp`, and `iss`
/// or `aud` beyond one trailing `/` are never tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompatibilityProfile {
    #[default]
    Ssf1_0,
    LegacySse,
}

impl CompatibilityProfile {
    pub fn as_api(&self) -> &'static str {
        match self {
            CompatibilityProfile::Ssf1_0 => "SSF_1_0",
            CompatibilityProfile::LegacySse => "LEGACY_SSE",
        }
    }

    pub fn from_api(s: &str) -> Option<CompatibilityProfile> {
        match s {
            "SSF_1_0" => Some(CompatibilityProfile::Ssf1_0),
            "LEGACY_SSE" => Some(CompatibilityProfile::LegacySse),
            _ => None,
        }
    }

    pub fn is_legacy(&self) -> bool {
        *self == CompatibilityProfile::LegacySse
    }
}

/// What happens to a subject's sessions when an event arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationAction {
    /// Defer to the `[policy]` table, then to the shipped defaults.
    Unspecified,
    RevokeAll,
    LogOnly,
    /// Ask for a fresh, stronger authentication (a step-up requirement) instead of a logout.
    StepUp,
}

impl RevocationAction {
    pub fn as_api(&self) -> &'static str {
        match self {
            RevocationAction::Unspecified => "SSF_REVOCATION_ACTION_UNSPECIFIED",
            RevocationAction::RevokeAll => "SSF_REVOCATION_ACTION_REVOKE_ALL",
            RevocationAction::LogOnly => "SSF_REVOCATION_ACTION_LOG_ONLY",
            RevocationAction::StepUp => "SSF_REVOCATION_ACTION_STEP_UP",
        }
    }

    pub fn from_api(s: &str) -> Option<RevocationAction> {
        match s {
            "SSF_REVOCATION_ACTION_UNSPECIFIED" => Some(RevocationAction::Unspecified),
            "SSF_REVOCATION_ACTION_REVOKE_ALL" => Some(RevocationAction::RevokeAll),
            "SSF_REVOCATION_ACTION_LOG_ONLY" => Some(RevocationAction::LogOnly),
            "SSF_REVOCATION_ACTION_STEP_UP" => Some(RevocationAction::StepUp),
            _ => None,
        }
    }

    /// The short form used in receiver.toml, logs and action documents.
    pub fn as_short(&self) -> &'static str {
        match self {
            RevocationAction::Unspecified => "UNSPECIFIED",
            RevocationAction::RevokeAll => "REVOKE_ALL",
            RevocationAction::LogOnly => "LOG_ONLY",
            RevocationAction::StepUp => "STEP_UP",
        }
    }

    pub fn from_short(s: &str) -> Option<RevocationAction> {
        match s {
            "REVOKE_ALL" => Some(RevocationAction::RevokeAll),
            "LOG_ONLY" => Some(RevocationAction::LogOnly),
            "STEP_UP" => Some(RevocationAction::StepUp),
            _ => None,
        }
    }
}

/// Credentials ssfd presents to the transmitter (poll and management calls). Write-only in the API.
#[derive(Clone, PartialEq, Eq)]
pub enum OutboundAuth {
    Bearer {
        token: String,
    },
    Oauth2 {
        client_id: String,
        client_secret: String,
        scopes: Vec<String>,
        token_url: String,
    },
}

impl std::fmt::Debug for OutboundAuth {
    // Secrets never reach a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboundAuth::Bearer { .. } => f.write_str("Bearer{token: <redacted>}"),
            OutboundAuth::Oauth2 {
                client_id,
                scopes,
                token_url,
                ..
            } => f
                .debug_struct("Oauth2")
                .field("client_id", client_id)
                .field("scopes", scopes)
                .field("token_url", token_url)
                .field("client_secret", &"<redacted>")
                .finish(),
        }
    }
}

/// The transmitter-side status of a stream, as last reported (SSF §8.1.2).
pub const TRANSMITTER_STATUSES: [&str; 3] = ["enabled", "paused", "disabled"];

#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub issuer_url: String,
    pub jwks_url: String,
    pub expected_audience: String,
    pub delivery_method: DeliveryMethod,
    pub poll_endpoint_url: String,
    pub poll_interval: Option<Duration>,
    pub outbound_auth: Option<OutboundAuth>,
    pub enabled: bool,
    pub event_types_enabled: Vec<String>,
    pub session_revoked_action: RevocationAction,
    pub credential_change_action: RevocationAction,
    pub credential_compromise_action: RevocationAction,
    pub account_disabled_action: RevocationAction,
    /// The step-up provider STEP_UP actions of this stream name; empty: `[step_up]
    /// default_provider`.
    pub step_up_provider_id: String,
    pub created_at: UnixSeconds,
    pub updated_at: UnixSeconds,
    pub deleted_at: Option<UnixSeconds>,
    pub last_error_at: Option<UnixSeconds>,
    pub last_error_message: String,
    pub last_verified_at: Option<UnixSeconds>,
    pub transmitter_stream_id: String,
    pub transmitter_status: String,
    pub transmitter_status_reason: String,
    /// Event types the transmitter promised at registration (SSF §8.1.1 `events_delivered`).
    pub events_delivered: Vec<String>,
    /// SHA-256 of the current push token (PUSH streams only).
    pub push_token_hash: Option<[u8; 32]>,
    /// SHA-256 of the previous push token, valid until `prev_push_token_expires_at`.
    pub prev_push_token_hash: Option<[u8; 32]>,
    pub prev_push_token_expires_at: Option<UnixSeconds>,
    pub compatibility_profile: CompatibilityProfile,
    /// The transmitter metadata document, when it is not found from `issuer_url`.
    pub metadata_url: String,
}

impl Stream {
    pub fn is_legacy(&self) -> bool {
        self.compatibility_profile.is_legacy()
    }

    pub fn is_push(&self) -> bool {
        self.delivery_method == DeliveryMethod::Push
    }

    pub fn push_endpoint_url(&self, public_base_url: &str) -> String {
        if self.is_push() {
            format!(
                "{}/ssf/push/{}",
                public_base_url.trim_end_matches('/'),
                self.id
            )
        } else {
            String::new()
        }
    }
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            id: String::new(),
            display_name: String::new(),
            description: String::new(),
            issuer_url: String::new(),
            jwks_url: String::new(),
            expected_audience: String::new(),
            delivery_method: DeliveryMethod::Push,
            poll_endpoint_url: String::new(),
            poll_interval: None,
            outbound_auth: None,
            enabled: true,
            event_types_enabled: Vec::new(),
            session_revoked_action: RevocationAction::Unspecified,
            credential_change_action: RevocationAction::Unspecified,
            credential_compromise_action: RevocationAction::Unspecified,
            account_disabled_action: RevocationAction::Unspecified,
            step_up_provider_id: String::new(),
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
            last_error_at: None,
            last_error_message: String::new(),
            last_verified_at: None,
            transmitter_stream_id: String::new(),
            transmitter_status: String::new(),
            transmitter_status_reason: String::new(),
            events_delivered: Vec::new(),
            push_token_hash: None,
            prev_push_token_hash: None,
            prev_push_token_expires_at: None,
            compatibility_profile: CompatibilityProfile::Ssf1_0,
            metadata_url: String::new(),
        }
    }
}
