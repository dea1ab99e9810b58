//! The SSF §8 management calls ssfd makes at a transmitter: register a stream (create, or take
//! over the existing one after a 409), request a verification, read and update the stream status,
//! and delete it. Endpoints always come from the transmitter metadata, never from fixed paths.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::MANAGEMENT_TIMEOUT;
use super::{auth, read_json, retry_after, TransmitterError, DELIVERY_POLL, DELIVERY_PUSH};
use crate::app::App;
use crate::clock::now_unix;
use crate::event_type;
use crate::store::StoreError;
use crate::stream::{RevocationAction, Stream, TRANSMITTER_STATUSES};

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
    let o = v.as_object().ok_or_else(|| {
        TransmitterError::failed(step, "the stream configuration is not a JSON object")
    })?;
    let stream_id = o
        .get("stream_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            TransmitterError::failed(step, "the stream configuration has no stream_id")
        })?;
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
    })
}

/// SSF §8.1.1.x: the configuration must name the stream's issuer, and (when ssfd expects one)
/// its audience. Returns why it cannot be used. Never echoes the expected values.
pub fn check_config(stream: &Stream, cfg: &StreamConfig) -> Result<(), String> {
    if cfg.iss.as_deref() != Some(stream.issuer_url.as_str()) {
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
}

fn stream_of(app: &App, id: &str) -> Result<Arc<Stream>, TransmitterError> {
    app.registry.get(id).ok_or(TransmitterError::NotFound)
}

async fn endpoints(app: &App, stream: &Stream) -> Result<Endpoints, TransmitterError> {
    let allow_http = app.config().jwks.allow_http;
    let meta = app
        .keys
        .metadata(&stream.issuer_url, allow_http)
        .await
        .map_err(|e| TransmitterError::failed("discovery", e.to_string()))?;
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

fn registered_id(stream: &Stream) -> Result<&str, TransmitterError> {
    if stream.transmitter_stream_id.is_empty() {
        Err(TransmitterError::NotRegistered)
    } else {
        Ok(&stream.transmitter_stream_id)
    }
}

fn status_error(step: &'static str, resp: &reqwest::Response) -> TransmitterError {
    let status = resp.status().as_u16();
    if status == 429 {
        TransmitterError::RateLimited {
            step,
            retry_after_secs: retry_after(resp).map(|d| d.as_secs()).unwrap_or(60),
        }
    } else {
        TransmitterError::Status { step, status }
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
            "method": DELIVERY_PUSH,
            "endpoint_url": stream.push_endpoint_url(&config.server.public_base_url),
            "authorization_header": format!("Bearer {token}"),
        })
    } else {
        json!({"method": DELIVERY_POLL})
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
    if outcome.is_err() {
        if let Some((before, installed)) = rotation {
            undo_rotation(app, id, before, installed).await;
        }
    }
    outcome
}

async fn create_or_replace(
    app: &App,
    stream: &Stream,
    config_url: &str,
    body: &Value,
) -> Result<StreamConfig, TransmitterError> {
    // Registered before: update that stream rather than leave it orphaned beside a new one.
    if !stream.transmitter_stream_id.is_empty() {
        match replace(app, stream, config_url, &stream.transmitter_stream_id, body).await {
            Err(TransmitterError::Status { status: 404, .. }) => {
                tracing::info!(stream = %stream.id, "the transmitter no longer has the registered stream; creating a new one");
            }
            other => return other,
        }
    }
    let resp = send(app, stream, "create", MANAGEMENT_TIMEOUT, |c| {
        c.post(config_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body)
    })
    .await?;
    match resp.status().as_u16() {
        200 | 201 => parse_config(&read_json(resp, "create").await?, "create"),
        409 => {
            tracing::info!(stream = %stream.id, "the transmitter already has a stream for this receiver; replacing it");
            let existing = pick_existing(app, stream, config_url).await?;
            replace(app, stream, config_url, &existing, body).await
        }
        _ => Err(status_error("create", &resp)),
    }
}

/// SSF §8.1.1.2 without `stream_id`: an array of configurations (or one object).
async fn pick_existing(
    app: &App,
    stream: &Stream,
    config_url: &str,
) -> Result<String, TransmitterError> {
    let resp = send(app, stream, "read", MANAGEMENT_TIMEOUT, |c| {
        c.get(config_url)
            .header(reqwest::header::ACCEPT, "application/json")
    })
    .await?;
    if !resp.status().is_success() {
        return Err(status_error("read", &resp));
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
    candidates
        .iter()
        .find(|c| c.stream_id == stream.transmitter_stream_id)
        .or_else(|| candidates.first())
        .map(|c| c.stream_id.clone())
        .ok_or_else(|| {
            TransmitterError::failed(
                "read",
                "the transmitter answered 409 to create but lists no existing stream",
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
        c.put(config_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&full)
    })
    .await?;
    if matches!(resp.status().as_u16(), 405 | 501) {
        step = "update";
        resp = send(app, stream, step, MANAGEMENT_TIMEOUT, |c| {
            c.patch(config_url)
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&full)
        })
        .await?;
    }
    match resp.status().as_u16() {
        200 | 201 => parse_config(&read_json(resp, step).await?, step),
        // Accepted but not yet processed (SSF §8.1.1.3-4): read what the transmitter holds now.
        202 => read_config(app, stream, config_url, transmitter_id).await,
        _ => Err(status_error(step, &resp)),
    }
}

async fn read_config(
    app: &App,
    stream: &Stream,
    config_url: &str,
    transmitter_id: &str,
) -> Result<StreamConfig, TransmitterError> {
    let resp = send(app, stream, "read", MANAGEMENT_TIMEOUT, |c| {
        c.get(config_url)
            .query(&[("stream_id", transmitter_id)])
            .header(reqwest::header::ACCEPT, "application/json")
    })
    .await?;
    if !resp.status().is_success() {
        return Err(status_error("read", &resp));
    }
    let doc = read_json(resp, "read").await?;
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
    let tid = registered_id(&stream)?.to_string();
    let ep = endpoints(app, &stream).await?;
    let verify_url = require(ep.verification, "verification_endpoint")?;
    if !app.transmitters.verify_limit(id).known {
        if let Some(config_url) = &ep.configuration {
            match read_config(app, &stream, config_url, &tid).await {
                Ok(cfg) => app.transmitters.update_verify_limit(id, |l| {
                    l.min_interval = cfg.min_verification_interval.map(Duration::from_secs);
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
    let min = limit.min_interval.map(|d| d.as_secs() as i64).unwrap_or(0);
    let earliest = last.map(|t| t + min).unwrap_or(0).max(limit.not_before);
    if now < earliest {
        return Err(TransmitterError::TooSoon {
            wait_secs: (earliest - now) as u64,
            min_interval_secs: min.max(0) as u64,
        });
    }
    let state = crate::secrets::random_token();
    app.store.add_verification_request(id, &state, now).await?;
    let body = json!({"stream_id": tid, "state": state});
    let sent = send(app, &stream, "verify", MANAGEMENT_TIMEOUT, |c| {
        c.post(&verify_url).json(&body)
    })
    .await;
    let failure = match sent {
        Ok(resp) if resp.status().is_success() => None,
        Ok(resp) => {
            let e = status_error("verify", &resp);
            if let TransmitterError::RateLimited {
                retry_after_secs, ..
            } = &e
            {
                let until = now_unix() + *retry_after_secs as i64;
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
    F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
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
    let tid = registered_id(&stream)?.to_string();
    let url = require(endpoints(app, &stream).await?.status, "status_endpoint")?;
    let resp = send(app, &stream, "status", MANAGEMENT_TIMEOUT, |c| {
        c.get(&url)
            .query(&[("stream_id", tid.as_str())])
            .header(reqwest::header::ACCEPT, "application/json")
    })
    .await?;
    if !resp.status().is_success() {
        return Err(status_error("status", &resp));
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
    let tid = registered_id(&stream)?.to_string();
    let url = require(endpoints(app, &stream).await?.status, "status_endpoint")?;
    let mut body = json!({"stream_id": tid, "status": status});
    if !reason.is_empty() {
        body["reason"] = json!(reason);
    }
    let resp = send(app, &stream, "status", MANAGEMENT_TIMEOUT, |c| {
        c.post(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
    })
    .await?;
    let st = match resp.status().as_u16() {
        200 | 201 => parse_status(&read_json(resp, "status").await?, "status")?,
        // Accepted for later (SSF §8.1.2.2): what was asked for is what will be.
        202 | 204 => TransmitterStatus {
            status: status.to_string(),
            reason: reason.to_string(),
        },
        _ => return Err(status_error("status", &resp)),
    };
    remember_status(app, id, &st).await?;
    tracing::info!(stream = %id, status = %st.status, "transmitter status updated");
    Ok(st)
}

/// Deletes the stream at the transmitter (SSF §8.1.1.5). A stream the transmitter no longer has
/// counts as deleted.
pub async fn delete_remote(app: &Arc<App>, id: &str) -> Result<(), TransmitterError> {
    let stream = stream_of(app, id)?;
    let tid = registered_id(&stream)?.to_string();
    let url = require(
        endpoints(app, &stream).await?.configuration,
        "configuration_endpoint",
    )?;
    let resp = send(app, &stream, "delete", MANAGEMENT_TIMEOUT, |c| {
        c.delete(&url).query(&[("stream_id", tid.as_str())])
    })
    .await?;
    match resp.status().as_u16() {
        200 | 202 | 204 => {}
        404 => tracing::info!(stream = %id, "the transmitter no longer had this stream"),
        _ => return Err(status_error("delete", &resp)),
    }
    app.transmitters.tokens.invalidate(id);
    tracing::info!(stream = %id, transmitter_stream_id = %tid, "stream deleted at its transmitter");
    Ok(())
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
