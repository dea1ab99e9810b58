//! The JSON shape of a receiver stream (ConductorOne's SSFReceiverStream, camelCase), and the
//! validation of fields a client writes. Secrets are accepted here and never written back out.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::ApiError;
use crate::clock::rfc3339;
use crate::stream::{CompatibilityProfile, DeliveryMethod, OutboundAuth, RevocationAction, Stream};

/// Fields a client may write.
pub const WRITABLE: &[&str] = &[
    "displayName",
    "description",
    "issuerUrl",
    "jwksUrl",
    "expectedAudience",
    "deliveryMethod",
    "pollEndpointUrl",
    "pollInterval",
    "pushAuthToken",
    "outboundAuthBearer",
    "outboundAuthOauth2",
    "enabled",
    "eventTypesEnabled",
    "sessionRevokedAction",
    "credentialChangeAction",
    "credentialCompromiseAction",
    "accountDisabledAction",
    "stepUpProviderId",
    "transmitterStreamId",
    "compatibilityProfile",
    "metadataUrl",
];

/// Fields ssfd maintains; present in bodies sent back by clients, ignored unless named in an
/// `updateMask`, where they are an error.
pub const READ_ONLY: &[&str] = &[
    "id",
    "pushEndpointUrl",
    "createdAt",
    "updatedAt",
    "deletedAt",
    "lastErrorAt",
    "lastErrorMessage",
    "lastVerifiedAt",
    "transmitterStatus",
    "transmitterStatusReason",
    "eventsDelivered",
];

/// Shortest push token an operator may supply.
pub const MIN_PUSH_TOKEN_LEN: usize = 32;

fn put_time(m: &mut Map<String, Value>, key: &str, t: Option<i64>) {
    if let Some(t) = t {
        m.insert(key.into(), Value::String(rfc3339(t)));
    }
}

/// Formats a duration as the API shows it: whole seconds with an `s` (`"30s"`).
pub fn duration_json(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// The public representation of a stream. Write-only secrets are never included.
pub fn stream_json(s: &Stream, public_base_url: &str) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(s.id));
    m.insert("displayName".into(), json!(s.display_name));
    m.insert("description".into(), json!(s.description));
    m.insert("issuerUrl".into(), json!(s.issuer_url));
    m.insert("jwksUrl".into(), json!(s.jwks_url));
    m.insert("expectedAudience".into(), json!(s.expected_audience));
    m.insert("deliveryMethod".into(), json!(s.delivery_method.as_api()));
    m.insert("pollEndpointUrl".into(), json!(s.poll_endpoint_url));
    if let Some(d) = s.poll_interval {
        m.insert("pollInterval".into(), json!(duration_json(d)));
    }
    m.insert(
        "pushEndpointUrl".into(),
        json!(s.push_endpoint_url(public_base_url)),
    );
    match &s.outbound_auth {
        Some(OutboundAuth::Bearer { .. }) => {
            m.insert("outboundAuthBearer".into(), json!({}));
        }
        Some(OutboundAuth::Oauth2 {
            client_id,
            scopes,
            token_url,
            ..
        }) => {
            m.insert(
                "outboundAuthOauth2".into(),
                json!({"clientId": client_id, "scopes": scopes, "tokenUrl": token_url}),
            );
        }
        None => {}
    }
    m.insert("enabled".into(), json!(s.enabled));
    m.insert("eventTypesEnabled".into(), json!(s.event_types_enabled));
    m.insert(
        "sessionRevokedAction".into(),
        json!(s.session_revoked_action.as_api()),
    );
    m.insert(
        "credentialChangeAction".into(),
        json!(s.credential_change_action.as_api()),
    );
    m.insert(
        "credentialCompromiseAction".into(),
        json!(s.credential_compromise_action.as_api()),
    );
    m.insert(
        "accountDisabledAction".into(),
        json!(s.account_disabled_action.as_api()),
    );
    put_time(&mut m, "createdAt", Some(s.created_at));
    put_time(&mut m, "updatedAt", Some(s.updated_at));
    put_time(&mut m, "deletedAt", s.deleted_at);
    put_time(&mut m, "lastErrorAt", s.last_error_at);
    m.insert("lastErrorMessage".into(), json!(s.last_error_message));
    put_time(&mut m, "lastVerifiedAt", s.last_verified_at);
    m.insert("stepUpProviderId".into(), json!(s.step_up_provider_id));
    m.insert("transmitterStreamId".into(), json!(s.transmitter_stream_id));
    m.insert("transmitterStatus".into(), json!(s.transmitter_status));
    m.insert(
        "transmitterStatusReason".into(),
        json!(s.transmitter_status_reason),
    );
    m.insert("eventsDelivered".into(), json!(s.events_delivered));
    m.insert(
        "compatibilityProfile".into(),
        json!(s.compatibility_profile.as_api()),
    );
    m.insert("metadataUrl".into(), json!(s.metadata_url));
    Value::Object(m)
}

