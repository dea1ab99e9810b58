//! The JSON shape of a step-up provider (ConductorOne's StepUpProvider, camelCase) and the
//! validation of the fields a client writes. `clientSecret` is accepted here and never written
//! back out.

use serde_json::{json, Map, Value};

use crate::admin::wire::check_url;
use crate::admin::ApiError;
use crate::clock::rfc3339;
use crate::step_up::{Provider, Settings, ValidationMode};

/// Fields a client may write.
pub const WRITABLE: &[&str] = &[
    "displayName",
    "issuerUrl",
    "clientId",
    "clientSecret",
    "enabled",
    "oauth2",
    "microsoft",
];

/// Fields ssfd maintains.
pub const READ_ONLY: &[&str] = &["id", "createdAt", "updatedAt", "lastTestedAt"];

/// Most acr values or conditional access ids one provider may name.
const MAX_VALUES: usize = 32;
/// Longest acr value, conditional access id or tenant.
const MAX_VALUE_LEN: usize = 256;

/// The public representation of a provider. The client secret is never included.
pub fn provider_json(p: &Provider) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(p.id));
    m.insert("displayName".into(), json!(p.display_name));
    m.insert("issuerUrl".into(), json!(p.issuer_url));
    m.insert("clientId".into(), json!(p.client_id));
    m.insert("enabled".into(), json!(p.enabled));
    match &p.settings {
        Settings::OAuth2 { acr_values } => {
            m.insert("oauth2".into(), json!({ "acrValues": acr_values }));
        }
        Settings::Microsoft {
            conditional_access_ids,
            tenant,
            validation_mode,
        } => {
            m.insert(
                "microsoft".into(),
                json!({"conditionalAccessIds": conditional_access_ids, "tenant": tenant,
                       "validationMode": validation_mode.as_api()}),
            );
        }
    }
    m.insert("createdAt".into(), json!(rfc3339(p.created_at)));
    m.insert("updatedAt".into(), json!(rfc3339(p.updated_at)));
    if let Some(t) = p.last_tested_at {
        m.insert("lastTestedAt".into(), json!(rfc3339(t)));
    }
    Value::Object(m)
}

fn string_field(field: &str, v: &Value) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.trim().to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(ApiError::invalid(field, "must be a string")),
    }
}

/// A value that travels inside a quoted header parameter, space-separated from its neighbours.
fn token_value(field: &str, s: &str) -> Result<String, ApiError> {
    if s.is_empty()
        || s.len() > MAX_VALUE_LEN
        || !s
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(ApiError::invalid(
            field,
            "each value must be 1 to 256 visible ASCII characters without quotes or backslashes",
        ));
    }
    Ok(s.to_string())
}

fn token_list(field: &str, v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::invalid(field, "must be an array of strings")),
    };
    if items.len() > MAX_VALUES {
        return Err(ApiError::invalid(
            field,
            format!("names more than {MAX_VALUES} values"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let s = item
            .as_str()
            .ok_or_else(|| ApiError::invalid(field, "must be an array of strings"))?;
        let s = token_value(field, s.trim())?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn object<'a>(field: &str, v: &'a Value) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| ApiError::invalid(field, "must be an object"))
}

fn oauth2_settings(v: &Value) -> Result<Settings, ApiError> {
    let o = object("oauth2", v)?;
    Ok(Settings::OAuth2 {
        acr_values: token_list("oauth2.acrValues", o.get("acrValues"))?,
    })
}

fn microsoft_settings(v: &Value) -> Result<Settings, ApiError> {
    let o = object("microsoft", v)?;
    let ids = token_list(
        "microsoft.conditionalAccessIds",
        o.get("conditionalAccessIds"),
    )?;
    if ids.is_empty() {
        return Err(ApiError::invalid(
            "microsoft.conditionalAccessIds",
            "at least one conditional access id (such as \"c1\") is required",
        ));
    }
    let tenant = match o.get("tenant") {
        Some(v) => string_field("microsoft.tenant", v)?,
        None => String::new(),
    };
    if tenant.len() > MAX_VALUE_LEN || tenant.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "microsoft.tenant",
            "must be at most 256 characters without control characters",
        ));
    }
    let mode = match o.get("validationMode") {
        Some(v) => string_field("microsoft.validationMode", v)?,
        None => String::new(),
    };
    let validation_mode = ValidationMode::from_api(&mode).ok_or_else(|| {
        ApiError::invalid(
            "microsoft.validationMode",
            format!("must be one of {}", ValidationMode::API_VALUES.join(", ")),
        )
    })?;
    Ok(Settings::Microsoft {
        conditional_access_ids: ids,
        tenant,
        validation_mode,
    })
}

