//! Subject identifiers (RFC 9493 and SSF §3): parsing, and reduction to canonical keys that the
//! ledger and the sinks match on.
//!
//! Choices made where the specifications leave room:
//! - Members a format does not describe are ignored (SSF §4.2.3 beats RFC 9493 §3 here).
//! - The legacy Google RISC `subject_type` is read when `format` is absent, and the legacy names
//!   `iss-sub` (RISC) and `phone` (the SSF remove-subject example) are understood as `iss_sub` and
//!   `phone_number`. `Subject::format` still reports the name as received.
//! - `phone_number` is strict E.164: `+`, a non-zero digit, at most 15 digits in all. Spaces,
//!   dashes and parentheses are refused rather than stripped, so that two transmitters never
//!   produce different keys for what they both believe is the same canonical number.
//! - URI schemes are case-insensitive (RFC 3986 §3.1), so the keys of `account`, `did` and `uri`
//!   carry the scheme lower-cased; the rest of the URI is kept as received.
//! - Formats we do not know are accepted (proprietary formats are allowed by SSF §3.4) and keyed
//!   as `<format>:<canonical JSON of the other members>`, object keys sorted, no whitespace.
//! - A `complex` member that fails to parse fails the whole subject. A member with an unknown
//!   format parses (see above) but is not understood; [`is_critical_member_unprocessable`] tells
//!   the caller when such a member is also listed as critical (SSF §3.6).

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

/// A parsed subject: kept whole as received, and reduced to canonical keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// The identifier exactly as received.
    pub raw: Value,
    /// The `format` member (for `complex`, `"complex"`).
    pub format: String,
    /// Canonical keys, e.g. `email:alice@example.com`, `iss_sub:<iss>|<sub>`, `session:opaque:abc`.
    pub keys: Vec<String>,
}

/// A subject identifier that could not be understood; answered as `invalid_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SubjectError(pub String);

/// The members of a complex subject named by SSF §3.3, in the order their keys are listed.
/// Other member names whose value is an object are members too, listed after these by name.
pub const COMPLEX_MEMBERS: [&str; 7] = [
    "user",
    "device",
    "session",
    "application",
    "tenant",
    "org_unit",
    "group",
];

/// Unknown formats are serialised canonically; this bounds the recursion so that a
/// pathologically nested value cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Parses a subject identifier object (simple, `aliases` or `complex`, and the legacy
/// `subject_type` spelling of `format`). Error messages name members relative to the subject
/// (`email: not an email address`, `identifiers[1].format: missing`, `user.email: ...`).
pub fn parse_subject(value: &Value) -> Result<Subject, SubjectError> {
    parse_subject_at(value, "")
}

/// As [`parse_subject`], with every member named in errors prefixed by `path`: with `"sub_id"`,
/// errors read `sub_id.email: not an email address` or `sub_id: must be a JSON object`.
pub fn parse_subject_at(value: &Value, path: &str) -> Result<Subject, SubjectError> {
    let obj = value
        .as_object()
        .ok_or_else(|| err(path, "must be a JSON object"))?;
    let format = read_format(obj, path)?;
    let mut keys = Keys::default();
    match Kind::of(format) {
        Kind::Complex => complex_keys(obj, path, &mut keys)?,
        Kind::Aliases => alias_keys(obj, path, "", &mut keys)?,
        kind => simple_keys(kind, format, obj, path, "", &mut keys)?,
    }
    Ok(Subject {
        raw: value.clone(),
        format: format.to_owned(),
        keys: keys.list,
    })
}

/// Parses an operator's shorthand: `alice@example.com`, `email:alice@example.com`,
/// `iss_sub:https://idp|123`, `opaque:abc`, `+12065550100`, or a JSON subject object.
///
/// Also accepted: `phone_number:+1…`, `account:acct:x@y` or a bare `acct:x@y`, a bare DID
/// (`did:example:123`), `uri:https://…`, `jwt_id:<iss>|<jti>`,
/// `saml_assertion_id:<issuer>|<assertion_id>` and `ip:<address>`, so that every canonical key of
/// a simple subject reads back as the subject it came from. `raw` of the result is the JSON
/// subject object the shorthand stands for.
pub fn parse_subject_shorthand(input: &str) -> Result<Subject, SubjectError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(SubjectError(format!("empty subject; {SHORTHAND_FORMS}")));
    }
    if s.starts_with('{') {
        let value: Value = serde_json::from_str(s)
            .map_err(|e| SubjectError(format!("not a valid JSON subject: {e}")))?;
        return parse_subject(&value);
    }
    parse_subject(&shorthand_object(s)?)
}

/// True when `subject` is complex and one of its members named in `critical` (the stream's
/// `critical_subject_members`) is present but not understood, so the event must be discarded
/// (SSF §3.6). Members whose value failed to parse never get here: they fail the whole subject.
/// What remains is a member with a format we do not know (for an `aliases` member: none of its
/// identifiers has a format we know), or a member under an unlisted name whose value is not an
/// object, which parsing ignored. An absent member is a wildcard, never unprocessable.
pub fn is_critical_member_unprocessable(subject: &Subject, critical: &[String]) -> bool {
    let Some(obj) = subject.raw.as_object() else {
        return false;
    };
    let is_complex = format_member(obj).is_some_and(|f| Kind::of(f) == Kind::Complex);
    if !is_complex {
        return false;
    }
    critical
        .iter()
        .filter(|name| !is_format_member(name))
        .filter_map(|name| obj.get(name.as_str()))
        .any(|member| !member_understood(member))
}

