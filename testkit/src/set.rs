//! `SetBuilder`: a valid Security Event Token by default, and every way of spoiling it on demand.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::events;
use crate::jws;
use crate::keys::SigningKey;
use crate::subjects;

/// The audience a SET carries unless told otherwise.
pub const DEFAULT_AUDIENCE: &str = "https://receiver.example.com";

/// Where a builder gets its signing key when it signs: a transmitter's key ring (whose
/// current key may change between building and signing) or one fixed key.
pub(crate) trait KeySource: Send + Sync {
    /// The key with this `kid`, or the current key when `kid` is `None`. Panics on an
    /// unknown `kid`: that is a mistake in the test, not a condition to test.
    fn signing_key(&self, kid: Option<&str>) -> Arc<SigningKey>;
}

impl KeySource for SigningKey {
    fn signing_key(&self, kid: Option<&str>) -> Arc<SigningKey> {
        if let Some(kid) = kid {
            assert_eq!(
                kid,
                self.kid(),
                "this builder only holds key {:?}",
                self.kid()
            );
        }
        Arc::new(self.clone())
    }
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A random `jti`: 128 bits in hex, unique enough for any test run.
pub fn random_jti() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Builds one SET. Starts valid: `iss`, a random `jti`, `iat` now, `aud`, an email `sub_id`
/// for alice@example.com and one CAEP `session-revoked` event; the JOSE header is
/// `{"typ":"secevent+jwt","alg":<key alg>,"kid":<key kid>}`. Each setter replaces one part.
#[derive(Clone)]
pub struct SetBuilder {
    source: Arc<dyn KeySource>,
    key: Option<String>,
    claims: Map<String, Value>,
    /// Header edits, applied in order over the default header: `Some` sets, `None` removes.
    header_edits: Vec<(String, Option<Value>)>,
    /// Shape the claims as a pre-1.0 SSE transmitter does (see [`crate::legacy`]).
    legacy: bool,
}

impl std::fmt::Debug for SetBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetBuilder")
            .field("key", &self.key)
            .field("claims", &self.claims)
            .field("header_edits", &self.header_edits)
            .finish_non_exhaustive()
    }
}

impl SetBuilder {
    /// A builder that signs with one fixed key, for use without a running transmitter.
    pub fn new(issuer: &str, key: SigningKey) -> SetBuilder {
        SetBuilder::from_source(Arc::new(key), issuer, DEFAULT_AUDIENCE)
    }

