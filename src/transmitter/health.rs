//! Stream health (`[poll] verify_interval`): every interval, each registered, enabled stream is
//! asked for a verification event, and the one asked for last time must have arrived by then.
//! A transmitter that paused or disabled the stream (stream-updated) is not expected to answer.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use super::HealthStats;
use super::{client, TransmitterError};
use crate::app::App;
use crate::stream::Stream;

/// How often the task looks at the configuration while the check is off.
const IDLE_RECHECK: Duration = Duration::from_secs(60);

/// Whether a stream is expected to answer verifications right now.
pub fn expects_verification(stream: &Stream) -> bool {
    stream.enabled
        && stream.deleted_at.is_none()
        && !stream.transmitter_stream_id.is_empty()
        && !matches!(stream.transmitter_status.as_str(), "paused" | "disabled")
}

/// Runs until `stop` turns true.
pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    // Stream id -> the state of the verification still awaited.
    let mut awaited: HashMap<String, String> = HashMap::new();
    loop {
        let interval = app.config().poll.verify_interval;
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(interval.unwrap_or(IDLE_RECHECK)) => {}
        }
        if interval.is_none() {
            awaited.clear();
            continue;
        }
        round(&app, &mut awaited).await;
    }
}

async fn answered(app: &App, stream_id: &str, state: &str) -> bool {
    let found = app.store.verification_answered(stream_id, state).await;
    // A database that cannot be read is not the transmitter's fault.
    found.unwrap_or(true)
}

async fn round(app: &Arc<App>, awaited: &mut HashMap<String, String>) {
    let streams = app.registry.list();
    awaited.retain(|id, _| streams.iter().any(|s| &s.id == id));
    let stats = &app.transmitters.health;
    for stream in streams {
        if !expects_verification(&stream) {
            // Suspended: a paused transmitter holds events, a disabled one sends none.
            awaited.remove(&stream.id);
            continue;
        }
        if let Some(state) = awaited.remove(&stream.id) {
            if !answered(app, &stream.id, &state).await {
                stats.verifications_missed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    stream = %stream.id, display_name = %stream.display_name,
                    "the verification event requested one interval ago has not arrived"
                );
            }
        }
        match client::verify(app, &stream.id).await {
            Ok(req) => {
                stats
                    .verifications_requested
                    .fetch_add(1, Ordering::Relaxed);
                awaited.insert(stream.id.clone(), req.state);
            }
            Err(e @ (TransmitterError::TooSoon { .. } | TransmitterError::RateLimited { .. })) => {
                tracing::debug!(stream = %stream.id, reason = %e, "verification skipped this round");
            }
            Err(e) => {
                stats.verification_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(stream = %stream.id, error = %e, "verification request failed");
            }
        }
    }
    stats.rounds.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectation_follows_registration_enablement_and_status() {
        let registered = Stream {
            transmitter_stream_id: "t1".into(),
            ..Stream::default()
        };
        assert!(expects_verification(&registered));
        assert!(!expects_verification(&Stream::default()));
        for (status, expected) in [
            ("enabled", true),
            ("", true),
            ("paused", false),
            ("disabled", false),
        ] {
            let s = Stream {
                transmitter_status: status.into(),
                ..registered.clone()
            };
            assert_eq!(expects_verification(&s), expected, "{status}");
        }
        let off = Stream {
            enabled: false,
            ..registered.clone()
        };
        assert!(!expects_verification(&off));
    }
}