fn string_field(field: &str, v: &Value) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.trim().to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(ApiError::invalid(field, "must be a string")),
    }
}

fn url_field(field: &str, v: &Value, allow_http: bool) -> Result<String, ApiError> {
    let s = string_field(field, v)?;
    if s.is_empty() {
        return Ok(s);
    }
    check_url(field, &s, allow_http)?;
    Ok(s)
}

/// An absolute http(s) URL with a host, no fragment; https unless `allow_http`.
/// Credentials in the URL itself (`https://user:pw@host`) are refused: they would be sent to
/// the host in the clear of every log that shows the URL.
pub fn check_url(field: &str, s: &str, allow_http: bool) -> Result<(), ApiError> {
    crate::url_check::check_url(s, allow_http).map_err(|m| ApiError::invalid(field, m))
}

/// The origin (scheme, host, port) of a URL, for deciding whether a secret would go to a new
/// host; an empty or unparsable URL has none.
fn origin(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

/// A stored write-only secret is never carried over to a new host: when the URL it is sent to
/// moves to another origin, the client must give the secret again (ssfd cannot tell whether the
/// new host is meant to have it).
fn check_secrets_follow_urls(
    before: &Stream,
    after: &Stream,
    bearer_given: bool,
    secret_given: bool,
) -> Result<(), ApiError> {
    if let (Some(OutboundAuth::Bearer { token: old }), Some(OutboundAuth::Bearer { token: new })) =
        (&before.outbound_auth, &after.outbound_auth)
    {
        let moved = [
            (
                "pollEndpointUrl",
                &before.poll_endpoint_url,
                &after.poll_endpoint_url,
            ),
            ("issuerUrl", &before.issuer_url, &after.issuer_url),
        ]
        .into_iter()
        .find(|(_, b, a)| !b.is_empty() && origin(b) != origin(a));
        if let Some((field, _, _)) = moved {
            if old == new && !bearer_given {
                return Err(ApiError::invalid(
                    field,
                    "moves to another host: give outboundAuthBearer.token again (the stored token \
                     is never sent to a new host)",
                ));
            }
        }
    }
    if let (
        Some(OutboundAuth::Oauth2 {
            client_secret: old,
            token_url: old_url,
            ..
        }),
        Some(OutboundAuth::Oauth2 {
            client_secret: new,
            token_url: new_url,
            ..
        }),
    ) = (&before.outbound_auth, &after.outbound_auth)
    {
        if old == new && !secret_given && origin(old_url) != origin(new_url) {
            return Err(ApiError::invalid(
                "outboundAuthOauth2.tokenUrl",
                "moves to another host: give outboundAuthOauth2.clientSecret again (the stored \
                 secret is never sent to a new host)",
            ));
        }
    }
    Ok(())
}

fn action_field(field: &str, v: &Value) -> Result<RevocationAction, ApiError> {
    let s = string_field(field, v)?;
    if s.is_empty() {
        return Ok(RevocationAction::Unspecified);
    }
    RevocationAction::from_api(&s).ok_or_else(|| {
        ApiError::invalid(
            field,
            "must be SSF_REVOCATION_ACTION_UNSPECIFIED, SSF_REVOCATION_ACTION_REVOKE_ALL, SSF_REVOCATION_ACTION_LOG_ONLY or SSF_REVOCATION_ACTION_STEP_UP",
        )
    })
}

/// Parses an API duration: `"30s"`, `"1.5s"` (protobuf form) or any humantime form (`"5m"`).
pub fn parse_api_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Some(secs) = s.strip_suffix('s') {
        if let Ok(f) = secs.parse::<f64>() {
            // Bounded: a century is more than any interval ssfd has use for.
            return Duration::try_from_secs_f64(f)
                .ok()
                .filter(|d| *d <= MAX_API_DURATION);
        }
    }
    humantime::parse_duration(s)
        .ok()
        .filter(|d| *d <= MAX_API_DURATION)
}