const SHORTHAND_FORMS: &str = "expected an email address (alice@example.com), an E.164 phone \
number (+12065550100), email:<address>, phone_number:<+E.164>, iss_sub:<iss>|<sub>, opaque:<id>, \
account:acct:<user>@<host>, a DID (did:<method>:<id>), uri:<uri>, jwt_id:<iss>|<jti>, \
saml_assertion_id:<issuer>|<assertion_id>, ip:<address>, or a JSON subject object";

/// The formats we understand, after mapping legacy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Account,
    Email,
    IssSub,
    Opaque,
    PhoneNumber,
    Did,
    Uri,
    Aliases,
    JwtId,
    SamlAssertionId,
    IpAddresses,
    Complex,
    Unknown,
}

impl Kind {
    fn of(format: &str) -> Kind {
        match format {
            "account" => Kind::Account,
            "email" => Kind::Email,
            "iss_sub" | "iss-sub" => Kind::IssSub,
            "opaque" => Kind::Opaque,
            "phone_number" | "phone" => Kind::PhoneNumber,
            "did" => Kind::Did,
            "uri" => Kind::Uri,
            "aliases" => Kind::Aliases,
            "jwt_id" => Kind::JwtId,
            "saml_assertion_id" => Kind::SamlAssertionId,
            "ip-addresses" => Kind::IpAddresses,
            "complex" => Kind::Complex,
            _ => Kind::Unknown,
        }
    }
}

/// Keys in first-seen order, without duplicates; the set keeps huge `ip-addresses` or
/// `aliases` arrays linear.
#[derive(Default)]
struct Keys {
    list: Vec<String>,
    seen: HashSet<String>,
}

impl Keys {
    fn push(&mut self, key: String) {
        if self.seen.insert(key.clone()) {
            self.list.push(key);
        }
    }
}

fn err(path: &str, msg: &str) -> SubjectError {
    if path.is_empty() {
        SubjectError(msg.to_owned())
    } else {
        SubjectError(format!("{path}: {msg}"))
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn is_format_member(name: &str) -> bool {
    name == "format" || name == "subject_type"
}

/// `format`, or the legacy `subject_type` when `format` is absent; `None` when neither is a string.
fn format_member(obj: &Map<String, Value>) -> Option<&str> {
    match obj.get("format") {
        Some(v) => v.as_str(),
        None => obj.get("subject_type").and_then(Value::as_str),
    }
}

fn read_format<'a>(obj: &'a Map<String, Value>, path: &str) -> Result<&'a str, SubjectError> {
    let (name, value) = match (obj.get("format"), obj.get("subject_type")) {
        (Some(v), _) => ("format", v),
        (None, Some(v)) => ("subject_type", v),
        (None, None) => return Err(err(&child(path, "format"), "missing")),
    };
    let format = value
        .as_str()
        .ok_or_else(|| err(&child(path, name), "must be a string"))?;
    if format.is_empty() {
        return Err(err(&child(path, name), "must not be empty"));
    }
    Ok(format)
}

fn required<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<&'a str, SubjectError> {
    let at = || child(path, name);
    let value = obj.get(name).ok_or_else(|| err(&at(), "missing"))?;
    let s = value
        .as_str()
        .ok_or_else(|| err(&at(), "must be a string"))?;
    if s.is_empty() {
        return Err(err(&at(), "must not be empty"));
    }
    Ok(s)
}

/// Keys of a simple (neither `aliases` nor `complex`) identifier, each prefixed by `prefix`.
fn simple_keys(
    kind: Kind,
    format: &str,
    obj: &Map<String, Value>,
    path: &str,
    prefix: &str,
    keys: &mut Keys,
) -> Result<(), SubjectError> {
    let key = match kind {
        Kind::Email => {
            let email = required(obj, "email", path)?;
            if !is_addr_spec(email) {
                return Err(err(&child(path, "email"), "not an email address"));
            }
            // ASCII case only: Unicode folding merges distinct addresses (the Kelvin sign
            // U+212A lower-cases to `k`, so `\u{212a}@x` would become `k@x`).
            format!("email:{}", email.to_ascii_lowercase())
        }
        Kind::PhoneNumber => {
            let phone = required(obj, "phone_number", path)?;
            if !is_e164(phone) {
                return Err(err(
                    &child(path, "phone_number"),
                    "not an E.164 phone number (+ and up to 15 digits, nothing else)",
                ));
            }
            format!("phone_number:{phone}")
        }
        Kind::IssSub => {
            let iss = required(obj, "iss", path)?;
            let sub = required(obj, "sub", path)?;
            format!("iss_sub:{iss}|{sub}")
        }
        Kind::Opaque => format!("opaque:{}", required(obj, "id", path)?),
        Kind::Account => {
            let uri = required(obj, "uri", path)?;
            match split_uri(uri) {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("acct") => {
                    format!("account:acct:{rest}")
                }
                _ => return Err(err(&child(path, "uri"), "not an acct: URI")),
            }
        }
        Kind::Did => {
            let url = required(obj, "url", path)?;
            match split_uri(url) {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("did") => {
                    format!("did:did:{rest}")
                }
                _ => return Err(err(&child(path, "url"), "not a DID (did:<method>:<id>)")),
            }
        }
        Kind::Uri => {
            let uri = required(obj, "uri", path)?;
            let (scheme, rest) = split_uri(uri)
                .ok_or_else(|| err(&child(path, "uri"), "not a URI with a scheme"))?;
            format!("uri:{}:{rest}", scheme.to_ascii_lowercase())
        }
        Kind::JwtId => {
            let iss = required(obj, "iss", path)?;
            let jti = required(obj, "jti", path)?;
            format!("jwt_id:{iss}|{jti}")
        }
        Kind::SamlAssertionId => {
            let issuer = required(obj, "issuer", path)?;
            let id = required(obj, "assertion_id", path)?;
            format!("saml_assertion_id:{issuer}|{id}")
        }
        Kind::IpAddresses => return ip_keys(obj, path, prefix, keys),
        Kind::Unknown => {
            let mut out = format!("{format}:");
            write_object_canonical(obj, &mut out, 0)
                .map_err(|()| err(path, "nested too deeply"))?;
            out
        }
        // Callers route these before reaching here; refusing keeps the function total.
        Kind::Aliases | Kind::Complex => {
            return Err(err(&child(path, "format"), "not a simple identifier"))
        }
    };
    keys.push(format!("{prefix}{key}"));
    Ok(())
}