/// Writes the named fields of `body` onto `provider`.
pub fn apply_fields(
    provider: &mut Provider,
    body: &Map<String, Value>,
    fields: &[String],
    allow_http: bool,
) -> Result<(), ApiError> {
    let set = |name: &str| {
        fields.iter().any(|f| f == name) && body.get(name).is_some_and(|v| !v.is_null())
    };
    if set("oauth2") && set("microsoft") {
        return Err(ApiError::invalid(
            "microsoft",
            "oauth2 and microsoft are alternatives (the oneof settings): set only one",
        ));
    }
    for field in fields {
        let f = field.as_str();
        let v = body.get(f).unwrap_or(&Value::Null);
        match f {
            "displayName" => provider.display_name = string_field(f, v)?,
            "issuerUrl" => {
                let s = string_field(f, v)?;
                if !s.is_empty() {
                    check_url(f, &s, allow_http)?;
                }
                provider.issuer_url = s;
            }
            "clientId" => provider.client_id = string_field(f, v)?,
            "clientSecret" => {
                // Not trimmed: a secret is exactly what the client sent.
                provider.client_secret = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    _ => return Err(ApiError::invalid(f, "must be a string")),
                };
                if provider.client_secret.chars().any(char::is_control) {
                    return Err(ApiError::invalid(f, "must not contain control characters"));
                }
            }
            "enabled" => {
                provider.enabled = match v {
                    Value::Bool(b) => *b,
                    Value::Null => true,
                    _ => return Err(ApiError::invalid(f, "must be true or false")),
                }
            }
            "oauth2" | "microsoft" if v.is_null() => {
                let current =
                    matches!(provider.settings, Settings::OAuth2 { .. }) == (f == "oauth2");
                if current {
                    return Err(ApiError::invalid(
                        f,
                        "a provider needs its settings: set oauth2 or microsoft instead",
                    ));
                }
            }
            "oauth2" => provider.settings = oauth2_settings(v)?,
            "microsoft" => provider.settings = microsoft_settings(v)?,
            other => {
                return Err(ApiError::invalid(
                    "updateMask",
                    format!("{other} cannot be written"),
                ))
            }
        }
    }
    Ok(())
}

/// Checks that do not belong to one field alone, run after every create and update.
pub fn check_complete(p: &Provider) -> Result<(), ApiError> {
    if p.display_name.is_empty() {
        return Err(ApiError::invalid("displayName", "is required"));
    }
    if p.issuer_url.is_empty() {
        return Err(ApiError::invalid("issuerUrl", "is required"));
    }
    if !p.client_secret.is_empty() && p.client_id.is_empty() {
        return Err(ApiError::invalid(
            "clientId",
            "is required with a clientSecret",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(p: &mut Provider, body: Value) -> Result<(), ApiError> {
        let body = body.as_object().cloned().unwrap();
        let fields: Vec<String> = body.keys().cloned().collect();
        apply_fields(p, &body, &fields, false)
    }

    #[test]
    fn both_settings_name_the_field() {
        let mut p = Provider::default();
        let e = apply(
            &mut p,
            json!({"oauth2": {"acrValues": ["phr"]},
                   "microsoft": {"conditionalAccessIds": ["c1"]}}),
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_argument");
        assert!(e.message.starts_with("microsoft: "), "{}", e.message);
    }

    #[test]
    fn values_are_checked() {
        let mut p = Provider::default();
        let e = apply(&mut p, json!({"oauth2": {"acrValues": ["two words"]}})).unwrap_err();
        assert!(e.message.starts_with("oauth2.acrValues: "));
        let e = apply(&mut p, json!({"microsoft": {"conditionalAccessIds": []}})).unwrap_err();
        assert!(e.message.starts_with("microsoft.conditionalAccessIds: "));
        let e = apply(
            &mut p,
            json!({"microsoft": {"conditionalAccessIds": ["c1"], "validationMode": "X"}}),
        )
        .unwrap_err();
        assert!(e.message.starts_with("microsoft.validationMode: "));
        let e = apply(&mut p, json!({"issuerUrl": "http://idp"})).unwrap_err();
        assert!(e.message.starts_with("issuerUrl: "));
        // Clearing the settings in force is refused; clearing the other kind is a no-op.
        assert!(apply(&mut p, json!({"oauth2": null})).is_err());
        assert!(apply(&mut p, json!({"microsoft": null})).is_ok());
    }

    #[test]
    fn the_secret_is_never_serialised() {
        let p = Provider {
            client_secret: "s3cr3t-value".into(),
            ..Provider::default()
        };
        assert!(!provider_json(&p).to_string().contains("s3cr3t"));
        assert!(!provider_json(&p).to_string().contains("clientSecret"));
    }
}
