//! Intake: where SETs enter. Push ([`push`]) and poll share [`receive`], which verifies a SET,
//! stores it with its planned actions in one transaction, and only then reports success, so that
//! nothing acknowledged can be lost.

pub mod poll;
pub mod push;
pub mod refusals;

use std::sync::Arc;
use std::time::Instant;

use crate::act;
use crate::app::App;
use crate::clock::{now_millis, now_unix};
use crate::compat::{self, Tolerance};
use crate::metrics;
use crate::sanitize::log_text;
use crate::store::inbox::NewInboxRow;
use crate::store::set::{ControlWrite, SetStored, SetWrite};
use crate::store::StoreError;
use crate::stream::Stream;
use crate::verify::{self, ControlEvent, SetError, VerifiedSet, VerifyFailure};

/// How a SET reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Push,
    /// Also records the poll acknowledgement as pending in the same transaction, so that a SET
    /// committed just before a crash is still acknowledged after the restart.
    Poll,
}

impl Delivery {
    pub fn as_str(&self) -> &'static str {
        match self {
            Delivery::Push => "push",
            Delivery::Poll => "poll",
        }
    }
}

/// A SET that is now durable (or already was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub jti: String,
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The SET is bad: tell the transmitter, never acknowledge it.
    #[error(transparent)]
    Rejected(#[from] SetError),
    /// Keys could not be fetched: not the SET's fault; the transmitter should deliver again.
    #[error("keys unavailable: {message}")]
    Unavailable {
        message: String,
        /// When delivering again may succeed, if known.
        retry_after: Option<std::time::Duration>,
    },
    /// The database could not commit: not acknowledged; the transmitter should deliver again.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies and stores one SET for a stream.
pub async fn receive(
    app: &Arc<App>,
    stream: &Arc<Stream>,
    token: &str,
    delivery: Delivery,
) -> Result<Receipt, IntakeError> {
    receive_tolerating(app, stream, token, delivery, &[]).await
}

/// [`receive`] for a SET whose delivery already needed `transport` tolerances (e.g. a push
/// token without `Bearer `): they are stored and counted with the SET's own.
pub async fn receive_tolerating(
    app: &Arc<App>,
    stream: &Arc<Stream>,
    token: &str,
    delivery: Delivery,
    transport: &[Tolerance],
) -> Result<Receipt, IntakeError> {
    let started = Instant::now();
    let result = receive_inner(app, stream, token, delivery, transport).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    // One line per SET at its outcome, with the same fields whatever the outcome.
    match &result {
        Ok((receipt, set_info)) => {
            app.note_tolerances(&stream.id, &set_info.tolerances);
            app.transmitters.note_activity(&stream.id);
            app.metrics.set_outcome(
                &stream.id,
                if receipt.duplicate {
                    metrics::OUTCOME_DUPLICATE
                } else {
                    metrics::OUTCOME_ACCEPTED
                },
            );
            // Verified is not harmless: a transmitter's strings reach the log without line breaks
            // or control characters.
            tracing::info!(
                stream = %stream.id, jti = %log_text(&receipt.jti),
                txn = %log_text(set_info.txn.as_deref().unwrap_or("")),
                event_type = %log_text(&set_info.event_types), subject = %log_text(&set_info.subject),
                outcome = if receipt.duplicate { "duplicate" } else { set_info.outcome },
                tolerances = %compat::joined(&set_info.tolerances),
                delivery = delivery.as_str(), latency_ms, "SET accepted"
            )
        }
        Err(e) => {
            // The SET was not accepted, so its claims are unverified: logged (sanitised) only to
            // let an operator find the delivery, never trusted.
            let peek = UnverifiedIds::of(token);
            match e {
                IntakeError::Rejected(e) => {
                    app.metrics.set_outcome(&stream.id, e.code.as_str());
                    // The iss that arrived is named here, never in the answer (which must not
                    // show what was expected either).
                    tracing::info!(
                        stream = %stream.id, jti = %peek.jti, txn = %peek.txn, iss = %peek.iss,
                        event_type = %peek.event_types, subject = "", outcome = "rejected",
                        err = e.code.as_str(), description = %log_text(&e.description),
                        delivery = delivery.as_str(), latency_ms, "SET rejected"
                    )
                }
                e => {
                    app.metrics
                        .set_outcome(&stream.id, metrics::OUTCOME_UNAVAILABLE);
                    tracing::warn!(
                        stream = %stream.id, jti = %peek.jti, txn = %peek.txn,
                        event_type = %peek.event_types, subject = "", outcome = "unavailable",
                        error = %e, delivery = delivery.as_str(), latency_ms,
                        "SET not accepted (temporary)"
                    )
                }
            }
        }
    }
    result.map(|(r, _)| r)
}

/// `jti`, `txn` and event types read from a SET's payload without verifying it, cut short and
/// limited to printable ASCII so that a hostile token cannot forge or flood a log line.
struct UnverifiedIds {
    jti: String,
    txn: String,
    iss: String,
    event_types: String,
}

impl UnverifiedIds {
    const MAX_CHARS: usize = 128;

    fn of(token: &str) -> UnverifiedIds {
        let payload = token
            .trim()
            .split('.')
            .nth(1)
            .and_then(|p| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p.trim_end_matches('='))
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        let text = |name: &str| {
            payload
                .as_ref()
                .and_then(|p| p.get(name))
                .and_then(|v| v.as_str())
                .map(Self::clean)
                .unwrap_or_default()
        };
        let event_types = payload
            .as_ref()
            .and_then(|p| p.get("events"))
            .and_then(|e| e.as_object())
            .map(|e| Self::clean(&e.keys().map(String::as_str).collect::<Vec<_>>().join(",")))
            .unwrap_or_default();
        UnverifiedIds {
            jti: text("jti"),
            txn: text("txn"),
            iss: text("iss"),
            event_types,
        }
    }

    fn clean(s: &str) -> String {
        s.chars()
            .take(Self::MAX_CHARS)
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect()
    }
}

struct SetInfo {
    tolerances: Vec<Tolerance>,
    txn: Option<String>,
    event_types: String,
    subject: String,
    outcome: &'static str,
    /// Cut-offs not taken as sent: (reason, the cut-off used).
    time_adjusted: Vec<(&'static str, i64)>,
}

async fn receive_inner(
    app: &Arc<App>,
    stream: &Arc<Stream>,
    token: &str,
    delivery: Delivery,
    transport: &[Tolerance],
) -> Result<(Receipt, SetInfo), IntakeError> {
    let mut set = match verify::verify_set(&app.keys, stream, token).await {
        Ok(set) => set,
        Err(VerifyFailure::Rejected(e)) => {
            note_rejection(app, &stream.id, &e).await;
            return Err(e.into());
        }
        Err(VerifyFailure::KeysUnavailable {
            message,
            retry_after,
        }) => {
            note_error(app, &stream.id, &message, false).await;
            return Err(IntakeError::Unavailable {
                message,
                retry_after,
            });
        }
    };
    for t in transport {
        if !set.tolerances.contains(t) {
            set.tolerances.push(*t);
        }
    }
    let config = app.config();
    let mut plan = act::plan(stream, &set, &config, now_unix());
    // SSF §8.1.3.3: events about a subject removed from the stream may still arrive; they are
    // acknowledged and logged, never acted on.
    if !plan.decisions.is_empty() && app.transmitters.is_removed(&stream.id, &set.subject_keys()) {
        tracing::info!(
            stream = %stream.id, jti = %set.jti,
            subject = %set.subject_keys().first().map(String::as_str).unwrap_or(""),
            "event about a subject removed from the stream: stored, not acted on"
        );
        plan = act::Plan {
            outcome: "stored",
            summary: "subject removed from the stream at the transmitter: stored, no action".into(),
            decisions: Vec::new(),
        };
    }
    let info = SetInfo {
        tolerances: set.tolerances.clone(),
        txn: set.txn.clone(),
        event_types: set.event_types().join(","),
        subject: set.subject_keys().first().cloned().unwrap_or_default(),
        outcome: plan.outcome,
        time_adjusted: plan
            .decisions
            .iter()
            .filter_map(|d| d.time_adjusted.map(|a| (a.as_str(), d.revoked_before)))
            .collect(),
    };
    let write = set_write(
        &stream.id,
        &mut set,
        plan,
        token.trim().to_string(),
        delivery,
    );
    let (stored, write) = match app.store.store_set(write).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(stream = %stream.id, error = %e, "could not store a SET");
            return Err(e.into());
        }
    };
    after_store(app, stream, stored, set.jti, write, info).await
}