/// The longest duration the API accepts (100 years).
pub const MAX_API_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Writes the named fields of `body` onto `stream`. Returns the push token the client supplied,
/// if any (the caller stores only its hash). `previous` is the record before the change, so that
/// write-only secrets a client cannot read back are kept when left out.
pub fn apply_fields(
    stream: &mut Stream,
    body: &Map<String, Value>,
    fields: &[String],
    allow_http: bool,
) -> Result<Option<String>, ApiError> {
    let mut push_token = None;
    let before = stream.clone();
    let (mut bearer_given, mut secret_given) = (false, false);
    let set = |name: &str| {
        fields.iter().any(|f| f == name) && body.get(name).is_some_and(|v| !v.is_null())
    };
    if set("outboundAuthBearer") && set("outboundAuthOauth2") {
        return Err(ApiError::invalid(
            "outboundAuthBearer",
            "outboundAuthBearer and outboundAuthOauth2 are alternatives: set only one",
        ));
    }
    for field in fields {
        let v = body.get(field.as_str()).unwrap_or(&Value::Null);
        let f = field.as_str();
        match f {
            "displayName" => stream.display_name = string_field(f, v)?,
            "description" => stream.description = string_field(f, v)?,
            "issuerUrl" => stream.issuer_url = url_field(f, v, allow_http)?,
            "jwksUrl" => stream.jwks_url = url_field(f, v, allow_http)?,
            "expectedAudience" => stream.expected_audience = string_field(f, v)?,
            "deliveryMethod" => {
                let s = string_field(f, v)?;
                stream.delivery_method = if s.is_empty() {
                    DeliveryMethod::Push
                } else {
                    DeliveryMethod::from_api(&s).ok_or_else(|| {
                        ApiError::invalid(
                            f,
                            "must be SSF_DELIVERY_METHOD_PUSH, SSF_DELIVERY_METHOD_POLL or SSF_DELIVERY_METHOD_UNSPECIFIED",
                        )
                    })?
                };
            }
            "pollEndpointUrl" => stream.poll_endpoint_url = url_field(f, v, allow_http)?,
            "pollInterval" => {
                let s = string_field(f, v)?;
                stream.poll_interval = if s.is_empty() {
                    None
                } else {
                    Some(parse_api_duration(&s).ok_or_else(|| {
                        ApiError::invalid(f, "must be a duration such as \"30s\" or \"5m\"")
                    })?)
                };
            }
            "pushAuthToken" => {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    _ => return Err(ApiError::invalid(f, "must be a string")),
                };
                if !s.is_empty() {
                    // It travels in an HTTP header: visible ASCII only.
                    if s.len() < MIN_PUSH_TOKEN_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(ApiError::invalid(
                            f,
                            "must be at least 32 visible ASCII characters",
                        ));
                    }
                    push_token = Some(s);
                }
            }
            "outboundAuthBearer" => match v {
                Value::Null => {
                    if matches!(stream.outbound_auth, Some(OutboundAuth::Bearer { .. })) {
                        stream.outbound_auth = None;
                    }
                }
                Value::Object(o) => {
                    let token = match o.get("token") {
                        Some(t) => string_field("outboundAuthBearer.token", t)?,
                        None => String::new(),
                    };
                    bearer_given |= !token.is_empty();
                    let token = if token.is_empty() {
                        // Write-only: a client echoing the record back cannot send it.
                        match &stream.outbound_auth {
                            Some(OutboundAuth::Bearer { token }) => token.clone(),
                            _ => {
                                return Err(ApiError::invalid(
                                    "outboundAuthBearer.token",
                                    "is required",
                                ))
                            }
                        }
                    } else {
                        token
                    };
                    stream.outbound_auth = Some(OutboundAuth::Bearer { token });
                }
                _ => return Err(ApiError::invalid(f, "must be an object")),
            },
            "outboundAuthOauth2" => match v {
                Value::Null => {
                    if matches!(stream.outbound_auth, Some(OutboundAuth::Oauth2 { .. })) {
                        stream.outbound_auth = None;
                    }
                }
                Value::Object(o) => {
                    let get = |k: &str| -> Result<String, ApiError> {
                        o.get(k)
                            .map(|v| string_field(&format!("outboundAuthOauth2.{k}"), v))
                            .transpose()
                            .map(Option::unwrap_or_default)
                    };
                    let client_id = get("clientId")?;
                    let mut client_secret = get("clientSecret")?;
                    secret_given |= !client_secret.is_empty();
                    let token_url = get("tokenUrl")?;
                    let scopes = match o.get("scopes") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(a)) => a
                            .iter()
                            .map(|s| {
                                s.as_str().map(String::from).ok_or_else(|| {
                                    ApiError::invalid(
                                        "outboundAuthOauth2.scopes",
                                        "must be an array of strings",
                                    )
                                })
                            })
                            .collect::<Result<_, _>>()?,
                        Some(_) => {
                            return Err(ApiError::invalid(
                                "outboundAuthOauth2.scopes",
                                "must be an array of strings",
                            ))
                        }
                    };
                    if client_secret.is_empty() {
                        if let Some(OutboundAuth::Oauth2 {
                            client_secret: old, ..
                        }) = &stream.outbound_auth
                        {
                            client_secret = old.clone();
                        }
                    }
                    if client_id.is_empty() {
                        return Err(ApiError::invalid(
                            "outboundAuthOauth2.clientId",
                            "is required",
                        ));
                    }
                    if client_secret.is_empty() {
                        return Err(ApiError::invalid(
                            "outboundAuthOauth2.clientSecret",
                            "is required",
                        ));
                    }
                    if token_url.is_empty() {
                        return Err(ApiError::invalid(
                            "outboundAuthOauth2.tokenUrl",
                            "is required",
                        ));
                    }
                    check_url("outboundAuthOauth2.tokenUrl", &token_url, allow_http)?;
                    stream.outbound_auth = Some(OutboundAuth::Oauth2 {
                        client_id,
                        client_secret,
                        scopes,
                        token_url,
                    });
                }
                _ => return Err(ApiError::invalid(f, "must be an object")),
            },
            "enabled" => {
                stream.enabled = match v {
                    Value::Bool(b) => *b,
                    Value::Null => true,
                    _ => return Err(ApiError::invalid(f, "must be true or false")),
                }
            }
            "eventTypesEnabled" => {
                stream.event_types_enabled = match v {
                    Value::Null => Vec::new(),
                    Value::Array(a) => a
                        .iter()
                        .map(|s| match s.as_str().map(str::trim) {
                            Some(t) if !t.is_empty() => Ok(t.to_string()),
                            _ => Err(ApiError::invalid(f, "must be an array of event-type URIs")),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(ApiError::invalid(f, "must be an array of event-type URIs")),
                }
            }
            "sessionRevokedAction" => stream.session_revoked_action = action_field(f, v)?,
            "credentialChangeAction" => stream.credential_change_action = action_field(f, v)?,
            "credentialCompromiseAction" => {
                stream.credential_compromise_action = action_field(f, v)?
            }
            "accountDisabledAction" => stream.account_disabled_action = action_field(f, v)?,
            "stepUpProviderId" => stream.step_up_provider_id = string_field(f, v)?,
            "transmitterStreamId" => stream.transmitter_stream_id = string_field(f, v)?,
            "compatibilityProfile" => {
                let s = string_field(f, v)?;
                stream.compatibility_profile = if s.is_empty() {
                    CompatibilityProfile::Ssf1_0
                } else {
                    CompatibilityProfile::from_api(&s)
                        .ok_or_else(|| ApiError::invalid(f, "must be SSF_1_0 or LEGACY_SSE"))?
                };
            }
            "metadataUrl" => stream.metadata_url = url_field(f, v, allow_http)?,
            other => {
                return Err(ApiError::invalid(
                    "updateMask",
                    format!("{other} cannot be written"),
                ))
            }
        }
    }
    check_secrets_follow_urls(&before, stream, bearer_given, secret_given)?;
    Ok(push_token)
}

