//! The SSF §8 management calls ssfd makes at a transmitter: register a stream (create, or take
//! over the existing one after a 409), request a verification, read and update the stream status,
//! and delete it. Endpoints always come from the transmitter metadata, never from fixed paths.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::MANAGEMENT_TIMEOUT;
use super::{
    auth, error_excerpt, outbound_secrets, read_json, retry_after, TransmitterError, DELIVERY_POLL,
    DELIVERY_PUSH, LEGACY_DELIVERY_POLL, LEGACY_DELIVERY_PUSH,
};
use crate::app::App;
use crate::clock::now_unix;
use crate::compat::Tolerance;
use crate::event_type;
use crate::outbound::{HttpClient, OutboundError};
use crate::store::StoreError;
use crate::stream::{RevocationAction, Stream, TRANSMITTER_STATUSES};
use crate::verify::jwks::{issuer_matches, KeySource};
use crate::verify::subject::Subject;

/// `events_requested` for a stream: its `eventTypesEnabled` when set, else the actionable types
/// plus every `[policy]` type configured as REVOKE_ALL. Never empty.
pub fn events_requested(
    stream: &Stream,
    policy: &BTreeMap<String, RevocationAction>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |t: String| {
        if !out.contains(&t) {
            out.push(t);
        }
    };
    let own: Vec<String> = stream
        .event_types_enabled
        .iter()
        .filter_map(|e| event_type::expand(e))
        .collect();
    if own.is_empty() {
        event_type::requested_uris().for_each(&mut push);
        for (pattern, action) in policy {
            if *action == RevocationAction::RevokeAll {
                if let Some(t) = event_type::expand(pattern) {
                    push(t);
                }
            }
        }
    } else {
        own.into_iter().for_each(&mut push);
    }
    out
}

/// A stream configuration as a transmitter returns it (SSF §8.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamConfig {
    pub stream_id: String,
    pub iss: Option<String>,
    pub aud: Vec<String>,
    pub delivery_method: Option<String>,
    pub endpoint_url: Option<String>,
    pub events_delivered: Vec<String>,
    pub min_verification_interval: Option<u64>,
    /// Seconds without traffic after which the transmitter may drop the stream (SSF §8.1.1).
    pub inactivity_timeout: Option<u64>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

pub fn parse_config(v: &Value, step: &'static str) -> Result<StreamConfig, TransmitterError> {
    parse_config_as(v, step, false)
}

/// [`parse_config`]; `without_stream_id` accepts the SSE draft's configuration, which names no
/// stream (one stream per credential): `stream_id` is then empty.
pub fn parse_config_as(
    v: &Value,
    step: &'static str,
    without_stream_id: bool,
) -> Result<StreamConfig, TransmitterError> {
    let o = v.as_object().ok_or_else(|| {
        TransmitterError::failed(step, "the stream configuration is not a JSON object")
    })?;
    let stream_id = match o
        .get("stream_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(id) => id,
        None if without_stream_id => "",
        None => {
            return Err(TransmitterError::failed(
                step,
                "the stream configuration has no stream_id",
            ))
        }
    };
    let delivery = o.get("delivery").and_then(Value::as_object);
    Ok(StreamConfig {
        stream_id: stream_id.to_string(),
        iss: o.get("iss").and_then(Value::as_str).map(String::from),
        aud: strings(o.get("aud")),
        delivery_method: delivery
            .and_then(|d| d.get("method"))
            .and_then(Value::as_str)
            .map(String::from),
        endpoint_url: delivery
            .and_then(|d| d.get("endpoint_url"))
            .and_then(Value::as_str)
            .map(String::from),
        events_delivered: strings(o.get("events_delivered")),
        min_verification_interval: o.get("min_verification_interval").and_then(Value::as_u64),
        inactivity_timeout: o.get("inactivity_timeout").and_then(Value::as_u64),
    })
}

/// SSF §8.1.1.x: the configuration must name the stream's issuer, and (when ssfd expects one)
/// its audience. Returns why it cannot be used. Never echoes the expected values.
pub fn check_config(stream: &Stream, cfg: &StreamConfig) -> Result<(), String> {
    let iss = cfg.iss.as_deref().unwrap_or("");
    if iss.is_empty()
        || issuer_matches(iss, &stream.issuer_url, stream.compatibility_profile).is_err()
    {
        return Err("the stream configuration's iss is not the stream's issuer".into());
    }
    if !stream.expected_audience.is_empty() && !cfg.aud.contains(&stream.expected_audience) {
        return Err("the stream configuration's aud does not include expectedAudience".into());
    }
    Ok(())
}

/// Management endpoints from the transmitter metadata.
struct Endpoints {
    configuration: Option<String>,
    status: Option<String>,
    verification: Option<String>,
    add_subject: Option<String>,
    remove_subject: Option<String>,
}

