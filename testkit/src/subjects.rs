//! Subject identifiers (RFC 9493 and SSF complex subjects) for the `sub_id` claim.

use serde_json::{json, Value};

pub fn email(address: &str) -> Value {
    json!({"format": "email", "email": address})
}

pub fn iss_sub(iss: &str, sub: &str) -> Value {
    json!({"format": "iss_sub", "iss": iss, "sub": sub})
}

pub fn opaque(id: &str) -> Value {
    json!({"format": "opaque", "id": id})
}

pub fn phone_number(e164: &str) -> Value {
    json!({"format": "phone_number", "phone_number": e164})
}

pub fn aliases(identifiers: Vec<Value>) -> Value {
    json!({"format": "aliases", "identifiers": identifiers})
}

/// A complex subject from `(member, simple subject)` pairs, e.g. `[("user", email(..)),
/// ("session", opaque(..))]`.
pub fn complex<'a>(members: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    let mut subject = json!({"format": "complex"});
    for (name, member) in members {
        subject[name] = member;
    }
    subject
}

/// Parses the command-line form `email:ADDR`, `iss_sub:ISS|SUB`, `opaque:ID` or
/// `phone_number:E164`; a bare address containing `@` is taken as an email.
pub fn parse(spec: &str) -> Option<Value> {
    let Some((format, rest)) = spec.split_once(':') else {
        return spec.contains('@').then(|| email(spec));
    };
    match format {
        "email" if !rest.is_empty() => Some(email(rest)),
        "opaque" if !rest.is_empty() => Some(opaque(rest)),
        "phone_number" | "phone" if !rest.is_empty() => Some(phone_number(rest)),
        // A URL never holds a bare '|' while subjects may (`auth0|123`), so split at the first.
        "iss_sub" => {
            let (iss, sub) = rest.split_once('|')?;
            (!iss.is_empty() && !sub.is_empty()).then(|| iss_sub(iss, sub))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_command_line_forms() {
        assert_eq!(
            parse("email:alice@example.com"),
            Some(email("alice@example.com"))
        );
        assert_eq!(parse("bob@example.com"), Some(email("bob@example.com")));
        assert_eq!(
            parse("iss_sub:https://idp.example.com/|248289761001"),
            Some(iss_sub("https://idp.example.com/", "248289761001"))
        );
        assert_eq!(
            parse("iss_sub:https://idp.example.com|auth0|42"),
            Some(iss_sub("https://idp.example.com", "auth0|42"))
        );
        assert_eq!(parse("opaque:abc"), Some(opaque("abc")));
        assert_eq!(parse("iss_sub:no-separator"), None);
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse("email:"), None);
    }

    #[test]
    fn complex_subject_keeps_members() {
        let s = complex([("user", email("a@b.c")), ("session", opaque("s1"))]);
        assert_eq!(s["format"], "complex");
        assert_eq!(s["session"]["id"], "s1");
    }
}