/// Checks that do not belong to one field alone, run after every create and update.
pub fn check_complete(stream: &Stream) -> Result<(), ApiError> {
    if stream.display_name.is_empty() {
        return Err(ApiError::invalid("displayName", "is required"));
    }
    if stream.issuer_url.is_empty() {
        return Err(ApiError::invalid("issuerUrl", "is required"));
    }
    // A disabled POLL stream may wait for its URL: transmitters assign it when the stream is
    // registered there (`register` fills it in), and it is needed only once polling starts.
    if stream.delivery_method == DeliveryMethod::Poll
        && stream.poll_endpoint_url.is_empty()
        && stream.enabled
    {
        return Err(ApiError::invalid(
            "pollEndpointUrl",
            "is required when deliveryMethod is SSF_DELIVERY_METHOD_POLL (a disabled stream may \
             get it from registration)",
        ));
    }
    Ok(())
}

/// Record names an `updateMask` entry may start with (`ssfReceiverStream.enabled`).
const MASK_PREFIXES: [&str; 4] = [
    "ssfReceiverStream.",
    "ssf_receiver_stream.",
    "stepUpProvider.",
    "step_up_provider.",
];

/// Normalises an `updateMask` entry: camelCase, with an optional record-name prefix
/// (`ssfReceiverStream.`, `stepUpProvider.`); snake_case is accepted too.
pub fn mask_field(raw: &str) -> String {
    let raw = raw.trim();
    let raw = MASK_PREFIXES
        .iter()
        .find_map(|p| raw.strip_prefix(p))
        .unwrap_or(raw);
    // Only the top-level field matters: `outboundAuthOauth2.clientSecret` updates the whole oneof.
    let top = raw.split('.').next().unwrap_or(raw);
    let mut out = String::with_capacity(top.len());
    let mut upper = false;
    for c in top.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The query of an update call (streams and step-up providers alike).
#[derive(serde::Deserialize)]
pub struct UpdateQuery {
    #[serde(rename = "updateMask")]
    pub update_mask: Option<String>,
}

/// Reads an update request: the record (under `wrapper`, or the bare body) and the fields to
/// write. The `updateMask` comes from the body (a string or the protobuf `{"paths": [...]}`
/// form), else from the query; without one, every writable field present in the record.
pub fn update_request(
    body: &Map<String, Value>,
    wrapper: &str,
    query_mask: Option<String>,
    writable: &[&str],
    read_only: &[&str],
) -> Result<(Map<String, Value>, Vec<String>), ApiError> {
    let record = match body.get(wrapper) {
        Some(Value::Object(inner)) => inner.clone(),
        Some(_) => return Err(ApiError::invalid(wrapper, "must be an object")),
        // A bare record is accepted too.
        None => body.clone(),
    };
    let mask = match body.get("updateMask") {
        Some(Value::String(s)) => Some(s.clone()),
        // The protobuf JSON form of a FieldMask can also arrive as {"paths": [...]}.
        Some(Value::Object(o)) => o.get("paths").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        }),
        Some(Value::Null) | None => query_mask,
        Some(_) => {
            return Err(ApiError::invalid(
                "updateMask",
                "must be a comma-separated string",
            ))
        }
    };
    let fields: Vec<String> = match mask.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(mask) => {
            let mut names = Vec::new();
            for raw in mask.split(',').filter(|s| !s.trim().is_empty()) {
                let name = mask_field(raw);
                if read_only.contains(&name.as_str()) {
                    return Err(ApiError::invalid(
                        "updateMask",
                        format!("{name} is read-only"),
                    ));
                }
                if !writable.contains(&name.as_str()) {
                    return Err(ApiError::invalid(
                        "updateMask",
                        format!("unknown field {name}"),
                    ));
                }
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            names
        }
        None => writable
            .iter()
            .filter(|f| record.contains_key(**f))
            .map(|f| f.to_string())
            .collect(),
    };
    Ok((record, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_forms() {
        assert_eq!(mask_field("display_name"), "displayName");
        assert_eq!(mask_field("ssfReceiverStream.enabled"), "enabled");
        assert_eq!(mask_field("stepUpProvider.oauth2.acrValues"), "oauth2");
        assert_eq!(
            mask_field(" outboundAuthOauth2.clientSecret "),
            "outboundAuthOauth2"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_api_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_api_duration("1.5s"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_api_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_api_duration("soon"), None);
    }

    #[test]
    fn secrets_never_serialised() {
        let s = Stream {
            outbound_auth: Some(OutboundAuth::Oauth2 {
                client_id: "cid".into(),
                client_secret: "very-secret".into(),
                scopes: vec!["ssf.read".into()],
                token_url: "https://as/token".into(),
            }),
            push_token_hash: Some([7; 32]),
            ..Stream::default()
        };
        let text = stream_json(&s, "http://x").to_string();
        assert!(!text.contains("very-secret"));
        assert!(!text.contains("pushAuthToken"));
    }
}