fn stream_of(app: &App, id: &str) -> Result<Arc<Stream>, TransmitterError> {
    app.registry.get(id).ok_or(TransmitterError::NotFound)
}

async fn endpoints(app: &App, stream: &Stream) -> Result<Endpoints, TransmitterError> {
    let allow_http = app.config().jwks.allow_http;
    let found = app
        .keys
        .metadata(&KeySource::of(stream), allow_http)
        .await
        .map_err(|e| TransmitterError::failed("discovery", e.to_string()))?;
    app.note_tolerances(&stream.id, &found.tolerances);
    let meta = found.doc;
    let endpoint = |name: &'static str| -> Result<Option<String>, TransmitterError> {
        match meta
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            None => Ok(None),
            Some(url) => {
                crate::url_check::check_url(url, allow_http)
                    .map_err(|m| TransmitterError::failed("discovery", format!("{name}: {m}")))?;
                Ok(Some(url.to_string()))
            }
        }
    };
    Ok(Endpoints {
        configuration: endpoint("configuration_endpoint")?,
        status: endpoint("status_endpoint")?,
        verification: endpoint("verification_endpoint")?,
        add_subject: endpoint("add_subject_endpoint")?,
        remove_subject: endpoint("remove_subject_endpoint")?,
    })
}

fn require(url: Option<String>, name: &str) -> Result<String, TransmitterError> {
    url.ok_or_else(|| {
        TransmitterError::failed(
            "discovery",
            format!("the transmitter metadata has no {name}"),
        )
    })
}

/// The transmitter's id of the stream. A LEGACY_SSE transmitter may name none (one stream per
/// credential): `None`, and requests then carry no `stream_id`.
fn registered_id(stream: &Stream) -> Result<Option<&str>, TransmitterError> {
    if !stream.transmitter_stream_id.is_empty() {
        Ok(Some(&stream.transmitter_stream_id))
    } else if stream.is_legacy() {
        Ok(None)
    } else {
        Err(TransmitterError::NotRegistered)
    }
}

/// `?stream_id=` when the transmitter named the stream.
fn id_query(id: Option<&str>) -> Vec<(&'static str, &str)> {
    id.map(|id| vec![("stream_id", id)]).unwrap_or_default()
}

/// The error for a management answer that is not a success: its status and a scrubbed
/// excerpt of its body (docs/poll.md#errors-from-transmitters).
async fn status_error(
    step: &'static str,
    stream: &Stream,
    resp: reqwest::Response,
) -> TransmitterError {
    let status = resp.status().as_u16();
    if status == 429 {
        TransmitterError::RateLimited {
            step,
            retry_after_secs: retry_after(&resp).map(|d| d.as_secs()).unwrap_or(60),
        }
    } else {
        let excerpt = error_excerpt(resp, &outbound_secrets(stream)).await;
        TransmitterError::Status {
            step,
            status,
            excerpt,
        }
    }
}

/// Records why a transmitter's answer cannot be used, disables the stream so nothing polls or
/// trusts it, and returns the error to report.
async fn refuse(app: &App, id: &str, step: &'static str, why: String) -> TransmitterError {
    let now = now_unix();
    let message = format!("{step}: {why}");
    let edited = app
        .registry
        .modify(id, |s: &mut Stream| -> Result<(), StoreError> {
            s.enabled = false;
            s.last_error_at = Some(now);
            s.last_error_message = message.clone();
            s.updated_at = now;
            Ok(())
        })
        .await;
    if let Err(e) = edited {
        tracing::error!(stream = %id, error = %e, "could not record a refused stream configuration");
    }
    tracing::error!(stream = %id, step, reason = %why, "transmitter answer refused; stream disabled");
    TransmitterError::Refused { step, message: why }
}

/// The push token state before a registration rotated it, to put back if registration fails.
struct PushTokens {
    current: Option<[u8; 32]>,
    previous: Option<[u8; 32]>,
    previous_expires_at: Option<i64>,
}

async fn undo_rotation(app: &App, id: &str, before: PushTokens, installed: [u8; 32]) {
    let restored = app
        .registry
        .modify(id, |s: &mut Stream| -> Result<(), StoreError> {
            // Only if nothing rotated it again meanwhile.
            if s.push_token_hash == Some(installed) {
                s.push_token_hash = before.current;
                s.prev_push_token_hash = before.previous;
                s.prev_push_token_expires_at = before.previous_expires_at;
            }
            Ok(())
        })
        .await;
    if let Err(e) = restored {
        tracing::error!(stream = %id, error = %e, "could not restore the push token after a failed registration");
    }
}

