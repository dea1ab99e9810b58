//! Prometheus metrics: counters and histograms the daemon updates as it works, plus values read
//! at scrape time (a [`Snapshot`] of key fetches, outbox, streams, database commits), rendered
//! for `GET /metrics` on the admin listener (`admin::metrics`).
//!
//! Label values are bounded: `stream` is a stream id the registry knows, `outcome` one of
//! `accepted`, `duplicate`, an RFC 8935 error code or `unavailable`, `sink` a configured sink name
//! (`""` for the ledger step), `result` `ok` or `error`, `kind` a tolerance name.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The exposition format `encode` writes; Prometheus reads it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `outcome` of a SET that was stored for the first time.
pub const OUTCOME_ACCEPTED: &str = "accepted";
/// `outcome` of a SET whose (stream, jti) was already stored.
pub const OUTCOME_DUPLICATE: &str = "duplicate";
/// `outcome` of a SET that could not be checked or stored for now (503, no poll ack).
pub const OUTCOME_UNAVAILABLE: &str = "unavailable";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SetLabels {
    stream: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    sink: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdjustLabels {
    stream: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    stream: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToleranceLabels {
    stream: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabel {
    replica: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabel {
    lease: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabel {
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

fn result_label(ok: bool) -> String {
    if ok { "ok" } else { "error" }.to_string()
}

/// The metrics the daemon updates while it runs. Cheap to update from any task.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sets: Family<SetLabels, Counter>,
    push_latency: Histogram,
    actions: Family<ActionLabels, Counter>,
    action_latency: Histogram,
    decisions: Family<DecisionLabels, Counter>,
    polls: Family<PollLabels, Counter>,
    tolerances: Family<ToleranceLabels, Counter>,
    time_adjusted: Family<AdjustLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let sets = Family::<SetLabels, Counter>::default();
        // 1 ms .. 16 s: a push is a signature check and one group commit.
        let push_latency = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let actions = Family::<ActionLabels, Counter>::default();
        // 5 ms .. 41 s: sinks are webhooks and commands with timeouts of seconds.
        let action_latency = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let polls = Family::<PollLabels, Counter>::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        let tolerances = Family::<ToleranceLabels, Counter>::default();
        let time_adjusted = Family::<AdjustLabels, Counter>::default();
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);

        let mut registry = Registry::default();
        registry.register(
            "ssfd_sets",
            "SETs received, by stream and outcome (accepted, duplicate, an RFC 8935 error code, unavailable)",
            sets.clone(),
        );
        registry.register_with_unit(
            "ssfd_push_latency",
            "Time to answer a push request",
            Unit::Seconds,
            push_latency.clone(),
        );
        registry.register(
            "ssfd_actions",
            "Action attempts, by sink and result",
            actions.clone(),
        );
        registry.register_with_unit(
            "ssfd_action_latency",
            "Time of one action attempt",
            Unit::Seconds,
            action_latency.clone(),
        );
        registry.register(
            "ssfd_decisions",
            "Actions decided for the events of newly stored SETs, by action (REVOKE_ALL, STEP_UP, LOG_ONLY)",
            decisions.clone(),
        );
        registry.register(
            "ssfd_poll_requests",
            "Poll requests to transmitters, by stream and result",
            polls.clone(),
        );
        registry.register(
            "ssfd_tolerances",
            "Departures from SSF 1.0 accepted, by stream and kind (docs/push.md#tolerances)",
            tolerances.clone(),
        );
        registry.register(
            "ssfd_event_times_adjusted",
            "Revocation cut-offs not taken as sent, by stream and reason (milliseconds, future)",
            time_adjusted.clone(),
        );
        registry.register(
            "ssfd_build_info",
            "Always 1; the label carries the version",
            build_info,
        );
        Metrics {
            registry,
            sets,
            push_latency,
            actions,
            action_latency,
            decisions,
            polls,
            tolerances,
            time_adjusted,
        }
    }

    /// Counts one event time read as milliseconds or clamped to the receive time.
    pub fn event_time_adjusted(&self, stream: &str, reason: &str) {
        self.time_adjusted
            .get_or_create(&AdjustLabels {
                stream: stream.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts one tolerance applied on a stream; `kind` is a [`crate::compat::Tolerance`] name.
    pub fn tolerance(&self, stream: &str, kind: &str) {
        self.tolerances
            .get_or_create(&ToleranceLabels {
                stream: stream.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Counts one SET's outcome: `accepted`, `duplicate`, an error code or `unavailable`.
    pub fn set_outcome(&self, stream: &str, outcome: &str) {
        self.sets
            .get_or_create(&SetLabels {
                stream: stream.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Records the time one push request took to answer.
    pub fn push_latency(&self, secs: f64) {
        self.push_latency.observe(secs);
    }

    /// Counts one action attempt on a sink and records its duration.
    pub fn action_result(&self, sink: &str, ok: bool, secs: f64) {
        self.actions
            .get_or_create(&ActionLabels {
                sink: sink.to_string(),
                result: result_label(ok),
            })
            .inc();
        self.action_latency.observe(secs);
    }

    /// Counts one decided action (`REVOKE_ALL`, `STEP_UP`, `LOG_ONLY`).
    pub fn decision(&self, action: &str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                action: action.to_string(),
            })
            .inc();
    }

    /// Counts one poll request to a transmitter.
    pub fn poll_request(&self, stream: &str, ok: bool) {
        self.polls
            .get_or_create(&PollLabels {
                stream: stream.to_string(),
                result: result_label(ok),
            })
            .inc();
    }

    /// The exposition text: the running counters plus the scrape-time values.
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut scraped = Registry::default();
        scraped.register(
            "ssfd_jwks_fetches",
            "JWKS and metadata fetches",
            ConstCounter::new(snap.jwks_fetches),
        );
        scraped.register(
            "ssfd_jwks_fetch_failures",
            "JWKS and metadata fetches that failed",
            ConstCounter::new(snap.jwks_failures),
        );
        scraped.register(
            "ssfd_db_commits",
            "Database transactions committed by the writer",
            ConstCounter::new(snap.db_commits),
        );
        if let Some(store) = &snap.store {
            scraped.register(
                "ssfd_outbox_depth",
                "Actions waiting or running",
                ConstGauge::new(store.outbox_depth),
            );
            scraped.register(
                "ssfd_actions_dead",
                "Actions that ran out of attempts",
                ConstGauge::new(store.actions_dead),
            );
        }
        let ages = Family::<StreamLabel, Gauge<f64, AtomicU64>>::default();
        for (stream, age) in &snap.verified_ages {
            ages.get_or_create(&StreamLabel {
                stream: stream.clone(),
            })
            .set(*age);
        }
        scraped.register_with_unit(
            "ssfd_stream_last_verified_age",
            "Time since the stream's last verification event",
            Unit::Seconds,
            ages,
        );
        if let Some(replica) = &snap.replica {
            let info = Family::<ReplicaLabel, Gauge>::default();
            info.get_or_create(&ReplicaLabel {
                replica: replica.clone(),
            })
            .set(1);
            scraped.register(
                "ssfd_replica",
                "This replica's id among those sharing the database (always 1)",
                info,
            );
            let held = Family::<LeaseLabel, Gauge>::default();
            for lease in &snap.leases_held {
                held.get_or_create(&LeaseLabel {
                    lease: lease.clone(),
                })
                .set(1);
            }
            scraped.register(
                "ssfd_lease_held",
                "Leases this replica holds now (poll:<stream id>, ...), 1 each",
                held,
            );
        }
        let mut out = String::new();
        // Writing to a String cannot fail; the Result is only fmt::Write's signature.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &scraped);
        let _ = encode_eof(&mut out);
        out
    }
}

/// Values read when a scrape arrives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub jwks_fetches: u64,
    pub jwks_failures: u64,
    pub db_commits: u64,
    /// `None` when the database could not be read; those gauges are then left out.
    pub store: Option<StoreCounts>,
    /// (stream id, seconds since its last verification) for streams verified at least once.
    pub verified_ages: Vec<(String, f64)>,
    /// This replica's id, when several share one PostgreSQL database.
    pub replica: Option<String>,
    /// The leases this replica holds (work one replica does at a time), when it has a replica id.
    pub leases_held: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub outbox_depth: i64,
    pub actions_dead: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
    }

    #[test]
    fn families_and_names() {
        let m = Metrics::new();
        m.set_outcome("s1", OUTCOME_ACCEPTED);
        m.set_outcome("s1", OUTCOME_ACCEPTED);
        m.set_outcome("s1", "invalid_key");
        m.push_latency(0.002);
        m.action_result("hook", true, 0.1);
        m.action_result("hook", false, 0.2);
        m.poll_request("s2", false);
        m.tolerance("s2", "poll_acks");
        let text = m.render(&Snapshot {
            jwks_fetches: 4,
            jwks_failures: 1,
            db_commits: 9,
            store: Some(StoreCounts {
                outbox_depth: 3,
                actions_dead: 2,
            }),
            verified_ages: vec![("s1".into(), 12.0)],
            replica: Some("host-1".into()),
            leases_held: vec!["poll:s2".into()],
        });
        let has = |p: &str| sample(&text, p).map(str::to_string);
        assert_eq!(
            has("ssfd_sets_total{stream=\"s1\",outcome=\"accepted\"}").as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            has("ssfd_sets_total{stream=\"s1\",outcome=\"invalid_key\"}").as_deref(),
            Some("1")
        );
        assert_eq!(has("ssfd_push_latency_seconds_count").as_deref(), Some("1"));
        assert_eq!(
            has("ssfd_actions_total{sink=\"hook\",result=\"error\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            has("ssfd_action_latency_seconds_count").as_deref(),
            Some("2")
        );
        assert_eq!(
            has("ssfd_poll_requests_total{stream=\"s2\",result=\"error\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            has("ssfd_tolerances_total{stream=\"s2\",kind=\"poll_acks\"}").as_deref(),
            Some("1")
        );
        assert_eq!(has("ssfd_jwks_fetches_total").as_deref(), Some("4"));
        assert_eq!(has("ssfd_jwks_fetch_failures_total").as_deref(), Some("1"));
        assert_eq!(has("ssfd_db_commits_total").as_deref(), Some("9"));
        assert_eq!(has("ssfd_outbox_depth").as_deref(), Some("3"));
        assert_eq!(has("ssfd_actions_dead").as_deref(), Some("2"));
        assert_eq!(
            has("ssfd_stream_last_verified_age_seconds{stream=\"s1\"}").as_deref(),
            Some("12.0")
        );
        assert_eq!(
            has(&format!(
                "ssfd_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ))
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            has("ssfd_replica{replica=\"host-1\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            has("ssfd_lease_held{lease=\"poll:s2\"}").as_deref(),
            Some("1")
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn store_gauges_are_left_out_when_unknown() {
        let text = Metrics::new().render(&Snapshot::default());
        assert!(!text.contains("ssfd_outbox_depth"), "{text}");
        assert!(text.contains("ssfd_db_commits_total 0"), "{text}");
    }
}
