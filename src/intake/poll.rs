//! RFC 8936 poll delivery: a supervisor keeps one poller task per enabled POLL stream; each
//! poller asks its transmitter for SETs, hands every one to [`super::receive`], and
//! acknowledges only what was committed (errors go back in `setErrs`, never as acks).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::{receive, Delivery, IntakeError};
use crate::app::App;
use crate::clock::now_unix;
use crate::stream::{OutboundAuth, Stream};
use crate::transmitter::{
    client, error_excerpt, outbound_secrets, read_limited, retry_after, TransmitterError,
};
use crate::verify::ErrCode;

/// First back-off delay after a failed poll; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest `Retry-After` honoured; a larger value is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How often the supervisor looks for pollers that died.
const SUPERVISOR_TICK: Duration = Duration::from_secs(1);
/// Time allowed for the acknowledgement-only request sent when a poller stops.
const FINAL_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a replica's poll lease lasts without a renewal: another replica takes a stream over
/// this long after its poller died.
const POLL_LEASE_TTL: Duration = Duration::from_secs(10);
/// Largest poll answer read (10,000 SETs of several KiB each fit).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// LEGACY_SSE streams poll without holding (SSE draft transmitters refuse long polls), this
/// often unless `pollInterval` says otherwise.
pub const LEGACY_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The delay before the next attempt after `failures` failures in a row: 1 s doubling to
/// 5 min, scaled by `jitter` in [0, 1] into its upper half (so retries of many streams spread
/// out but never come sooner than half the nominal delay), and never before `Retry-After`.
pub fn backoff_delay(failures: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let nominal = FIRST_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
    let jittered = nominal.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    jittered.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
}

/// The `jti` claim of a compact SET, read without verifying anything: only to compare it with
/// the key the SET was delivered under. `None` when the token cannot be read (verification
/// will then reject it with its own reason).
pub fn peek_jti(token: &str) -> Option<String> {
    let mut parts = token.trim().split('.');
    let payload = parts.nth(1)?;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("jti")?.as_str().map(String::from)
}

/// What decides how a stream is polled; any change restarts its poller.
#[derive(Debug, Clone, PartialEq)]
struct Fingerprint {
    endpoint: String,
    interval: Option<Duration>,
    auth: Option<OutboundAuth>,
    legacy: bool,
}

fn wanted(stream: &Stream) -> Option<Fingerprint> {
    let polls = !stream.is_push()
        && stream.enabled
        && stream.deleted_at.is_none()
        && !stream.poll_endpoint_url.is_empty();
    let interval = stream.poll_interval.filter(|d| !d.is_zero());
    polls.then(|| Fingerprint {
        endpoint: stream.poll_endpoint_url.clone(),
        // Short polling by default for LEGACY_SSE.
        interval: interval.or(stream.is_legacy().then_some(LEGACY_POLL_INTERVAL)),
        auth: stream.outbound_auth.clone(),
        legacy: stream.is_legacy(),
    })
}

struct Running {
    fingerprint: Fingerprint,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Keeps the set of pollers in line with the registry until `stop` turns true, then stops every
/// poller (each sends its last acknowledgements) and returns.
pub async fn supervise(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut versions = app.registry.subscribe();
    let mut running: HashMap<String, Running> = HashMap::new();
    // A poller that died (a panic) is noticed on this tick and started again.
    let mut tick = tokio::time::interval(SUPERVISOR_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        versions.borrow_and_update();
        reconcile(&app, &mut running).await;
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            changed = versions.changed() => if changed.is_err() { break },
            _ = tick.tick() => {}
        }
    }
    let all: Vec<Running> = running.into_values().collect();
    for r in &all {
        let _ = r.stop.send(true);
    }
    for r in all {
        let _ = r.task.await;
    }
    app.transmitters.set_running_pollers(Vec::new());
}