/// Registers the stream at its transmitter: creates the transmitter-side stream (or replaces the
/// existing one after a 409), checks the answer, and stores `transmitterStreamId`,
/// `eventsDelivered` and, for POLL, the `pollEndpointUrl` the transmitter assigned.
pub async fn register(app: &Arc<App>, id: &str) -> Result<Arc<Stream>, TransmitterError> {
    let stream = stream_of(app, id)?;
    let config_url = require(
        endpoints(app, &stream).await?.configuration,
        "configuration_endpoint",
    )?;
    let config = app.config();
    let events = events_requested(&stream, &config.policy);
    let mut rotation = None;
    let (push_uri, poll_uri) = if stream.is_legacy() {
        app.note_tolerances(&stream.id, &[Tolerance::LegacyDeliveryMethod]);
        (LEGACY_DELIVERY_PUSH, LEGACY_DELIVERY_POLL)
    } else {
        (DELIVERY_PUSH, DELIVERY_POLL)
    };
    let delivery = if stream.is_push() {
        let before = PushTokens {
            current: stream.push_token_hash,
            previous: stream.prev_push_token_hash,
            previous_expires_at: stream.prev_push_token_expires_at,
        };
        let token =
            crate::push_token::rotate(&app.registry, id, config.server.push_token_overlap).await?;
        rotation = Some((before, crate::secrets::token_hash(&token)));
        json!({
            "method": push_uri,
            "endpoint_url": stream.push_endpoint_url(&config.server.public_base_url),
            "authorization_header": format!("Bearer {token}"),
        })
    } else {
        json!({"method": poll_uri})
    };
    let description = if stream.description.is_empty() {
        &stream.display_name
    } else {
        &stream.description
    };
    let body = json!({
        "delivery": delivery,
        "events_requested": events,
        "description": description,
    });
    let result = create_or_replace(app, &stream, &config_url, &body).await;
    let outcome = match result {
        Ok(cfg) => adopt(app, &stream, cfg).await,
        Err(e) => Err(e),
    };
    if let (Err(e), Some((before, installed))) = (&outcome, rotation) {
        if transmitter_said_no(e) {
            undo_rotation(app, id, before, installed).await;
        } else {
            // The transmitter may hold the new token (it answered 2xx, or the answer was lost):
            // both stay valid until the next registration settles it.
            keep_both_tokens(app, id, before, installed).await;
        }
    }
    outcome
}

/// Whether a failed registration is known not to have reached the transmitter's records: it
/// answered with an error status, or ssfd refused before asking.
fn transmitter_said_no(e: &TransmitterError) -> bool {
    matches!(
        e,
        TransmitterError::Status { .. }
            | TransmitterError::RateLimited { .. }
            | TransmitterError::TooSoon { .. }
            | TransmitterError::NotRegistered
            | TransmitterError::NotFound
            | TransmitterError::PushToken(_)
    )
}

/// The old push token stays the current one; the new one, which the transmitter may have
/// taken, stays valid for `[server] push_token_overlap`.
async fn keep_both_tokens(app: &App, id: &str, before: PushTokens, installed: [u8; 32]) {
    let overlap = app.config().server.push_token_overlap;
    let until = crate::clock::now_unix()
        .saturating_add(i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX));
    let kept = app
        .registry
        .modify(id, |s: &mut Stream| -> Result<(), StoreError> {
            if s.push_token_hash == Some(installed) {
                s.push_token_hash = before.current;
                s.prev_push_token_hash = Some(installed);
                s.prev_push_token_expires_at = Some(until);
            }
            Ok(())
        })
        .await;
    match kept {
        Ok(_) => tracing::warn!(stream = %id,
            "registration did not complete, but the transmitter may hold the new push token: \
             both tokens stay valid; register again to settle it"),
        Err(e) => {
            tracing::error!(stream = %id, error = %e, "could not keep both push tokens after an unsettled registration")
        }
    }
}

