//! The pre-1.0 ("SSE" draft, 2021) transmitter mode: the shapes such transmitters still send,
//! reproduced so that ssfd's LEGACY_SSE profile can be tested against them.
//!
//! Metadata at `/.well-known/sse-configuration[/path]` with a constant issuer unrelated to the
//! host (trailing slash included); RISC-era delivery URIs (RFC URNs get 400); stream
//! configurations without `stream_id`, one stream per bearer token, POST replacing it; the
//! subject inside each event; verification under the SSE URI with a `state` and no subject;
//! polls that read `acks` and refuse long polling; push `Authorization` with or without
//! `Bearer `.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::set::random_jti;
use crate::state::{subject_change, Mgmt, Shared, TxStream};
use crate::wire::json_response;

/// The issuer a legacy transmitter announces unless told otherwise: not its host, and with a
/// trailing slash.
pub const DEFAULT_ISSUER: &str = "https://most-secure.com/";
/// Push delivery of the RISC era.
pub const DELIVERY_PUSH: &str = "https://schemas.openid.net/secevent/risc/delivery-method/push";
/// Poll delivery of the RISC era.
pub const DELIVERY_POLL: &str = "https://schemas.openid.net/secevent/risc/delivery-method/poll";
/// The SSE draft's verification event (`VERIFICATION`: a `state`, no subject) and the
/// `initiating_entity` outside CAEP 1.0 such transmitters send; defined where SETs are shaped.
pub use crate::set::{
    SSE_INITIATING_ENTITY as INITIATING_ENTITY, SSE_VERIFICATION as VERIFICATION,
};
/// What the poll endpoint answers (404) to a long poll.
pub const NO_LONG_POLLING: &str = "this transmitter does not support long polling";

/// The well-known path of the SSE draft.
pub(crate) fn metadata_path(issuer_path: &str) -> String {
    format!("/.well-known/sse-configuration{issuer_path}")
}

/// The metadata a legacy transmitter serves.
pub(crate) fn metadata(shared: &Shared, issuer: String) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert("issuer".into(), json!(issuer));
    doc.insert("jwks_uri".into(), json!(shared.jwks_url()));
    doc.insert(
        "delivery_methods_supported".into(),
        json!([DELIVERY_PUSH, DELIVERY_POLL]),
    );
    doc.insert(
        "configuration_endpoint".into(),
        json!(shared.url(&shared.paths.configuration)),
    );
    doc.insert(
        "status_endpoint".into(),
        json!(shared.url(&shared.paths.status)),
    );
    doc.insert(
        "verification_endpoint".into(),
        json!(shared.url(&shared.paths.verification)),
    );
    doc.insert(
        "add_subject_endpoint".into(),
        json!(shared.url(&shared.paths.add_subject)),
    );
    doc.insert(
        "remove_subject_endpoint".into(),
        json!(shared.url(&shared.paths.remove_subject)),
    );
    doc
}

/// The configuration of a legacy stream: no `stream_id`, RISC-era method.
pub(crate) fn config_json(m: &Mgmt, s: &TxStream, issuer: &str) -> Value {
    let delivered: Vec<&String> = s
        .events_requested
        .iter()
        .filter(|e| m.events_supported.contains(e))
        .collect();
    json!({
        "iss": m.config_iss.clone().unwrap_or_else(|| issuer.to_owned()),
        "aud": [],
        "delivery": {"method": s.method, "endpoint_url": s.endpoint_url},
        "events_supported": m.events_supported,
        "events_requested": s.events_requested,
        "events_delivered": delivered,
        "description": s.description,
    })
}

fn bad_request(message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"error": message}).to_string(),
    )
}

fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        r#"{"error":"no stream for this token"}"#.to_owned(),
    )
}

/// The stream id kept internally for the stream of a bearer token (feeds are named by it).
fn stream_of_token(m: &Mgmt, token: &str) -> Option<String> {
    m.legacy_streams.get(token).cloned()
}

/// A verification the legacy transmitter is to send after answering.
pub(crate) struct LegacyVerify {
    pub stream: TxStream,
    pub state: Option<String>,
}