    pub(crate) fn from_source(
        source: Arc<dyn KeySource>,
        issuer: &str,
        audience: &str,
    ) -> SetBuilder {
        let iat = now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(issuer));
        claims.insert("jti".into(), json!(random_jti()));
        claims.insert("iat".into(), json!(iat));
        claims.insert("aud".into(), json!(audience));
        claims.insert("sub_id".into(), subjects::email("alice@example.com"));
        claims.insert(
            "events".into(),
            json!({ events::SESSION_REVOKED: events::default_payload(events::SESSION_REVOKED, None, iat) }),
        );
        SetBuilder {
            source,
            key: None,
            claims,
            header_edits: Vec::new(),
            legacy: false,
        }
    }

    /// A builder whose SETs have the SSE draft's shape: the subject inside each event (no
    /// `sub_id`), no `txn` or `toe`, `aud` an empty array when `audience` is empty, and an
    /// `initiating_entity` outside CAEP 1.0.
    pub(crate) fn legacy_from_source(
        source: Arc<dyn KeySource>,
        issuer: &str,
        audience: &str,
    ) -> SetBuilder {
        let mut b = SetBuilder::from_source(source, issuer, audience);
        b.legacy = true;
        if audience.is_empty() {
            b.claims.insert("aud".into(), json!([]));
        }
        if let Some(p) = b
            .claims
            .get_mut("events")
            .and_then(|e| e.get_mut(events::SESSION_REVOKED))
        {
            p["initiating_entity"] = json!(SSE_INITIATING_ENTITY);
        }
        b
    }

    pub fn jti(self, jti: impl Into<String>) -> Self {
        self.claim("jti", Value::String(jti.into()))
    }

    pub fn iss(self, iss: impl Into<String>) -> Self {
        self.claim("iss", Value::String(iss.into()))
    }

    /// A string or an array of strings.
    pub fn aud(self, aud: impl Into<Value>) -> Self {
        self.claim("aud", aud.into())
    }

    pub fn iat(self, iat: i64) -> Self {
        self.claim("iat", json!(iat))
    }

    pub fn txn(self, txn: impl Into<String>) -> Self {
        self.claim("txn", Value::String(txn.into()))
    }

    pub fn toe(self, toe: i64) -> Self {
        self.claim("toe", json!(toe))
    }

    pub fn sub_id(self, subject: Value) -> Self {
        self.claim("sub_id", subject)
    }

    /// Replaces all events with this one. `event_type` is a short name (see [`events::uri`])
    /// or a full URI.
    pub fn event(mut self, event_type: &str, payload: Value) -> Self {
        let mut events = Map::new();
        events.insert(events::uri(event_type), payload);
        self.claims.insert("events".into(), Value::Object(events));
        self
    }

    /// Adds an event next to the existing ones (SETs should carry one; this makes the others).
    /// Turns a non-object `events` claim into an object first.
    pub fn add_event(mut self, event_type: &str, payload: Value) -> Self {
        let events = self
            .claims
            .entry("events")
            .or_insert_with(|| Value::Object(Map::new()));
        if !events.is_object() {
            *events = Value::Object(Map::new());
        }
        events[events::uri(event_type)] = payload;
        self
    }

    /// Sets or overrides any claim, including `events` itself.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.to_owned(), value);
        self
    }

    pub fn remove_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets or overrides a JOSE header member (`typ`, `alg`, `kid`, or anything else). An
    /// overridden `alg` decides how the token is signed; see [`jws::sign_compact`].
    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.header_edits.push((name.to_owned(), Some(value)));
        self
    }

    pub fn remove_header(mut self, name: &str) -> Self {
        self.header_edits.push((name.to_owned(), None));
        self
    }

    /// Signs with the key of this `kid` (published or not) instead of the current key. The
    /// header's `kid` follows unless overridden.
    pub fn key(mut self, kid: &str) -> Self {
        self.key = Some(kid.to_owned());
        self
    }

    /// The claims as they will be signed.
    pub fn claims(&self) -> Value {
        if self.legacy {
            shape_claims(self.claims.clone())
        } else {
            Value::Object(self.claims.clone())
        }
    }

    /// The JOSE header as it will be signed, given the key that would sign now.
    pub fn header_value(&self) -> Value {
        self.header_for(&self.source.signing_key(self.key.as_deref()))
    }

    fn header_for(&self, key: &SigningKey) -> Value {
        let mut header = Map::new();
        header.insert("typ".into(), json!("secevent+jwt"));
        header.insert("alg".into(), json!(key.alg()));
        header.insert("kid".into(), json!(key.kid()));
        for (name, edit) in &self.header_edits {
            match edit {
                Some(value) => {
                    header.insert(name.clone(), value.clone());
                }
                None => {
                    header.remove(name);
                }
            }
        }
        Value::Object(header)
    }

    /// The compact JWS. Signing again gives the same claims (the same `jti`), as a retrying
    /// transmitter would send; ECDSA and PSS signatures differ each time, RS256 ones do not.
    pub fn sign(&self) -> String {
        let key = self.source.signing_key(self.key.as_deref());
        jws::sign_compact(&self.header_for(&key), &self.claims(), &key)
    }
}

/// The pre-1.0 SSE draft's verification event: a `state`, no subject.
pub const SSE_VERIFICATION: &str =
    "https://schemas.openid.net/secevent/sse/event-type/verification";
/// An `initiating_entity` outside CAEP 1.0, as pre-1.0 transmitters send.
pub const SSE_INITIATING_ENTITY: &str = "admin_console";

/// Moves `sub_id` into every event that has no subject (the SSE verification excepted) and
/// drops `txn` and `toe`.
pub(crate) fn shape_claims(mut claims: Map<String, Value>) -> Value {
    let subject = claims.remove("sub_id");
    claims.remove("txn");
    claims.remove("toe");
    if let (Some(subject), Some(Value::Object(events))) = (subject, claims.get_mut("events")) {
        for (event_type, payload) in events.iter_mut() {
            if event_type == SSE_VERIFICATION {
                continue;
            }
            if let Value::Object(p) = payload {
                p.entry("subject").or_insert_with(|| subject.clone());
            }
        }
    }
    Value::Object(claims)
}