async fn create_or_replace(
    app: &App,
    stream: &Stream,
    config_url: &str,
    body: &Value,
) -> Result<StreamConfig, TransmitterError> {
    // The SSE draft: one stream per credential, and POST replaces it.
    if stream.is_legacy() && stream.transmitter_stream_id.is_empty() {
        let resp = send(app, stream, "create", MANAGEMENT_TIMEOUT, |c| {
            Ok(c.post(config_url)?
                .header(reqwest::header::ACCEPT, "application/json")
                .json(body))
        })
        .await?;
        return match resp.status().as_u16() {
            200 | 201 => legacy_config(app, stream, &read_json(resp, "create").await?, "create"),
            _ => Err(status_error("create", stream, resp).await),
        };
    }
    // Registered before: update that stream rather than leave it orphaned beside a new one.
    if !stream.transmitter_stream_id.is_empty() {
        match replace(app, stream, config_url, &stream.transmitter_stream_id, body).await {
            Err(TransmitterError::Status { status: 404, .. }) => {
                tracing::info!(stream = %stream.id, "the transmitter no longer has the registered stream; creating a new one");
            }
            other => return other,
        }
    }
    // A stream the transmitter already holds for this receiver is taken over, not duplicated.
    if let Some(existing) = find_own(app, stream, config_url, body).await {
        tracing::info!(stream = %stream.id, transmitter_stream_id = %existing, "the transmitter already holds a stream for this receiver; updating it");
        return replace(app, stream, config_url, &existing, body).await;
    }
    let resp = send(app, stream, "create", MANAGEMENT_TIMEOUT, |c| {
        Ok(c.post(config_url)?
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body))
    })
    .await?;
    match resp.status().as_u16() {
        200 | 201 => parse_config(&read_json(resp, "create").await?, "create"),
        409 => {
            tracing::info!(stream = %stream.id, "the transmitter already has a stream for this receiver; replacing it");
            let existing = pick_existing(app, stream, config_url).await?;
            replace(app, stream, config_url, &existing, body).await
        }
        _ => Err(status_error("create", stream, resp).await),
    }
}

/// The transmitter's id of a stream it already holds for this receiver: same delivery method
/// and, for push, the same endpoint URL; for poll, the same description; and no other local
/// stream registered to it. `None` when there is none, or the transmitter cannot list its
/// streams (creation then goes ahead).
async fn find_own(app: &App, stream: &Stream, config_url: &str, body: &Value) -> Option<String> {
    let resp = send(app, stream, "read", MANAGEMENT_TIMEOUT, |c| {
        Ok(c.get(config_url)?
            .header(reqwest::header::ACCEPT, "application/json"))
    })
    .await
    .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let doc = read_json(resp, "read").await.ok()?;
    let items = match doc {
        Value::Array(items) => items,
        v @ Value::Object(_) => vec![v],
        _ => return None,
    };
    let wanted = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let method = wanted(body, "/delivery/method");
    let endpoint = wanted(body, "/delivery/endpoint_url");
    let description = wanted(body, "/description");
    // A stream another local stream is registered to is that stream's, never this one's.
    let taken: Vec<String> = app
        .registry
        .list()
        .iter()
        .filter(|s| s.id != stream.id)
        .map(|s| s.transmitter_stream_id.clone())
        .filter(|t| !t.is_empty())
        .collect();
    items.iter().find_map(|c| {
        let same_method = wanted(c, "/delivery/method") == method;
        let ours = if endpoint.is_some() {
            wanted(c, "/delivery/endpoint_url") == endpoint
        } else {
            wanted(c, "/description") == description
        };
        (same_method && ours)
            .then(|| wanted(c, "/stream_id"))
            .flatten()
            .filter(|id| !id.is_empty() && !taken.contains(id))
    })
}

/// A configuration from a LEGACY_SSE transmitter, which may name no stream.
fn legacy_config(
    app: &App,
    stream: &Stream,
    v: &Value,
    step: &'static str,
) -> Result<StreamConfig, TransmitterError> {
    let cfg = parse_config_as(v, step, true)?;
    if cfg.stream_id.is_empty() {
        app.note_tolerances(&stream.id, &[Tolerance::ConfigWithoutStreamId]);
    }
    Ok(cfg)
}

/// SSF §8.1.1.2 without `stream_id`: an array of configurations (or one object).
async fn pick_existing(
    app: &App,
    stream: &Stream,
    config_url: &str,
) -> Result<String, TransmitterError> {
    let resp = send(app, stream, "read", MANAGEMENT_TIMEOUT, |c| {
        Ok(c.get(config_url)?
            .header(reqwest::header::ACCEPT, "application/json"))
    })
    .await?;
    if !resp.status().is_success() {
        return Err(status_error("read", stream, resp).await);
    }
    let doc = read_json(resp, "read").await?;
    let candidates: Vec<StreamConfig> = match &doc {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| parse_config(v, "read").ok())
            .collect(),
        v @ Value::Object(_) => vec![parse_config(v, "read")?],
        _ => Vec::new(),
    };
    // Only this stream's own: the one it registered before, or one that delivers to this
    // stream's URL. Any other may belong to another receiver of the same client.
    let ours = if stream.is_push() {
        Some(stream.push_endpoint_url(&app.config().server.public_base_url))
    } else {
        Some(stream.poll_endpoint_url.clone()).filter(|u| !u.is_empty())
    };
    candidates
        .iter()
        .find(|c| {
            !stream.transmitter_stream_id.is_empty() && c.stream_id == stream.transmitter_stream_id
        })
        .or_else(|| {
            candidates
                .iter()
                .find(|c| ours.is_some() && c.endpoint_url == ours)
        })
        .map(|c| c.stream_id.clone())
        .ok_or_else(|| {
            TransmitterError::failed(
                "read",
                "the transmitter answered 409 to create, and none of its streams is this one \
                 (registered before, or delivering to this stream's URL); not taking over a \
                 stream that may be another receiver's",
            )
        })
}