/// The required, non-empty array member `name`, with its path for error messages.
fn non_empty_array<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<(&'a Vec<Value>, String), SubjectError> {
    let at = child(path, name);
    let list = obj
        .get(name)
        .ok_or_else(|| err(&at, "missing"))?
        .as_array()
        .ok_or_else(|| err(&at, "must be an array"))?;
    if list.is_empty() {
        return Err(err(&at, "must not be empty"));
    }
    Ok((list, at))
}

fn ip_keys(
    obj: &Map<String, Value>,
    path: &str,
    prefix: &str,
    keys: &mut Keys,
) -> Result<(), SubjectError> {
    let (list, at) = non_empty_array(obj, path, "ip-addresses")?;
    for (i, item) in list.iter().enumerate() {
        let at_i = format!("{at}[{i}]");
        let text = item
            .as_str()
            .ok_or_else(|| err(&at_i, "must be a string"))?;
        let addr: IpAddr = text.parse().map_err(|_| err(&at_i, "not an IP address"))?;
        keys.push(format!("{prefix}ip:{addr}"));
    }
    Ok(())
}

/// Keys of an `aliases` identifier: one per member, each prefixed by `prefix`.
fn alias_keys(
    obj: &Map<String, Value>,
    path: &str,
    prefix: &str,
    keys: &mut Keys,
) -> Result<(), SubjectError> {
    let (list, at) = non_empty_array(obj, path, "identifiers")?;
    for (i, item) in list.iter().enumerate() {
        let at_i = format!("{at}[{i}]");
        let member = item
            .as_object()
            .ok_or_else(|| err(&at_i, "must be a JSON object"))?;
        let format = read_format(member, &at_i)?;
        match Kind::of(format) {
            Kind::Aliases => {
                return Err(err(
                    &child(&at_i, "format"),
                    "aliases cannot be nested inside aliases",
                ))
            }
            Kind::Complex => {
                return Err(err(
                    &child(&at_i, "format"),
                    "a complex subject cannot be an alias",
                ))
            }
            kind => simple_keys(kind, format, member, &at_i, prefix, keys)?,
        }
    }
    Ok(())
}

/// Keys of a `complex` identifier: the `user` member's keys as they are, every other member's
/// prefixed by its name.
fn complex_keys(obj: &Map<String, Value>, path: &str, keys: &mut Keys) -> Result<(), SubjectError> {
    let mut members: Vec<(&str, &Map<String, Value>)> = Vec::new();
    for name in COMPLEX_MEMBERS {
        if let Some(value) = obj.get(name) {
            let member = value
                .as_object()
                .ok_or_else(|| err(&child(path, name), "must be a JSON object"))?;
            members.push((name, member));
        }
    }
    // Sorted so that key order does not depend on how the transmitter ordered its members.
    let mut others: Vec<(&str, &Map<String, Value>)> = obj
        .iter()
        .filter(|(name, _)| !is_format_member(name) && !COMPLEX_MEMBERS.contains(&name.as_str()))
        .filter_map(|(name, value)| value.as_object().map(|m| (name.as_str(), m)))
        .collect();
    others.sort_by(|a, b| a.0.cmp(b.0));
    members.extend(others);
    if members.is_empty() {
        return Err(err(
            path,
            "complex subject has no members (user, device, session, application, tenant, \
             org_unit, group, ...)",
        ));
    }
    for (name, member) in members {
        let at = child(path, name);
        let prefix = if name == "user" {
            String::new()
        } else {
            format!("{name}:")
        };
        let format = read_format(member, &at)?;
        match Kind::of(format) {
            Kind::Complex => {
                return Err(err(
                    &child(&at, "format"),
                    "complex subjects cannot be nested",
                ))
            }
            Kind::Aliases => alias_keys(member, &at, &prefix, keys)?,
            kind => simple_keys(kind, format, member, &at, &prefix, keys)?,
        }
    }
    Ok(())
}

/// Whether a complex member is something we understand (see [`is_critical_member_unprocessable`]).
fn member_understood(member: &Value) -> bool {
    let Some(obj) = member.as_object() else {
        return false;
    };
    match format_member(obj).map(Kind::of) {
        None | Some(Kind::Unknown) => false,
        Some(Kind::Aliases) => obj
            .get("identifiers")
            .and_then(Value::as_array)
            .is_some_and(|ids| {
                ids.iter().any(|id| {
                    id.as_object()
                        .and_then(format_member)
                        .is_some_and(|f| Kind::of(f) != Kind::Unknown)
                })
            }),
        Some(_) => true,
    }
}

