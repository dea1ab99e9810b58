//! The compact JWS envelope: splitting, decoding, and the header checks that come before any key
//! is looked at (`typ`, the algorithm allow-list).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::error::SetError;

/// Signature algorithms ssfd accepts. Never `none`, never the symmetric `HS*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "EdDSA" => Alg::EdDsa,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// The JWK `kty` a key for this algorithm has.
    pub fn key_type(&self) -> &'static str {
        match self {
            Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512 => "RSA",
            Alg::Es256 | Alg::Es384 => "EC",
            Alg::EdDsa => "OKP",
        }
    }
}

/// A compact JWS taken apart, with its header checked but its signature not yet verified.
#[derive(Debug)]
pub struct ParsedJws<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    /// `BASE64URL(header) . BASE64URL(payload)`, the bytes the signature covers.
    pub signing_input: &'a [u8],
    pub signature: Vec<u8>,
    pub payload: Map<String, Value>,
    /// The decoded payload text, kept so that storing the claims needs no re-serialisation.
    pub payload_json: String,
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, SetError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| SetError::request(format!("the JWS {what} is not valid base64url")))
}

fn decode_object(part: &str, what: &str) -> Result<(Map<String, Value>, Vec<u8>), SetError> {
    let bytes = decode_part(part, what)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok((map, bytes)),
        Ok(_) => Err(SetError::request(format!(
            "the JWS {what} is not a JSON object"
        ))),
        Err(_) => Err(SetError::request(format!(
            "the JWS {what} is not valid JSON"
        ))),
    }
}

/// True for `secevent+jwt` and `application/secevent+jwt`, in any letter case.
fn is_set_typ(typ: &str) -> bool {
    let t = typ.trim().to_ascii_lowercase();
    t == "secevent+jwt" || t == "application/secevent+jwt"
}

/// True for the `typ` of an ID token or access token: absent, `JWT`, or `at+jwt` (RFC 9068).
fn is_jwt_typ(typ: &str) -> bool {
    let t = typ.trim().to_ascii_lowercase();
    matches!(t.as_str(), "jwt" | "at+jwt" | "application/at+jwt")
}

/// Parses a compact JWS and checks, in this order: structure and encoding (`invalid_request`),
/// `typ` (`invalid_request`), `alg` (`invalid_key`).
pub fn parse(token: &str) -> Result<ParsedJws<'_>, SetError> {
    parse_checked(token, |typ| match typ {
        Some(Value::String(t)) if is_set_typ(t) => Ok(()),
        Some(Value::String(t)) => Err(SetError::request(format!(
            "JOSE header typ {t:?} is not secevent+jwt"
        ))),
        _ => Err(SetError::request("JOSE header typ must be secevent+jwt")),
    })
}

/// Parses an ID token or access token (a JWT that is not a SET) with the same checks as
/// [`parse`] but for `typ`: absent, `JWT` or `at+jwt`. A SET is refused, so that one kind of
/// token is never taken for the other.
pub fn parse_jwt(token: &str) -> Result<ParsedJws<'_>, SetError> {
    parse_checked(token, |typ| match typ {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(t)) if is_jwt_typ(t) => Ok(()),
        Some(Value::String(t)) => Err(SetError::request(format!(
            "JOSE header typ {t:?} is not JWT or at+jwt"
        ))),
        Some(_) => Err(SetError::request("JOSE header typ is not a string")),
    })
}

fn parse_checked(
    token: &str,
    check_typ: impl FnOnce(Option<&Value>) -> Result<(), SetError>,
) -> Result<ParsedJws<'_>, SetError> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SetError::request(
            "the body is not a compact JWS (three base64url parts separated by dots)",
        ));
    };
    if h.is_empty() || p.is_empty() {
        return Err(SetError::request("the JWS header or payload is empty"));
    }
    let (header, _) = decode_object(h, "header")?;
    let (payload, payload_bytes) = decode_object(p, "payload")?;
    // serde_json accepted the bytes, so they are UTF-8.
    let payload_json = String::from_utf8(payload_bytes).unwrap_or_default();
    let signature = decode_part(s, "signature")?;

    check_typ(header.get("typ"))?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Alg::from_name(name).ok_or_else(|| {
            SetError::key(format!(
                "signature algorithm {name:?} is not accepted (asymmetric algorithms only)"
            ))
        })?,
        _ => return Err(SetError::key("JOSE header alg is missing")),
    };
    if signature.is_empty() {
        return Err(SetError::key("the JWS has no signature"));
    }
    let kid = match header.get("kid") {
        Some(Value::String(k)) => Some(k.clone()),
        None | Some(Value::Null) => None,
        Some(_) => return Err(SetError::key("JOSE header kid is not a string")),
    };
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: we understand no extensions, so a critical one must fail.
        return Err(SetError::key(
            "JOSE header crit names extensions ssfd does not support",
        ));
    }
    let signing_input = &token.as_bytes()[..h.len() + 1 + p.len()];
    Ok(ParsedJws {
        alg,
        kid,
        signing_input,
        signature,
        payload,
        payload_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::ErrCode;

    fn b64(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn structure_errors_are_invalid_request() {
        for t in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.b.c",
            &format!("{}.x.y", b64("[]")),
        ] {
            assert_eq!(parse(t).unwrap_err().code, ErrCode::InvalidRequest, "{t}");
        }
        let bad_json = token("{", "{}");
        assert_eq!(parse(&bad_json).unwrap_err().code, ErrCode::InvalidRequest);
    }

    #[test]
    fn typ_is_checked_before_alg() {
        let t = token(r#"{"typ":"JWT","alg":"none"}"#, "{}");
        assert_eq!(parse(&t).unwrap_err().code, ErrCode::InvalidRequest);
        let t = token(r#"{"alg":"RS256"}"#, "{}");
        assert_eq!(parse(&t).unwrap_err().code, ErrCode::InvalidRequest);
    }

    #[test]
    fn typ_forms() {
        for typ in ["secevent+jwt", "SECEVENT+JWT", "application/secevent+jwt"] {
            let t = token(&format!(r#"{{"typ":"{typ}","alg":"RS256"}}"#), "{}");
            assert!(parse(&t).is_ok(), "{typ}");
        }
    }

    #[test]
    fn jwt_typ_forms() {
        for header in [
            r#"{"alg":"RS256"}"#,
            r#"{"typ":"JWT","alg":"RS256"}"#,
            r#"{"typ":"at+jwt","alg":"RS256"}"#,
        ] {
            assert!(parse_jwt(&token(header, "{}")).is_ok(), "{header}");
        }
        let set = token(r#"{"typ":"secevent+jwt","alg":"RS256"}"#, "{}");
        assert_eq!(parse_jwt(&set).unwrap_err().code, ErrCode::InvalidRequest);
        let none = token(r#"{"typ":"JWT","alg":"none"}"#, "{}");
        assert_eq!(parse_jwt(&none).unwrap_err().code, ErrCode::InvalidKey);
    }

    #[test]
    fn disallowed_algorithms_are_invalid_key() {
        for alg in ["none", "HS256", "HS512", "RS1", ""] {
            let t = token(&format!(r#"{{"typ":"secevent+jwt","alg":"{alg}"}}"#), "{}");
            assert_eq!(parse(&t).unwrap_err().code, ErrCode::InvalidKey, "{alg}");
        }
    }
}