/// SSF §8.1.1.4 (PUT), or §8.1.1.3 (PATCH) when the transmitter does not offer PUT.
async fn replace(
    app: &App,
    stream: &Stream,
    config_url: &str,
    transmitter_id: &str,
    body: &Value,
) -> Result<StreamConfig, TransmitterError> {
    let mut full = body.clone();
    full["stream_id"] = json!(transmitter_id);
    let mut step = "replace";
    let mut resp = send(app, stream, step, MANAGEMENT_TIMEOUT, |c| {
        Ok(c.put(config_url)?
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&full))
    })
    .await?;
    if matches!(resp.status().as_u16(), 405 | 501) {
        step = "update";
        resp = send(app, stream, step, MANAGEMENT_TIMEOUT, |c| {
            Ok(c.patch(config_url)?
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&full))
        })
        .await?;
    }
    match resp.status().as_u16() {
        200 | 201 => parse_config(&read_json(resp, step).await?, step),
        // Accepted but not yet processed (SSF §8.1.1.3-4): read what the transmitter holds now.
        202 => read_config(app, stream, config_url, transmitter_id).await,
        _ => Err(status_error(step, stream, resp).await),
    }
}

async fn read_config(
    app: &App,
    stream: &Stream,
    config_url: &str,
    transmitter_id: &str,
) -> Result<StreamConfig, TransmitterError> {
    let query = id_query(Some(transmitter_id).filter(|id| !id.is_empty()));
    let resp = send(app, stream, "read", MANAGEMENT_TIMEOUT, |c| {
        Ok(c.get(config_url)?
            .query(&query)
            .header(reqwest::header::ACCEPT, "application/json"))
    })
    .await?;
    if !resp.status().is_success() {
        return Err(status_error("read", stream, resp).await);
    }
    let doc = read_json(resp, "read").await?;
    if stream.is_legacy() && transmitter_id.is_empty() {
        return legacy_config(app, stream, &doc, "read");
    }
    // Some transmitters answer a list even when asked for one stream.
    let one = match &doc {
        Value::Array(items) => items
            .iter()
            .find(|v| v.get("stream_id").and_then(Value::as_str) == Some(transmitter_id))
            .cloned()
            .unwrap_or(Value::Null),
        other => other.clone(),
    };
    parse_config(&one, "read")
}

/// Checks a configuration and stores what ssfd keeps of it.
async fn adopt(
    app: &App,
    stream: &Stream,
    cfg: StreamConfig,
) -> Result<Arc<Stream>, TransmitterError> {
    if let Err(why) = check_config(stream, &cfg) {
        return Err(refuse(app, &stream.id, "register", why).await);
    }
    let allow_http = app.config().jwks.allow_http;
    let poll_url = if stream.is_push() {
        None
    } else {
        let url = cfg
            .endpoint_url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                TransmitterError::failed(
                    "register",
                    "the transmitter returned no poll endpoint_url",
                )
            })?;
        crate::url_check::check_url(&url, allow_http).map_err(|m| {
            TransmitterError::failed("register", format!("delivery.endpoint_url: {m}"))
        })?;
        Some(url)
    };
    let audience = cfg.aud.first().cloned().unwrap_or_default();
    let now = now_unix();
    let updated = app
        .registry
        .modify(&stream.id, |s: &mut Stream| -> Result<(), StoreError> {
            s.transmitter_stream_id = cfg.stream_id.clone();
            s.events_delivered = cfg.events_delivered.clone();
            if let Some(url) = &poll_url {
                s.poll_endpoint_url = url.clone();
            }
            if s.expected_audience.is_empty() {
                s.expected_audience = audience.clone();
            }
            s.updated_at = now;
            Ok(())
        })
        .await?
        .ok_or(TransmitterError::NotFound)?;
    app.transmitters.update_verify_limit(&stream.id, |l| {
        l.min_interval = cfg.min_verification_interval.map(Duration::from_secs);
        l.inactivity_timeout = cfg.inactivity_timeout.map(Duration::from_secs);
        l.known = true;
    });
    tracing::info!(
        stream = %stream.id, transmitter_stream_id = %cfg.stream_id,
        events_delivered = cfg.events_delivered.len(), "stream registered at its transmitter"
    );
    Ok(updated)
}

/// A verification ssfd asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationRequested {
    pub state: String,
    /// Unix seconds.
    pub requested_at: i64,
}