/// A loose addr-spec check: one `@`, both sides non-empty, no whitespace or control characters.
/// Quoted local parts containing `@` are refused; no transmitter is known to send them.
fn is_addr_spec(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// E.164: `+`, then 1 to 15 digits, the first not zero (no country code starts with 0).
fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (1..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Splits `scheme:rest` when the scheme is valid per RFC 3986 §3.1, the rest is non-empty and
/// nothing in the URI is whitespace or a control character (neither can appear in a URI).
fn split_uri(s: &str) -> Option<(&str, &str)> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (scheme, rest) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok && !rest.is_empty()).then_some((scheme, rest))
}

/// Writes `obj` without its format members as compact JSON with keys sorted at every level.
fn write_object_canonical(
    obj: &Map<String, Value>,
    out: &mut String,
    depth: usize,
) -> Result<(), ()> {
    let mut entries: Vec<(&String, &Value)> = obj
        .iter()
        .filter(|(k, _)| depth > 0 || !is_format_member(k))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).map_err(|_| ())?);
        out.push(':');
        write_canonical(v, out, depth + 1)?;
    }
    out.push('}');
    Ok(())
}

fn write_canonical(value: &Value, out: &mut String, depth: usize) -> Result<(), ()> {
    if depth > MAX_DEPTH {
        return Err(());
    }
    match value {
        Value::Object(obj) => write_object_canonical(obj, out, depth),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out, depth + 1)?;
            }
            out.push(']');
            Ok(())
        }
        leaf => {
            out.push_str(&leaf.to_string());
            Ok(())
        }
    }
}

