//! Property tests for the SET envelope parser and the claim checks: no input may panic, and
//! every failure carries a registered RFC 8935 code. (Subject parsing has its own properties in
//! `src/verify/subject.rs`; both also have fuzz targets under `fuzz/`.)

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use ssfd::stream::Stream;
use ssfd::verify::{claims, jws, ErrCode};

fn stream() -> Stream {
    Stream {
        issuer_url: "https://tr.example.com".into(),
        expected_audience: "https://receiver.example.com".into(),
        ..Stream::default()
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
        Just(json!("https://tr.example.com")),
        Just(json!("https://receiver.example.com")),
        Just(json!({"format": "email", "email": "a@b.c"})),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("iss".to_string()),
                    Just("aud".to_string()),
                    Just("jti".to_string()),
                    Just("iat".to_string()),
                    Just("events".to_string()),
                    Just("sub_id".to_string()),
                    Just("txn".to_string()),
                    Just("toe".to_string()),
                    Just("subject".to_string()),
                    Just("state".to_string()),
                    Just("status".to_string()),
                    ".{0,8}",
                    Just(
                        "https://schemas.openid.net/secevent/ssf/event-type/verification"
                            .to_string()
                    ),
                    Just(
                        "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
                            .to_string()
                    ),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const CODES: [ErrCode; 7] = [
    ErrCode::InvalidRequest,
    ErrCode::InvalidKey,
    ErrCode::InvalidIssuer,
    ErrCode::InvalidAudience,
    ErrCode::AuthenticationFailed,
    ErrCode::AccessDenied,
    ErrCode::InvalidState,
];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        if let Err(e) = jws::parse(&text) {
            prop_assert!(CODES.contains(&e.code));
        }
    }

    #[test]
    fn arbitrary_envelopes_never_panic(header in json_value(), payload in json_value(), sig in prop::collection::vec(any::<u8>(), 0..64)) {
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            URL_SAFE_NO_PAD.encode(sig)
        );
        match jws::parse(&token) {
            Ok(parsed) => {
                let _ = claims::check(&stream(), parsed.payload);
            }
            Err(e) => prop_assert!(matches!(e.code, ErrCode::InvalidRequest | ErrCode::InvalidKey)),
        }
    }

    #[test]
    fn arbitrary_claims_never_panic(payload in json_value()) {
        let map = match payload {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("events".into(), other);
                m
            }
        };
        if let Ok(set) = claims::check(&stream(), map) {
            prop_assert!(!set.jti.is_empty());
            prop_assert!(!set.events.is_empty());
        }
    }
}
