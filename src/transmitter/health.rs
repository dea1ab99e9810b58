//! Stream health (`[poll] verify_interval`): every interval, each registered, enabled stream is
//! asked for a verification event, and the one asked for last time must have arrived by then.
//! Whatever the interval, a stream quiet for half its transmitter's `inactivity_timeout` is asked
//! for one too, so that the transmitter keeps it.
//! A transmitter that paused or disabled the stream (stream-updated) is not expected to answer.
//! With several replicas on one database, a stream is verified only by the replica holding its
//! `verify:<stream id>` lease, so the transmitter is asked once per interval, not once per replica.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use super::HealthStats;
use super::{client, TransmitterError};
use crate::app::App;
use crate::stream::Stream;

/// How often the task looks at the configuration while the check is off.
const IDLE_RECHECK: Duration = Duration::from_secs(60);
/// Shortest pause between two looks.
const MIN_TICK: Duration = Duration::from_millis(500);
/// A round is due when its interval has passed, give or take this much timer jitter.
const TICK_SLACK: Duration = Duration::from_millis(50);
/// How long a replica that stopped renewing keeps a stream's verification lease.
const VERIFY_LEASE_TTL: Duration = Duration::from_secs(30);

fn verify_lease(stream_id: &str) -> String {
    format!("verify:{stream_id}")
}

/// The streams this replica looks after now: those expected to answer whose `verify:` lease it
/// holds, and those not expected to answer (so the round forgets what it awaited from them).
/// Stops competing for the leases of streams that are gone.
async fn verified_here(app: &App, competing: &mut HashSet<String>) -> Vec<Arc<Stream>> {
    let streams = app.registry.list();
    let live: HashSet<String> = streams.iter().map(|s| verify_lease(&s.id)).collect();
    for gone in competing.difference(&live).cloned().collect::<Vec<_>>() {
        app.store.release_lease(&gone).await;
        competing.remove(&gone);
    }
    let mut mine = Vec::new();
    for stream in streams {
        if !expects_verification(&stream) {
            mine.push(stream);
            continue;
        }
        let lease = verify_lease(&stream.id);
        let held = app.store.holds_lease(&lease, VERIFY_LEASE_TTL);
        competing.insert(lease);
        if held {
            mine.push(stream);
        }
    }
    mine
}

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
    // Stream id -> when a verification was last asked for to keep the stream alive.
    let mut kept_alive: HashMap<String, Instant> = HashMap::new();
    let mut last_round = Instant::now();
    let mut competing: HashSet<String> = HashSet::new();
    loop {
        let interval = app.config().poll.verify_interval;
        let quiet = app.transmitters.shortest_inactivity();
        // Looked at often enough to act within a quarter of the shortest inactivity timeout.
        let tick = [interval, quiet.map(|q| q / 4)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(IDLE_RECHECK)
            .clamp(MIN_TICK, IDLE_RECHECK.max(interval.unwrap_or_default()));
        let changed = app.transmitters.limits_changed.notified();
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(tick) => {}
            // A new inactivity timeout may call for shorter ticks: recompute them.
            _ = changed => continue,
        }
        let streams = verified_here(&app, &mut competing).await;
        keep_alive(&app, &streams, &mut kept_alive).await;
        match interval {
            None => awaited.clear(),
            Some(i) if last_round.elapsed() + TICK_SLACK >= i => {
                last_round = Instant::now();
                round(&app, streams, &mut awaited).await;
            }
            Some(_) => {}
        }
    }
}

/// SSF §8.1.1 `inactivity_timeout`: a stream quiet for half of its transmitter's timeout is
/// asked for a verification, so the transmitter does not drop it.
async fn keep_alive(
    app: &Arc<App>,
    streams: &[Arc<Stream>],
    kept_alive: &mut HashMap<String, Instant>,
) {
    for stream in streams {
        let Some(timeout) = app.transmitters.verify_limit(&stream.id).inactivity_timeout else {
            continue;
        };
        if !expects_verification(stream) {
            continue;
        }
        let half = timeout / 2;
        let quiet_since = app
            .transmitters
            .last_activity(&stream.id)
            .unwrap_or(app.started);
        let asked = kept_alive
            .get(&stream.id)
            .is_some_and(|t| t.elapsed() < half);
        if quiet_since.elapsed() < half || asked {
            continue;
        }
        kept_alive.insert(stream.id.clone(), Instant::now());
        match client::verify(app, &stream.id).await {
            Ok(_) => tracing::info!(
                stream = %stream.id, quiet_secs = quiet_since.elapsed().as_secs(),
                inactivity_timeout_secs = timeout.as_secs(),
                "stream quiet: verification requested to stay within the transmitter's inactivity_timeout"
            ),
            Err(e @ (TransmitterError::TooSoon { .. } | TransmitterError::RateLimited { .. })) => {
                tracing::debug!(stream = %stream.id, reason = %e, "keep-alive verification deferred");
            }
            Err(e) => {
                tracing::warn!(stream = %stream.id, error = %e, "keep-alive verification failed")
            }
        }
    }
}

async fn answered(app: &App, stream_id: &str, state: &str) -> bool {
    let found = app.store.verification_answered(stream_id, state).await;
    // A database that cannot be read is not the transmitter's fault.
    found.unwrap_or(true)
}

async fn round(app: &Arc<App>, streams: Vec<Arc<Stream>>, awaited: &mut HashMap<String, String>) {
    // A stream verified by another replica now is dropped here: its awaited state is theirs.
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