/// The JSON subject object a non-JSON shorthand stands for.
fn shorthand_object(s: &str) -> Result<Value, SubjectError> {
    let pair = |rest: &str, what: &str| -> Result<(String, String), SubjectError> {
        rest.split_once('|')
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .ok_or_else(|| SubjectError(format!("{what} shorthand needs a '|' between its parts")))
    };
    let value = if let Some(rest) = s.strip_prefix("email:") {
        json!({"format": "email", "email": rest})
    } else if let Some(rest) = s.strip_prefix("phone_number:") {
        json!({"format": "phone_number", "phone_number": rest})
    } else if let Some(rest) = s.strip_prefix("iss_sub:") {
        let (iss, sub) = pair(rest, "iss_sub:<iss>|<sub>")?;
        json!({"format": "iss_sub", "iss": iss, "sub": sub})
    } else if let Some(rest) = s.strip_prefix("opaque:") {
        json!({"format": "opaque", "id": rest})
    } else if let Some(rest) = s.strip_prefix("account:") {
        json!({"format": "account", "uri": rest})
    } else if let Some(rest) = s.strip_prefix("uri:") {
        json!({"format": "uri", "uri": rest})
    } else if let Some(rest) = s.strip_prefix("jwt_id:") {
        let (iss, jti) = pair(rest, "jwt_id:<iss>|<jti>")?;
        json!({"format": "jwt_id", "iss": iss, "jti": jti})
    } else if let Some(rest) = s.strip_prefix("saml_assertion_id:") {
        let (issuer, id) = pair(rest, "saml_assertion_id:<issuer>|<assertion_id>")?;
        json!({"format": "saml_assertion_id", "issuer": issuer, "assertion_id": id})
    } else if let Some(rest) = s.strip_prefix("ip:") {
        json!({"format": "ip-addresses", "ip-addresses": [rest]})
    } else if s.starts_with("did:") {
        json!({"format": "did", "url": s})
    } else if s.starts_with("acct:") {
        json!({"format": "account", "uri": s})
    } else if s.starts_with('+') {
        json!({"format": "phone_number", "phone_number": s})
    } else if s.contains('@') && !s.contains(':') {
        json!({"format": "email", "email": s})
    } else {
        return Err(SubjectError(format!(
            "not a recognised subject; {SHORTHAND_FORMS}"
        )));
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys_of(v: Value) -> Vec<String> {
        parse_subject(&v).unwrap().keys
    }

    fn error_of(v: Value) -> String {
        parse_subject(&v).unwrap_err().0
    }

    #[test]
    fn emails_fold_ascii_case_only() {
        let key = |e: &str| {
            parse_subject(&serde_json::json!({"format": "email", "email": e}))
                .unwrap()
                .keys[0]
                .clone()
        };
        assert_eq!(key("Alice@Example.COM"), "email:alice@example.com");
        assert_ne!(key("\u{212a}@example.com"), key("k@example.com"));
        assert_ne!(key("\u{130}@example.com"), key("i\u{307}@example.com"));
    }

    #[test]
    fn email_key_is_lower_cased_and_raw_kept() {
        let v = json!({"format": "email", "email": "Alice@Example.COM"});
        let s = parse_subject(&v).unwrap();
        assert_eq!(s.keys, vec!["email:alice@example.com"]);
        assert_eq!(s.format, "email");
        assert_eq!(s.raw, v);
    }

    #[test]
    fn email_shapes_refused() {
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "al ice@example.com",
            "a@b\n",
        ] {
            assert_eq!(
                error_of(json!({"format": "email", "email": bad})),
                "email: not an email address",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_simple_format_keys() {
        let cases = [
            (
                json!({"format": "account", "uri": "acct:x@y.example"}),
                "account:acct:x@y.example",
            ),
            (
                json!({"format": "account", "uri": "ACCT:x@y.example"}),
                "account:acct:x@y.example",
            ),
            (
                json!({"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "145"}),
                "iss_sub:https://idp.example.com/|145",
            ),
            (json!({"format": "opaque", "id": "abc"}), "opaque:abc"),
            (
                json!({"format": "phone_number", "phone_number": "+12065550100"}),
                "phone_number:+12065550100",
            ),
            (
                json!({"format": "did", "url": "did:example:123456"}),
                "did:did:example:123456",
            ),
            (
                json!({"format": "uri", "uri": "HTTPS://user.example.com/A"}),
                "uri:https://user.example.com/A",
            ),
            (
                json!({"format": "jwt_id", "iss": "https://idp", "jti": "j1"}),
                "jwt_id:https://idp|j1",
            ),
            (
                json!({"format": "saml_assertion_id", "issuer": "https://idp", "assertion_id": "a1"}),
                "saml_assertion_id:https://idp|a1",
            ),
        ];
        for (v, key) in cases {
            assert_eq!(keys_of(v.clone()), vec![key], "{v}");
        }
    }

    #[test]
    fn ip_addresses_one_key_each_normalised_and_deduplicated() {
        let v = json!({"format": "ip-addresses",
            "ip-addresses": ["10.29.37.75", "2001:DB8:0:0::1", "10.29.37.75", "::ffff:1.2.3.4"]});
        assert_eq!(
            keys_of(v),
            vec!["ip:10.29.37.75", "ip:2001:db8::1", "ip:::ffff:1.2.3.4"]
        );
    }

    #[test]
    fn ip_addresses_errors() {
        let e = |list: Value| error_of(json!({"format": "ip-addresses", "ip-addresses": list}));
        assert_eq!(e(json!([])), "ip-addresses: must not be empty");
        assert_eq!(e(json!("10.0.0.1")), "ip-addresses: must be an array");
        assert_eq!(
            e(json!(["10.0.0.1", "10.0.0.256"])),
            "ip-addresses[1]: not an IP address"
        );
        assert_eq!(e(json!([1])), "ip-addresses[0]: must be a string");
        assert_eq!(
            e(json!(["fe80::1%eth0"])),
            "ip-addresses[0]: not an IP address"
        );
        assert_eq!(
            error_of(json!({"format": "ip-addresses"})),
            "ip-addresses: missing"
        );
    }

    #[test]
    fn phone_is_strict_e164() {
        for bad in [
            "12065550100",
            "+1 206 555 0100",
            "+1-206-555-0100",
            "+1(206)5550100",
            "+",
            "+1234567890123456",
            "+0123",
            "+１２",
        ] {
            assert!(
                error_of(json!({"format": "phone_number", "phone_number": bad}))
                    .starts_with("phone_number: not an E.164 phone number"),
                "{bad:?}"
            );
        }
        assert_eq!(
            keys_of(json!({"format": "phone_number", "phone_number": "+123456789012345"})),
            vec!["phone_number:+123456789012345"]
        );
    }

    #[test]
    fn uri_like_errors() {
        assert_eq!(
            error_of(json!({"format": "account", "uri": "mailto:x@y"})),
            "uri: not an acct: URI"
        );
        assert_eq!(
            error_of(json!({"format": "account", "uri": "acct:"})),
            "uri: not an acct: URI"
        );
        assert_eq!(
            error_of(json!({"format": "did", "url": "example:123"})),
            "url: not a DID (did:<method>:<id>)"
        );
        for bad in ["no-scheme", ":x", "1http://x", "http://a b", "http:"] {
            assert_eq!(
                error_of(json!({"format": "uri", "uri": bad})),
                "uri: not a URI with a scheme",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn required_member_errors_name_the_member() {
        assert_eq!(
            error_of(json!({"format": "iss_sub", "iss": "x"})),
            "sub: missing"
        );
        assert_eq!(
            error_of(json!({"format": "iss_sub", "iss": "", "sub": "1"})),
            "iss: must not be empty"
        );
        assert_eq!(
            error_of(json!({"format": "opaque", "id": 5})),
            "id: must be a string"
        );
        assert_eq!(
            error_of(json!({"format": "opaque", "id": null})),
            "id: must be a string"
        );
        assert_eq!(
            error_of(json!({"format": "jwt_id", "iss": "x"})),
            "jti: missing"
        );
        assert_eq!(
            error_of(json!({"format": "saml_assertion_id", "issuer": "x"})),
            "assertion_id: missing"
        );
        assert_eq!(error_of(json!({"format": "email"})), "email: missing");
    }

    #[test]
    fn format_errors() {
        assert_eq!(
            error_of(json!("alice@example.com")),
            "must be a JSON object"
        );
        assert_eq!(error_of(json!([])), "must be a JSON object");
        assert_eq!(error_of(json!({"email": "a@b"})), "format: missing");
        assert_eq!(
            error_of(json!({"format": 1, "email": "a@b"})),
            "format: must be a string"
        );
        assert_eq!(
            error_of(json!({"format": "", "email": "a@b"})),
            "format: must not be empty"
        );
        assert_eq!(
            error_of(json!({"subject_type": true})),
            "subject_type: must be a string"
        );
    }

    #[test]
    fn path_prefix_is_applied() {
        let e = parse_subject_at(&json!({"format": "email", "email": "x"}), "sub_id").unwrap_err();
        assert_eq!(e.0, "sub_id.email: not an email address");
        let e = parse_subject_at(&json!(3), "sub_id").unwrap_err();
        assert_eq!(e.0, "sub_id: must be a JSON object");
    }

    #[test]
    fn unknown_members_ignored() {
        let v = json!({"format": "email", "email": "a@b.example", "extra": {"x": [1]}});
        assert_eq!(keys_of(v), vec!["email:a@b.example"]);
    }

    #[test]
    fn legacy_subject_type_and_names() {
        let s = parse_subject(&json!({"subject_type": "iss-sub",
            "iss": "https://accounts.google.com/", "sub": "7375626A656374"}))
        .unwrap();
        assert_eq!(s.format, "iss-sub");
        assert_eq!(
            s.keys,
            vec!["iss_sub:https://accounts.google.com/|7375626A656374"]
        );
        assert_eq!(
            keys_of(json!({"subject_type": "email", "email": "A@B.example"})),
            vec!["email:a@b.example"]
        );
        assert_eq!(
            keys_of(json!({"format": "phone", "phone_number": "+12065550123"})),
            vec!["phone_number:+12065550123"]
        );
        // `format` wins over `subject_type` when both are present.
        assert_eq!(
            keys_of(json!({"format": "opaque", "subject_type": "email", "id": "x"})),
            vec!["opaque:x"]
        );
    }

    #[test]
    fn unknown_format_keyed_by_canonical_json() {
        let v =
            json!({"format": "x-corp-badge", "z": 1, "a": {"y": [true, null, "s\"q"], "b": 2.5}});
        let s = parse_subject(&v).unwrap();
        assert_eq!(s.format, "x-corp-badge");
        assert_eq!(
            s.keys,
            vec![r#"x-corp-badge:{"a":{"b":2.5,"y":[true,null,"s\"q"]},"z":1}"#]
        );
        assert_eq!(keys_of(json!({"format": "bare"})), vec!["bare:{}"]);
        // Member order as received does not change the key.
        let a: Value = serde_json::from_str(r#"{"format":"f","b":1,"a":2}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":2,"format":"f","b":1}"#).unwrap();
        assert_eq!(keys_of(a), keys_of(b));
    }

    #[test]
    fn unknown_format_too_deep_is_an_error_not_a_crash() {
        let mut inner = json!(1);
        for _ in 0..200 {
            inner = json!([inner]);
        }
        assert_eq!(
            error_of(json!({"format": "deep", "v": inner})),
            "nested too deeply"
        );
    }

    #[test]
    fn aliases_one_key_per_member_deduplicated() {
        let v = json!({"format": "aliases", "identifiers": [
            {"format": "email", "email": "User@Example.com"},
            {"format": "phone_number", "phone_number": "+12065550100"},
            {"format": "email", "email": "user@example.com"},
            {"format": "ip-addresses", "ip-addresses": ["10.0.0.1", "10.0.0.2"]},
        ]});
        let s = parse_subject(&v).unwrap();
        assert_eq!(s.format, "aliases");
        assert_eq!(
            s.keys,
            vec![
                "email:user@example.com",
                "phone_number:+12065550100",
                "ip:10.0.0.1",
                "ip:10.0.0.2"
            ]
        );
    }

    #[test]
    fn aliases_errors() {
        let e = |ids: Value| error_of(json!({"format": "aliases", "identifiers": ids}));
        assert_eq!(e(json!([])), "identifiers: must not be empty");
        assert_eq!(e(json!({})), "identifiers: must be an array");
        assert_eq!(
            error_of(json!({"format": "aliases"})),
            "identifiers: missing"
        );
        assert_eq!(
            e(json!([{"format": "opaque", "id": "a"}, {"id": "b"}])),
            "identifiers[1].format: missing"
        );
        assert_eq!(
            e(json!([{"format": "aliases", "identifiers": [{"format": "opaque", "id": "a"}]}])),
            "identifiers[0].format: aliases cannot be nested inside aliases"
        );
        assert_eq!(
            e(json!([{"format": "complex", "user": {"format": "opaque", "id": "a"}}])),
            "identifiers[0].format: a complex subject cannot be an alias"
        );
        assert_eq!(e(json!(["a@b"])), "identifiers[0]: must be a JSON object");
        assert_eq!(
            e(json!([{"format": "email", "email": "nope"}])),
            "identifiers[0].email: not an email address"
        );
    }

    #[test]
    fn complex_user_unprefixed_others_prefixed_in_stable_order() {
        // Members deliberately out of order: keys still come user first, then SSF order,
        // then other names alphabetically.
        let v: Value = serde_json::from_str(
            r#"{"format":"complex",
                "zeta":{"format":"opaque","id":"z"},
                "tenant":{"format":"opaque","id":"t1"},
                "session":{"format":"opaque","id":"abc"},
                "alpha":{"format":"opaque","id":"a"},
                "device":{"format":"opaque","id":"xyz"},
                "user":{"format":"email","email":"Alice@Example.com"},
                "note":"ignored",
                "count":3}"#,
        )
        .unwrap();
        let s = parse_subject(&v).unwrap();
        assert_eq!(s.format, "complex");
        assert_eq!(
            s.keys,
            vec![
                "email:alice@example.com",
                "device:opaque:xyz",
                "session:opaque:abc",
                "tenant:opaque:t1",
                "alpha:opaque:a",
                "zeta:opaque:z",
            ]
        );
    }

    #[test]
    fn complex_with_aliases_member_and_without_user() {
        let v = json!({"format": "complex",
            "user": {"format": "aliases", "identifiers": [
                {"format": "email", "email": "a@b.example"},
                {"format": "iss_sub", "iss": "https://idp", "sub": "1"}]},
            "group": {"format": "aliases", "identifiers": [{"format": "opaque", "id": "g"}]}});
        assert_eq!(
            keys_of(v),
            vec![
                "email:a@b.example",
                "iss_sub:https://idp|1",
                "group:opaque:g"
            ]
        );
        let v = json!({"format": "complex", "session": {"format": "opaque", "id": "s"}});
        assert_eq!(keys_of(v), vec!["session:opaque:s"]);
    }

    #[test]
    fn complex_errors() {
        assert_eq!(
            error_of(json!({"format": "complex"})).split(" (").next(),
            Some("complex subject has no members")
        );
        assert_eq!(
            error_of(json!({"format": "complex", "note": "x"}))
                .split(" (")
                .next(),
            Some("complex subject has no members")
        );
        assert_eq!(
            error_of(json!({"format": "complex", "user": "alice@example.com"})),
            "user: must be a JSON object"
        );
        assert_eq!(
            error_of(json!({"format": "complex", "device": null})),
            "device: must be a JSON object"
        );
        assert_eq!(
            error_of(json!({"format": "complex", "user": {"format": "email", "email": "x"}})),
            "user.email: not an email address"
        );
        assert_eq!(
            error_of(json!({"format": "complex", "user": {"email": "a@b"}})),
            "user.format: missing"
        );
        assert_eq!(
            error_of(json!({"format": "complex",
                "session": {"format": "complex", "user": {"format": "opaque", "id": "a"}}})),
            "session.format: complex subjects cannot be nested"
        );
        assert_eq!(
            error_of(json!({"format": "complex", "user": {"format": "aliases",
                "identifiers": [{"format": "aliases", "identifiers": []}]}})),
            "user.identifiers[0].format: aliases cannot be nested inside aliases"
        );
        assert_eq!(
            error_of(json!({"format": "complex", "x": {"format": "opaque"}})),
            "x.id: missing"
        );
    }

    #[test]
    fn critical_members() {
        let crit = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let s = parse_subject(&json!({"format": "complex",
            "user": {"format": "email", "email": "a@b.example"},
            "device": {"format": "x-vendor-device", "serial": "1"},
            "session": {"format": "aliases", "identifiers": [{"format": "x-sess", "v": 1}]},
            "group": {"format": "aliases", "identifiers": [
                {"format": "x-grp", "v": 1}, {"format": "opaque", "id": "g"}]},
            "note": "not an object"}))
        .unwrap();
        assert!(!is_critical_member_unprocessable(&s, &crit(&[])));
        assert!(!is_critical_member_unprocessable(&s, &crit(&["user"])));
        assert!(!is_critical_member_unprocessable(&s, &crit(&["tenant"])));
        assert!(!is_critical_member_unprocessable(&s, &crit(&["group"])));
        assert!(!is_critical_member_unprocessable(&s, &crit(&["format"])));
        assert!(is_critical_member_unprocessable(&s, &crit(&["device"])));
        assert!(is_critical_member_unprocessable(
            &s,
            &crit(&["user", "session"])
        ));
        assert!(is_critical_member_unprocessable(&s, &crit(&["note"])));

        let simple = parse_subject(&json!({"format": "x-vendor", "a": 1})).unwrap();
        assert!(!is_critical_member_unprocessable(
            &simple,
            &crit(&["user", "a"])
        ));
        let legacy = parse_subject(&json!({"subject_type": "complex",
            "device": {"format": "x-d"}}))
        .unwrap();
        assert!(is_critical_member_unprocessable(
            &legacy,
            &crit(&["device"])
        ));
    }

    #[test]
    fn shorthand_forms() {
        let k = |s: &str| parse_subject_shorthand(s).unwrap().keys;
        assert_eq!(k("Alice@Example.com"), vec!["email:alice@example.com"]);
        assert_eq!(k("  alice@example.com\n"), vec!["email:alice@example.com"]);
        assert_eq!(
            k("email:alice@example.com"),
            vec!["email:alice@example.com"]
        );
        assert_eq!(k("+12065550100"), vec!["phone_number:+12065550100"]);
        assert_eq!(
            k("phone_number:+12065550100"),
            vec!["phone_number:+12065550100"]
        );
        assert_eq!(
            k("iss_sub:https://idp.example.com|123"),
            vec!["iss_sub:https://idp.example.com|123"]
        );
        assert_eq!(k("opaque:abc"), vec!["opaque:abc"]);
        assert_eq!(k("account:acct:x@y"), vec!["account:acct:x@y"]);
        assert_eq!(k("acct:x@y"), vec!["account:acct:x@y"]);
        assert_eq!(k("did:example:123"), vec!["did:did:example:123"]);
        assert_eq!(k("uri:https://u.example/"), vec!["uri:https://u.example/"]);
        assert_eq!(k("jwt_id:https://idp|j"), vec!["jwt_id:https://idp|j"]);
        assert_eq!(
            k("saml_assertion_id:https://idp|a"),
            vec!["saml_assertion_id:https://idp|a"]
        );
        assert_eq!(k("ip:10.0.0.1"), vec!["ip:10.0.0.1"]);
        assert_eq!(
            k(r#"{"format":"complex","session":{"format":"opaque","id":"s"}}"#),
            vec!["session:opaque:s"]
        );
    }

    #[test]
    fn shorthand_raw_is_the_json_subject() {
        let s = parse_subject_shorthand("alice@example.com").unwrap();
        assert_eq!(
            s.raw,
            json!({"format": "email", "email": "alice@example.com"})
        );
        assert_eq!(s.format, "email");
        let s = parse_subject_shorthand("iss_sub:https://idp|1").unwrap();
        assert_eq!(
            s.raw,
            json!({"format": "iss_sub", "iss": "https://idp", "sub": "1"})
        );
        let s = parse_subject_shorthand("did:example:1").unwrap();
        assert_eq!(s.raw, json!({"format": "did", "url": "did:example:1"}));
    }

    #[test]
    fn shorthand_errors() {
        let e = |s: &str| parse_subject_shorthand(s).unwrap_err().0;
        assert!(e("").starts_with("empty subject; expected"));
        assert!(e("alice").starts_with("not a recognised subject; expected"));
        assert!(e("mailto:a@b").starts_with("not a recognised subject; expected"));
        assert!(e("https://x").starts_with("not a recognised subject; expected"));
        assert_eq!(
            e("+1 206"),
            "phone_number: not an E.164 phone number (+ and up to 15 digits, nothing else)"
        );
        assert_eq!(e("email:nope"), "email: not an email address");
        assert_eq!(e("opaque:"), "id: must not be empty");
        assert_eq!(
            e("iss_sub:https://idp"),
            "iss_sub:<iss>|<sub> shorthand needs a '|' between its parts"
        );
        assert_eq!(e("iss_sub:|1"), "iss: must not be empty");
        assert!(e("{not json").starts_with("not a valid JSON subject:"));
        assert_eq!(e(r#"{"format":"email"}"#), "email: missing");
        assert_eq!(e("ip:300.1.1.1"), "ip-addresses[0]: not an IP address");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            ".*".prop_map(Value::String),
            prop::sample::select(vec![
                "email",
                "iss_sub",
                "opaque",
                "complex",
                "aliases",
                "ip-addresses",
                "phone",
                "a@b.c",
                "+12065550100",
                "did:x:y",
                "acct:a@b",
                "10.0.0.1",
                "user",
            ])
            .prop_map(|s| Value::String(s.to_owned())),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((arb_member_name(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn arb_member_name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "format",
                "subject_type",
                "email",
                "phone_number",
                "iss",
                "sub",
                "id",
                "uri",
                "url",
                "jti",
                "issuer",
                "assertion_id",
                "ip-addresses",
                "identifiers",
                "user",
                "device",
                "session",
                "tenant",
                "group",
            ])
            .prop_map(str::to_owned),
            ".{0,6}",
        ]
    }

    /// Plausible simple identifiers, so that the properties see many `Ok` results too.
    fn arb_simple() -> impl Strategy<Value = Value> {
        prop_oneof![
            "[a-zA-Z0-9.]{1,8}@[a-z.]{1,8}".prop_map(|e| json!({"format": "email", "email": e})),
            "\\+[1-9][0-9]{0,14}"
                .prop_map(|p| json!({"format": "phone_number", "phone_number": p})),
            (".+", ".+").prop_map(|(i, s)| json!({"format": "iss_sub", "iss": i, "sub": s})),
            ".+".prop_map(|id| json!({"format": "opaque", "id": id})),
            any::<std::net::IpAddr>()
                .prop_map(|a| json!({"format": "ip-addresses", "ip-addresses": [a.to_string()]})),
            ("x-[a-z-]{1,8}", arb_json()).prop_map(|(f, v)| json!({"format": f, "v": v})),
        ]
    }

    fn arb_aliases() -> impl Strategy<Value = Value> {
        prop::collection::vec(arb_simple(), 1..4)
            .prop_map(|ids| json!({"format": "aliases", "identifiers": ids}))
    }

    fn arb_subject() -> impl Strategy<Value = Value> {
        let member = prop_oneof![arb_simple(), arb_aliases()];
        let complex = prop::collection::vec((arb_member_name(), member), 1..4).prop_map(|ms| {
            let mut obj: Map<String, Value> = ms.into_iter().collect();
            obj.insert("format".into(), json!("complex"));
            Value::Object(obj)
        });
        prop_oneof![arb_simple(), arb_aliases(), complex]
    }

    fn check_ok(subject: &Subject) {
        assert!(!subject.keys.is_empty());
        assert!(subject.keys.iter().all(|k| !k.is_empty()));
        let unique: HashSet<&String> = subject.keys.iter().collect();
        assert_eq!(unique.len(), subject.keys.len());
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json()) {
            if let Ok(s) = parse_subject(&v) {
                check_ok(&s);
                let _ = is_critical_member_unprocessable(&s, &["user".into(), "device".into()]);
            }
        }

        #[test]
        fn plausible_subjects_never_panic(v in arb_subject()) {
            if let Ok(s) = parse_subject(&v) {
                check_ok(&s);
                prop_assert_eq!(&s.raw, &v);
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".*") {
            if let Ok(subject) = parse_subject_shorthand(&s) {
                check_ok(&subject);
                // The shorthand's raw object parses to the same subject.
                prop_assert_eq!(parse_subject(&subject.raw).unwrap(), subject);
            }
        }

        #[test]
        fn prefixed_strings_never_panic(
            prefix in prop::sample::select(vec![
                "", "email:", "phone_number:", "iss_sub:", "opaque:", "account:", "acct:",
                "did:", "uri:", "jwt_id:", "saml_assertion_id:", "ip:", "+", "{",
            ]),
            rest in ".*",
        ) {
            if let Ok(subject) = parse_subject_shorthand(&format!("{prefix}{rest}")) {
                check_ok(&subject);
            }
        }

        #[test]
        fn simple_keys_read_back_through_shorthand(v in arb_simple()) {
            let s = parse_subject(&v).unwrap();
            // Every key of the formats the shorthand covers names the same key again.
            for key in s.keys.iter().filter(|k| k.trim() == k.as_str()) {
                if let Ok(back) = parse_subject_shorthand(key) {
                    prop_assert_eq!(&back.keys, &vec![key.clone()]);
                }
            }
        }
    }
}