/// The legacy management API. `op` is `create` (POST, which replaces), `read`, `delete`,
/// `read_status`, `update_status` or `verify`; the stream is the bearer token's.
pub(crate) fn act(
    shared: &Shared,
    m: &mut Mgmt,
    op: &str,
    token: &str,
    body: &Value,
) -> (Response, Option<LegacyVerify>) {
    let issuer = shared.issuer.as_str();
    let obj = body.as_object().cloned().unwrap_or_default();
    let ok = |v: Value| json_response(StatusCode::OK, v.to_string());
    match op {
        "create" => {
            let id = stream_of_token(m, token).unwrap_or_else(random_jti);
            // POST replaces: every editable field not sent becomes null.
            let mut s = TxStream {
                id: id.clone(),
                method: String::new(),
                endpoint_url: String::new(),
                authorization_header: None,
                events_requested: Vec::new(),
                description: obj
                    .get("description")
                    .and_then(Value::as_str)
                    .map(String::from),
                status: "enabled".into(),
                reason: None,
                subjects: Vec::new(),
            };
            let delivery = obj.get("delivery").and_then(Value::as_object);
            let method = delivery
                .and_then(|d| d.get("method"))
                .and_then(Value::as_str)
                .unwrap_or(DELIVERY_POLL);
            match method {
                DELIVERY_PUSH => {
                    let Some(url) = delivery
                        .and_then(|d| d.get("endpoint_url"))
                        .and_then(Value::as_str)
                    else {
                        return (bad_request("push delivery needs endpoint_url"), None);
                    };
                    s.endpoint_url = url.to_owned();
                    s.authorization_header = delivery
                        .and_then(|d| d.get("authorization_header"))
                        .and_then(Value::as_str)
                        .map(String::from);
                }
                DELIVERY_POLL => {
                    s.endpoint_url = shared.url(&format!("{}/{}", shared.paths.poll_prefix, id));
                }
                _ => return (bad_request("unsupported delivery method"), None),
            }
            s.method = method.to_owned();
            s.events_requested = obj
                .get("events_requested")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let v = config_json(m, &s, issuer);
            m.legacy_streams.insert(token.to_owned(), id.clone());
            m.streams.insert(id, s);
            (ok(v), None)
        }
        "read" => match stream_of_token(m, token).and_then(|id| m.streams.get(&id)) {
            Some(s) => (ok(config_json(m, s, issuer)), None),
            None => (not_found(), None),
        },
        "delete" => match m.legacy_streams.remove(token) {
            Some(id) => {
                m.streams.remove(&id);
                m.feeds.remove(&id);
                (StatusCode::NO_CONTENT.into_response(), None)
            }
            None => (not_found(), None),
        },
        "read_status" => match stream_of_token(m, token).and_then(|id| m.streams.get(&id)) {
            Some(s) => (ok(json!({"status": s.status})), None),
            None => (not_found(), None),
        },
        "update_status" => {
            let status = obj.get("status").and_then(Value::as_str).unwrap_or("");
            if !["enabled", "paused", "disabled"].contains(&status) {
                return (
                    bad_request("status must be enabled, paused or disabled"),
                    None,
                );
            }
            let Some(s) = stream_of_token(m, token).and_then(|id| m.streams.get_mut(&id)) else {
                return (not_found(), None);
            };
            s.status = status.to_owned();
            shared.feeds_changed.notify_waiters();
            (ok(json!({"status": status})), None)
        }
        "add_subject" | "remove_subject" => {
            let Some(subject) = obj.get("subject").filter(|v| v.is_object()).cloned() else {
                return (bad_request("subject must be an object"), None);
            };
            let Some(s) = stream_of_token(m, token).and_then(|id| m.streams.get_mut(&id)) else {
                return (not_found(), None);
            };
            (subject_change(s, subject, op == "add_subject"), None)
        }
        _ => {
            let Some(s) = stream_of_token(m, token).and_then(|id| m.streams.get(&id).cloned())
            else {
                return (not_found(), None);
            };
            let requested = obj.get("state").and_then(Value::as_str).map(String::from);
            m.verifications.push((s.id.clone(), requested.clone()));
            let deliver = (!m.drop_verifications).then(|| LegacyVerify {
                state: m.verification_state.clone().or(requested),
                stream: s,
            });
            (StatusCode::NO_CONTENT.into_response(), deliver)
        }
    }
}

/// The poll request's acknowledgements as a legacy transmitter reads them: `acks` only.
pub(crate) fn acks(doc: &Value) -> Vec<String> {
    doc["acks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The verification payload of the SSE draft.
pub(crate) fn verification_payload(state: Option<&str>) -> Value {
    match state {
        Some(state) => json!({ "state": state }),
        None => json!({}),
    }
}