/// Describes what storing `set` writes: its inbox row, the stream bookkeeping of a control
/// event, the plan's decisions and, for a polled SET, its pending acknowledgement. The SET's
/// claims text moves into the row.
fn set_write(
    stream_id: &str,
    set: &mut VerifiedSet,
    plan: act::Plan,
    raw: String,
    delivery: Delivery,
) -> SetWrite {
    let claims = if set.claims_json.is_empty() {
        serde_json::Value::Object(set.claims.clone()).to_string()
    } else {
        std::mem::take(&mut set.claims_json)
    };
    let control = set.control.as_ref().map(|c| match c {
        ControlEvent::Verification { state } => ControlWrite::Verification {
            state: state.clone(),
        },
        ControlEvent::StreamUpdated { status, reason } => ControlWrite::StreamUpdated {
            status: status.clone(),
            reason: reason.clone(),
        },
    });
    let subject = act::audit_subject(set);
    let decisions = act::decision_writes(stream_id, &set.jti, plan.decisions);
    SetWrite {
        inbox: NewInboxRow {
            stream_id: stream_id.to_string(),
            jti: set.jti.clone(),
            iss: set.iss.clone(),
            txn: set.txn.clone(),
            event_types: set.event_types(),
            subject_keys: set.subject_keys(),
            raw_token: raw,
            claims,
            received_at_ms: now_millis(),
            delivery: delivery.as_str(),
            outcome: plan.outcome.to_string(),
            decision: plan.summary,
            tolerances: set
                .tolerances
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
        },
        control,
        subject,
        decisions,
        // A polled SET is acknowledged on the next request once it is stored, duplicates
        // included; the pending ack is part of the same transaction.
        pending_ack: delivery == Delivery::Poll,
    }
}