async fn reconcile(app: &Arc<App>, running: &mut HashMap<String, Running>) {
    let desired: HashMap<String, (Arc<Stream>, Fingerprint)> = app
        .registry
        .list()
        .into_iter()
        .filter_map(|s| wanted(&s).map(|f| (s.id.clone(), (s, f))))
        .collect();
    let dead: Vec<String> = running
        .iter()
        .filter(|(_, r)| r.task.is_finished())
        .map(|(id, _)| id.clone())
        .collect();
    for id in dead {
        if let Some(r) = running.remove(&id) {
            if let Err(e) = r.task.await {
                tracing::error!(stream = %id, error = %e, "poller died; starting it again");
            }
        }
    }
    let stale: Vec<String> = running
        .iter()
        .filter(|(id, r)| desired.get(*id).map(|d| &d.1) != Some(&r.fingerprint))
        .map(|(id, _)| id.clone())
        .collect();
    for id in stale {
        if let Some(r) = running.remove(&id) {
            let _ = r.stop.send(true);
            let _ = r.task.await;
            tracing::info!(stream = %id, "poller stopped");
        }
    }
    for (id, (stream, fingerprint)) in desired {
        if running.contains_key(&id) {
            continue;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let poller = Poller::new(app.clone(), stream, &fingerprint);
        let task = tokio::spawn(poller.run(stop_rx));
        tracing::info!(stream = %id, "poller started");
        running.insert(
            id,
            Running {
                fingerprint,
                stop: stop_tx,
                task,
            },
        );
    }
    app.transmitters
        .set_running_pollers(running.keys().cloned().collect::<Vec<_>>());
}

/// What came of the SETs of one answer.
struct Taken {
    /// False when some could not be judged now (keys or store unavailable).
    intact: bool,
    /// SETs stored for the first time.
    fresh: usize,
}

/// One poll answer (RFC 8936 §2.3).
struct Answer {
    sets: Map<String, Value>,
    more_available: bool,
}

/// A poll that did not produce an answer.
struct PollFailure {
    message: String,
    retry_after: Option<Duration>,
}

impl From<TransmitterError> for PollFailure {
    fn from(e: TransmitterError) -> PollFailure {
        PollFailure {
            message: e.to_string(),
            retry_after: None,
        }
    }
}

struct Poller {
    app: Arc<App>,
    id: String,
    /// The stream as last seen in the registry: still usable for the final acknowledgements
    /// after the stream was deleted.
    stream: Arc<Stream>,
    endpoint: String,
    interval: Option<Duration>,
    /// jtis committed and not yet acknowledged in a request the transmitter answered with 200.
    acks: Vec<String>,
    acked: HashSet<String>,
    /// Rejected SETs to report, by the key they were delivered under.
    errs: BTreeMap<String, (ErrCode, String)>,
    failures: u32,
    /// Answers in a row that held SETs but none new (duplicates or rejected ones).
    stale_answers: u32,
    /// The lastErrorMessage this poller wrote, cleared once polling works again.
    error_written: Option<String>,
}

impl Poller {
    fn new(app: Arc<App>, stream: Arc<Stream>, f: &Fingerprint) -> Poller {
        // A poller started again (after a restart, an edit or a crash) clears the error its
        // predecessor left once polling works.
        let inherited = Some(stream.last_error_message.clone())
            .filter(|m| m.starts_with("poll") || m.starts_with("token"));
        Poller {
            app,
            id: stream.id.clone(),
            stream,
            endpoint: f.endpoint.clone(),
            interval: f.interval,
            acks: Vec::new(),
            acked: HashSet::new(),
            errs: BTreeMap::new(),
            failures: 0,
            stale_answers: 0,
            error_written: inherited,
        }
    }

    async fn load_pending_acks(&mut self) {
        match self.app.store.pending_acks(&self.id).await {
            Ok(jtis) => jtis.into_iter().for_each(|j| self.add_ack(j)),
            Err(e) => {
                tracing::error!(stream = %self.id, error = %e, "could not load pending acknowledgements")
            }
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        // With several replicas on one database, only the holder of this lease polls and
        // acknowledges; the pending acks are rows, so the next holder sends them.
        let lease = format!("poll:{}", self.id);
        let mut holding = false;
        loop {
            if *stop.borrow() {
                break;
            }
            if !self.app.store.holds_lease(&lease, POLL_LEASE_TTL) {
                if holding {
                    tracing::warn!(stream = %self.id, "poll lease lost; another replica polls");
                }
                holding = false;
                self.acks.clear();
                self.acked.clear();
                self.errs.clear();
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = self.app.store.lease_acquired(&lease) => {}
                }
                continue;
            }
            if !holding {
                holding = true;
                self.load_pending_acks().await;
            }
            if let Some(s) = self.app.registry.get(&self.id) {
                self.stream = s;
            }
            let body = self.request_body(false);
            let outcome = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                r = self.exchange(&body) => r,
            };
            let pause = match outcome {
                Ok(answer) => {
                    self.app.metrics.poll_request(&self.id, true);
                    self.confirmed().await;
                    self.recovered().await;
                    let delivered = answer.sets.len();
                    let taken = self.take(answer.sets).await;
                    if !taken.intact {
                        // Keys or the database are unavailable: the transmitter will deliver
                        // these again; asking at once would only fail again.
                        self.failures += 1;
                        Some(backoff_delay(self.failures, None, rand::random()))
                    } else if answer.more_available || taken.fresh > 0 {
                        self.failures = 0;
                        self.stale_answers = 0;
                        None
                    } else if delivered > 0 {
                        // Only SETs already stored or rejected: a transmitter that ignores acks
                        // would be asked again at once, for ever. Back off instead (the acks and
                        // errors go with the next request) and say so once.
                        self.failures = 0;
                        self.stale_answers += 1;
                        if self.stale_answers == 1 {
                            tracing::warn!(stream = %self.id, delivered,
                                "the transmitter delivered only SETs already acknowledged or \
                                 rejected; polling with back-off until it delivers new ones");
                        }
                        Some(backoff_delay(self.stale_answers, None, rand::random()))
                    } else {
                        self.failures = 0;
                        self.stale_answers = 0;
                        self.interval
                    }
                }
                Err(f) => {
                    self.app.metrics.poll_request(&self.id, false);
                    self.failures += 1;
                    self.record_failure(&f.message).await;
                    let delay = backoff_delay(self.failures, f.retry_after, rand::random());
                    tracing::warn!(
                        stream = %self.id, error = %f.message, failures = self.failures,
                        retry_in_ms = delay.as_millis() as u64, "poll failed"
                    );
                    Some(delay)
                }
            };
            if let Some(d) = pause {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(d) => {}
                }
            }
        }
        if holding {
            self.flush().await;
        }
        self.app.store.release_lease(&lease).await;
    }

    fn add_ack(&mut self, jti: String) {
        if self.acked.insert(jti.clone()) {
            self.acks.push(jti);
        }
    }

    /// The RFC 8936 §2.2 request. `final_ack` asks for nothing more (`maxEvents: 0`).
    fn request_body(&self, final_ack: bool) -> Value {
        let errs: Map<String, Value> = self
            .errs
            .iter()
            .map(|(k, (code, description))| {
                (
                    k.clone(),
                    json!({"err": code.as_str(), "description": description}),
                )
            })
            .collect();
        let max_events = if final_ack {
            0
        } else {
            self.app.config().poll.max_events
        };
        let mut body = json!({
            "ack": self.acks,
            "setErrs": errs,
            "maxEvents": max_events,
            "returnImmediately": final_ack || self.interval.is_some(),
        });
        // The SSE draft named the member `acks`; both are sent so either reading works.
        if self.stream.is_legacy() {
            body["acks"] = json!(self.acks);
        }
        body
    }

    /// Counts the `acks` tolerance for a request that carries acknowledgements.
    fn note_request(&self, body: &Value) {
        if body
            .get("acks")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            self.app
                .note_tolerances(&self.id, &[crate::compat::Tolerance::PollAcks]);
        }
    }

    async fn exchange(&self, body: &Value) -> Result<Answer, PollFailure> {
        self.exchange_with(body, self.app.config().poll.timeout)
            .await
    }

    async fn exchange_with(&self, body: &Value, timeout: Duration) -> Result<Answer, PollFailure> {
        self.note_request(body);
        let stream = self.stream.clone();
        let with_errs = !self.errs.is_empty();
        let resp = client::send(&self.app, &stream, "poll", timeout, |c| {
            let req = c
                .post(&self.endpoint)?
                .header(reqwest::header::ACCEPT, "application/json")
                .json(body);
            // RFC 8936 §2.6: error descriptions are English.
            Ok(if with_errs {
                req.header(reqwest::header::CONTENT_LANGUAGE, "en-US")
            } else {
                req
            })
        })
        .await?;
        let status = resp.status().as_u16();
        if status != 200 {
            // A 400 body is undefined (RFC 8936 §2.5.1): shown to the operator as a scrubbed
            // excerpt, never interpreted.
            let retry_after = retry_after(&resp);
            let excerpt = error_excerpt(resp, &outbound_secrets(&stream)).await;
            let mut message = format!("poll: the transmitter answered HTTP {status}");
            if !excerpt.is_empty() {
                message.push_str(&format!(": {excerpt:?}"));
            }
            if excerpt.to_ascii_lowercase().contains("long poll") && self.interval.is_none() {
                message.push_str(
                    " (set pollInterval to poll without holding, or compatibilityProfile \
                     LEGACY_SSE for a pre-1.0 SSE transmitter)",
                );
            }
            return Err(PollFailure {
                message,
                retry_after,
            });
        }
        // What was asked for bounds what is read: maxEvents SETs of at most max_body each.
        let asked = body
            .get("maxEvents")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(usize::MAX as u64) as usize;
        let per_set = self.app.config().server.max_body_bytes + 1024;
        let limit = asked
            .max(1)
            .saturating_mul(per_set)
            .saturating_add(64 * 1024)
            .min(MAX_ANSWER_BYTES);
        let bytes = read_limited(resp, "poll", limit).await?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|_| PollFailure {
            message: "poll: the answer is not valid JSON".into(),
            retry_after: None,
        })?;
        let mut sets = match doc.get("sets") {
            Some(Value::Object(m)) => m.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => {
                return Err(PollFailure {
                    message: "poll: sets in the answer is not an object".into(),
                    retry_after: None,
                })
            }
        };
        let mut more_available = doc
            .get("moreAvailable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if sets.len() > asked {
            // Only what was asked for is taken; the rest stays unacknowledged, so the
            // transmitter delivers it again.
            tracing::warn!(stream = %self.id, delivered = sets.len(), max_events = asked,
                "the transmitter sent more SETs than maxEvents; taking maxEvents of them");
            let extra: Vec<String> = sets.keys().skip(asked).cloned().collect();
            for k in extra {
                sets.remove(&k);
            }
            more_available = asked > 0;
        }
        Ok(Answer {
            sets,
            more_available,
        })
    }

    /// The transmitter answered a request carrying every pending ack and error: forget them.
    async fn confirmed(&mut self) {
        self.errs.clear();
        if self.acks.is_empty() {
            return;
        }
        let jtis = std::mem::take(&mut self.acks);
        self.acked.clear();
        let deleted = self.app.store.delete_pending_acks(&self.id, jtis).await;
        if let Err(e) = deleted {
            // The rows only cause the same jtis to be acknowledged again after a restart.
            tracing::warn!(stream = %self.id, error = %e, "could not clear pending acknowledgements");
        }
    }

    /// Hands every delivered SET to `receive`, concurrently so that the store can commit them in
    /// one batch.
    async fn take(&mut self, sets: Map<String, Value>) -> Taken {
        let mut taken = Taken {
            intact: true,
            fresh: 0,
        };
        if sets.is_empty() {
            return taken;
        }
        let Some(stream) = self.app.registry.get(&self.id) else {
            taken.intact = false;
            return taken;
        };
        let mut tasks = JoinSet::new();
        for (key, value) in sets {
            let max_body = self.app.config().server.max_body_bytes;
            if value.as_str().is_some_and(|t| t.len() > max_body) {
                self.errs.insert(
                    key,
                    (
                        ErrCode::InvalidRequest,
                        format!("the SET is larger than {max_body} bytes"),
                    ),
                );
                continue;
            }
            let Some(token) = value.as_str().map(String::from) else {
                self.errs.insert(
                    key,
                    (
                        ErrCode::InvalidRequest,
                        "the SET is not a JSON string".into(),
                    ),
                );
                continue;
            };
            if let Some(jti) = peek_jti(&token) {
                if jti != key {
                    tracing::info!(stream = %self.id, key = %crate::sanitize::log_text(&key), "SET rejected: delivered under a key that is not its jti");
                    self.errs.insert(
                        key,
                        (
                            ErrCode::InvalidRequest,
                            "the key of this SET in sets is not its jti".into(),
                        ),
                    );
                    continue;
                }
            }
            let (app, stream) = (self.app.clone(), stream.clone());
            tasks.spawn(async move {
                let result = receive(&app, &stream, &token, Delivery::Poll).await;
                (key, result)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((key, result)) = joined else {
                taken.intact = false;
                continue;
            };
            match result {
                Ok(receipt) => {
                    taken.fresh += usize::from(!receipt.duplicate);
                    self.add_ack(key)
                }
                Err(IntakeError::Rejected(e)) => {
                    self.errs.insert(key, (e.code, e.description));
                }
                Err(IntakeError::Unavailable { .. }) | Err(IntakeError::Store(_)) => {
                    taken.intact = false
                }
            }
        }
        taken
    }

    async fn record_failure(&mut self, message: &str) {
        let now = now_unix();
        let written = self
            .app
            .store
            .record_stream_error(&self.id, now, message, false)
            .await;
        if written.is_ok() {
            self.app.registry.refresh_cached(&self.id, |s| {
                s.last_error_at = Some(now);
                s.last_error_message = message.to_string();
            });
            self.error_written = Some(message.to_string());
        }
    }

    async fn recovered(&mut self) {
        let Some(message) = self.error_written.take() else {
            return;
        };
        let cleared = self
            .app
            .store
            .clear_stream_error_if(&self.id, &message)
            .await;
        if matches!(cleared, Ok(true)) {
            self.app.registry.refresh_cached(&self.id, |s| {
                if s.last_error_message == message {
                    s.last_error_at = None;
                    s.last_error_message.clear();
                }
            });
        }
        tracing::info!(stream = %self.id, "polling works again");
    }

    /// RFC 8936 §2.4 acknowledgement-only request, sent when the poller stops.
    async fn flush(&mut self) {
        if self.acks.is_empty() && self.errs.is_empty() {
            return;
        }
        let body = self.request_body(true);
        let timeout = self.app.config().poll.timeout.min(FINAL_ACK_TIMEOUT);
        match self.exchange_with(&body, timeout).await {
            Ok(_) => {
                let n = self.acks.len();
                self.confirmed().await;
                tracing::info!(stream = %self.id, acks = n, "final acknowledgements sent");
            }
            Err(f) => tracing::warn!(
                stream = %self.id, error = %f.message, pending = self.acks.len(),
                "final acknowledgements not sent; they will be sent after the next start"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_ceiling() {
        assert_eq!(backoff_delay(1, None, 1.0), Duration::from_secs(1));
        assert_eq!(backoff_delay(1, None, 0.0), Duration::from_millis(500));
        assert_eq!(backoff_delay(2, None, 1.0), Duration::from_secs(2));
        assert_eq!(backoff_delay(4, None, 1.0), Duration::from_secs(8));
        assert_eq!(backoff_delay(9, None, 1.0), Duration::from_secs(256));
        assert_eq!(backoff_delay(10, None, 1.0), Duration::from_secs(300));
        assert_eq!(backoff_delay(1000, None, 1.0), Duration::from_secs(300));
        // Retry-After is a floor, itself bounded.
        assert_eq!(
            backoff_delay(1, Some(Duration::from_secs(7)), 0.0),
            Duration::from_secs(7)
        );
        assert_eq!(
            backoff_delay(1, Some(Duration::from_secs(1 << 20)), 0.0),
            MAX_RETRY_AFTER
        );
        // Five seconds of failures cannot see more than five attempts.
        let mut t = Duration::ZERO;
        let mut attempts = 0;
        while t < Duration::from_secs(5) {
            attempts += 1;
            t += backoff_delay(attempts, None, 0.0);
        }
        assert!(attempts <= 5, "{attempts}");
    }

    #[test]
    fn jti_is_peeked_without_trusting_it() {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"jti":"abc"}"#);
        assert_eq!(peek_jti(&format!("h.{claims}.s")).as_deref(), Some("abc"));
        let padded = base64::engine::general_purpose::URL_SAFE.encode(br#"{"jti":"abcd"}"#);
        assert_eq!(peek_jti(&format!("h.{padded}.s")).as_deref(), Some("abcd"));
        assert_eq!(peek_jti("not a token"), None);
        assert_eq!(peek_jti("a.!!!.c"), None);
        let no_jti = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#);
        assert_eq!(peek_jti(&format!("h.{no_jti}.s")), None);
    }

    #[test]
    fn only_enabled_poll_streams_with_an_endpoint_are_polled() {
        let poll = Stream {
            delivery_method: crate::stream::DeliveryMethod::Poll,
            poll_endpoint_url: "https://tr/poll".into(),
            ..Stream::default()
        };
        assert!(wanted(&poll).is_some());
        assert!(wanted(&Stream::default()).is_none());
        assert!(wanted(&Stream {
            enabled: false,
            ..poll.clone()
        })
        .is_none());
        assert!(wanted(&Stream {
            deleted_at: Some(1),
            ..poll.clone()
        })
        .is_none());
        let a = wanted(&poll).unwrap();
        let b = wanted(&Stream {
            poll_interval: Some(Duration::from_secs(5)),
            ..poll.clone()
        })
        .unwrap();
        assert_ne!(a, b);
        // Bookkeeping changes do not restart a poller.
        let c = wanted(&Stream {
            last_verified_at: Some(5),
            last_error_message: "x".into(),
            ..poll.clone()
        })
        .unwrap();
        assert_eq!(a, c);
    }
}