/// Asks the transmitter for a verification event carrying a fresh `state` (SSF §8.1.4.2). The
/// state is on record before the call, so the event is recognised however early it arrives.
pub async fn verify(app: &Arc<App>, id: &str) -> Result<VerificationRequested, TransmitterError> {
    let stream = stream_of(app, id)?;
    let tid = registered_id(&stream)?.unwrap_or_default().to_string();
    let ep = endpoints(app, &stream).await?;
    let verify_url = require(ep.verification, "verification_endpoint")?;
    if !app.transmitters.verify_limit(id).known {
        if let Some(config_url) = &ep.configuration {
            match read_config(app, &stream, config_url, &tid).await {
                Ok(cfg) => app.transmitters.update_verify_limit(id, |l| {
                    l.min_interval = cfg.min_verification_interval.map(Duration::from_secs);
                    l.inactivity_timeout = cfg.inactivity_timeout.map(Duration::from_secs);
                    l.known = true;
                }),
                Err(e) => {
                    tracing::debug!(stream = %id, error = %e, "could not read min_verification_interval")
                }
            }
        }
    }
    let now = now_unix();
    let limit = app.transmitters.verify_limit(id);
    let last: Option<i64> = app.store.last_verification_request(id).await?;
    // A transmitter may announce any u64; the arithmetic saturates instead of overflowing.
    let min = limit
        .min_interval
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let earliest = last
        .map(|t| t.saturating_add(min))
        .unwrap_or(0)
        .max(limit.not_before);
    if now < earliest {
        return Err(TransmitterError::TooSoon {
            wait_secs: earliest.saturating_sub(now).unsigned_abs(),
            min_interval_secs: min.unsigned_abs(),
        });
    }
    let state = crate::secrets::random_token();
    app.store.add_verification_request(id, &state, now).await?;
    let mut body = json!({"state": state});
    if !tid.is_empty() {
        body["stream_id"] = json!(tid);
    }
    let sent = send(app, &stream, "verify", MANAGEMENT_TIMEOUT, |c| {
        Ok(c.post(&verify_url)?.json(&body))
    })
    .await;
    let failure = match sent {
        Ok(resp) if resp.status().is_success() => None,
        Ok(resp) => {
            let e = status_error("verify", &stream, resp).await;
            if let TransmitterError::RateLimited {
                retry_after_secs, ..
            } = &e
            {
                let until =
                    now_unix().saturating_add(i64::try_from(*retry_after_secs).unwrap_or(i64::MAX));
                app.transmitters
                    .update_verify_limit(id, |l| l.not_before = until);
            }
            Some(e)
        }
        // Whether the transmitter got the request is unknown: keep the state on record.
        Err(e) => return Err(e),
    };
    if let Some(e) = failure {
        let _ = app.store.delete_verification_request(id, &state).await;
        return Err(e);
    }
    tracing::info!(stream = %id, "verification requested");
    Ok(VerificationRequested {
        state,
        requested_at: now,
    })
}

/// Sends a request on behalf of `stream` with its credentials, through the shared HTTP client
/// and token cache (see [`auth::send`]).
pub async fn send<F>(
    app: &App,
    stream: &Stream,
    step: &'static str,
    timeout: Duration,
    build: F,
) -> Result<reqwest::Response, TransmitterError>
where
    F: Fn(&HttpClient) -> Result<reqwest::RequestBuilder, OutboundError>,
{
    let http = app.transmitters.http()?;
    auth::send(
        &http,
        &app.transmitters.tokens,
        stream,
        step,
        timeout,
        build,
    )
    .await
}

/// The transmitter-side status of a stream (SSF §8.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransmitterStatus {
    pub status: String,
    pub reason: String,
}