/// After the commit: answer, bookkeeping in the cached stream, wake the action worker, log.
async fn after_store(
    app: &Arc<App>,
    stream: &Arc<Stream>,
    stored: SetStored,
    jti: String,
    write: SetWrite,
    info: SetInfo,
) -> Result<(Receipt, SetInfo), IntakeError> {
    match stored {
        SetStored::Duplicate => Ok((
            Receipt {
                jti,
                duplicate: true,
            },
            info,
        )),
        SetStored::BadState => {
            let e = SetError::new(
                verify::ErrCode::InvalidState,
                "the verification state does not match a state this receiver requested",
            );
            note_rejection(app, &stream.id, &e).await;
            Err(e.into())
        }
        SetStored::New => {
            let now = now_unix();
            match &write.control {
                Some(ControlWrite::Verification { .. }) => app
                    .registry
                    .refresh_cached(&stream.id, |s| s.last_verified_at = Some(now)),
                Some(ControlWrite::StreamUpdated { status, reason }) => {
                    app.registry.refresh_cached(&stream.id, |s| {
                        s.transmitter_status = status.clone();
                        s.transmitter_status_reason = reason.clone();
                    })
                }
                None => {}
            }
            if write.decisions.iter().any(|d| !d.sinks.is_empty()) {
                app.actions_ready.notify_one();
            }
            for d in &write.decisions {
                app.metrics.decision(d.action);
                tracing::info!(
                    stream = %stream.id, jti = %log_text(&jti), event_type = %log_text(&d.event_type),
                    action = d.action, reason = %d.reason,
                    subject = %log_text(&info.subject), sinks = d.sinks.len(), "action decided"
                );
            }
            for (adjusted, revoked_before) in &info.time_adjusted {
                app.metrics.event_time_adjusted(&stream.id, adjusted);
                tracing::warn!(
                    stream = %stream.id, jti = %log_text(&jti), adjusted = *adjusted,
                    revoked_before = *revoked_before,
                    "the event time was not usable as sent; the revocation cut-off was adjusted"
                );
            }
            Ok((
                Receipt {
                    jti,
                    duplicate: false,
                },
                info,
            ))
        }
    }
}

/// Records a rejected SET on the stream (`lastError*` reads `<code>: <description>`).
async fn note_rejection(app: &Arc<App>, stream_id: &str, e: &SetError) {
    note_error(
        app,
        stream_id,
        &format!("{}: {}", e.code, e.description),
        true,
    )
    .await;
}

/// Records a problem on the stream (`lastErrorAt`/`lastErrorMessage`, and the rejected-SET count).
pub(crate) async fn note_error(app: &Arc<App>, stream_id: &str, message: &str, rejected_set: bool) {
    let now = now_unix();
    let written = app
        .store
        .record_stream_error(stream_id, now, message, rejected_set)
        .await;
    if written.is_ok() {
        app.registry.refresh_cached(stream_id, |s| {
            s.last_error_at = Some(now);
            s.last_error_message = message.to_string();
        });
    }
}