fn parse_status(doc: &Value, step: &'static str) -> Result<TransmitterStatus, TransmitterError> {
    let status = doc
        .get("status")
        .and_then(Value::as_str)
        .filter(|s| TRANSMITTER_STATUSES.contains(s))
        .ok_or_else(|| {
            TransmitterError::failed(step, "the answer has no status enabled, paused or disabled")
        })?;
    Ok(TransmitterStatus {
        status: status.to_string(),
        reason: doc
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

async fn remember_status(
    app: &App,
    id: &str,
    st: &TransmitterStatus,
) -> Result<(), TransmitterError> {
    app.registry
        .modify(id, |s: &mut Stream| -> Result<(), StoreError> {
            s.transmitter_status = st.status.clone();
            s.transmitter_status_reason = st.reason.clone();
            Ok(())
        })
        .await?;
    Ok(())
}

/// Reads the status at the transmitter and records it on the stream.
pub async fn read_status(app: &Arc<App>, id: &str) -> Result<TransmitterStatus, TransmitterError> {
    let stream = stream_of(app, id)?;
    let tid = registered_id(&stream)?.unwrap_or_default().to_string();
    let url = require(endpoints(app, &stream).await?.status, "status_endpoint")?;
    let resp = send(app, &stream, "status", MANAGEMENT_TIMEOUT, |c| {
        Ok(c.get(&url)?
            .query(&id_query(Some(tid.as_str()).filter(|t| !t.is_empty())))
            .header(reqwest::header::ACCEPT, "application/json"))
    })
    .await?;
    if !resp.status().is_success() {
        return Err(status_error("status", &stream, resp).await);
    }
    let st = parse_status(&read_json(resp, "status").await?, "status")?;
    remember_status(app, id, &st).await?;
    Ok(st)
}

/// Asks the transmitter to enable, pause or disable the stream.
pub async fn update_status(
    app: &Arc<App>,
    id: &str,
    status: &str,
    reason: &str,
) -> Result<TransmitterStatus, TransmitterError> {
    let stream = stream_of(app, id)?;
    let tid = registered_id(&stream)?.unwrap_or_default().to_string();
    let url = require(endpoints(app, &stream).await?.status, "status_endpoint")?;
    let mut body = json!({"status": status});
    if !tid.is_empty() {
        body["stream_id"] = json!(tid);
    }
    if !reason.is_empty() {
        body["reason"] = json!(reason);
    }
    let resp = send(app, &stream, "status", MANAGEMENT_TIMEOUT, |c| {
        Ok(c.post(&url)?
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body))
    })
    .await?;
    let st = match resp.status().as_u16() {
        200 | 201 => parse_status(&read_json(resp, "status").await?, "status")?,
        // Accepted for later (SSF §8.1.2.2): what was asked for is what will be.
        202 | 204 => TransmitterStatus {
            status: status.to_string(),
            reason: reason.to_string(),
        },
        _ => return Err(status_error("status", &stream, resp).await),
    };
    remember_status(app, id, &st).await?;
    tracing::info!(stream = %id, status = %st.status, "transmitter status updated");
    Ok(st)
}

/// Deletes the stream at the transmitter (SSF §8.1.1.5). A stream the transmitter no longer has
/// counts as deleted.
pub async fn delete_remote(app: &Arc<App>, id: &str) -> Result<(), TransmitterError> {
    let stream = stream_of(app, id)?;
    let tid = registered_id(&stream)?.unwrap_or_default().to_string();
    let url = require(
        endpoints(app, &stream).await?.configuration,
        "configuration_endpoint",
    )?;
    let resp = send(app, &stream, "delete", MANAGEMENT_TIMEOUT, |c| {
        Ok(c.delete(&url)?
            .query(&id_query(Some(tid.as_str()).filter(|t| !t.is_empty()))))
    })
    .await?;
    match resp.status().as_u16() {
        200 | 202 | 204 => {}
        404 => tracing::info!(stream = %id, "the transmitter no longer had this stream"),
        _ => return Err(status_error("delete", &stream, resp).await),
    }
    app.transmitters.tokens.invalidate(id);
    tracing::info!(stream = %id, transmitter_stream_id = %tid, "stream deleted at its transmitter");
    Ok(())
}

/// Adds (`add`) or removes a subject at the transmitter (SSF §8.1.3.2, §8.1.3.3), then records
/// the change, so that later events about a removed subject are acknowledged and not acted on.
pub async fn change_subject(
    app: &Arc<App>,
    id: &str,
    subject: &Subject,
    add: bool,
) -> Result<(), TransmitterError> {
    let stream = stream_of(app, id)?;
    let tid = registered_id(&stream)?.unwrap_or_default().to_string();
    let ep = endpoints(app, &stream).await?;
    let (step, url) = if add {
        (
            "add subject",
            require(ep.add_subject, "add_subject_endpoint")?,
        )
    } else {
        (
            "remove subject",
            require(ep.remove_subject, "remove_subject_endpoint")?,
        )
    };
    let mut body = json!({"subject": subject.raw});
    if !tid.is_empty() {
        body["stream_id"] = json!(tid);
    }
    if add {
        body["verified"] = json!(true);
    }
    let resp = send(app, &stream, step, MANAGEMENT_TIMEOUT, |c| {
        Ok(c.post(&url)?.json(&body))
    })
    .await?;
    if !resp.status().is_success() {
        return Err(status_error(step, &stream, resp).await);
    }
    if add {
        app.store.mark_subject_added(id, &subject.keys).await?;
    } else {
        app.store
            .mark_subject_removed(id, &subject.keys, now_unix())
            .await?;
    }
    app.transmitters.note_subject(id, &subject.keys, !add);
    tracing::info!(stream = %id, step, subject = %subject.keys.first().map(String::as_str).unwrap_or(""), "subject changed at the transmitter");
    Ok(())
}

/// The stream configuration the transmitter holds now, as it answered (SSF §8.1.1.2).
pub async fn remote_config(app: &Arc<App>, id: &str) -> Result<Value, TransmitterError> {
    let stream = stream_of(app, id)?;
    let tid = registered_id(&stream)?.unwrap_or_default().to_string();
    let url = require(
        endpoints(app, &stream).await?.configuration,
        "configuration_endpoint",
    )?;
    let query = id_query(Some(tid.as_str()).filter(|t| !t.is_empty()));
    let resp = send(app, &stream, "read", MANAGEMENT_TIMEOUT, |c| {
        Ok(c.get(&url)?
            .query(&query)
            .header(reqwest::header::ACCEPT, "application/json"))
    })
    .await?;
    if !resp.status().is_success() {
        return Err(status_error("read", &stream, resp).await);
    }
    let doc = read_json(resp, "read").await?;
    // Some transmitters answer a list even when asked for one stream.
    Ok(match doc {
        Value::Array(items) if !tid.is_empty() => items
            .into_iter()
            .find(|v| v.get("stream_id").and_then(Value::as_str) == Some(tid.as_str()))
            .unwrap_or(Value::Null),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_type::CAEP_BASE as CAEP;

    #[test]
    fn requested_events_follow_the_stream_or_the_policy() {
        let mut policy = BTreeMap::new();
        policy.insert(
            "device-compliance-change".to_string(),
            RevocationAction::RevokeAll,
        );
        policy.insert(
            "assurance-level-change".to_string(),
            RevocationAction::RevokeAll,
        );
        policy.insert("session-established".to_string(), RevocationAction::LogOnly);
        let s = Stream::default();
        let got = events_requested(&s, &policy);
        assert!(got.contains(&format!("{CAEP}session-revoked")));
        assert!(got.contains(&format!("{CAEP}assurance-level-change")));
        assert!(!got.contains(&format!("{CAEP}session-established")));
        let mut dedup = got.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), got.len());

        let own = Stream {
            event_types_enabled: vec![
                "credential-change".into(),
                "https://example.com/custom".into(),
                "no-such-type".into(),
            ],
            ..Stream::default()
        };
        assert_eq!(
            events_requested(&own, &policy),
            vec![
                format!("{CAEP}credential-change"),
                "https://example.com/custom".to_string()
            ]
        );
        let unknown_only = Stream {
            event_types_enabled: vec!["no-such-type".into()],
            ..Stream::default()
        };
        assert!(!events_requested(&unknown_only, &BTreeMap::new()).is_empty());
        // Matching still works on what was expanded.
        assert!(crate::event_type::event_type_matches(
            "credential-change",
            &format!("{CAEP}credential-change")
        ));
    }

    #[test]
    fn configuration_parsing() {
        let v = json!({"stream_id": "s1", "iss": "https://tr", "aud": "https://rx",
            "delivery": {"method": DELIVERY_POLL, "endpoint_url": "https://tr/poll/s1"},
            "events_delivered": ["a", "b"], "min_verification_interval": 30});
        let c = parse_config(&v, "create").unwrap();
        assert_eq!(c.stream_id, "s1");
        assert_eq!(c.aud, vec!["https://rx"]);
        assert_eq!(c.endpoint_url.as_deref(), Some("https://tr/poll/s1"));
        assert_eq!(c.events_delivered, vec!["a", "b"]);
        assert_eq!(c.min_verification_interval, Some(30));
        assert!(parse_config(&json!({"iss": "x"}), "create").is_err());
        assert!(parse_config(&json!([]), "create").is_err());
    }

    #[test]
    fn configuration_checks() {
        let s = Stream {
            issuer_url: "https://tr".into(),
            expected_audience: "https://rx".into(),
            ..Stream::default()
        };
        let good = StreamConfig {
            stream_id: "s".into(),
            iss: Some("https://tr".into()),
            aud: vec!["https://other".into(), "https://rx".into()],
            ..StreamConfig::default()
        };
        assert!(check_config(&s, &good).is_ok());
        let foreign = StreamConfig {
            iss: Some("https://evil".into()),
            ..good.clone()
        };
        let why = check_config(&s, &foreign).unwrap_err();
        assert!(!why.contains("https://tr") && !why.contains("evil"));
        let no_aud = StreamConfig {
            aud: vec!["https://other".into()],
            ..good.clone()
        };
        assert!(check_config(&s, &no_aud).is_err());
        let open = Stream {
            expected_audience: String::new(),
            ..s.clone()
        };
        assert!(check_config(&open, &no_aud).is_ok());
    }
}
